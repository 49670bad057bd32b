"""The llama.cpp backend through the real llama-cpp-python on the bundled models."""

from __future__ import annotations

import os
import signal

import pytest

from backends.base import BackendError, GenParams, Placement
from backends.catalog import make_backend
from backends.engines.llamacpp import LlamaCppBackend
from backends.events import Failed, Finished, Started, Token
from backends.specs import parse_spec
from backends.stats import RunCollector
from tests.conftest import worker_children
from tests.support.waiting import wait_for


async def collect(backend, prompt="Say hello.", max_tokens=16):
    events = []
    async for ev in backend.stream(prompt, GenParams(max_tokens=max_tokens)):
        events.append(ev)
    return events


async def test_smollm2_streams_with_worker_timestamps(smollm2_path):
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=512, placement=Placement(threads=1))
    try:
        loaded = await b.load()
        assert loaded.info.arch == "llama"
        assert loaded.pid and loaded.pid != os.getpid()
        assert not loaded.completion_mode  # SmolLM2-Instruct carries a chat template
        events = await collect(b)
    finally:
        await b.close()
    assert isinstance(events[0], Started) and events[0].prompt_tokens > 5
    tokens = [e for e in events if isinstance(e, Token)]
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.stop in ("eos", "length")
    assert fin.gen_tokens == sum(t.n for t in tokens) > 0
    times = [events[0].t] + [t.t for t in tokens] + [fin.t]
    assert times == sorted(times)  # taken in the worker, in order
    assert fin.engine.source == "llama_perf_context"
    assert fin.engine.prompt_tokens == events[0].prompt_tokens
    assert fin.engine.gen_ms > 0
    c = RunCollector()
    for e in events:
        c.add(e)
    r = c.result()
    assert r["ttft_s"] > 0 and r["gen_tps"] > 0 and r["gen_tps_engine"] > 0
    assert r["text"].strip()


async def test_greedy_is_deterministic_and_runs_do_not_share_cache(smollm2_path):
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=512)
    try:
        await b.load()
        a = await collect(b, max_tokens=12)
        c = await collect(b, max_tokens=12)
    finally:
        await b.close()
    text = lambda evs: "".join(e.text for e in evs if isinstance(e, Token))  # noqa: E731
    assert text(a) == text(c)
    # the prompt is evaluated again on the second run: no prompt cache between runs
    assert c[-1].engine.prompt_tokens == a[-1].engine.prompt_tokens > 0


async def test_base_model_runs_in_completion_mode(gemma3_path):
    b = LlamaCppBackend("gemma3-270m", gemma3_path, n_ctx=512)
    try:
        loaded = await b.load()
        assert loaded.completion_mode and loaded.info.arch == "gemma3"
        events = await collect(b, "The capital of France is", max_tokens=8)
    finally:
        await b.close()
    assert isinstance(events[-1], Finished)
    assert sum(e.n for e in events if isinstance(e, Token)) > 0


async def test_cancel_stops_at_once(smollm2_path):
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=1024)
    try:
        await b.load()
        events = []
        async for ev in b.stream("Tell me a long story about a dragon.", GenParams(max_tokens=500)):
            events.append(ev)
            if isinstance(ev, Token) and len(events) == 4:
                await b.cancel()
        # the worker stays usable after a cancel
        again = await collect(b, max_tokens=4)
    finally:
        await b.close()
    assert events[-1].stop == "cancelled"
    assert sum(isinstance(e, Token) for e in events) < 50
    assert isinstance(again[-1], Finished)


async def test_killed_worker_becomes_worker_lost(smollm2_path):
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=1024)
    try:
        loaded = await b.load()
        events = []
        async for ev in b.stream("Tell me a long story about a dragon.", GenParams(max_tokens=400)):
            events.append(ev)
            if isinstance(ev, Token) and sum(isinstance(e, Token) for e in events) == 3:
                os.kill(loaded.pid, signal.SIGKILL)
    finally:
        await b.close()
    last = events[-1]
    assert isinstance(last, Failed) and last.lost
    assert "worker lost" in last.reason and "SIGKILL" in last.reason


async def test_prompt_longer_than_context_is_one_sentence(smollm2_path):
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=64)
    try:
        await b.load()
        events = await collect(b, "word " * 400)
    finally:
        await b.close()
    assert isinstance(events[-1], Failed)
    assert "context holds" in events[-1].reason and "--ctx" in events[-1].reason


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p / "missing.gguf", "no such file"),
        (lambda p: (p / "notes.gguf").write_text("hello, not a model") and p / "notes.gguf", "not a GGUF"),
    ],
)
async def test_bad_files_give_one_sentence(tmp_path, make, expected):
    path = make(tmp_path)
    with pytest.raises(BackendError) as info:
        b = make_backend(str(path))
        await b.load()
    msg = str(info.value)
    assert expected.lower() in msg.lower() and "\n" not in msg


