"""Streaming text that stays cheap however long it grows."""

from __future__ import annotations

from collections import deque

from rich._wrap import divide_line  # the breaker Text.wrap uses; we need its offsets
from rich.console import RenderableType
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Region, Size, Spacing
from textual.strip import Strip
from textual.widget import Widget

from tui.text.safe import STREAM as SHOWN  # what the screen gets of the text; ``text`` keeps it all
from tui.text.safe import safe
from tui.widgets.lean_screen import DrawnByFrame, PlainLines, look


class StreamView(DrawnByFrame, PlainLines, Widget):
    """The tail of a growing text, wrapped to the widget and bottom-aligned.

    ``append`` is called in batches at frame rate, never per token. Word wrapping is greedy, so
    appending text can only change the last wrapped line: every line above it is frozen in a
    bounded deque and never wrapped again. A frame wraps only the open line plus what arrived
    since the last frame, the same cost at token 10 and token 100,000. A resize rewraps the tail.

    An append refreshes only the rows whose text changed: mostly the open line, so a frame
    renders and sends one line, not the whole view; every row when a finished line scrolls the
    view up.
    """

    DEFAULT_CSS = """
    StreamView { height: 1fr; padding: 0 1; }
    StreamView.-error { color: $error; }
    StreamView.-note { color: $text-muted; }
    """

    KEEP_LINES = 400
    """Wrapped lines kept above the open one (more than any terminal is tall)."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._parts: list[str] = []
        self._length = 0
        self._message: Text | None = None
        self._frozen: deque[Text] = deque(maxlen=self.KEEP_LINES)
        self._open = ""
        self._width = 0
        self._wrapped_for = 0
        """The height the tail was last wrapped for: a taller view needs more of it."""
        self._lines: list[Strip] | None = None
        """What ``render_line`` draws, built once per refresh."""
        self._lines_key: tuple | None = None
        self._strips: LRUCache[tuple, Strip] = LRUCache(2 * self.KEEP_LINES)
        self._frame_style: Style | None = None
        """The widget's style for the frame being drawn (``render_lines``)."""
        self._rows: list[tuple[str, object]] | None = None
        """(text, style) of each row as last drawn or refreshed, to refresh only the rows that change."""
        self._gutter: Spacing | None = None

    @property
    def _content_size(self) -> Size:
        """``self.size`` (the content area) without asking the screen where the widget is:
        ``Widget.region`` walks up the DOM to the screen at every call, and a frame asked ~6 times."""
        if self._gutter is None:
            self._gutter = self.styles.gutter
        width, height = self._size
        return Size(max(0, width - self._gutter.width), max(0, height - self._gutter.height))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._gutter = None  # padding may have changed

    @property
    def text(self) -> str:
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def clear(self) -> None:
        if not self._parts and self._message is None and not self._open and not self._frozen:
            return  # cleared already (a turn's start, then its ``Started``): nothing to redraw
        self._parts = []
        self._length = 0
        self._message = None
        self._frozen.clear()
        self._open = ""
        self.refresh()

    def append(self, text: str) -> None:
        if text:
            self._parts.append(text)
            self._length += len(text)
            if len(self._parts) > 256:  # keep joins cheap
                self._parts = ["".join(self._parts)]
            self._open += text.translate(SHOWN)
            self._refresh_rows()

    def _refresh_rows(self) -> None:
        """Refresh the rows whose text changed since they were last drawn (all of them when the
        view scrolled, or was never drawn at its size)."""
        rows = self._rows
        if rows is None or not self.is_mounted:
            self.refresh()
            return
        lines = self.visible_lines()
        new = [(line.plain, line.style) for line in lines]
        changed = [y for y in range(max(len(rows), len(new))) if y >= len(rows) or y >= len(new) or rows[y] != new[y]]
        if not changed:
            return
        if len(changed) > 2:  # scrolled: one refresh of the whole view
            self.refresh()
        else:
            self._repaint_rows(lines, changed)
        self._rows = new

    def _repaint_rows(self, lines: list[Text], changed: list[int]) -> None:
        """Repaint rows whose text changed: their strips are made here, from the lines just
        wrapped (not wrapped again to draw), and the widget's size, layout and colours are kept
        (``Widget.refresh`` drops them all, and its style is then walked up the DOM again)."""
        width = self._content_size.width
        if self._lines is not None and self._lines_key is not None and len(lines) == len(self._lines):
            style = self._lines_key[1]
            for y in changed:
                self._lines[y] = self._strip(lines[y], width, style)
        else:
            self._lines = None
        self._layout_cache.clear()
        # The rows across the whole widget, padding included (``Widget._set_dirty`` would mark the
        # content's width: a frame would then crop every strip it draws), in the widget's own frame.
        top, outer = self._gutter.top if self._gutter else self.styles.gutter.top, self._size.width
        rows = [Region(0, top + y, outer, 1) for y in changed]
        self._dirty_regions.update(rows)
        self._repaint_regions.update(rows)
        self._styles_cache.set_dirty(*rows)
        self._repaint_required = True
        self.check_idle()

    def set_message(self, message: str | None, style: str = "") -> None:
        """A line under the text (an error, a note such as 'waiting')."""
        new = Text(safe(message, one_line=False), style=style) if message else None
        if new is None and self._message is None:  # every frame clears it: no redraw for nothing
            return
        self._message = new
        self.refresh()

    @staticmethod
    def _split(paragraph: str, width: int) -> list[str]:
        """Greedy word wrap into exact slices of ``paragraph`` (rich's own line breaker)."""
        cuts = [0, *divide_line(paragraph, width, fold=True), len(paragraph)]
        return [paragraph[a:b] for a, b in zip(cuts, cuts[1:], strict=False)] or [""]

    def _rewrap_tail(self, width: int, height: int) -> None:
        """After a resize (or at first draw): wrap the tail that can fit, from scratch."""
        budget = width * height * 2
        tail = self.text[-budget:] if self._length > budget else self.text
        self._frozen.clear()
        self._open = tail.translate(SHOWN)
        self._width = width
        self._wrapped_for = height

    def visible_lines(self) -> list[Text]:
        """The wrapped lines on screen now, top to bottom (freezing what the new text completed)."""
        size = self._content_size
        width, height = max(size.width, 1), max(size.height, 1)
        if width != self._width or height > self._wrapped_for:  # wider, or taller (a zoom): more of the tail
            self._rewrap_tail(width, height)
        *done, last = self._open.split("\n")
        for paragraph in done:  # ended by a newline: every line of it is final
            self._frozen.extend(Text(line.rstrip(" ")) for line in self._split(paragraph, width))
        pieces = self._split(last, width)
        self._frozen.extend(Text(line.rstrip(" ")) for line in pieces[:-1])
        self._open = pieces[-1]
        shown = list(self._frozen)[-height:] + [Text(self._open)]
        if self._message is not None:
            for paragraph in self._message.plain.split("\n"):
                for line in self._split(paragraph, width):
                    shown.append(Text(line, style=self._message.style))
        return shown[-height:]

    def render(self) -> RenderableType:
        """The visible lines as one Text (what ``render_line`` draws; tests read it)."""
        return Text("\n").join(self.visible_lines())

    # -- the Line API: Textual asks for each line; a frozen line is turned into segments once ------
    def refresh(self, *regions, **kwargs):  # type: ignore[override]
        self._lines = None  # anything that redraws the widget may change what is shown
        if not regions:
            self._rows = None  # a whole redraw (a resize, a style, a message): rows are compared afresh after it
        return super().refresh(*regions, **kwargs)

    def render_lines(self, crop):  # type: ignore[override]
        # rich_style walks every ancestor's colours: once a style change, not once a line (it was
        # 2/3 of this widget's drawing cost at 2 × 2,000 tok/s).
        self._frame_style = look(self).rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._frame_style = None

    def render_line(self, y: int) -> Strip:
        size = self._content_size
        width = size.width
        style = look(self).rich_style if self._frame_style is None else self._frame_style
        if self._lines is None or self._lines_key != (size, style):
            lines = self.visible_lines()
            self._lines = [self._strip(line, width, style) for line in lines]
            self._lines_key = (size, style)
            self._rows = [(line.plain, line.style) for line in lines]
        return self._lines[y] if y < len(self._lines) else Strip.blank(width, style)

    def _strip(self, line: Text, width: int, style: Style) -> Strip:
        """A line as segments, padded to the width; the same text and style give the same strip, so
        the lines scrolling up the screen are converted once, not once per frame."""
        key = (line.plain, str(line.style), width, style)
        strip = self._strips.get(key)
        if strip is None:
            styled = line.copy()
            styled.stylize_before(style)  # the widget's colours under the line's own (an error's red)
            strip = Strip(styled.render(self.app.console, end="")).crop_extend(0, width, style)
            self._strips[key] = strip
        return strip
