"""The main screen, with a compositor that renders only the widgets a frame changes.

Textual's compositor (8.2.8, ``Compositor._get_renders``) picks the widgets to render for a
partial update by whether their *clip* (their container's visible area) overlaps the frame's
crop, so one changed row of streamed text renders every widget in both panes: the card, the
labels and sparklines, the stats line, ~21 widgets a frame where 2 changed. Each costs Textual
0.1–0.5 ms even when all its lines are cached, on a core a model needs.

``LeanCompositor`` renders, front to back, only the widgets that paint a changed cell no widget in
front of them has painted, and only their rows that do: a frame where two rows of text changed
renders the two text views, one row each, not the panes, the screen and the containers behind
them. Every widget paints every cell of its region (Textual fills its background), so a cell a
front widget painted is what upstream's ``_render_chops`` would keep too ("the first segment for
a cut wins"), and only cells in the frame's spans are sent. A full update is Textual's own.
``tests/screen/test_frames.py`` checks that partial frames give the screen a full render gives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import NamedTuple

from rich.color import ColorType
from rich.style import Style as RichStyle
from textual._compositor import Compositor
from textual._segment_tools import line_pad
from textual.color import Color
from textual.filter import ANSIToTruecolor
from textual.geometry import Region
from textual.message_pump import MessagePump
from textual.screen import Screen
from textual.strip import Strip
from textual.style import Style


def _minus(spans: list[tuple[int, int]], x1: int, x2: int) -> list[tuple[int, int]]:
    """``spans`` ([start, end) on one row) without [x1, x2)."""
    out = []
    for a, b in spans:
        if b <= x1 or x2 <= a:
            out.append((a, b))
            continue
        if a < x1:
            out.append((a, x1))
        if x2 < b:
            out.append((x2, b))
    return out


class _Frame:
    active = False
    owed: list[MessagePump] = []


@contextmanager
def frame() -> Iterator[None]:
    """The app's frame callback: a ``DrawnByFrame`` widget repainted inside it is drawn by
    ``LeanScreen.draw_now`` at its end, and skips the idle hop Textual takes first (a Prompt
    message to the widget, then its idle event: ~65 µs, 50 times a second). One that
    ``draw_now`` did not draw (a held screen, a layout or a style update due) takes Textual's way
    as the frame ends."""
    _Frame.active, _Frame.owed = True, []
    try:
        yield
    finally:
        _Frame.active = False
        owed, _Frame.owed = _Frame.owed, []
        for widget in owed:
            if _pending(widget):
                MessagePump.check_idle(widget)


def _pending(widget) -> bool:
    """What a widget's idle event would still do (``Widget._check_refresh``)."""
    return bool(widget._repaint_required or widget._layout_required or widget._scroll_required
                or widget._refresh_styles_required)


def owes_drawing(app) -> list[str]:
    """What the app's screen has yet to lay out, restyle, recompose or draw, named (empty: nothing)."""
    screen = app.screen
    owed = [flag for flag in ("_layout_required", "_scroll_required", "_repaint_required", "_recompose_required",
                              "_dirty_widgets", "_callbacks") if getattr(screen, flag)]  # fmt: skip
    return owed + [f"{widget!r} pending" for widget in screen._compositor.visible_widgets if _pending(widget)]


async def settled(app, timeout: float = 1.0) -> None:
    """Until the app and its current screen have handled what is queued for them (a restyle, a
    layout, a footer's recompose, each a hop or two of Textual's loop) and drawn it: Pilot's
    ``pause``, for the app's own use. Called off the screen's task (a worker); after ``timeout``
    s it returns anyway (an app on its way out)."""

    async def drained() -> None:
        left = 0
        done = asyncio.Event()

        def one() -> None:
            nonlocal left
            left -= 1
            if not left:
                done.set()

        for node in (app, *app.screen.walk_children(with_self=True)):
            if node.call_later(one):
                left += 1
        if left:
            await done.wait()

    async def rounds() -> None:
        for k in range(8):
            await drained()
            screen = app.screen
            if screen._task is None or not await screen.wait_for_refresh():
                return
            if k and not owes_drawing(app):
                return

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(rounds(), timeout)


class DrawnByFrame:
    """For a widget the app's frame repaints (streamed text, readings): see ``frame``."""

    def check_idle(self) -> None:
        if _Frame.active:
            _Frame.owed.append(self)  # type: ignore[arg-type]
            return
        super().check_idle()  # type: ignore[misc]


@lru_cache(64)
def _inner(base_background: Color, background: Color) -> RichStyle:
    """The padding's and content's background (``StylesCache.get_inner_outer``'s inner)."""
    return Style(background=base_background + background).rich_style


