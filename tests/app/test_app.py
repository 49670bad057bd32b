"""The TUI through Textual's Pilot, with the real llama-cpp-python on the bundled models."""

from __future__ import annotations

import asyncio
import json
import os
import signal

from textual.widgets import Static

from backends.base import GenParams
from backends.events import Finished, Sample, Started, Token
from tests.conftest import worker_children, write_tiny_gguf
from tests.support.waiting import wait_for
from tui.app.app import ABTopApp
from tui.widgets.host import HostBar, host_text
from tui.widgets.metrics import MetricsStrip
from tui.widgets.stream_view import StreamView
from tui.widgets.texts import TextScreen

TIMEOUT = 180


def make_app(specs=("smollm2-135m", "gemma3-270m"), max_tokens=12, **kw) -> ABTopApp:
    return ABTopApp(list(specs), "The sky is blue because", GenParams(max_tokens=max_tokens), n_ctx=512, **kw)


async def test_both_bundled_models_stream_to_completion():
    app = make_app(autostart=True)
    seen: list[tuple[int, object]] = []
    app.hooks.append(lambda slot, ev: seen.append((slot, ev)))
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        for pane in app.panes:
            assert not pane.failed
            assert len(pane.runs) == 1
            r = pane.runs[0]
            assert r["gen_tokens"] > 0 and r["gen_tps"] > 0 and r["ttft_s"] > 0
            assert pane.query_one(StreamView).text == r["text"]
            stats = str(pane.query_one(".stats").render())
            assert "TTFT" in stats and "tok/s" in stats
            assert {"eos": "stop: end of text", "length": "stop: max tokens"}[r["stop"]] in stats
        header1 = str(app.panes[1].query_one(".header").render())
        assert "completion mode" in header1 and "gemma3" in header1
        # race mode on this box: the cores are split between the two workers
        cpus = [set(p.loaded.cpus) for p in app.panes]
        if len(os.sched_getaffinity(0)) >= 2:
            assert not (cpus[0] & cpus[1])
        assert {slot for slot, ev in seen if isinstance(ev, Finished)} == {0, 1}
        # telemetry of each model's own process reached its pane; the whole box's beside the prompt
        assert app.panes[0].query_one(MetricsStrip).metric("mem").history
        host = str(app.query_one(HostBar).render())
        assert host.startswith("host CPU ") and "% · RAM " in host and " GB" in host
        # t: each model's whole text, side by side; Esc back
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, TextScreen)
        shown = [str(w.render()) for w in app.screen.query(Static)]
        assert shown == [p.runs[0]["text"] for p in app.panes]
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, TextScreen)
    assert not worker_children()


async def test_killed_worker_is_isolated_to_its_pane():
    app = make_app(max_tokens=60, autostart=True)
    killed = []

    def kill_after_three_tokens(slot, ev):
        if slot == 0 and isinstance(ev, Token) and not killed:
            pane = app.panes[0]
            if pane.collector and pane.collector.n_tokens >= 3:
                killed.append(pane.loaded.pid)
                os.kill(pane.loaded.pid, signal.SIGKILL)

    app.hooks.append(kill_after_three_tokens)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        lost, other = app.panes
        assert killed and lost.failed
        assert "worker lost" in str(lost.query_one(".stats").render())
        reason = lost.query_one(StreamView).render().plain
        assert "smollm2-135m: worker lost (killed by SIGKILL)" in reason  # the alias; kill -9 is no OOM
        for metric in ("cpu", "mem"):  # a dead process's last readings are not left up
            assert "gone" in lost.query_one(MetricsStrip).metric(metric).text
        assert not other.failed and other.runs and other.runs[0]["gen_tokens"] > 0
        # the app goes on: a rerun streams again in the surviving pane, and the lost model is
        # loaded again in a new worker and streams too
        app.run_finished.clear()
        await pilot.press("r")
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        assert len(other.runs) == 2
        assert not lost.failed and lost.loaded.pid != killed[0] and lost.runs[-1]["gen_tokens"] > 0
        await pilot.press("q")
    assert not worker_children()


