"""Small real HTTP servers for the HTTP-backend tests: a thread serving scripted answers on a
loopback port. Each route is a function of the request handler, so a test can answer with a
status, stream lines slowly, stall, or write bytes that are not HTTP at all.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes: no framing needed
    server: _Server

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            self.body = json.loads(raw) if raw else None
        except ValueError:
            self.body = raw
        path = self.path.split("?", 1)[0]
        self.server.requests.append((self.command, path, self.body, dict(self.headers)))
        route = self.server.routes.get((self.command, path)) or self.server.routes.get(("*", path))
        if route is None:
            return self.reply(404, {"error": f"no route {self.command} {path}"})
        route(self)

    do_GET = do_POST = _dispatch

    # -- answers ------------------------------------------------------------------------------
    def reply(self, status: int, obj, ctype: str = "application/json") -> None:
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.end_headers()

    def write_line(self, line: str | bytes, delay: float = 0.0) -> bool:
        """Write one line; False once the client has gone (it closed the connection)."""
        if delay:
            time.sleep(delay)
        try:
            self.wfile.write((line if isinstance(line, bytes) else line.encode()) + b"\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.server.client_gone.set()
            return False
        return True

    def stall(self) -> None:
        """Send nothing more until the test ends."""
        self.server.stopping.wait(60)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[tuple[str, str], Route]
    requests: list[tuple[str, str, object, dict]]
    stopping: threading.Event
    client_gone: threading.Event


class LoopbackServer:
    """A test HTTP server on 127.0.0.1 in a thread: ``with Sub(...) as srv: srv.url``. A subclass
    sets ``self.httpd`` (with ``requests`` and a ``stopping`` event) and calls ``_serve()``."""

    httpd: ThreadingHTTPServer

    def _serve(self) -> None:
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list:
        return self.httpd.requests

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class ReplayServer(LoopbackServer):
    """``with ReplayServer({("GET", "/v1/models"): fn}) as srv: srv.url``"""

    def __init__(self, routes: dict[tuple[str, str], Route], port: int = 0) -> None:
        self.httpd = _Server(("127.0.0.1", port), Handler)
        self.httpd.routes = dict(routes)
        self.httpd.requests = []
        self.httpd.stopping = threading.Event()
        self.httpd.client_gone = threading.Event()
        self._serve()

    @property
    def client_gone(self) -> threading.Event:
        return self.httpd.client_gone



def json_route(status: int, obj) -> Route:
    return lambda h: h.reply(status, obj)


def lines_route(lines: list[str], ctype: str = "text/event-stream", delay: float = 0.0) -> Route:
    def route(h: Handler) -> None:
        h.start_stream(ctype)
        for line in lines:
            if not h.write_line(line, delay):
                return

    return route


def free_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ollama_pull_route(
    layers: dict[str, int], on_success: Callable[[], None], steps: int = 4, error: str | None = None, delay: float = 0.0
) -> Route:
    """``POST /api/pull`` as Ollama's docs/api.md ("Pull a Model") shows the stream: ``pulling
    manifest``, then per layer ``pulling <digest>`` lines with ``digest``/``total``/``completed``
    (``steps`` of them), then ``verifying sha256 digest``, ``writing manifest``, ``success``.
    ``on_success`` runs before the last line (the model is then on the "server"); ``error``
    replaces the layers with an ``{"error": …}`` line, as a name Ollama cannot find gets."""

    def route(h: Handler) -> None:
        h.start_stream("application/x-ndjson")
        h.write_line(json.dumps({"status": "pulling manifest"}))
        if error:
            h.write_line(json.dumps({"error": error}))
            return
        for digest, total in layers.items():
            for k in range(steps + 1):
                line = {"status": f"pulling {digest}", "digest": digest, "total": total, "completed": total * k // steps}
                if not h.write_line(json.dumps(line), delay):  # delay: paced for a person watching
                    return
        for status in ("verifying sha256 digest", "writing manifest"):
            h.write_line(json.dumps({"status": status}))
        on_success()
        h.write_line(json.dumps({"status": "success"}))

    return route
