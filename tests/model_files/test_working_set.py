"""Twins of the three architectures through the real engine, and the working-set probe on them.

The probe runs with ``--repack off``: on this box's AVX-512 CPU llama.cpp would otherwise copy the
Q4_K matrices into anonymous CPU_REPACK buffers at load, and their file pages would (correctly)
show as untouched; the groups' ``repacked`` flag is checked in a run with repack on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from backends.base import GenParams
from backends.card.workingset import curve_points, group_of
from backends.engines.llamacpp import LlamaCppBackend
from backends.events import Finished, Token
from tests.support.waiting import wait_for
from tui.app.app import ABTopApp
from tui.widgets.card import CardPanel

ABTOP = [sys.executable, "-m", "tui.cli.main"]
TIMEOUT = 300


def _bench(tmp_path, *args):
    out = tmp_path / "out.json"
    p = subprocess.run(
        [*ABTOP, "bench", *args, "-p", "The capital of France is", "--ctx", "512", "--runs", "1", "--warmup", "0",
         "--working-set", "--repack", "off", "--json", str(out)],
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    return json.loads(out.read_text()), p.stdout


def _split(m):
    probe = [r for r in m["runs"] if r["probe"]]
    speed = [r for r in m["runs"] if not r["probe"]]
    assert len(probe) == 1 and len(speed) == 1
    return speed[0], probe[0]


def _pct(ws, group):
    g = ws["groups"][group]
    return g["touched_bytes"] / g["bytes"]


def test_ple_and_dense_twins_bench_with_a_working_set(tiny_twins, tmp_path):
    doc, table = _bench(tmp_path, str(tiny_twins["gemma-4-e2b"]), str(tiny_twins["qwen2.5-3b"]), "-n", "24")
    gemma, qwen = doc["models"]
    for m in doc["models"]:
        assert m["synthetic"] is True and m["info"]["synthetic"] is True and m["lazy_ple"] == "auto"
        speed, probe = _split(m)
        assert speed["stop"] == probe["stop"] == "length" and speed["gen_tokens"] == 24  # no end-of-text
        assert probe["text"] == speed["text"]  # the probe changes where pages come from, not the result
        assert (
            speed["working_set"] is None and probe["working_set"] is not None and probe["lazy_ple"] == "auto"
        )
        assert m["summary"]["gen_tps"]["n"] == 1  # the probe run is not a speed figure
        curve = probe["working_set"]["curve"]
        assert [c[0] for c in curve] == [1, 8, 24] and curve[-1][1] >= curve[0][1] > 0
        assert not any(g["repacked"] for g in probe["working_set"]["groups"].values())
    ws_g, ws_q = _split(gemma)[1]["working_set"], _split(qwen)[1]["working_set"]
    assert set(ws_g["groups"]) == {"token_embd", "ple", "attention", "ffn", "other"}
    assert _pct(ws_g, "ple") < 0.2  # one row per token and layer of the PLE table
    assert _pct(ws_g, "attention") >= 0.9 and _pct(ws_g, "ffn") >= 0.9
    assert _pct(ws_q, "attention") >= 0.9 and _pct(ws_q, "ffn") >= 0.9  # dense: every weight, every token
    assert "Weights working set" in table and "(synthetic)" in table


def test_moe_twin_reads_most_experts(tiny_twins, tmp_path):
    # Sampled (seeded): greedy on random weights repeats one token, which routes to the same experts.
    doc, _ = _bench(tmp_path, str(tiny_twins["olmoe-1b-7b"]), "-n", "48", "--temperature", "1.0")
    speed, probe = _split(doc["models"][0])
    assert probe["text"] == speed["text"] and speed["gen_tokens"] == 48
    ws = probe["working_set"]
    assert _pct(ws, "experts") >= 0.6 and _pct(ws, "attention") >= 0.9
    curve = ws["curve"]
    assert curve[0][1] < curve[-1][1]  # experts come in as tokens route to them


async def test_repacked_groups_are_marked_and_lazy_ple_is_recorded(tiny_twins):
    b = LlamaCppBackend("g", tiny_twins["gemma-4-e2b"], n_ctx=256, lazy_ple="on")
    try:
        lo = await b.load()
        assert lo.lazy_ple == "on" and lo.repack is True
        assert b.lazy_tensors == ["per_layer_token_embd.weight"]
        fin = None
        async for ev in b.stream("hello", GenParams(max_tokens=8, working_set=True)):
            if isinstance(ev, Finished):
                fin = ev
        groups = fin.working_set["groups"]
        assert groups["ffn"]["repacked"] and groups["attention"]["repacked"]
        assert not groups["ple"]["repacked"] and not groups["token_embd"]["repacked"]
        assert groups["ffn"]["touched_bytes"] < 0.1 * groups["ffn"]["bytes"]  # read from the anon copy
        assert "CPU_REPACK" in fin.working_set["note"]
    finally:
        await b.close()


@pytest.mark.skipif(not shutil.os.path.isdir("/dev/shm"), reason="needs a tmpfs at /dev/shm")
async def test_pages_that_cannot_be_evicted_give_null_and_a_reason(tiny_twins, tmp_path):
    """tmpfs pages have no file to be written back to (no swap here): eviction must be checked."""
    shm = shutil.copy(tiny_twins["qwen2.5-3b"], f"/dev/shm/abtop-test-{tmp_path.name}.gguf")
    b = LlamaCppBackend("q", shm, n_ctx=256)
    try:
        await b.load()
        fin = None
        async for ev in b.stream("hello", GenParams(max_tokens=4, working_set=True)):
            if isinstance(ev, Finished):
                fin = ev
        assert fin.working_set is None and "could not evict" in fin.working_set_note
    finally:
        await b.close()
        shutil.os.unlink(shm)


async def test_tui_streams_two_twins_and_the_card_shows_the_working_set(tiny_twins):
    app = ABTopApp(
        [str(tiny_twins["gemma-4-e2b"]), str(tiny_twins["olmoe-1b-7b"])],
        "The capital of France is",
        GenParams(max_tokens=12),
        n_ctx=512,
        autostart=True,
        working_set=True,
        engine_options={"repack": False},
    )
    seen = []
    app.hooks.append(lambda slot, ev: seen.append((slot, ev)))
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        for i, pane in enumerate(app.panes):
            assert not pane.failed
            assert "synthetic: true" in str(pane.query_one(".header").render())
            assert [r["probe"] for r in pane.runs] == [False, True]
            assert sum(1 for s, ev in seen if s == i and isinstance(ev, Token)) >= 24
            rows = dict((label, v) for label, v, _ in pane.query_one(CardPanel).rows())
            assert rows["twin"].startswith("true: a shape twin")
            assert ("ple " if i == 0 else "experts ") in rows["touched"] and "%" in rows["touched"]
            assert "working-set probe" in str(pane.query_one(".stats").render())


def test_groups_and_curve_points():
    assert group_of("per_layer_token_embd.weight") == "ple"
    assert group_of("blk.3.ffn_up_exps.weight") == "experts"
    assert group_of("blk.3.attn_q.weight") == "attention"
    assert group_of("blk.3.attn_q_norm.weight") == "other"
    assert group_of("blk.3.ffn_down.weight") == "ffn"
    assert group_of("output.weight") == "output" and group_of("output_norm.weight") == "other"
    assert group_of("per_layer_model_proj.weight") == "other"
    assert curve_points(64) == [1, 8, 32, 64] and curve_points(600) == [1, 8, 32, 128, 512, 600]
    assert curve_points(5) == [1, 5]


async def test_probe_works_across_the_holes_repacking_leaves_in_the_mapping(tiny_twins):
    """llama.cpp unmaps the file fragments it repacked: madvise/mincore over the whole span would
    fail (ENOMEM), so the probe works per mapping."""
    b = LlamaCppBackend("q", tiny_twins["qwen2.5-3b"], n_ctx=256)
    try:
        await b.load()
        fin = None
        async for ev in b.stream("hello", GenParams(max_tokens=4, working_set=True)):
            if isinstance(ev, Finished):
                fin = ev
        assert fin.working_set_note is None, fin.working_set_note
        groups = fin.working_set["groups"]
        assert (
            groups["ffn"]["repacked"]
            and groups["token_embd"]["touched_bytes"] == groups["token_embd"]["bytes"]
        )
    finally:
        await b.close()


def test_a_sweep_of_one_file_probes_each_column(tiny_twins, tmp_path):
    """Two workers map one file (a sweep): each probe finds its pages evicted, because the other
    worker drops its own mapping's pages for it (a page another process maps stays in memory)."""
    doc, table = _bench(tmp_path, str(tiny_twins["qwen2.5-3b"]), "--sweep", "kv=f16,q8_0", "-n", "8")
    for m in doc["models"]:
        _, probe = _split(m)
        assert probe["working_set"] is not None, probe.get("working_set_note")
        assert _pct(probe["working_set"], "attention") >= 0.9 and _pct(probe["working_set"], "ffn") >= 0.9
    assert "could not evict" not in table


