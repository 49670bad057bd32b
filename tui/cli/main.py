"""The ``abtop`` command line: the TUI by default, and subcommands for headless work.

Each subcommand lives in its own module ``tui/cli/commands/<name>.py`` exposing
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from tui.cli.parser import COMMANDS, CONFIGURED, build_parser, configured, with_defaults


def _command_parser(name: str, defaults: dict | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="abtop", formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    importlib.import_module(f"tui.cli.commands.{name}").register(sub)
    if defaults:
        sub.choices[name].set_defaults(**defaults)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # A dropped SSH link sends SIGHUP; SIGTERM from a supervisor: both end the process through the
    # normal exit path, so every worker process is closed on the way out.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    if argv and argv[0] == "serve":  # its own options, then abtop's usual arguments passed on as they are
        return importlib.import_module("tui.cli.commands.serve").main(argv[1:])
    if argv and argv[0] in COMMANDS:
        name = argv[0]
        if name in CONFIGURED:
            args = configured(argv, lambda cfg: _command_parser(name, cfg.argparse_defaults(bench=True)))
            if isinstance(args, int):
                return args
        else:
            args = _command_parser(name).parse_args(argv)
        try:
            return args.func(args)
        except KeyboardInterrupt:
            print("abtop: interrupted.", file=sys.stderr)
            return 130
        except BrokenPipeError:  # `abtop info X | head`: the reader left, which is no error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 141
    args = configured(argv, lambda cfg: with_defaults(build_parser(), cfg.argparse_defaults(bench=False)))
    if isinstance(args, int):
        return args
    from tui.app.app import run_app

    return run_app(args)


if __name__ == "__main__":
    sys.exit(main())
