"""llama.cpp's own buffer report, read from its load log: what it *plans* to hold in memory.

At load, llama.cpp logs one line per buffer it allocates (llama-cpp-python 0.3.x, verbose)::

    load_tensors:   CPU_Mapped model buffer size =    92.10 MiB
    load_tensors:   CPU_REPACK model buffer size =    12.66 MiB
    llama_context:        CPU  output buffer size =     0.19 MiB
    llama_kv_cache:        CPU KV buffer size =    11.25 MiB
    sched_reserve:        CPU compute buffer size =    98.25 MiB

A model with a sliding-window cache (gemma3) logs two KV buffers; with offload there is one line per
device (``CUDA0``, ``Metal``, ``CUDA_Host``). ``*_Mapped`` model buffers are the GGUF file mapped in
place (file-backed: they show up as resident weights); everything else is allocated (anonymous
memory on the host, or device memory). Beside the measured figures this says "planned vs measured".

The worker captures its load log with ``Capture`` and sends ``parse_buffers(lines)`` with ``loaded``:
the log also reaches the parent on stderr, but on a separate pipe that may lag the ``loaded`` line.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterable

MiB = 2**20

# "<func>: <buffer type> <kind> buffer size = <x> MiB" — never the "… buffer size is …" of teardown.
_LINE = re.compile(r"^\s*\w+:\s+(?P<buf>[\w.-]+)\s+(?P<kind>model|KV|compute|output) buffer size =\s*(?P<mib>[\d.]+) MiB")
_KIND = {"model": "model", "KV": "kv", "compute": "compute", "output": "output"}


def _on_host(buf: str) -> bool:
    """CPU buffers and pinned host buffers (``CUDA_Host``) live in RAM; the rest on a device."""
    return buf.upper().startswith("CPU") or buf.endswith("_Host")


def parse_buffers(lines: Iterable[str]) -> dict[str, int] | None:
    """Planned bytes ``{model, model_mapped, kv, compute, output, offloaded}``; None without a report.

    ``model_mapped``: the part of ``model`` mapped from the file; ``offloaded``: bytes in device
    (non-host) buffers, 0 on a CPU-only build.
    """
    out = dict.fromkeys(("model", "model_mapped", "kv", "compute", "output", "offloaded"), 0)
    seen = False
    for line in lines:
        m = _LINE.match(line)
        if m is None:
            continue
        seen = True
        n = round(float(m["mib"]) * MiB)
        buf = m["buf"]
        out[_KIND[m["kind"]]] += n
        if m["kind"] == "model" and buf.endswith("_Mapped"):
            out["model_mapped"] += n
        if not _on_host(buf) and not buf.endswith("_Mapped"):
            out["offloaded"] += n
    return out if seen else None


_REPACK = re.compile(r"repack: repack tensor (?P<name>\S+) with ")
_LAZY = re.compile(r"tensor (?P<name>\S+) \(size = \d+ MiB\) lazy read enabled")


def repacked_tensors(lines: Iterable[str]) -> set[str]:
    """Tensors llama.cpp copied into a ``CPU_REPACK`` buffer at load (its debug line per tensor,
    ``repack: repack tensor blk.0.attn_q.weight with q4_K_8x8``, after any progress dots)."""
    return {m["name"] for line in lines if (m := _REPACK.search(line))}


def lazy_tensors(lines: Iterable[str]) -> set[str]:
    """Tensors read on demand (``lazy_mode``): ``tensor per_layer_token_embd.weight (size = 1344 MiB)
    lazy read enabled``."""
    return {m["name"] for line in lines if (m := _LAZY.search(line))}


def planned_anon(buffers: dict | None) -> int | None:
    """Host bytes llama.cpp allocates (not file-backed): repacked weights, KV, compute, output."""
    if not buffers:
        return None
    host = buffers["model"] - buffers["model_mapped"] + buffers["kv"] + buffers["compute"] + buffers["output"]
    return max(0, host - buffers.get("offloaded", 0))


class Capture(io.TextIOBase):
    """Tee for ``sys.stderr`` while a model loads: writes go through and are kept for parsing.

    llama-cpp-python's log callback prints each fragment to ``sys.stderr`` as it comes (looked up
    at every call), so swapping the object is enough; nothing is lost if the C side writes fd 2.
    """

    def __init__(self) -> None:
        self._buf = io.StringIO()
        self._real = sys.stderr

    def write(self, s: str) -> int:
        self._buf.write(s)
        return self._real.write(s)

    def flush(self) -> None:
        self._real.flush()

    def fileno(self) -> int:
        return self._real.fileno()

    @property
    def lines(self) -> list[str]:
        return self._buf.getvalue().splitlines()

    def __enter__(self) -> Capture:
        self._real = sys.stderr
        sys.stderr = self
        return self

    def __exit__(self, *exc) -> None:
        sys.stderr = self._real


_CTX_FIELD = re.compile(r"^llama_context:\s+(?P<key>n_batch|n_ubatch|flash_attn)\s+=\s+(?P<val>\S+)")
_FA_RESOLVED = re.compile(r"Flash Attention (?P<how>enabled|not supported)")
_LOAD_MODE = re.compile(r"\(load_mode = (?P<mode>[\w+]+)\)")
_SWA_CACHE = re.compile(r"llama_kv_cache_iswa: creating\s+SWA KV cache, size = (?P<cells>\d+) cells")
_SWA_FULL = "llama_kv_cache_iswa: using full-size SWA cache"
_KV_CACHE = re.compile(
    r"llama_kv_cache: size =\s*(?P<mib>[\d.]+) MiB \(\s*(?P<cells>\d+) cells,\s*(?P<layers>\d+) layers.*?"
    r"K \((?P<tk>\w+)\):.*?V \((?P<tv>\w+)\)"
)


def parse_context(lines: Iterable[str]) -> dict | None:
    """The context llama.cpp built, from its load log: ``{flash_attn, flash_attn_on, n_batch, n_ubatch,
    type_k, type_v, kv_layers, kv_bytes_per_token, kv_bytes, swa_cells, swa_full, load_mode}``; None
    without a context report.

    ``flash_attn`` is the setting (``auto``/``enabled``/``disabled``, llama.cpp's names) and
    ``flash_attn_on`` what it resolved to (``auto`` is decided by a probe graph: "Flash Attention
    enabled" or "… not supported, set to disabled"). ``kv_layers`` counts the layers that own a K/V
    cache (a sliding-window model logs two caches; layers that share another's KV have none), and
    ``kv_bytes_per_token`` is what one cell of context costs across them (each cache's size over its
    cells, so K and V types, head counts and head dims per layer are all in it; past a sliding
    window only the global layers' part still grows); ``kv_bytes`` is
    every cache's size as allocated. A sliding-window model's window cache has ``swa_cells`` cells:
    the window plus a ubatch, unless ``swa_full`` (every cell of the context, ``Llama()``'s default;
    llama.cpp's own tools keep it off). Both are None for a model without one.
    """
    out: dict = {}
    kv_bytes = kv_total = 0.0
    out["swa_cells"] = out["swa_full"] = None
    for line in lines:
        if m := _CTX_FIELD.match(line):
            out[m["key"]] = int(m["val"]) if m["val"].isdigit() else m["val"]
        elif m := _FA_RESOLVED.search(line):
            out["flash_attn_on"] = m["how"] == "enabled"
        elif m := _SWA_CACHE.search(line):
            out["swa_cells"] = int(m["cells"])
            out["swa_full"] = bool(out["swa_full"])
        elif _SWA_FULL in line:
            out["swa_full"] = True
        elif m := _LOAD_MODE.search(line):
            out["load_mode"] = m["mode"]
        elif m := _KV_CACHE.search(line):
            out["kv_layers"] = out.get("kv_layers", 0) + int(m["layers"])
            out["type_k"], out["type_v"] = m["tk"], m["tv"]
            kv_bytes += float(m["mib"]) * MiB / max(1, int(m["cells"]))
            kv_total += float(m["mib"]) * MiB
    if "flash_attn" not in out:
        return None
    out.setdefault("flash_attn_on", out["flash_attn"] == "enabled")
    out["kv_bytes_per_token"] = round(kv_bytes) if "kv_layers" in out else None
    out["kv_bytes"] = round(kv_total) if "kv_layers" in out else None
    mode = out.get("load_mode")
    out["mmap"] = None if mode is None else "mmap" in mode
    out["mlock"] = None if mode is None else "mlock" in mode
    return out
