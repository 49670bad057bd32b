"""The metrics strip: one labelled sparkline per figure (tokens/s, CPU, memory, GPU).

Full size it is two rows of two; in a compact pane (``ModelPane.-compact``) one row of four, each
label cut to its figure (``short``): the details are on the card.

One widget draws all four (Textual's Line API), not a Label and a Sparkline each: a frame renders
every widget in the rows it changes, and thirteen widgets a pane cost ~13 times one (0.1–0.5 ms
each, every reading, on a core a model needs). A row is drawn again only when one of its
figures changed.
"""

from __future__ import annotations

import functools
from collections import deque
from fractions import Fraction

from rich.color import Color as RichColor
from rich.color import ColorType
from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.geometry import Region
from textual.renderables.sparkline import Sparkline as SparklineRenderable
from textual.strip import Strip
from textual.widget import Widget

from tui.text.safe import safe
from tui.widgets.lean_screen import DrawnByFrame, PlainLines

HISTORY = 120  # samples kept per sparkline (30 s at 4 Hz)
LABEL_MIN_WIDTH = 19
NAMES = {"tps": "tok/s", "cpu": "CPU", "mem": "mem", "gpu": "GPU"}


class Metric:
    """One figure: its label (the latest reading) and the recent history its sparkline draws."""

    def __init__(self, key: str, name: str) -> None:
        self.key = key
        self.metric_name = name
        self.history: deque[float] = deque(maxlen=HISTORY)
        self.compact = False
        self.label = ""
        """The label's text (drawn padded to ``width``): ``tok/s –`` until a reading (``_set_label``)."""
        self.width = 0
        """The label's width, its padding included: it grows with its text and keeps its width when
        the text gets shorter, so the sparkline beside it does not jump at every reading."""
        self._shown = ("–", "–")
        """(full, short) texts of the latest reading."""
        self._flat: float | None = None
        """The value every reading in ``history`` has, if they all have one: the line drawn then is
        flat whatever its length, and another reading of that value changes nothing on screen."""
        self.data: list[float] = []
        """What the sparkline draws: the history (one reading drawn flat), set when it changes."""
        self._set_label()

    def push(self, value: float | None, shown: str, short: str | None = None) -> bool:
        """Add a reading; ``None`` keeps the history and shows ``shown`` (e.g. 'no GPU').
        ``short``: the label in a compact strip (``shown`` if not given). True if it changed what is drawn."""
        self._shown = (shown, shown if short is None else short)
        changed = self._set_label()
        if value is not None:
            unchanged = self._flat == value  # an idle model's CPU 0 %, its memory: no redraw
            self.history.append(value)
            self._flat = value if unchanged or min(self.history) == max(self.history) else None
            if not unchanged:
                # One reading alone would draw as full bars (the sparkline scales min to max): flat.
                self.data = list(self.history) if len(self.history) > 1 else [value, value]
                changed = True
        return changed

    def set_compact(self, compact: bool) -> None:
        self.compact = compact
        self.label, self.width = "", 0  # its width reckoned the compact way (or not)
        self._set_label()

    def reset(self) -> None:
        self.history.clear()
        self._flat = None
        self.data = []
        self.label, self.width = "", 0  # a new model: the label fits its readings afresh
        self._shown = ("–", "–")
        self._set_label()

    @property
    def text(self) -> str:
        """The label as shown (what tests read)."""
        return self.label

    def _set_label(self) -> bool:
        text = f"{self.metric_name} {safe(self._shown[self.compact])}"  # a server's note among the figures
        if text == self.label:
            return False
        floor = 0 if self.compact else LABEL_MIN_WIDTH
        self.width = max(floor, len(text) + 1, self.width)
        self.label = text
        return True


