"""Everything that can be compared here, as data: ``abtop models`` prints it, the model picker
(``o``, Ctrl+P) searches it.

Sections: the bundled models, ``.gguf`` files in the Hugging Face cache and in ``--dir`` folders,
the shape twins, and the models of an Ollama (or OpenAI-compatible) server. A server that does not
answer is a section that says "not reachable", not an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from backends.base import BackendError
from backends.card.gguf import read_card
from backends.engines.httpbase import API_KEY_VARS, api_key
from backends.engines.ollama import OllamaBackend
from backends.fetch.hf import hub_cache
from backends.net import http_client
from backends.specs import BUNDLED, OLLAMA_DEFAULT_URL, bundled_path, redact_url, twin_card, twin_file
from backends.twins.presets import TWIN_PRESETS
from backends.units import human_count

_TIMEOUT_S = 3.0


@dataclass
class Found:
    """One model a person can name. ``spec`` is what to paste into ``abtop A B``."""

    spec: str
    size: int | None = None
    detail: str = ""
    """What the listing says beside it (a description, the repo, family · params · quant)."""
    path: Path | None = None
    """A local GGUF, whose header gives ``arch``/``quant``/``kind`` (``with_card``)."""
    arch: str | None = None
    quant: str | None = None
    kind: str | None = None
    """"PLE", "MoE" or "dense" once known."""


@dataclass
class Section:
    title: str
    items: list[Found] = field(default_factory=list)
    empty: str | None = None
    """The line shown when there is nothing (``no .gguf files``); None: say nothing more."""


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size  # follows the snapshot symlink to its blob
    except OSError:
        return None


def ggufs_under(root: Path) -> list[Path]:
    files = {}
    for p in sorted(root.rglob("*.gguf")):
        try:
            real = p.resolve()
        except OSError:
            continue
        if real.is_file():
            files.setdefault(real, p)  # several snapshots may point at one blob
    return sorted(files.values())


def _hf_repo(path: Path, hub: Path) -> str:
    """``models--org--name/snapshots/rev/x.gguf`` → ``org/name``."""
    try:
        top = path.relative_to(hub).parts[0]
    except (ValueError, IndexError):
        return ""
    return top.removeprefix("models--").replace("--", "/")


def _get(url: str, key_vars: tuple[str, ...] = API_KEY_VARS) -> dict | None:
    headers = {"Authorization": f"Bearer {key}"} if (key := api_key(key_vars)) else {}
    try:
        with http_client(url, timeout=_TIMEOUT_S, headers=headers) as client:
            r = client.get(url)
        data = r.json() if r.status_code < 400 else None
    except (httpx.HTTPError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def bundled() -> Section:
    s = Section("bundled")
    for alias, b in BUNDLED.items():
        try:
            path = bundled_path(alias)
            s.items.append(Found(alias, _size(path), b.description, path))
        except BackendError:
            s.items.append(Found(alias, None, f"{b.description} — not installed; run `make setup`"))
    return s


def _hf_spec(path: Path, hub: Path) -> str | None:
    """``…/models--org--name/snapshots/REV/sub/x.gguf`` → ``hf:org/name/sub/x.gguf`` (which loads
    from the cache, offline), or None when the path is not laid out so."""
    try:
        top, snaps, _rev, *rest = path.relative_to(hub).parts
    except ValueError:
        return None
    if not top.startswith("models--") or snaps != "snapshots" or not rest:
        return None
    return f"hf:{_hf_repo(path, hub)}/{'/'.join(rest)}"


def files(title: str, root: Path, hub: bool = False) -> Section:
    """The ``.gguf`` files under ``root``; in the Hugging Face cache each is named by its ``hf:`` spec."""
    s = Section(title, empty="no .gguf files")
    for p in ggufs_under(root):
        spec = _hf_spec(p, root) if hub else None
        s.items.append(Found(spec or str(p), _size(p), "" if spec else _hf_repo(p, root) if hub else "", p))
    return s


def hf_cache() -> Section:
    hub = hub_cache()
    if not hub.is_dir():
        return Section(f"Hugging Face cache ({hub}): none")
    return files(f"Hugging Face cache ({hub})", hub, hub=True)


def twins(*, written_only: bool = False) -> Section:
    """Shape twins: each preset at its default quant; ``written_only``: those already on disk
    (the picker: writing one takes a while and draws on stderr)."""
    s = Section("shape twins (synthetic weights in a real model's shape; written on first use)")
    for name, preset in TWIN_PRESETS.items():
        spec = f"twin:{name}"
        try:
            path = twin_file(spec, build=False)
        except BackendError:
            continue
        if written_only and not path.exists():
            continue
        f = Found(spec, path.stat().st_size if path.exists() else None, f"{preset.title} shape", path if path.exists() else None)
        if f.path is None:
            try:
                _fill(f, twin_card(spec))
            except BackendError:
                pass
        s.items.append(f)
    return s


def ollama(url: str) -> Section:
    url = url.rstrip("/")
    shown = redact_url(url)
    data = _get(url + "/api/tags", OllamaBackend.key_vars)
    if data is None:
        return Section(f"Ollama at {shown}: not reachable")
    suffix = "" if url == OLLAMA_DEFAULT_URL else f"@{shown}"
    s = Section(f"Ollama at {shown}", empty="no models (ollama pull NAME)")
    for m in data.get("models") or []:
        if not isinstance(m, dict) or not m.get("name"):
            continue
        d = m.get("details") or {}
        desc = " · ".join(str(x) for x in (d.get("family"), d.get("parameter_size"), d.get("quantization_level")) if x)
        size = m.get("size") if isinstance(m.get("size"), int) else None
        s.items.append(Found(f"ollama:{m['name']}{suffix}", size, desc, arch=d.get("family"), quant=d.get("quantization_level")))
    return s


def openai(url: str) -> Section:
    url = url.rstrip("/")
    shown = redact_url(url)
    data = _get(url + "/models")
    if data is None:
        return Section(f"OpenAI-compatible server at {shown}: not reachable")
    s = Section(f"OpenAI-compatible server at {shown}", empty="no models")
    for m in data.get("data") or []:
        if isinstance(m, dict) and m.get("id"):
            meta = m.get("meta") or {}
            desc = f"{human_count(meta['n_params'])} params" if meta.get("n_params") else (m.get("owned_by") or "")
            s.items.append(Found(f"openai:{m['id']}@{shown}", meta.get("size") or None, desc))
    return s


def find(dirs: list[Path] = (), ollama_url: str = OLLAMA_DEFAULT_URL, openai_urls: list[str] = (), *, picker: bool = False) -> list[Section]:
    """Every section, in the order ``abtop models`` prints them (missing ``dirs`` are the caller's)."""
    out = [bundled(), hf_cache()]
    out += [files(f"--dir {d}", Path(d).expanduser()) for d in dirs]
    out.append(twins(written_only=picker))
    out.append(ollama(ollama_url))
    out += [openai(u) for u in openai_urls]
    return out


_CARDS: dict[tuple[str, float], tuple[str | None, str | None, str | None]] = {}


def _fill(f: Found, card) -> None:
    f.arch, f.quant = card.arch, card.quant
    f.kind = "PLE" if card.ple else "MoE" if card.moe else "dense"


def with_card(f: Found) -> Found:
    """``f`` with arch, quant and PLE/MoE from its GGUF header (cached per file and mtime); a file
    that cannot be read keeps what it had."""
    if f.path is None or f.arch is not None:
        return f
    try:
        key = (str(f.path), f.path.stat().st_mtime)
    except OSError:
        return f
    if key not in _CARDS:
        try:
            c = read_card(f.path)
            _CARDS[key] = (c.arch, c.quant, "PLE" if c.ple else "MoE" if c.moe else "dense")
        except (BackendError, OSError, ValueError):
            _CARDS[key] = (None, None, None)
    f.arch, f.quant, f.kind = _CARDS[key]
    return f