async def test_bad_model_fails_in_its_pane_while_other_works(tmp_path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF but not really")
    app = make_app(specs=(str(bogus), "smollm2-135m"), autostart=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        bad, good = app.panes
        assert bad.failed
        assert "bogus.gguf" in bad.query_one(StreamView).render().plain
        assert good.runs and good.runs[0]["gen_tokens"] > 0
    assert not worker_children()


async def test_a_model_the_engine_rejects_leaves_its_cores_to_the_other(tmp_path):
    """A GGUF with a valid header but no usable weights fails inside llama.cpp, after the cores
    were split for two: the survivor then gets them all, as if it had been alone from the start."""
    broken = write_tiny_gguf(tmp_path / "broken.gguf", "llama", {}, {"token_embd.weight": (4, 8)})
    app = make_app(specs=(broken, "smollm2-135m"))
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.models_loaded, "the models to load", TIMEOUT)
        await pilot.pause()
        bad, good = app.panes
        assert bad.failed and "broken.gguf" in bad.query_one(StreamView).render().plain
        everything = sorted(os.sched_getaffinity(0))
        assert good.loaded.cpus == everything and good.loaded.threads == len(everything)
        assert f"{len(everything)} thr" in str(good.query_one(".header").render())
    assert not worker_children()


async def test_escape_cancels_both_and_quit_leaves_nothing():
    app = make_app(max_tokens=400, autostart=True)
    cancelled = asyncio.Event()

    def cancel_when_streaming(slot, ev):
        if isinstance(ev, Token) and all(p.collector and p.collector.n_tokens >= 2 for p in app.panes):
            cancelled.set()

    app.hooks.append(cancel_when_streaming)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(cancelled, "two tokens in both panes", TIMEOUT)
        await pilot.press("escape")
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        for pane in app.panes:
            # a cancelled run is shown but never counted: no median or export quotes half a run
            assert pane.collector.finished.stop == "cancelled" and pane.collector.n_tokens < 400
            assert pane.runs == []
            assert "cancelled" in str(pane.query_one(".stats").render())
        await pilot.press("q")
    assert not worker_children()


async def test_missing_file_sentence_in_pane():
    app = make_app(specs=("/nonexistent/model.gguf", "smollm2-135m"))
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.models_loaded, "the models to load", TIMEOUT)
        await pilot.pause()
        text = app.panes[0].query_one(StreamView).render().plain
        assert "no such file" in text
        assert app.panes[1].loaded is not None


async def test_a_prompt_too_long_for_one_model_costs_it_one_try_and_its_sentence_stays():
    """The chat template makes SmolLM2's prompt ~30 tokens longer than Gemma's bare one: at the
    smallest context this prompt fits Gemma only. In alternate mode with three runs, SmolLM2 is
    tried once, says why, and keeps saying it; Gemma runs all three."""
    prompt = "the sky is blue because " * 48
    app = ABTopApp(["smollm2-135m", "gemma3-270m"], prompt, GenParams(max_tokens=4), n_ctx=256,
                   mode="alternate", runs=3, autostart=True)  # fmt: skip
    started = {0: 0, 1: 0}
    app.hooks.append(lambda slot, ev: started.__setitem__(slot, started[slot] + 1) if isinstance(ev, Started) else None)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        small, gemma = app.panes
        assert started == {0: 1, 1: 3}
        assert small.failed and small.runs == []
        message = " ".join(small.query_one(StreamView).render().plain.split())  # unwrapped
        assert "270 tokens but the context holds 256" in message  # still there after Gemma's runs
        assert [r["run"] for r in gemma.runs] == [0, 1, 2] and all(r["gen_tokens"] > 0 for r in gemma.runs)
        await pilot.press("q")
    assert not worker_children()


async def test_enter_loads_again_a_server_that_was_not_there():
    """A pane whose server was down at start comes back on the next Enter once it is up (a small
    OpenAI-compatible replay server on loopback; the local model is the real engine)."""
    from tests.support.replay_server import ReplayServer, free_port, json_route, lines_route

    port = free_port()
    app = make_app(specs=(f"openai:tiny@http://127.0.0.1:{port}/v1", "smollm2-135m"), autostart=True)
    chunk = lambda text, finish=None: ["data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}), ""]  # noqa: E731
    routes = {
        ("GET", "/v1/models"): json_route(200, {"object": "list", "data": [{"id": "tiny", "object": "model"}]}),
        ("POST", "/v1/chat/completions"): lines_route(chunk("Hello") + chunk(" there", "stop") + ["data: [DONE]", ""]),
    }
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        remote, local = app.panes
        assert remote.failed and local.runs
        with ReplayServer(routes, port=port):
            app.run_finished.clear()
            await pilot.press("enter")
            await wait_for(app.run_finished, "the run to finish", TIMEOUT)
            await pilot.pause()
            assert not remote.failed and remote.runs and remote.runs[-1]["text"] == "Hello there"
            assert len(local.runs) == 2
            await pilot.press("q")
    assert not worker_children()


def test_host_line_names_swap_only_when_the_box_swaps():
    assert host_text(50.0, 2_100_000_000, 25_300_000_000, 0, 1.25) == "host CPU 50% · RAM 2.1/25.3 GB · load 1.2"
    assert "swap 512 MB" in host_text(99.0, 1, 2, 512_000_000, None)
    assert host_text(50.0, 2_100_000_000, 25_300_000_000, 0, 1.25, compact=True) == "host 50% RAM 2.1/25G ld 1.2"


async def test_a_run_shorter_than_the_sampling_interval_exports_its_memory(tmp_path):
    """n=2 finishes between two telemetry samples: the run's figures come from the reading on
    screen before it (the collector is seeded with it), so the export's peaks are not null."""
    app = make_app(max_tokens=2, interval=5.0, results_dir=tmp_path)
    sampled = asyncio.Event()
    seen: set[int] = set()

    def hook(slot, ev):
        if isinstance(ev, Sample) and ev.rss_bytes:
            seen.add(slot)
            if seen == {0, 1}:
                sampled.set()

    app.hooks.append(hook)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.models_loaded, "the models to load", TIMEOUT)
        await wait_for(sampled, "a memory reading of both models", TIMEOUT)
        app.run_finished.clear()
        app.action_run()
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.press("e")
        await app.workers.wait_for_complete()
        await pilot.pause()
        (doc_path,) = tmp_path.glob("*.json")
        doc = json.loads(doc_path.read_text())
    for m in doc["models"]:
        (r,) = m["runs"]
        assert r["gen_tokens"] <= 2
        assert r["peak_rss_bytes"] and r["peak_anon_bytes"] and r["weights_resident_bytes"], r


