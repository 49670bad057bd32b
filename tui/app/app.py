"""The abtop Textual app: two to four panes streaming the same prompt, a prompt bar, live metrics.

Two panes sit side by side (stacked below ``NARROW`` columns); three or four make a 2x2 grid, and
stack, compact, on a narrow screen; ``z`` zooms one."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal
from textual.css.query import NoMatches
from textual.timer import Timer
from textual.widgets import Input, Static

from backends import LOG_NAME, catalog, mem_bandwidth_gbs
from backends.base import Backend, BackendError, GenParams
from backends.events import Event, Failed, Finished, Sample, Started, Token
from backends.session import RunPlan, Session, race_shares_cores
from backends.specs import DEFAULT_PAIR
from tui.app import gcpolicy
from tui.app.blind import BlindVotes, Suite
from tui.app.help import HelpScreen
from tui.app.model_keys import ModelKeys, offer_pulls
from tui.app.picker import ModelsProvider
from tui.app.quality_keys import QualityKeys
from tui.app.results_keys import ResultsKeys
from tui.files import export
from tui.terminal.lifeline import Lifeline, no_terminal
from tui.text.safe import safe
from tui.widgets.card import CardPanel
from tui.widgets.footer import Footer
from tui.widgets.host import HostBar
from tui.widgets.lean_screen import LeanScreen, settled
from tui.widgets.lean_screen import frame as lean_frame
from tui.widgets.pane import ModelPane
from tui.widgets.prompt import PromptInput
from tui.widgets.results import ResultsScreen
from tui.widgets.texts import TextScreen
from tui.widgets.verdict_screen import VerdictScreen

VOTE = Binding.Group("Vote A/B/tie/bad")
NARROW = 120
"""Below this many columns the panes stack, one above the other (and so do the texts of ``t``),
and the host line is shorter."""

# What check_action opens and closes, as data (the rules themselves are in check_action).
OPEN_OVER_HELP = frozenset({"shutdown", "screenshot"})
"""The help screen closes with its own keys; of the app's, only these act behind it."""
RESULTS_SCREENS = {ResultsScreen: "results", TextScreen: "texts", VerdictScreen: "verdict"}
"""The screens over the panes, each with the key that opened it (and closes it)."""
CLOSED_OVER_RESULTS = frozenset({
    "run", "rerun", "edit_prompt", "mode", "cancel", "leave", "toggle_card", "results", "texts", "pull",
    "working_set", "pick", "verdict", "score", "eval", "vote", "blind", "next_prompt", "zoom",
})  # fmt: skip
"""Keys about the panes: closed while a results screen covers them (quit, export, screenshot and
help stay; the screen's own key closes it)."""
CLOSED_WHILE_TYPING = frozenset({
    "rerun", "quit", "edit_prompt", "export", "screenshot", "results", "texts", "toggle_card", "pull",
    "working_set", "pick", "help", "zoom", "score", "eval", "verdict", "vote", "blind", "next_prompt",
})  # fmt: skip
"""Letters belong to the prompt while it has focus (Enter there submits it, Esc leaves it)."""
NAME_THE_MODELS = frozenset({"toggle_card", "results", "texts", "export", "verdict"})
"""Closed in blind mode until the vote: each would tell which model is which."""
FOOTER_ROOM = 120
"""From this many columns the footer also lists ``?`` and ``q`` (its widest set of keys, a run in
flight or a vote open, is under 100 columns with them)."""


