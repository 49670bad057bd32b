"""Text from outside (a prompt, a model's name, a server's error, a file name) never reaches the
terminal as control characters: every line Textual would send is read from the compositor, and
must hold no C0/C1 control, while the escape sequence is still readable (as ``␛[2J``).

The first test is the issue's command with the real bundled models; the second drives every other
place through a replay (no engine), whose events carry the hostile text where a server or a GGUF
header could put it. The last: with standard output not a terminal, no escape code is written at
all.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
from textual.app import App
from textual.widgets._toast import Toast

from backends.base import GenParams
from backends.events import Failed, Loaded, Note, Sample
from tests.conftest import worker_children
from tests.support.waiting import wait_for
from tui.app.app import ABTopApp
from tui.app.replay import ReplayApp, synthetic, write
from tui.widgets.results import ResultsScreen
from tui.widgets.texts import TextScreen

HOSTILE = "\x1b[2J\x1b[31mRED\x07 \x1b]0;PWNED\x07 \x1b[?1049l end"
"""``abtop -p "$(printf '\\e[2J\\e[31mRED\\x07 \\e]0;PWNED\\x07 \\e[?1049l end')"``"""
SHOWN = "␛[2J␛[31mRED␇ ␛]0;PWNED␇ ␛[?1049l end"
TIMEOUT = 180


def screen_lines(app: App) -> list[str]:
    """What the terminal would be sent for the whole screen, as text per row."""
    return ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]


def _drawn(widget) -> str:
    """A widget's lines as the compositor would send them."""
    return "\n".join("".join(seg.text for seg in widget.render_line(y)) for y in range(widget.size.height))


def assert_clean(lines: list[str]) -> None:
    for y, line in enumerate(lines):
        bad = [c for c in line if ord(c) < 32 or 0x7F <= ord(c) < 0xA0]
        assert not bad, f"row {y} carries control characters {bad!r}: {line!r}"


async def test_hostile_prompt_is_shown_not_obeyed():
    app = ABTopApp(["smollm2-135m", "gemma3-270m"], HOSTILE, GenParams(max_tokens=4), n_ctx=512, autostart=True)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        assert all(len(p.runs) == 1 for p in app.panes)  # the prompt went to the models as typed
        lines = screen_lines(app)
        assert_clean(lines)
        assert any(SHOWN in line for line in lines), "the prompt bar shows the sequence, readable"
    assert not worker_children()


async def test_two_line_prompt_keeps_the_footer():
    app = ABTopApp(["smollm2-135m", "gemma3-270m"], "Line one.\nLine two.", GenParams(max_tokens=4), n_ctx=512)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(app.models_loaded, "the models to load", TIMEOUT)
        await pilot.pause()
        lines = screen_lines(app)
        assert_clean(lines)
        assert any("Line one.⏎Line two." in line for line in lines)
        assert "Zoom" in lines[-1]  # the footer is still the last row, not overwritten
        await pilot.press("q")
    assert not worker_children()


def _hostile_recording() -> tuple[dict, list]:
    header, events = synthetic(tokens_per_s=40, seconds=0.3)
    header["specs"] = [f"evil{HOSTILE}.gguf", "openai:[red]x[/]@http://127.0.0.1:1/v1"]
    header["params"]["prompt"] = HOSTILE
    out = []
    for slot, ev in events:
        if isinstance(ev, Loaded):
            info = dataclasses.replace(
                ev.info, name=f"name{HOSTILE}", arch="arch\x1b[2J[bold]", quant="Q\x07", path=f"/m/{HOSTILE}.gguf",
                placement="100%\x1b]0;T\x07 GPU",
            )  # fmt: skip
            ev = dataclasses.replace(ev, info=info)
        if isinstance(ev, Sample):
            ev = dataclasses.replace(ev, rss_bytes=None, anon_bytes=None, weights_resident_bytes=None,
                                     note=f"remote\x1b[2J[b]{HOSTILE}")  # fmt: skip
        out.append((slot, ev))
    t = max(ev.t for _, ev in out)
    out.append((0, Note(f"waiting\x1b[2J{HOSTILE}\nsecond line", t + 0.01)))
    out.append((1, Failed(f"server said <html>{HOSTILE}\r\n[/]</html>", t + 0.02)))
    return header, out