async def test_the_bandwidth_probe_waits_for_the_models_to_load(monkeypatch, tmp_path):
    """The probe saturates every core for about a second: beside a loading model it would measure
    the load (and the load would be slower). It runs once both models are loaded, before a run."""
    import backends.telemetry.hardware as hw

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no cached figure: the probe runs
    app = make_app(autostart=True)
    seen = []
    real = hw.probe_bandwidth

    def probe(*a, **k):
        seen.append([p.loaded is not None for p in app.panes] + [app.session is not None and app.session.running])
        return real(*a, **k)

    monkeypatch.setattr(hw, "probe_bandwidth", probe)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        assert seen == [[True, True, False]]
        assert all(p.query_one("CardPanel").bandwidth_gbs for p in app.panes)


async def test_a_stopped_worker_is_said_and_enter_kills_and_reloads_it(monkeypatch):
    """kill -STOP on a worker mid-stream: the pane says "worker not responding" (after
    ABTOP_STALL_TIMEOUT), the other pane finishes, and Enter kills the stopped worker and loads
    the model again."""
    import psutil

    monkeypatch.setenv("ABTOP_STALL_TIMEOUT", "1.5")
    app = make_app(max_tokens=60, autostart=True)
    stopped = []

    def stop_after_two_tokens(slot, ev):
        if slot == 0 and isinstance(ev, Token) and not stopped:
            pane = app.panes[0]
            if pane.collector and pane.collector.n_tokens >= 2:
                stopped.append(pane.loaded.pid)
                os.kill(pane.loaded.pid, signal.SIGSTOP)

    app.hooks.append(stop_after_two_tokens)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        hung, other = app.panes
        assert stopped and hung.failed and not other.failed
        reason = hung.query_one(StreamView).render().plain
        assert "smollm2-135m: worker not responding" in reason
        assert "Enter" in str(hung.query_one(".stats").render())
        assert psutil.Process(stopped[0]).status() == psutil.STATUS_STOPPED
        app.run_finished.clear()
        await pilot.press("enter")
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        assert not hung.failed and hung.loaded.pid != stopped[0] and hung.runs[-1]["gen_tokens"] > 0
        assert not psutil.pid_exists(stopped[0]) or psutil.Process(stopped[0]).status() == psutil.STATUS_ZOMBIE
        await pilot.press("q")
    assert not worker_children()


async def test_a_print_while_the_app_runs_is_captured_not_a_crash():
    """Textual captures print() through App._flush(stderr=...); the app's frame timer must not shadow it."""
    app = make_app(specs=("smollm2-135m",))
    async with app.run_test() as pilot:
        print("a library prints while abtop runs", flush=True)
        await pilot.pause()
        assert app.is_running


async def test_each_model_starts_with_the_screen_drawn():
    """Alternate: before each model is told to start, what its turn changed on screen (its
    streaming border, its emptied text, "esc Stop") and what the last turn's end changed (that
    model's final figures, its border) are already drawn: drawn at a first token, the restyles,
    the footer's recompose and the relayouts took ~40 ms of a core inside the window gen t/s
    times (``ABTopApp._before_turn``)."""
    from textual.widgets._footer import FooterKey

    from tui.widgets.lean_screen import owes_drawing

    app = make_app(max_tokens=6, mode="alternate")
    seen: list[dict] = []
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.models_loaded, "the models to load", TIMEOUT)
        for k, backend in enumerate(app.session.backends):

            def watch(k=k, real=backend.stream):
                async def stream(prompt, params):
                    pane = app.panes[app.slots[k]]
                    other = app.panes[app.slots[1 - k]]
                    seen.append({
                        "slot": k,
                        "owes": owes_drawing(app),
                        "border": pane.has_class("-streaming"),
                        "empty": pane.query_one(StreamView).text == "",
                        "stop": any(key.action == "cancel" for key in app.query(FooterKey)),
                        "other_streaming": other.has_class("-streaming"),
                        "other_runs": len(other.runs),
                    })  # fmt: skip
                    async for ev in real(prompt, params):
                        yield ev

                return stream

            backend.stream = watch()
        await pilot.press("enter")
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        assert [s["slot"] for s in seen] == [0, 1]
        for s in seen:
            assert not s["owes"] and s["border"] and s["empty"] and s["stop"] and not s["other_streaming"], s
        assert seen[1]["other_runs"] == 1  # the first model's figures were in before the second started
        assert all(len(p.runs) == 1 and not p.has_class("-streaming") for p in app.panes)
