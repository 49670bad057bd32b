"""What the machine can do: memory read bandwidth (the roofline), and energy (RAPL, NVML power).

Token generation on a CPU is bound by memory reads: every generated token streams the weights once,
so ``gen t/s × bytes per token`` over the measured read bandwidth says how close a model runs to
what this box allows. llama.cpp reaches 84–91 % on some CPUs; far below that, the box is
misconfigured (threads, power saving, swap).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from backends.events import Sample

PROBE_BYTES = 256 * 2**20
PROBE_TRIALS = 5
RAPL_ROOT = "/sys/class/powercap"


def cpu_model() -> str:
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith(("model name", "Hardware", "Processor")) and ":" in line:
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
    return platform.processor() or platform.machine() or "unknown"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "abtop"


def _host_key() -> str:
    import psutil

    return f"{platform.node()}|{cpu_model()}|{psutil.cpu_count(logical=True)}|{psutil.virtual_memory().total}"


def probe_bandwidth(nbytes: int = PROBE_BYTES, trials: int = PROBE_TRIALS, threads: int | None = None) -> float:
    """Read bandwidth in GB/s: the best of ``trials`` passes summing ``nbytes``, split over threads.

    numpy releases the GIL inside a reduction, so one thread per physical core reads its own slice
    at once, as llama.cpp's threads do.
    """
    import numpy as np
    import psutil

    threads = threads or psutil.cpu_count(logical=False) or os.cpu_count() or 1
    a = np.ones(nbytes // 8, dtype=np.float64)  # written once, so every page is really allocated
    parts = np.array_split(a, threads)
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(np.sum, parts))  # warm the pool and the page tables
        for _ in range(trials):
            t = time.perf_counter()
            list(pool.map(np.sum, parts))
            best = min(best, time.perf_counter() - t)
    return a.nbytes / best / 1e9


_lock = threading.Lock()


CONTENDED = 0.25
"""Other processes busier than this share of all cores while the probe ran: the figure is low."""


def _busy_s(t) -> float:
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))


def probe_quietly() -> tuple[float, bool]:
    """(GB/s, contended): the probe, and whether other processes kept more than ``CONTENDED`` of
    the cores busy meanwhile (the host's CPU time less this process's)."""
    import psutil

    me = psutil.Process()
    host0, me0, t0 = _busy_s(psutil.cpu_times()), sum(me.cpu_times()[:2]), time.monotonic()
    gbs = probe_bandwidth()
    host1, me1, t1 = _busy_s(psutil.cpu_times()), sum(me.cpu_times()[:2]), time.monotonic()
    others = (host1 - host0 - (me1 - me0)) / max((t1 - t0) * (psutil.cpu_count() or 1), 1e-9)
    return gbs, others > CONTENDED


def mem_bandwidth_gbs(*, refresh: bool = False) -> float | None:
    """This host's read bandwidth in GB/s, cached per host in ``~/.cache/abtop``.

    A figure measured while other processes kept the cores busy is low: it is cached as
    ``contended`` and measured again next time, keeping the best; a quiet one is kept for good."""
    path = cache_dir() / "mem_bandwidth.json"
    key = _host_key()
    with _lock:
        best = None
        if not refresh:
            try:
                cached = json.loads(path.read_text())
                if cached.get("host") == key:
                    if not cached.get("contended"):
                        return float(cached["gbs"])
                    best = float(cached["gbs"])
            except (OSError, ValueError, KeyError, TypeError, RecursionError):
                pass
        try:
            gbs, contended = probe_quietly()
        except MemoryError:
            return best
        gbs = round(gbs, 2)
        if contended and best is not None and best >= gbs:  # still contended, and lower: keep the best
            gbs = best
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"host": key, "gbs": gbs, "contended": contended, "measured": time.time()}))
            tmp.replace(path)
        except OSError:
            pass  # a read-only home: measure again next time
        return gbs


def roofline_pct(gen_tps: float | None, bytes_per_token: int | None, bandwidth_gbs: float | None) -> float | None:
    """Generation's memory traffic as a percentage of the measured read bandwidth."""
    if not gen_tps or not bytes_per_token or not bandwidth_gbs:
        return None
    return 100.0 * gen_tps * bytes_per_token / (bandwidth_gbs * 1e9)


