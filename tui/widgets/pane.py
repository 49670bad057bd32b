"""One model's pane: header, streaming text, live metrics and the stats line.

The pane knows models only through events (``backends.events``); it never sees an engine.

Its chrome follows its height, in two steps a person can predict: a pane shorter than
``COMPACT_BELOW`` rows (both stacked panes below 42 terminal rows, 80x24 and 100x30 among them)
is *compact*: one row of sparklines, the figures that matter most (TTFT, gen tok/s, tokens, time,
stop) in its bottom border, and its header and whole stats line on the card (``c``). A pane
``card.MIN_PANE_HEIGHT`` rows or taller also shows its card.
"""

from __future__ import annotations

from rich._wrap import divide_line  # the breaker Content wraps with: the same line count
from rich.cells import cell_len
from rich.segment import Segment
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import Static

from backends.events import Event, Failed, Finished, Loaded, Note, Progress, Sample, Started, Token, now
from backends.specs import public_spec
from backends.stats import RunCollector, Runs, summarize
from tui.files import export
from tui.text import format as fmt
from tui.text.safe import plain, safe
from tui.widgets.card import CardPanel, CardScroll, gpu_label, mem_label, roofline_warning
from tui.widgets.lean_screen import DrawnByFrame, PlainLines
from tui.widgets.metrics import MetricsStrip
from tui.widgets.stream_view import StreamView

COMPACT_BELOW = 20
"""A pane shorter than this goes compact: full chrome (header, two sparkline rows, up to four
stats lines) would leave it fewer than 8 lines of text."""


def _one_cell_each(text: str) -> bool:
    """Every character but the line breaks one cell wide (a wide and a zero-width one would sum to
    as many cells as characters)."""
    text = text.replace("\n", "")
    return (text.isascii() and text.isprintable()) or all(cell_len(ch) == 1 for ch in text)


class StatsLine(DrawnByFrame, PlainLines, Static):
    """The run's figures under the text, moved by the frame's tok/s tick (see ``DrawnByFrame``).

    Its lines are cut here, as ``Content`` cuts plain text (``divide_line``, a cut line's trailing
    spaces dropped, each piece styled with its offset for selection), without ``Content``'s general
    path (spans, tabs, alignment, a formatted line object a piece): 4 times a second a pane, on a
    core a model needs. Anything else (a tab, a character wider or narrower than a cell, a
    selection, an alignment or overflow rule) takes ``Static``'s way; ``tests/screen/test_frames.py``
    checks they agree."""

    TRUECOLOR = True  # plain text in the theme's colours
    _cut: tuple[tuple, tuple[list[Strip], Strip] | None] | None = None
    """(what the lines depend on, the lines cut here and a blank line, or None: ``Static``'s way)."""

    def render_line(self, y: int) -> Strip:
        screen = self.__dict__.get("_abtop_screen")
        if screen is None:  # ``self.screen`` walks the ancestors at every call; a pane's line never moves
            screen = self.__dict__["_abtop_screen"] = self.screen
        text, selection = self.content, screen.selections.get(self)
        key = (text, self._size, self.styles._cache_key, selection)
        cut = self._cut
        if cut is None or cut[0] != key:
            lines = None
            if self._cuts_here(selection):
                (width, height), style = self.size, self.visual_style
                lines = (self._lines(text, width, height, style), Strip.blank(width, style.rich_style))
            self._cut = cut = (key, lines)
        if cut[1] is None:
            return super().render_line(y)
        lines, blank = cut[1]
        return lines[y] if y < len(lines) else blank

    @staticmethod
    def _lines(text: str, width: int, height: int, style) -> list[Strip]:
        strips: list[Strip] = []
        for row, line in enumerate(text.split("\n")):
            offsets = divide_line(line, width, fold=True) if len(line) > width else []  # one that fits is not cut
            starts = [0, *offsets]
            pieces = [line[a:b] for a, b in zip(starts, [*offsets, len(line)], strict=True)]
            for k, (start, piece) in enumerate(zip(starts, pieces, strict=True)):
                if k < len(pieces) - 1:
                    piece = piece.rstrip()
                piece = piece[:width]
                strips.append(Strip([Segment(piece, style.rich_style_with_offset(start, row))], len(piece)))
        return strips[:height]

    def _cuts_here(self, selection) -> bool:
        """Plain one-cell characters, no tab, no selection, the default wrapping and alignment."""
        text, styles = self.content, self.styles
        return (isinstance(text, str) and bool(text) and bool(self.size.width) and selection is None
                and not self._render_markup and "\t" not in text and _one_cell_each(text)
                and styles.content_align == ("left", "top")
                and styles.text_align in ("start", "left") and styles.text_overflow == "fold"
                and styles.text_wrap == "wrap" and not styles.line_pad)  # fmt: skip