async def test_every_place_that_draws_outside_text_is_safe(tmp_path):
    header, events = _hostile_recording()
    app = ReplayApp(header, events, speed=50, source=f"rec{HOSTILE}.jsonl", results_dir=tmp_path / HOSTILE)
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await wait_for(app.run_finished, "the run to finish", 60)
        await pilot.pause()
        lines = screen_lines(app)
        assert_clean(lines)
        text = "\n".join(lines)
        assert "name␛[2J" in text  # the pane's title
        assert "arch␛[2J[bold]" in text  # the header, [bold] drawn, not read as markup
        assert "server said <html>␛[2J" in text  # the error sentence
        app.notify(f"toast {HOSTILE} [b]x")

        def toasts() -> list[str]:
            return [_drawn(t) for t in app.screen.query(Toast)]

        hostile = lambda: [t for t in toasts() if "toast ␛[2J" in t and "[b]x" in t]  # noqa: E731
        seen = await wait_for(hostile, "the hostile toast", 30, pilot=pilot)
        await pilot.press("e")  # a toast naming a (hostile) folder; the footer line shows the newest only
        said = ("Could not write the exports", "Exported")
        exported = lambda: [t for t in toasts() if any(w in t for w in said)]  # noqa: E731
        seen += await wait_for(exported, "e to say where the exports went", 30, pilot=pilot)
        assert_clean([line for t in seen + toasts() for line in t.split("\n")])
        await pilot.press("c")  # the card, with the path and the server's note
        await pilot.pause()
        assert_clean(screen_lines(app))
        await pilot.press("g")
        await pilot.pause()
        assert isinstance(app.screen, ResultsScreen)
        assert_clean(screen_lines(app))
        assert any("name␛[2J" in line for line in screen_lines(app))  # the legend
        await pilot.press("escape", "t")
        await pilot.pause()
        assert isinstance(app.screen, TextScreen)
        assert_clean(screen_lines(app))


def test_info_prints_a_hostile_gguf_name_safely(capsys, tmp_path):
    """A GGUF's strings are whoever made the file's: ``abtop info`` prints them, never obeys them."""
    from gguf import GGUFWriter

    from tui.cli.main import main

    path = tmp_path / f"evil{HOSTILE}.gguf"
    w = GGUFWriter(str(path), "llama")
    w.add_name(f"name{HOSTILE}")
    w.add_block_count(1)
    w.add_tensor("blk.0.attn_q.weight", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert_clean(out.splitlines())
    assert f"name{SHOWN}" in out and f"evil{SHOWN}.gguf" in out


def test_without_a_terminal_the_screen_is_not_started(tmp_path):
    """``abtop > out.txt`` (or a pipe, or cron) wrote the app's escape codes into the file and
    waited for keys no one could press. Now: one sentence on stderr, exit 2, nothing on stdout,
    no model loaded; the same for ``abtop replay``. (``abtop serve`` runs the app over pipes
    through textual-serve's driver: tests/cli/test_serve.py drives it in a real browser.)"""
    rec = tmp_path / "run.jsonl"
    write(rec, *synthetic([40.0, 20.0], 0.5))
    env = {k: v for k, v in os.environ.items() if k != "TEXTUAL_DRIVER"}
    for args in ([], ["-p", "hello", "--runs", "1"], ["replay", str(rec)]):
        r = subprocess.run([sys.executable, "-m", "tui.cli.main", *args], stdin=subprocess.DEVNULL,
                           capture_output=True, env=env, timeout=TIMEOUT)  # fmt: skip
        assert r.returncode == 2, (args, r.stderr)
        assert r.stdout == b"", args
        err = r.stderr.decode()
        assert err.count("\n") == 1 and "needs a terminal, and standard output is not one" in err, (args, err)
        assert "\x1b" not in err
