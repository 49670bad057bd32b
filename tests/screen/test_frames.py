"""What a frame draws, and that drawing less never leaves a stale cell.

- ``LeanCompositor`` (tui/widgets/lean_screen.py) renders only the widgets whose visible part
  overlaps a frame's changed rows: a frame where only the streamed text changed renders no card,
  no metrics strip, no host line.
- Every partial frame applied in turn to a grid of cells gives the same screen as one full render
  of the final state: nothing a frame skipped was needed.
- Text that arrived is drawn by the frame callback that flushed it (``LeanScreen.draw_now``), not
  by the Update message, idle event and update timer Textual posts for each refreshed widget.
- A ``PlainLines`` widget (the text, the metrics strip, the stats line) pads, colours and crops its
  lines exactly as Textual's ``StylesCache`` does, segment by segment, whole or cropped, and
  hands a widget it cannot draw so (a border) to Textual.
- The metrics strip draws its sparklines exactly as Textual's ``Sparkline`` renderable does
  (characters and colours), and a reading redraws only the row it is on.

Replays a made-up recording (``tui.app.replay.synthetic``): no model, no wall-clock figure.
"""

from __future__ import annotations

import collections
import random

import pytest
from rich.style import Style
from textual._compositor import ChopsUpdate, LayoutUpdate
from textual.app import App
from textual.color import Color
from textual.geometry import Region
from textual.message_pump import MessagePump
from textual.renderables.sparkline import Sparkline
from textual.widget import Widget
from textual.widgets import Static

from tests.support.waiting import wait_for
from tui.app.replay import ReplayApp, synthetic
from tui.widgets.lean_screen import LeanScreen, PlainLines, look
from tui.widgets.metrics import MetricsStrip
from tui.widgets.pane import StatsLine
from tui.widgets.stream_view import StreamView


def _apply(grid: list[list[str]], update) -> None:
    """Write an update's cells into ``grid``, as a terminal would (ASCII text: one cell a char)."""
    if isinstance(update, LayoutUpdate):
        for y, line in enumerate(update.strips, update.region.y):
            text = "".join(seg.text for strip in line for seg in strip)
            grid[y][update.region.x : update.region.x + len(text)] = list(text)
    elif isinstance(update, ChopsUpdate):
        for y, x1, x2 in update.spans:  # as ChopsUpdate.render_segments sends them
            for end, (x, strip) in zip(update.chop_ends[y], update.chops[y].items(), strict=False):
                if strip is None or x > x2 or end <= x1:
                    continue
                text = "".join(seg.text for seg in strip.crop(0, min(end, x2) - x))
                grid[y][x : x + len(text)] = list(text)


