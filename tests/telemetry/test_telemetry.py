"""Telemetry of real child processes (mmapped GGUF, anonymous memory, CPU), vanished processes,
and NVML through a fake ``pynvml`` module, the one boundary that cannot run here (no GPU)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import types

import pytest

from backends.events import Sample
from backends.telemetry.process import ProcessSampler, host_info, sample_every
from tests.support.waiting import wait_for, wait_until

MiB = 2**20
ANON = 64 * MiB

# The child maps the GGUF, touches half of its pages and fills ANON bytes of anonymous memory;
# then, one command a line: "burn S" spends S seconds of CPU time by its own clock (any load on the
# box only stretches the wall time it takes), "all" touches the other half of the pages.
CHILD = r"""
import mmap, sys, time
path, anon = sys.argv[1], int(sys.argv[2])
f = open(path, "rb")
m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
half = len(m) // 2
touched = sum(m[i] for i in range(0, half, 4096))
block = b"\x01" * anon
print("ready", flush=True)
for line in sys.stdin:
    cmd, *arg = line.split()
    if cmd == "burn":
        until = time.process_time() + float(arg[0])
        while time.process_time() < until:
            pass
        print("burnt", flush=True)
    elif cmd == "all":
        touched += sum(m[i] for i in range(half, len(m), 4096))
        print("all", flush=True)
"""

IDLE = "import sys; print('ready', flush=True); sys.stdin.readline()"


def _spawn(code: str, *args: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def _end(p: subprocess.Popen) -> None:
    p.kill()
    p.wait()


@pytest.fixture
def mapper(smollm2_path):
    p = _spawn(CHILD, str(smollm2_path), str(ANON))
    yield p
    _end(p)


@pytest.fixture
def idle():
    p = _spawn(IDLE)
    yield p
    _end(p)


def _ask(p: subprocess.Popen, command: str, answer: str) -> None:
    p.stdin.write(command + "\n")
    p.stdin.flush()
    got = p.stdout.readline().strip()
    assert got == answer, f"the child answered {got!r} to {command!r} (exit code {p.poll()})"


def test_weights_anon_rss_come_from_the_process(mapper, idle, smollm2_path):
    size = smollm2_path.stat().st_size
    s = ProcessSampler(mapper.pid, str(smollm2_path), gpu=False)
    a = s.sample()
    assert a.note == "GPU off"
    # Half the file's pages were touched: its mapping's resident size says so.
    assert 0.45 * size <= a.weights_resident_bytes <= 0.55 * size
    assert ANON <= a.anon_bytes < ANON + 64 * MiB
    assert a.rss_bytes >= a.anon_bytes + a.weights_resident_bytes
    assert a.uss_bytes >= ANON

    # The idle process maps no GGUF and holds little anonymous memory.
    quiet = ProcessSampler(idle.pid, str(smollm2_path), gpu=False)
    b = quiet.sample()
    assert b.weights_resident_bytes == 0
    assert b.anon_bytes < 32 * MiB
    quiet.close()

    # Now all pages: within the slow interval no pagemap is read, yet the figure follows the
    # file pages the kernel counts (RssFile); after it, the exact count agrees.
    _ask(mapper, "all", "all")
    assert not s.blocking()  # nothing costly is due: the reading may run on the event loop
    carried = s.sample().weights_resident_bytes
    assert 0.95 * size <= carried <= 1.05 * size
    s.slow_interval = 0
    assert s.blocking()
    exact = s.sample().weights_resident_bytes
    assert exact >= 0.95 * size and abs(carried - exact) <= 0.05 * size
    s.close()


BURN = 0.3
"""CPU-seconds the child spends between two readings of its sampler."""
TICK = 1 / os.sysconf("SC_CLK_TCK")
"""/proc counts a process's CPU time in clock ticks: psutil's reading is known to one tick."""


def test_cpu_percent_gives_back_the_cpu_time_a_process_spent(mapper, idle):
    """Between two readings the child spends BURN CPU-seconds by its own clock and the idle one
    none: cpu % times the interval between the readings gives those back, whatever the load on
    the box (a busy box stretches the interval and lowers the % in proportion). The interval is
    bracketed by this test's clock around the readings."""
    t0 = time.monotonic()
    busy, quiet = ProcessSampler(mapper.pid, None, gpu=False), ProcessSampler(idle.pid, None, gpu=False)
    t1 = time.monotonic()
    _ask(mapper, f"burn {BURN}", "burnt")
    t2 = time.monotonic()
    a, b = busy.sample(), quiet.sample()
    t3 = time.monotonic()
    least, most = t2 - t1, t3 - t0  # the samplers' own interval lies between these
    spent = (a.cpu_percent / 100 * least, a.cpu_percent / 100 * most)
    assert spent[0] <= BURN + 2 * TICK and spent[1] >= BURN - TICK, (
        f"cpu {a.cpu_percent} % over {least:.3f}-{most:.3f} s is {spent[0]:.3f}-{spent[1]:.3f} CPU-s, "
        f"but the child spent {BURN}"
    )
    # (the interval is at least BURN long: one thread spends CPU time no faster than the clock)
    assert b.cpu_percent / 100 * least <= TICK + 0.001 * most, f"the idle child read {b.cpu_percent} % over {least:.3f} s"
    busy.close()
    quiet.close()


