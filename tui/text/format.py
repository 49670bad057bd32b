"""How figures are written for people: the same in the panes, the Markdown table and the CLI."""

from __future__ import annotations

from backends.events import Loaded, ModelInfo, Progress
from backends.units import human_bytes, human_count

__all__ = ["human_bytes", "human_count"]  # re-exported: one formatter for both sides


def rate(x: float | None, unit: str = "tok/s") -> str:
    if x is None:
        return "n/a"
    return f"{x:.0f} {unit}" if x >= 100 else f"{x:.1f} {unit}"


def seconds(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def engine_gap(wall: float | None, engine: float | None) -> str:
    """" (wall N% below engine)" when the rate measured here trails the engine's own by > 5 %:
    network, queueing or an SSH tunnel between the engine and us. A wall rate ahead of the
    engine's trails nothing: no note."""
    if not wall or not engine:
        return ""
    gap = (engine - wall) / engine
    return f" (wall {gap:.0%} below engine)" if gap > 0.05 else ""


def model_header(info: ModelInfo, loaded: Loaded | None = None) -> str:
    """``arch · params · quant · size · backend · placement`` (the pane's title holds the name)."""
    bits = []
    if info.synthetic:
        bits.append("synthetic: true (shape twin, text is noise)")
    if info.arch:
        bits.append(info.arch)
    if info.params:
        bits.append(human_count(info.params) + " params")
    if info.quant:
        bits.append(info.quant)
    if info.file_bytes:
        bits.append(human_bytes(info.file_bytes))
    if loaded is not None:
        bits.append(loaded.backend)
        if loaded.threads:
            where = f"{loaded.threads} thr"
            if loaded.cpus:
                where += " cpu" + ",".join(map(str, loaded.cpus))
            bits.append(where)
        if loaded.completion_mode:
            bits.append("completion mode")
    if info.placement:
        bits.append(info.placement)
    return " · ".join(bits)


def spread(s: dict | None, f=lambda x: f"{x:.1f}") -> str:
    """A ``summarize()`` entry as ``median (min–max)``; only the median for a single run."""
    if not s:
        return "n/a"
    text = f(s["median"])
    if s["n"] > 1:
        text += f" ({f(s['min'])}–{f(s['max'])})"
    return text


STOP_WORDS = {"eos": "end of text", "length": "max tokens", "context full": "context full"}
"""Why a run ended, in the words the stats line and the Markdown table use."""


def stop(reason: str | None) -> str:
    return f"stop: {STOP_WORDS.get(reason, reason)}" if reason else ""


def clock(s: float | None) -> str:
    """``1:05`` or ``1:02:03``; ``n/a`` when unknown."""
    if s is None:
        return "n/a"
    s = int(s + 0.5)
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


def progress_line(p: Progress, bar: int = 20) -> str:
    """``name ████████░░░░ 42% · 41 MB / 98 MB · 23 MB/s · ETA 0:02`` (a fetch before a load)."""
    if p.total:
        frac = min(max(p.done / p.total, 0.0), 1.0)
        filled = int(frac * bar)
        bits = [f"{'█' * filled}{'░' * (bar - filled)} {frac:.0%}", f"{human_bytes(p.done)} / {human_bytes(p.total)}"]
    else:
        bits = [human_bytes(p.done)]
    if p.rate:
        bits.append(f"{human_bytes(p.rate)}/s")
    if not p.finished and p.eta_s is not None:
        bits.append(f"ETA {clock(p.eta_s)}")
    return f"{p.what}  " + " · ".join(bits)


def touched(group: dict) -> str:
    """A working-set group as ``12 MB / 1.3 GB (1%)``, ``repacked`` when read from its anon copy."""
    b, t = group["bytes"], group["touched_bytes"]
    pct = f" ({100 * t / b:.0f}%)" if b else ""
    return f"{human_bytes(t)} / {human_bytes(b)}{pct}" + (" repacked" if group.get("repacked") else "")
