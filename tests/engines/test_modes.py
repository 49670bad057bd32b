"""Race and alternate mode on the bundled pair through the real llama-cpp-python.

``bench`` in a subprocess for each mode (the mode and the placement land in every export), and
the TUI's ``m`` key switching a loaded pair to alternate mode with ``--runs 2``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from backends.base import GenParams
from backends.events import Note
from tests.conftest import worker_children
from tests.support.waiting import wait_for
from tui.app.app import ABTopApp
from tui.widgets.pane import ModelPane
from tui.widgets.stream_view import StreamView

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@pytest.mark.parametrize("mode", ["race", "alternate"])
def test_bench_in_each_mode_records_it(tmp_path, mode):
    out = tmp_path / "out.json"
    args = ["smollm2-135m", "gemma3-270m", "-p", "The sky is blue because", "-n", "8", "--runs", "2", "--warmup", "0",
            "--ctx", "512", "--mode", mode, "--json", str(out), "--csv", str(tmp_path / "o.csv"), "--md", str(tmp_path / "o.md")]  # fmt: skip
    p = subprocess.run([sys.executable, "-m", "tui.cli.main", "bench", *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert doc["params"]["mode"] == mode
    for m in doc["models"]:
        assert len(m["runs"]) == 2
        for r in m["runs"]:
            assert r["gen_tps"] > 0 and r["ttft_s"] > 0 and r["chars_per_s"] > 0 and r["tokens_per_100_chars"] > 0
        assert m["summary"]["gen_tps"]["min"] <= m["summary"]["gen_tps"]["median"] <= m["summary"]["gen_tps"]["max"]
    cpus = [set(m["cpus"]) for m in doc["models"]]
    threads = [m["threads"] for m in doc["models"]]
    if mode == "race" and CORES >= 2:  # the cores are split: each model its own half
        assert not (cpus[0] & cpus[1]) and threads == [CORES // 2] * 2
    if mode == "alternate":  # one at a time, each with every core
        assert threads == [CORES] * 2 and cpus[0] == cpus[1] == set(os.sched_getaffinity(0))
    rows = list(csv.DictReader((tmp_path / "o.csv").open()))
    assert len(rows) == 2 * 2 and {r["mode"] for r in rows} == {mode}
    md = (tmp_path / "o.md").read_text()
    assert f"| {mode} |" in md and "smollm2-135m" in md and "gemma3-270m" in md


async def test_m_switches_the_tui_to_alternate_and_runs_repeat(monkeypatch):
    # one thread each keeps this quick on a busy 2-core box; the placement still moves every core
    app = ABTopApp(["smollm2-135m", "gemma3-270m"], "The sky is blue because", GenParams(max_tokens=8), n_ctx=512,
                   runs=2, threads=1)  # fmt: skip
    log: list[tuple[str, int, str]] = []  # ("came" or "handled", pane, event type), in order
    real_handle = ModelPane.handle

    def handle(pane, ev):
        log.append(("handled", app.panes.index(pane), type(ev).__name__))
        real_handle(pane, ev)

    real_emit = app.emit

    def emit(slot, ev):
        log.append(("came", slot, type(ev).__name__))
        real_emit(slot, ev)

    monkeypatch.setattr(app, "emit", emit)  # the session calls app.emit for each event
    monkeypatch.setattr(ModelPane, "handle", handle)
    notes: list[tuple[int, str]] = []
    app.hooks.append(lambda slot, ev: notes.append((slot, ev.text)) if isinstance(ev, Note) else None)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(app.models_loaded, "both models to load")
        await pilot.pause()
        if CORES >= 2:  # race: each model on its own share
            assert not set(app.panes[0].loaded.cpus) & set(app.panes[1].loaded.cpus)
        assert [p.border_subtitle for p in app.panes] == ["race", "race"]
        assert app.focused is None  # the prompt starts unfocused: letters are commands at once
        assert _footer_keys(app)["m"] == "Mode: race"
        await pilot.press("m")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.mode == "alternate" and _footer_keys(app)["m"] == "Mode: alternate"
        assert [p.border_subtitle for p in app.panes] == ["alternate", "alternate"]
        everything = set(os.sched_getaffinity(0))
        assert [set(p.loaded.cpus) for p in app.panes] == [everything, everything]  # all cores each, in turn
        assert "thr" in str(app.panes[0].query_one(".header").render())
        app.run_finished.clear()
        await pilot.press("enter")
        await wait_for(app.run_finished, "two alternate runs of both models to finish")
        await pilot.pause()
        # a turn's end (its figures, a relayout: UI work) is taken before the next model starts
        # (Session.before_turn), not while that model reads its prompt or streams
        came = [i for i, (what, _, kind) in enumerate(log) if what == "came" and kind == "Finished"]
        taken = [i for i, (what, _, kind) in enumerate(log) if what == "handled" and kind == "Finished"]
        assert len(came) == len(taken) == 4
        for c, t in zip(came[:-1], taken[:-1], strict=True):  # the last one ends the run: no turn after it
            started = next(i for i in range(c, len(log)) if log[i][0] == "came" and log[i][2] == "Started")
            assert t < started, f"a turn's end was taken after the next model started: {log[c - 1 : t + 1]}"
        # the waiting pane said so while the other ran alone
        assert any(slot == 1 and "waiting" in text and "alternate" in text for slot, text in notes)
        assert any(slot == 0 and "waiting" in text for slot, text in notes)
        for pane in app.panes:
            assert len(pane.runs) == 2 and {r["mode"] for r in pane.runs} == {"alternate"}
            stats = str(pane.query_one(".stats").render())
            assert stats.startswith("alternate") and "2 runs, median (min–max)" in stats
            assert "chars/s" in stats and "tok/100 chars" in stats
            assert pane.query_one(StreamView)._message is None  # nobody is waiting once it is over
        # Enter again with the same prompt and mode: the runs add up, each with its own number
        app.run_finished.clear()
        await pilot.press("enter")
        await wait_for(app.run_finished, "two more alternate runs to finish")
        await pilot.pause()
        for pane in app.panes:
            assert [r["run"] for r in pane.runs] == [0, 1, 2, 3]
            assert "4 runs, median (min–max)" in str(pane.query_one(".stats").render())
        await pilot.press("q")
    assert not worker_children()


def _footer_keys(app) -> dict[str, str]:
    """Key → description of the bindings the footer shows now."""
    return {b.binding.key: b.binding.description for b in app.screen.active_bindings.values() if b.binding.show}


async def test_m_pressed_while_loading_places_the_models_once_loaded():
    app = ABTopApp(["smollm2-135m", "gemma3-270m"], "The sky is blue because", GenParams(max_tokens=4), n_ctx=512)
    async with app.run_test(size=(120, 40)) as pilot:
        # m once the session exists and its workers are still loading
        await wait_for(lambda: app.session is not None, "the session to be made", poll=0.005)
        await pilot.press("m")
        assert not app.models_loaded.is_set()
        await wait_for(app.models_loaded, "both models to load")
        await app.workers.wait_for_complete()
        await pilot.pause()
        everything = set(os.sched_getaffinity(0))
        assert app.session.mode == "alternate"
        assert [set(p.loaded.cpus) for p in app.panes] == [everything, everything]
        await pilot.press("q")
    assert not worker_children()


async def test_export_after_switching_mode_keeps_the_mode_and_cores_the_runs_had(tmp_path):
    app = ABTopApp(["smollm2-135m", "gemma3-270m"], "The sky is blue because", GenParams(max_tokens=6), n_ctx=512,
                   autostart=True, results_dir=tmp_path)  # fmt: skip
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(app.run_finished, "the first run to finish")
        await pilot.pause()
        raced = [(p.loaded.threads, list(p.loaded.cpus)) for p in app.panes]
        await pilot.press("m")  # alternate from now on: all cores each
        await app.workers.wait_for_complete()
        await pilot.press("e")
        await app.workers.wait_for_complete()
        await pilot.press("q")
    doc = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert doc["params"]["mode"] == "race"
    assert [(m["threads"], m["cpus"]) for m in doc["models"]] == raced
    assert all(r["mode"] == "race" for m in doc["models"] for r in m["runs"])
