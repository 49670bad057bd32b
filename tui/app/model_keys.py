"""The keys that change which models are on screen: ``o`` (and Ctrl+P) picks a model for pane A or
B (``tui/app/picker.py``), ``p`` pulls a model the Ollama server lacks.

A mixin for ``ABTopApp``: it works through the session (``reload_failed``) under the app's engine
lock, so a pull never lands in the middle of a run or a placement.
"""

from __future__ import annotations

import asyncio

from textual import work
from textual.command import CommandPalette

from backends.base import BackendError
from backends.events import Failed

PULL_OFFER = "press p to pull it here"


class ModelKeys:
    session: object
    panes: list
    _slots: list[int]
    _engine: asyncio.Lock

    def action_pick(self) -> None:
        from tui.app.picker import ModelsProvider

        if not CommandPalette.is_open(self):
            self.push_screen(CommandPalette(providers=[ModelsProvider], placeholder="a model for pane A or B: type to search…"))

    def swap_model(self, slot: int, spec: str) -> None:
        """The picker's choice: pane ``slot`` gets ``spec``; the other pane goes on as it is."""
        if getattr(self, "blind", False):  # a new pane title would tell which model is which
            self.notify("Blind mode hides the names: b leaves it, then pick a model.")
            return
        if self.session is None or not self.models_loaded.is_set():
            self.notify("Models are still loading: pick again when they are.")
            return
        if self.session.running or self._engine.locked():
            self.notify("A run is in progress: Esc stops it, then pick again.")
            return
        if spec == self.specs[slot]:
            self.notify(f"Pane {'AB'[slot]} already has {spec}.")
            return
        self._swap(slot, spec)

    @work(group="swap", exclusive=True, exit_on_error=False)
    async def _swap(self, slot: int, spec: str) -> None:
        async with self._engine:
            pane = self.panes[slot]
            self.specs[slot] = spec
            pane.reset(spec)
            self._last_plan = None
            try:
                backend = await asyncio.to_thread(self.make_backend, spec)  # the app's: its engine options too
            except BackendError as exc:
                pane.handle(Failed(str(exc)))
                return
            self.offer_pulls([backend])
            if slot in self._slots:
                k = self._slots.index(slot)
            else:  # its first spec could not even be made: the session gains a model
                k = len(self.session.backends)
                self._slots.append(slot)
            if await self.session.replace(k, backend):
                self.notify(f"Pane {'AB'[slot]}: {spec} loaded; Enter runs both.")

    def offer_pulls(self, backends) -> None:
        """Each engine that can fetch a missing model says how to ask for it here."""
        for b in backends:
            if b is not None and b.can_pull:
                b.pull_offer = PULL_OFFER

    def action_pull(self) -> None:
        s = self.session
        todo = [k for k, b in enumerate(s.backends) if b.can_pull and b.missing and not s.alive[k]] if s else []
        if not todo:
            self.notify("No model is missing from its server: p pulls a model Ollama does not have.")
            return
        if self._engine.locked():
            self.notify("Still loading or running: p again when it is done.")
            return
        for k in todo:
            s.backends[k].pull = True
            self.panes[self._slots[k]].show_reloading("pulling…")
        self._pull()

    @work(group="pull", exclusive=True, exit_on_error=False)
    async def _pull(self) -> None:
        async with self._engine:
            back = await self.session.reload_failed()
        if back:
            self.notify("Pulled and loaded: Enter runs both.")
