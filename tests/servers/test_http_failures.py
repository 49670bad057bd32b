"""Every way a server can fail becomes one sentence naming the server, over real sockets:
nothing listening, a name that does not resolve, 500, 401, 404, bytes that are not HTTP, an event
stream with garbage in it, a stream that stalls, one that ends early — and Esc (``cancel()``)
closes the connection at once.
"""

from __future__ import annotations

import asyncio

import pytest

from backends.base import BackendError, GenParams
from backends.engines.ollama import OllamaBackend
from backends.engines.openai import OpenAIBackend
from backends.events import Failed, Finished, Sample, Started, Token
from backends.specs import ModelSpec, parse_spec
from tests.support.replay_server import Handler, ReplayServer, free_port, json_route, lines_route

MODELS = {"object": "list", "data": [{"id": "tiny", "object": "model", "owned_by": "me"}]}
SECRET = "sk-abtop-test-secret-0123456789"


def sse(text: str | None = None, finish: str | None = None) -> list[str]:
    import json

    delta = {"content": text} if text is not None else {}
    return ["data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}), ""]


def backend_for(url: str, **kw) -> OpenAIBackend:
    return OpenAIBackend(parse_spec(f"openai:tiny@{url}/v1"), **kw)


def assert_sentence(msg: str, where: str) -> None:
    assert "\n" not in msg and "Traceback" not in msg and msg.endswith(".")
    assert where in msg, msg
    assert SECRET not in msg


async def load_error(backend) -> str:
    with pytest.raises(BackendError) as err:
        await backend.load()
    await backend.close()
    return str(err.value)


async def run_stream(routes: dict, **kw) -> tuple[list, str]:
    routes = {("GET", "/v1/models"): json_route(200, MODELS), **routes}
    with ReplayServer(routes) as srv:
        backend = backend_for(srv.url, **kw)
        await backend.load()
        events = [ev async for ev in backend.stream("hi", GenParams(max_tokens=8))]
        await backend.close()
    return events, srv.url


# -- load(): the server is not there, or not usable ----------------------------------------------


async def test_nothing_listening():
    url = f"http://127.0.0.1:{free_port()}"
    msg = await load_error(backend_for(url))
    assert_sentence(msg, url)
    assert "connection refused" in msg


async def test_name_does_not_resolve():
    msg = await load_error(backend_for("http://abtop-no-such-host.invalid:8080"))
    assert_sentence(msg, "abtop-no-such-host.invalid")
    assert "DNS" in msg


@pytest.mark.parametrize(
    "status, expect",
    [(500, "failed with 500"), (503, "failed with 503"), (401, "unauthorized (401)"), (403, "forbidden (403)")],
)
async def test_status_on_models(status, expect, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    # The body echoes the key, as a careless proxy might: the sentence must still not show it.
    with ReplayServer({("GET", "/v1/models"): json_route(status, {"error": {"message": f"bad key {SECRET}"}})}) as srv:
        msg = await load_error(backend_for(srv.url))
        sent = srv.requests[0][3]
    assert_sentence(msg, srv.url)
    assert expect in msg
    assert sent.get("Authorization") == f"Bearer {SECRET}"
    if status in (401, 403):
        assert "ABTOP_API_KEY" in msg


async def test_credentials_in_url_are_not_shown():
    with ReplayServer({}) as srv:
        url = srv.url.replace("http://", "http://user:hunter2@") + "/v1?key=hunter2"
        backend = OpenAIBackend(ModelSpec(f"openai:tiny@{url}", "openai", model="tiny", url=url))
        assert "hunter2" not in backend.spec and "hunter2" not in backend.label
        msg = await load_error(backend)
    assert "hunter2" not in msg and srv.url in msg


async def test_unknown_model_among_several():
    two = {"data": [{"id": "qwen2.5-3b"}, {"id": "gemma-3-4b"}]}
    with ReplayServer({("GET", "/v1/models"): json_route(200, two)}) as srv:
        msg = await load_error(backend_for(srv.url))
    assert_sentence(msg, srv.url)
    assert "no model named 'tiny'" in msg and "qwen2.5-3b, gemma-3-4b" in msg


async def test_no_api_at_that_url():
    with ReplayServer({}) as srv:
        msg = await load_error(backend_for(srv.url))
    assert_sentence(msg, srv.url)
    assert "404" in msg and "/v1" in msg


async def test_not_http_at_all():
    def garbage(h: Handler) -> None:
        h.wfile.write(b"\x00\xffSSH-2.0-OpenSSH_9.6\r\n\r\n")

    with ReplayServer({("GET", "/v1/models"): garbage}) as srv:
        msg = await load_error(backend_for(srv.url))
    assert_sentence(msg, srv.url)
    assert "HTTP" in msg


async def test_ollama_not_running():
    url = f"http://127.0.0.1:{free_port()}"
    msg = await load_error(OllamaBackend(parse_spec(f"ollama:gemma3:270m@{url}")))
    assert_sentence(msg, url)
    assert msg.startswith("gemma3:270m at") and "connection refused" in msg


# -- stream(): a Failed event, never an exception --------------------------------------------------


async def test_unknown_model_404_on_chat():
    events, url = await run_stream(
        {("POST", "/v1/chat/completions"): json_route(404, {"error": {"message": "The model `tiny` does not exist."}})}
    )
    assert [type(e) for e in events] == [Started, Failed]
    assert_sentence(events[-1].reason, url)
    assert "404" in events[-1].reason and "does not exist" in events[-1].reason


async def test_500_on_chat():
    events, url = await run_stream({("POST", "/v1/chat/completions"): json_route(500, {"error": "CUDA error"})})
    assert isinstance(events[-1], Failed)
    assert_sentence(events[-1].reason, url)
    assert "500" in events[-1].reason and "CUDA error" in events[-1].reason


async def test_garbage_in_event_stream():
    lines = sse("Hello") + ["<html><body>502 Bad Gateway</body></html>"]
    events, url = await run_stream({("POST", "/v1/chat/completions"): lines_route(lines)})
    assert [type(e) for e in events] == [Started, Token, Failed]
    assert_sentence(events[-1].reason, url)
    assert "not a server-sent event" in events[-1].reason


async def test_data_that_is_not_json():
    events, url = await run_stream({("POST", "/v1/chat/completions"): lines_route(["data: {oops", ""])})
    assert isinstance(events[-1], Failed) and "not JSON" in events[-1].reason


async def test_stream_that_ends_early():
    lines = sse("Hello") + sse(" there")
    events, url = await run_stream({("POST", "/v1/chat/completions"): lines_route(lines)})
    assert [type(e) for e in events] == [Started, Token, Token, Failed]
    assert_sentence(events[-1].reason, url)
    assert "ended before" in events[-1].reason


async def test_stream_that_stalls():
    def stall(h: Handler) -> None:
        lines_route(sse("Hello"))(h)
        h.stall()

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    events, url = await run_stream({("POST", "/v1/chat/completions"): stall}, stall_timeout=0.5)
    assert [type(e) for e in events] == [Started, Token, Failed]
    assert_sentence(events[-1].reason, url)
    assert "stalled: no bytes for 0.5 s" in events[-1].reason
    assert loop.time() - t0 < 5


async def test_load_that_stalls(monkeypatch):
    monkeypatch.setenv("ABTOP_STALL_TIMEOUT", "0.3")  # the default when no stall_timeout is given
    with ReplayServer({("GET", "/v1/models"): lambda h: h.stall()}) as srv:
        msg = await load_error(backend_for(srv.url))
    assert_sentence(msg, srv.url)
    assert "no answer to the model list request (GET /models) in 0.3 s; the server is busy or hung" in msg
    assert "stream" not in msg  # no stream had begun: a load that hangs is not a stalled stream


async def test_cancel_closes_the_connection_at_once():
    def endless(h: Handler) -> None:
        h.start_stream("text/event-stream")
        while h.write_line(sse("tick")[0], delay=0.02) and h.write_line(""):
            pass

    routes = {("GET", "/v1/models"): json_route(200, MODELS), ("POST", "/v1/chat/completions"): endless}
    with ReplayServer(routes) as srv:
        backend = backend_for(srv.url)
        await backend.load()
        events = []
        async for ev in backend.stream("hi", GenParams(max_tokens=10_000)):
            events.append(ev)
            if isinstance(ev, Token) and len(events) == 3:
                await backend.cancel()
        gone = await asyncio.to_thread(srv.client_gone.wait, 5)
        await backend.close()
    assert isinstance(events[-1], Finished) and events[-1].stop == "cancelled"
    assert sum(isinstance(e, Finished) for e in events) == 1
    assert gone, "the server kept writing to an open connection after cancel()"


async def test_stream_before_load():
    backend = backend_for("http://127.0.0.1:9")
    events = [ev async for ev in backend.stream("hi", GenParams())]
    assert len(events) == 1 and isinstance(events[0], Failed) and "load" in events[0].reason


async def test_ollama_never_gets_an_openai_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("ABTOP_API_KEY", raising=False)
    with ReplayServer({("GET", "/api/tags"): json_route(401, {"error": "unauthorized"})}) as srv:
        msg = await load_error(OllamaBackend(parse_spec(f"ollama:gemma3@{srv.url}")))
        sent = srv.requests[0][3]
    assert "Authorization" not in sent
    assert_sentence(msg, srv.url)
    assert "401" in msg and "set ABTOP_API_KEY" in msg


# -- a series of runs: what a failure costs the rest -----------------------------------------------


async def test_a_one_off_failure_after_streaming_keeps_the_model_in_the_series():
    """A server that streamed once and then answers 503 once (a restart, a queue limit) keeps its
    turns; one that never streamed (404 unknown model) sits the series out after its first try.
    Both are real sockets on loopback; the Session is the one the TUI and bench use."""
    from backends.events import Note
    from backends.session import RunPlan, Session

    good = sse("Hello") + sse(" there", "stop") + ["data: [DONE]", ""]
    calls = {"n": 0}

    def flaky(h: Handler) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            return h.reply(503, {"error": "loading model"})
        lines_route(good)(h)

    flaky_routes = {("GET", "/v1/models"): json_route(200, MODELS), ("POST", "/v1/chat/completions"): flaky}
    gone_routes = {
        ("GET", "/v1/models"): json_route(200, MODELS),
        ("POST", "/v1/chat/completions"): json_route(404, {"error": "model 'tiny' not found"}),
    }
    with ReplayServer(flaky_routes) as a, ReplayServer(gone_routes) as b:
        seen: list[tuple[int, object]] = []
        session = Session([backend_for(a.url), backend_for(b.url)], lambda i, ev: seen.append((i, ev)), mode="alternate")
        await session.load()
        await session.run(RunPlan("hi", GenParams(max_tokens=8), mode="alternate", runs=3, warmup=1))
        await session.close()
        chats = lambda srv: sum(1 for r in srv.requests if r[1] == "/v1/chat/completions")  # noqa: E731
        assert chats(a) == 4  # warm-up, the 503, then both remaining runs
        assert chats(b) == 1  # failed before it ever streamed: not asked again
    failed = [(i, ev) for i, ev in seen if isinstance(ev, Failed)]
    assert [i for i, _ in failed] == [1, 0] and "503" in failed[1][1].reason
    assert sum(1 for i, ev in seen if i == 0 and isinstance(ev, Finished)) == 3
    # the failed model's sentence is not wiped by the end of the series: it got no empty Note
    last_b = [ev for i, ev in seen if i == 1 and not isinstance(ev, Sample)][-1]
    assert isinstance(last_b, Failed)
    assert not any(i == 1 and isinstance(ev, Note) and not ev.text for i, ev in seen)
