"""Ollama's native API over httpx: ``/api/chat`` streams NDJSON, one object per token.

Only the native API carries Ollama's own counters, in the final ``done`` object (nanoseconds):
``eval_count``/``eval_duration`` (generation), ``prompt_eval_count``/``prompt_eval_duration``,
``load_duration``. ``load()`` reads ``/api/tags`` (file size), ``/api/show`` (the model card),
loads the model with an empty chat (so the first run does not pay for loading) and reads
``/api/ps`` for where the model sits: ``ModelInfo.placement`` ("100% GPU", "48%/52% CPU/GPU").

On this machine the model runs in a child ``runner`` process of ``ollama serve``; that child
(found by the model's blob path on its command line) is ``Loaded.pid``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re

import httpx

from backends.base import BackendError, GenParams
from backends.engines.httpbase import (
    Emit,
    HTTPBackend,
    StreamError,
    _Run,
    describe_transport_error,
    empty_stall,
    lines,
    server_says,
)
from backends.events import EngineTimings, Finished, ModelInfo, Started, Token, now
from backends.fetch.ollama_pull import pull
from backends.specs import ModelSpec
from backends.telemetry.remote import child_with, ollama_entry, ollama_placement, server_pid

_STOP = {"stop": "eos", "length": "length"}
_LOAD_TIMEOUT_S = 600.0  # a large model can take minutes to load; the load answers only when done


def _ms(ns) -> float | None:
    return ns / 1e6 if isinstance(ns, (int, float)) else None


def parse_param_size(text: str | None) -> int | None:
    """ "7.2B" → 7_200_000_000, "270M" → 270_000_000."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMBT]?)\s*", text or "", re.I)
    if not m:
        return None
    scale = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[m.group(2).upper()]
    return int(float(m.group(1)) * scale)