class ABTopApp(App):
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {ModelsProvider}  # Ctrl+P: the model picker beside Textual's commands
    TITLE = "abtop"
    AUTO_FOCUS = None  # the prompt starts unfocused (see on_mount)
    # z zooms a pane with Textual's maximize; the prompt bar and the footer stay, and Esc keeps
    # its meaning (cancel) instead of Textual's "Esc leaves the maximized view".
    ALLOW_IN_MAXIMIZED_VIEW = "Footer, #bottom"
    ESCAPE_TO_MINIMIZE = False
    FLUSH_HZ = 10
    """About this many frames a second draw the text that arrived while models stream, and none
    while nothing arrives (see ``_want_frame``): the local workers send their tokens as often."""
    MIN_GAP = 0.08
    """The least time between two frames: what arrives sooner after a frame waits for the next
    arrival. A model's batches come every 1/FLUSH_HZ s, so a frame may take each of them; two
    models' batches (race) share frames, at most ~12 a second whatever comes (a server's stream,
    a replay)."""
    HOLD_S = 0.5
    """The longest a run's start holds the screen's frames, while the models read their prompts."""
    BINDINGS = [
        Binding("enter", "run", "Run", show=True),
        # footer words kept short: every key fits at 80 columns. Esc is "Stop" in the footer only
        # while a run is in flight; otherwise it leaves the prompt, unlisted.
        Binding("escape", "cancel", "Stop"),
        Binding("escape", "leave", "Leave", show=False),
        Binding("r", "rerun", "Rerun", show=False),  # Enter does the same; the footer needs the room
        Binding("slash", "edit_prompt", "Edit", show=False),  # in --help and the README: the footer is full
        Binding("c", "toggle_card", "Card"),
        # One key, two bindings: the footer shows the one whose label names the current mode.
        Binding("m", "mode('alternate')", "Mode: race"),
        Binding("m", "mode('race')", "Mode: alternate"),
        Binding("e", "export", "Export"),
        Binding("s", "screenshot", "SVG", show=False),  # in --help and the README; the footer is full
        Binding("g", "results", "Plots"),
        Binding("t", "texts", "Text"),
        Binding("p", "pull", "Pull", show=False),  # offered in the pane of a model Ollama lacks
        Binding("w", "working_set", "Probe", show=False),  # in --help and the README; the footer is full
        Binding("o", "pick", "Model"),  # the model picker (also in Ctrl+P's palette)
        Binding("z", "zoom", "Zoom"),
        Binding("ctrl+c", "shutdown", "Quit", show=False, priority=True),
        Binding("ctrl+z", "suspend_process", "Suspend", show=False),  # as in top: fg brings it back
        # blind votes (tui/app/blind.py): shown in the footer only while a vote is open, as one group
        # ("1 2 = x Vote A/B/tie/bad"): four labels of their own overflowed 80 columns
        Binding("1", "vote('1')", "A better", group=VOTE),
        Binding("2", "vote('2')", "B better", group=VOTE),
        Binding("equals_sign", "vote('=')", "Tie", group=VOTE),
        Binding("x", "vote('x')", "Both bad", group=VOTE),
        Binding("b", "blind", "Blind", show=False),
        Binding("n", "next_prompt", "Next", show=False),  # the suite's place in the prompt bar says "n next"
        Binding("S", "score", "Score", show=False),  # bits per byte of the bundled text
        Binding("a", "eval", "Accuracy", show=False),  # accuracy on standard tasks (quality_keys.py)
        Binding("f", "fit", "Fit", show=False),  # the least RAM each model needs (abtop fit, quality_keys.py)
        Binding("v", "verdict", "Verdict"),
        # ? and q, last: in the footer where it has room for them (FOOTER_ROOM), else unlisted (in ?,
        # --help and the README). One key, two bindings: the footer shows the first one allowed.
        Binding("question_mark", "help('footer')", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("q", "quit('footer')", "Quit"),  # as in top
        Binding("q", "quit", "Quit", show=False),
    ]

    def get_driver_class(self):
        """In a terminal, Textual's Linux driver without its idle polling and writer wake-ups."""
        cls = super().get_driver_class()
        try:
            from textual.drivers.linux_driver import LinuxDriver

            from tui.terminal.driver import LeanDriver
        except ImportError:  # no POSIX terminal here
            return cls
        return LeanDriver if cls is LinuxDriver else cls

    def __init__(
        self,
        specs: list[str],
        prompt: str,
        params: GenParams,
        *,
        mode: str = "race",
        n_ctx: int = 2048,
        threads: int | None = None,
        interval: float = 0.25,
        autostart: bool = False,
        record: str | None = None,
        runs: int = 1,
        warmup: int = 0,
        results_dir: str | Path = export.DEFAULT_DIR,
        blind: bool = False,
        prompts: list | None = None,
        rng=None,
        working_set: bool = False,
        engine_options: dict | None = None,
    ) -> None:
        super().__init__()
        # the key groups: each holds its own state and uses the app through AppSurface (surface.py)
        self.blind = BlindVotes(self, blind, rng)
        self.suite = Suite(self, prompts)
        self.quality_keys = QualityKeys(self)
        self.model_keys = ModelKeys(self)
        self.results_keys = ResultsKeys(self)
        self.specs = specs
        self.prompt = prompt
        self.params = params
        self.mode = mode
        self.n_ctx = n_ctx
        self.threads = threads
        self.interval = interval
        self.autostart = autostart
        self.record_path = record
        self.n_runs = runs
        self.n_warmup = warmup
        self.results_dir = Path(results_dir)
        """Where ``e`` and ``s`` write (created on first use)."""
        self.working_set = working_set
        """Each Enter ends with a working-set probe run per local model (``--working-set``, ``w``)."""
        self.engine_options = engine_options or {}
        """Load options for local models (``lazy_ple``, ``repack``, ``flash_attn``): see make_backend."""
        self.engine = asyncio.Lock()
        """Held while the workers are placed or run: a placement never lands mid-stream."""
        self._last_plan: tuple | None = None
        self.session: Session | None = None
        self.panes: list[ModelPane] = []
        self.models_loaded = asyncio.Event()
        self.run_finished = asyncio.Event()
        """Set each time a run of both panes ends (tests and scripts wait on it)."""
        self.hooks: list = []
        """Extra ``emit(slot, event)`` listeners: the recorder, tests."""
        self._deferred: dict[int, list[Event]] = {}
        """Per pane, the end of its run and what came after it (readings, notes, its next run's
        start) while a model may be reading its prompt: see ``emit``."""
        self._drain_timer: Timer | None = None
        self._recorder = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.slots: list[int] = []
        """The pane of each of the session's models (a spec that could not be made has none)."""
        self._frame_at: asyncio.Handle | None = None
        """The next ``_frame``: in this wake-up of the loop (``call_soon``), or a timer that stands in
        for an arrival that does not come (see ``_want_frame``)."""
        self._frame_soon = False
        """``_frame_at`` runs in this wake-up (not a timer)."""
        self._frame_when = math.inf
        """The loop time ``_frame_at`` runs at."""
        self._host: HostBar = None  # type: ignore[assignment]  # made in compose
        self._last_frame = -math.inf
        """The loop time of the last frame drawn."""
        self._next_tick: float | None = None
        self._prompting = False
        """A run started and some model may still be reading its prompt (see ``_show_streaming``)."""

    def get_default_screen(self) -> LeanScreen:
        return LeanScreen(id="_default")  # renders only the widgets a frame changes

    def compose(self) -> ComposeResult:
        with Container(id="panes"):
            for i, spec in enumerate(self.specs):
                pane = ModelPane(spec, i, id=f"pane-{i}")
                self.panes.append(pane)
                yield pane
        with Horizontal(id="bottom"):
            if self.suite.prompts:  # a suite: which prompt of how many (n steps on)
                yield Static(self.suite.position(), id="suite-pos", markup=False)
            yield PromptInput(value=self.prompt, placeholder="type a prompt — Enter runs both models, Esc leaves", id="prompt")
            self._host = HostBar()
            yield self._host
        yield Footer(compact=True, show_command_palette=False)  # every key fits at 80 columns

    # -- lifecycle ---------------------------------------------------------------------------
    def on_mount(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._layout(self.size.width)
        # No timer runs here: a token or a run's start asks for a frame (``_want_frame``), so an
        # idle screen costs nothing between the host line's and the samplers' readings.
        # The prompt starts unfocused: Enter runs it and the letter keys are commands (q quits), as
        # in top; "/" (or a click) edits it. Focused at start, the first letter typed would replace it.
        self._load()
        # Back from Ctrl+Z (``fg``): the terminal showed the shell meanwhile, and Textual draws only
        # what changed since (its Resize of the same size changes nothing): the whole screen again.
        self.app_resume_signal.subscribe(self, lambda _app: self.screen.refresh())

    def on_ready(self) -> None:
        gcpolicy.settle()  # the first frame is up: full collections off the token path (gcpolicy)

    def on_resize(self, event) -> None:
        self._layout(event.size.width)
        self.refresh_bindings()  # ? and q come and go with the footer's room

    def _layout(self, width: int) -> None:
        narrow = width < NARROW
        panes = self.query_one("#panes")
        panes.set_class(narrow, "-stacked")
        panes.set_class(not narrow and len(self.specs) > 2, "-grid")  # 3 or 4: two by two
        self._host.set_compact(narrow)

    @property
    def narrow(self) -> bool:
        """Too narrow for two panes side by side (``NARROW``)."""
        return self.size.width < NARROW

    async def on_unmount(self) -> None:
        try:
            await self._close()
        finally:
            gcpolicy.release()

    async def _close(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            await session.close()
        if self._recorder is not None:
            self.hooks.remove(self._record)
            self._recorder.close()
            self._recorder = None

    # -- engine ----------------------------------------------------------------------------------
    def emit(self, slot: int, ev: Event) -> None:
        waiting = self._deferred.get(slot)
        if waiting is not None:
            if not isinstance(ev, Token):  # a reading, a note, its next run's start: behind the end
                waiting.append(ev)
                self._hooks(slot, ev)
                return
            self._drain(slot)  # the pane's next run streams: what waited first
        elif isinstance(ev, (Finished, Failed)) and self.session is not None and self.session.running:
            # Another model may still stream (race): this pane's end (its final figures, a
            # relayout, the card: ~4 ms) and its last frame wait for that model's next token
            # (``_show_streaming``: a wake-up between two of its tokens), the next turn
            # (``_before_turn``, before any model starts), the run's end or ``HOLD_S``.
            self._deferred[slot] = [ev]
            self._prompting = True
            self._hold_frames()
            if self._drain_timer is not None:
                self._drain_timer.stop()
            self._drain_timer = self.set_timer(self.HOLD_S, self._drain)
            self._hooks(slot, ev)  # a recording keeps the order things happened in
            return
        self._emit_now(slot, ev)
        self._hooks(slot, ev)

    def _hooks(self, slot: int, ev: Event) -> None:
        for hook in self.hooks:
            hook(slot, ev)

    def _emit_now(self, slot: int, ev: Event) -> None:
        with _teardown_safe(self):
            self.panes[slot].handle(ev)
        if not self._frame_soon:
            if isinstance(ev, (Token, Started)):
                self._want_frame()  # once per wake-up: the frame then runs before the loop sleeps
            elif isinstance(ev, Sample):
                # A reading comes on the samplers' clock, at any moment of a model's work; while
                # tokens stream, the next batch (within 1/FLUSH_HZ s, between two tokens) draws it.
                loop = self.loop
                streaming = loop is not None and any(pane.streaming_tokens for pane in self.panes)
                self._want_frame(loop.time() + 1 / self.FLUSH_HZ if streaming else None)
        if isinstance(ev, Started):
            self._prompting = True
            self._hold_frames()
        elif self._prompting and isinstance(ev, (Token, Finished, Failed)):
            self._show_streaming()

    def _drain(self, slot: int | None = None) -> None:
        """The deferred ends of runs (``emit``), and what waited behind them, of ``slot`` or all."""
        for s in [slot] if slot is not None else list(self._deferred):
            for ev in self._deferred.pop(s, ()):
                self._emit_now(s, ev)
        if not self._deferred and self._drain_timer is not None:
            self._drain_timer.stop()
            self._drain_timer = None

    def _record(self, slot: int, ev: Event) -> None:
        """``--record``: a write that fails (a full disk) stops the recording, not the run; said once."""
        rec = self._recorder
        if rec is not None and rec.error is None:
            rec.write(slot, ev)

    def _record_failed(self, error: str) -> None:
        self.notify(error[0].upper() + error[1:], severity="error", timeout=12, markup=False)  # a path may hold [ ]

    def make_backend(self, spec: str) -> Backend:
        """Every backend of the app is built here, with its context size and engine options: the
        first two and a model picked with ``o`` alike (blocking: run it in a thread)."""
        return catalog.make_backend(spec, n_ctx=self.n_ctx, **self.engine_options)

    @work(group="load", exit_on_error=False)
    async def _load(self) -> None:
        backends: list[Backend | None] = []
        for i, spec in enumerate(self.specs):
            try:
                backends.append(await asyncio.to_thread(self.make_backend, spec))
            except BackendError as exc:
                self.emit(i, Failed(str(exc)))
                backends.append(None)
        offer_pulls(backends)
        live = [(i, b) for i, b in enumerate(backends) if b is not None]
        slots = self.slots = [i for i, _ in live]
        if self.record_path:
            from tui.files.record import Recorder

            try:
                self._recorder = Recorder(self.record_path, self.specs, self.export_params(), on_error=self._record_failed)
                self.hooks.append(self._record)
            except OSError as exc:
                self.notify(f"Not recording: --record {self.record_path} cannot be written ({exc.strerror or exc}).",
                            severity="error", timeout=12, markup=False)  # fmt: skip
        self.session = Session(
            [b for _, b in live],
            lambda k, ev: self.emit(slots[k], ev),
            mode=self.mode,
            threads=self.threads,
            interval=self.interval,
            before_turn=lambda ks: self._before_turn([slots[k] for k in ks]),
        )
        await self.session.load()
        await self._probe_bandwidth()  # now: the loads are over and no run has started
        self._show_mode(self.mode)
        self._say_shared_cores()
        self.models_loaded.set()
        if self.autostart:
            self.action_run()

    async def _probe_bandwidth(self) -> None:
        """The host's read bandwidth for the roofline (cached per host in ~/.cache/abtop; a probe,
        about a second, while the machine is quiet), handed to every card."""
        gbs = await asyncio.to_thread(mem_bandwidth_gbs)
        with _teardown_safe(self):
            for pane in self.panes:
                pane.query_one(CardPanel).show_bandwidth(gbs)

    def notify(self, message: str, *, title: str = "", markup: bool = False, **kw) -> None:
        """A toast is one line over the footer (app.tcss), never over text: its title and line
        breaks fold into that line (" · "). Its text may name a file or quote a server, so it is
        drawn safe, not as markup."""
        line = " · ".join(x for x in (title, *message.splitlines()) if x.strip())
        super().notify(safe(line), markup=False, **kw)

    def action_run(self) -> None:
        prompt = self.query_one("#prompt", Input).value.strip()
        if not prompt:
            self.notify("Type a prompt first.", severity="warning")
            return
        if self.session is None or not self.models_loaded.is_set():
            self.notify("Models are still loading…")
            self.autostart = True
            return
        if self.session.running:
            self.notify("Already running: Esc cancels.")
            return
        if self.engine.locked():  # a reload or a placement in progress: a second Enter would restart it
            self.notify("Still loading or placing the models…")
            return
        self.prompt = prompt
        self.suite.running(prompt)  # an edited prompt is no longer the suite's
        self.set_focus(None)
        self.blind.before_run(prompt, self.suite.prompt_id)
        if self._last_plan != (prompt, self.mode):  # the figures on screen share prompt and mode
            self._last_plan = (prompt, self.mode)
            for pane in self.panes:
                pane.runs.clear()
        # What Enter changed ("esc Stop", the panes' borders) is drawn before the models start
        # (``_before_turn``).
        self._run(
            RunPlan(prompt, self.params, mode=self.mode, runs=self.n_runs, warmup=self.n_warmup, working_set=self.working_set)
        )

    @work(group="run", exclusive=True, exit_on_error=False)
    async def _run(self, plan: RunPlan) -> None:
        assert self.session is not None
        self.run_finished.clear()
        self._host.ride(True)
        try:
            async with self.engine:
                if not all(self.session.alive):  # a server started since, a worker lost: try again
                    for k, ok in enumerate(self.session.alive):
                        if not ok:
                            self.panes[self.slots[k]].show_reloading()
                    await self.session.reload_failed()
                if not any(self.session.alive):
                    self.notify("No model is loaded; see the panes.", severity="error")
                    return
                if self.session.mode != plan.mode:
                    await self.session.set_mode(plan.mode)
                self._show_mode(plan.mode)
                shared = plan.mode == "race" and sum(self.session.alive) > 1  # one socket's energy, two models
                for pane in self.panes:
                    pane.shared_energy = shared
                await self.session.run(plan)
        finally:
            self._host.ride(False)
            with contextlib.suppress(NoMatches):
                self._drain()
                for pane in self.panes:  # a turn cancelled before its model started
                    pane.show_streaming()
                self._release_frames()
            self.refresh_bindings()  # the vote keys open once both have finished
            self.run_finished.set()

    @on(Input.Submitted, "#prompt")
    def _submitted(self) -> None:
        self.action_run()

    def action_rerun(self) -> None:
        self.action_run()

    def action_toggle_card(self) -> None:
        """Show or hide the model cards (a short pane hides its card until asked)."""
        for pane in self.panes:
            pane.query_one(CardPanel).toggle()
            pane.refresh_stats()  # the roofline warning lives in the card while it shows

    def action_zoom(self) -> None:
        """z: the selected pane (the one Tab or a click focused; the first if none) fills the
        screen above the prompt bar, z again shows both. The other pane keeps streaming."""
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
        else:
            focused = self.focused
            pane = next((p for p in self.panes if focused is not None and (focused is p or p in focused.ancestors)), None)
            screen.maximize(pane or self.panes[0], container=False)
        self.call_after_refresh(self._fit_panes)

    def _fit_panes(self) -> None:
        for pane in self.panes:
            pane.fit_chrome()

    def action_edit_prompt(self) -> None:
        self.query_one("#prompt", Input).focus()

    def in_flight(self) -> bool:
        """A run (or a replay) is going on: Esc stops it."""
        running = self.session is not None and self.session.running or self.quality_keys.eval_running()
        return running or any(w.group == "run" and not w.is_finished for w in self.workers)

    def on_worker_state_changed(self, event) -> None:
        if event.worker.group == "run":  # "esc Stop" comes and goes with the run
            self.refresh_bindings()

    def action_leave(self) -> None:
        self.set_focus(None)

    async def action_cancel(self) -> None:
        if self.quality_keys.stop_eval():
            self.notify("Stopping the eval after the item in hand…")
        elif self.session is not None and self.session.running:
            await self.session.cancel()
            self.notify("Cancelled.")
        elif self.focused is not None:
            self.set_focus(None)

    # -- the key groups' keys: each group in its own module ----------------------------------------
    def action_vote(self, key: str) -> None:
        self.blind.vote(key)

    def action_blind(self) -> None:
        self.blind.toggle()

    def action_next_prompt(self) -> None:
        self.suite.next()

    def action_pick(self) -> None:
        self.model_keys.pick()

    def swap_model(self, slot: int, spec: str) -> None:
        """The picker's choice (tui/app/picker.py): pane ``slot`` gets ``spec``."""
        self.model_keys.swap(slot, spec)

    def action_pull(self) -> None:
        self.model_keys.pull()

    def action_score(self) -> None:
        self.quality_keys.score()

    def action_eval(self) -> None:
        self.quality_keys.accuracy()

    def action_fit(self) -> None:
        self.quality_keys.fit()

    def fit_section(self) -> dict | None:
        """``f``'s ``abtop.fit/1`` document while it is of the panes' models (for ``e`` and ``v``)."""
        return self.quality_keys.fit_section()

    def action_verdict(self) -> None:
        self.quality_keys.verdict()

    def action_export(self) -> None:
        self.results_keys.export()

    def action_screenshot(self) -> None:
        self.results_keys.screenshot()

    def action_texts(self) -> None:
        self.results_keys.texts()

    def action_results(self) -> None:
        self.results_keys.results()

    # -- what the key groups share (AppSurface) -----------------------------------------------------
    @property
    def battle_log(self) -> Path:
        """Where blind votes are appended, and read back for the win rates and the verdict."""
        return self.results_dir / LOG_NAME

    @property
    def names_hidden(self) -> bool:
        return self.blind.on

    def new_comparison(self) -> None:
        self._last_plan = None

    def results_models(self) -> list[dict]:
        """The export entries for the runs on screen (``export.model_entry``), each with its
        model's score and, in a suite, its prompt's id."""
        models = [export.model_entry(p.spec, p.loaded, list(p.runs)) for p in self.panes]
        self.quality_keys.add_scores(models)
        self.suite.tag(models)
        return models

    # -- mode --------------------------------------------------------------------------------------
    def action_working_set(self) -> None:
        self.working_set = not self.working_set
        self.notify(
            "working-set probe on: each run ends with one probe run per model (pages evicted, then "
            "counted per tensor group in the card; never a speed figure)."
            if self.working_set
            else "working-set probe off."
        )

    def action_mode(self, mode: str) -> None:
        self.mode = mode
        self.refresh_bindings()
        if self.session is not None and self.session.running:
            self.notify(f"{mode} mode from the next run.")
            return
        what = "both at once, cores split" if mode == "race" else "one at a time, all cores each"
        self.notify(f"{mode} mode: {what}.")
        if self.session is not None:
            self._apply_mode(mode)

    @work(group="mode", exit_on_error=False)
    async def _apply_mode(self, mode: str) -> None:
        await self.models_loaded.wait()  # a placement made mid-load would be undone by the load
        async with self.engine:
            if self.session is not None and self.session.mode != mode:
                await self.session.set_mode(mode)
            if self.mode == mode:
                self._show_mode(mode)
                self._say_shared_cores()

    def _show_mode(self, mode: str) -> None:
        for pane in self.panes:
            pane.show_mode(mode)

    def _say_shared_cores(self) -> None:
        """Race mode with more local models than cores: say what its figures mean (after the load
        and on m)."""
        session = self.session
        if self.mode == "race" and session is not None:
            shared = race_shares_cores([b.local_process and ok for b, ok in zip(session.backends, session.alive, strict=True)])
            if shared:
                self.notify(shared[:1].upper() + shared[1:] + " m switches.", severity="warning", timeout=12)

    def export_params(self, runs: int | None = None) -> dict:
        """The ``params`` of an export or a recording: prompt, sampling, mode, runs."""
        n = self.n_runs if runs is None else runs
        return export.run_params(self.prompt, self.params, runs=n, warmup=self.n_warmup, mode=self.mode, n_ctx=self.n_ctx)

    async def action_quit(self, _where: str = "") -> None:
        """``_where``: "footer" for the binding the footer lists (see FOOTER_ROOM)."""
        await self._close()
        self.exit()

    async def action_shutdown(self) -> None:
        """Ctrl+C: quit from anywhere, the prompt included."""
        await self.action_quit()

    # -- frames: drawing on demand ------------------------------------------------------------------
    def _show_streaming(self) -> None:
        """Once no model reads its prompt any more: the ends deferred meanwhile, the panes'
        borders (already drawn by ``_before_turn`` in a session's runs), and the held frames."""
        with _teardown_safe(self):
            if any(pane.in_prompt for pane in self.panes):
                return
            self._prompting = False
            self._drain()
            for pane in self.panes:
                pane.show_streaming()
            self._release_frames()

    async def _before_turn(self, slots: list[int]) -> None:
        """Before the models in ``slots`` start (``Session.before_turn``), while none computes: the
        last turn's end (its figures, the card, a relayout), the footer's "esc Stop" (a recompose,
        asked when the run's worker started) and these panes' borders (a restyle each) are drawn
        now, and Textual's work for them is awaited. Drawn at a model's first token they cost it
        ~40 ms of a core (``perf sched``) in the window its gen t/s times; in its prompt they would
        fall in TTFT's. The frames in a turn then draw only text and readings."""
        with _teardown_safe(self):
            self._drain()
            for slot in slots:
                self.panes[slot].show_turn()
            self._release_frames()
        await settled(self)
        gcpolicy.collect_now()

    def _hold_frames(self) -> None:
        """No frame while a model reads its prompt (at most ``HOLD_S``): see ``LeanScreen.hold``."""
        if isinstance(self.screen, LeanScreen):
            self.screen.hold(self.HOLD_S, on_timeout=self._want_frame)

    def _release_frames(self) -> None:
        """The screen's frames, held while the models read their prompts."""
        if isinstance(self.screen, LeanScreen):
            self.screen.release()
        self._want_frame()  # what arrived while held: a frame skipped it (``_frame``)

    def _want_frame(self, at: float | None = None) -> None:
        """Ask for a ``_frame``: at once, or at the loop time ``at`` (a tok/s tick).

        Frames ride on the wake-ups that brought what they draw. A worker sends its tokens every
        1/FLUSH_HZ s, right after a token is made; a frame drawn in that wake-up (``call_soon``:
        before the loop sleeps again) adds no wake-up of its own. A timer of the app's would wake
        it at any moment of a graph: with a model on every core (llama.cpp's threads meet at a
        barrier after each op), each such wake-up cost the model ~2.5 ms on this 2-core box, and a
        20 Hz frame timer 15 % of a 135M model's speed (benchmarks/tui_vs_bench.py). What a frame
        itself costs stalls the model as long (~1.3 ms of a core while the model streams through
        the caches), hence 10 frames a second, not 20. So a frame is drawn when something arrives
        at least MIN_GAP after the last one; what arrives sooner waits for the next arrival, and a
        timer (two batches later than that) only stands in for an arrival that does not come (a
        model that stalls; a run's last tick). The samplers' readings arrive on a grid of whole
        intervals, and the tok/s ticks fall on the same grid: a reading, its tick and the text
        share a frame."""
        loop = self.loop
        if loop is None:
            return
        now = loop.time()
        due = max(self._last_frame + self.MIN_GAP, now if at is None else at)
        if due <= now:
            if not self._frame_soon:
                if self._frame_at is not None:
                    self._frame_at.cancel()
                self._frame_soon = True
                self._frame_at, self._frame_when = loop.call_soon(self._frame), now
            return
        if self._frame_soon:
            return  # a frame in this wake-up asks again for what it leaves
        fallback = due + 2 / self.FLUSH_HZ  # the next batch of tokens comes well before this
        if self._frame_at is not None:
            if self._frame_when <= fallback:
                return
            self._frame_at.cancel()
        self._frame_at, self._frame_when = loop.call_at(fallback, self._frame), fallback

    def _frame(self) -> None:
        """Draw what changed: the text that arrived (every pane at once), and each ``interval``
        the live tok/s bar and stats line, while a pane has a run whose figures still move."""
        self._frame_at = None
        self._frame_soon = False
        stack = self._screen_stack
        screen = stack[-1] if stack and isinstance(stack[-1], LeanScreen) else None
        if screen is not None and screen.held:  # a model reads its prompt: no work on its cores
            return  # its first token, or the hold's end (``_hold_frames``), asks again
        assert self.loop is not None
        t = self._last_frame = self.loop.time()
        with _teardown_safe(self), lean_frame():
            self._flush_panes(t)
            if screen is not None:  # Textual's way would post an Update per widget
                screen.draw_now()

    def _flush_panes(self, t: float) -> None:
        """Each pane's new text and readings, and its tok/s tick when one is due; the next tick asked."""
        for pane in self.panes:
            pane.flush()
        if self._host.riding:
            self._host.due(t)
        ticking = [pane for pane in self.panes if pane.ticking]
        if not ticking:
            self._next_tick = None
            return
        if self._next_tick is None or t >= self._next_tick - 1e-3:
            if self._next_tick is not None:
                for pane in ticking:
                    pane.tick()
            self._next_tick = (math.floor(t / self.interval + 1e-3) + 1) * self.interval
        if any(pane.ticking for pane in self.panes):
            self._want_frame(self._next_tick)

    def action_help(self, _where: str = "") -> None:
        """``?``: every key on one screen (``_where``: as ``action_quit``'s)."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def check_action(self, action: str, parameters) -> bool | None:
        if isinstance(self.screen, HelpScreen):
            return action in OPEN_OVER_HELP
        own = next((key for screen, key in RESULTS_SCREENS.items() if isinstance(self.screen, screen)), None)
        if own is not None and action in CLOSED_OVER_RESULTS:
            return action == own
        typing = isinstance(self.focused, Input)
        if action in ("help", "quit") and parameters == ("footer",):
            return not typing and self.size.width >= FOOTER_ROOM
        if action == "cancel":
            return self.in_flight()
        if action == "mode":  # show the binding that names the current mode; dim it while typing
            return False if parameters and parameters[0] == self.mode else (None if typing else True)
        if typing and action in CLOSED_WHILE_TYPING:
            return False
        if action == "pick":  # refused mid-run anyway: "esc Stop" takes its place
            return not self.in_flight()
        if action == "vote":  # the footer offers the vote keys only while a vote is open
            return self.blind.can_vote()
        if action == "next_prompt":  # only with a suite
            return bool(self.suite.prompts)
        if self.blind.battle is not None and action in NAME_THE_MODELS:
            return False  # after the vote
        return True


@contextlib.contextmanager
def _teardown_safe(app: App):
    """On the way out Textual removes a pane's widgets while a timer or a sampler may still fire:
    a lookup that finds nothing then is no error (the hooks still get the event). While the app
    runs, it is one, and is raised."""
    try:
        yield
    except NoMatches:
        if app.is_running:
            raise


def app_for(args: argparse.Namespace) -> ABTopApp:
    """The app the command line asks for (options already checked). One model runs alone, in
    one pane: a partner added unasked would be a comparison nobody chose."""
    from tui.cli.options import backend_options, default_prompt, prompt_list

    specs = list(args.models) or list(DEFAULT_PAIR)
    return ABTopApp(
        specs,
        args.prompt or (prompt_list(args)[0].text if args.prompts else default_prompt(args)),
        GenParams(max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed),
        mode=args.mode,
        n_ctx=args.ctx,
        threads=args.threads,
        interval=args.interval,
        autostart=args.prompt is not None,
        record=args.record,
        runs=args.runs,
        warmup=args.warmup,
        blind=args.blind,
        prompts=prompt_list(args) if args.prompts else None,
        results_dir=getattr(args, "results", None) or export.DEFAULT_DIR,
        working_set=args.working_set,
        engine_options={k: v for k, v in backend_options(args).items() if k != "n_ctx"},
    )


def run_app(args: argparse.Namespace) -> int:
    from tui.cli.options import check_run_options, write_twins

    problem = check_run_options(args)
    if problem:
        print(safe(problem), file=sys.stderr)
        return 2
    if args.blind and len(args.models) == 1:
        print("abtop: --blind compares two models; give a second one (or leave both out for the bundled pair).",
              file=sys.stderr)  # fmt: skip
        return 2
    problem = write_twins(args.models)  # with its progress bar, before the screen is taken
    if problem:
        print(safe(problem), file=sys.stderr)
        return 2
    problem = no_terminal()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    app = app_for(args)

    def kill_children() -> None:
        for b in app.session.backends if app.session is not None else ():
            b.kill_now()

    def request_exit() -> None:
        if app.loop is not None:
            app.loop.call_soon_threadsafe(app.exit)

    Lifeline(kill_children, request_exit).install()
    try:
        app.run()
    finally:
        kill_children()  # an abnormal exit: leave no worker behind
    return app.return_code or 0


__all__ = ["ABTopApp", "app_for", "run_app"]
