"""Models from the Hugging Face Hub, as llama.cpp's ``-hf`` names them, through ``huggingface_hub``.

- ``hf:OWNER/REPO[:QUANT]``: the repo's GGUF file whose name carries ``QUANT`` (any case; default
  ``Q4_K_M``). Without a quant and without a ``Q4_K_M`` file, a near quant is taken and named.
- ``hf:OWNER/REPO/FILE.gguf``: that file.

The file goes into the standard Hugging Face cache (``HF_HUB_CACHE``, ``HF_HOME``), by
``hf_hub_download``: its size is checked by the library and, where the hub gives an LFS sha256, the
blob is hashed here too. A split GGUF (``-00001-of-00003.gguf``) is fetched whole; the first part is
what llama.cpp opens. A file already in the cache is used with no network at all (offline works).
``HF_TOKEN`` (or a saved ``hf auth login`` token) is the library's business and never printed.
Everything here is blocking: the backend runs it in a thread.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backends.base import BackendError
from backends.events import Event, Note
from backends.fetch.meter import Cancelled, Meter
from backends.units import human_bytes

DEFAULT_QUANT = "Q4_K_M"
NEAR = ("Q4_K_M", "Q4_K_S", "Q4_K_XL", "Q4_0", "Q5_K_M", "IQ4_XS", "Q6_K", "Q8_0")
"""Taken in this order when no quant was asked for and the repo has no Q4_K_M."""
DEFAULT_ENDPOINT = "https://huggingface.co"
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.I)
_QUANT = re.compile(r"(?<![A-Za-z0-9])((?:UD-)?I?Q\d(?:_[A-Z0-9]+)*|[BM]?F\d+|MXFP4(?:_MOE)?|TQ\d_\d)(?![A-Za-z0-9])", re.I)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True, slots=True)
class HFRef:
    spec: str
    repo: str
    quant: str | None = None
    file: str | None = None
    revision: str = "main"


@dataclass(slots=True)
class Choice:
    file: str
    """The file llama.cpp opens (the first part of a split)."""
    parts: list[str]
    size: int | None = None
    others: list[str] = field(default_factory=list)
    """Labels of the repo's other GGUF models (their quants, else their names)."""
    why: str = ""


def parse_hf(text: str) -> HFRef:
    """``hf:OWNER/REPO[:QUANT]`` or ``hf:OWNER/REPO/FILE.gguf``; a sentence when it is neither."""
    body = text[len("hf:") :]
    parts = body.split("/")
    usage = f"{text}: write hf:OWNER/REPO[:QUANT] or hf:OWNER/REPO/FILE.gguf, e.g. hf:Qwen/Qwen2.5-3B-Instruct-GGUF:Q4_K_M."
    if len(parts) >= 3 and parts[-1].lower().endswith(".gguf"):
        owner, name, file = parts[0], parts[1], "/".join(parts[2:])
        if not (_NAME.fullmatch(owner) and _NAME.fullmatch(name)) or ".." in parts or "" in parts:
            raise BackendError(usage)
        return HFRef(text, f"{owner}/{name}", file=file)
    if len(parts) != 2:
        raise BackendError(usage)
    owner, rest = parts
    name, _, quant = rest.partition(":")
    if not (_NAME.fullmatch(owner) and _NAME.fullmatch(name)) or (quant and not _NAME.fullmatch(quant)):
        raise BackendError(usage)
    return HFRef(text, f"{owner}/{name}", quant=quant or None)


