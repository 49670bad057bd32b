"""What a server says reaches a person short and without secrets: a proxy's HTML error page is cut
to its ``<title>`` (or first line), a URL's password never shows, in the pane's sentence, on
bench's stderr or in the JSON. Real servers on loopback (``tests/support/replay_server.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys

from backends.base import BackendError, GenParams
from backends.engines.httpbase import server_says
from backends.engines.ollama import OllamaBackend
from backends.events import Failed
from backends.specs import parse_spec, public_spec
from tests.servers.test_http_failures import MODELS, backend_for
from tests.support.replay_server import ReplayServer, json_route

PAGE = (
    "<!DOCTYPE html>\n<html>\n<head><meta charset='utf-8'>\n<title>502 Bad Gateway</title>\n"
    "<style>body { font-family: sans-serif; }</style></head>\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n"
    + "<p>" + "The upstream server did not answer in time. " * 40 + "</p>\n<hr><center>nginx/1.24.0</center>\n</body>\n</html>\n"
)  # fmt: skip


def html_route(status: int, page: str):
    return lambda h: h.reply(status, page.encode(), ctype="text/html")


def test_an_html_page_is_cut_to_its_title_or_first_line():
    assert server_says(PAGE) == "502 Bad Gateway"
    no_title = "\n\n  <html><body><h1>Internal  Server Error</h1>\n<p>" + "x" * 500 + "</p></body></html>"
    assert server_says(no_title) == "Internal Server Error"
    long_line = "error: " + "y" * 400 + "\nsecond line"
    said = server_says(long_line)
    assert len(said) <= 121 and said.endswith("…") and "second" not in said
    assert server_says('{"error": {"message": "CUDA error: out of memory"}}') == "CUDA error: out of memory"


async def test_a_500_html_page_on_chat_is_one_short_sentence():
    routes = {("GET", "/v1/models"): json_route(200, MODELS), ("POST", "/v1/chat/completions"): html_route(500, PAGE)}
    with ReplayServer(routes) as srv:
        backend = backend_for(srv.url)
        await backend.load()
        events = [ev async for ev in backend.stream("hi", GenParams(max_tokens=4))]
        await backend.close()
    reason = events[-1].reason
    assert isinstance(events[-1], Failed)
    assert "500" in reason and "(502 Bad Gateway)" in reason, reason
    assert "<" not in reason and "upstream" not in reason and len(reason) < 200, reason


def test_bench_shows_no_password_and_no_html(tmp_path):
    out = tmp_path / "out.json"
    routes = {("GET", "/v1/models"): json_route(200, MODELS), ("POST", "/v1/chat/completions"): html_route(503, PAGE)}
    with ReplayServer(routes) as srv:
        url = srv.url.replace("http://", "http://alice:hunter2@") + "/v1"
        p = subprocess.run(
            [sys.executable, "-m", "tui.cli.main", "bench", f"openai:tiny@{url}", "-n", "4", "--warmup", "0", "--json", str(out)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert srv.requests and srv.requests[0][3].get("Authorization", "").startswith("Basic ")  # it was used
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "loading openai:tiny@" in p.stderr  # the progress line, with the URL...
    assert "hunter2" not in p.stderr and "alice" not in p.stderr  # ...but not its user and password
    assert "<html" not in p.stderr and "upstream" not in p.stderr and "502 Bad Gateway" in p.stderr
    doc = json.loads(out.read_text())
    error = doc["models"][0]["runs"][0]["error"] if doc["models"][0]["runs"] else None
    assert error and "502 Bad Gateway" in error and "<" not in error and "upstream" not in error, error
    assert "hunter2" not in out.read_text()


async def test_ollama_url_with_a_password_splits_at_the_url():
    spec = parse_spec("ollama:gemma3:270m@http://u:p4ss@127.0.0.1:11434")
    assert (spec.model, spec.url) == ("gemma3:270m", "http://u:p4ss@127.0.0.1:11434")
    assert public_spec(spec.text) == "ollama:gemma3:270m@http://127.0.0.1:11434"
    with ReplayServer({("GET", "/api/tags"): json_route(401, {"error": "unauthorized"})}) as srv:
        backend = OllamaBackend(parse_spec(f"ollama:gemma3:270m@{srv.url.replace('http://', 'http://u:p4ss@')}"))
        try:
            await backend.load()
        except BackendError as exc:
            msg = str(exc)
        await backend.close()
        assert srv.requests, "the request reached the server at the URL after the right @"
    assert msg.startswith("gemma3:270m at " + srv.url) and "p4ss" not in msg, msg
