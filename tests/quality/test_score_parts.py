"""The parts of bits per byte that need no model: windows, the reference text, and vLLM's echo
log-probabilities, replayed from a loopback server in the documented format (no vLLM here)."""

from __future__ import annotations

import math

import pytest

from backends.base import BackendError
from backends.catalog import make_backend
from backends.quality.bpb import bits_per_byte, parse_echo_logprobs, reference_text, score_openai
from backends.quality.llama_score import chunk_rows, windows
from tests.support.replay_server import ReplayServer, json_route


@pytest.mark.parametrize("n, window, stride", [(10, 5, 2), (100, 33, 16), (3, 512, 255), (511, 512, 511), (1000, 257, 1)])
def test_windows_score_every_token_once_with_at_least_window_less_stride_before_it(n, window, stride):
    plan = windows(n, window, stride)
    scored = [j for _, s, e in plan for j in range(s, e)]
    assert scored == list(range(n))
    for k, (c, s, e) in enumerate(plan):
        assert e - c <= window - 1  # the prefix token takes one position
        if k:
            assert s - c >= min(window - 1 - stride, s)


def test_a_stride_outside_the_window_is_refused():
    with pytest.raises(ValueError, match="stride"):
        windows(10, 5, 5)


def test_logits_chunk_stays_in_its_budget():
    assert chunk_rows(262_144, 512) == 16  # Gemma 3: 16 rows x 1 MiB
    assert chunk_rows(49_152, 512) == 85
    assert chunk_rows(10_000_000, 512) == 1
    assert chunk_rows(100, 512) == 512


def test_the_reference_text_is_about_20_kb_of_text():
    text = reference_text()
    assert 18_000 <= len(text.encode()) <= 24_000
    assert text.startswith("The unanimous Declaration") and "government of the people" in text


# vLLM's answer to POST /v1/completions {"echo": true, "logprobs": 1, "max_tokens": 1}, in the shape
# of its docs and issue #5334: token_logprobs[0] is null (BOS), then one per prompt token, then
# the generated token's; usage.prompt_tokens counts the prompt with BOS.
VLLM_ECHO = {
    "id": "cmpl-1",
    "object": "text_completion",
    "model": "m",
    "choices": [
        {
            "index": 0,
            "text": "Four score and seven",
            "logprobs": {
                "text_offset": [0, 0, 4, 10, 14, 20],
                "token_logprobs": [None, -5.0, -2.0, -0.5, -0.25, -1.5],
                "tokens": ["<s>", "Four", " score", " and", " seven", " years"],
                "top_logprobs": [None, {"Four": -5.0}, {" score": -2.0}, {" and": -0.5}, {" seven": -0.25}, {" years": -1.5}],
            },
            "finish_reason": "length",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


def test_echo_logprobs_sum_the_prompt_and_leave_the_generated_token_out():
    nll, n, unscored = parse_echo_logprobs(VLLM_ECHO)
    assert (nll, n, unscored) == (7.75, 4, 1)
    assert math.isclose(bits_per_byte(nll, 20), 7.75 / math.log(2) / 20)


def test_llama_server_style_answer_has_no_prompt_logprobs():
    only_generated = {"choices": [{"logprobs": {"token_logprobs": [-1.5]}}], "usage": {"prompt_tokens": 5}}
    with pytest.raises(ValueError):
        parse_echo_logprobs(only_generated)


MODELS = {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]}


async def test_vllm_is_scored_through_echo_against_a_replayed_server():
    with ReplayServer({("GET", "/v1/models"): json_route(200, MODELS), ("POST", "/v1/completions"): json_route(200, VLLM_ECHO)}) as srv:
        b = make_backend(f"openai:m@{srv.url}/v1")
        await b.load()
        try:
            r = await score_openai(b, "Four score and seven")
        finally:
            await b.close()
        body = next(body for method, path, body, _ in srv.requests if path == "/v1/completions")
    assert body["echo"] is True and body["logprobs"] == 1 and body["max_tokens"] == 1 and body["prompt"] == "Four score and seven"
    assert r["nll_nats"] == 7.75 and r["tokens"] == 4


async def test_a_server_without_prompt_logprobs_is_one_sentence():
    gen_only = {"choices": [{"text": " years", "logprobs": {"token_logprobs": [-1.5], "tokens": [" years"]}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1}}  # fmt: skip
    with ReplayServer({("GET", "/v1/models"): json_route(200, MODELS), ("POST", "/v1/completions"): json_route(200, gen_only)}) as srv:
        b = make_backend(f"openai:m@{srv.url}/v1")
        await b.load()
        try:
            with pytest.raises(BackendError, match="only for generated tokens"):
                await score_openai(b, "Four score and seven")
        finally:
            await b.close()


async def test_llama_server_gets_no_score_and_the_reason():
    props = {"default_generation_settings": {"n_ctx": 2048}}  # llama-server's /props (documented shape)
    with ReplayServer({("GET", "/v1/models"): json_route(200, MODELS), ("GET", "/props"): json_route(200, props)}) as srv:
        b = make_backend(f"openai:m@{srv.url}/v1")
        await b.load()
        try:
            with pytest.raises(BackendError, match="llama-server returns log-probabilities only for generated tokens"):
                await score_openai(b, "Four score and seven")
        finally:
            await b.close()
        assert not any(path == "/v1/completions" for _, path, _, _ in srv.requests)
