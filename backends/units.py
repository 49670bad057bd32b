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