class MetricsStrip(DrawnByFrame, PlainLines, Widget):
    """Four labelled sparklines, two rows of two (one row of four when compact), in one widget."""

    DEFAULT_CSS = """
    MetricsStrip { height: 2; padding: 0 1; }
    MetricsStrip.-compact { height: 1; }
    MetricsStrip > .metrics--label { color: $text-muted; }
    MetricsStrip > .metrics--max-color { color: $primary; }
    MetricsStrip > .metrics--min-color { color: $primary 30%; }
    """
    COMPONENT_CLASSES = {"metrics--label", "metrics--max-color", "metrics--min-color"}
    TRUECOLOR = True  # theme colours and their blends
    FULL = ((("tps", "cpu"), ("mem", "gpu")), 2, (1, 1))
    """(rows of keys, gutter, column weights) full size; ``COMPACT`` on one row."""
    COMPACT = ((("tps", "cpu", "mem", "gpu"),), 1, (1, 1, Fraction(8, 5), 1))

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.metrics = {key: Metric(key, name) for key, name in NAMES.items()}
        self._rows: dict[int, Strip] = {}
        self._styles: dict[RichColor | tuple, Style] = {}
        """A bar's style by its colour (the strip's background under it)."""
        self._bars: dict[tuple, dict[float, tuple[str, Style]]] = {}
        """Per (min, max, colours) of a line: each value's bar (``_sparkline``)."""
        self._look: tuple | None = None
        """(label style, background style, sparkline low and high colours), until the style changes."""

    def metric(self, key: str) -> Metric:
        """``tps``, ``cpu``, ``mem`` or ``gpu``."""
        return self.metrics[key]

    def push(self, key: str, value: float | None, shown: str, short: str | None = None) -> None:
        if self.metrics[key].push(value, shown, short):
            self._redraw(key)

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset()
        self._rows.clear()
        self.refresh()

    def set_compact(self, compact: bool) -> None:
        self.set_class(compact, "-compact")
        for metric in self.metrics.values():
            metric.set_compact(compact)
        self._rows.clear()
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._rows.clear()  # a theme or class change: colours are reckoned again
        self._styles.clear()
        self._bars.clear()
        self._look = None

    def on_resize(self) -> None:
        self._rows.clear()

    def _layout(self) -> tuple[tuple[tuple[str, ...], ...], int, tuple]:
        return self.COMPACT if self.has_class("-compact") else self.FULL

    def _redraw(self, key: str) -> None:
        rows = self._layout()[0]
        for y, row in enumerate(rows):
            if key in row:
                self._rows.pop(y, None)
                self.refresh(Region(0, y, self.size.width, 1))

    @staticmethod
    @functools.lru_cache(maxsize=32)
    def _columns(width: int, gutter: int, weights: tuple) -> tuple[tuple[int, int], ...]:
        """(x, width) of each column, as a grid of fr columns with gutters lays them out (cached:
        its ``Fraction`` sums were half of a row's drawing)."""
        free = max(0, width - gutter * (len(weights) - 1))
        total = sum(weights)
        out, x, acc = [], 0, Fraction(0)
        for weight in weights:
            end = int((acc + weight) * free / total)
            start = int(acc * free / total)
            out.append((x, end - start))
            x += end - start + gutter
            acc += weight
        return tuple(out)

    def render_line(self, y: int) -> Strip:
        strip = self._rows.get(y)
        if strip is None:
            strip = self._rows[y] = self._draw_row(y)
        return strip

    def _colours(self) -> tuple[Style, Style, Color, Color]:
        """(label style, background style, sparkline low and high colours), kept until the style changes."""
        if self._look is None:  # Textual's style lookups walk the DOM: once per theme or class change
            _, background = self.background_colors
            self._look = (
                self.get_component_rich_style("metrics--label"),
                Style(bgcolor=self.rich_style.bgcolor),  # gutters and padding: the background alone, as Textual pads
                background + self.get_component_styles("metrics--min-color").color,
                background + self.get_component_styles("metrics--max-color").color,
            )
        return self._look

    def draws_truecolor(self) -> bool:
        label, _, low, high = self._colours()
        return (label.color is None or label.color.type == ColorType.TRUECOLOR) and low.ansi is None and high.ansi is None

    def _draw_row(self, y: int) -> Strip:
        rows, gutter, weights = self._layout()
        width = self.content_region.width
        if y >= len(rows) or width <= 0:
            return Strip.blank(width, self.rich_style)
        compact = self.has_class("-compact")
        label_style, base, low, high = self._colours()
        segments: list[Segment] = []
        x = 0
        for key, (cx, cw) in zip(rows[y], self._columns(width, gutter, weights), strict=False):
            if cx > x:
                segments.append(Segment(" " * (cx - x), base))
            metric = self.metrics[key]
            # the label: as wide as its kept width, at most 75 % of the column (85 % compact), the
            # sparkline in the rest (at least 4 cells, 2 compact), as the CSS grid of widgets drew it
            most = int(cw * (0.85 if compact else 0.75))
            lw = min(metric.width, most, cw)
            label = metric.label[: max(0, lw - 1)]
            segments.append(Segment(label, label_style))
            segments.append(Segment(" " * (lw - len(label)), base))
            sw = cw - lw
            if sw > 0:
                segments.extend(self._sparkline(metric.data, sw, low, high, base))
            x = cx + cw
        if x < width:
            segments.append(Segment(" " * (width - x), base))
        return Strip(segments).crop(0, width).extend_cell_length(width, base)

    def _sparkline(self, data: list[float], width: int, low: Color, high: Color, base: Style) -> list[Segment]:
        """One row of Textual's ``Sparkline`` renderable (bars, buckets and colours alike, max of
        each bucket), without its per-bar ``Fraction`` and ``Style`` objects: ~10× cheaper. A bar's
        character and style are kept by its value while the line's range and colours stay (a
        reading moves the line by one sample: most values are drawn again), and a run of bars of
        one style is one segment."""
        lo, hi = low.rich_color, high.rich_color
        if not data:
            return [Segment("▁" * width, self._bar_style(lo, base))]
        if len(data) == 1:
            return [Segment("█" * width, self._bar_style(hi, base))]
        minimum, maximum = min(data), max(data)
        key = (minimum, maximum, lo, hi)
        bars = self._bars.get(key)
        if bars is None or len(bars) > 4 * HISTORY:  # the values that left the line, dropped now and then
            if len(self._bars) > 16:
                self._bars.clear()
            bars = self._bars[key] = {}
        n = len(data)
        buckets = [data[n * i // width : n * (i + 1) // width] for i in range(width)]
        tops = [max(b) for b in buckets if b]
        out: list[Segment] = []
        text, style = "", None
        index, step = 0.0, len(tops) / width
        for _ in range(width):
            value = tops[int(index)]
            index += step
            bar = bars.get(value)
            if bar is None:
                bar = bars[value] = self._bar(value, minimum, maximum - minimum or 1, lo, hi, base)
            if bar[1] is style:
                text += bar[0]
                continue
            if text:
                out.append(Segment(text, style))
            text, style = bar
        out.append(Segment(text, style))
        return out

    def _bar(self, value: float, minimum: float, extent: float, lo: RichColor, hi: RichColor, base: Style) -> tuple[str, Style]:
        """A bar's character and style, as Textual's ``Sparkline`` draws it (an ANSI colour, as in
        an ANSI theme, does not blend: the high colour throughout)."""
        ratio = (value - minimum) / extent
        color: RichColor | tuple = hi
        if lo.triplet is not None and hi.triplet is not None:
            color = tuple(int(a + (b - a) * ratio) for a, b in zip(lo.triplet, hi.triplet, strict=True))
        return SparklineRenderable.BARS[int(ratio * (len(SparklineRenderable.BARS) - 1))], self._bar_style(color, base)

    def _bar_style(self, color: RichColor | tuple, base: Style) -> Style:
        """The style of a bar of ``color`` (a blend's RGB triplet: its style is kept by it, not made again)."""
        style = self._styles.get(color)
        if style is None:
            rich = RichColor.from_rgb(*color) if type(color) is tuple else color  # (a RichColor is a NamedTuple)
            style = self._styles[color] = base + Style(color=rich)
        return style
