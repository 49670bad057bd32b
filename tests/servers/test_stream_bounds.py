"""A stream must end when it stops carrying data, and must never grow without bound.

Real sockets on loopback (``tests/support/replay_server.py``): an OpenAI-compatible server that sends one
token and then only SSE keep-alive comments, one that streams bytes with no line break, and the
same line without end in Ollama's NDJSON (a chat and a pull). Ollama cannot be installed here:
its stream is replayed as its API documentation gives it.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from backends.base import BackendError, GenParams
from backends.engines import httpbase
from backends.engines.ollama import OllamaBackend
from backends.events import Failed, Started, Token
from backends.specs import parse_spec
from tests.servers.test_http_failures import MODELS, assert_sentence, backend_for, sse
from tests.servers.test_ollama_backend import MODEL, ollama_routes
from tests.support.replay_server import Handler, ReplayServer, json_route

DEADLINE_S = 60
FLOOD_BYTES = 24 << 20
"""What a flooding route sends at most (then it stalls): past the cap, bounded for the box."""


async def events_of(backend, deadline: float = DEADLINE_S) -> list:
    async def collect():
        return [ev async for ev in backend.stream("hi", GenParams(max_tokens=8))]

    try:
        return await asyncio.wait_for(collect(), deadline)
    except asyncio.TimeoutError:
        pytest.fail(f"the stream did not end within {deadline} s")


async def run_against(routes: dict, kind: str = "openai", stall_timeout: float | None = None) -> tuple[list, str]:
    """One run of an ``openai`` or ``ollama`` backend against a server replaying ``routes``: its
    events and the server's URL (which the sentence must name)."""
    kw = {} if stall_timeout is None else {"stall_timeout": stall_timeout}
    with ReplayServer(routes) as srv:
        if kind == "ollama":
            backend = OllamaBackend(parse_spec(f"ollama:{MODEL}@{srv.url}"), **kw)
        else:
            backend = backend_for(srv.url, **kw)
        await backend.load()
        events = await events_of(backend)
        await backend.close()
    return events, srv.url


def flood(h: Handler, ctype: str, first: bytes = b"") -> None:
    """``first``, then bytes with no line break until the cap is well passed, then nothing."""
    h.start_stream(ctype)
    try:
        h.wfile.write(first)
        for _ in range(FLOOD_BYTES >> 16):
            h.wfile.write(b"x" * (1 << 16))
        h.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):
        return
    h.stall()


async def test_keep_alives_alone_are_a_stall():
    """One token, then a ``: keep-alive`` comment every 0.1 s: no data for the stall timeout is a
    stall, however many bytes keep the socket busy (httpx's read timeout never fires)."""

    def keep_alive(h: Handler) -> None:
        h.start_stream("text/event-stream")
        for line in sse("Hello"):
            h.write_line(line)
        while not h.server.stopping.is_set() and h.write_line(": keep-alive", delay=0.1):
            pass

    routes = {("GET", "/v1/models"): json_route(200, MODELS), ("POST", "/v1/chat/completions"): keep_alive}
    events, url = await run_against(routes, stall_timeout=0.8)
    assert [type(e) for e in events] == [Started, Token, Failed]
    assert_sentence(events[-1].reason, url)
    assert "the stream stalled: no data for 0.8 s, only keep-alives" in events[-1].reason


async def test_empty_events_alone_are_a_stall():
    """One token, then an event with an empty delta every 0.1 s: events, but none brings a token,
    so they hold a run open no longer than keep-alive comments do (bench hung until killed)."""

    def empty_deltas(h: Handler) -> None:
        h.start_stream("text/event-stream")
        for line in sse("Hello"):
            h.write_line(line)
        while not h.server.stopping.is_set() and h.write_line(sse("")[0] + "\n", delay=0.1):
            pass

    routes = {("GET", "/v1/models"): json_route(200, MODELS), ("POST", "/v1/chat/completions"): empty_deltas}
    events, url = await run_against(routes, stall_timeout=0.8)
    assert [type(e) for e in events] == [Started, Token, Failed]
    assert_sentence(events[-1].reason, url)
    assert "the stream stalled: no tokens for 0.8 s, only empty events" in events[-1].reason


