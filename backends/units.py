"""Sizes and counts written for people, the same in backends' sentences and on the screen
(``tui/text/format.py`` re-exports them)."""

from __future__ import annotations

_BYTE_UNITS = ("B", "KB", "MB", "GB", "TB")


def _scaled(n: float, unit: str | None = None) -> tuple[float, str]:
    """``n`` bytes in ``unit``, or in the largest unit (powers of 1000) it reaches."""
    for u in _BYTE_UNITS:
        if u == unit or (unit is None and (abs(n) < 1000 or u == "TB")):
            return n, u
        n /= 1000.0
    return n, "TB"


def _figure(x: float, unit: str) -> str:
    return f"{x:.0f}" if unit == "B" or x >= 100 else f"{x:.1f}"


def human_bytes(n: float | None, *, short: bool = False) -> str:
    """``96.6 MB``; ``short``: ``96.6M``, for a one-line label. ``n/a`` when unknown."""
    if n is None:
        return "n/a"
    x, unit = _scaled(n)
    return _figure(x, unit) + (unit.removesuffix("B") if short else f" {unit}")


def human_bytes_of(part: float, whole: float, *, short: bool = False) -> str:
    """``2.1/25.3 GB``: a part and its whole in the whole's unit; ``short``: ``2.1/25G`` (the
    whole to the unit: a narrow line's room)."""
    w, unit = _scaled(whole)
    p, _ = _scaled(part, unit)
    if short:
        return f"{p:.1f}/{w:.0f}{unit.removesuffix('B')}"
    return f"{p:.1f}/{_figure(w, unit)} {unit}"


def human_count(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}" if n / div < 10 else f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
               "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def parse_size(text: str) -> int:
    """``4G``, ``4 GB``, ``6.5GB`` (powers of 1000, as sizes are shown), ``4GiB`` (powers of 1024),
    ``4096M``; bytes without a unit. ``ValueError`` with a sentence otherwise."""
    s = text.strip().lower().replace(" ", "").replace("_", "")
    num = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = s[len(num):]
    try:
        value = float(num)
    except ValueError:
        value = -1.0
    if unit not in _SIZE_UNITS or not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"{text!r} is not a size; write e.g. 4G, 6.5GB, 4GiB or 512M")
    return int(value * _SIZE_UNITS[unit])
