"""A loopback stand-in for the Hugging Face Hub's file API (the real hub is not reachable from
these machines), replaying what ``huggingface_hub`` calls, as documented and as its source reads:

- ``GET /api/models/{repo}/tree/{rev}?recursive=True``: a JSON list of ``{"type": "file", "oid",
  "size", "path", "lfs": {"oid": sha256, "size", "pointerSize"}}`` (``HfApi.list_repo_tree``);
- ``GET /api/models/{repo}/revision/{rev}``: ``{"id", "sha", "siblings": [{"rfilename"}]}``
  (``HfApi.model_info``);
- ``HEAD /{repo}/resolve/{rev}/{file}``: ``X-Repo-Commit``, ``ETag`` and ``X-Linked-Etag`` (the
  LFS sha256), ``X-Linked-Size``, ``Content-Length`` (``get_hf_file_metadata``);
- ``GET /{repo}/resolve/{rev}/{file}``, honouring ``Range: bytes=N-`` with 206 and
  ``Content-Range`` (``http_get``, which resumes that way).

An unknown repo gets 404 with ``X-Error-Code: RepoNotFound``, an unknown file 404 with
``X-Error-Code: EntryNotFound`` (how the hub tells them apart). The files are real files on disk
(copies of the bundled GGUF); ``rate`` slows the body to that many bytes/s for a person to watch.

``python -m tests.support.hub_replay --port 8765 --rate 20e6`` serves one made-up repo for trying abtop
by hand: ``HF_ENDPOINT=http://127.0.0.1:8765 abtop hf:replay/SmolLM2-135M-Instruct-GGUF``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.support.replay_server import LoopbackServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_CHUNK = 256 * 1024


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HubServer

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, ctype="application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _route(self) -> None:
        srv = self.server
        path = unquote(urlsplit(self.path).path)
        srv.requests.append((self.command, path, dict(self.headers)))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("tree", "revision"):
            repo = "/".join(parts[2:4])
            if repo not in srv.repos:
                return self._json({"error": "Repository not found"}, 404, {"X-Error-Code": "RepoNotFound"})
            files = srv.repos[repo]
            if parts[4] == "revision":
                return self._json({"id": repo, "sha": COMMIT, "siblings": [{"rfilename": f} for f in files]})
            return self._json([self._entry(name, p) for name, p in files.items()])
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, name = "/".join(parts[:2]), "/".join(parts[4:])
            if repo not in srv.repos:
                return self._json({"error": "Repository not found"}, 404, {"X-Error-Code": "RepoNotFound"})
            if name not in srv.repos[repo]:
                return self._json({"error": "Entry not found"}, 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
            return self._file(srv.repos[repo][name])
        self._json({"error": f"no route {path}"}, 404)

    def _entry(self, name: str, p: Path) -> dict:
        size = p.stat().st_size
        return {"type": "file", "oid": "f" * 40, "size": size, "path": name,
                "lfs": {"oid": self.server.sha(p), "size": size, "pointerSize": 134}}

    def _file(self, p: Path) -> None:
        size = p.stat().st_size
        sha = self.server.sha(p)
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng[6:].split("-")[0].isdigit():
            start = min(int(rng[6:].split("-")[0]), size)
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{sha}"', "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(size),
                   "Accept-Ranges": "bytes"}
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size - start))
        if start:
            headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(p, "rb") as f:
            f.seek(start)
            t0, sent = time.monotonic(), 0
            while chunk := f.read(_CHUNK):
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                sent += len(chunk)
                if self.server.rate:  # pace the body for a person watching the bar
                    ahead = sent / self.server.rate - (time.monotonic() - t0)
                    if ahead > 0 and self.server.stopping.wait(ahead):
                        return

    do_GET = do_HEAD = _route


class _HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, repos: dict[str, dict[str, Path]], rate: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.repos = repos
        self.rate = rate
        self.requests: list[tuple[str, str, dict]] = []
        self.stopping = threading.Event()
        self._sha: dict[Path, str] = {}

    def sha(self, p: Path) -> str:
        if p not in self._sha:
            self._sha[p] = sha256_of(p)
        return self._sha[p]


class HubReplay(LoopbackServer):
    """``with HubReplay({"org/repo": {"x-Q4_K_M.gguf": path}}) as hub: hub.url``"""

    def __init__(self, repos: dict[str, dict[str, Path]], rate: float = 0.0, port: int = 0) -> None:
        self.httpd = _HubServer({r: {n: Path(p) for n, p in fs.items()} for r, fs in repos.items()}, rate)
        if port:
            self.httpd.server_close()
            ThreadingHTTPServer.__init__(self.httpd, ("127.0.0.1", port), _Handler)
        self._serve()


def demo_repos() -> dict[str, dict[str, Path]]:
    """The repo ``python -m tests.support.hub_replay`` serves: the bundled SmolLM2 file under three quant
    names (the bytes are the same; only the names differ)."""
    from backends.specs import bundled_path

    src = bundled_path("smollm2-135m")
    names = ("SmolLM2-135M-Instruct-Q4_K_M.gguf", "SmolLM2-135M-Instruct-Q8_0.gguf", "SmolLM2-135M-Instruct-F16.gguf")
    return {"replay/SmolLM2-135M-Instruct-GGUF": {n: src for n in names}}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="A loopback replay of the Hugging Face Hub's file API.")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--rate", type=float, default=20e6, help="bytes/s for file bodies (0: as fast as it goes)")
    a = ap.parse_args()
    with HubReplay(demo_repos(), rate=a.rate, port=a.port) as hub:
        print(f"replay hub on {hub.url}: HF_ENDPOINT={hub.url} abtop hf:replay/SmolLM2-135M-Instruct-GGUF", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
