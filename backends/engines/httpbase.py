"""What the two HTTP backends (OpenAI-compatible, Ollama) share: one client, one stream pump.

``stream()`` runs the request in a pump task that puts events on a queue, so ``cancel()`` can stop
it at once from any task: cancelling the pump leaves ``client.stream(...)`` mid-read, and httpx
closes a response that was not read to the end instead of returning its connection to the pool.

Failures become one sentence naming the server (its URL without credentials):

- ``httpx.ConnectError``: refused, or the host name does not resolve (``socket.gaierror``).
- ``httpx.ReadTimeout``: no bytes for ``stall_timeout`` seconds (httpx's read timeout is exactly
  "no bytes on the socket for N s", headers included).
- a stream that sends only keep-alives (SSE ``:`` comments, blank lines) for ``stall_timeout``
  seconds stalls too: ``lines()`` keeps its own clock of the last line that carried data; and
  one that sends only events with no token in them (empty deltas): ``empty_stall``.
- a line longer than ``LINE_LIMIT`` (a server streaming bytes with no line break) ends the
  stream: ``lines()`` never holds more than that in memory.
- ``httpx.RemoteProtocolError``: not HTTP, or the connection closed mid-response.
- ``StreamError``: everything we find wrong ourselves (a status code, a line we cannot parse).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import re
import socket
from collections.abc import AsyncIterator, Callable

import httpx

from backends.base import Backend, BackendError, GenParams
from backends.events import Event, Failed, Finished, Loaded, Token, now
from backends.net import http_client
from backends.specs import redact_url

API_KEY_VARS = ("ABTOP_API_KEY", "OPENAI_API_KEY")
DEFAULT_STALL_S = 30.0
_BODY_LIMIT = 120  # characters of a server's error text quoted in a sentence
LINE_LIMIT = 4 << 20
"""The longest line a stream may send, in bytes: an event is a few hundred bytes, a final one
with usage a few kB; a server that streams without line breaks would otherwise grow our memory
without bound (~170 MB/s on loopback)."""
_EOL = re.compile(rb"\r\n|\r|\n")  # what ends a line in an event stream (and httpx's aiter_lines)


class StreamError(Exception):
    """A failure already phrased as one sentence."""


def api_key(names: tuple[str, ...] = API_KEY_VARS) -> str | None:
    """The key sent as a bearer token; it never appears in a sentence, a log or an export."""
    for var in names:
        if os.environ.get(var):
            return os.environ[var]
    return None


def default_stall_timeout() -> float:
    try:
        value = float(os.environ.get("ABTOP_STALL_TIMEOUT", DEFAULT_STALL_S))
    except ValueError:
        return DEFAULT_STALL_S
    return value if value > 0 else DEFAULT_STALL_S



def scrub(text: str) -> str:
    """Remove the API keys from text that came from elsewhere (a server's error body)."""
    for var in API_KEY_VARS:
        if key := os.environ.get(var):
            text = text.replace(key, "<API key>")
    return text


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def describe_transport_error(exc: Exception, stall_timeout: float, start: str = "start the server", what: str = "") -> str:
    """What went wrong on the wire, as a clause (no subject, no full stop). ``what``: the request a
    silence timed out on when it is not a stream (a load's request: a server still loading, or
    hung, before any stream)."""
    if isinstance(exc, httpx.ConnectError):
        causes = list(_chain(exc))
        if any(isinstance(c, socket.gaierror) for c in causes) or "name or service" in str(exc).lower():
            return "the host name does not resolve (DNS failure); check the URL"
        if any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in str(exc).lower():
            return f"connection refused; {start}, or check the port (and the SSH tunnel, if any)"
        return f"could not connect ({exc or type(exc).__name__}); check the URL and the network"
    if isinstance(exc, httpx.ConnectTimeout):
        return "did not accept the connection in time; check the URL, the network or the SSH tunnel"
    if what and isinstance(exc, httpx.ReadTimeout):
        return f"no answer to the {what} in {stall_timeout:g} s; the server is busy or hung (check its log)"
    if isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)):
        return f"the stream stalled: no bytes for {stall_timeout:g} s"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server broke the HTTP protocol or closed the connection mid-response"
    if isinstance(exc, httpx.ReadError):
        return "the connection was reset mid-response"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "the URL must start with http:// or https://"
    if isinstance(exc, httpx.HTTPError):
        return f"HTTP error ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


