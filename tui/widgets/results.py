"""The results screen: tokens/s over time for both models, and bars with min–max whiskers.

Opened with ``g`` after a run and by ``abtop bench --plot``. Each chart is its own
``PlotextPlot``, so each has its own figure: plotext's module-level figure is never touched,
and drawing happens on the UI thread in ``on_mount`` (the widget re-renders it at its size).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import statistics
from dataclasses import dataclass, field

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Static
from textual_plotext import PlotextPlot

from backends.stats import RunCollector
from tui.text import format as fmt
from tui.text.safe import safe
from tui.widgets.footer import Footer


@dataclass
class ModelResults:
    """What the screen shows for one model: its counted runs and its latest run's token times."""

    name: str
    runs: list[dict]
    token_times: list[float] = field(default_factory=list)
    """Seconds from the latest run's request start to each token."""
    tokens_per_event: float = 1.0
    """Tokens one event carries on average (a server chunk may hold several)."""

    @classmethod
    def from_collector(cls, name: str, runs: list[dict], c: RunCollector | None) -> ModelResults:
        if c is None or c.t_start is None or not c.token_times:
            return cls(name, runs)
        per = c.n_tokens / len(c.token_times) if c.token_times else 1.0
        return cls(name, runs, [t - c.t_start for t in c.token_times], per or 1.0)


def rate_series(times: list[float], tokens_per_event: float = 1.0, bins: int = 40) -> tuple[list[float], list[float]]:
    """Tokens/s from the request start (x = 0) to the last token, on ``bins`` + 1 points.

    The token count is interpolated linearly between token times, so a steady stream reads as a
    flat line rather than the 0/2/1 aliasing of counting tokens in bins. Before the first token
    the rate is 0: the wait for it is part of the picture.
    """
    if len(times) < 2 or times[-1] <= 0:
        return [], []
    end, first, n = times[-1], times[0], len(times)

    def count(t: float) -> float:  # generation intervals done by time t
        if t <= first:
            return 0.0
        if t >= end:
            return n - 1.0
        i = bisect.bisect_right(times, t) - 1
        gap = times[i + 1] - times[i]
        return i + ((t - times[i]) / gap if gap > 0 else 0.0)

    w = 2 * end / bins  # window: two steps, a little smoothing
    xs = [end * j / bins for j in range(bins + 1)]
    return xs, [max(count(x) - count(x - w), 0.0) / w * tokens_per_event for x in xs]


def short_labels(names: list[str]) -> list[str]:
    """Bar labels that fit under a narrow chart and stay distinct."""
    for cut in (lambda s: s.split("-")[0], lambda s: s[:8]):
        labels = [cut(n) for n in names]
        if len(set(labels)) == len(labels):
            return labels
    return [chr(ord("A") + i) for i in range(len(names))]


def whiskers(runs: list[dict], name: str, scale: float = 1.0) -> tuple[float, float, float] | None:
    """(median, min, max) of one figure over the counted runs that have it."""
    vals = [r[name] * scale for r in runs if r.get(name) is not None and not r.get("error") and not r.get("warmup")]
    if not vals:
        return None
    return statistics.median(vals), min(vals), max(vals)


BARS: tuple[tuple[str, str, str, float], ...] = (
    ("bar-gen", "gen tok/s", "gen_tps", 1.0),
    ("bar-ttft", "TTFT ms", "ttft_s", 1000.0),
    ("bar-mem", "peak RSS MB", "peak_rss_bytes", 1e-6),
)


def nice_step(top: float, steps: int = 4) -> float:
    """A round tick step (1, 2 or 5 × 10ⁿ) that covers ``top`` in about ``steps`` steps."""
    raw = max(top, 1e-9) / steps
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def tick_values(top: float, steps: int = 4) -> list[float]:
    """Round, evenly spaced values from 0 up to ``top``."""
    step = nice_step(top, steps)
    return [round(k * step, 9) for k in range(int(top / step + 1e-9) + 1)]


def even_ticks(plt, top: float, steps: int = 4) -> None:
    """Evenly spaced y ticks on round values (plotext's own skip values on short plots)."""
    values = tick_values(top, steps)
    plt.yticks(values, [f"{v:g}" for v in values])


LINE_RGB = ((0, 175, 255), (255, 135, 0))
"""Each model's line colour in the tokens/s plot (and its swatch in the legend): blue, orange."""


