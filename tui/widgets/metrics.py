"""The metrics strip: one labelled sparkline per figure (tokens/s, CPU, memory, GPU).

Full size it is two rows of two; in a compact pane (``ModelPane.-compact``) one row of four, each
label cut to its figure (``short``): the details are on the card.
"""

from __future__ import annotations

from collections import deque

from textual.app import ComposeResult
from textual.containers import Grid, Horizontal
from textual.widgets import Label, Sparkline

from tui.text.safe import safe

HISTORY = 120  # samples kept per sparkline (30 s at 4 Hz)
LABEL_MIN_WIDTH = 19


class Metric(Horizontal):
    """A label with the latest value, and a sparkline of the recent history."""

    DEFAULT_CSS = """
    Metric { height: 1; }
    Metric > Label { width: auto; min-width: %d; max-width: 75%%; padding-right: 1; color: $text-muted; }
    Metric > Sparkline { width: 1fr; min-width: 4; }
    Metric.-compact > Label { min-width: 0; max-width: 85%%; }
    Metric.-compact > Sparkline { min-width: 2; }
    """ % LABEL_MIN_WIDTH

    def __init__(self, name: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.metric_name = name
        self.history: deque[float] = deque(maxlen=HISTORY)
        self._label_len = 0
        self._label = ""
        self._shown = ("–", "–")
        """(full, short) texts of the latest reading."""
        self._flat: float | None = None
        """The value every reading in ``history`` has, if they all have one: the line drawn then is
        flat whatever its length, and another reading of that value changes nothing on screen."""

    def compose(self) -> ComposeResult:
        yield Label(f"{self.metric_name} –", markup=False)
        yield Sparkline([], summary_function=max)

    def push(self, value: float | None, shown: str, short: str | None = None) -> None:
        """Add a reading; ``None`` keeps the history and shows ``shown`` (e.g. 'no GPU').
        ``short``: the label in a compact strip (``shown`` if not given)."""
        self._shown = (shown, shown if short is None else short)
        self._draw_label()
        if value is not None:
            unchanged = self._flat == value  # an idle model's CPU 0 %, its memory: no redraw
            self.history.append(value)
            self._flat = value if unchanged or min(self.history) == max(self.history) else None
            if not unchanged:
                # Sparkline.data is reactive: assign a new list, appending to the same one redraws nothing.
                # One reading alone would draw as full bars (Sparkline scales min to max): show it flat.
                data = list(self.history) if len(self.history) > 1 else [value, value]
                self.query_one(Sparkline).data = data

    def set_compact(self, compact: bool) -> None:
        self.set_class(compact, "-compact")
        self._label, self._label_len = "", 0  # drawn again, its width reckoned the compact way (or not)
        self._draw_label()

    def _draw_label(self) -> None:
        compact = self.has_class("-compact")
        text = f"{self.metric_name} {safe(self._shown[compact])}"  # a server's note among the figures
        if text == self._label:  # the same reading again: nothing to draw
            return
        self._label = text
        # The label is as wide as its text (+ padding), and a new width relayouts the whole screen:
        # it keeps its width when the reading gets shorter (padded), and grows when it gets longer.
        floor = 0 if compact else LABEL_MIN_WIDTH  # the CSS min-width holds the rest
        width = max(floor, len(text) + 1)
        shown = text.ljust(self._label_len - 1) if self._label_len > floor else text
        self.query_one(Label).update(shown, layout=width > self._label_len)
        self._label_len = max(width, self._label_len)

    def reset(self) -> None:
        self.history.clear()
        self._flat = None
        self._label, self._label_len = "", 0  # a new model: the label fits its readings afresh
        self.query_one(Sparkline).data = []
        self._shown = ("–", "–")
        self._draw_label()


class MetricsStrip(Grid):
    DEFAULT_CSS = """
    MetricsStrip { grid-size: 2; grid-gutter: 0 2; height: 2; padding: 0 1; }
    MetricsStrip.-compact { grid-size: 4; grid-columns: 1fr 1fr 1.6fr 1fr; grid-gutter: 0 1; height: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Metric("tok/s", id="m-tps")
        yield Metric("CPU", id="m-cpu")
        yield Metric("mem", id="m-mem")
        yield Metric("GPU", id="m-gpu")

    def set_compact(self, compact: bool) -> None:
        self.set_class(compact, "-compact")
        for metric in self.query(Metric):
            metric.set_compact(compact)
