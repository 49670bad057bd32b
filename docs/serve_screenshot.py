"""A headless Chromium's view of ``abtop serve`` with both panes streaming: docs/abtop-serve.png.

    .venv/bin/python docs/serve_screenshot.py          # needs Debian's `chromium` (apt-get install chromium)

It starts ``abtop serve`` on a free loopback port with the bundled pair and a prompt (so both
start at once) recording its events, opens the page in Chromium through the DevTools protocol
(aiohttp's websocket client), and takes the screenshot once the recording shows both models have
streamed ``--tokens`` tokens — the moment is the recording's, not a timer's. About a minute on
a small box; not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def lines_of(proc: asyncio.subprocess.Process, needle: str) -> None:
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        if needle in line.decode("utf-8", "replace"):
            return
    raise SystemExit(f"serve_screenshot: the process ended before it said {needle!r}")


async def streamed(record: Path, tokens: int, timeout: float) -> None:
    """Until each of the two models has ``tokens`` Token events in the recording."""
    counts = [0, 0]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    offset = 0
    while min(counts) < tokens:
        if loop.time() > deadline:
            raise SystemExit(f"serve_screenshot: the panes streamed {counts} tokens in {timeout:.0f} s")
        if record.exists():
            with open(record, encoding="utf-8") as f:
                f.seek(offset)
                for line in f:
                    if not line.endswith("\n"):
                        break
                    offset += len(line.encode())
                    ev = json.loads(line)
                    if ev.get("type") == "Token" and ev.get("slot") in (0, 1):
                        counts[ev["slot"]] += 1
        await asyncio.sleep(0.2)  # a file has no event to wait on; this only paces the reading


_IDS = iter(range(1, 1 << 30))


async def cdp(ws, method: str, **params) -> dict:
    """One DevTools command and its answer (events in between are skipped)."""
    n = next(_IDS)
    await ws.send_json({"id": n, "method": method, "params": params})
    while True:
        msg = await ws.receive_json()
        if msg.get("id") == n:
            if "error" in msg:
                raise SystemExit(f"serve_screenshot: {method}: {msg['error']}")
            return msg.get("result", {})


async def main(a: argparse.Namespace) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        raise SystemExit("serve_screenshot: no chromium here; apt-get install -y chromium")
    work = Path(tempfile.mkdtemp(prefix="abtop-serve-"))
    record = work / "events.jsonl"
    port, devtools = free_port(), free_port()
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tui.cli.main", "serve", "--port", str(port), "smollm2-135m", "gemma3-270m",
        "-p", a.prompt, "-n", str(a.max_tokens), "--record", str(record),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    browser = None
    try:
        await asyncio.wait_for(lines_of(serve, "abtop serve: listening"), 60)
        drain = asyncio.create_task(serve.stdout.read())  # keep reading its log, so the pipe never fills
        browser = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--remote-debugging-port={devtools}", f"--user-data-dir={work / 'profile'}",
             f"--window-size={a.width},{a.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # Chromium's DevTools endpoint comes up a moment after the process
                try:
                    async with http.get(f"http://127.0.0.1:{devtools}/json/list") as r:
                        pages = [p for p in await r.json() if p.get("type") == "page"]
                    if pages:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise SystemExit("serve_screenshot: Chromium's DevTools endpoint never answered")
            async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                await cdp(ws, "Page.enable")
                await cdp(ws, "Page.navigate", url=f"http://127.0.0.1:{port}/?fontsize={a.font_size}")
                await streamed(record, a.tokens, a.timeout)
                shot = await cdp(ws, "Page.captureScreenshot", format="png")
        out = Path(a.out)
        out.write_bytes(base64.b64decode(shot["data"]))
        print(out)
    finally:
        if browser is not None:
            browser.terminate()
            browser.wait(10)
        if serve.returncode is None:
            serve.terminate()
            await serve.wait()
        if "drain" in locals():
            await drain
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "abtop-serve.png"))
    ap.add_argument("--prompt", default="Explain in two sentences why the sky is blue.")
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=24, help="tokens each pane has streamed at the screenshot")
    ap.add_argument("--timeout", type=float, default=240)
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=1000)
    ap.add_argument("--font-size", type=int, default=14)
    os.chdir(ROOT)
    asyncio.run(main(ap.parse_args()))
