"""Honest memory, energy and roofline: llama.cpp's buffer report from a real load, the bench JSON's
per-run energy and roofline, and the pane's card through Pilot (NVML through a fake ``pynvml``, the
one boundary that cannot run here: this machine has no GPU)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import types

import pytest

from backends.base import GenParams, Placement
from backends.engines.llamacpp import LlamaCppBackend
from backends.engines.llamalog import parse_buffers, planned_anon
from backends.events import Finished, Sample, Started, Token
from backends.stats import RUN_FIELDS, RunCollector
from backends.telemetry.hardware import rapl_note, roofline_pct
from tests.conftest import worker_children
from tests.support.waiting import wait_for
from tests.telemetry.test_telemetry import FakeGpu, fake_pynvml
from tui.app.app import ABTopApp
from tui.widgets.card import CardPanel
from tui.widgets.metrics import MetricsStrip

MiB = 2**20
TIMEOUT = 180


# ---- llama.cpp's buffer report ----


async def test_buffer_report_from_a_real_load(smollm2_path, gemma3_path):
    got = {}
    for alias, path in (("smollm2-135m", smollm2_path), ("gemma3-270m", gemma3_path)):
        b = LlamaCppBackend(alias, path, n_ctx=512, placement=Placement(threads=1))
        try:
            got[alias] = (await b.load()).buffers
        finally:
            await b.close()
    smol, gemma = got["smollm2-135m"], got["gemma3-270m"]
    # SmolLM2: every weight is mapped from the file (no repacking), and the KV cache is exactly
    # n_ctx x 30 layers x K and V x 3 KV heads x 64 dims x 2 bytes (f16).
    assert smol["model"] == smol["model_mapped"]
    assert 0.95 * smollm2_path.stat().st_size < smol["model_mapped"] <= smollm2_path.stat().st_size
    assert abs(smol["kv"] - 512 * 30 * 2 * 3 * 64 * 2) < 16 * 1024
    assert smol["compute"] > 0 and smol["output"] > 0 and smol["offloaded"] == 0
    # gemma3: some weights are repacked into anonymous memory, and two KV caches (sliding window
    # and global) are summed.
    assert gemma["model"] > gemma["model_mapped"] > 0.9 * gemma3_path.stat().st_size
    assert gemma["kv"] > 0 and gemma["compute"] > 0
    assert planned_anon(gemma) == gemma["model"] - gemma["model_mapped"] + gemma["kv"] + gemma["compute"] + gemma["output"]
    assert not worker_children()


def test_buffer_lines_with_offload_and_two_kv_caches():
    """The line shapes llama.cpp logs with a CUDA build (one line per device and per cache)."""
    log = """
