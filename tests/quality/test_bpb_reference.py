"""Bits per byte from abtop's worker (backends/quality/llama_score.py: windows, logits in chunks,
log-softmax row by row) against the same text computed by bare llama-cpp-python: each window's
logits at once (``logits_all``, ``Llama.eval``), −log p of each next token summed in float64, over
bytes × ln 2, every window opening with BOS (else EOS), unscored, as the README defines it.

Both with flash attention off (``Llama()``'s own setting): llama.cpp's CPU flash attention
accumulates in half precision and its result moves with the batch's shape (~0.1 % between one
decode and chunks of rows, ~1 % from flash attention off), so only with it off are the two the
same sum: to 1e-6 on CPUs with AVX-512, to ~4e-5 on one with AVX2 only (gemma3, whose 262k-token
vocabulary makes abtop's scored chunks 16 rows: ggml's matmul for 16 rows is not the kernel it uses
for the 255 of one decode, and adds in another order). A scoring bug (a token scored twice or
not at all, a window's context cut) moves it by ~1e-3 a typical token (~260 nats over ~600)."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from backends.base import Placement
from backends.catalog import make_backend
from backends.quality.bpb import bits_per_byte, reference_text
from backends.specs import bundled_path

N_CTX = 256
"""The window: BOS and 255 tokens of text."""
TEXT = " ".join(reference_text().split("\n\nThe Gettysburg Address\n\n")[1].split()[:270])
"""About 1.5 KB of Lincoln: two windows of N_CTX for both tokenizers (llama.cpp holds no smaller
context: it rounds n_ctx up to 256)."""


def bare_bpb(path, text: str) -> tuple[float, int, int]:
    """(bpb, scored tokens, windows) the plain way. The text's tokens are scored N_CTX - 1 at a
    time; each piece is decoded afresh after BOS, with as many of the tokens before it as fill the
    window (the last piece gets a whole window of context, as lm-evaluation-harness's rolling
    windows give it), in one eval with every logit kept. One thread on either side: on a shared
    box a second one spins at each barrier while it waits for a core."""
    import llama_cpp

    span = N_CTX - 1
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=N_CTX, n_batch=N_CTX, logits_all=True, n_threads=1, verbose=False)
    try:
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        prefix = llm.token_bos() if llm.token_bos() >= 0 else llm.token_eos()
        nll, windows = 0.0, 0
        for start in range(0, len(tokens), span):
            end = min(start + span, len(tokens))
            first = max(0, end - span)  # the context before the scored piece
            llm.reset()  # a fresh context: the next eval starts at position 0
            llm.eval([prefix, *tokens[first : end - 1]])  # row i predicts tokens[first + i]
            logits = np.array(llm.scores[start - first : end - first], dtype=np.float64)
            top = logits.max(axis=1, keepdims=True)
            log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
            nll += float(np.sum(log_z - logits[np.arange(end - start), tokens[start:end]]))
            windows += 1
    finally:
        llm.close()
    return nll / (len(text.encode("utf-8")) * math.log(2)), len(tokens), windows


@pytest.mark.timeout(900)  # two loads and ~600 positions of logits each: minutes on a shared box
@pytest.mark.parametrize("spec", ["smollm2-135m", "gemma3-270m"])
async def test_bits_per_byte_is_the_sum_bare_llama_cpp_python_gives(spec):
    # the bare sum in a thread of this process while abtop's worker scores: one thread each, one
    # core each (llama-cpp-python's calls let go of the GIL), so the test takes one side's time
    bare = asyncio.create_task(asyncio.to_thread(bare_bpb, bundled_path(spec), TEXT))
    b = make_backend(spec, n_ctx=N_CTX, flash_attn="off", placement=Placement(threads=1))
    try:
        await b.load()
        got = await b.score(TEXT)
    finally:
        await b.close()
        want, n_tokens, n_windows = await bare
    assert n_windows == 2
    assert (got["tokens"], got["windows"], got["cancelled"]) == (n_tokens, n_windows, False)
    bpb = bits_per_byte(got["nll_nats"], len(TEXT.encode("utf-8")))
    assert bpb == pytest.approx(want, rel=2e-4), (bpb, want)
