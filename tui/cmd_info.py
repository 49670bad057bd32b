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

from backends.base import BackendError
from backends.catalog import BUNDLED, parse_spec
from backends.events import ModelInfo
from backends.gguf_card import read_card

from .format import human_bytes, human_count


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="show a model's card (parameters, quant, PLE, MoE, bytes/token) from its GGUF header",
        description="Show a model's card from its GGUF header alone, instantly, without loading weights.",
    )
    p.add_argument("spec", metavar="MODEL", help="a bundled alias (smollm2-135m, gemma3-270m) or a path to a .gguf file")
    p.add_argument("--json", action="store_true", help="print the card as JSON (the bench's per-model info)")
    p.set_defaults(func=run)


def card_for(spec: str) -> ModelInfo:
    """The card of a local model spec; ``BackendError`` (one sentence) otherwise."""
    ms = parse_spec(spec)
    if ms.kind != "gguf" or ms.path is None:
        raise BackendError(
            f"{spec}: abtop info reads GGUF files; a server model's card shows in its pane once loaded."
        )
    return read_card(ms.path)


def _count(n: int | None) -> str:
    return "n/a" if n is None else f"{human_count(n)} ({n:,})"


def _shape(c: ModelInfo) -> str:
    """``n_embd 576 · 9 heads (3 KV) · vocab 49,152``: what sizes the KV cache and the logits."""
    bits = []
    if c.n_embd:
        bits.append(f"n_embd {c.n_embd:,}")
    if c.n_head:
        bits.append(f"{c.n_head} heads" + (f" ({c.n_head_kv} KV)" if c.n_head_kv and c.n_head_kv != c.n_head else ""))
    if c.n_vocab:
        bits.append(f"vocab {c.n_vocab:,}")
    return " · ".join(bits) or "n/a"


def card_lines(c: ModelInfo) -> list[tuple[str, str]]:
    """(label, value) rows of the readable card; the pane's card panel can draw the same rows."""
    params = f"{_count(c.params)} total"
    if c.params_effective is not None:
        params += f" · {human_count(c.params_effective)} effective"
    if c.moe:
        params += f" · active {human_count(c.moe['params_active'])} per token"
    rows = [
        ("arch", c.arch or "n/a"),
        ("params", params),
        ("quant", c.quant or "n/a"),
        ("size", "n/a" if c.file_bytes is None else f"{human_bytes(c.file_bytes)} ({c.file_bytes:,} bytes)"),
        ("layers", "n/a" if c.n_layers is None else str(c.n_layers)),
        ("shape", _shape(c)),
        ("context", "n/a" if c.n_ctx_train is None else f"{c.n_ctx_train:,} tokens (training)"),
        ("template", {True: "yes: chat", False: "none: completion mode", None: "n/a"}[c.chat_template]),
    ]
    if c.ple:
        rows.append(
            (
                "PLE",
                f"{human_count(c.ple['params'])} params · {human_bytes(c.ple['bytes'])} per-layer embeddings, "
                "looked up, not read per token",
            )
        )
    else:
        rows.append(("PLE", "none"))
    if c.moe:
        rows.append(("MoE", f"{c.moe['experts']} experts, {c.moe['experts_used']} used per token"))
    else:
        rows.append(("MoE", "none (dense)"))
    rows.append(
        ("bytes/token", "n/a" if c.bytes_per_token is None else f"{human_bytes(c.bytes_per_token)} read per generated token (estimate)")
    )
    if c.path:
        rows.append(("file", c.path))
    return rows


def run(args) -> int:
    try:
        card = card_for(args.spec)
    except BackendError as exc:
        print(f"abtop: {exc}", file=sys.stderr)
        return 2
    heading = card.name
    if args.spec in BUNDLED:  # named as in the panes and the bench JSON, the GGUF's own name beside
        heading = f"{args.spec} ({card.name})"
        card.name = args.spec
    if args.json:
        print(json.dumps(card.to_dict(), indent=2))
        return 0
    width = max(len(label) for label, _ in card_lines(card))
    print(heading)
    for label, value in card_lines(card):
        print(f"  {label:<{width}}  {value}")
    return 0