@pytest.mark.parametrize("size", [(160, 45), (80, 24)], ids=["160x45", "80x24-compact"])
async def test_partial_frames_make_the_screen_a_full_render_makes_and_skip_what_did_not_change(size):
    """At 80x24 the panes are compact: their status, in the bottom border, moves at each tick."""
    app = ReplayApp(*synthetic([50, 29], 2, moving=True), speed=1.0)
    async with app.run_test(size=size) as pilot:
        compositor = app.screen._compositor
        width, height = compositor.size
        grid = [[" "] * width for _ in range(height)]
        rendered: list[tuple[bool, list[str]]] = []  # (only text rows changed?, widgets rendered) per frame
        real_update, real_render = compositor.render_update, Widget.render_lines
        current: list[str] = []

        def render_update(*args, **kwargs):
            rows = {y for r in compositor._dirty_regions for y in range(r.y, r.bottom)}
            text = {y for p in app.panes for r in [p.query_one(StreamView).region] for y in range(r.y, r.bottom)}
            current.clear()
            update = real_update(*args, **kwargs)
            if update is not None:
                _apply(grid, update)
                if isinstance(update, ChopsUpdate):
                    rendered.append((rows <= text, list(current)))
            return update

        real_plain = PlainLines.render_lines

        def render_lines(widget, crop):
            current.append(type(widget).__name__)
            return real_render(widget, crop)

        def plain_lines(widget, crop):
            current.append(type(widget).__name__)
            return real_plain(widget, crop)

        compositor.render_update = render_update
        Widget.render_lines = render_lines
        PlainLines.render_lines = plain_lines
        try:
            await wait_for(app.run_finished, f"the replay to end ({app.duration:.1f} s of recording)")
            await pilot.pause()
            # after its end, one reading changes one label alone (a row of one widget, as an idle
            # model's CPU reading does): the frame that draws it must put it on screen
            app.panes[1]._metrics.push("cpu", 0.0, "0%")
            if app.panes[0].has_class("-compact"):  # its status, in its bottom border, alone
                app.panes[0]._status("ended · 12.3 tok/s", live=True)
            app._want_frame()
            await wait_for(lambda: not app._frame_soon and app._frame_at is None, "the reading's frame")
            await pilot.pause()
        finally:
            Widget.render_lines = real_render
            PlainLines.render_lines = real_plain
            del compositor.render_update
        for widget in app.screen.walk_children(Widget, with_self=True):
            widget._styles_cache.clear()  # the full render draws every line afresh (a border's text too)
        full = ["".join(seg.text for seg in strip) for strip in compositor.render_strips()]
        shown = ["".join(row) for row in grid]
        stale = [(y, s, f) for y, (s, f) in enumerate(zip(shown, full, strict=True)) if s != f]
        assert not stale, f"cells the partial frames left stale (row, shown, full): {stale[:3]}"

        text_only = [names for only_text, names in rendered if only_text]
        assert len(text_only) >= 5, f"only {len(text_only)} of {len(rendered)} frames changed nothing but text rows"
        drawn = collections.Counter(name for names in text_only for name in names)
        assert set(drawn) == {"StreamView"}, drawn  # not the panes, the card, the metrics, the screen behind


