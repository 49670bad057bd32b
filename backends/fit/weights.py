"""Which weight bytes must stay in RAM and which may stay on disk, tensor by tensor, from the header.

A tensor is used in one of three ways (llama.cpp's graphs):

- **every token**: a matrix multiplied by every token's activations (attention, FFN, the output,
  routers, norms). It must stay resident: as file pages, or, when llama.cpp repacked it, as its
  anonymous ``CPU_REPACK`` copy (its file pages are then never read again);
- **looked up**: the token embedding (when the output has its own matrix) and a per-layer
  embedding (PLE) table: each token reads one row, so the rest may stay on disk;
- **experts** of an MoE: each token reads ``experts_used`` of ``experts``; with uniform routing a
  fraction ``1 - (1 - used/experts)^n`` of them is back after ``n`` tokens.

A tied token embedding is both: looked up, and read whole as the output matrix (llama.cpp loads
it twice; the output copy is the one repacked). Repacked, its file pages are only looked up;
not repacked, the output reads them all every token.

Repacking (ggml-cpu's ``CPU_REPACK`` buffer type, ``ggml_repack_get_optimal_repack_type``): on a
CPU with AVX2 (x86) or NEON (Arm), a matrix of type Q4_0, Q4_K or IQ4_NL whose ``ne1`` is a
multiple of 8, used as a matrix-multiplication weight, is copied into an interleaved layout of the
same size. ``--check`` compares this rule with the tensors the engine says it repacked.
"""

from __future__ import annotations

import mmap
import re
from dataclasses import dataclass, field
from functools import cache

from gguf import GGMLQuantizationType as Q

from backends.card.gguf import PLE_TENSOR, GGUFHeader, TensorInfo

PAGE = mmap.PAGESIZE
REPACK_TYPES = frozenset({Q.Q4_0, Q.Q4_K, Q.IQ4_NL})
_EXPERT = re.compile(r"_exps\.|\.ffn_(gate|up|down)\.\d+\.weight$")
LAZY_AUTO_BYTES = 4 << 30
"""llama.cpp's ``lazy_mode`` auto: a table marked for on-demand reading is read lazily only above this."""


