"""``abtop votes LOG...``: win rates (Wilson, ties as half) and, for more than two models,
Bradley–Terry ratings from the battle logs that ``abtop --blind`` writes."""

from __future__ import annotations

import json
import sys

from backends import read_battles, vote_summary
from backends.userfiles import loads, read_user_text
from tui.files.export import write_atomic, write_failure
from tui.text import verdict
from tui.text.safe import escape_controls
from tui.text.votes_text import markdown

EPILOG = """\
examples:
  abtop votes abtop-results/battles.jsonl
  abtop votes box1/battles.jsonl box2/battles.jsonl --json votes.json --md votes.md
  abtop votes abtop-results/battles.jsonl --bench out.json --score score.json   the whole verdict
  abtop votes abtop-results/battles.jsonl --eval eval.json   accuracy per task beside the win rate
"""


def register(subparsers) -> None:
    import argparse

    p = subparsers.add_parser(
        "votes",
        help="win rates and ratings from blind-vote battle logs",
        description="Win rate per model with a 95 % Wilson interval (ties count half); with more than two "
        "models across the logs, Bradley–Terry ratings as LMArena computes them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("logs", nargs="+", metavar="LOG", help="battle logs (JSON Lines, one vote a line)")
    p.add_argument("--bench", metavar="JSON", help="a bench --json file: its speed and memory join the verdict")
    p.add_argument("--score", metavar="JSON", help="an abtop score --json file: its bits per byte join the verdict")
    p.add_argument("--eval", metavar="JSON", help="an abtop eval --json file: its accuracy per task joins the verdict")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON (schema abtop.votes/1)")
    p.add_argument("--md", metavar="PATH", help="write the Markdown to a file too")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        battles = read_battles(args.logs)
    except ValueError as exc:
        print(f"abtop: {exc}", file=sys.stderr)
        return 2
    if not battles:
        print(f"abtop: no votes in {', '.join(args.logs)}; vote with abtop --blind (keys 1, 2, =, x).", file=sys.stderr)
        return 2
    summary = vote_summary(battles)
    docs = {}
    for option, path, schema in (("--bench", args.bench, "abtop.bench/1"), ("--score", args.score, "abtop.score/1"),
                                 ("--eval", args.eval, "abtop.eval/1")):  # fmt: skip
        if not path:
            continue
        try:
            text = read_user_text(path, f"{option} {path}", kind=f"{schema} file")
        except ValueError as exc:
            print(f"abtop: {exc}", file=sys.stderr)
            return 2
        try:
            doc = loads(text)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or doc.get("schema") != schema:
            found = doc.get("schema") if isinstance(doc, dict) else None
            what = f"an {escape_controls(found[:60])} file" if isinstance(found, str) else "not JSON" if doc is None else "JSON without a schema"
            print(f"abtop: {option} {path}: not an {schema} file ({what}).", file=sys.stderr)
            return 2
        docs[option] = doc
    bench, score = docs.get("--bench"), docs.get("--score")
    text = markdown(summary)
    evals = docs.get("--eval")
    cols = verdict.columns(bench=bench, score=score, votes=summary, evals=evals)
    if len(cols) > 1:
        host = (bench or score or evals or {}).get("host")
        text += "\n" + verdict.markdown(cols, host, ((bench or {}).get("params") or {}).get("mode"))
    sys.stdout.write(text)
    failed = False
    if args.json:
        failed |= not _write("--json", args.json, json.dumps({"schema": "abtop.votes/1", **summary}, indent=2) + "\n")
    if args.md:
        failed |= not _write("--md", args.md, escape_controls(text))
    return 1 if failed else 0


def _write(option: str, path: str, text: str) -> bool:
    """Write an export whole or not at all; a failure is one sentence and the others still go."""
    try:
        write_atomic(path, text)
    except OSError as exc:
        print(f"abtop: {write_failure(path, exc, option)}", file=sys.stderr)
        return False
    print(f"abtop: wrote {path}", file=sys.stderr)
    return True
