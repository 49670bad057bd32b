"""The model card as (label, value) rows: ``abtop info`` prints them, the pane's card draws them."""

from __future__ import annotations

from backends.events import ModelInfo
from tui.text.format import human_bytes, human_count


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


def _twin_of(c: ModelInfo) -> str:
    """The copied model's published figures beside this file's count, so they can be checked."""
    t = c.twin
    text = (
        f"{t['title']}: {human_count(t['published_total'])} total, {human_count(t['published_other'])} "
        f"{t['other_label']} published ({t['source']})"
    )
    if t.get("scale", 1) != 1:
        return text + f"; scaled ×{t['scale']:g} (fewer layers, smaller vocabulary): counts are not the model's"
    if c.params is None:
        return text
    held = c.params + t["not_in_gguf"]
    off = (held - t["published_total"]) / t["published_total"] * 100
    if t["not_in_gguf"]:
        return text + (
            f"; this text GGUF holds {human_count(c.params)}, + {human_count(t['not_in_gguf'])} of "
            f"{t.get('not_in_gguf_what') or 'parameters outside it'} = {human_count(held)} ({off:+.1f} %)"
        )
    return text + f"; this GGUF holds {human_count(c.params)} ({off:+.1f} %)"


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
    if c.path is None:  # a server's model: no GGUF header read here, so its layout is not known
        rows.append(("PLE", "unknown (server model)"))
    elif c.ple:
        rows.append(
            (
                "PLE",
                f"{human_count(c.ple['params'])} params · {human_bytes(c.ple['bytes'])} per-layer embeddings, "
                "looked up, not read per token",
            )
        )
    else:
        rows.append(("PLE", "none"))
    if c.path is None:
        rows.append(("MoE", "unknown (server model)"))
    elif c.moe:
        rows.append(("MoE", f"{c.moe['experts']} experts, {c.moe['experts_used']} used per token"))
    else:
        rows.append(("MoE", "none (dense)"))
    rows.append(
        ("bytes/token", "n/a" if c.bytes_per_token is None else f"{human_bytes(c.bytes_per_token)} read per generated token (estimate)")
    )
    if c.synthetic:
        rows.append(
            (
                "synthetic",
                "true: a shape twin (real shapes and quant, random weights): speed and memory are the "
                "real shape's, the text is noise"
                + ("; MoE routing on random weights is near-uniform, real routing is skewed" if c.moe else ""),
            )
        )
    if c.twin:
        rows.append(("twin of", _twin_of(c)))
    if c.path:
        rows.append(("file", c.path))
    if c.gguf_name and c.gguf_name != c.name:
        rows.append(("gguf name", c.gguf_name))
    return rows
