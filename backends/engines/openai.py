"""OpenAI-compatible servers (llama-server, llama-cpp-python's server, vLLM, LM Studio) over httpx.

One request per run: ``POST {url}/chat/completions`` with ``stream: true`` (server-sent events),
or ``/completions`` in completion mode (the model has no chat template, or the server says chat is
not supported). Figures come from the server where it measures them:

- llama-server's ``timings`` (prompt_n, prompt_ms, predicted_n, predicted_ms) — asked for on every
  chunk with ``timings_per_token``, so a chunk's token count is the growth of ``predicted_n``;
  ``cache_prompt: false`` so each run processes its prompt afresh, like a local run;
- ``usage`` (``stream_options.include_usage``) from any server that supports it.

Prompt caches make a repeated run's TTFT meaningless beside a local run, which pays its prompt
every time. llama-server honours ``cache_prompt: false``, and a ``timings.cache_n`` it reports
anyway becomes the run's ``ttft_note``. llama-cpp-python's ``llama_cpp.server`` honours nothing of
the kind (it keeps the last prompt's KV and reuses the longest common prefix): before each run it
gets a one-token request of a different prompt, outside the run's clock, which evicts that prefix.

A chunk may carry several tokens: ``Token.n`` comes from those counts, and is 1 per chunk only when
the server gives none (``Finished.gen_tokens`` then corrects the total from ``usage``).
"""

from __future__ import annotations

import asyncio
import json
import os

import httpx

from backends.base import BackendError, GenParams
from backends.engines.httpbase import Emit, HTTPBackend, StreamError, _Run, empty_stall, lines, server_says
from backends.events import EngineTimings, Finished, ModelInfo, Started, Token, now
from backends.specs import ModelSpec
from backends.telemetry.remote import gguf_of, server_pid

_STOP = {"stop": "eos", "eos": "eos", "length": "length"}
_SSE_FIELDS = ("event:", "id:", "retry:")


def _is_data(line: str) -> bool:
    """A line that carries an event's data (not a ``:`` keep-alive comment or a blank line)."""
    return line.startswith("data:")