load_tensors: offloading 30 repeating layers to GPU
load_tensors:        CUDA0 model buffer size =  1000.00 MiB
load_tensors:   CPU_Mapped model buffer size =   100.00 MiB
llama_context:  CUDA_Host  output buffer size =     1.00 MiB
llama_kv_cache:      CUDA0 KV buffer size =    10.00 MiB
llama_kv_cache:      CUDA0 KV buffer size =     6.00 MiB
sched_reserve:      CUDA0 compute buffer size =   200.00 MiB
sched_reserve:  CUDA_Host compute buffer size =     4.00 MiB
~llama_context:      CUDA0 compute buffer size is 200.0000 MiB, matches expectation of 200.0000 MiB
"""
    b = parse_buffers(log.splitlines())
    assert b == {
        "model": 1100 * MiB, "model_mapped": 100 * MiB, "kv": 16 * MiB, "compute": 204 * MiB,
        "output": 1 * MiB, "offloaded": 1216 * MiB,
    }  # fmt: skip
    assert planned_anon(b) == 5 * MiB  # pinned host buffers only: the rest is on the GPU or mapped
    assert parse_buffers(["llama_model_loader: - kv 0: general.architecture str = llama"]) is None


# ---- energy and roofline of a run ----


def _run(samples: list[Sample], tokens: int = 11, t0: float = 10.5, t1: float = 11.5) -> RunCollector:
    c = RunCollector()
    for ev in [Started(10.0, 5), *samples]:
        c.add(ev)
    for k in range(tokens):
        c.add(Token("x", t0 + (t1 - t0) * k / (tokens - 1)))
    c.add(Finished(t1 + 0.01, "length", tokens))
    return c


def test_energy_per_token_from_cpu_counter_and_gpu_power():
    # RAPL: a counter rising 10 J/s, read at 4 Hz; 1 s of generation over 10 token intervals.
    cpu = _run([Sample(10.0 + k / 4, cpu_energy_j=100 + 10 * k / 4) for k in range(12)])
    r = cpu.result()
    assert r["energy_j_per_token"] == pytest.approx(1.0)
    assert "RAPL" in r["energy_note"]
    # NVML: a model holding GPU memory is charged the GPU's power (100 W) instead.
    gpu = _run([Sample(10.0 + k / 4, vram_bytes=MiB, gpu_power_w=100.0, cpu_energy_j=k) for k in range(12)])
    r = gpu.result()
    assert r["energy_j_per_token"] == pytest.approx(10.0) and "NVML" in r["energy_note"]
    # No counter: null, and the reason handed in by the caller.
    r = _run([Sample(10.0 + k / 4) for k in range(12)]).result(energy_note="n/a: no RAPL here")
    assert r["energy_j_per_token"] is None and r["energy_note"] == "n/a: no RAPL here"
    # One reading only: too short to say.
    r = _run([Sample(10.0, cpu_energy_j=1.0)]).result()
    assert r["energy_j_per_token"] is None and "shorter than the sampling interval" in r["energy_note"]


def test_roofline_in_the_run():
    c = _run([])
    r = c.result(bytes_per_token=100_000_000, bandwidth_gbs=10.0)
    assert r["gen_tps"] == pytest.approx(10.0)
    assert r["roofline_pct"] == pytest.approx(10.0)  # 10 t/s x 100 MB = 1 GB/s of 10 GB/s
    assert c.result()["roofline_pct"] is None  # without the machine's context: unknown, never 0
    assert {"energy_j_per_token", "energy_note", "roofline_pct"} <= set(RUN_FIELDS)


def test_bench_json_has_energy_roofline_and_buffers(tmp_path):
    out = tmp_path / "out.json"
    p = subprocess.run(
        [sys.executable, "-m", "tui.cli.main", "bench", "smollm2-135m", "-n", "8", "--runs", "1", "--warmup", "0",
         "--ctx", "512", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    bw = doc["host"]["mem_bandwidth_gbs"]
    assert bw > 0
    (m,) = doc["models"]
    assert m["buffers"]["model_mapped"] > 0 and m["buffers"]["kv"] > 0
    (r,) = m["runs"]
    # planned vs measured: the weights llama.cpp maps are what the process holds resident
    assert r["weights_resident_bytes"] <= m["buffers"]["model_mapped"] + 4 * MiB
    assert r["roofline_pct"] > 0
    assert r["roofline_pct"] == pytest.approx(roofline_pct(r["gen_tps"], m["info"]["bytes_per_token"], bw))
    if rapl_note() is None:  # a machine whose RAPL counters this user can read
        assert r["energy_j_per_token"] > 0 and "RAPL" in r["energy_note"]
    else:  # here: no GPU, RAPL unreadable
        assert r["energy_j_per_token"] is None and r["energy_note"] == rapl_note()
        assert r["energy_note"].startswith("n/a")


# ---- the pane ----


def _app(specs=("smollm2-135m",), max_tokens=8, **kw) -> ABTopApp:
    return ABTopApp(list(specs), "The sky is blue because", GenParams(max_tokens=max_tokens), n_ctx=512, **kw)


def _text(widget) -> str:
    return str(widget.render())


async def test_pane_shows_card_memory_split_and_no_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # no NVML at all
    app = _app(autostart=True)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        pane = app.panes[0]
        card = pane.query_one(CardPanel)
        assert card.display  # a tall pane has room for the card
        text = _text(card)
        for words in ("params", "134,515,008", "PLE none", "MoE none (dense)", "read per generated token",
                      "planned", "mapped", "KV", "compute", "measured", "resident", "anon", "no GPU",
                      "roofline", "of", "GB/s", "energy"):  # fmt: skip
            assert words in text, words
        assert f"pid {pane.loaded.pid}" in text  # the process the figures are read from
        mem = pane.query_one(MetricsStrip).metric("mem").text
        assert mem.startswith("mem w ") and "+ anon " in mem  # never one RSS number
        assert "no GPU" in pane.query_one(MetricsStrip).metric("gpu").text
        assert pane.runs[0]["roofline_pct"] > 0
        assert "roofline" in _text(pane.query_one(".stats"))
        assert pane.runs[0]["energy_note"]

        # 80x24: the panes stack and the card gives its rows to the text; c shows it anyway.
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not card.display
        app.set_focus(None)
        await pilot.press("c")
        assert card.display
        await pilot.press("c")
        assert not card.display
    assert not worker_children()


async def test_gpu_figures_then_gpu_lost_mid_run(monkeypatch):
    gpu = FakeGpu()
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(gpu))
    app = _app(max_tokens=64, autostart=True, interval=0.05)
    shown: list[tuple[str, str]] = []
    lost = asyncio.Event()

    def watch(slot, ev):
        pane = app.panes[0]
        if isinstance(ev, Sample) and ev.gpu_util is not None and pane.loaded and not gpu.procs:
            gpu.procs = [types.SimpleNamespace(pid=pane.loaded.pid, usedGpuMemory=300_000_000)]  # the worker now holds GPU memory
        label = pane.query_one(MetricsStrip).metric("gpu").text if isinstance(ev, (Sample, Token)) else ""
        if "300M" in label and not shown:  # a frame has just drawn a reading with this process's GPU memory
            shown.append((label, _text(pane.query_one(CardPanel))))
        if isinstance(ev, Token) and shown:
            gpu.lost = True  # the GPU falls off the bus while tokens stream
        if isinstance(ev, Sample) and ev.note == "GPU lost":
            lost.set()

    app.hooks.append(watch)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        gpu.lost = True  # in case every token came before the GPU was seen
        await wait_for(lost, "a GPU lost reading", TIMEOUT)
        await pilot.pause()
        pane = app.panes[0]
        label, card = shown[0]
        assert label.startswith("GPU 37%") and "300M" in label and "72W" in label and "54°C" in label
        assert "37 % util" in card and "this model 300 MB" in card
        assert "GPU lost" in pane.query_one(MetricsStrip).metric("gpu").text
        assert "GPU lost" in _text(pane.query_one(CardPanel))
        assert not pane.failed and pane.runs and pane.runs[0]["gen_tokens"] > 0
        assert "w " in pane.query_one(MetricsStrip).metric("mem").text  # the process figures go on
    assert not worker_children()


def test_shared_energy_is_null_with_its_reason():
    """The same run charged with a RAPL counter: alone it has a J/token, in a race none."""
    from backends.events import Finished, Started, Token

    c = RunCollector()
    c.add(Started(0.0, 5))
    for i, t in enumerate((1.0, 1.5, 2.0, 2.5)):
        c.add(Sample(t - 0.01, cpu_energy_j=10.0 * i))
        c.add(Token("x", t))
    c.add(Sample(2.6, cpu_energy_j=40.0))
    c.add(Finished(2.6, "length", 4))
    alone = c.result()
    assert alone["energy_j_per_token"] is not None and "RAPL" in alone["energy_note"]
    race = c.result(shared_energy=True)
    assert race["energy_j_per_token"] is None and "race mode" in race["energy_note"]