def hub_cache() -> Path:
    """Where huggingface_hub keeps downloads (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache), read
    now rather than when huggingface_hub was imported."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "huggingface" / "hub"


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def quant_of(name: str) -> str | None:
    """The quant a file name carries ("Qwen2.5-3B-Instruct-Q4_K_M.gguf" → "Q4_K_M")."""
    stem = _SPLIT.sub("", Path(name).name)
    stem = stem[:-5] if stem.lower().endswith(".gguf") else stem
    found = _QUANT.findall(stem)
    return found[-1].upper() if found else None


def gguf_models(files: dict[str, int | None]) -> dict[str, list[str]]:
    """Each loadable GGUF model of a repo: first file → all its parts. Vision projectors
    (``mmproj``) are not models on their own."""
    out: dict[str, list[str]] = {}
    for path in sorted(files):
        base = Path(path).name.lower()
        if not base.endswith(".gguf") or base.startswith("mmproj") or "mmproj" in base:
            continue
        m = _SPLIT.search(path)
        if m:
            first = path[: m.start()] + f"-00001-of-{m.group(2)}.gguf"
            out.setdefault(first, []).append(path)
        else:
            out[path] = [path]
    return {first: sorted(parts) for first, parts in out.items() if first in parts or len(parts) == 1}


def _matches(name: str, quant: str) -> bool:
    q = quant_of(name)
    return q is not None and q.removeprefix("UD-") == quant.upper().removeprefix("UD-")


def _label(first: str) -> str:
    return quant_of(first) or Path(first).name


def pick(ref: HFRef, files: dict[str, int | None], *, exact: bool = False) -> Choice:
    """The file ``ref`` names among ``files`` (path → size). ``exact``: the default quant must be
    there as asked (the cache is only trusted for what was asked for)."""
    models = gguf_models(files)
    if not models:
        raise BackendError(f"{ref.spec}: {ref.repo} holds no .gguf file; abtop runs GGUF models (look for a -GGUF repo).")

    def choice(first: str, why: str) -> Choice:
        parts = models[first]
        sizes = [files.get(p) for p in parts]
        size = sum(sizes) if all(s is not None for s in sizes) else None  # type: ignore[misc]
        others = sorted({_label(f) for f in models if f != first} - {_label(first)})
        return Choice(first, parts, size, others, why)

    if ref.file is not None:
        for first, parts in models.items():
            if ref.file in parts or ref.file == first:
                return choice(first, "as named")
        names = ", ".join(Path(f).name for f in list(models)[:8])
        raise BackendError(f"{ref.spec}: {ref.repo} has no file {ref.file}; its GGUF files: {names}.")
    want = ref.quant or DEFAULT_QUANT
    hits = [f for f in models if _matches(f, want)]
    if hits:
        return choice(sorted(hits, key=lambda f: (len(Path(f).name), f))[0], f"quant {want.upper()}")
    if ref.quant is None and not exact:
        for q in NEAR:
            hits = [f for f in models if _matches(f, q)]
            if hits:
                return choice(sorted(hits)[0], f"no {DEFAULT_QUANT} here, so {q}")
        first = sorted(models)[0]
        return choice(first, f"no {DEFAULT_QUANT} here")
    if exact:
        raise LookupError(want)
    have = ", ".join(sorted({_label(f) for f in models}))
    raise BackendError(f"{ref.spec}: {ref.repo} has no {want} file; it has {have} (write hf:{ref.repo}:QUANT).")


# -- the cache, without network --------------------------------------------------------------------
def _snapshot(ref: HFRef, cache: Path) -> Path | None:
    repo_dir = cache / ("models--" + ref.repo.replace("/", "--"))
    rev = ref.revision
    ref_file = repo_dir / "refs" / rev
    if ref_file.is_file():
        rev = ref_file.read_text(encoding="ascii", errors="replace").strip()
    snap = repo_dir / "snapshots" / rev
    return snap if snap.is_dir() else None


def cached(ref: HFRef, cache: Path | None = None) -> tuple[Path, Choice] | None:
    """The file ``ref`` names when it is whole in the cache (every part of a split), else None."""
    from huggingface_hub import try_to_load_from_cache

    cache = cache or hub_cache()
    snap = _snapshot(ref, cache)
    if snap is None:
        return None
    local = {p.relative_to(snap).as_posix(): None for p in snap.rglob("*.gguf")}
    try:
        ch = pick(ref, local, exact=True)
    except (BackendError, LookupError):
        return None
    paths = []
    for part in ch.parts:
        hit = try_to_load_from_cache(ref.repo, part, cache_dir=cache, revision=ref.revision)
        if not isinstance(hit, str) or not os.path.isfile(hit):
            return None
        paths.append(Path(hit))
    ch.size = sum(p.stat().st_size for p in paths)
    return paths[0], ch


# -- the hub ------------------------------------------------------------------------------------
def _no_secret(text: str) -> str:
    token = os.environ.get("HF_TOKEN") or ""
    return text.replace(token, "<HF_TOKEN>") if len(token) >= 4 else text


def _reachable(ref: HFRef, url: str) -> None:
    """One quick look before huggingface_hub's own retries (half a minute on a dead network)."""
    import httpx

    from backends.net import http_client

    try:
        with http_client(url, timeout=httpx.Timeout(8.0, connect=5.0)) as client:
            client.head(url)
    except httpx.HTTPError as exc:
        why = type(exc).__name__
        if isinstance(exc, httpx.ConnectError):
            why = "connection refused or no route" if "refused" in str(exc).lower() or "route" in str(exc).lower() else "cannot connect"
        elif isinstance(exc, httpx.TimeoutException):
            why = "no answer in 5 s"
        raise BackendError(
            f"{ref.spec}: the Hugging Face hub at {url} is not reachable ({why}) and the file is not in the "
            f"cache ({hub_cache()}); check the network or HF_ENDPOINT."
        ) from None


