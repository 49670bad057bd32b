"""Per-model-process telemetry: CPU, memory split into weights and the rest, and the GPU.

``ProcessSampler.sample()`` never raises: a sensor that is missing gives ``None`` and a reason in
``Sample.note`` ("process gone", "no GPU", "GPU lost"), as nvitop's getters do. It runs in the UI
process, so each call stays cheap: at 4 Hz it reads ``/proc/PID/stat`` and ``/proc/PID/status``
(~0.2 ms in all); resident weights (~3 ms, ``pagemap``) at most once per ``slow_interval`` and USS
(~8 ms, ``smaps_rollup``) once per ``uss_interval``, reusing the last value in between (see
``procmem.py`` for the costs).

Resident weights are the pages of the GGUF mapping that are in this process's page tables: llama.cpp
mmaps the file, so a table that is only looked up (per-layer embeddings) stays mostly out of RAM,
and this is what shows it. Anonymous memory (``RssAnon``) is the rest: KV cache, compute buffers,
weights repacked into private memory.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
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
        slow_interval: float = 1.0,
        uss_interval: float = 5.0,
    ) -> None:
        self.pid = pid
        self.slow_interval, self.uss_interval = slow_interval, uss_interval
        self._weights = WeightsResident(pid, weights_path) if weights_path and LINUX else None
        self._weights_t = self._uss_t = -1e9
        self._weights_last: int | None = None
        self._uss_last: int | None = None
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
        if self._weights is not None and t - self._weights_t >= self.slow_interval:
            self._weights_t = t
            try:
                self._weights_last = self._weights.read()
            except PermissionError:  # another user's process: its page tables are private
                self._weights_last = None
        if t - self._uss_t >= self.uss_interval:
            self._uss_t = t
            try:
                self._uss_last = read_uss(self.pid)
            except PermissionError:  # another user's process: its smaps are private
                self._uss_last = None
        return Sample(
            t,
            cpu_percent=cpu,
            rss_bytes=status.get("VmRSS"),  # type: ignore[arg-type]
            anon_bytes=status.get("RssAnon"),  # type: ignore[arg-type]
            weights_resident_bytes=self._weights_last,
            uss_bytes=self._uss_last,
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


async def sample_every(
    sampler: ProcessSampler, interval: float, emit: Callable[[Sample], None], stop: asyncio.Event
) -> None:
    """Sample every ``interval`` s in a worker thread until ``stop`` is set; ``emit`` runs on the loop.

    Ticks keep a fixed cadence (a slow sample does not push every later one back), and setting
    ``stop`` ends the wait at once.
    """
    next_t = time.monotonic()
    while not stop.is_set():
        sample = await asyncio.to_thread(sampler.sample)
        if stop.is_set():
            return
        emit(sample)
        next_t += interval
        delay = next_t - time.monotonic()
        if delay < 0:  # fell behind (a stalled machine): skip the missed ticks
            next_t = time.monotonic()
            delay = 0
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except asyncio.TimeoutError:
            pass


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
