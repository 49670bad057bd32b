"""Log-likelihood of a text through llama.cpp's logits, in windows, with bounded memory.

Runs inside the llama.cpp worker (it needs the model's context). The text's tokens are read in
windows of ``window`` positions (the context size) that advance by ``stride`` tokens: the first
window scores all its tokens, each later one scores only the ``stride`` tokens after the last
scored, with the ``window - 1 - stride`` before them as context. The default stride is
``window - 1``: disjoint windows, each token decoded once, as lm-evaluation-harness's rolling
log-likelihood (``bits_per_byte`` on wikitext) reads a long text; a smaller stride gives every
token more context (Hugging Face's strided perplexity) at the cost of decoding tokens again.
Every window starts with the same prefix token (BOS, else EOS, as lm-evaluation-harness does),
which is not scored.

Memory: llama.cpp keeps one logits row (n_vocab floats) per requested output in its output
buffer, and the output projection of the compute graph as many rows again. Asking for every
position of a 2048-token window would be 2 GB for Gemma 3's 262k vocabulary; here the context part
of a window is decoded in ``n_batch`` chunks with no logits, and the scored part in chunks of
``chunk`` positions (``LOGITS_BUDGET`` bytes of logits: 16 rows for Gemma), each reduced to its
log-probabilities row by row in numpy before the next is decoded.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Callable

import numpy as np

LOGITS_BUDGET = 16 << 20
"""Bytes of logits asked for per decode of the scored part (a chunk of rows)."""


def windows(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """``(context_start, score_start, end)`` per window over ``n_tokens`` text tokens.

    ``window`` counts the prefix token, so a window holds at most ``window - 1`` text tokens and
    scores ``tokens[score_start:end]`` given ``tokens[context_start:score_start]``.
    """
    span = window - 1
    if span < 1 or not 1 <= stride <= span:
        raise ValueError(f"the stride must be between 1 and the window less one ({span}); got {stride}")
    out, scored = [], 0
    while scored < n_tokens:
        end = min(scored + stride if scored else span, n_tokens)
        out.append((max(0, end - span), scored, end))
        scored = end
    return out


def chunk_rows(n_vocab: int, n_batch: int, budget: int = LOGITS_BUDGET) -> int:
    """Scored positions per decode: as many logits rows as ``budget`` holds, within ``n_batch``."""
    return max(1, min(n_batch, budget // (4 * n_vocab)))


def score_tokens(
    lc,
    ctx,
    n_vocab: int,
    tokens: list[int],
    prefix: int,
    *,
    window: int,
    stride: int,
    n_batch: int,
    clear: Callable[[], None],
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> dict:
    """Sum of −log p(token | previous) over ``tokens``, in nats; ``lc`` is the ``llama_cpp`` module.

    Returns ``nll_nats``, ``tokens`` (scored), ``chunk``, ``windows`` and ``cancelled``.
    """
    chunk = chunk_rows(n_vocab, n_batch)
    plan = windows(len(tokens), window, stride)
    tok_size = ctypes.sizeof(lc.llama_token)
    nll, done = 0.0, 0
    ones = (ctypes.c_int8 * chunk)(*([1] * chunk))
    for ctx_start, score_start, end in plan:
        clear()
        # The sequence decoded: the prefix, then tokens[ctx_start:end - 1]; the logits at index q
        # predict tokens[ctx_start + q]. The context part needs no logits, the scored part all.
        seq = [prefix, *tokens[ctx_start : end - 1]]
        arr = (lc.llama_token * len(seq))(*seq)
        first = score_start - ctx_start
        for i in range(0, first, n_batch):
            n = min(n_batch, first - i)
            view = (lc.llama_token * n).from_buffer(arr, i * tok_size)
            if lc.llama_decode(ctx, lc.llama_batch_get_one(view, n)) != 0:
                raise RuntimeError("llama.cpp could not evaluate the text (decode failed)")
        for i in range(first, len(seq), chunk):
            n = min(chunk, len(seq) - i)
            view = (lc.llama_token * n).from_buffer(arr, i * tok_size)
            batch = lc.llama_batch_get_one(view, n)
            batch.logits = ctypes.cast(ones, ctypes.POINTER(ctypes.c_int8))  # every row of this chunk
            if lc.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama.cpp could not evaluate the text (decode failed)")
            rows = np.ctypeslib.as_array(lc.llama_get_logits(ctx), shape=(n, n_vocab))
            for r in range(n):  # one row at a time: the temporaries stay one row big
                row = rows[r]
                top = float(row.max())
                lse = top + math.log(float(np.exp(row - top).sum(dtype=np.float64)))
                nll += lse - float(row[tokens[ctx_start + i + r]])
            done += n
            if progress is not None:
                progress(done, len(tokens))
            if cancelled is not None and cancelled():
                return {"nll_nats": nll, "tokens": done, "chunk": chunk, "windows": len(plan), "cancelled": True}
    return {"nll_nats": nll, "tokens": done, "chunk": chunk, "windows": len(plan), "cancelled": False}


def score_text(model, text: str, *, window: int | None, stride: int | None, progress=None, cancelled=None) -> dict:
    """Score ``text`` with a worker ``Model`` (its llama.cpp context, vocab and batch size)."""
    lc, llm = model.lc, model.llm
    t0 = time.monotonic()
    tokens = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    bos, eos = lc.llama_vocab_bos(model.vocab), lc.llama_vocab_eos(model.vocab)
    prefix = bos if bos >= 0 else eos
    window = min(window or model.n_ctx, model.n_ctx)
    stride = min(stride or window - 1, window - 1)
    out = score_tokens(
        lc, model.ctx, model.n_vocab, tokens, prefix, window=window, stride=stride, n_batch=model.n_batch,
        clear=model._clear_cache, progress=progress, cancelled=cancelled,
    )  # fmt: skip
    model._clear_cache()
    out.update(window=window, stride=stride, seconds=time.monotonic() - t0, text_tokens=len(tokens))
    return out
