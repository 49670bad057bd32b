"""Blocking calls (the GGUF card read, psutil's net_connections, smaps and NVML at sampler start)
run in a thread, never on the event loop: a TUI redraw or a token must not wait for them.

Each is wrapped (the real function still runs) to record whether it ran on the loop's thread."""

from __future__ import annotations

import asyncio
import threading

from backends.base import GenParams
from backends.catalog import make_backend
from backends.events import Failed
from backends.session import RunPlan, Session


def spy(monkeypatch, module, name: str, calls: list) -> None:
    real = getattr(module, name)

    def wrapped(*args, **kw):
        calls.append((name, threading.current_thread() is threading.main_thread()))
        return real(*args, **kw)

    monkeypatch.setattr(module, name, wrapped)


async def test_loading_reads_cards_processes_and_sockets_off_the_loop(monkeypatch, llama_server):
    import backends.engines.llamacpp as llamacpp
    import backends.engines.openai as openai
    import backends.session as session

    url, _proc, _path = llama_server
    calls: list[tuple[str, bool]] = []
    spy(monkeypatch, llamacpp, "read_card", calls)
    spy(monkeypatch, openai, "server_pid", calls)
    spy(monkeypatch, openai, "gguf_of", calls)
    spy(monkeypatch, openai, "_merge_card", calls)
    spy(monkeypatch, session, "ProcessSampler", calls)
    events = []
    s = Session(
        [make_backend("smollm2-135m", n_ctx=512), make_backend(f"openai:smollm2@{url}")],
        lambda i, ev: events.append((i, ev)),
        mode="alternate",
    )
    try:
        await s.load()
        await s.run(RunPlan("Say hi.", GenParams(max_tokens=2), mode="alternate"))
    finally:
        await s.close()
    assert not [ev for _, ev in events if isinstance(ev, Failed)]
    names = {n for n, _ in calls}
    assert {"read_card", "server_pid", "ProcessSampler"} <= names, calls
    on_loop = [n for n, main in calls if main]
    assert on_loop == [], f"ran on the event loop: {on_loop}"
    assert threading.current_thread() is threading.main_thread() and asyncio.get_running_loop()