def test_weights_found_through_a_symlink(mapper, smollm2_path, tmp_path):
    link = tmp_path / "model.gguf"
    link.symlink_to(smollm2_path)
    s = ProcessSampler(mapper.pid, str(link), gpu=False)
    assert s.sample().weights_resident_bytes > 0
    s.close()


def test_no_weights_path_gives_none_but_uss(idle):
    s = ProcessSampler(idle.pid, None, gpu=False)
    r = s.sample()
    assert r.weights_resident_bytes is None and r.uss_bytes > 0 and r.rss_bytes > 0


def test_vanished_process(idle):
    s = ProcessSampler(idle.pid, None, gpu=False)
    assert s.sample().note == "GPU off"
    _end(idle)
    r = s.sample()
    assert r.note == "process gone"
    assert (r.cpu_percent, r.rss_bytes, r.anon_bytes, r.weights_resident_bytes) == (None,) * 4


def test_zombie_counts_as_gone():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    s = ProcessSampler(p.pid, None, gpu=False)
    # exited but not reaped (State Z): the sampler says gone before anyone waits for the child
    wait_until(lambda: s.sample().note == "process gone", "the sampler to see the exited child as gone", 30)
    p.wait()


def test_pid_that_never_was():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert ProcessSampler(p.pid, None).sample().note == "process gone"


async def test_sample_every_emits_on_the_loop_until_stopped(idle):
    s = ProcessSampler(idle.pid, None, gpu=False)
    got: list[tuple[Sample, int]] = []
    stop = asyncio.Event()
    three = asyncio.Event()

    def emit(sample: Sample) -> None:
        got.append((sample, threading.get_ident()))
        if len(got) == 3:
            three.set()

    task = asyncio.create_task(sample_every(s, 0.05, emit, stop))
    await wait_for(three, "three samples", 30)
    stop.set()
    await wait_for(task, "the sampling task to end once stopped", 30)
    assert all(ident == threading.get_ident() for _, ident in got)
    ts = [sample.t for sample, _ in got]
    assert ts == sorted(ts) and ts[2] - ts[0] >= 0.08
    s.close()


# ---- NVML ----


class FakeGpu:
    def __init__(self):
        self.lost = False
        self.power_supported = True
        self.procs: list[types.SimpleNamespace] = []


def fake_pynvml(gpu: FakeGpu, *, init_fails: bool = False) -> types.ModuleType:
    """A fake ``pynvml``: this machine has no GPU, so the NVML boundary replays the documented API
    (nvidia-ml-py) for one device: handles, utilisation, memory, power in mW, temperature, running
    processes, NVMLError with a ``value`` code, and a device that starts failing when ``lost``."""
    m = types.ModuleType("pynvml")

    class NVMLError(Exception):
        def __init__(self, value):
            self.value = value

    m.NVMLError = NVMLError
    m.NVML_ERROR_NOT_SUPPORTED = 3
    m.NVML_ERROR_GPU_IS_LOST = 15
    m.NVML_TEMPERATURE_GPU = 0
    m.calls = {"init": 0, "shutdown": 0}

    def q(value_fn):
        def call(*args):
            if gpu.lost:
                raise NVMLError(m.NVML_ERROR_GPU_IS_LOST)
            return value_fn(*args)

        return call

    def init():
        if init_fails:
            raise NVMLError(9)  # NVML_ERROR_DRIVER_NOT_LOADED
        m.calls["init"] += 1

    def power(h):
        if not gpu.power_supported:
            raise NVMLError(m.NVML_ERROR_NOT_SUPPORTED)
        return 71_500

    m.nvmlInit = init
    m.nvmlShutdown = lambda: m.calls.__setitem__("shutdown", m.calls["shutdown"] + 1)
    m.nvmlDeviceGetCount = q(lambda: 1)
    m.nvmlDeviceGetHandleByIndex = q(lambda i: ("handle", i))
    m.nvmlDeviceGetName = q(lambda h: "NVIDIA Fake 80GB")
    m.nvmlSystemGetDriverVersion = q(lambda: "555.42")
    m.nvmlDeviceGetUtilizationRates = q(lambda h: types.SimpleNamespace(gpu=37, memory=12))
    m.nvmlDeviceGetMemoryInfo = q(lambda h: types.SimpleNamespace(total=80 * 2**30, used=5 * 2**30, free=75 * 2**30))
    m.nvmlDeviceGetPowerUsage = q(power)
    m.nvmlDeviceGetTemperature = q(lambda h, sensor: 54)
    m.nvmlDeviceGetComputeRunningProcesses = q(lambda h: list(gpu.procs))
    m.nvmlDeviceGetGraphicsRunningProcesses = q(lambda h: [])
    return m


