"""Linux ``/proc`` readers for one process's memory: what the kernel charges cheaply, and what not.

Measured on a worker holding gemma3-270m (280 mappings, 370 MB resident), per read:
``status`` 30 µs; ``maps`` 0.6 ms; ``pagemap`` over the 250 MB weights mapping 2.8 ms;
``smaps_rollup`` 7.8 ms; ``smaps`` 13 ms (+2 ms to parse). The kernel walks every page table for
the smaps files, so resident weights come from ``pagemap`` over the weights file's own address
ranges (the same figure as the mapping's ``Rss`` in smaps), and USS from ``smaps_rollup``, rarely.
"""

from __future__ import annotations

import mmap
import os

PAGE = mmap.PAGESIZE
PRESENT = 1 << 63  # pagemap entry bit: page present in RAM


def read_status(pid: int) -> dict[str, int | str]:
    """``VmRSS``, ``RssAnon`` and ``RssFile`` in bytes and the ``State`` letter, from one read of
    status (the kernel keeps these as counters: no page table is walked)."""
    out: dict[str, int | str] = {}
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f.read().split(b"\n"):
            if line.startswith((b"VmRSS:", b"RssAnon:", b"RssFile:")):
                key, value = line.split(b":", 1)
                out[key.decode()] = int(value.split()[0]) * 1024
            elif line.startswith(b"State:"):
                out["State"] = line.split()[1].decode()
    return out


class FileId:
    """A file as the kernel names it in ``maps``: real path, and ``dev``/``inode`` in maps' format
    (so a symlinked, bind-mounted or replaced GGUF is still recognised)."""

    def __init__(self, path: str) -> None:
        self.path = os.fsencode(os.path.realpath(path))
        try:
            st = os.stat(self.path)
            self.dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}".encode()
            self.ino = str(st.st_ino).encode()
        except OSError:
            self.dev = self.ino = b"?"

    def matches(self, fields: list[bytes]) -> bool:
        """``fields``: a maps/smaps header line split in at most 6 (range perms offset dev inode path)."""
        name = fields[5].removesuffix(b" (deleted)") if len(fields) > 5 else b""
        return name == self.path or (len(fields) > 4 and fields[3] == self.dev and fields[4] == self.ino)


def file_ranges(pid: int, file: FileId) -> list[tuple[int, int]]:
    """Address ranges where ``pid`` maps ``file``."""
    out = []
    with open(f"/proc/{pid}/maps", "rb") as f:
        for line in f.read().split(b"\n"):
            fields = line.split(None, 5)
            if len(fields) > 4 and file.matches(fields):
                start, end = fields[0].split(b"-")
                out.append((int(start, 16), int(end, 16)))
    return out


def resident_in(pid: int, ranges: list[tuple[int, int]]) -> int:
    """Bytes of ``ranges`` present in RAM, from ``/proc/PID/pagemap`` (8 bytes per page)."""
    import numpy as np

    total = 0
    with open(f"/proc/{pid}/pagemap", "rb", buffering=0) as f:
        for start, end in ranges:
            f.seek(start // PAGE * 8)
            entries = np.frombuffer(f.read((end - start) // PAGE * 8), dtype=np.uint64)
            total += int(np.count_nonzero(entries & np.uint64(PRESENT))) * PAGE
    return total


def read_smaps(pid: int, file: FileId | None) -> tuple[int | None, int]:
    """(resident bytes of ``file``'s mappings, USS) from the full ``smaps``: the slow fallback."""
    with open(f"/proc/{pid}/smaps", "rb") as f:
        data = f.read()
    hexdigits = b"0123456789abcdef"
    resident, uss, inside = 0, 0, False
    for line in data.split(b"\n"):
        if not line:
            continue
        if line[0] in hexdigits:  # a mapping's header line
            inside = file is not None and file.matches(line.split(None, 5))
        elif line.startswith(b"Rss:"):
            if inside:
                resident += int(line.split()[1]) * 1024
        elif line.startswith((b"Private_Clean:", b"Private_Dirty:")):
            uss += int(line.split()[1]) * 1024
    return (resident if file is not None else None), uss


def read_uss(pid: int) -> int:
    """Unique set size: pages mapped by this process alone (``smaps_rollup``, else ``smaps``)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            data = f.read()
    except FileNotFoundError:  # kernels before 4.14
        return read_smaps(pid, None)[1]
    return sum(
        int(line.split()[1]) * 1024 for line in data.split(b"\n") if line.startswith((b"Private_Clean:", b"Private_Dirty:"))
    )


class WeightsResident:
    """Resident bytes of one file's mappings in one process, for repeated reads.

    The address ranges are looked up in ``maps`` again every ``maps_every`` reads (and while the
    file is not mapped yet), then ``pagemap`` counts present pages; where ``pagemap`` cannot be
    read, the full ``smaps`` is parsed instead.
    """

    def __init__(self, pid: int, path: str, maps_every: int = 10) -> None:
        self.pid, self.file, self.maps_every = pid, FileId(path), maps_every
        self._ranges: list[tuple[int, int]] = []
        self._reads = 0
        self._pagemap = True

    def read(self) -> int:
        if not self._pagemap:
            return read_smaps(self.pid, self.file)[0] or 0
        if not self._ranges or self._reads % self.maps_every == 0:
            self._ranges = file_ranges(self.pid, self.file)
        self._reads += 1
        try:
            return resident_in(self.pid, self._ranges)
        except PermissionError:
            self._pagemap = False
            return self.read()