class Look(NamedTuple):
    """What a widget's styles and its ancestors' give its drawing, kept until one of them changes."""

    key: tuple
    plain: bool
    """Padding at most: ``PlainLines`` draws it."""
    inner: RichStyle
    background: Color
    rich_style: RichStyle
    """``DOMNode.rich_style``: the widget's colours over its ancestors'."""
    truecolor: bool
    """Its colours and background are truecolor and not dim (not an ANSI theme's)."""


def look(widget) -> Look:
    """The widget's ``Look``. ``Widget.background_colors``, ``.opacity`` and ``.rich_style`` each walk
    every ancestor's styles at every call (~0.1 ms a frame per widget); the styles' own change
    counter (``RenderStyles._cache_key``, which Textual bumps on every rule set, class toggle and
    theme) along the same ancestors tells when the walk would give anything new."""
    nodes = widget.ancestors_with_self
    key = tuple((id(node), node.styles._cache_key) for node in nodes)
    cached = widget.__dict__.get("_abtop_look")
    if cached is not None and cached.key == key:
        return cached
    base_background = background = Color(0, 0, 0, 0)
    opacity = 1.0
    for node in reversed(nodes):  # Widget.background_colors and .opacity in one walk
        node_styles = node.styles
        base_background = background
        opacity *= node_styles.opacity
        background += node_styles.background.tint(node_styles.background_tint).multiply_alpha(opacity)
    styles = widget.styles
    plain = not (opacity != 1.0 or widget.BLANK or styles.tint.a or styles.text_opacity != 1.0
                 or styles.gutter != styles.padding or any(edge for edge, _ in styles.outline)
                 or (styles.has_rule("hatch") and styles.hatch != "none"))
    inner, rich_style = _inner(base_background, background), widget.rich_style
    truecolor = not rich_style.dim and all(c is None or c.type == ColorType.TRUECOLOR
                                           for c in (rich_style.color, rich_style.bgcolor, inner.bgcolor))  # fmt: skip
    widget.__dict__["_abtop_look"] = found = Look(key, plain, inner, background, rich_style, truecolor)
    return found


class PlainLines:
    """For a widget with padding at most (no border, outline, tint, hatch, opacity below 1): its
    lines are padded, filtered and cropped here, as ``StylesCache.render_widget`` would, without
    its general path (borders, titles, outlines), which costs ~0.1 ms a line and as much again a
    widget on a core a model needs. Anything else takes Textual's way.
    ``tests/screen/test_frames.py`` checks the screen matches Textual's own drawing.

    A line the widget draws again as the same ``Strip`` (a frozen line of text scrolling up, a
    metrics row whose figures did not move) is padded and filtered once: the padded strip is new
    each frame, so Textual's filter cache (kept on the strip) would miss every time."""

    _PADDED_KEEP = 256
    TRUECOLOR = False
    """The widget draws only in its theme's colours (and blends of them): where those are
    truecolor (``Look.truecolor`` and ``draws_truecolor``), the ANSI-to-truecolor filter would
    copy each of its lines unchanged (~0.05 ms a new line), and is skipped."""

    def draws_truecolor(self) -> bool:
        """The colours the widget draws with beyond its own (a component class's) are truecolor."""
        return True

    def render_lines(self, crop: Region) -> list[Strip]:
        widget = self  # type: ignore[assignment]
        seen = look(widget)
        if not seen.plain or (widget.auto_links and widget.hover_style._link_id):  # a link under the mouse: Textual styles it
            return super().render_lines(crop)  # type: ignore[misc]
        inner, background = seen.inner, seen.background
        width, height = widget._size
        top, right, bottom, left = widget.styles.padding
        content_width, content_height = max(0, width - left - right), max(0, height - top - bottom)
        filters = widget.get_line_filters()
        if self.TRUECOLOR and seen.truecolor and self.draws_truecolor():
            filters = [f for f in filters if type(f) is not ANSIToTruecolor]
        how = (inner, background, tuple(filters), width, left, right)
        kept = widget.__dict__.get("_abtop_padded")
        if kept is None or kept[0] != how or len(kept[1]) > self._PADDED_KEEP:
            kept = widget.__dict__["_abtop_padded"] = (how, {})
        padded: dict[int, tuple[Strip, Strip]] = kept[1]
        strips = []
        for y in crop.line_range:
            content_y = y - top
            if y < top or content_y >= content_height:  # padding rows
                line = None
                strip = Strip.blank(width, inner)
            else:
                line = widget.render_line(content_y)
                done = padded.get(id(line))
                if done is not None and done[0] is line:
                    strips.append(done[1])
                    continue
                strip = line.adjust_cell_length(content_width, inner)
                if left or right:
                    strip = Strip(line_pad(strip, left, right, inner), width)
            for line_filter in filters:
                strip = strip.apply_filter(line_filter, background)
            if line is not None:
                padded[id(line)] = (line, strip)  # the line is kept with it: its id is not reused meanwhile
            strips.append(strip)
        if crop.column_span != (0, width):
            x1, x2 = crop.column_span
            strips = [strip.crop(x1, x2) for strip in strips]
        return strips


