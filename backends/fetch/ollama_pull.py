"""Pulling a model into Ollama (``POST /api/pull``), its NDJSON progress as ``Progress`` events.

The documented stream (docs/api.md, "Pull a Model"): ``{"status": "pulling manifest"}``, then per
layer ``{"status": "pulling <digest>", "digest", "total", "completed"}`` lines, then
``verifying sha256 digest``, ``writing manifest``, ``success``; a failure is an ``{"error": …}``
line (or an HTTP error status). Ollama checks each layer's sha256 itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from backends.base import BackendError
from backends.events import Event, Note
from backends.fetch.meter import Meter


async def pull(
    client: httpx.AsyncClient,
    model: str,
    report: Callable[[Event], None],
    sentence: Callable[[str], str],
    *,
    stall_s: float,
    connect_s: float,
) -> None:
    """Pull ``model``; ``sentence(clause)`` makes the one sentence a failure raises."""
    from backends.engines.httpbase import (  # the engine's wording
        StreamError,
        describe_transport_error,
        lines,
        server_says,
    )

    meter = Meter(report)
    digest = None
    report(Note(f"{model}: not on this Ollama server; pulling it (ollama pull {model})"))
    try:
        async with client.stream(
            "POST", "api/pull", json={"model": model, "stream": True}, timeout=httpx.Timeout(stall_s, connect=connect_s)
        ) as resp:
            if resp.status_code >= 400:
                said = server_says(await resp.aread())
                raise BackendError(sentence(f"Ollama refused the pull ({resp.status_code}{': ' + said if said else ''})"))
            async for line in lines(resp, sentence, stall_s, is_data=str.strip):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError):
                    raise BackendError(sentence(f"the pull sent a line that is not JSON ({line[:60]!r})")) from None
                if not isinstance(obj, dict):
                    continue
                if obj.get("error"):
                    raise BackendError(sentence(f"the pull failed ({server_says(line)}); check the name on ollama.com/library"))
                status = str(obj.get("status") or "")
                if obj.get("digest") and isinstance(obj.get("total"), int):
                    done = obj.get("completed") if isinstance(obj.get("completed"), int) else 0
                    if obj["digest"] != digest:
                        if digest is not None:
                            meter.finish()
                        digest = obj["digest"]
                        meter.start(f"pulling {digest.removeprefix('sha256:')[:12]}", obj["total"], done)
                    else:
                        meter.set(done, obj["total"])
                    continue
                if digest is not None:  # the layers are in
                    meter.set(meter.total or meter.done, meter.total)
                    meter.finish()
                    digest = None
                if status == "success":
                    report(Note(f"{model}: pulled"))
                    return
                if status:
                    report(Note(f"{model}: {status}"))
    except httpx.HTTPError as exc:
        raise BackendError(sentence(describe_transport_error(exc, stall_s, "start it with `ollama serve`"))) from None
    except StreamError as exc:  # a line without end, or only keep-alives
        raise BackendError(str(exc)) from None
    raise BackendError(sentence("the pull ended before Ollama said success; try again"))