def _list(ref: HFRef, url: str) -> tuple[dict[str, int | None], dict[str, str]]:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.hf_api import RepoFile

    try:
        entries = list(HfApi(endpoint=url).list_repo_tree(ref.repo, recursive=True, revision=ref.revision))
    except GatedRepoError:
        raise BackendError(f"{ref.spec}: {ref.repo} is gated: accept its terms on the hub, then set HF_TOKEN.") from None
    except RevisionNotFoundError:
        raise BackendError(f"{ref.spec}: {ref.repo} has no revision {ref.revision}.") from None
    except RepositoryNotFoundError:
        raise BackendError(
            f"{ref.spec}: no repository {ref.repo} on the hub (a private one needs HF_TOKEN); check the name."
        ) from None
    except HfHubHTTPError as exc:
        code = exc.response.status_code if exc.response is not None else "?"
        raise BackendError(f"{ref.spec}: the hub answered HTTP {code} listing {ref.repo}; try again later.") from None
    except Exception as exc:  # httpx2's transport errors: the network went away after the first look
        raise BackendError(f"{ref.spec}: listing {ref.repo} failed ({_no_secret(type(exc).__name__)}); check the network.") from None
    sizes: dict[str, int | None] = {}
    sha: dict[str, str] = {}
    for e in entries:
        if isinstance(e, RepoFile):
            sizes[e.path] = e.size
            if e.lfs is not None and e.lfs.sha256:
                sha[e.path] = e.lfs.sha256
    return sizes, sha


def _check_sha(ref: HFRef, path: Path, want: str, meter: Meter) -> None:
    h = hashlib.sha256()
    size = path.stat().st_size
    meter.start(f"checking sha256 of {path.name}", size)
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
            meter.add(len(chunk))
    meter.finish()
    if h.hexdigest() != want.lower():
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise BackendError(f"{ref.spec}: {path.name} arrived with the wrong sha256 (removed from the cache); try again.")


def describe(ch: Choice, cached_file: bool, state: str | None = None) -> str:
    size = human_bytes(ch.size) if ch.size else "size unknown"
    split = f" in {len(ch.parts)} parts" if len(ch.parts) > 1 else ""
    where = state or ("in the cache" if cached_file else "downloading")
    also = f"; also {'cached' if cached_file else 'in the repo'}: {', '.join(ch.others[:10])}" if ch.others else ""
    why = f" ({ch.why})" if ch.why and ch.why != "as named" else ""
    return f"{Path(ch.file).name}{why}, {size}{split}, {where}{also}"


def fetcher(spec: str):
    """What ``LlamaCppBackend(fetch=...)`` calls in a thread: ``(report, meter) -> Path``."""
    ref = parse_hf(spec)
    return lambda report, meter: resolve(ref, report, meter)


def fetch_hf(spec: str, report: Callable[[Event], None]) -> Path:
    """Resolve ``spec`` in this thread; ``report`` gets the ``Note`` and the ``Progress``
    (``abtop info``: no session, no pane)."""
    return resolve(parse_hf(spec), report, Meter(report))


def resolve(ref: HFRef, report: Callable[[Event], None], meter: Meter) -> Path:
    """The local path of the file ``ref`` names, downloading it when it is not cached.
    ``report`` gets the ``Note`` of what was chosen; ``meter`` the bytes."""
    hit = cached(ref)
    if hit is not None:
        report(Note(f"{ref.spec}: {describe(hit[1], True)}"))
        return hit[0]
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    url = endpoint()
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise BackendError(f"{ref.spec}: HF_HUB_OFFLINE is set and the file is not in the cache ({hub_cache()}).")
    _reachable(ref, url)
    sizes, sha = _list(ref, url)
    ch = pick(ref, sizes)
    report(Note(f"{ref.spec}: {describe(ch, False)}"))
    cache = hub_cache()
    paths = []
    for part in ch.parts:
        had = try_to_load_from_cache(ref.repo, part, cache_dir=cache, revision=ref.revision)
        meter.what = Path(part).name
        try:
            local = Path(
                hf_hub_download(
                    ref.repo, part, revision=ref.revision, cache_dir=cache, endpoint=url, tqdm_class=meter.bar_class()
                )
            )
        except Cancelled:
            raise
        except OSError as exc:  # disk full, a consistency (size) check, an HTTP error mid-way
            raise BackendError(f"{ref.spec}: downloading {Path(part).name} failed: {_no_secret(str(exc)).splitlines()[0]}") from None
        except Exception as exc:
            raise BackendError(
                f"{ref.spec}: downloading {Path(part).name} failed ({type(exc).__name__}); try again."
            ) from None
        meter.finish()
        if not isinstance(had, str) and part in sha:
            _check_sha(ref, local, sha[part], meter)
        paths.append(local)
    report(Note(f"{ref.spec}: {describe(ch, False, 'downloaded')}"))
    return paths[0]
