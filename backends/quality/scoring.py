"""``abtop score``'s engine: each model in turn, with all cores, reads the same text.

One model at a time, as the bench's alternate mode: scoring is prompt processing, which uses
every core, and one model's memory peak never overlaps the other's. The worker's anonymous memory
is sampled after load (``anon_before_bytes``) and through the scoring (``peak_anon_bytes``), so
the document says what scoring costs beyond a loaded model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from backends.base import BackendError, Placement
from backends.catalog import make_backend
from backends.quality.bpb import NO_PROMPT_LOGPROBS, SCHEMA, model_score, score_openai, text_info
from backends.specs import name_suffix, public_spec

Progress = Callable[[int, str, int, int], None]
"""``progress(slot, label, done, total)``: tokens scored so far (total 0 while loading)."""


async def _peak_anon(pid: int, stop: asyncio.Event, interval: float, out: list[int]) -> None:
    from backends.telemetry.process import ProcessSampler, sample_every

    sampler = ProcessSampler(pid, gpu=False)
    try:
        await sample_every(sampler, interval, lambda s: s.anon_bytes is not None and out.append(s.anon_bytes), stop)
    finally:
        sampler.close()


async def score_loaded(backend, text: str, *, stride: int | None = None, progress=None, interval: float = 0.25) -> dict:
    """Score ``text`` with a loaded backend (the bench's and the TUI's workers, or ``score_one``'s):
    its entry, ``bpb`` None with the reason when it cannot be scored. ``progress(done, total)``."""
    spec, loaded = public_spec(backend.full_spec), backend.loaded
    n_bytes = len(text.encode("utf-8"))
    name = loaded.info.name if loaded else None
    if loaded is None:
        return model_score(spec, name=None, backend=backend.kind, text_bytes=n_bytes, result=None,
                           reason=f"{backend.spec}: not loaded.")
    if backend.kind == "ollama":
        return model_score(spec, name=name, backend=backend.kind, text_bytes=n_bytes, result=None,
                           reason=f"{name}: " + NO_PROMPT_LOGPROBS.format(server="Ollama") + ".")
    samples: list[int] = []
    stop = asyncio.Event()
    sampler = None
    anon_before = None
    if loaded.pid and backend.local_process:
        from backends.telemetry.process import ProcessSampler

        first = await asyncio.to_thread(ProcessSampler(loaded.pid, gpu=False).sample)
        anon_before = first.anon_bytes
        sampler = asyncio.create_task(_peak_anon(loaded.pid, stop, interval, samples))
    cpu0 = _cpu_seconds(loaded.pid) if backend.local_process else None
    try:
        if backend.kind == "llama.cpp":
            result = await backend.score(text, stride=stride, progress=progress)
        else:
            result = await score_openai(backend, text)
    except BackendError as exc:
        return model_score(spec, name=name, backend=backend.kind, text_bytes=n_bytes, result=None,
                           reason=str(exc), anon_before_bytes=anon_before)
    finally:
        stop.set()
        if sampler is not None:
            await sampler
    entry = model_score(spec, name=name, backend=backend.kind, text_bytes=n_bytes, result=result,
                        peak_anon_bytes=max(samples) if samples else None, anon_before_bytes=anon_before)
    cpu1 = _cpu_seconds(loaded.pid) if cpu0 is not None else None
    # the worker's CPU time (user + system) while scoring: on a shared box, what the wall clock is not
    entry["cpu_seconds"] = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return entry


def _cpu_seconds(pid: int) -> float | None:
    import psutil

    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return None


async def score_one(slot: int, spec: str, text: str, *, n_ctx: int, stride: int | None, threads: int | None,
                    progress: Progress | None = None, interval: float = 0.25, suffix: str = "") -> dict:
    """Load one model with all cores, score ``text``, close it; a model that cannot be loaded
    gets ``bpb: null`` and the reason. ``suffix`` tells its name apart (``specs.name_suffix``)."""
    from backends.session import available_cpus

    n_bytes = len(text.encode("utf-8"))
    try:
        backend = make_backend(spec, n_ctx=n_ctx)
    except BackendError as exc:
        return model_score(public_spec(spec), name=None, backend=None, text_bytes=n_bytes, result=None, reason=str(exc))
    cpus = tuple(available_cpus())
    backend.placement = Placement(threads=threads or len(cpus), cpus=cpus) if backend.local_process else Placement()
    try:
        if progress:
            progress(slot, spec, 0, 0)
        try:
            loaded = await backend.load()
        except BackendError as exc:
            return model_score(public_spec(spec), name=None, backend=backend.kind, text_bytes=n_bytes, result=None,
                               reason=str(exc))
        loaded.info.name += suffix
        name = loaded.info.name
        return await score_loaded(backend, text, stride=stride, interval=interval,
                                  progress=(lambda d, t: progress(slot, name, d, t)) if progress else None)
    finally:
        await backend.close()


async def score_document(specs: list[str], text: str, text_name: str, *, n_ctx: int, stride: int | None = None,
                         threads: int | None = None, progress: Progress | None = None, host: dict | None = None) -> dict:
    """The whole ``abtop.score/1`` document: the text, the host, and one entry per model."""
    if host is None:
        from backends.telemetry.process import host_info

        host = host_info()
    models = []
    for slot, spec in enumerate(specs):
        models.append(await score_one(slot, spec, text, n_ctx=n_ctx, stride=stride, threads=threads, progress=progress,
                                      suffix=name_suffix(specs, slot)))
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": host,
        "text": text_info(text, text_name),
        "params": {"n_ctx": n_ctx, "stride": stride, "threads": threads},
        "models": models,
    }