@cache
def cpu_repacks() -> bool:
    """Whether this CPU has the SIMD llama.cpp's repacked kernels need (AVX2 or NEON)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = f.read()
    except OSError:
        return False
    return bool(re.search(r"\b(avx2|asimd)\b", flags))


def use_of(name: str, tied: bool) -> str:
    """``every``, ``lookup``, ``tied`` (looked up and read whole as the output) or ``experts``."""
    if name == "token_embd.weight":
        return "tied" if tied else "lookup"
    if name == PLE_TENSOR:
        return "lookup"
    if _EXPERT.search(name):
        return "experts"
    return "every"


def repackable(t: TensorInfo) -> bool:
    return len(t.shape) >= 2 and t.shape[1] % 8 == 0 and t.type in REPACK_TYPES


def pages_of(h: GGUFHeader, t: TensorInfo) -> range:
    """The file pages a tensor's bytes lie on."""
    start = h.data_offset + t.offset
    return range(start // PAGE, -(-(start + t.n_bytes) // PAGE))


def union_bytes(spans: list[range]) -> int:
    """Bytes of the pages covered by ``spans`` (small neighbours share pages: counted once)."""
    total, end = 0, -1
    for r in sorted(spans, key=lambda r: r.start):
        lo = max(r.start, end)
        if r.stop > lo:
            total += r.stop - lo
        end = max(end, r.stop)
    return total * PAGE


@dataclass
class Lookup:
    name: str
    bytes: int
    row_bytes: int
    """One token's row (``ne0`` elements in the tensor's type)."""
    prefaulted: bool
    """Read in whole at load (llama.cpp pre-faults the mapping) unless lazily read."""


@dataclass
class Weights:
    file_bytes: int
    every_file: int = 0
    """Bytes (whole pages) of tensors read every token from their file pages."""
    repacked: int = 0
    """Bytes of the anonymous ``CPU_REPACK`` copies (every-token matrices, experts, a tied output)."""
    repacked_names: set[str] = field(default_factory=set)
    lookups: list[Lookup] = field(default_factory=list)
    experts_bytes: int = 0
    experts_repacked: bool = False
    experts: int = 0
    experts_used: int = 0
    device_bytes: int = 0
    """What llama.cpp offloads with every layer on a GPU: all but the looked-up tables (a tied
    token embedding's output copy goes to the device)."""

    @property
    def experts_active(self) -> int:
        return self.experts_bytes * self.experts_used // self.experts if self.experts else 0

    @property
    def experts_file(self) -> int:
        """Expert bytes that are file pages (may page out); 0 when repacked into anonymous memory."""
        return 0 if self.experts_repacked else self.experts_bytes


def weights(h: GGUFHeader, *, repack: bool | None = None, lazy_ple: str | None = None) -> Weights:
    """The header's tensors sorted by how they must be held. ``repack`` None: llama.cpp's default
    (on, where the CPU has the kernels); ``lazy_ple`` None: its default (``auto``)."""
    arch = h.kv.get("general.architecture")
    names = {t.name for t in h.tensors}
    tied = "output.weight" not in names
    do_repack = (repack is None or repack) and cpu_repacks()
    w = Weights(h.file_bytes)
    every: list[range] = []
    n_exp = h.kv.get(f"{arch}.expert_count")
    n_used = h.kv.get(f"{arch}.expert_used_count")
    if isinstance(n_exp, int) and n_exp > 0:
        w.experts, w.experts_used = n_exp, min(n_used if isinstance(n_used, int) and n_used > 0 else n_exp, n_exp)
    for t in h.tensors:
        use = use_of(t.name, tied)
        if use == "experts" and not w.experts:
            use = "every"  # an expert-named tensor in a model that declares no experts
        packs = do_repack and repackable(t) and use != "lookup"
        if packs:
            w.repacked += t.n_bytes
            w.repacked_names.add(t.name)
        if use == "tied" and not packs:  # the output reads the file's pages whole: no row stays out
            every.append(pages_of(h, t))
            w.device_bytes += t.n_bytes
        elif use in ("lookup", "tied"):
            lazy = t.name == PLE_TENSOR and (lazy_ple == "on" or (lazy_ple in (None, "auto") and t.n_bytes > LAZY_AUTO_BYTES))
            row = t.n_bytes // max(1, t.n_elements // t.shape[0]) if t.shape else t.n_bytes
            w.lookups.append(Lookup(t.name, t.n_bytes, row, prefaulted=not lazy))
            if use == "tied":  # its repacked output copy goes to the device with the layers
                w.device_bytes += t.n_bytes
        elif use == "experts":
            w.experts_bytes += t.n_bytes
            w.experts_repacked = w.experts_repacked or packs
            w.device_bytes += t.n_bytes
        else:
            w.device_bytes += t.n_bytes
            if not packs:
                every.append(pages_of(h, t))
    w.every_file = union_bytes(every)
    return w


def experts_back(used: int, total: int, share: float) -> int | None:
    """Tokens after which ``share`` of the experts' bytes have been read, routing uniform:
    each layer reads ``used`` of ``total`` per token, so ``1 - (1 - used/total)^n`` are back."""
    import math

    if not total or used >= total:
        return 1 if total else None
    return max(1, math.ceil(math.log(1 - share) / math.log(1 - used / total)))


def lookup_rows_bytes(w: Weights, tokens: int) -> int:
    """File pages a run of ``tokens`` tokens brings back from the looked-up tables: a row per token
    and table, whole pages (a row smaller than a page still costs one)."""
    return sum(tokens * (-(-lk.row_bytes // PAGE) * PAGE) for lk in w.lookups)
