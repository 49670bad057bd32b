"""The OpenAI-compatible client against a real server: llama-cpp-python's own ``llama_cpp.server``
serving the bundled SmolLM2 on loopback (started once per session).

That server sends neither ``usage`` in streams nor llama.cpp's ``timings``, so the one test of
llama-server's ``timings_per_token`` stream (several tokens in one chunk, the server's own counts)
replays the documented llama-server format from a local HTTP server, and says so.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from backends.base import GenParams
from backends.catalog import make_backend
from backends.engines.openai import OpenAIBackend
from backends.events import Finished, Started, Token
from backends.specs import parse_spec
from backends.stats import RunCollector
from backends.telemetry.remote import RemoteSampler, remote_sampler
from tests.support.replay_server import ReplayServer, json_route, lines_route
from tests.support.waiting import wait_for

PROMPT = "Why is the sky blue? Answer in one sentence."
PARAMS = GenParams(max_tokens=16)


async def run_once(backend, params=PARAMS, prompt=PROMPT) -> tuple[list, RunCollector]:
    col = RunCollector()
    events = []
    async for ev in backend.stream(prompt, params):
        events.append(ev)
        col.add(ev)
    return events, col


async def test_load_finds_the_local_server_process(llama_server):
    url, proc, path = llama_server
    backend = make_backend(f"openai:smollm2@{url}")
    try:
        loaded = await backend.load()
    finally:
        await backend.close()
    assert loaded.backend == "openai" and loaded.info.name == "smollm2"
    assert loaded.pid == proc.pid  # the process listening on that loopback port
    assert loaded.weights_path == path  # the GGUF it maps: resident weights can be sampled
    assert loaded.info.arch == "llama" and loaded.info.file_bytes and loaded.info.chat_template
    assert not loaded.completion_mode and loaded.load_s > 0
    assert remote_sampler(backend) is None  # sample the process, not /metrics


async def test_chat_stream_has_positive_figures(llama_server):
    url, _, _ = llama_server
    backend = make_backend(f"openai:smollm2@{url}")
    try:
        await backend.load()
        events, col = await run_once(backend)
    finally:
        await backend.close()
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
    tokens = [e for e in events if isinstance(e, Token)]
    assert len(tokens) >= 2 and all(t.n == 1 for t in tokens)
    assert events[-1].stop in ("eos", "length")
    r = col.result()
    assert r["ttft_s"] > 0 and r["gen_tps"] > 0 and r["gen_tokens"] == len(tokens) <= 16
    assert r["text"].strip()
    print(f"\nllama_cpp.server smollm2-135m: ttft {r['ttft_s'] * 1000:.0f} ms, gen {r['gen_tps']:.1f} tok/s")


async def test_completion_mode(llama_server):
    url, _, _ = llama_server
    backend = OpenAIBackend(parse_spec(f"openai:smollm2@{url}"), completion=True)
    try:
        loaded = await backend.load()
        events, col = await run_once(backend, GenParams(max_tokens=8), "The capital of France is Paris. The capital of Italy is")
    finally:
        await backend.close()
    assert loaded.completion_mode
    assert isinstance(events[-1], Finished) and col.result()["gen_tokens"] >= 1


async def test_cancel_then_run_again(llama_server):
    url, _, _ = llama_server
    backend = make_backend(f"openai:smollm2@{url}")
    try:
        await backend.load()
        events = []
        async for ev in backend.stream(PROMPT, GenParams(max_tokens=400)):
            events.append(ev)
            if isinstance(ev, Token):  # at once: the Finished it queues is the very next event
                await wait_for(backend.cancel(), "cancel() to stop the stream in flight", 60)
        again, _ = await run_once(backend, GenParams(max_tokens=4))
    finally:
        await backend.close()
    assert [type(e) for e in events] == [Started, Token, Finished] and events[-1].stop == "cancelled"
    assert isinstance(again[-1], Finished), again[-1]


def test_no_metrics_is_remote(llama_server):
    url, _, _ = llama_server
    sampler = RemoteSampler(url, "openai")
    s = sampler.sample()
    sampler.close()
    assert s.note == "remote" and s.server is None and s.cpu_percent is None


async def test_llama_cpp_server_prompt_cache_does_not_shorten_the_next_run(llama_server_and_log):
    """llama_cpp.server keeps the last prompt's KV and reuses the longest common prefix (its log:
    "Llama.generate: N prefix-match hit"), so a repeated run skipped its prompt (TTFT 21 ms vs
    101 ms local). It honours no ``cache_prompt``: abtop evicts the prefix with a one-token request
    of its own before each run, outside the run's clock, and the prompt is never changed."""
    url, _proc, _path, log = llama_server_and_log
    backend = make_backend(f"openai:smollm2@{url}")
    await backend.load()
    mark = log.stat().st_size
    try:
        runs = [await run_once(backend) for _ in range(3)]
    finally:
        await backend.close()
    said = log.read_bytes()[mark:].decode("utf-8", "replace")
    hits = [int(n) for n in re.findall(r"(\d+) prefix-match hit", said)]
    assert "full prompt already cached" not in said
    assert all(n <= 2 for n in hits), hits  # at most a BOS in common, never the prompt
    assert all(isinstance(events[-1], Finished) and col.result()["gen_tokens"] > 0 for events, col in runs)
    texts = {col.result()["text"] for _, col in runs}
    assert len(texts) == 1  # greedy, the same prompt every time


