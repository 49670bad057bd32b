"""Model specs → backends: the one place that knows every engine."""

from __future__ import annotations

from backends.base import Backend, BackendError
from backends.specs import ModelSpec, parse_spec, setting_options


def make_backend(spec: str | ModelSpec, **options) -> Backend:
    """Build the backend for a spec. ``options`` go to the backend (local: ``n_ctx``, ``lazy_ple``,
    ...): the global flags, the defaults; the spec's own settings (``SPEC,key=value``) win."""
    ms = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    options = {**options, **setting_options(ms.settings)}
    if ms.kind == "gguf":
        from backends.engines.llamacpp import LlamaCppBackend

        b = LlamaCppBackend(ms.text, ms.path, **options)
    elif ms.kind == "hf":
        from backends.engines.llamacpp import LlamaCppBackend
        from backends.fetch.hf import fetcher

        b = LlamaCppBackend(ms.text, None, fetch=fetcher(ms.text), **options)
    elif ms.kind == "openai":
        from backends.engines.openai import OpenAIBackend

        b = OpenAIBackend(ms)
    elif ms.kind == "ollama":
        from backends.engines.ollama import OllamaBackend

        b = OllamaBackend(ms)
    else:
        raise BackendError(f"{ms.text}: unknown model kind {ms.kind!r}.")
    b.settings = ms.settings
    return b