class OllamaBackend(HTTPBackend):
    kind = "ollama"
    server_name = "Ollama"
    start_hint = "start it with `ollama serve`"
    key_vars = ("ABTOP_API_KEY",)  # for a proxy in front of Ollama; never pass on an OpenAI key
    can_pull = True

    def __init__(self, spec: ModelSpec, *, stall_timeout: float | None = None, connect_timeout: float = 10.0) -> None:
        super().__init__(spec, stall_timeout=stall_timeout, connect_timeout=connect_timeout)
        self.completion = False
        self.blob: str | None = None
        """The model's GGUF blob on the server's disk (from the Modelfile's FROM line)."""
        self._known: list[str] = []

    def not_found_hint(self) -> str:
        have = f" (it has: {', '.join(self._known[:8])})" if self._known else ""
        offer = f"{self.pull_offer}, or " if self.pull_offer and self.missing else ""
        return f"{offer}pull it with `ollama pull {self.model}`{have}"

    # -- load -------------------------------------------------------------------------------
    async def load(self):
        t0 = now()
        tags = await self.get_json(
            "api/tags",
            "model list request (GET /api/tags)",
            on_404="no Ollama API there (404 on /api/tags); Ollama's URL is like http://127.0.0.1:11434",
        )
        models = tags.get("models") or []
        self._known = [m.get("name") for m in models if isinstance(m, dict) and m.get("name")]
        self.missing = ollama_entry(models, self.model) is None
        if self.missing and self.pull:
            await pull(self.client, self.model, self.report, self.sentence, stall_s=self.stall_timeout, connect_s=self.connect_timeout)
            tags = await self.try_json("api/tags") or {}
            models = tags.get("models") or []
            self.missing = self.pull = False
            t0 = now()  # the load time is the model's, not the pull's
        show = await self.get_json("api/show", "model card request", method="POST", json={"model": self.model})
        self.missing = False  # the server knows it after all (a tag /api/tags spells otherwise)
        info = self._card(show, ollama_entry(models, self.model))
        await self._warm()
        ps = await self.try_json("api/ps")
        running = ollama_entry((ps or {}).get("models"), self.model) if isinstance(ps, dict) else None
        if running:
            info.placement = ollama_placement(running.get("size"), running.get("size_vram"))
        pid = None
        serve = await asyncio.to_thread(server_pid, self.base_url)  # psutil's socket scan blocks
        if serve is not None and self.blob:
            pid = await asyncio.to_thread(child_with, serve, self.blob)
        weights = self.blob if pid and self.blob and os.path.isfile(self.blob) else None
        n_ctx = (running or {}).get("context_length")
        return self.make_loaded(info, t0, pid=pid, weights_path=weights, n_ctx=n_ctx, completion_mode=self.completion)

    def _card(self, show: dict, tag: dict | None) -> ModelInfo:
        details = show.get("details") or {}
        mi = show.get("model_info") or {}
        arch = mi.get("general.architecture") or details.get("family")
        template = (show.get("template") or "").strip()
        has_template = bool(template) and template != "{{ .Prompt }}"
        self.completion = not has_template
        for line in (show.get("modelfile") or "").splitlines():
            if line.startswith("FROM /"):
                self.blob = line[len("FROM ") :].strip()
        return ModelInfo(
            name=self.model,
            arch=arch,
            params=mi.get("general.parameter_count") or parse_param_size(details.get("parameter_size")),
            quant=details.get("quantization_level"),
            file_bytes=(tag or {}).get("size"),
            n_ctx_train=mi.get(f"{arch}.context_length") if arch else None,
            chat_template=has_template,
            n_layers=mi.get(f"{arch}.block_count") if arch else None,
            path=self.blob,
        )

    async def _warm(self) -> None:
        """An empty chat loads the model into memory (Ollama's documented "load a model")."""
        timeout = httpx.Timeout(_LOAD_TIMEOUT_S, connect=self.connect_timeout)
        try:
            r = await self.client.post("api/chat", json={"model": self.model, "messages": []}, timeout=timeout)
        except httpx.HTTPError as exc:
            raise BackendError(self.sentence(describe_transport_error(exc, _LOAD_TIMEOUT_S, self.start_hint, "load request"))) from None
        if r.status_code >= 400:
            raise BackendError(self.sentence(self.status_clause(r.status_code, r.content, "load request")))

    # -- stream -----------------------------------------------------------------------------
    def _request(self, prompt: str, p: GenParams) -> tuple[str, dict]:
        options = {"num_predict": p.max_tokens, "temperature": p.temperature, "seed": p.seed}
        if self.completion:
            return "api/generate", {"model": self.model, "prompt": prompt, "raw": True, "stream": True, "options": options}
        messages = [{"role": "user", "content": prompt}]
        return "api/chat", {"model": self.model, "messages": messages, "stream": True, "options": options}

    async def produce(self, emit: Emit, run: _Run, prompt: str, params: GenParams, *, index: int, warmup: bool) -> None:
        path, body = self._request(prompt, params)
        what = "generate request" if self.completion else "chat request"
        emit(Started(now(), run=index, warmup=warmup))
        async with self.client.stream("POST", path, json=body) as resp:
            if resp.status_code >= 400:
                raise StreamError(self.sentence(self.status_clause(resp.status_code, await resp.aread(), what)))
            moved = now()  # the last line that brought a token or the end
            async for line in lines(resp, self.sentence, self.stall_timeout, is_data=str.strip):
                t = now()
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError):
                    raise StreamError(self.sentence(f"sent a line that is not JSON ({line[:60]!r})")) from None
                if not isinstance(obj, dict):
                    raise StreamError(self.sentence(f"sent a line that is not a JSON object ({line[:60]!r})"))
                if obj.get("error"):
                    raise StreamError(self.sentence(f"Ollama reported an error mid-stream ({server_says(line)})"))
                msg = obj.get("message") or {}
                text = msg.get("content") or msg.get("thinking") or obj.get("response") or ""
                if text:
                    emit(Token(text, t, 1))
                    run.tokens += 1
                if obj.get("done"):
                    emit(self._finished(t, obj))
                    return
                if text:
                    moved = t
                else:
                    empty_stall(self.sentence, moved, t, self.stall_timeout)

    @staticmethod
    def _finished(t: float, done: dict) -> Finished:
        engine = EngineTimings(
            source="ollama",
            prompt_tokens=done.get("prompt_eval_count"),
            prompt_ms=_ms(done.get("prompt_eval_duration")),
            gen_tokens=done.get("eval_count"),
            gen_ms=_ms(done.get("eval_duration")),
            load_ms=_ms(done.get("load_duration")),
        )
        reason = done.get("done_reason") or "stop"
        return Finished(t, _STOP.get(reason, reason), gen_tokens=done.get("eval_count"), engine=engine)