async def test_llama_server_cache_reuse_is_said_in_the_result():
    """A llama-server that reused its prompt cache anyway (``timings.cache_n``, newer builds):
    the run says so beside its TTFT."""
    obj = {"choices": [{"finish_reason": None, "index": 0, "delta": {"content": "Hi"}}],
           "timings": {"cache_n": 30, "prompt_n": 2, "prompt_ms": 1.0, "predicted_n": 1, "predicted_ms": 5.0}}  # fmt: skip
    end = {"choices": [{"finish_reason": "stop", "index": 0, "delta": {}}], "timings": {**obj["timings"], "predicted_n": 2}}
    routes = {
        ("GET", "/v1/models"): json_route(200, {"object": "list", "data": [{"id": "q", "owned_by": "llamacpp"}]}),
        ("GET", "/props"): json_route(200, {"default_generation_settings": {"n_ctx": 512}}),
        ("POST", "/v1/chat/completions"): lines_route(["data: " + json.dumps(obj), "", "data: " + json.dumps(end), "",
                                                       "data: [DONE]", ""]),  # fmt: skip
    }
    with ReplayServer(routes) as srv:
        backend = make_backend(f"openai:q@{srv.url}/v1")
        await backend.load()
        _events, col = await run_once(backend)
        await backend.close()
    r = col.result()
    assert r["prompt_cache_tokens"] == 30
    assert r["ttft_note"] == "prompt cache reused 30 tokens: TTFT not comparable"


# -- llama-server's own stream format, replayed ---------------------------------------------------


def _chunk(content: str | None, predicted_n: int, finish: str | None = None) -> list[str]:
    """A llama-server chat chunk with ``timings_per_token``, as llama-server writes it."""
    delta = {"content": content} if content is not None else {}
    obj = {
        "choices": [{"finish_reason": finish, "index": 0, "delta": delta}],
        "created": 1735000000, "id": "chatcmpl-x", "model": "qwen", "system_fingerprint": "b5000-abc",
        "object": "chat.completion.chunk",
        "timings": {"prompt_n": 12, "prompt_ms": 40.0, "prompt_per_token_ms": 3.33, "prompt_per_second": 300.0,
                    "predicted_n": predicted_n, "predicted_ms": 20.0 * predicted_n,
                    "predicted_per_token_ms": 20.0, "predicted_per_second": 50.0},
    }
    return ["data: " + json.dumps(obj), ""]


