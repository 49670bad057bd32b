"""Which bytes of the weights a run needs, per tensor group, measured in the worker (Linux).

llama.cpp maps the GGUF and pre-faults it, so "resident" is the whole file. To see what a run
*needs*: evict the file's pages from this process's own mapping (``madvise(MADV_PAGEOUT)``, with
``MADV_RANDOM`` so a later fault reads its own page, not a read-around window), check with
``mincore`` that they are gone (dirty, shared or unwritable-file pages are not dropped: never
assumed), generate, then ``mincore`` each tensor's byte range (offsets from the GGUF header).
No root needed: ``MADV_PAGEOUT`` of file pages works on a file this user owns or may write.

Groups: ``token_embd``, ``ple`` (the per-layer embedding table, looked up by token), ``experts``
(``*_exps``), ``output``, ``attention`` (``attn_*``), ``ffn`` (dense ``ffn_gate/up/down``, shared
experts), ``other`` (norms, routers, PLE projections). Tensors llama.cpp copied into a
``CPU_REPACK`` buffer at load are read from that anonymous copy, not from the file: their group is
marked ``repacked`` and their file pages stay untouched by design.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import re
import sys
from dataclasses import dataclass

import numpy as np

from backends.card.gguf import PLE_TENSOR, read_header

GROUPS = ("token_embd", "ple", "experts", "output", "attention", "ffn", "other")
MADV_RANDOM, MADV_NORMAL, MADV_WILLNEED, MADV_DONTNEED, MADV_PAGEOUT = 1, 0, 3, 4, 21
EVICT_LEFT_MAX = 0.02
"""Eviction counts as done when at most this share of the file's pages stayed resident."""
PAGE = mmap.PAGESIZE
_EXPERT = re.compile(r"_exps\.|\.ffn_(gate|up|down)\.\d+\.weight$")


def group_of(name: str) -> str:
    if name == "token_embd.weight":
        return "token_embd"
    if name == PLE_TENSOR:
        return "ple"
    if _EXPERT.search(name):
        return "experts"
    if name.startswith("output.") and name != "output_norm.weight":
        return "output"
    part = name.split(".")[2] if name.startswith("blk.") and name.count(".") >= 2 else ""
    if part.startswith("attn_") and not part.endswith("norm"):
        return "attention"
    if part in ("ffn_gate", "ffn_up", "ffn_down") or part.endswith("_shexp"):
        return "ffn"
    return "other"


def curve_points(max_tokens: int) -> list[int]:
    """Token counts after which the touched bytes are read: 1, 8, 32, then ×4, and the last."""
    pts, k = [1, 8], 32
    while k < max_tokens:
        pts.append(k)
        k *= 4
    return sorted({p for p in pts if p < max_tokens} | {max_tokens})


@dataclass(frozen=True, slots=True)
class _Mapping:
    start: int
    end: int
    offset: int


