"""Per-model-process telemetry: CPU, memory split into weights and the rest, and the GPU.

``ProcessSampler.sample()`` never raises: a sensor that is missing gives ``None`` and a reason in
``Sample.note`` ("process gone", "no GPU", "GPU lost"), as nvitop's getters do. It runs in the UI
process (and ``bench``'s), on the cores the models need, so each reading stays cheap. Measured per
read on this box's workers (CPU time, kernel included; ``memmaps.py`` has the wall times): ``stat``
and ``status`` 0.03 ms in all, counters the kernel keeps; ``pagemap`` over the weights mapping
0.3 ms (smollm2-135m) to 0.6 ms (gemma3-270m), growing with the file (8 bytes per 4 KiB page:
~10 ms for 4 GB); ``smaps_rollup`` (USS) 0.7-1 ms, growing with every mapped page. So every
reading takes ``stat`` and ``status``; the exact resident weights (``pagemap``) come every
``slow_interval`` and USS every ``uss_interval``, and in between each is carried forward by the
change of the kernel's counters since that exact read: resident weights by ``RssFile`` (the GGUF
is the only file a loaded model still faults in), USS by ``RssAnon`` (a worker's anonymous pages
are its own). Only a reading with a costly part due runs in a thread (``blocking``).

Resident weights are the pages of the GGUF mapping that are in this process's page tables: llama.cpp
mmaps the file, so a table that is only looked up (per-layer embeddings) stays mostly out of RAM,
and this is what shows it. Anonymous memory (``RssAnon``) is the rest: KV cache, compute buffers,
weights repacked into private memory.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import math
import platform
import sys
import time
from collections.abc import Callable

import psutil

from backends.events import Sample, now
from backends.telemetry.hardware import Rapl, cpu_model, mem_bandwidth_gbs
from backends.telemetry.memmaps import WeightsResident, read_status, read_uss
from backends.telemetry.nvml import Nvml, NvmlLost

LINUX = sys.platform.startswith("linux")


class ProcessSampler:
    """Reads one process (a model's worker or local server) and the GPU it runs on."""

    def __init__(
        self,
        pid: int,
        weights_path: str | None = None,
        gpu: bool = True,
        *,
        slow_interval: float = 5.0,
        uss_interval: float = 15.0,
    ) -> None:
        self.pid = pid
        self.slow_interval, self.uss_interval = slow_interval, uss_interval
        self._weights = WeightsResident(pid, weights_path) if weights_path and LINUX else None
        self._weights_t = self._uss_t = -1e9
        self._weights_last: int | None = None
        self._uss_last: int | None = None
        self._file_at = self._anon_at = 0
        """``RssFile`` and ``RssAnon`` at the last exact weights and USS reads (see the top)."""
        self._gone = False
        try:
            self._proc: psutil.Process | None = psutil.Process(pid)
            self._proc.cpu_percent(None)  # primes the counter: the next call measures from here
        except psutil.Error:
            self._proc = None
            self._gone = True
        self.gpu_index: int | None = None
        """The GPU this process was last seen on (device 0 when it holds no GPU memory)."""
        self._nvml = Nvml.open() if gpu else None
        self._gpu_note: str | None = None if gpu else "GPU off"
        if self._nvml is None and gpu:
            self._gpu_note = "no GPU"
        rapl = Rapl() if LINUX else None
        self._rapl = rapl if rapl is not None and rapl.note is None else None
        """CPU package energy for J/token (None where RAPL is unreadable: the run says why)."""

    def blocking(self) -> bool:
        """Whether the next reading may take more than a few tens of µs (NVML, ``pagemap``,
        ``smaps_rollup``, another OS's calls): ``sample_every`` runs those in a thread and the
        rest on the event loop, which saves the thread hop that costs more than the reading."""
        if self._gone:
            return False
        if self._nvml is not None or not LINUX:
            return True
        t = now()
        return (self._weights is not None and t - self._weights_t >= self.slow_interval) or t - self._uss_t >= self.uss_interval

    def sample(self) -> Sample:
        t = now()
        if self._gone:
            return Sample(t, note="process gone")
        try:
            s = self._sample_process(t)
        except (psutil.Error, OSError):
            self._gone = True
            return Sample(t, note="process gone")
        if s is None:
            self._gone = True
            return Sample(t, note="process gone")
        self._sample_gpu(s)
        if self._rapl is not None:
            s.cpu_energy_j = self._rapl.read_j()
        return s

    def _sample_process(self, t: float) -> Sample | None:
        proc = self._proc
        assert proc is not None
        cpu = proc.cpu_percent(None)
        if not LINUX:
            return Sample(t, cpu_percent=cpu, rss_bytes=proc.memory_info().rss, uss_bytes=self._uss_portable(proc, t))
        status = read_status(self.pid)
        if status.get("State") in ("Z", "X"):  # dead, waiting to be reaped
            return None
        file, anon = int(status.get("RssFile", 0)), int(status.get("RssAnon", 0))
        if self._weights is not None and t - self._weights_t >= self.slow_interval:
            self._weights_t, self._file_at = t, file
            try:
                self._weights_last = self._weights.read()
            except PermissionError:  # another user's process: its page tables are private
                self._weights_last = None
        if t - self._uss_t >= self.uss_interval:
            self._uss_t, self._anon_at = t, anon
            try:
                self._uss_last = read_uss(self.pid)
            except PermissionError:  # another user's process: its smaps are private
                self._uss_last = None
        weights, uss = self._weights_last, self._uss_last
        if weights is not None:  # carried forward by the file pages faulted in (or dropped) since
            weights = max(0, weights + file - self._file_at)
        if uss is not None:
            uss = max(0, uss + anon - self._anon_at)
        return Sample(
            t,
            cpu_percent=cpu,
            rss_bytes=status.get("VmRSS"),  # type: ignore[arg-type]
            anon_bytes=status.get("RssAnon"),  # type: ignore[arg-type]
            weights_resident_bytes=weights,
            uss_bytes=uss,
        )

    def _uss_portable(self, proc: psutil.Process, t: float) -> int | None:
        if t - self._uss_t >= self.uss_interval:
            self._uss_t = t
            try:
                self._uss_last = getattr(proc.memory_full_info(), "uss", None)
            except psutil.AccessDenied:
                self._uss_last = None
        return self._uss_last

    def _sample_gpu(self, s: Sample) -> None:
        if self._nvml is None:
            s.note = self._gpu_note
            return
        try:
            g = self._nvml.read(self.pid)
        except NvmlLost:
            self._nvml.close()
            self._nvml, self._gpu_note = None, "GPU lost"
            s.note = self._gpu_note
            return
        self.gpu_index = g.index
        s.gpu_util, s.gpu_mem_used_bytes = g.util, g.mem_used
        s.gpu_power_w, s.gpu_temp_c, s.vram_bytes = g.power_w, g.temp_c, g.vram

    def close(self) -> None:
        if self._nvml is not None:
            self._nvml.close()
            self._nvml = None


IDLE_S = 1.0
"""Between runs a model's process is read about this often (a whole multiple of the run interval)."""


class Pace:
    """When a session's samplers read: every ``hot`` s while a run is in flight (``busy``), every
    ``idle`` s between runs, where a model at rest changes nothing worth four readings a second.

    Every sampler of a session reads on one grid of ``time.monotonic()`` (multiples of the
    interval), so their readings arrive together and a screen draws them in one frame, and the
    idle grid is a multiple of the hot one, so a run's readings start on time.
    """

    def __init__(self, hot: float, idle: float | None = None) -> None:
        self.hot = hot
        every = max(1, math.ceil((IDLE_S if idle is None else idle) / hot - 1e-9))
        self.idle = hot * every
        self._busy = 0
        self._bells: set[asyncio.Future] = set()

    @property
    def interval(self) -> float:
        return self.hot if self._busy else self.idle

    def next_after(self, t: float) -> float:
        """The first tick of the grid after ``t`` (never ``t``'s own, whatever the rounding)."""
        i = self.interval
        k = math.floor(t / i) + 1
        while k * i <= t + 1e-6:
            k += 1
        return k * i

    def busy(self) -> None:
        """A run starts: from the next hot tick on, readings come every ``hot`` s."""
        self._busy += 1
        if self._busy == 1:
            for bell in list(self._bells):
                _ring(bell, "pace")

    def rest(self) -> None:
        """A run has ended (a ``busy`` before each)."""
        self._busy = max(0, self._busy - 1)


def _ring(fut: asyncio.Future, why: str) -> None:
    if not fut.done():
        fut.set_result(why)


async def sample_every(
    sampler, interval: float, emit: Callable[[Sample], None], stop: asyncio.Event, pace: Pace | None = None
) -> None:
    """Sample every ``interval`` s (or at ``pace``) until ``stop`` is set; ``emit`` runs on the loop.

    A reading that may block (``sampler.blocking()``; any sampler without that method) runs in a
    worker thread, the cheap ones on the loop. Ticks fall on a fixed grid (a slow sample does not
    push every later one back; missed ticks are skipped), and setting ``stop`` ends the wait at once.
    """
    pace = pace or Pace(interval, interval)
    loop = asyncio.get_running_loop()
    stopped = asyncio.ensure_future(stop.wait())
    blocking = getattr(sampler, "blocking", None)
    due, slot = True, None  # slot: the tick of the reading just taken (None: the first, off the grid)
    try:
        while not stop.is_set():
            if due:
                sample = await asyncio.to_thread(sampler.sample) if blocking is None or blocking() else sampler.sample()
                if stop.is_set():
                    return
                emit(sample)
            t = time.monotonic()
            # the next tick; off the grid, at least 3/4 of an interval on; fallen behind, the ticks missed are skipped
            nxt = pace.next_after(slot if slot is not None else t + 0.75 * pace.interval)
            if nxt <= t:
                nxt = pace.next_after(t)
            bell = loop.create_future()
            timer = loop.call_later(nxt - t, _ring, bell, "tick")
            on_stop = lambda _f, bell=bell: _ring(bell, "stop")  # noqa: E731
            stopped.add_done_callback(on_stop)
            pace._bells.add(bell)
            try:
                due = await bell == "tick"  # a new pace: wait again, on its grid
                slot = nxt if due else None
            finally:
                timer.cancel()
                pace._bells.discard(bell)
                stopped.remove_done_callback(on_stop)
    finally:
        stopped.cancel()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def host_info(*, bandwidth: bool = True) -> dict:
    """The bench JSON's ``host``. ``bandwidth`` runs (or reads the cached) memory bandwidth probe."""
    gpus = []
    nvml = Nvml.open()
    if nvml is not None:
        try:
            gpus = nvml.devices()
        except NvmlLost:
            gpus = []
        finally:
            nvml.close()
    info = {
        "os": platform.platform(),
        "cpu": cpu_model(),
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_physical": psutil.cpu_count(logical=False),
        "ram_bytes": psutil.virtual_memory().total,
        "gpus": gpus,
        "versions": {
            "python": platform.python_version(),
            **{
                name: _version(dist)
                for name, dist in (
                    ("abtop", "abtop"),
                    ("llama_cpp_python", "llama-cpp-python"),
                    ("textual", "textual"),
                    ("gguf", "gguf"),
                    ("psutil", "psutil"),
                    ("nvidia_ml_py", "nvidia-ml-py"),
                    ("numpy", "numpy"),
                    ("httpx", "httpx"),
                )
            },
        },
    }
    info["mem_bandwidth_gbs"] = mem_bandwidth_gbs() if bandwidth else None
    return info