_HTML = re.compile(r"<\s*(!doctype|html|head|body|title|h1|center)\b", re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
_HIDDEN = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]*>")


def server_says(body: bytes | str) -> str:
    """The message in an error body, short enough for a sentence: a JSON error's message
    (``{"error": {"message": …}}``, ``{"error": "…"}``, ``{"detail": …}``), an HTML page's
    ``<title>`` (a proxy's "502 Bad Gateway"), else the first non-empty line; at most
    ``_BODY_LIMIT`` characters, API keys removed."""
    import html
    import json

    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
        data = None
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message") or err.get("msg") or err
        if isinstance(err, list) and err and isinstance(err[0], dict):  # FastAPI validation errors
            err = err[0].get("msg", err[0])
        if err is not None:
            text = str(err)
    elif _HTML.search(text):
        title = _TITLE.search(text)
        if title and title.group(1).strip():
            text = title.group(1)
        else:  # the page's first visible line: tags become line breaks, head/script/style go
            text = _TAG.sub("\n", _HIDDEN.sub("\n", text))
        text = html.unescape(text)
    line = next((ln for ln in scrub(text).splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    return line[:_BODY_LIMIT] + ("…" if len(line) > _BODY_LIMIT else "")


async def lines(
    resp: httpx.Response,
    sentence: Callable[[str], str],
    stall_s: float,
    is_data: Callable[[str], bool] = bool,
) -> AsyncIterator[str]:
    """The response's lines (``\\n``, ``\\r\\n`` or ``\\r`` ends one), decoded as UTF-8.

    Raises ``StreamError`` (``sentence(clause)``) for a line longer than ``LINE_LIMIT`` bytes, and
    when no line that ``is_data`` has come for ``stall_s`` seconds while other bytes did (SSE
    keep-alive comments, blank lines): httpx's read timeout sees only a socket with no bytes at
    all. The clock is read as each chunk arrives, so a keep-alive every second is caught within
    a second of the deadline."""
    buf = bytearray()
    last_data = now()
    async for chunk in resp.aiter_bytes():
        buf += chunk
        start = 0
        for m in _EOL.finditer(buf):
            if m.end() == len(buf) and buf[-1:] == b"\r":
                break  # a "\r\n" may be cut between two chunks: the next one says
            line = buf[start : m.start()].decode("utf-8", "replace")
            start = m.end()
            if is_data(line):
                last_data = now()
            yield line
        del buf[:start]
        if len(buf) > LINE_LIMIT:
            raise StreamError(sentence(
                f"sent more than {LINE_LIMIT >> 20} MB without a line break, which is not an event stream; check the URL"
            ))  # fmt: skip
        if now() - last_data > stall_s:
            raise StreamError(sentence(f"the stream stalled: no data for {stall_s:g} s, only keep-alives"))
    if buf:
        yield buf.rstrip(b"\r").decode("utf-8", "replace")


def empty_stall(sentence: Callable[[str], str], moved: float, t: float, stall_s: float) -> None:
    """Raise the stall sentence when events keep coming but none has brought a token (or a count,
    or the end) for ``stall_s`` seconds since ``moved``: an endless run of empty deltas holds a
    run open as keep-alive comments did (``lines()`` counts them as data: they are events)."""
    if t - moved > stall_s:
        raise StreamError(sentence(f"the stream stalled: no tokens for {stall_s:g} s, only empty events"))


def overrun_limit(max_tokens: int) -> int:
    """The tokens past which a stream is cut: a server that ignores ``max_tokens`` would stream
    for ever (its text growing without bound). Twice the request and a few: the count is the
    server's where it gives one, else a chunk each (a server's chunk holds a token or more)."""
    return 2 * max_tokens + 8


class _Run:
    """One stream in flight: its queue, its pump task, and whether it has ended."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.ended = False
        self.cancelled = False
        self.tokens = 0

    def emit(self, ev: Event) -> None:
        if self.ended:
            return
        if isinstance(ev, (Finished, Failed)):
            self.ended = True
        self.queue.put_nowait(ev)


Emit = Callable[[Event], None]


class HTTPBackend(Backend):
    """An engine behind HTTP: subclasses say how to load and how to turn a response into events."""

    server_name = "the server"
    """How sentences name this kind of server ("Ollama", "the server")."""
    start_hint = "start the server"
    """What to do when nothing listens at the URL."""
    key_vars: tuple[str, ...] = API_KEY_VARS
    """Environment variables whose key this kind of server gets (first set wins)."""

    def __init__(self, spec, *, stall_timeout: float | None = None, connect_timeout: float = 10.0) -> None:
        """``stall_timeout``: seconds without a byte before a stream fails (default
        ``$ABTOP_STALL_TIMEOUT`` or 30; a long prompt on a slow server may need more)."""
        self.model: str = spec.model or ""
        self.base_url: str = spec.url or ""
        self.where = redact_url(self.base_url)
        """The server as sentences name it: no credentials, no query."""
        super().__init__(f"{spec.kind}:{self.model}@{self.where}")
        self.ms = spec
        self.stall_timeout = stall_timeout if stall_timeout is not None else default_stall_timeout()
        self.connect_timeout = float(connect_timeout)
        self._client: httpx.AsyncClient | None = None
        self._run: _Run | None = None

    # -- helpers for subclasses -------------------------------------------------------------
    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Accept": "application/json, text/event-stream, application/x-ndjson"}
            if key := api_key(self.key_vars):
                headers["Authorization"] = f"Bearer {key}"
            self._client = http_client(
                self.base_url,
                asynchronous=True,
                base_url=self.base_url + "/",
                headers=headers,
                timeout=httpx.Timeout(self.stall_timeout, connect=self.connect_timeout),
                follow_redirects=True,
            )
        return self._client

    def sentence(self, clause: str) -> str:
        """``model at URL: clause.`` — the one shape of every failure sentence."""
        clause = clause.rstrip(". ")
        return f"{self.model} at {self.where}: {clause}" + ("" if clause.endswith(("?", "!")) else ".")

    def status_clause(self, status: int, body: bytes | str, what: str) -> str:
        """A clause for an HTTP error status; ``what`` names the request ("chat request")."""
        said = server_says(body)
        said_part = f" ({said})" if said else ""
        if status in (401, 403):
            names = " or ".join(self.key_vars)
            hint = f"check {names}" if api_key(self.key_vars) else f"set {names}"
            word = "unauthorized" if status == 401 else "forbidden"
            return f"the {what} was refused as {word} ({status}){said_part}; {hint}"
        if status == 404:
            return f"{self.server_name} answered 404 to the {what}{said_part}; {self.not_found_hint()}"
        if status >= 500:
            return f"{self.server_name} failed with {status} on the {what}{said_part}; see the server's log"
        return f"{self.server_name} rejected the {what} with {status}{said_part}"

    def not_found_hint(self) -> str:
        return "check the model name and the URL"

    async def get_json(self, path: str, what: str, *, method: str = "GET", json=None, on_404: str | None = None) -> dict:
        """A small request made by ``load()``; any failure raises ``BackendError`` (one sentence).
        ``on_404`` replaces the clause for a 404 (an endpoint missing means a wrong URL)."""
        try:
            r = await self.client.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise BackendError(self.sentence(describe_transport_error(exc, self.stall_timeout, self.start_hint, what))) from None
        if r.status_code == 404 and on_404:
            raise BackendError(self.sentence(on_404))
        if r.status_code >= 400:
            raise BackendError(self.sentence(self.status_clause(r.status_code, r.content, what)))
        try:
            data = r.json()
        except (ValueError, RecursionError):
            raise BackendError(self.sentence(f"the answer to the {what} is not JSON; is this the right URL?")) from None
        if not isinstance(data, dict):
            raise BackendError(self.sentence(f"the answer to the {what} is not a JSON object"))
        return data

    async def try_json(self, path: str, *, method: str = "GET", json=None, timeout: float = 5.0):
        """Like ``get_json`` for optional extras: ``None`` on any failure."""
        try:
            r = await self.client.request(method, path, json=json, timeout=timeout)
            return r.json() if r.status_code < 400 else None
        except (httpx.HTTPError, ValueError, RecursionError):
            return None

    # -- the stream pump --------------------------------------------------------------------
    @abc.abstractmethod
    async def produce(self, emit: Emit, run: _Run, prompt: str, params: GenParams, *, index: int, warmup: bool) -> None:
        """Send the request and ``emit`` Started, Tokens and one Finished; raise to fail."""

    async def _pump(self, run: _Run, prompt: str, params: GenParams, index: int, warmup: bool) -> None:
        try:
            await self.produce(run.emit, run, prompt, params, index=index, warmup=warmup)
            if not run.ended:
                run.emit(Failed(self.sentence("the stream ended before its final message (the server closed it early)")))
        except asyncio.CancelledError:
            run.emit(Finished(now(), "cancelled", gen_tokens=run.tokens or None))
            raise
        except StreamError as exc:
            run.emit(Failed(str(exc)))
        except httpx.HTTPError as exc:
            run.emit(Failed(self.sentence(describe_transport_error(exc, self.stall_timeout, self.start_hint))))
        except Exception as exc:  # noqa: BLE001 - stream() never raises: anything else is a Failed too
            run.emit(Failed(self.sentence(f"unexpected {type(exc).__name__}: {scrub(str(exc))}")))

    async def stream(self, prompt: str, params: GenParams) -> AsyncIterator[Event]:
        if self.loaded is None:
            yield Failed(self.sentence("not loaded (call load() first)"))
            return
        if self._run is not None:
            yield Failed(self.sentence("a stream is already running (one at a time)"))
            return
        r = self._run = _Run()
        r.task = asyncio.create_task(self._pump(r, prompt, params, 0, False))  # the session numbers runs
        limit, got = overrun_limit(params.max_tokens), 0
        try:
            while True:
                ev = await r.queue.get()
                if isinstance(ev, Token) and (got := got + ev.n) > limit:
                    r.ended = True
                    await self._stop(r)
                    yield Failed(self.sentence(
                        f"streamed more than {limit} tokens when {params.max_tokens} were asked for: it ignores "
                        "the max-tokens limit abtop sends (a proxy that drops it?)"
                    ))  # fmt: skip
                    return
                yield ev
                if isinstance(ev, (Finished, Failed)):
                    return
        finally:
            await self._stop(r)
            if self._run is r:
                self._run = None

    async def _stop(self, r: _Run) -> None:
        if r.task is not None and not r.task.done():
            r.task.cancel()
            await asyncio.wait({r.task})

    async def cancel(self) -> None:
        """Stop the stream in flight at once; the connection is closed, not reused."""
        r = self._run
        if r is None or r.ended:
            return
        r.cancelled = True
        await self._stop(r)
        r.emit(Finished(now(), "cancelled", gen_tokens=r.tokens or None))

    async def close(self) -> None:
        await self.cancel()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    def make_loaded(self, info, t0: float, **kw) -> Loaded:
        self.loaded = Loaded(info=info, t=now(), backend=self.kind, load_s=now() - t0, **kw)
        return self.loaded

