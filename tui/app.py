"""The abtop Textual app: two panes streaming the same prompt, a prompt bar, live metrics."""

from __future__ import annotations

import argparse
import asyncio
import signal

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.widgets import Footer, Input

from backends.base import Backend, BackendError, GenParams
from backends.catalog import DEFAULT_PAIR, make_backend
from backends.events import Event, Failed
from backends.session import RunPlan, Session

from .widgets.card import CardPanel
from .widgets.pane import ModelPane

NARROW = 120  # below this many columns the panes stack


class ABTopApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "abtop"
    BINDINGS = [
        Binding("enter", "run", "Run", show=True),
        Binding("escape", "cancel", "Cancel"),
        Binding("r", "rerun", "Rerun"),
        Binding("slash", "edit_prompt", "Prompt"),
        Binding("q", "quit", "Quit"),
        Binding("c", "toggle_card", "Card"),
        Binding("ctrl+c", "shutdown", "Quit", show=False, priority=True),
    ]

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
    ) -> None:
        super().__init__()
        self.specs = specs
        self.prompt = prompt
        self.params = params
        self.mode = mode
        self.n_ctx = n_ctx
        self.threads = threads
        self.interval = interval
        self.autostart = autostart
        self.record_path = record
        self.session: Session | None = None
        self.panes: list[ModelPane] = []
        self.models_loaded = asyncio.Event()
        self.run_finished = asyncio.Event()
        """Set each time a run of both panes ends (tests and scripts wait on it)."""
        self.hooks: list = []
        """Extra ``emit(slot, event)`` listeners: the recorder, tests."""
        self._recorder = None

    def compose(self) -> ComposeResult:
        with Container(id="panes"):
            for i, spec in enumerate(self.specs):
                pane = ModelPane(spec, i, id=f"pane-{i}")
                self.panes.append(pane)
                yield pane
        yield Input(value=self.prompt, placeholder="prompt — Enter runs both models", id="prompt")
        yield Footer()

    # -- lifecycle ---------------------------------------------------------------------------
    def on_mount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):  # SIGHUP: a dropped SSH link
            try:
                loop.add_signal_handler(sig, self.exit)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        self._layout(self.size.width)
        self.set_interval(1 / 20, self._flush)
        self.set_interval(self.interval, self._tick)
        self.query_one("#prompt", Input).focus()
        self._load()

    def on_resize(self, event) -> None:
        self._layout(event.size.width)

    def _layout(self, width: int) -> None:
        self.query_one("#panes").set_class(width < NARROW, "-stacked")

    async def on_unmount(self) -> None:
        await self._close()

    async def _close(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            await session.close()
        if self._recorder is not None:
            self.hooks.remove(self._recorder.write)
            self._recorder.close()
            self._recorder = None

    # -- engine ----------------------------------------------------------------------------------
    def emit(self, slot: int, ev: Event) -> None:
        self.panes[slot].handle(ev)
        for hook in self.hooks:
            hook(slot, ev)

    @work(group="load", exit_on_error=False)
    async def _load(self) -> None:
        backends: list[Backend | None] = []
        for i, spec in enumerate(self.specs):
            try:
                backends.append(await asyncio.to_thread(make_backend, spec, n_ctx=self.n_ctx))
            except BackendError as exc:
                self.emit(i, Failed(str(exc)))
                backends.append(None)
        live = [(i, b) for i, b in enumerate(backends) if b is not None]
        slots = [i for i, _ in live]
        if self.record_path:
            from .record import Recorder

            self._recorder = Recorder(self.record_path, self.specs)
            self.hooks.append(self._recorder.write)
        self.session = Session(
            [b for _, b in live],
            lambda k, ev: self.emit(slots[k], ev),
            mode=self.mode,
            threads=self.threads,
            interval=self.interval,
        )
        await self.session.load()
        self.models_loaded.set()
        if self.autostart:
            self.action_run()

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
        if not any(self.session.alive):
            self.notify("No model is loaded; see the panes.", severity="error")
            self.run_finished.set()
            return
        self.prompt = prompt
        self.set_focus(None)
        self._run(RunPlan(prompt, self.params, mode=self.mode))

    @work(group="run", exclusive=True, exit_on_error=False)
    async def _run(self, plan: RunPlan) -> None:
        assert self.session is not None
        self.run_finished.clear()
        try:
            await self.session.run(plan)
        finally:
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

    def action_edit_prompt(self) -> None:
        self.query_one("#prompt", Input).focus()

    async def action_cancel(self) -> None:
        if self.session is not None and self.session.running:
            await self.session.cancel()
            self.notify("Cancelled.")
        elif self.focused is not None:
            self.set_focus(None)

    async def action_quit(self) -> None:
        await self._close()
        self.exit()

    async def action_shutdown(self) -> None:
        """Ctrl+C: quit from anywhere, the prompt included."""
        await self.action_quit()

    # -- timers ------------------------------------------------------------------------------------
    def _flush(self) -> None:
        for pane in self.panes:
            pane.flush()

    def _tick(self) -> None:
        for pane in self.panes:
            pane.tick()

    def check_action(self, action: str, parameters) -> bool | None:
        # Letters belong to the prompt while it has focus; Enter there submits the prompt.
        if action in ("rerun", "quit", "edit_prompt", "toggle_card") and isinstance(self.focused, Input):
            return False
        return True


def run_app(args: argparse.Namespace) -> int:
    from .cli import DEFAULT_PROMPT

    specs = list(args.models) or list(DEFAULT_PAIR)
    if len(specs) == 1:
        specs.append(DEFAULT_PAIR[1] if specs[0] != DEFAULT_PAIR[1] else DEFAULT_PAIR[0])
    app = ABTopApp(
        specs[:2],
        args.prompt or DEFAULT_PROMPT,
        GenParams(max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed),
        mode=args.mode,
        n_ctx=args.ctx,
        threads=args.threads,
        interval=args.interval,
        autostart=args.prompt is not None,
        record=args.record,
    )
    try:
        app.run()
    finally:
        if app.session is not None:  # an abnormal exit: leave no worker behind
            for b in app.session.backends:
                kill = getattr(b, "kill_now", None)
                if kill:
                    kill()
    return app.return_code or 0


__all__ = ["ABTopApp", "run_app"]
