"""``abtop replay FILE.jsonl [--speed X]``: a recorded run, in the TUI, with no model and no engine."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  abtop --record run.jsonl                    record a session in the TUI
  abtop bench --runs 3 --record run.jsonl     or a headless bench
  abtop replay run.jsonl                      play it back as it happened
  abtop replay run.jsonl --speed 4            four times faster (the figures stay the recorded ones)
  abtop replay bench8.jsonl --only 1,5,8      three models of a bench of eight (the TUI shows four at most)

keys: Enter or r plays it again, Esc stops, e exports, s saves an SVG, g plots, q quits.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="play a recorded run back in the TUI",
        description="Play a recording from --record back in the TUI, as it happened: no model, no engine needed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE.jsonl", help="a recording written by abtop --record or abtop bench --record")
    p.add_argument("--speed", type=float, default=1.0, help="play X times faster (default 1)")
    p.add_argument("--only", metavar="N,N", help="play these models only, numbered from 1 (a bench of more than 4 models)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tui.app.replay import ReplayApp, ReplayError, load, select
    from tui.cli.options import MAX_PANES
    from tui.terminal.lifeline import no_terminal
    from tui.text.safe import safe

    if not args.speed > 0:
        print(f"abtop: --speed must be above 0 (got {args.speed:g}).", file=sys.stderr)
        return 2
    try:
        header, events = select(*load(args.file), args.only, MAX_PANES, source=args.file)
    except ReplayError as exc:
        print(safe(f"abtop: {exc}"), file=sys.stderr)
        return 2
    problem = no_terminal("run `abtop replay` from a terminal")
    if problem:
        print(problem, file=sys.stderr)
        return 2
    app = ReplayApp(header, events, speed=args.speed, source=args.file)
    app.run()
    return app.return_code or 0
