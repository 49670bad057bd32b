"""KV cache bytes at a context, as llama.cpp sizes them, from a GGUF header alone.

llama.cpp (``llama_context``, ``llama_kv_cache``, ``llama_kv_cache_iswa``; the version vendored in
llama-cpp-python 0.3.36):

- the context is padded up to a multiple of 256 cells;
- each layer that owns a cache holds, per cell, a K row of ``head_dim_k × n_head_kv(layer)`` and a
  V row of ``head_dim_v × n_head_kv(layer)`` elements, in the cache's types (f16 by default; a
  quantised type counts its blocks, ``ggml_row_size``);
- a sliding-window layer (``is_swa``) lives in a second cache of ``window + n_ubatch`` cells,
  padded to 256 and never more than the context (``swa_full`` gives it every cell instead);
  its head dims may differ (``key_length_swa``);
- layers that reuse an earlier layer's KV own none: Gemma 3n/4's shared-KV layers
  (``n_layer_kv_from_start``), MTP/NextN layers at the end while MTP is off; a layer with
  ``n_head_kv = 0`` (a recurrent layer of a hybrid) owns none either.

What this does not model (recurrent state of SSM/RWKV layers) says so in ``why``; the command then
takes the engine's own planned figure instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from backends.card.gguf import ArrayField, GGUFHeader

PAD_CELLS = 256
N_UBATCH = 512
"""llama.cpp's default n_ubatch (its tools and abtop's worker): the window cache's extra cells."""

SWA_PERIOD = {"gemma2": 2, "gemma3": 6, "gemma3n": 5, "cohere2": 4, "gpt-oss": 2, "exaone4": 4}
"""Architectures whose sliding-window layout llama.cpp hard-codes (``set_swa_pattern(n)``: of every
``n`` layers the first ``n - 1`` slide, the last is global) when the header has no pattern."""
KV_FROM_START = {"gemma3n": 20}
"""Architectures whose shared-KV start llama.cpp hard-codes (later layers reuse earlier KV)."""
RECURRENT_KEYS = ("ssm.conv_kernel", "ssm.state_size", "wkv.head_size", "shortconv.l_cache")


def pad(n: int, to: int = PAD_CELLS) -> int:
    return -(-n // to) * to


def row_bytes(type_name: str, n: int) -> int:
    """``ggml_row_size``: bytes of ``n`` elements of a cache type (``f16``, ``q8_0``, …)."""
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name.upper()]]
    return n // block * size


@dataclass(frozen=True, slots=True)
class KVSize:
    bytes: int | None
    """Every cache's size as allocated; None where not modelled (``why``)."""
    cells: int
    """Cells of the full-attention cache: the context, padded to 256."""
    swa_cells: int | None
    """Cells of the sliding-window cache; None without sliding-window layers."""
    layers: int
    """Layers that own a K/V cache."""
    swa_layers: int
    shared_layers: int
    """Layers that read another layer's K/V and own none."""
    bytes_per_token: int
    """What one more cell of context costs once past the window (the global layers' rows)."""
    swa_bytes: int
    """The sliding-window cache's bytes (fixed past the window)."""
    type_k: str
    type_v: str
    why: str | None = None


def _arch(h: GGUFHeader) -> str:
    a = h.kv.get("general.architecture")
    return a if isinstance(a, str) else ""


def _get(h: GGUFHeader, key: str):
    return h.kv.get(f"{_arch(h)}.{key}")


def per_layer(value, n_layer: int, default: list[int] | None = None) -> list | None:
    """A hyperparameter per layer: an array as given, a scalar repeated, else ``default``."""
    if isinstance(value, ArrayField):
        if value.values is None or len(value.values) < n_layer:
            return default
        return list(value.values[:n_layer])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value] * n_layer
    return default


