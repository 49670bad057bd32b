"""``abtop serve``: textual-serve on loopback for real — the page over HTTP, a real websocket client
(aiohttp, textual-serve's own dependency) that starts abtop with both bundled models, and a second
tab told that one session runs at a time until the first one closes."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import subprocess
import sys
import threading

import aiohttp
import psutil

from tests.conftest import worker_children
from tests.support.replay_server import free_port


async def _read_until(ws, needle: bytes, timeout: float = 120) -> bytes:
    """The terminal output a tab receives, until ``needle`` shows up in it."""
    buf = b""
    while needle not in buf:
        msg = await asyncio.wait_for(ws.receive(), timeout)
        if msg.type == aiohttp.WSMsgType.BINARY:
            buf += msg.data
        elif msg.type == aiohttp.WSMsgType.TEXT:
            buf += msg.data.encode()
        else:
            raise AssertionError(f"the websocket ended ({msg.type}) before {needle!r}: {buf[-400:]!r}")
    return buf


async def test_serve_one_tab_runs_abtop_and_a_second_is_told_so():
    port = free_port()
    env = {**os.environ, "COLUMNS": "200"}
    srv = subprocess.Popen([sys.executable, "-m", "tui.cli.main", "serve", "--port", str(port), "-n", "8"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    listening = threading.Event()

    def drain() -> None:  # abtop says where to point the browser once it listens; its log must not fill the pipe
        for line in srv.stdout:
            if line.startswith("abtop serve: listening; open http://127.0.0.1:"):
                listening.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert await asyncio.to_thread(listening.wait, 60), "abtop serve never listened"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/") as r:
                page = await r.text()
            assert r.status == 200 and f"ws://127.0.0.1:{port}/ws" in page and "textual.js" in page
            one = await http.ws_connect(f"ws://127.0.0.1:{port}/ws?width=160&height=45")
            await _read_until(one, b"smollm2-135m")
            await _read_until(one, b"ready")  # a model loaded in the tab's abtop
            server = psutil.Process(srv.pid)
            assert len(worker_children(server.pid)) == 2
            two = await http.ws_connect(f"ws://127.0.0.1:{port}/ws?width=100&height=30")
            await _read_until(two, b"already open in another browser tab")
            assert len(worker_children(server.pid)) == 2  # the second tab loaded nothing
            await two.close()
            workers = worker_children(server.pid)
            await one.close()
            gone, alive = psutil.wait_procs(workers, timeout=30)
            assert not alive
            three = await http.ws_connect(f"ws://127.0.0.1:{port}/ws?width=160&height=45")  # the guard is free again
            await _read_until(three, b"smollm2-135m")
            await three.close()
    finally:
        srv.terminate()
        srv.wait(30)


def test_serve_on_every_address_says_there_is_no_authentication():
    p = subprocess.run([sys.executable, "-m", "tui.cli.main", "serve", "--host", "0.0.0.0", "-n", "0"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 2 and p.stderr.strip() == "abtop: --max-tokens must be at least 1 (got 0)."
    with socket.socket() as taken:  # the port is busy: the warning, then one sentence, no traceback
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "tui.cli.main", "serve", "--host", "0.0.0.0", "--port", str(port)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert f"listening on 0.0.0.0:{port} with no authentication" in p.stderr
    assert p.returncode == 2 and f"abtop serve: cannot listen on 0.0.0.0:{port}" in p.stderr and "Traceback" not in p.stderr
    assert "Serving" not in p.stdout + p.stderr and "Press Ctrl+C" not in p.stdout + p.stderr  # no banner before the error


def test_serve_on_a_busy_port_says_so_in_the_systems_words():
    """asyncio's bind error repeats the address as a Python tuple; the sentence names it once."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "tui.cli.main", "serve", "--port", str(port)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.strip() == f"abtop serve: cannot listen on 127.0.0.1:{port} ({os.strerror(errno.EADDRINUSE)}).", p.stderr
