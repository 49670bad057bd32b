"""``ollama:NAME`` the server lacks: offered in the pane, pulled with ``p`` (its progress in the
pane), and in ``bench`` only with ``--pull``. Ollama cannot run here: the server is the replay of
its documented API (``tests/servers/test_ollama_backend.py``, ``/api/pull`` in ``tests/support/replay_server.py``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from backends.base import GenParams
from backends.events import Loaded, Progress
from tests.servers.test_ollama_backend import MODEL, pulling_routes
from tests.support.replay_server import ReplayServer
from tests.support.waiting import wait_for
from tui.app.app import ABTopApp


async def test_p_pulls_the_missing_model_into_its_pane():
    pulled: list[str] = []
    with ReplayServer(pulling_routes(pulled)) as srv:
        app = ABTopApp([f"ollama:{MODEL}@{srv.url}", "smollm2-135m"], "The sky is", GenParams(max_tokens=8), n_ctx=512)
        seen: list = []
        back = asyncio.Event()
        app.hooks.append(lambda slot, ev: (seen.append((slot, ev)), isinstance(ev, Loaded) and slot == 0 and back.set()))
        async with app.run_test(size=(160, 45)) as pilot:
            await wait_for(app.models_loaded, "the models to load", 120)
            await pilot.pause()
            pane = app.panes[0]
            assert pane.failed and not pulled
            text = pane.query_one("StreamView")._message.plain
            assert "press p to pull it here, or pull it with `ollama pull llama3.2`" in text
            await pilot.press("p")
            await wait_for(back, "the pulled model to load in pane A", 60)
            await pilot.pause()
            assert pulled == [MODEL] and not pane.failed
            assert any(slot == 0 and isinstance(ev, Progress) and ev.finished for slot, ev in seen)
            assert "ready" in str(pane.query_one(".stats").render())
            await pilot.press("p")  # nothing is missing now: a toast says so, nothing is pulled again
            await pilot.pause()
            assert [p for _, p, _, _ in srv.requests].count("/api/pull") == 1


def test_bench_pulls_only_with_pull():
    pulled: list[str] = []
    with ReplayServer(pulling_routes(pulled)) as srv:
        spec = f"ollama:{MODEL}@{srv.url}"
        args = [sys.executable, "-m", "tui.cli.main", "bench", spec, "-n", "8", "--warmup", "0"]
        p = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and not pulled
        assert "add --pull to pull it, or pull it with `ollama pull llama3.2`" in p.stderr
        p = subprocess.run([*args, "--pull"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert pulled == [MODEL]
    assert f"abtop: {MODEL}: not on this Ollama server; pulling it (ollama pull {MODEL})" in p.stderr
    assert "pulling 6a0746a1ec1a" in p.stderr and "| llama3.2 |" in p.stdout