def test_gpu_figures_and_a_gpu_lost_mid_run(monkeypatch, idle):
    gpu = FakeGpu()
    gpu.procs = [types.SimpleNamespace(pid=idle.pid, usedGpuMemory=300 * MiB), types.SimpleNamespace(pid=1, usedGpuMemory=MiB)]
    nv = fake_pynvml(gpu)
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    s = ProcessSampler(idle.pid, None)
    r = s.sample()
    assert r.note is None
    assert (r.gpu_util, r.gpu_mem_used_bytes, r.gpu_power_w, r.gpu_temp_c) == (37.0, 5 * 2**30, 71.5, 54.0)
    assert r.vram_bytes == 300 * MiB

    gpu.power_supported = False  # a sensor this board lacks: that figure only
    r = s.sample()
    assert r.gpu_power_w is None and r.gpu_util == 37.0 and r.note is None

    gpu.lost = True  # fell off the bus
    r = s.sample()
    assert r.note == "GPU lost"
    assert (r.gpu_util, r.vram_bytes, r.gpu_mem_used_bytes, r.gpu_power_w, r.gpu_temp_c) == (None,) * 5
    assert r.rss_bytes > 0  # the process figures go on
    assert s.sample().note == "GPU lost"
    s.close()
    assert nv.calls == {"init": 1, "shutdown": 1}


def test_process_without_gpu_memory(monkeypatch, idle):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(FakeGpu()))
    r = ProcessSampler(idle.pid, None).sample()
    assert r.vram_bytes is None and r.gpu_util == 37.0


def test_no_nvml_module(monkeypatch, idle):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    r = ProcessSampler(idle.pid, None).sample()
    assert r.note == "no GPU" and r.gpu_util is None and r.rss_bytes > 0


def test_nvml_init_fails(monkeypatch, idle):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(FakeGpu(), init_fails=True))
    assert ProcessSampler(idle.pid, None).sample().note == "no GPU"


def test_real_nvml_without_a_gpu(idle):
    """The real nvidia-ml-py on a machine without a driver: nvmlInit fails, "no GPU"."""
    pytest.importorskip("pynvml")
    if os.path.exists("/dev/nvidiactl"):
        pytest.skip("this machine has an NVIDIA driver")
    assert ProcessSampler(idle.pid, None).sample().note == "no GPU"


def test_host_info(monkeypatch):
    h = host_info(bandwidth=False)
    assert h["cores_logical"] >= 1 and h["ram_bytes"] > 2**28 and h["cpu"]
    assert h["versions"]["python"] and h["versions"]["abtop"]
    assert h["mem_bandwidth_gbs"] is None
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(FakeGpu()))
    h = host_info(bandwidth=False)
    assert h["gpus"] == [{"name": "NVIDIA Fake 80GB", "memory_bytes": 80 * 2**30, "driver": "555.42"}]
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert host_info(bandwidth=False)["gpus"] == []


def test_pagemap_agrees_with_smaps(mapper, smollm2_path):
    """Resident weights come from pagemap (cheap); the full smaps (slow) gives the same figure."""
    from backends.telemetry.memmaps import FileId, WeightsResident, read_smaps, read_uss

    fast = WeightsResident(mapper.pid, str(smollm2_path)).read()
    slow, uss = read_smaps(mapper.pid, FileId(str(smollm2_path)))
    assert fast == slow > 0
    assert abs(read_uss(mapper.pid) - uss) < 4 * MiB  # rollup vs full walk, a moment apart
