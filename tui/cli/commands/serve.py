"""``abtop serve [abtop's usual arguments]``: the TUI in a browser, through textual-serve.

textual-serve starts one app process per browser tab (per websocket). Each abtop loads both
models, so only one session runs at a time: a second tab gets ``tui/app/serve_busy.py`` — a sentence
that says so — until the first one closes. There is no authentication: on 127.0.0.1 (the default)
only this machine reaches it; ``--host 0.0.0.0`` says so out loud.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import sys

HELP = """\
examples:
  abtop serve                                  the bundled pair on http://127.0.0.1:8000
  abtop serve --port 8080 hf:Qwen/Qwen2.5-3B-Instruct-GGUF ollama:qwen2.5:3b -n 256
  abtop serve --host 0.0.0.0 --pair edge       reachable from the network: no authentication

Everything after the serve options is passed to abtop as it is (models, --prompt, --pair, …).
One browser tab at a time runs abtop; another tab is told so.
"""
WILDCARD = ("0.0.0.0", "::", "")
HANDOVER_S = 8.0
"""How long a new tab waits for the session before it is told one is open (a page reload closes
the old tab's abtop, which takes a moment to close its workers)."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="abtop serve",
        description="Serve the abtop TUI to a browser (textual-serve).",
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # --p… belongs to abtop (--pair, --prompt), not to --port
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    return p


def abtop_command(rest: list[str]) -> str:
    """The shell command textual-serve runs per session: this Python, this abtop, these arguments."""
    return shlex.join([sys.executable, "-m", "tui.cli.main", *rest])


def make_server(command: str, host: str, port: int):
    """A textual-serve ``Server`` that runs ``command`` for one tab at a time."""
    from aiohttp import web
    from textual_serve.app_service import AppService
    from textual_serve.server import Server, log

    busy = shlex.join([sys.executable, "-m", "tui.app.serve_busy"])

    class OneSession(Server):
        lock = asyncio.Lock()
        """Held by the tab whose abtop runs."""

        def serve(self, debug: bool = False) -> None:
            """textual-serve's ``serve``, saying where to point the browser once it listens."""
            self.debug = debug
            self.initialize_logging()
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.add_signal_handler(signal.SIGINT, self.request_exit)
            loop.add_signal_handler(signal.SIGTERM, self.request_exit)
            shown = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
            web.run_app(
                self._make_app(), host=host, port=port, handle_signals=False, loop=loop,
                print=lambda *_: print(f"abtop serve: listening; open {shown} in a browser (Ctrl+C stops)", flush=True),
            )

        async def on_startup(self, app: web.Application) -> None:
            """Nothing: textual-serve prints its "Serving … Press Ctrl+C" banner here, before the port
            is bound, so a busy port printed it above the error. ``serve`` says when it listens."""

        async def handle_index(self, request: web.Request):
            if host in WILDCARD:  # the page's websocket goes back to where the browser came from
                self.public_url = f"{request.scheme}://{request.host}"
            return await super().handle_index(request)

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            """textual-serve's own handler, with the one-session guard around which app it starts."""
            websocket = web.WebSocketResponse(heartbeat=15)
            width = _int(request.query.get("width"), 80)
            height = _int(request.query.get("height"), 24)
            try:  # a reload closes the old tab as the new one opens: give its abtop time to end
                await asyncio.wait_for(OneSession.lock.acquire(), HANDOVER_S)
                mine = True
            except asyncio.TimeoutError:
                mine = False
            app_service = None
            try:
                await websocket.prepare(request)
                app_service = AppService(
                    self.command if mine else busy,
                    write_bytes=websocket.send_bytes,
                    write_str=websocket.send_str,
                    close=websocket.close,
                    download_manager=self.download_manager,
                    debug=self.debug,
                )
                await app_service.start(width, height)
                try:
                    await self._process_messages(websocket, app_service)
                finally:
                    await app_service.stop()
            except asyncio.CancelledError:
                await websocket.close()
            except Exception as error:  # textual-serve logs it the same way
                log.exception(error)
            finally:
                if app_service is not None:
                    await app_service.stop()
                if mine:
                    OneSession.lock.release()
            return websocket

    return OneSession(command, host=host, port=port, title="abtop")


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def main(argv: list[str]) -> int:
    from tui.text.safe import safe

    args, rest = parser().parse_known_args(argv)
    # the arguments must make a usable abtop before a browser finds out they do not
    from tui.cli.parser import build_parser, configured, with_defaults

    checked = configured(rest, lambda cfg: with_defaults(build_parser(), cfg.argparse_defaults(bench=False)))
    if isinstance(checked, int):
        return checked
    from tui.cli.options import check_run_options

    problem = check_run_options(checked)
    if problem:
        print(safe(problem), file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"abtop serve: --port {args.port} is not a port (1-65535).", file=sys.stderr)
        return 2
    if args.host in WILDCARD or args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            safe(f"abtop serve: listening on {args.host}:{args.port} with no authentication: anyone who can reach "
                 "this port drives abtop and this machine's cores; an SSH tunnel to 127.0.0.1 is the safer way."),
            file=sys.stderr,
        )
    try:
        make_server(abtop_command(rest), args.host, args.port).serve()
    except OSError as exc:  # the port is taken, the address is not this machine's
        # asyncio's strerror repeats the address as a tuple ("error while attempting to bind on
        # address ('127.0.0.1', 8000): address already in use"): the errno's own words say it.
        why = os.strerror(exc.errno) if exc.errno else exc.strerror or str(exc)
        print(safe(f"abtop serve: cannot listen on {args.host}:{args.port} ({why})."), file=sys.stderr)
        return 2
    return 0