class ModelPane(Vertical):
    DEFAULT_CSS = """
    ModelPane { border: round $panel; border-title-color: $text; padding: 0; }
    ModelPane.-failed { border: round $error; }
    ModelPane.-streaming { border: round $accent; }
    ModelPane:focus-within { border-title-style: reverse; }
    ModelPane > .header { height: auto; max-height: 2; padding: 0 1; color: $text-muted; }
    ModelPane > .stats { height: auto; max-height: 4; padding: 0 1; background: $boost; }
    ModelPane.-compact > .header, ModelPane.-compact > .stats { display: none; }
    ModelPane.-compact { border-subtitle-align: left; border-subtitle-color: $text; }
    """
    can_focus = True
    """Tab or a click selects a pane: ``z`` zooms the selected one."""
    ALLOW_MAXIMIZE = True

    def __init__(self, spec: str, slot: int, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.spec = spec
        self.slot = slot
        self.loaded: Loaded | None = None
        self.feed = Runs()
        self.shared_energy = False
        """Another model runs at the same time (race mode): no J/token of its own."""
        """This model's events cut into runs (the same ``stats.Runs`` as ``bench``)."""
        self.collector: RunCollector | None = None
        """The run on screen: the one in flight, else the last that ended."""
        self.runs: list[dict] = []
        """Results of the finished runs on screen (for the summary and exports)."""
        self._pending: list[str] = []
        self._readings: list[Sample] = []
        """Telemetry that arrived since the last frame."""
        self._last_tokens = 0
        self._last_tick: float | None = None
        self.failed = False
        self.border_title = plain(public_spec(spec))
        self.mode: str | None = None
        """The mode ("race"/"alternate") of the run on screen; recorded in each run's result."""
        self.clock = now
        """The time the live figures are read at (a replay runs its own clock)."""
        self._placed: tuple | None = None
        """(threads, cpus) of the runs on screen."""
        self.blind: str | None = None
        """"A" or "B" while a blind vote hides the model's name (``set_blind``)."""
        self.votes: str | None = None
        self.badge: str | None = None
        """Before the mode in the border: "replay ×8", so no one takes a replay for a live run."""
        self.score: str | None = None
        """What the quality keys found (bpb, fit, accuracy), each in its own place, joined."""
        self._scores: dict[str, str] = {}
        self._short = ""
        """The status in a few words, for a compact pane's bottom border."""
        self._moved: list[tuple[str, str]] = []
        """The header and stats rows a compact pane shows on its card."""
        self._status_text = ""
        self._waiting: tuple[str, str] | None = None
        """The status line (and its short form) a "waiting" note replaced, until the note ends."""
        self._subtitle: str | None = None
        self._streaming = False
        """A run streams in this pane (its border shows it once ``show_streaming`` is called)."""

    def compose(self) -> ComposeResult:
        # kept: the frame reaches them 10 times a second, where a query walks the pane's children each time
        self._view, self._metrics, self._card = StreamView(), MetricsStrip(), CardPanel()
        self._stats = StatsLine("", classes="stats", markup=False)
        self._header = "loading…"
        yield Static(self._header, classes="header", markup=False)
        with CardScroll():
            yield self._card
        yield self._view
        yield self._metrics
        yield self._stats

    # -- events ------------------------------------------------------------------------------
    def handle(self, ev: Event) -> None:
        """Take one event. Cheap: called per token; drawing happens in ``flush``/``tick``."""
        ended = self.feed.add(ev, loaded=self.loaded is not None)
        if isinstance(ev, Token):
            self._pending.append(ev.text)
        elif isinstance(ev, Sample):
            self._readings.append(ev)  # drawn by the next frame (``flush``), with the text and the tok/s bar
        elif isinstance(ev, Started):
            if ev.mode:  # the mode this run had (a replay's runs may differ from its header)
                self.mode = ev.mode
            self.collector = self.feed.current
            self._pending = []
            view = self.query_one(StreamView)
            view.clear()
            view.remove_class("-error")
            self._streaming = True  # its border: drawn by the app once no model reads its prompt (show_streaming)
            self.set_class(False, "-failed")
            self.failed = False
            self._last_tokens = 0
            self._waiting = None  # its turn: the live figures are its own
            self._last_tick = None  # the first tick of the run sets where its tok/s bars count from
        elif isinstance(ev, Finished):
            self._finish(ev, ended)
        elif isinstance(ev, Failed):
            self._fail(ev, ended)
        elif isinstance(ev, Loaded):
            fresh = ev is not self.loaded  # a (re)load; the same object again is a new placement
            placed = (ev.threads, list(ev.cpus or []))
            if self.runs and placed != self._placed:  # runs on other cores are not this one's figures
                self.runs.clear()
            self._placed = placed
            if fresh and self.failed:  # loaded again after a failure: the failure is over
                self.failed = False
                self.set_class(False, "-failed")
                self.query_one(StreamView).set_message(None)
            self.loaded = ev
            self.query_one(CardPanel).show_loaded(ev, fresh=fresh)
            self._show_identity()
            if fresh:
                self._status(f"ready · loaded in {fmt.seconds(ev.load_s)}")
        elif isinstance(ev, Note):
            text = ev.text
            if self.blind and text.startswith("waiting:"):  # "waiting: <name> runs alone" names the other
                text = "waiting: the other model runs alone (alternate mode)"
            self.query_one(StreamView).set_message(text, "italic")
            if text.startswith("waiting:"):  # the stats line held an earlier run's figures (race mode's)
                if self._waiting is None:
                    self._waiting = (self._status_text, self._short)
                self._status("waiting for its turn", short="waiting")
            elif not text and self._waiting is not None:  # nobody waits any more: the line as it was
                self._status(self._waiting[0], short=self._waiting[1])
                self._waiting = None
        elif isinstance(ev, Progress):  # a download or a pull before the model loads
            self._status(fmt.progress_line(ev), live=not ev.finished)

    def _finish(self, ev: Finished, ended: RunCollector | None) -> None:
        self.flush()
        self._streaming = False
        self.set_class(False, "-streaming")
        if ended is None:  # no run of ours was in flight
            return
        self.collector = ended
        result = self.collector.result(**self.query_one(CardPanel).context(), shared_energy=self.shared_energy)
        result["mode"] = self.mode
        if self.loaded is not None:  # where it ran: the mode and placement may change after it
            result["threads"], result["cpus"] = self.loaded.threads, list(self.loaded.cpus or []) or None
            result["lazy_ple"] = self.loaded.lazy_ple
            result["flash_attn"] = export.flash_attn(self.loaded)
        self.query_one(CardPanel).show_run(result)
        if not result["warmup"] and ev.stop != "cancelled":  # a cancelled run is not a figure to quote
            result["run"] = len(self.runs)  # numbered across every Enter with this prompt and mode
            self.runs.append(result)
        if not result["probe"]:  # a probe starts from evicted pages: its speed is no figure to show
            self.query_one(MetricsStrip).push("tps", None, fmt.rate(result["gen_tps"], ""), fmt.rate(result["gen_tps"], "").strip())
        suffix = "" if ev.stop != "cancelled" else " · cancelled"
        if result["probe"]:
            suffix += " · working-set probe (pages evicted first: not a speed figure; see the card)"
        self._show_stats(final=True, suffix=suffix)

    def _fail(self, ev: Failed, ended: RunCollector | None) -> None:
        self.flush()
        self._readings = []  # read before the failure: a lost process's readings are not drawn after it
        self.failed = True
        self._streaming = False
        if ended is not None:
            self.collector = ended
        self.set_class(False, "-streaming")
        self.set_class(True, "-failed")
        self.query_one(StreamView).set_message(ev.reason, "bold red")
        if self.loaded is None:
            self._header = safe(public_spec(self.spec))
            self.query_one(".header", Static).update(self._header)
        if ev.lost:  # the process is gone: its last readings are no longer true
            for key in ("cpu", "mem", "gpu"):
                self.query_one(MetricsStrip).push(key, None, "gone")
        self._status("worker lost · Enter loads it again" if ev.lost else "failed")

    # -- drawing (called by the app's timers) ---------------------------------------------------
    def flush(self) -> None:
        """Draw what arrived since the last frame: the text, in one batch, and the readings."""
        if self._readings:
            readings, self._readings = self._readings, []
            for s in readings:
                self._show_sample(s)
        if self._pending:
            text, self._pending = "".join(self._pending), []
            view = self._view
            view.set_message(None)
            view.append(text)

    @property
    def in_prompt(self) -> bool:
        """A run has started and its first token has not come: the model reads its prompt."""
        c = self.collector
        return c is not None and c.t_start is not None and c.t_end is None and not c.token_times

    def show_streaming(self) -> None:
        """The streaming border, if a run streams. Restyling a pane costs ~5 ms and a repaint of it:
        a session's turns draw it before their models start (``show_turn``); otherwise (a replay)
        the app calls this once no model is reading its prompt (what TTFT and prompt t/s time),
        not at each ``Started``. The border goes at once when a run ends."""
        self.set_class(self._streaming, "-streaming")

    def show_turn(self) -> None:
        """Its model is about to start (``ABTopApp._before_turn``): the streaming border and an
        empty view now, drawn before the model computes, not at its ``Started`` or first token."""
        self.set_class(True, "-streaming")
        self._view.clear()

    @property
    def streaming_tokens(self) -> bool:
        """A run's tokens are arriving: its first came, its end has not."""
        c = self.collector
        return c is not None and c.t_end is None and bool(c.token_times)

    @property
    def ticking(self) -> bool:
        """A run is on screen whose live figures still move: streaming, or ended since the last
        tick (whose bar then covers the run's last part interval). The app ticks only these."""
        c = self.collector
        return c is not None and (c.t_end is None or self._last_tick is None or self._last_tick <= c.t_end)

    def tick(self, t: float | None = None) -> None:
        """Tokens/s over the last interval, for the sparkline."""
        t = self.clock() if t is None else t
        c = self.collector
        if c is None or c.t_end is not None and self._last_tick and self._last_tick > c.t_end:
            self._last_tick = t
            return
        if self._last_tick is not None and t > self._last_tick:
            end = t if c.t_end is None else min(t, c.t_end)  # the interval the run ended in is shorter
            tps = (c.n_tokens - self._last_tokens) / max(end - self._last_tick, 1e-3)
            if c.t_end is not None and end - self._last_tick < (t - self._last_tick) / 2:
                tps = None  # a sliver of an interval (a token batch or two) is no rate: no bar
            # while streaming: the rate over the last interval ("now", the sparkline's latest bar,
            # unlike the stats line's whole-run "gen"); once over, the run's figure
            shown = fmt.rate(tps, "now") if c.t_end is None else fmt.rate(c.gen_tps, "")
            self._metrics.push("tps", tps, shown, shown.removesuffix(" now").strip())
            if c.t_end is None:  # the live stats line moves at the sampling rate, not per frame
                self._show_stats(final=False)
        self._last_tokens = c.n_tokens
        self._last_tick = t

    def _show_sample(self, s: Sample) -> None:
        push = self._metrics.push
        if s.cpu_percent is not None:
            push("cpu", s.cpu_percent, f"{s.cpu_percent:.0f}%")
        if s.rss_bytes is not None:
            push("mem", s.rss_bytes / 1e6, mem_label(s), mem_short(s))
        elif s.note:
            push("mem", None, s.note)
        if s.gpu_util is not None or s.note != "process gone":
            push("gpu", s.gpu_util, gpu_label(s), f"{s.gpu_util:.0f}%" if s.gpu_util is not None else "n/a")
        self._card.show_sample(s)

    def reset(self, spec: str) -> None:
        """A new model in this pane (the picker): nothing of the old one's runs stays on screen."""
        self.spec = spec
        self.loaded = self.collector = None
        self.runs.clear()
        self._pending = []
        self._readings = []
        self._placed = None
        self._scores.clear()  # the old model's bpb, fit and accuracy are not this one's
        self.score = None
        self.failed = False
        self._streaming = False
        self.set_class(False, "-failed")
        self.set_class(False, "-streaming")
        self.border_title = plain(public_spec(spec))
        self._header = safe(public_spec(spec))
        self.query_one(".header", Static).update(self._header)
        view = self.query_one(StreamView)
        view.clear()
        view.set_message(None)
        self.query_one(MetricsStrip).reset()  # the old model's readings are not this one's
        self._status("loading…")

    def show_reloading(self, text: str = "loading again…") -> None:
        """Enter on a pane whose model failed to load or was lost: it is loaded again."""
        self._status(text)

    def _status(self, text: str, live: bool = False, short: str | None = None) -> None:
        """The stats line. It is laid out again (the whole screen redrawn, ~10 ms at 160x45) only
        when its wrapped height changes: at 4 updates a second a relayout per update would cost
        more than the tokens, and a run's end changes its text, rarely its height (see below).
        ``live``: a streaming update (the figures move). ``short``: the few words a compact pane's
        border holds (else ``text``'s first line)."""
        stats = self._stats
        text = safe(text, one_line=False)  # a server's stop reason, a replay's mode
        width = max(stats.content_region.width, 1)
        lines = min(4, sum(1 if cell_len(line) <= width else len(divide_line(line, width, fold=True)) + 1
                           for line in text.split("\n")))  # max-height 4; a line that fits is not cut
        # hidden in a compact pane (its status is in the border): its height moves nothing, and a
        # relayout at each tick would redraw the whole screen 4 times a second
        # A live line shorter than the box keeps the box (a blank row under it, the text above not
        # moving): the run's final figures, as tall as the last run's, then need no relayout either.
        height = stats.size.height  # as last laid out (another widget's relayout fits it to its text)
        stats.update(text, layout=stats.display and (lines > height or (not live and lines != height)))
        self._status_text = text
        self._short = text.split("\n")[0] if short is None else short
        self._show_subtitle()

    def _show_subtitle(self) -> None:
        """The bottom border: the badge, the mode, the score and the votes; compact, the status too."""
        compact = self.has_class("-compact")
        sub = " · ".join(x for x in (self.badge, self.mode, self.score, self.votes, self._short if compact else None) if x)
        sub = plain(sub) if sub else None
        if sub == self._subtitle:  # setting a border's text repaints the whole pane, even the same text
            return
        self._subtitle = sub
        width, height = self.outer_size
        if sub is None or not height or not hasattr(self, "_border_subtitle"):
            self.border_subtitle = sub
            return
        # Textual's setter repaints the whole pane, every widget in it: a compact pane's status moves
        # at each tick (4 a second) and changes only the bottom row. The setter's text, that row.
        self._border_subtitle = self.render_str(sub).expand_tabs(4).split()[0]
        x, y = self.content_offset
        self.refresh(Region(-x, height - 1 - y, width, 1))

    def _move(self, **rows: str | None) -> None:
        """Keep the header (``model``) and the whole stats line (``run``, ``runs``: the spread) for
        the card of a compact pane; ``None`` drops a row."""
        kept = dict(self._moved) | rows
        self._moved = [(k, kept[k]) for k in ("model", "run", "runs") if kept.get(k)]
        self._show_moved()

    def _show_moved(self) -> None:
        self.query_one(CardPanel).show_moved(self._moved if self.has_class("-compact") else [])

    def _show_stats(self, final: bool, suffix: str = "") -> None:
        c = self.collector
        if c is None:
            return
        bits = [
            f"TTFT {fmt.seconds(c.ttft_s)}",
            f"gen {fmt.rate(c.gen_tps)}",
            f"{c.gen_tokens} tok",
            f"{fmt.seconds(c.elapsed(self.clock()))}",
        ]
        short = list(bits)  # what a compact pane's border holds: the figures that matter most
        if final:
            r = c.result()
            bits.insert(1, f"prompt {fmt.rate(r['prompt_tps'])}")
            if r["gen_tps_engine"] is not None:
                bits[2] += f" · engine {fmt.rate(r['gen_tps_engine'])}" + fmt.engine_gap(r["gen_tps"], r["gen_tps_engine"])
            if r["chars_per_s"] is not None:
                bits.insert(4, fmt.rate(r["chars_per_s"], "chars/s"))
            if r.get("tokens_per_100_chars") is not None:
                bits.insert(5, f"{r['tokens_per_100_chars']:.0f} tok/100 chars")
            if r.get("stop") and r["stop"] != "cancelled":  # why the two panes' token counts differ
                bits.append(fmt.stop(r["stop"]))
                short.append(fmt.STOP_WORDS.get(r["stop"], r["stop"]))
            if r.get("ttft_note"):
                bits.append(r["ttft_note"])
        if self.mode:
            bits.insert(0, self.mode)
        run = self.query_one(CardPanel).run if final else None
        if run and run.get("roofline_pct") is not None:
            bits.append(f"roofline {run['roofline_pct']:.0f} %")
        text = " · ".join(bits) + suffix
        spread = self._spread_line() if final and len(self.runs) > 1 else None
        if spread:
            text += "\n" + spread
        if final:
            self._move(run=" · ".join(bits) + suffix, runs=spread)
        warning = roofline_warning(run)
        if warning and not self.query_one(CardPanel).display:
            text += "\n" + warning
        if warning:
            short.append(f"roofline {run['roofline_pct']:.0f} % (low, see c)")
        self._status(text, live=not final, short=" · ".join(short) + suffix)

    def refresh_stats(self) -> None:
        """Redraw the final stats line (after the card is shown or hidden)."""
        c = self.collector
        if c is not None and c.finished is not None and not self.failed:
            self._show_stats(final=True, suffix=" · cancelled" if c.finished.stop == "cancelled" else "")

    def _spread_line(self) -> str:
        """Median (min–max) of every rate and TTFT over the counted runs on screen."""
        s = summarize(self.runs)
        one = lambda x: f"{x:.1f}"  # noqa: E731
        n = max((v["n"] for v in s.values() if v), default=0)
        return (
            f"{n} runs, median (min–max): TTFT {fmt.spread(s['ttft_s'], fmt.seconds)} · "
            f"prompt {fmt.spread(s['prompt_tps'], one)} · gen {fmt.spread(s['gen_tps'], one)} tok/s · "
            f"{fmt.spread(s['chars_per_s'], lambda x: f'{x:.0f}')} chars/s"
        )

    def show_mode(self, mode: str) -> None:
        """Show the mode in the border and redraw the placement (threads, cores) it gave."""
        self.mode = mode
        self._show_identity()

    # -- blind votes (tui/app/blind.py) ------------------------------------------------------------------
    def set_blind(self, label: str | None) -> None:
        """``label`` ("A"/"B"): hide whatever names the model (title, header, card) until the
        vote; None shows them again. The figures stay."""
        self.blind = label
        card = self.query_one(CardPanel)
        card.masked = label is not None
        card.fit(self.outer_size.height)
        self._show_identity()

    def show_votes(self, text: str | None) -> None:
        """The model's win rate in the border, beside the mode."""
        self.votes = text
        self._show_identity()

    def show_score(self, text: str | None, kind: str = "bpb") -> None:
        """A quality figure in the border, beside the mode: ``kind`` "bpb" (``S``), "fit" (``f``) or
        "acc" (``a``); each keeps its place, so one key's figure does not hide another's."""
        if text:
            self._scores[kind] = text
        else:
            self._scores.pop(kind, None)
        self.score = " · ".join(self._scores[k] for k in ("bpb", "acc", "fit") if k in self._scores) or None
        self._show_identity()

    def _show_identity(self) -> None:
        header = self.query_one(".header", Static)
        self._show_subtitle()
        if self.blind:
            self.border_title = f"model {self.blind}"
            text = (f"model {self.blind} · name hidden until your vote (1 A, 2 B, = tie, x both bad)" if self.blind in "AB"
                    else f"model {self.blind} · not in this vote; name hidden until it is cast")  # fmt: skip
        elif self.loaded is not None:
            self.border_title = plain(self.loaded.info.name)
            text = safe(fmt.model_header(self.loaded.info, self.loaded))
        else:
            self.border_title = plain(public_spec(self.spec))
            text = None
        if text is not None and text != self._header:  # the same again (each run's mode): no relayout
            self._header = text
            header.update(text)
        self._move(model=text)  # a compact pane's card shows it: masked the same while blind

    def on_resize(self) -> None:
        self.fit_chrome()

    def fit_chrome(self) -> None:
        """Compact or full chrome, card or not, for the pane's height now. Called on a resize, and by
        the app after a zoom (a pane that a zoom leaves or restores may get no Resize event)."""
        compact = self.outer_size.height < COMPACT_BELOW
        if compact != self.has_class("-compact"):
            self.set_class(compact, "-compact")
            self.query_one(MetricsStrip).set_compact(compact)
            self._show_subtitle()
            self._show_moved()
        card = self.query_one(CardPanel)
        shown = card.display
        card.fit(self.outer_size.height)
        if card.display != shown:
            self.refresh_stats()


def mem_short(s) -> str:
    """A compact strip's memory label: ``w 96.6M a 58.2M`` (weights, anonymous), never one RSS."""
    if s.weights_resident_bytes is not None and s.anon_bytes is not None:
        return f"w {fmt.human_bytes(s.weights_resident_bytes, short=True)} a {fmt.human_bytes(s.anon_bytes, short=True)}"
    return mem_label(s)
