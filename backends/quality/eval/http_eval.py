"""The eval on servers: options' log-likelihoods from vLLM, greedy answers from any server.

- vLLM (``openai:`` specs): one ``POST /v1/completions`` per item, every option's context +
  continuation as a list of prompts, with ``echo: true, logprobs: 1, max_tokens: 1`` (as
  lm-evaluation-harness's ``local-completions`` asks). An option's log-likelihood is the sum of
  the prompt tokens that start at or after the context's end (``text_offset``): the server
  tokenizes the text whole, as ``HFLM._encode_pair`` does before it splits at the context.
- llama-server and Ollama return log-probabilities only for generated tokens: the multiple-choice
  figures are None with that reason.
- GSM8K (generation) runs on all three: ``/v1/completions`` (``temperature: 0``, the first four
  stop sequences, the OpenAI limit) or Ollama's ``/api/generate`` with ``raw: true`` (no chat
  template, as lm-eval sends the prompt); the text is cut at every stop sequence here too.
"""

from __future__ import annotations

from backends.base import BackendError
from backends.quality.eval.gsm8k import cut

NO_PROMPT_LOGPROBS = (
    "{server} returns log-probabilities only for generated tokens, not for the prompt's; multiple-choice "
    "accuracy needs the prompt's (vLLM gives them with echo)"
)


def mc_unavailable(backend) -> str | None:
    """Why this server cannot score options (a sentence without its full stop), or None."""
    if backend.kind == "ollama":
        return NO_PROMPT_LOGPROBS.format(server="Ollama")
    if getattr(backend, "llama_server", False):
        return NO_PROMPT_LOGPROBS.format(server="llama-server")
    return None


def _split(context: str, continuation: str) -> tuple[str, str]:
    n = len(context) - len(context.rstrip())
    return (context[:-n], context[-n:] + continuation) if n else (context, continuation)


def parse_options(data: dict, pairs: list[tuple[str, str]]) -> dict:
    """``{"lls", "tokens"}`` from an echo answer to one prompt per (context, continuation).
    ``ValueError`` when the answer has no prompt log-probabilities or offsets."""
    choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
    if len(choices) != len(pairs):
        raise ValueError(f"{len(choices)} answers to {len(pairs)} prompts")
    lls, tokens = [], []
    for choice, (ctx, cont) in zip(choices, pairs, strict=True):
        lp = choice.get("logprobs") or {}
        offsets, values = lp.get("text_offset"), lp.get("token_logprobs")
        if not isinstance(offsets, list) or not isinstance(values, list) or len(offsets) != len(values):
            raise ValueError("no prompt log-probabilities with text offsets")
        if not str(choice.get("text", ctx + cont)).startswith(ctx + cont):
            raise ValueError("the prompt was not echoed")
        start, end = len(ctx), len(ctx) + len(cont)
        mine = [v for o, v in zip(offsets, values, strict=True) if start <= o < end]
        if not mine or any(v is None for v in mine):
            raise ValueError("log-probabilities only for generated tokens")
        lls.append(float(sum(mine)))
        tokens.append(len(mine))
    return {"lls": lls, "tokens": tokens}


async def choices_openai(backend, contexts: list[str], continuations: list[str]) -> dict:
    """One item's options on an OpenAI-compatible server that echoes prompt log-probabilities."""
    pairs = [_split(c, k) for c, k in zip(contexts, continuations, strict=True)]
    body = {"model": backend.model, "prompt": [c + k for c, k in pairs], "max_tokens": 1, "temperature": 0,
            "echo": True, "logprobs": 1}  # fmt: skip
    data = await backend.get_json("completions", "scoring request (POST /completions with echo)", method="POST", json=body)
    try:
        return parse_options(data, pairs)
    except ValueError:
        raise BackendError(backend.sentence(NO_PROMPT_LOGPROBS.format(server="this server"))) from None


async def generate_http(backend, context: str, stops: list[str], max_tokens: int) -> dict:
    """Greedy text after ``context`` from a server: ``{"text", "tokens", "stop"}``."""
    if backend.kind == "ollama":
        body = {"model": backend.model, "prompt": context, "raw": True, "stream": False,
                "options": {"temperature": 0, "num_predict": max_tokens, "stop": stops}}  # fmt: skip
        data = await backend.get_json("api/generate", "generate request (POST /api/generate)", method="POST", json=body)
        text, n, why = str(data.get("response") or ""), data.get("eval_count"), data.get("done_reason")
    else:
        body = {"model": backend.model, "prompt": context, "max_tokens": max_tokens, "temperature": 0, "stop": stops[:4]}
        data = await backend.get_json("completions", "completion request (POST /completions)", method="POST", json=body)
        choice = (data.get("choices") or [{}])[0]
        text, n, why = str(choice.get("text") or ""), (data.get("usage") or {}).get("completion_tokens"), choice.get("finish_reason")
    return {"text": cut(text, stops), "tokens": n if isinstance(n, int) else None, "stop": why or "stop"}