class OpenAIBackend(HTTPBackend):
    kind = "openai"

    def __init__(
        self,
        spec: ModelSpec,
        *,
        stall_timeout: float | None = None,
        connect_timeout: float = 10.0,
        completion: bool | None = None,
    ) -> None:
        """``completion``: True/False forces completion/chat mode; None decides at ``load()``."""
        super().__init__(spec, stall_timeout=stall_timeout, connect_timeout=connect_timeout)
        self.completion = completion
        self.llama_server = False
        """The server is llama.cpp's llama-server (it answers ``/props``, owns "llamacpp")."""
        self._usage_ok = True
        self.python_server = False
        """The server is llama-cpp-python's ``llama_cpp.server`` (its prompt cache is evicted)."""

    @property
    def root(self) -> str:
        """The server's root (``/props``, ``/metrics`` live there, not under ``/v1``)."""
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    def not_found_hint(self) -> str:
        return "check the model name, and that the URL ends in /v1"

    # -- load -------------------------------------------------------------------------------
    async def load(self):
        t0 = now()
        data = await self.get_json(
            "models",
            "model list request (GET /models)",
            on_404="no OpenAI-compatible API there (404 on /models); the URL usually ends in /v1",
        )
        models = [m for m in data.get("data") or [] if isinstance(m, dict)]
        entry = next((m for m in models if m.get("id") == self.model), None)
        if entry is None and len(models) == 1:
            entry = models[0]  # llama-server serves its one model, whatever name the request gives
        elif entry is None and models:
            names = ", ".join(str(m.get("id")) for m in models[:8])
            raise BackendError(self.sentence(f"the server has no model named {self.model!r} (it serves: {names})"))
        props = await self.try_json(self.root + "/props")
        props = props if isinstance(props, dict) else {}
        self.llama_server = bool(props.get("default_generation_settings")) or (entry or {}).get("owned_by") == "llamacpp"
        if not self.llama_server and (entry or {}).get("owned_by") == "me":  # llama_cpp.server's /models
            api = await self.try_json(self.root + "/openapi.json")
            self.python_server = "llama.cpp Python" in str(((api or {}).get("info") or {}).get("title", ""))

        info = ModelInfo(name=self.model)
        meta = (entry or {}).get("meta") or {}
        info.params = meta.get("n_params")
        info.file_bytes = meta.get("size")
        info.n_ctx_train = meta.get("n_ctx_train")

        # psutil's socket and memory-map scans and the GGUF read block: in a thread, off the loop
        pid = await asyncio.to_thread(server_pid, self.base_url)
        weights = props.get("model_path")
        if pid is not None and not (weights and os.path.isfile(weights)):
            weights = await asyncio.to_thread(gguf_of, pid, hint=self.model)
        if pid is None or not (weights and os.path.isfile(weights)):
            weights = None
        if weights:
            info = await asyncio.to_thread(_merge_card, info, weights)

        if "chat_template" in props:
            info.chat_template = bool(props.get("chat_template"))
        if self.completion is None:
            self.completion = info.chat_template is False
        settings = props.get("default_generation_settings") or {}
        n_ctx = props.get("n_ctx") or settings.get("n_ctx")
        return self.make_loaded(
            info, t0, pid=pid, weights_path=weights, n_ctx=n_ctx, completion_mode=bool(self.completion)
        )

    # -- stream -----------------------------------------------------------------------------
    def _body(self, prompt: str, p: GenParams) -> dict:
        body: dict = {
            "model": self.model,
            "stream": True,
            "max_tokens": p.max_tokens,
            "temperature": p.temperature,
            "seed": p.seed,
        }
        if self.completion:
            body["prompt"] = prompt
        else:
            body["messages"] = [{"role": "user", "content": prompt}]
        if self._usage_ok:
            body["stream_options"] = {"include_usage": True}
        if self.llama_server:
            body["timings_per_token"] = True
            body["cache_prompt"] = False
        return body

    async def _evict_prompt_cache(self) -> None:
        """llama_cpp.server reuses the previous prompt's KV: one token of another prompt first."""
        body = {"model": self.model, "prompt": "\n", "max_tokens": 1, "temperature": 0.0, "stream": False}
        try:
            await self.client.post("completions", json=body)
        except httpx.HTTPError:
            pass  # the run's own request says what is wrong with the server

    async def produce(self, emit: Emit, run: _Run, prompt: str, params: GenParams, *, index: int, warmup: bool) -> None:
        if self.python_server:
            await self._evict_prompt_cache()
        emit(Started(now(), run=index, warmup=warmup))
        for _attempt in range(3):
            path = "completions" if self.completion else "chat/completions"
            what = "completion request" if self.completion else "chat request"
            async with self.client.stream("POST", path, json=self._body(prompt, params)) as resp:
                if resp.status_code >= 400:
                    body = await resp.aread()
                    if self._adjust(resp.status_code, body):
                        continue  # nothing was streamed yet: ask again the way the server wants
                    raise StreamError(self.sentence(self.status_clause(resp.status_code, body, what)))
                await self._read(resp, emit, run)
                return

    def _adjust(self, status: int, body: bytes) -> bool:
        """Change the request after a refusal that names its cause; True to retry."""
        said = server_says(body).lower()
        if status in (400, 422) and "stream_options" in said and self._usage_ok:
            self._usage_ok = False
            return True
        if status in (400, 404, 405, 500, 501) and not self.completion and (
            "template" in said or ("chat" in said and "not supported" in said)
        ):
            self.completion = True
            if self.loaded is not None:
                self.loaded.completion_mode = True
            return True
        return False

    async def _read(self, resp: httpx.Response, emit: Emit, run: _Run) -> None:
        ctype = resp.headers.get("content-type", "")
        if "json" in ctype and "event-stream" not in ctype:
            body = await resp.aread()
            said = server_says(body)
            raise StreamError(self.sentence(f"answered with JSON instead of an event stream ({said})"))
        last_count = 0  # the server's running count of generated tokens
        pending = 0  # tokens counted but not yet attached to text
        timings = usage = None
        finish = None
        finish_t = None
        done = False
        moved = now()  # the last event that brought a token, a count or the end
        async for line in lines(resp, self.sentence, self.stall_timeout, is_data=_is_data):
            t = now()
            if not line or line.startswith(":") or line.startswith(_SSE_FIELDS):
                continue
            if not line.startswith("data:"):
                raise StreamError(self.sentence(f"sent a line that is not a server-sent event ({line[:60]!r})"))
            payload = line[5:].strip()
            if payload == "[DONE]":
                done = True
                break
            try:
                obj = json.loads(payload)
            except (ValueError, RecursionError):
                raise StreamError(self.sentence(f"sent an event that is not JSON ({payload[:60]!r})")) from None
            if not isinstance(obj, dict):
                raise StreamError(self.sentence(f"sent an event that is not a JSON object ({payload[:60]!r})"))
            if obj.get("error"):
                raise StreamError(self.sentence(f"the server reported an error mid-stream ({server_says(payload)})"))
            count = None
            if isinstance(obj.get("timings"), dict):
                timings = obj["timings"]
                count = timings.get("predicted_n")
            if isinstance(obj.get("usage"), dict):
                usage = obj["usage"]
                if count is None and timings is None:
                    count = usage.get("completion_tokens")
            text = ""
            for choice in (obj.get("choices") or [])[:1]:
                delta = choice.get("delta") or {}
                text = delta.get("content") or delta.get("reasoning_content") or choice.get("text") or ""
                if choice.get("finish_reason"):
                    finish, finish_t = choice["finish_reason"], t
            if isinstance(count, int):
                pending += max(count - last_count, 0)
                if count > last_count:
                    moved = t
                last_count = max(count, last_count)
            elif text:
                pending += 1
            if text or finish:
                moved = t
            else:
                empty_stall(self.sentence, moved, t, self.stall_timeout)
            if text:
                emit(Token(text, t, pending))
                run.tokens += pending
                pending = 0
        if not (done or finish):
            return  # the pump says the stream ended early
        emit(self._finished(finish_t or now(), finish, timings, usage))

    def _finished(self, t: float, finish: str | None, timings: dict | None, usage: dict | None) -> Finished:
        engine = None
        gen = None
        if timings and timings.get("predicted_n") is not None:
            gen = timings.get("predicted_n")
            engine = EngineTimings(
                source="llama-server timings",
                prompt_tokens=timings.get("prompt_n"),
                prompt_ms=timings.get("prompt_ms"),
                gen_tokens=gen,
                gen_ms=timings.get("predicted_ms"),
                cache_tokens=timings.get("cache_n") if isinstance(timings.get("cache_n"), int) else None,
            )
        elif usage and usage.get("completion_tokens") is not None:
            gen = usage.get("completion_tokens")
            engine = EngineTimings(source="usage", prompt_tokens=usage.get("prompt_tokens"), gen_tokens=gen)
        return Finished(t, _STOP.get(finish or "stop", finish or "eos"), gen_tokens=gen, engine=engine)


def _merge_card(info: ModelInfo, weights: str) -> ModelInfo:
    """The GGUF header of a local server's weights fills what ``/models`` did not say."""
    try:
        from backends.card.gguf import read_card

        card = read_card(weights)
    except Exception:  # noqa: BLE001 - the card is a bonus; a server we can talk to still works
        return info
    card.name = info.name
    for field in ("params", "file_bytes", "n_ctx_train"):
        if getattr(card, field) is None:
            setattr(card, field, getattr(info, field))
    return card
