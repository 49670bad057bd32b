"""Multiple-choice log-likelihoods and greedy generation inside the llama.cpp worker.

The worker's one KV sequence serves as a prefix cache (``cached``: what its cells hold). An
item's options share its context: the context is decoded once, in one batch with the first option
(every token but the option's last: nothing is predicted from it), logits rows only from the
context's last position on; that position's log-probabilities are kept, and give every later
option's first token. Each later option drops the previous option's cells (``llama_memory_seq_rm``
from the context's end) and decodes its own tokens but the last, logits rows at those positions
only; an option of one token decodes nothing. WinoGrande's options differ in their context: each
is read afresh. GSM8K's eight examples precede every question: decoded once, they stay cached.

The batches' shapes are fixed (the context with the first option, then each other option; for
GSM8K the examples, then the question): llama.cpp's CPU kernels give a row slightly different
numbers in batches of other sizes (tiles of 4 rows and the remainder add in different orders), and
the rounding of the next layer's Q8 activations can turn that into 0.1-1 nat over a long option
(measured on both bundled models). With the shapes fixed, an item's figures depend on nothing
scored before it, and equal a bare llama-cpp-python decode of the same batches
(``tests/quality/test_eval.py``).

Tokenization is lm-evaluation-harness's (``HFLM._encode_pair``): the context's trailing spaces
move to the continuation, context + continuation is tokenized whole and split at the context's
own token count. The continuation's tokens are those the model reads in running text (" television"
as one word after "Answer:"), not the words tokenized alone, which can differ at the join; the
context's tokens are the context tokenized alone, the same for every option, so the prefix is
shared exactly. A BOS token goes first where the GGUF asks for one (Gemma does, SmolLM2 does not),
as lm-eval does for these two families.

A sliding-window cache (Gemma 3) may reuse the cells a kept prefix needs once it is full (a
context plus an option over the window plus a batch): then the context is decoded again.
"""

from __future__ import annotations

import codecs
import ctypes
import time

import numpy as np

from backends.quality.eval.gsm8k import cut, stopped
from backends.quality.llama_score import chunk_rows

OPTION_LOGITS_BUDGET = 64 << 20
"""Bytes of logits rows per decode: an option of up to 64 tokens is one batch even with Gemma's
262k vocabulary (one batch per option keeps its numbers those of a plain decode of it)."""