async def test_w_turns_the_probe_on_for_the_next_runs_and_off_again(smollm2_path, tmp_path):
    """``w`` in the app: each run then ends with one probe run (its card shows the bytes touched
    per tensor group); ``w`` again, and runs are speed runs only. A private copy of the bundled
    smollm2, alone: the probe evicts the file's pages first, which it cannot while another test
    beside this one maps the shared file."""
    model = tmp_path / "smollm2.gguf"
    shutil.copyfile(smollm2_path, model)
    app = ABTopApp([str(model)], "The capital of France is", GenParams(max_tokens=4), n_ctx=512,
                   engine_options={"repack": False})  # fmt: skip
    said = lambda: [str(n.message) for n in app._notifications]  # noqa: E731
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.models_loaded, "smollm2 to load")
        pane = app.panes[0]
        await pilot.press("w")
        await wait_for(lambda: any(m.startswith("working-set probe on: ") for m in said()), "w to say the probe is on",
                       30, pilot=pilot)  # fmt: skip
        app.run_finished.clear()
        await pilot.press("enter")
        await wait_for(app.run_finished, "a run and its probe run to finish")
        await pilot.pause()
        assert [r["probe"] for r in pane.runs] == [False, True]
        assert pane.runs[1]["working_set"] is not None and pane.runs[0]["working_set"] is None, pane.runs[1].get("working_set_note")
        rows = dict((label, v) for label, v, _ in pane.query_one(CardPanel).rows())
        assert "%" in rows["touched"], rows["touched"]
        await pilot.press("w")
        await wait_for(lambda: "working-set probe off." in said(), "w again to say the probe is off", 30, pilot=pilot)
        app.run_finished.clear()
        await pilot.press("enter")
        await wait_for(app.run_finished, "a run without a probe to finish")
        await pilot.pause()
        assert [r["probe"] for r in pane.runs] == [False, True, False]
        await pilot.press("q")