def swa_layers(h: GGUFHeader, n_layer: int) -> list[bool]:
    """Which layers use the sliding window (llama.cpp's ``is_swa``)."""
    n_swa = _get(h, "attention.sliding_window")
    if not isinstance(n_swa, int) or n_swa <= 0:
        return [False] * n_layer
    pattern = _get(h, "attention.sliding_window_pattern")
    if isinstance(pattern, ArrayField) and pattern.values is not None and len(pattern.values) >= n_layer:
        return [bool(v) for v in pattern.values[:n_layer]]
    period = pattern if isinstance(pattern, int) and not isinstance(pattern, bool) else SWA_PERIOD.get(_arch(h))
    if period is None:
        return [False] * n_layer
    return [period == 0 or il % period < period - 1 for il in range(n_layer)]


def kv_size(
    h: GGUFHeader,
    n_ctx: int,
    *,
    type_k: str = "f16",
    type_v: str = "f16",
    n_ubatch: int = N_UBATCH,
    swa_full: bool = False,
) -> KVSize:
    arch = _arch(h)
    n_layer = _get(h, "block_count")
    cells = pad(n_ctx)
    if not isinstance(n_layer, int) or n_layer <= 0:
        return KVSize(None, cells, None, 0, 0, 0, 0, 0, type_k, type_v, "the header has no block count")
    if any(f"{arch}.{k}" in h.kv for k in RECURRENT_KEYS):
        why = "its recurrent (SSM/RWKV) state is not modelled from the header"
        return KVSize(None, cells, None, 0, 0, 0, 0, 0, type_k, type_v, why)
    n_embd = _get(h, "embedding_length")
    n_head = per_layer(_get(h, "attention.head_count"), n_layer)
    if not isinstance(n_embd, int) or not n_head or not n_head[0]:
        return KVSize(None, cells, None, 0, 0, 0, 0, 0, type_k, type_v, "the header has no head count")
    n_head_kv = per_layer(_get(h, "attention.head_count_kv"), n_layer, n_head)
    hk = _get(h, "attention.key_length") or n_embd // n_head[0]
    hv = _get(h, "attention.value_length") or hk
    hk_swa = _get(h, "attention.key_length_swa") or hk
    hv_swa = _get(h, "attention.value_length_swa") or hv
    swa = swa_layers(h, n_layer)
    n_own = n_layer
    shared = _get(h, "attention.shared_kv_layers")
    if isinstance(shared, int) and 0 < shared < n_layer:
        n_own = n_layer - shared
    elif arch in KV_FROM_START and n_layer > KV_FROM_START[arch]:
        n_own = KV_FROM_START[arch]
    nextn = _get(h, "nextn_predict_layers")
    if isinstance(nextn, int) and 0 < nextn < n_own:
        n_own -= nextn
    n_swa = _get(h, "attention.sliding_window") or 0
    swa_cells = cells if swa_full else min(cells, pad(n_swa + n_ubatch))
    full_row = swa_row = 0
    layers = n_swa_layers = 0
    for il in range(n_own):
        if not n_head_kv[il]:
            continue
        layers += 1
        k, v = (hk_swa, hv_swa) if swa[il] else (hk, hv)
        row = row_bytes(type_k, k * n_head_kv[il]) + row_bytes(type_v, v * n_head_kv[il])
        if swa[il]:
            swa_row += row
            n_swa_layers += 1
        else:
            full_row += row
    swa_bytes = swa_row * swa_cells if n_swa_layers else 0
    return KVSize(
        full_row * cells + swa_bytes,
        cells,
        swa_cells if n_swa_layers else None,
        layers,
        n_swa_layers,
        n_layer - n_own,
        full_row,
        swa_bytes,
        type_k,
        type_v,
    )


def plain_kv_bytes(h: GGUFHeader, n_ctx: int) -> int | None:
    """The formula header-only estimators use: 2 × layers × context × KV heads × head dim × 2 bytes
    (f16), every layer, no sliding window, no shared KV."""
    n_layer = _get(h, "block_count")
    n_embd = _get(h, "embedding_length")
    n_head = per_layer(_get(h, "attention.head_count"), n_layer or 0)
    if not isinstance(n_layer, int) or not isinstance(n_embd, int) or not n_head or not n_head[0]:
        return None
    n_head_kv = per_layer(_get(h, "attention.head_count_kv"), n_layer, n_head)
    hk = _get(h, "attention.key_length") or n_embd // n_head[0]
    return 2 * n_layer * n_ctx * max(n_head_kv) * hk * 2