class Evaluator:
    """Reads items with a worker ``Model`` (``lc``, ``llm``, ``ctx``, ``vocab``, ``n_vocab``,
    ``n_ctx``, ``n_batch``, ``_clear_cache``)."""

    def __init__(self, model) -> None:
        lc = self.lc = model.lc
        self.m = model
        self.mem = lc.llama_get_memory(model.ctx)
        self.n_swa = int(lc.llama_model_n_swa(model.llm.model)) if hasattr(lc, "llama_model_n_swa") else 0
        self.chunk = chunk_rows(model.n_vocab, model.n_batch, OPTION_LOGITS_BUDGET)
        bos, eos = lc.llama_vocab_bos(model.vocab), lc.llama_vocab_eos(model.vocab)
        self.head = [bos] if bos >= 0 and lc.llama_vocab_get_add_bos(model.vocab) else []
        self.prefix = bos if bos >= 0 else eos
        self.cached: list[int] = []
        self.row: tuple[list[int], np.ndarray] | None = None
        """(context tokens, log-probabilities of the next token after them), while they are cached."""
        self.decoded = 0
        self.reset()

    def reset(self) -> None:
        self.m._clear_cache()
        self.cached, self.row = [], None

    # -- tokens -------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self.m.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False) if text else []

    def pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context tokens with the BOS where the model wants one, continuation tokens)."""
        n = len(context) - len(context.rstrip())
        if n:
            context, continuation = context[:-n], context[-n:] + continuation
        ctx = self.encode(context)
        whole = self.encode(context + continuation)
        head = self.head if self.head or ctx else [self.prefix]  # an empty context: the prefix token
        return head + ctx, whole[len(ctx) :]

    # -- the cache ------------------------------------------------------------------------------
    def _window_lost(self, keep: int) -> bool:
        """A sliding-window cache reused cells that a token at position ``keep`` attends to."""
        return bool(self.n_swa) and self.lc.llama_memory_seq_pos_min(self.mem, 0) > max(0, keep - self.n_swa)

    def _decode(self, arr, start: int, n: int, logits) -> None:
        lc = self.lc
        view = (lc.llama_token * n).from_buffer(arr, start * ctypes.sizeof(lc.llama_token))
        batch = lc.llama_batch_get_one(view, n)
        batch.logits = ctypes.cast(logits, ctypes.POINTER(ctypes.c_int8))
        if lc.llama_decode(self.m.ctx, batch) != 0:
            self.reset()
            raise RuntimeError("llama.cpp could not evaluate the item (decode failed)")
        self.decoded += n

    def _feed(self, seq: list[int], keep: int, want: int, upto: int, save: bool = False):
        """Decode ``seq[keep:upto]`` (the cells before ``keep`` are cached); the log-probability
        of ``seq[q + 1]`` for every ``q`` in ``[want, upto)``, and the whole row at ``want`` when
        ``save``. Logits rows only from ``want`` on; one batch as long as it holds ``n_batch``
        tokens and ``self.chunk`` rows (a batch's split changes the numbers a little: see
        ``choices``)."""
        lc, n_vocab, n_batch = self.lc, self.m.n_vocab, self.m.n_batch
        total = upto - keep
        arr = (lc.llama_token * total)(*seq[keep:upto])
        lps: list[float] = []
        row = None
        i = 0
        while i < total:
            start = max(i, want - keep)  # this batch's first position with a logits row
            n = min(total - i, n_batch, max(start - i, 0) + self.chunk)
            flags = (ctypes.c_int8 * n)(*[1 if i + r >= want - keep else 0 for r in range(n)])
            self._decode(arr, i, n, flags)
            k = sum(flags)
            if k:
                rows = np.ctypeslib.as_array(lc.llama_get_logits(self.m.ctx), shape=(k, n_vocab))
                top = rows.max(axis=1)
                lse = top + np.log(np.exp(rows - top[:, None]).sum(axis=1, dtype=np.float64))
                for r in range(k):
                    q = keep + i + n - k + r
                    if q + 1 < len(seq):
                        lps.append(float(rows[r, seq[q + 1]]) - float(lse[r]))
                    if save and q == want:
                        row = (rows[r].astype(np.float64) - lse[r]).astype(np.float32)
            i += n
        self.cached = seq[:upto]
        return lps, row

    # -- items --------------------------------------------------------------------------------
    def choices(self, contexts: list[str], continuations: list[str], reuse: bool = True, every_row: bool = False) -> dict:
        """``{"lls", "tokens"}`` of an item's options, or ``{"skipped", "tokens"}`` when an option
        does not fit the context. ``reuse`` False: every option from an empty cache, context and
        option in one batch, with logits rows at every position if ``every_row`` (as a plain
        ``Llama(logits_all=True)`` decode or lm-eval's Hugging Face model computes them): the
        baselines ``benchmarks/eval_speed.py`` measures against."""
        pairs = [self.pair(c, k) for c, k in zip(contexts, continuations, strict=True)]
        longest = max(len(c) + len(k) for c, k in pairs)
        if longest > self.m.n_ctx:
            return {"skipped": f"{longest} tokens, longer than the context ({self.m.n_ctx})", "tokens": longest}
        lls = []
        for ctx, cont in pairs:
            if not cont:
                lls.append(0.0)
                continue
            seq = ctx + cont
            if not reuse:
                self.reset()
                first = 0 if every_row else len(ctx) - 1
                lls.append(sum(self._feed(seq, 0, first, len(seq) - 1)[0][len(ctx) - 1 - first :]))
                continue
            if self.row is None or self.row[0] != ctx or self._window_lost(len(ctx)):
                # a new context: decoded with this option in one batch, the context's last row kept
                self.reset()
                lps, row = self._feed(seq, 0, len(ctx) - 1, len(seq) - 1, save=True)
                self.row = (ctx, row)
                lls.append(sum(lps))
                continue
            lp = float(self.row[1][cont[0]])
            if len(cont) > 1:  # the previous option's cells go; this one's tokens but the last
                if len(self.cached) > len(ctx) and not self.lc.llama_memory_seq_rm(self.mem, 0, len(ctx), -1):
                    raise RuntimeError("llama.cpp could not drop an option's cells (llama_memory_seq_rm)")
                self.cached = self.cached[: len(ctx)]
                lp += sum(self._feed(seq, len(ctx), len(ctx), len(seq) - 1)[0])
            lls.append(lp)
        return {"lls": lls, "tokens": [len(k) for _, k in pairs]}

    def generate(self, context: str, stops: list[str], max_tokens: int, shared: int = 0, cancelled=None) -> dict:
        """Greedy text after ``context`` until a stop sequence, an end-of-text token or
        ``max_tokens``: ``{"text", "tokens", "stop"}``, or ``{"skipped", "tokens"}``. The first
        ``shared`` characters (GSM8K's examples, the same for every question of the task) are
        decoded in a batch of their own and stay cached for the next item; the rest of the
        prompt is one batch, so an item's numbers never depend on the items before it."""
        lc, m = self.lc, self.m
        prompt = self.head + self.encode(context)
        if len(prompt) >= m.n_ctx:
            return {"skipped": f"{len(prompt)} tokens, longer than the context ({m.n_ctx})", "tokens": len(prompt)}
        max_tokens = min(max_tokens, m.n_ctx - len(prompt))
        pre = self.head + self.encode(context[:shared]) if 0 < shared < len(context) else []
        split = len(pre) if pre and prompt[: len(pre)] == pre else 0
        if split and self.cached[:split] == prompt[:split] and not self._window_lost(split):
            if len(self.cached) > split and not lc.llama_memory_seq_rm(self.mem, 0, split, -1):
                self.reset()
                split = 0
        else:
            self.reset()
            if split:
                self._feed(prompt, 0, split, split)  # the examples: no logits row
        self.cached = prompt[:split]
        self.row = None
        self._feed(prompt, split, len(prompt) - 1, len(prompt))
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        piece, one, flag = ctypes.create_string_buffer(256), (lc.llama_token * 1)(), (ctypes.c_int8 * 1)(1)
        text, n_gen, stop = "", 0, "length"
        while n_gen < max_tokens:
            tok = m._argmax(m.ctx)
            if lc.llama_vocab_is_eog(m.vocab, tok):
                stop = "eos"
                break
            k = lc.llama_token_to_piece(m.vocab, tok, piece, 256, 0, False)
            text += decoder.decode(piece.raw[: max(k, 0)])
            n_gen += 1
            if stopped(text, stops):
                stop = "stop"
                break
            if n_gen >= max_tokens:
                break
            if cancelled is not None and cancelled():
                stop = "cancelled"
                break
            one[0] = tok
            self._decode(one, 0, 1, flag)
            self.cached.append(tok)
        text += decoder.decode(b"", final=True)
        return {"text": cut(text, stops), "tokens": n_gen, "stop": stop}


def run_items(model, items: list[dict], *, reuse: bool, send, cancelled) -> dict:
    """Read ``items`` in order (``{"i", "contexts", "continuations"}`` or ``{"i", "context",
    "stop", "max_tokens"}``), ``send`` one result per item; the run's totals."""
    ev = Evaluator(model)
    t0, cpu0 = time.monotonic(), time.process_time()
    done = 0
    stop = False
    for item in items:
        if cancelled():
            stop = True
            break
        before = ev.decoded
        if "context" in item:
            out = ev.generate(item["context"], item.get("stop") or [], int(item.get("max_tokens") or 256),
                              int(item.get("shared") or 0), cancelled)
            stop = out.get("stop") == "cancelled"
            if stop:
                break
        else:
            out = ev.choices(item["contexts"], item["continuations"], reuse=reuse)
        send({"i": item["i"], "decoded": ev.decoded - before, **out})
        done += 1
    ev.reset()
    return {"items": done, "cancelled": stop, "seconds": time.monotonic() - t0,
            "cpu_s": time.process_time() - cpu0, "decoded": ev.decoded}  # fmt: skip
