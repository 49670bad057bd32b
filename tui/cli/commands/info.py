"""``abtop info SPEC [--json]``: a model's card from its GGUF header, without loading the weights.

Dense, per-layer-embedding (PLE) and mixture-of-experts models differ in what a token costs: a PLE
table is only looked up, MoE experts are all resident but few are read. The card shows total
beside effective / active parameters and the bytes read per generated token, so a person sees
that difference before running anything. ``--json`` prints the same ``info`` object the bench
JSON carries per model.
"""

from __future__ import annotations

import json
import sys

from backends import read_card
from backends.base import BackendError
from backends.events import ModelInfo
from backends.specs import BUNDLED, TWIN_PREFIX, parse_spec, split_settings, twin_card
from tui.text.card_text import card_lines
from tui.text.safe import safe


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="show a model's card (parameters, quant, PLE, MoE, bytes/token) from its GGUF header",
        description="Show a model's card from its GGUF header alone, instantly, without loading weights.",
    )
    p.add_argument("spec", metavar="MODEL", help="a bundled alias (smollm2-135m, gemma3-270m), a path to a .gguf file or hf:OWNER/REPO[:QUANT]")
    p.add_argument("--json", action="store_true", help="print the card as JSON (the bench's per-model info)")
    p.set_defaults(func=run)


def card_for(spec: str) -> ModelInfo:
    """The card of a local model spec; ``BackendError`` (one sentence) otherwise. Its settings
    (``SPEC,key=value``) are checked; the card is the file's."""
    spec = split_settings(spec)[0]
    if spec.startswith(TWIN_PREFIX):  # the card of the file it will be: no need to write GBs first
        return twin_card(spec)
    ms = parse_spec(spec)
    if ms.kind == "hf":  # downloaded first (cached: at once), with its progress on stderr
        from backends import fetch_hf
        from tui.text.progress import StderrProgress

        with StderrProgress() as out:
            path = fetch_hf(spec, out)
        return read_card(path)
    if ms.kind != "gguf" or ms.path is None:
        raise BackendError(
            f"{spec}: abtop info reads GGUF files; a server model's card shows in its pane once loaded."
        )
    return read_card(ms.path)


def run(args) -> int:
    try:
        card = card_for(args.spec)
    except BackendError as exc:
        print(safe(f"abtop: {exc}"), file=sys.stderr)
        return 2
    heading = card.name
    if args.spec in BUNDLED:  # named as in the panes and the bench JSON, the GGUF's own name beside
        heading = f"{args.spec} ({card.name})"
        card.name = args.spec
    if args.json:
        print(json.dumps(card.to_dict(), indent=2))
        return 0
    width = max(len(label) for label, _ in card_lines(card))
    print(safe(heading))  # a GGUF header's strings are the file author's: never raw to the terminal
    for label, value in card_lines(card):
        print(f"  {label:<{width}}  {safe(value)}")
    return 0
