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
        self._shown = ("–", "–")
        """(full, short) texts of the latest reading."""

    def compose(self) -> ComposeResult:
        yield Label(f"{self.metric_name} –", markup=False)
        yield Sparkline([], summary_function=max)

    def push(self, value: float | None, shown: str, short: str | None = None) -> None:
        """Add a reading; ``None`` keeps the history and shows ``shown`` (e.g. 'no GPU').
        ``short``: the label in a compact strip (``shown`` if not given)."""
        self._shown = (shown, shown if short is None else short)
        self._draw_label()
        if value is not None:
            self.history.append(value)
            # Sparkline.data is reactive: assign a new list, appending to the same one redraws nothing.
            # One reading alone would draw as full bars (Sparkline scales min to max): show it flat.
            data = list(self.history) if len(self.history) > 1 else [value, value]
            self.query_one(Sparkline).data = data

    def set_compact(self, compact: bool) -> None:
        self.set_class(compact, "-compact")
        self._draw_label()

    def _draw_label(self) -> None:
        # The label is as wide as its text: relayout (which redraws the whole screen) only when the
        # label's width changes, not on every reading.
        compact = self.has_class("-compact")
        text = f"{self.metric_name} {safe(self._shown[compact])}"  # a server's note among the figures
        width = (len(text) + 1) if compact else max(LABEL_MIN_WIDTH, len(text) + 1)  # + padding
        self.query_one(Label).update(text, layout=width != self._label_len)
        self._label_len = width

    def reset(self) -> None:
        self.history.clear()
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
