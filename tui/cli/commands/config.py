"""``abtop config``: where the config file is, and every default in force with where it comes from."""

from __future__ import annotations

import argparse
import sys

from tui.files import config
from tui.text.safe import safe


def built_in() -> dict:
    """abtop's own defaults, read from the parsers (``tui/cli/options.py``), not written twice."""
    import argparse

    from tui.cli.options import DEFAULT_PROMPT, add_run_options
    from tui.cli.parser import build_parser

    tui = build_parser()
    bench = argparse.ArgumentParser()
    add_run_options(bench, bench=True)
    out = {"prompt": DEFAULT_PROMPT}
    for key in ("max_tokens", "ctx", "mode", "interval", "results"):
        a, b = tui.get_default(key), bench.get_default(key)
        out[key] = a if b in (None, a) else f"{a} (TUI), {b} (bench)"
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "config",
        help="show the config file's path, its defaults and pairs",
        description="Show where abtop's config file is ($XDG_CONFIG_HOME/abtop/config.toml) and what is in force.",
        epilog=config.__doc__.split("```toml")[1].split("```")[0].join(["example:\n", ""]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=run)


def run(_args) -> int:
    try:
        cfg = config.load()
    except config.ConfigError as exc:
        print(safe(str(exc)), file=sys.stderr)
        return 2
    state = "" if cfg.exists else " (not there: abtop's own defaults are in force; `abtop config --help` shows an example)"
    print(safe(f"config file: {cfg.path}{state}"))
    print("defaults (a flag on the command line wins):")
    own = built_in()
    width = max(len(k) for k in own)
    for key, builtin in own.items():
        value, source = (cfg.defaults[key], "config") if key in cfg.defaults else (builtin, "built-in")
        shown = repr(value) if key == "prompt" else value
        print(safe(f"  {key:<{width}}  {shown}  ({source})"))
    if cfg.pairs:
        print("pairs (abtop --pair NAME, abtop bench --pair NAME):")
        w = max(len(n) for n in cfg.pairs)
        for name, models in cfg.pairs.items():
            shown = f"a = {models[0]}  b = {models[1]}" if len(models) == 2 else f"models = {', '.join(models)}"
            print(safe(f"  {name:<{w}}  {shown}"))
    else:
        print("pairs: none ([pairs.NAME] with a = \"…\" and b = \"…\")")
    return 0
