"""Bits per byte: how well a model predicts a text, comparable across tokenizers.

bpb = −Σ log₂ p(token | previous tokens) / UTF-8 bytes of the text, as lm-evaluation-harness
defines ``bits_per_byte`` (its ``word_perplexity``/``byte_perplexity`` siblings share the sum).
Perplexity per token is not comparable between SmolLM2's 49k and Gemma's 262k vocabularies; per
byte of the same text it is. Lower is better.

Where the log-probabilities come from:

- a local GGUF: the worker, through llama.cpp's logits (``llama_score``: windows with a stated
  stride, logits in bounded chunks);
- vLLM (``openai:`` specs): ``POST /v1/completions`` with ``echo: true, logprobs: 1,
  max_tokens: 1`` — the prompt's own log-probabilities, as lm-evaluation-harness's
  ``local-completions`` asks for them;
- llama-server and Ollama return log-probabilities only for generated tokens: no score, and the
  reason (``NO_PROMPT_LOGPROBS``).
"""

from __future__ import annotations

import hashlib
import math
from importlib import resources

from backends.base import BackendError

SCHEMA = "abtop.score/1"
NO_PROMPT_LOGPROBS = (
    "{server} returns log-probabilities only for generated tokens, not for the prompt's; "
    "bits per byte needs the prompt's (vLLM gives them with echo)"
)


def reference_text() -> str:
    """The bundled reference text (``data/reference.txt``; sources in ``data/SOURCES.md``)."""
    return resources.files("backends.quality").joinpath("data/reference.txt").read_text(encoding="utf-8")


def text_info(text: str, name: str) -> dict:
    """What the score document says about the text: its name, size and SHA-256."""
    raw = text.encode("utf-8")
    return {"name": name, "bytes": len(raw), "chars": len(text), "sha256": hashlib.sha256(raw).hexdigest()}


def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    return nll_nats / math.log(2) / n_bytes


def model_score(spec: str, *, name: str | None, backend: str | None, text_bytes: int, result: dict | None,
                reason: str | None = None, peak_anon_bytes: int | None = None, anon_before_bytes: int | None = None) -> dict:
    """One model's entry of an ``abtop.score/1`` document; ``bpb`` None with ``reason`` when none."""
    r = result or {}
    ok = result is not None and not r.get("cancelled") and r.get("tokens")
    return {
        "spec": spec,
        "name": name,
        "backend": backend,
        "bpb": bits_per_byte(r["nll_nats"], text_bytes) if ok else None,
        "tokens": r.get("tokens"),
        "bytes": text_bytes,
        "bits": r["nll_nats"] / math.log(2) if ok else None,
        "tokens_per_byte": r["tokens"] / text_bytes if ok else None,
        "seconds": r.get("seconds"),
        "window": r.get("window"),
        "stride": r.get("stride"),
        "chunk": r.get("chunk"),
        "unscored_tokens": r.get("unscored_tokens", 0) if ok else None,
        "peak_anon_bytes": peak_anon_bytes,
        "anon_before_bytes": anon_before_bytes,
        "reason": None if ok else reason or ("cancelled" if r.get("cancelled") else "no score"),
    }


def parse_echo_logprobs(data: dict) -> tuple[float, int, int]:
    """(nll in nats, scored tokens, unscored tokens) from an echo completion's prompt part.

    The first entry of ``token_logprobs`` is null (nothing precedes it: BOS where the model has
    one, else the text's first token, then left unscored); the last is the one generated token.
    """
    choice = (data.get("choices") or [{}])[0]
    lp = (choice.get("logprobs") or {}).get("token_logprobs")
    usage = data.get("usage") or {}
    n_prompt = usage.get("prompt_tokens")
    if not isinstance(lp, list) or not lp:
        raise ValueError("no token_logprobs in the answer")
    n_prompt = n_prompt if isinstance(n_prompt, int) and 0 < n_prompt <= len(lp) else len(lp) - 1
    if len(lp) < n_prompt or n_prompt < 2:
        raise ValueError("log-probabilities only for generated tokens")
    prompt = lp[:n_prompt]
    vals = [float(v) for v in prompt if v is not None]
    return -sum(vals), len(vals), len(prompt) - len(vals)


async def score_openai(backend, text: str) -> dict:
    """Score ``text`` on an OpenAI-compatible server; ``BackendError`` (one sentence) when it
    cannot: llama-server (no prompt log-probabilities), an error answer, a text longer than its
    context."""
    import time

    if getattr(backend, "llama_server", False):
        raise BackendError(backend.sentence(NO_PROMPT_LOGPROBS.format(server="llama-server")))
    t0 = time.monotonic()
    body = {"model": backend.model, "prompt": text, "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1}
    data = await backend.get_json("completions", "scoring request (POST /completions with echo)", method="POST", json=body)
    try:
        nll, n, unscored = parse_echo_logprobs(data)
    except ValueError:
        raise BackendError(backend.sentence(NO_PROMPT_LOGPROBS.format(server="this server"))) from None
    return {"nll_nats": nll, "tokens": n, "unscored_tokens": unscored, "seconds": time.monotonic() - t0,
            "window": None, "stride": None, "chunk": None, "cancelled": False}
