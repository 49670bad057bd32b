"""StreamView wraps incrementally (frozen lines + the open one) yet shows exactly what wrapping
the whole text would, at every step and after a resize."""

from __future__ import annotations

import random

from rich.text import Text
from textual.app import App, ComposeResult

from tui.widgets.stream_view import StreamView


class _One(App):
    def compose(self) -> ComposeResult:
        yield StreamView()


def _expected(app: App, view: StreamView, full: str) -> list[str]:
    w, h = view.content_region.width, view.content_region.height
    return [line.plain.rstrip(" ") for line in Text(full).wrap(app.console, w, overflow="fold")][-h:]


async def test_incremental_wrap_equals_full_wrap():
    rng = random.Random(1)
    words = ["alpha", "be", "gamma\n", "delta", "\n\n", "epsilon,", "zeta", "é" * 3, "x" * 70]
    app = _One()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(StreamView)
        full = ""
        for i in range(300):
            chunk = " ".join(rng.choice(words) for _ in range(rng.randint(1, 5))) + " "
            view.append(chunk)
            full += chunk
            if i % 3 == 0:
                shown = [line.rstrip(" ") for line in view.render().plain.split("\n")]
                assert shown == _expected(app, view, full), f"step {i}"
            if i == 150:
                await pilot.resize_terminal(60, 12)
                await pilot.pause()
        assert view.text == full
        # the work per frame stays bounded: only the open line is kept as text
        assert len(view._open) <= view.content_region.width


async def test_control_characters_never_reach_the_terminal():
    app = _One()
    async with app.run_test(size=(40, 6)) as pilot:
        view = app.query_one(StreamView)
        raw = "a\tb \x1b[2Jc\rd\x07e\nf"
        view.append(raw)
        await pilot.pause()
        assert view.text == raw  # exports keep what the model wrote
        shown = view.render().plain
        assert shown == "a    b [2Jcde\nf"  # a tab as spaces; ESC, CR and BEL dropped
        drawn = "".join(seg.text for y in range(2) for seg in view.render_line(y))
        assert "\x1b" not in drawn and "\r" not in drawn and "\x07" not in drawn and "a    b" in drawn