async def test_llama_server_timings_count_tokens_per_chunk():
    """Replays llama-server (tools/server/README.md): a chunk holding 3 tokens counts 3."""
    stream = (
        _chunk(None, 0) + _chunk("The", 1) + _chunk(" sky is", 3) + _chunk(" blue", 4)
        + _chunk(None, 4, "stop")
        + ["data: " + json.dumps({"choices": [], "usage": {"completion_tokens": 4, "prompt_tokens": 12,
                                                            "total_tokens": 16}}), ""]
        + ["data: [DONE]", ""]
    )
    routes = {
        ("GET", "/v1/models"): json_route(200, {"object": "list", "data": [{"id": "qwen", "owned_by": "llamacpp",
                                                 "meta": {"n_params": 494032768, "size": 397808192, "n_ctx_train": 32768}}]}),
        ("GET", "/props"): json_route(200, {"default_generation_settings": {"n_ctx": 4096}, "chat_template": "{{x}}",
                                            "model_path": "/elsewhere/qwen.gguf", "total_slots": 1}),
        ("POST", "/v1/chat/completions"): lines_route(stream),
    }
    with ReplayServer(routes) as srv:
        backend = make_backend(f"openai:qwen@{srv.url}/v1")
        loaded = await backend.load()
        events, col = await run_once(backend)
        await backend.close()
        body = next(b for m, p, b, _ in srv.requests if p == "/v1/chat/completions")
    assert body["timings_per_token"] is True and body["cache_prompt"] is False
    assert body["stream_options"] == {"include_usage": True} and body["max_tokens"] == 16
    assert loaded.n_ctx == 4096 and loaded.info.params == 494032768 and loaded.info.file_bytes == 397808192
    assert loaded.pid == os.getpid()  # the replay server listens on loopback in this very process
    tokens = [e for e in events if isinstance(e, Token)]
    assert [(t.text, t.n) for t in tokens] == [("The", 1), (" sky is", 2), (" blue", 1)]
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.stop == "eos" and fin.gen_tokens == 4
    assert fin.engine.source == "llama-server timings"
    assert (fin.engine.prompt_tokens, fin.engine.prompt_ms, fin.engine.gen_tokens, fin.engine.gen_ms) == (12, 40.0, 4, 80.0)
    r = col.result()
    assert r["gen_tps_engine"] == pytest.approx(50.0) and r["prompt_tps"] == pytest.approx(300.0)
    assert r["gen_tokens"] == 4


async def test_usage_only_server():
    """A server that counts only in ``usage`` (vLLM, LM Studio): the engine source says so."""
    chunks = [
        "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
        for w in ("Hi", " there")
    ]
    final = "data: " + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    usage = "data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}})
    routes = {
        ("GET", "/v1/models"): json_route(200, {"data": [{"id": "m"}]}),
        ("POST", "/v1/chat/completions"): lines_route([chunks[0], "", chunks[1], "", final, "", usage, "", "data: [DONE]"]),
    }
    with ReplayServer(routes) as srv:
        backend = make_backend(f"openai:m@{srv.url}/v1")
        await backend.load()
        events, _ = await run_once(backend)
        await backend.close()
        body = next(b for m, p, b, _ in srv.requests if p == "/v1/chat/completions")
    assert "timings_per_token" not in body  # only llama-server is asked for it
    fin = events[-1]
    assert fin.stop == "length" and fin.gen_tokens == 2
    assert fin.engine.source == "usage" and fin.engine.prompt_tokens == 7 and fin.engine.gen_ms is None



def test_bench_local_gguf_vs_same_gguf_through_server(llama_server, tmp_path, capsys):
    """The issue's comparison: one bench, SmolLM2 in a local worker and through llama_cpp.server."""
    from tui.cli.main import _command_parser

    url, proc, _ = llama_server
    out = tmp_path / "bench.json"
    args = _command_parser("bench").parse_args(
        ["bench", "smollm2-135m", f"openai:smollm2@{url}", "-n", "12", "--warmup", "0", "--json", str(out)]
    )
    assert args.func(args) == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    local, served = doc["models"]
    assert (local["backend"], served["backend"]) == ("llama.cpp", "openai")
    for m in (local, served):
        run = m["runs"][0]
        assert run["error"] is None and run["gen_tokens"] > 1
        assert run["ttft_s"] > 0 and run["gen_tps"] > 0
    # The server's own process was sampled: its memory counts as the served model's.
    assert served["runs"][0]["peak_rss_bytes"] and served["runs"][0]["weights_resident_bytes"]
    print(f"\nbench gen tok/s: local {local['runs'][0]['gen_tps']:.1f}, served {served['runs'][0]['gen_tps']:.1f}")