class LeanCompositor(Compositor):
    _changed: list[Region] | None = None
    """The regions the partial update being drawn repaints."""

    def render_partial_update(self):  # type: ignore[override]
        self._changed = list(self._dirty_regions)
        try:
            return super().render_partial_update()
        finally:
            self._changed = None

    def _get_renders(self, crop: Region | None = None) -> Iterable[tuple[Region, Region, list[Strip]]]:
        if crop is None or self._changed is None:  # a full update: Textual's own
            yield from super()._get_renders(crop)
            return
        todo: dict[int, list[tuple[int, int]]] = {}  # per row, the cells no widget has painted yet
        for y, x1, x2 in self._regions_to_spans(self._changed):
            todo.setdefault(y, []).append((x1, x2))
        top, bottom = crop.y, crop.bottom
        for widget, (region, clip) in self.visible_widgets.items():  # front to back, as upstream
            # Its whole visible width, as upstream renders it: ``_render_chops`` files a render's
            # strip under the cuts (widget edges) inside it, so one that starts mid-widget (a
            # changed region's edge) is filed under none and never drawn.
            part = region.intersection(clip)
            if not part or part.bottom <= top or bottom <= part.y:
                continue
            x1, x2 = part.x, part.right
            rows = [y for y in range(max(top, part.y), min(bottom, part.bottom))
                    if any(a < x2 and x1 < b for a, b in todo.get(y, ()))]
            if not rows:  # every changed cell under it is painted by a widget in front of it
                continue
            first, last = rows[0], rows[-1] + 1
            area = Region(x1, first, x2 - x1, last - first)
            yield region, area, widget.render_lines(Region(x1 - region.x, first - region.y, area.width, area.height))
            for y in rows:  # a widget paints every cell of its region: nothing behind it shows there
                todo[y] = _minus(todo[y], x1, x2)


class LeanScreen(Screen):
    """A Screen drawn by ``LeanCompositor``, whose frames can be held while models read a prompt.

    ``hold``: no frame is drawn until ``release`` (or ``seconds`` pass); what changed meanwhile
    (a run's start: its status line, a replay's cleared text and borders) is drawn in one frame
    then. The app holds it from each run's ``Started`` until every model has its first token:
    drawn at once, those changes land in the window TTFT and prompt t/s time, on the cores the
    models need. (What a session's turn changes is drawn before its models start: ``settled``.)"""

    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._compositor = LeanCompositor()
        self._held = False
        self._hold_timer = None

    def hold(self, seconds: float, on_timeout: Callable[[], None] | None = None) -> None:
        """Hold the frames; after ``seconds`` they are released and ``on_timeout`` is called (the
        app asks for the frame a held one skipped: nothing else may arrive for a while)."""
        if not self._held:
            self._held = True

            def timeout() -> None:
                self.release()
                if on_timeout is not None:
                    on_timeout()

            self._hold_timer = self.set_timer(seconds, timeout, name="hold frames")

    @property
    def held(self) -> bool:
        return self._held

    def release(self) -> None:
        if self._held:
            self._held = False
            if self._hold_timer is not None:
                self._hold_timer.stop()
                self._hold_timer = None
            self._update_timer.resume()  # the frame of what changed while held

    def draw_now(self) -> None:
        """Draw, in this callback, the visible widgets that asked to be repainted.

        Textual draws a refreshed widget after four hops of the event loop (the widget's idle event,
        an Update message to the screen, the screen's idle event, its update timer): the app's
        frame, which has just flushed the text and readings, draws them itself. A widget that needs
        a layout, a scroll or a style update, and a screen held or not on top, take Textual's way."""
        app = self.app
        if (self._held or not self.is_current or app._batch_count or self._layout_required
                or self._scroll_required or self._recompose_required or self._repaint_required):
            return
        dirty = self._dirty_widgets
        for widget in self._compositor.visible_widgets:
            if (widget._repaint_required and not widget._layout_required and not widget._scroll_required
                    and not widget._refresh_styles_required):
                widget._repaint_required = False  # its idle event then posts no Update
                dirty.add(widget)
        if dirty:
            self._compositor.update_widgets(dirty)
            self._compositor_refresh()

    def _on_timer_update(self) -> None:
        if self._held:
            self._update_timer.pause()  # a refresh resumes it; ``release`` does too
            return
        super()._on_timer_update()