def file_mappings(path: str) -> list[_Mapping]:
    """This process's mappings of ``path`` (``/proc/self/maps``)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    out = []
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) < 6 or parts[5].rstrip("\n") != real:
                continue
            dev_major, dev_minor = (int(x, 16) for x in parts[3].split(":"))
            if int(parts[4]) != st.st_ino or os.makedev(dev_major, dev_minor) != st.st_dev:
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append(_Mapping(lo, hi, int(parts[2], 16)))
    return out


class Probe:
    """One model file's mapping in this process: evict it, then read back what came back."""

    def __init__(self, path: str, repacked: set[str], lazy: set[str] | None = None) -> None:
        self.path, self.repacked, self.lazy = path, repacked, lazy or set()
        self.header = read_header(path)
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        maps = self.maps = file_mappings(path)
        self.base: int | None = None  # address of file offset 0
        if maps:
            m = min(maps, key=lambda m: m.offset)
            self.base = m.start - m.offset
            self.lo, self.hi = min(m.start for m in maps), max(m.end for m in maps)
        d0 = self.header.data_offset
        self.ranges = [(t.name, d0 + t.offset, t.n_bytes) for t in self.header.tensors]

    def unavailable(self) -> str | None:
        """Why this probe cannot run here, or None."""
        if not sys.platform.startswith("linux"):
            return "the working-set probe needs Linux (madvise MADV_PAGEOUT, mincore)."
        if self.base is None:
            return (
                "the model file is not memory-mapped by llama.cpp (mmap off), so its pages cannot be probed."
            )
        return None

    def _advise(self, lo: int, hi: int, advice: int) -> int:
        """``madvise`` over ``[lo, hi)`` where the file is mapped: llama.cpp unmaps the fragments
        it copied elsewhere (repacked tensors), and a hole would fail the whole call (ENOMEM)."""
        err = 0
        for m in self.maps:
            a, b = max(lo, m.start), min(hi, m.end)
            a -= a % PAGE
            if b > a and self.libc.madvise(a, b - a, advice) != 0:
                err = err or ctypes.get_errno()
        return err

    def resident(self) -> np.ndarray:
        """One bool per page from the first mapped byte to the last (``mincore``); holes are False."""
        n = (self.hi - self.lo + PAGE - 1) // PAGE
        vec = np.zeros(n, dtype=np.uint8)
        for m in self.maps:
            part = vec[(m.start - self.lo) // PAGE : (m.end - self.lo + PAGE - 1) // PAGE]
            if self.libc.mincore(m.start, m.end - m.start, part.ctypes.data) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
        return (vec & 1).astype(bool)

    def mapped(self) -> np.ndarray:
        """One bool per page of the span: inside a mapping of the file."""
        out = np.zeros((self.hi - self.lo + PAGE - 1) // PAGE, dtype=bool)
        for m in self.maps:
            out[(m.start - self.lo) // PAGE : (m.end - self.lo + PAGE - 1) // PAGE] = True
        return out

    def evict(self) -> str | None:
        """Drop the file's pages; None when done (checked with mincore), else the reason."""
        if why := self.unavailable():
            return why
        try:  # a file written moments ago has dirty pages, which cannot be dropped until written back
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass
        self._advise(self.lo, self.hi, MADV_RANDOM)
        err = self._advise(self.lo, self.hi, MADV_PAGEOUT)
        if err == errno.EINVAL:
            return "this kernel does not offer madvise(MADV_PAGEOUT) (Linux 5.4 or newer does)."
        if err:
            self.restore()
            return (
                f"could not evict the model file's pages: madvise(MADV_PAGEOUT) failed ({os.strerror(err)})."
            )
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        except OSError:
            pass
        mapped = self.mapped()
        left = float(self.resident()[mapped].mean()) if mapped.any() else 0.0
        if left > EVICT_LEFT_MAX:
            self.restore()
            return (
                f"could not evict the model file's pages: {left:.0%} stayed in memory (pages still dirty "
                "after a write, mapped by another process, or a file this user may not write)."
            )
        return None

    def release(self) -> None:
        """Unmap this process's pages of the file (``MADV_DONTNEED``: the mapping stays, the next
        touch faults the page back from the file): ``MADV_PAGEOUT`` leaves a page that another
        process maps, so a process probing the same file needs the others' mappings released
        (``restore`` after)."""
        if self.base is not None:
            self._advise(self.lo, self.hi, MADV_RANDOM)
            self._advise(self.lo, self.hi, MADV_DONTNEED)

    def touched_total(self, res: np.ndarray | None = None) -> int:
        res = self.resident() if res is None else res
        return int(res.sum()) * PAGE

    def _tensor_touched(self, res: np.ndarray, off: int, n: int) -> int:
        """Bytes of ``[off, off+n)`` on resident pages."""
        assert self.base is not None
        a, b = self.base + off - self.lo, self.base + off + n - self.lo
        p0, p1 = a // PAGE, (b - 1) // PAGE
        pages = res[p0 : p1 + 1]
        if not pages.any():
            return 0
        total = int(pages.sum()) * PAGE
        if pages[0]:
            total -= a - p0 * PAGE
        if pages[-1]:
            total -= (p1 + 1) * PAGE - b
        return max(0, min(n, total))

    def groups(self) -> dict[str, dict]:
        res = self.resident()
        out: dict[str, dict] = {}
        for name, off, n in self.ranges:
            g = out.setdefault(group_of(name), {"bytes": 0, "touched_bytes": 0, "repacked": False})
            g["bytes"] += n
            g["touched_bytes"] += self._tensor_touched(res, off, n)
            g["repacked"] = g["repacked"] or name in self.repacked
        return {k: out[k] for k in GROUPS if k in out}

    def restore(self) -> None:
        """Undo the probe's advice and read the file back in, as llama.cpp's load does (lazily read
        tensors stay on demand), so the runs after a probe are not cold."""
        if self.base is None:
            return
        self._advise(self.lo, self.hi, MADV_NORMAL)
        for name, off, n in self.ranges:
            lo, hi = self.base + off, self.base + off + n
            self._advise(lo, hi, MADV_RANDOM if name in self.lazy else MADV_WILLNEED)


def note(groups: dict[str, dict], offloaded: int | None = None) -> str:
    parts = ["file pages back in memory after generating, from an evicted start"]
    if offloaded:
        parts.append("weights offloaded to a GPU are read from its memory, not from these pages")
    if any(g["repacked"] for g in groups.values()):
        parts.append(
            "repacked groups are read from llama.cpp's anonymous CPU_REPACK copy (counted in anon), "
            "so their file pages are not needed after load"
        )
    return "; ".join(parts) + "."