async def test_ollama_lines_without_text_alone_are_a_stall():
    routes = ollama_routes()
    load_chat = routes[("POST", "/api/chat")]

    def empty_lines(h: Handler) -> None:
        if not h.body.get("messages"):
            return load_chat(h)
        h.start_stream("application/x-ndjson")
        h.write_line(json.dumps({"model": MODEL, "message": {"role": "assistant", "content": "Hi"}, "done": False}))
        empty = json.dumps({"model": MODEL, "message": {"role": "assistant", "content": ""}, "done": False})
        while not h.server.stopping.is_set() and h.write_line(empty, delay=0.1):
            pass

    routes[("POST", "/api/chat")] = empty_lines
    events, url = await run_against(routes, "ollama", stall_timeout=0.8)
    assert [type(e) for e in events] == [Started, Token, Failed]
    assert_sentence(events[-1].reason, url)
    assert "the stream stalled: no tokens for 0.8 s, only empty events" in events[-1].reason


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_a_server_that_ignores_max_tokens_is_cut(kind):
    """A server streaming tokens for ever, whatever max_tokens says: the run fails with a sentence
    once it is well past the request, not a pane (or bench) that grows until killed."""

    def endless(h: Handler) -> None:
        if kind == "ollama":
            if not h.body.get("messages"):
                return load_chat(h)
            h.start_stream("application/x-ndjson")
            line = json.dumps({"model": MODEL, "message": {"role": "assistant", "content": "Hi"}, "done": False})
        else:
            h.start_stream("text/event-stream")
            line = sse("Hi")[0] + "\n"
        while not h.server.stopping.is_set() and h.write_line(line, delay=0.005):
            pass

    if kind == "ollama":
        routes = ollama_routes()
        load_chat = routes[("POST", "/api/chat")]
        routes[("POST", "/api/chat")] = endless
    else:
        routes = {("GET", "/v1/models"): json_route(200, MODELS), ("POST", "/v1/chat/completions"): endless}
    events, url = await run_against(routes, kind, stall_timeout=20)
    limit = httpbase.overrun_limit(8)
    assert [type(e) for e in events] == [Started] + [Token] * limit + [Failed]
    assert_sentence(events[-1].reason, url)
    assert f"streamed more than {limit} tokens when 8 were asked for" in events[-1].reason


async def test_a_line_without_end_fails_the_run():
    """A server that streams bytes without a newline: the run fails with a sentence once a line
    passes the cap, and what was held is the cap, not everything the server sent."""
    assert FLOOD_BYTES > 2 * httpbase.LINE_LIMIT
    routes = {
        ("GET", "/v1/models"): json_route(200, MODELS),
        ("POST", "/v1/chat/completions"): lambda h: flood(h, "text/event-stream", ("\n".join(sse("Hi")) + "\n").encode()),
    }
    events, url = await run_against(routes, stall_timeout=20)
    assert [type(e) for e in events] == [Started, Token, Failed]
    assert_sentence(events[-1].reason, url)
    assert "sent more than 4 MB without a line break" in events[-1].reason


async def test_ollama_ndjson_without_end_fails_the_run():
    routes = ollama_routes()
    load_chat = routes[("POST", "/api/chat")]
    routes[("POST", "/api/chat")] = lambda h: load_chat(h) if not h.body.get("messages") else flood(h, "application/x-ndjson")
    events, url = await run_against(routes, "ollama", stall_timeout=20)
    assert [type(e) for e in events] == [Started, Failed]
    assert_sentence(events[-1].reason, url)
    assert "sent more than 4 MB without a line break" in events[-1].reason


async def test_an_ollama_pull_without_line_breaks_is_a_sentence():
    routes = {
        ("GET", "/api/tags"): json_route(200, {"models": []}),
        ("POST", "/api/pull"): lambda h: flood(h, "application/x-ndjson"),
    }
    with ReplayServer(routes) as srv:
        backend = OllamaBackend(parse_spec(f"ollama:{MODEL}@{srv.url}"), stall_timeout=20)
        backend.pull = True
        try:
            with pytest.raises(BackendError) as err:
                await asyncio.wait_for(backend.load(), DEADLINE_S)
        finally:
            await backend.close()
    assert_sentence(str(err.value), srv.url)
    assert "sent more than 4 MB without a line break" in str(err.value)


@pytest.mark.parametrize(
    "chunks",
    [[b"data: a\r\n\r\ndata: b\n"], [b"data: a\r", b"\n\r", b"\ndata: b\r"], [b"data: a\rdata: b"]],
)
async def test_every_line_ending_an_event_stream_may_use(chunks):
    """``\\n``, ``\\r\\n`` (cut between two writes too) and a lone ``\\r`` end a line, as SSE allows."""
    import time

    import httpx

    def route(h: Handler) -> None:
        h.start_stream("text/event-stream")
        for c in chunks:
            h.wfile.write(c)
            h.wfile.flush()
            time.sleep(0.05)  # a chunk of its own on the client's side

    with ReplayServer({("GET", "/events"): route}) as srv:
        async with httpx.AsyncClient() as client, client.stream("GET", srv.url + "/events") as resp:
            got = [line async for line in httpbase.lines(resp, str, 30.0)]
    assert [g for g in got if g] == ["data: a", "data: b"]


async def test_an_event_nested_deeper_than_python_recurses_is_a_sentence():
    routes = {
        ("GET", "/v1/models"): json_route(200, MODELS),
        ("POST", "/v1/chat/completions"): lambda h: (h.start_stream("text/event-stream"), h.write_line("data: " + "[" * 200_000)),
    }
    events, url = await run_against(routes)
    assert [type(e) for e in events] == [Started, Failed]
    assert_sentence(events[-1].reason, url)
    assert "sent an event that is not JSON" in events[-1].reason