class Rapl:
    """CPU package energy from Intel/AMD RAPL counters under ``/sys/class/powercap``.

    ``read_j()`` sums the top-level package zones and follows each counter across its wrap
    (``max_energy_range_uj``), so call it at least once per wrap period (minutes at full load).
    ``note`` is None when readable, else "n/a: <reason>".
    """

    def __init__(self, root: str | os.PathLike = RAPL_ROOT) -> None:
        self.root = Path(root)
        self.zones: list[tuple[Path, int]] = []
        self._last: list[int] = []
        self._total_uj = 0
        self.note: str | None = None
        try:
            dirs = sorted(d for d in self.root.iterdir() if d.name.count(":") == 1 and (d / "energy_uj").exists())
        except OSError:
            self.note = f"n/a: no RAPL ({self.root} is missing)"
            return
        if not dirs:
            self.note = f"n/a: no RAPL package zones in {self.root}"
            return
        try:
            for d in dirs:
                rng = int((d / "max_energy_range_uj").read_text()) if (d / "max_energy_range_uj").exists() else 0
                self.zones.append((d / "energy_uj", rng))
            self._last = [int(p.read_text()) for p, _ in self.zones]
        except PermissionError:
            self.zones = []
            self.note = "n/a: RAPL counters are readable by root only on this machine"
        except (OSError, ValueError) as exc:
            self.zones = []
            self.note = f"n/a: RAPL unreadable ({exc})"

    def read_j(self) -> float | None:
        """Joules since this reader was made; None when unreadable."""
        if not self.zones:
            return None
        try:
            now = [int(p.read_text()) for p, _ in self.zones]
        except (OSError, ValueError) as exc:
            self.note, self.zones = f"n/a: RAPL unreadable ({exc})", []
            return None
        for (_, rng), before, after in zip(self.zones, self._last, now, strict=True):
            self._total_uj += after - before if after >= before else after + rng - before
        self._last = now
        return self._total_uj / 1e6


def integrate_power(points: Iterable[tuple[float, float | None]], t0: float, t1: float) -> float | None:
    """Joules over [t0, t1] from (time, watts) readings, trapezoid rule, held flat at the edges.

    None when no reading falls inside the window (a window shorter than the sampling interval).
    """
    pts = sorted((t, w) for t, w in points if w is not None)
    inside = [(t, w) for t, w in pts if t0 <= t <= t1]
    if t1 <= t0 or not inside:
        return None
    series = [(t0, inside[0][1]), *inside, (t1, inside[-1][1])]
    return sum((tb - ta) * (wa + wb) / 2 for (ta, wa), (tb, wb) in zip(series, series[1:], strict=False))


def counter_joules(points: Iterable[tuple[float, float | None]], t0: float, t1: float) -> float | None:
    """Joules over [t0, t1] from readings of a cumulative energy counter (RAPL) taken a few times a
    second: the mean power between the readings nearest the window's edges, times its length.

    None with fewer than two readings around the window.
    """
    pts = sorted((t, e) for t, e in points if e is not None)
    before = [p for p in pts if p[0] <= t0][-1:]
    after = [p for p in pts if p[0] >= t1][:1]
    use = before + [p for p in pts if t0 < p[0] < t1] + after
    if t1 <= t0 or len(use) < 2 or use[-1][0] <= use[0][0]:
        return None
    (ta, ea), (tb, eb) = use[0], use[-1]
    return (eb - ea) / (tb - ta) * (t1 - t0)


@functools.cache
def rapl_note() -> str | None:
    """Why CPU energy is unavailable on this machine ("n/a: …"), None when RAPL is readable."""
    return Rapl().note


def energy_per_token(
    samples: Iterable[Sample], t0: float, t1: float, tokens: int | None, cpu_joules: float | None = None,
    cpu_note: str | None = None,
) -> tuple[float | None, str]:
    """(J/token, source or reason) for a generation window [t0, t1].

    A model holding GPU memory is charged the GPU's power (NVML) over the window; otherwise the CPU
    package energy (``cpu_joules``, a RAPL delta over the same window). RAPL counts the whole socket,
    so in race mode both models share it: the note says so.
    """
    if not tokens:
        return None, "n/a: no tokens generated"
    samples = list(samples)
    on_gpu = any(s.vram_bytes for s in samples)
    if on_gpu:
        j = integrate_power(((s.t, s.gpu_power_w) for s in samples), t0, t1)
        if j is not None:
            return j / tokens, "GPU power (NVML) over the generation window"
        return None, "n/a: no GPU power reading inside the generation window"
    if cpu_joules is not None:
        return cpu_joules / tokens, "CPU package energy (RAPL, whole socket)"
    return None, cpu_note or "n/a: no energy counter on this machine"


@dataclasses.dataclass(slots=True)
class HostLoad:
    """The whole machine now (nvitop's host panel): what else competes with the models."""

    cpu_percent: float
    """All cores together, 0–100, since the previous reading."""
    mem_used_bytes: int
    mem_total_bytes: int
    swap_used_bytes: int
    load1: float | None
    self_cpu_percent: float | None = None
    """The process reading it (the TUI: what the instrument costs), % of one core since the
    previous reading; None on the first."""


_self_cpu: tuple[float, float] | None = None
"""(process CPU seconds, monotonic seconds) at the previous ``host_load``."""


def host_load() -> HostLoad:
    """One reading; cheap (a few /proc reads), for a 1 Hz status line."""
    import psutil

    global _self_cpu
    vm, sw = psutil.virtual_memory(), psutil.swap_memory()
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    mine = (time.process_time(), time.monotonic())
    before, _self_cpu = _self_cpu, mine
    own = 100 * (mine[0] - before[0]) / (mine[1] - before[1]) if before and mine[1] > before[1] else None
    return HostLoad(psutil.cpu_percent(None), vm.total - vm.available, vm.total, sw.used, load1, own)
