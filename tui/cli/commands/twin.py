"""``abtop twin NAME [--quant Q] [--scale S]``: write a shape twin into the user cache.

A twin is the named model's architecture, tensor names, shapes and quantisation with random
weights, so llama.cpp does the real shape's work (tokens/s and memory are the real model's) while
the text is noise. Use it anywhere a model goes as ``twin:NAME[:QUANT][:SCALE]``; a run builds it
on first use, this command builds it ahead (or again, with ``--force``).
"""

from __future__ import annotations

import sys

from backends import TWIN_PRESETS, TWIN_QUANTS, build_twin, twin_is_current, twin_path
from backends.base import BackendError
from tui.text.format import human_bytes, human_count
from tui.text.progress import written_with_bar


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "twin",
        help="write a shape twin (a real model's shapes, random weights) into the user cache",
        description="Write a GGUF with a real model's architecture and shapes and synthetic weights; "
        "run it as twin:NAME. Without NAME: list the twins.",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help=f"one of {', '.join(TWIN_PRESETS)}")
    p.add_argument(
        "--quant", default="Q4_K", type=str.upper, help=f"{' | '.join(TWIN_QUANTS)} (default Q4_K)"
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="fewer layers and a smaller vocabulary, same per-layer shapes (0 < S <= 1, default 1)",
    )
    p.add_argument("--force", action="store_true", help="write it again even if it exists")
    p.set_defaults(func=run)


def _list() -> int:
    for name, pr in TWIN_PRESETS.items():
        other = f"{human_count(pr.published_other)} {pr.other_label}"
        print(
            f"{name:<14} {pr.arch:<8} {pr.title}: {human_count(pr.published_total)} total, {other} ({pr.note})"
        )
        print(f"{'':<14} source: {pr.source}")
    return 0


def run(args) -> int:
    if not args.name:
        return _list()
    try:
        path = twin_path(args.name, args.quant, args.scale)
        if path.exists() and not args.force and twin_is_current(path):
            print(
                f"abtop: {path} exists ({human_bytes(path.stat().st_size)}); --force writes it again.",
                file=sys.stderr,
            )
        else:
            path = written_with_bar(lambda bar: build_twin(args.name, args.quant, args.scale, on_progress=bar))
    except BackendError as exc:
        print(f"abtop: {exc}", file=sys.stderr)
        return 2
    print(
        f"twin:{args.name}"
        + ("" if args.quant == "Q4_K" else f":{args.quant}")
        + ("" if args.scale == 1 else f":{args.scale:g}")
    )
    return 0