async def test_truncated_gguf_is_refused_before_spawning(tmp_path, smollm2_path):
    cut = tmp_path / "cut.gguf"
    with open(smollm2_path, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(smollm2_path.stat().st_size // 2))
    before = len(worker_children())
    with pytest.raises(BackendError, match="truncated"):
        await make_backend(str(cut)).load()
    assert len(worker_children()) == before


def test_spec_parsing(smollm2_path):
    assert parse_spec("smollm2-135m").path == smollm2_path
    assert parse_spec(str(smollm2_path)).kind == "gguf"
    o = parse_spec("openai:qwen@http://127.0.0.1:8080/v1")
    assert (o.kind, o.model, o.url) == ("openai", "qwen", "http://127.0.0.1:8080/v1")
    ol = parse_spec("ollama:gemma3:270m")
    assert (ol.kind, ol.model, ol.url) == ("ollama", "gemma3:270m", "http://127.0.0.1:11434")
    with pytest.raises(BackendError, match="openai:MODEL@URL"):
        parse_spec("openai:nourl")


async def test_close_leaves_no_worker(smollm2_path):
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=256)
    await b.load()
    assert worker_children()
    await b.close()
    assert not worker_children()


def test_public_spec_hides_credentials():
    from backends.specs import public_spec

    assert public_spec("openai:m@https://u:secret@host:8080/v1?key=abc") == "openai:m@https://host:8080/v1"
    assert public_spec("ollama:gemma3:270m") == "ollama:gemma3:270m"
    assert parse_spec("openai:m@https://u:secret@host/v1").url == "https://u:secret@host/v1"


async def test_worker_greedy_matches_llama_cpp_python(gemma3_path):
    """The worker's argmax sampling gives exactly llama-cpp-python's own greedy text."""
    import llama_cpp

    prompt = "The three primary colours are"
    llm = llama_cpp.Llama(model_path=str(gemma3_path), n_ctx=256, n_threads=2, verbose=False)
    expected = llm.create_completion(prompt, max_tokens=16, temperature=0.0)["choices"][0]["text"]
    del llm
    b = LlamaCppBackend("gemma3-270m", gemma3_path, n_ctx=256)
    try:
        await b.load()
        events = await collect(b, prompt, max_tokens=16)
    finally:
        await b.close()
    assert "".join(e.text for e in events if isinstance(e, Token)) == expected


async def test_cancel_stops_a_long_prompt_mid_batch(gemma3_path):
    """Esc on a prompt of a thousand tokens and more: llama.cpp stops between two graph nodes (its
    abort callback), not after the batch. Counted in the worker's CPU time, which is its work done
    whatever else runs on the box (one thread: no spinning while another waits for a core): the
    cancel goes once the worker has spent a fifth of what the same prompt cost uncancelled, and
    the run ends long before the rest of it is spent."""
    import psutil

    prompt = " ".join(f"Line {i}: the harbour master counted boats at dawn." for i in range(100))
    b = LlamaCppBackend("gemma3-270m", gemma3_path, n_ctx=2048, placement=Placement(threads=1))
    try:
        worker = psutil.Process((await b.load()).pid)

        def cpu() -> float:
            t = worker.cpu_times()
            return t.user + t.system

        c0 = cpu()
        whole = await collect(b, prompt, max_tokens=1)
        whole_cpu = cpu() - c0  # the prompt and one token
        assert whole[0].prompt_tokens > 1000  # one batch (n_batch 2048) of several ubatches
        events = []
        c0 = cpu()
        async for ev in b.stream(prompt, GenParams(max_tokens=8)):
            events.append(ev)
            if isinstance(ev, Started):  # the batch is being decoded: wait until it is well into it
                await wait_for(lambda: cpu() - c0 >= whole_cpu / 5, "the worker to spend a fifth of the prompt's CPU time")
                await b.cancel()
        spent = cpu() - c0
        again = await collect(b, max_tokens=2)  # the context is usable after an aborted batch
    finally:
        await b.close()
    assert spent < whole_cpu * 0.6, f"the cancelled prompt cost {spent:.2f} CPU-s of the whole one's {whole_cpu:.2f}"
    assert events[-1].stop == "cancelled" and not any(isinstance(e, Token) for e in events)
    assert isinstance(again[-1], Finished) and again[-1].stop in ("eos", "length")


async def test_a_file_llama_cpp_refuses_is_one_sentence_naming_it_and_no_worker_stays(tmp_path):
    """A GGUF whose header reads (the card is fine) but whose architecture llama.cpp does not know:
    the worker answers the load with an error, and ``load()`` raises one sentence that names the
    model by its file and says llama.cpp's reason; the worker is closed."""
    import gguf
    import numpy as np

    path = tmp_path / "odd-model.gguf"
    w = gguf.GGUFWriter(str(path), "notanarch")
    w.add_name("Odd")
    w.add_tensor("x.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    b = LlamaCppBackend(str(path), path, n_ctx=256)
    try:
        with pytest.raises(BackendError) as e:
            await b.load()
    finally:
        await b.close()
    said = str(e.value)
    assert said.startswith("odd-model: llama.cpp could not load the model (") and "\n" not in said, said
    assert b.loaded is None and not worker_children()
