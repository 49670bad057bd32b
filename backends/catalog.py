"""Model specs → backends: the one place that knows every engine."""

from __future__ import annotations

from backends.base import Backend, BackendError
from backends.specs import ModelSpec, parse_spec


def make_backend(spec: str | ModelSpec, **options) -> Backend:
    """Build the backend for a spec. ``options`` go to the backend (local: ``n_ctx``)."""
    ms = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    if ms.kind == "gguf":
        from backends.engines.llamacpp import LlamaCppBackend

        return LlamaCppBackend(ms.text, ms.path, **options)
    if ms.kind == "hf":
        from backends.engines.llamacpp import LlamaCppBackend
        from backends.fetch.hf import fetcher

        return LlamaCppBackend(ms.text, None, fetch=fetcher(ms.text), **options)
    if ms.kind == "openai":
        from backends.engines.openai import OpenAIBackend

        return OpenAIBackend(ms)
    if ms.kind == "ollama":
        from backends.engines.ollama import OllamaBackend

        return OllamaBackend(ms)
    raise BackendError(f"{ms.text}: unknown model kind {ms.kind!r}.")