async def test_plain_lines_draw_what_textuals_styles_cache_draws():
    app = ReplayApp(*synthetic([50, 29], 1, moving=True), speed=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(app.run_finished, f"the replay to end ({app.duration:.1f} s of recording)")
        await pilot.pause()
        plain = [w for w in app.screen.walk_children(Widget) if isinstance(w, PlainLines)]
        assert {type(w).__name__ for w in plain} >= {"StreamView", "MetricsStrip", "StatsLine"}

        def compare() -> None:
            for widget in plain:
                width, height = widget.outer_size
                for crop in (Region(0, 0, width, height), Region(3, height - 1, width - 5, 1), Region(0, 0, 7, 1)):
                    ours = widget.render_lines(crop)
                    widget._styles_cache.clear()
                    theirs = Widget.render_lines(widget, crop)
                    assert [list(s) for s in ours] == [list(s) for s in theirs], (type(widget).__name__, crop)

        compare()
        app.panes[0].query_one(StreamView).styles.border = ("round", "red")  # a border: Textual's way
        app.panes[1].styles.background = "darkblue"  # an ancestor's colour: the kept look is dropped
        app.panes[1].query_one(StreamView).add_class("-error")  # its own class: so is its own
        await pilot.pause()
        compare()
        app.theme = "ansi-dark"  # ANSI colours: the ANSI-to-truecolor filter is not skipped then
        await pilot.pause()
        for pane in app.panes:
            pane._stats.update("ansi · TTFT 0.1 s · gen 50.0 tok/s", layout=False)
            pane._metrics.push("cpu", 40.0, "40%")
        await pilot.pause()
        assert not any(look(w).truecolor for w in plain if isinstance(w, StatsLine | MetricsStrip))
        compare()


async def test_the_stats_line_cuts_its_lines_as_static_does():
    """``StatsLine`` cuts plain text itself (4 times a second a pane); every line, every segment and
    its style (selection offsets included) as ``Static``'s ``Content`` makes them."""
    app = ReplayApp(*synthetic([50, 29], 1, moving=True), speed=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(app.run_finished, f"the replay to end ({app.duration:.1f} s of recording)")
        await pilot.pause()
        stats = app.panes[0].query_one(StatsLine)
        cut = [stats.content, "a", "x" * 200, "a  b   " * 30, "one\n\ntwo · three " * 5, "trailing   ", "  lead",
               "a" * 56 + " " * 5 + "b", "   \n  "]  # fmt: skip
        by_static = ["", "tab\there", "wide 漢字 · " * 9, "e\u0301 accent " * 9, "zero\u200bwidth 漢\u200b"]
        texts = cut + by_static

        def compare(text: str) -> None:
            for y in range(stats.size.height + 1):
                ours = stats.render_line(y)
                stats._dirty_regions.add(stats.region)  # Static renders its content afresh
                theirs = Static.render_line(stats, y)
                assert list(ours) == list(theirs) and ours.cell_length == theirs.cell_length, (text, y)
            cut_here = text in cut
            assert (stats._cut[1] is not None) == cut_here, f"{text!r}: cut {'here' if cut_here else 'by Static'}"

        for text in texts:
            for layout in (False, True):
                stats.update(text, layout=layout)
                await pilot.pause()
                compare(text)
        stats.update(texts[0], layout=True)
        await pilot.pause()
        for change in (lambda: app.panes[0].add_class("-failed"), lambda: setattr(app, "theme", "nord")):
            change()  # the same text, other colours: the lines kept must not be the old ones
            await pilot.pause()
            compare(texts[0])


def test_the_strip_draws_sparklines_as_textuals_sparkline_does():
    strip = MetricsStrip()
    rng = random.Random(7)
    for k in range(600):
        # truecolor theme colours, and an ANSI theme's (which do not blend)
        low, high = (Color(10, 200, 30), Color(250, 20, 90)) if k % 6 else (Color.parse("ansi_green"), Color.parse("ansi_red"))
        data = [rng.choice([0.0, 1.5, rng.random() * 100]) for _ in range(rng.choice([0, 1, 2, 5, 17, 120]))]
        width = rng.randint(1, 60)
        theirs = Sparkline(data, width=width, min_color=low.rich_color, max_color=high.rich_color, summary_function=max)
        ours = strip._sparkline(data, width, low, high, Style())
        expect = [(ch, seg.style.color) for seg in theirs.__rich_console__(None, None) for ch in seg.text]
        got = [(ch, seg.style.color) for seg in ours for ch in seg.text]
        assert got == expect, (data, width)


class _StripApp(App):
    def compose(self):
        yield MetricsStrip()


async def test_a_reading_redraws_only_its_row():
    app = _StripApp()  # the strip alone: no replay's readings racing the test's
    async with app.run_test(size=(80, 4)) as pilot:
        strip = app.query_one(MetricsStrip)
        await pilot.pause()
        for y in (0, 1):
            strip.render_line(y)  # both rows drawn and kept
        strip.push("gpu", 40.0, "GPU 40%")  # the second row, full size: mem and GPU
        assert set(strip._rows) == {0}, "a GPU reading redrew a row it is not on"
        strip.render_line(1)
        strip.push("gpu", None, "GPU 40%")  # the same label, no value: nothing to draw
        assert set(strip._rows) == {0, 1}
        await pilot.pause()
        assert "GPU 40%" in "".join(seg.text for seg in strip.render_line(1))


async def play_to_the_end(app: ReplayApp) -> None:
    """Run a replay app at 160x45 until its recording has played; every pane got its text."""
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the replay to end")
        await pilot.pause()
        assert all(p.query_one(StreamView).text for p in app.panes)


async def test_no_frame_is_drawn_while_the_models_read_their_prompt(monkeypatch):
    """From a run's start to the first token of every model, what changed waits (TTFT's window
    is the models'); it is drawn in the frame after."""
    app = ReplayApp(*synthetic([20, 20], 1), speed=1.0)
    app.HOLD_S = 60.0  # only the first tokens release it here: no clock in the test
    held_with_changes: list[bool] = []  # per release: had something changed while held?
    drawn: list[bool] = []  # per frame: was a model still reading its prompt?
    real_release, real_refresh = LeanScreen.release, LeanScreen._compositor_refresh

    def release(screen):
        if screen._held:  # what changed waits in the screen, or in widgets not yet reported to it
            pending = any(w._repaint_required for w in screen._compositor.visible_widgets)
            held_with_changes.append(bool(screen._dirty_widgets) or pending)
        real_release(screen)

    def compositor_refresh(screen):
        drawn.append(any(p.in_prompt for p in app.panes))
        real_refresh(screen)

    flushed: list[bool] = []  # per frame's flush of text and readings: was a model reading its prompt?
    real_flush = ReplayApp._flush_panes

    def flush_panes(app_, t):
        flushed.append(any(p.in_prompt for p in app.panes))
        real_flush(app_, t)

    monkeypatch.setattr(LeanScreen, "release", release)
    monkeypatch.setattr(LeanScreen, "_compositor_refresh", compositor_refresh)
    monkeypatch.setattr(ReplayApp, "_flush_panes", flush_panes)
    await play_to_the_end(app)
    assert any(held_with_changes), "nothing was held: the test saw no prompt phase"
    assert drawn and not any(drawn), "a frame was drawn while a model read its prompt"
    assert flushed and not any(flushed), "a frame's text and readings were worked on while a model read its prompt"


async def test_streamed_text_is_drawn_by_the_frame_that_flushed_it(monkeypatch):
    """Textual draws a refreshed widget after an Update message to the screen, the screen's idle
    event and its update timer: four wakeups of the event loop per frame on a core a model needs.
    The app's frame draws what it flushed itself; Update messages are left for the rest (a run's
    start, a message, the footer)."""
    app = ReplayApp(*synthetic([40, 25], 3), speed=1.0)
    by_message: collections.Counter[str] = collections.Counter()
    by_frame: collections.Counter[str] = collections.Counter()
    idle_hops: collections.Counter[str] = collections.Counter()
    real_on_update, real_draw_now = LeanScreen._on_update, LeanScreen.draw_now
    real_check_idle = MessagePump.check_idle

    def check_idle(pump):
        idle_hops[type(pump).__name__] += 1
        real_check_idle(pump)

    async def on_update(screen, message):
        by_message[type(message.widget).__name__] += 1
        await real_on_update(screen, message)

    def draw_now(screen):
        if not screen._held:
            by_frame.update(type(w).__name__ for w in screen._compositor.visible_widgets if w._repaint_required)
        real_draw_now(screen)

    monkeypatch.setattr(LeanScreen, "_on_update", on_update)
    monkeypatch.setattr(LeanScreen, "draw_now", draw_now)
    monkeypatch.setattr(MessagePump, "check_idle", check_idle)
    await play_to_the_end(app)
    assert by_frame["StreamView"] > 4 * by_message["StreamView"], (by_frame, by_message)
    assert by_frame["StreamView"] > 4 * idle_hops["StreamView"], "a repaint the frame drew still took the idle hop"
    assert by_frame["MetricsStrip"], "the readings were not drawn with the text"


async def test_every_label_shows_before_its_first_reading():
    """A model that has not run yet has no tok/s reading: its label still reads ``tok/s –``."""
    app = _StripApp()
    async with app.run_test(size=(80, 4)) as pilot:
        strip = app.query_one(MetricsStrip)
        await pilot.pause()
        drawn = " ".join("".join(seg.text for seg in strip.render_line(y)) for y in (0, 1))
        for name in ("tok/s –", "CPU –", "mem –", "GPU –"):
            assert name in drawn, (name, drawn)
