"""``abtop models``: what can be compared here — bundled aliases, GGUF files in the Hugging Face
cache and in ``--dir`` directories, and the models of an Ollama (or OpenAI-compatible) server.

Every line starts with the spec to paste into ``abtop A B``. A server that does not answer is
"not reachable", not an error: the listing is still useful without it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

from backends import API_KEY_VARS, OllamaBackend, api_key, hub_cache, is_loopback
from backends.base import BackendError
from backends.specs import BUNDLED, OLLAMA_DEFAULT_URL, bundled_path, redact_url
from tui.format import human_bytes, human_count
from tui.safe import safe

_TIMEOUT_S = 3.0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "models",
        help="list the models abtop can compare",
        description="List the bundled models, .gguf files in the Hugging Face cache and in --dir "
        "directories, and the models of an Ollama server (and of an OpenAI-compatible one with --openai).",
    )
    p.add_argument("--dir", action="append", default=[], metavar="DIR", help="also list .gguf files under DIR (repeatable)")
    p.add_argument("--ollama", default=OLLAMA_DEFAULT_URL, metavar="URL", help=f"Ollama server (default {OLLAMA_DEFAULT_URL})")
    p.add_argument("--openai", action="append", default=[], metavar="URL", help="also list an OpenAI-compatible server's models, e.g. http://127.0.0.1:8080/v1")
    p.set_defaults(func=run)


def hf_hub_cache() -> Path:
    """Where huggingface_hub keeps downloads (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache)."""
    return hub_cache()


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


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [("  " + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]).rstrip() for r in rows]


def _get(url: str, key_vars: tuple[str, ...] = API_KEY_VARS) -> dict | None:
    headers = {"Authorization": f"Bearer {key}"} if (key := api_key(key_vars)) else {}
    try:
        r = httpx.get(url, timeout=_TIMEOUT_S, headers=headers, trust_env=not is_loopback(url))
        data = r.json() if r.status_code < 400 else None
    except (httpx.HTTPError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def list_bundled() -> list[str]:
    rows = []
    for alias, b in BUNDLED.items():
        try:
            path = bundled_path(alias)
            rows.append((alias, human_bytes(_size(path)), b.description))
        except BackendError:
            rows.append((alias, "", f"{b.description} — not installed; run `make setup`"))
    return ["bundled"] + _table(rows)


def list_files(title: str, root: Path, hub: bool = False) -> list[str]:
    rows = []
    for p in ggufs_under(root):
        extra = _hf_repo(p, root) if hub else ""
        rows.append((str(p), human_bytes(_size(p)), extra))
    return [title] + (_table(rows) or ["  no .gguf files"])


def list_ollama(url: str) -> list[str]:
    url = url.rstrip("/")
    shown = redact_url(url)
    data = _get(url + "/api/tags", OllamaBackend.key_vars)
    if data is None:
        return [f"Ollama at {shown}: not reachable"]
    suffix = "" if url == OLLAMA_DEFAULT_URL else f"@{shown}"
    rows = []
    for m in data.get("models") or []:
        if not isinstance(m, dict) or not m.get("name"):
            continue
        d = m.get("details") or {}
        desc = " · ".join(x for x in (d.get("family"), d.get("parameter_size"), d.get("quantization_level")) if x)
        rows.append((f"ollama:{m['name']}{suffix}", human_bytes(m.get("size")), desc))
    return [f"Ollama at {shown}"] + (_table(rows) or ["  no models (ollama pull NAME)"])


def list_openai(url: str) -> list[str]:
    url = url.rstrip("/")
    shown = redact_url(url)
    data = _get(url + "/models")
    if data is None:
        return [f"OpenAI-compatible server at {shown}: not reachable"]
    rows = []
    for m in data.get("data") or []:
        if isinstance(m, dict) and m.get("id"):
            meta = m.get("meta") or {}
            desc = f"{human_count(meta['n_params'])} params" if meta.get("n_params") else (m.get("owned_by") or "")
            rows.append((f"openai:{m['id']}@{shown}", human_bytes(meta.get("size")) if meta.get("size") else "", desc))
    return [f"OpenAI-compatible server at {shown}"] + (_table(rows) or ["  no models"])


def run(args: argparse.Namespace) -> int:
    status = 0
    sections = [list_bundled()]
    hub = hf_hub_cache()
    if hub.is_dir():
        sections.append(list_files(f"Hugging Face cache ({hub})", hub, hub=True))
    else:
        sections.append([f"Hugging Face cache ({hub}): none"])
    for d in args.dir:
        root = Path(d).expanduser()
        if not root.is_dir():
            print(safe(f"abtop models: --dir {d}: no such directory."), file=sys.stderr)
            status = 2
            continue
        sections.append(list_files(f"--dir {d}", root))
    sections.append(list_ollama(args.ollama))
    for url in args.openai:
        sections.append(list_openai(url))
    # names from a server or a file system: shown, never obeyed, by the terminal
    print("\n\n".join("\n".join(safe(line) for line in s) for s in sections))
    return status