class ResultsScreen(Screen):
    """Charts of the runs on screen (or of a bench): one figure per ``PlotextPlot``."""

    DEFAULT_CSS = """
    ResultsScreen { layout: vertical; }
    ResultsScreen #rate { height: 1fr; min-height: 6; }
    ResultsScreen #bars { height: 1fr; min-height: 6; }
    ResultsScreen #bars > PlotextPlot { width: 1fr; }
    ResultsScreen #legend { height: auto; max-height: 3; padding: 0 1; color: $text-muted; background: $boost; }
    """
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("g", "close", "Back", show=False),
    ]

    def __init__(self, models: list[ModelResults], title: str = "") -> None:
        super().__init__()
        # names and the caption come from GGUF headers, servers, recordings: drawn safe
        self.models = [dataclasses.replace(m, name=safe(m.name)) for m in models]
        self.caption = safe(title)

    def compose(self) -> ComposeResult:
        yield PlotextPlot(id="rate")
        with Horizontal(id="bars"):
            for wid, *_ in BARS:
                yield PlotextPlot(id=wid)
        yield Static(self._legend(), id="legend")
        yield Footer(compact=True, show_command_palette=False)  # as on the main screen

    def on_mount(self) -> None:
        self._draw_rates(self.query_one("#rate", PlotextPlot))
        labels = short_labels([m.name for m in self.models])
        for wid, title, key, scale in BARS:
            self._draw_bars(self.query_one(f"#{wid}", PlotextPlot), title, labels, key, scale)

    def _draw_rates(self, widget: PlotextPlot) -> None:
        plt = widget.plt
        top = 0.0
        for i, m in enumerate(self.models):
            xs, ys = rate_series(m.token_times, m.tokens_per_event)
            if xs:
                # no plotext label: its legend box sits on the lines at 80 columns; the legend
                # under the plots names each line's colour instead
                plt.plot(xs, ys, color=LINE_RGB[i % len(LINE_RGB)])
                top = max(top, max(ys))
        plt.title(f"tokens/s over time, latest run{' · ' + self.caption if self.caption else ''}")
        plt.xlabel("s since request")
        if top:
            plt.ylim(0, top * 1.1)
            even_ticks(plt, top * 1.1)

    def _draw_bars(self, widget: PlotextPlot, title: str, labels: list[str], key: str, scale: float) -> None:
        plt = widget.plt
        plt.title(title)
        stats = [whiskers(m.runs, key, scale) for m in self.models]
        present = [(lab, s) for lab, s in zip(labels, stats, strict=True) if s is not None]
        if not present:
            plt.title(f"{title}: n/a")
            return
        names = [lab for lab, _ in present]
        med = [s[0] for _, s in present]
        plt.bar(names, med, width=0.4)
        if any(s[2] > s[1] for _, s in present):  # whiskers only when runs differ
            mids = [(s[1] + s[2]) / 2 for _, s in present]
            plt.error(list(range(1, len(present) + 1)), mids, yerr=[(s[2] - s[1]) / 2 for _, s in present])
        top = max(s[2] for _, s in present) * 1.15 or 1
        plt.ylim(0, top)
        even_ticks(plt, top)

    def _legend(self) -> Content:
        """One line per model with the medians; the whiskers show the spread. Assembled, not
        markup: a model's name may hold ``[`` (and is drawn as it is)."""
        parts: list = []
        labels = short_labels([m.name for m in self.models])
        n = 0
        for i, (lab, m) in enumerate(zip(labels, self.models, strict=True)):
            bits = [m.name if m.name.startswith(lab) else f"{lab} = {m.name}"]
            for title, key, f in (("gen", "gen_tps", fmt.rate), ("TTFT", "ttft_s", fmt.seconds), ("RSS", "peak_rss_bytes", fmt.human_bytes)):
                w = whiskers(m.runs, key)
                bits.append(f"{title} {f(w[0]) if w else 'n/a'}")
            n = max(n, len([r for r in m.runs if not r.get("warmup") and not r.get("error")]))
            parts += [("━━", "#{:02x}{:02x}{:02x}".format(*LINE_RGB[i % len(LINE_RGB)])), " " + " · ".join(bits) + "\n"]
        return Content.assemble(*parts, f"bars: median of {n} run(s); whiskers: min–max")

    def action_close(self) -> None:
        self.dismiss(None)


class ResultsApp(App):
    """The results screen on its own: ``abtop bench --plot``."""

    TITLE = "abtop results"
    BINDINGS = [Binding("q", "quit", "Quit")]

    def __init__(self, models: list[ModelResults], title: str = "") -> None:
        super().__init__()
        self.models = models
        self.caption = title

    def on_mount(self) -> None:
        self.push_screen(ResultsScreen(self.models, self.caption), callback=lambda _: self.exit())
