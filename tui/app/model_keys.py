"""The keys that change which models are on screen: ``o`` (and Ctrl+P) picks a model for pane A or
B (``tui/app/picker.py``), ``p`` pulls a model the Ollama server lacks.

A controller the app owns (``app.model_keys``; it uses the app through ``AppSurface``). It works
through the session (``replace``, ``reload_failed``) under the app's engine lock, so a swap or a
pull never lands in the middle of a run or a placement, and builds each backend with the app's
``make_backend``: a picked model gets the same context size and engine options as the first two.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

from textual.command import CommandPalette

from backends.base import BackendError
from backends.events import Failed
from tui.app.picker import PANES

if TYPE_CHECKING:
    from tui.app.surface import AppSurface

PULL_OFFER = "press p to pull it here"


class ModelKeys:
    def __init__(self, app: AppSurface) -> None:
        self.app = app

    def pick(self) -> None:
        """``o``: the picker alone (Ctrl+P holds it beside Textual's commands)."""
        from tui.app.picker import ModelsProvider

        app = self.app
        if not CommandPalette.is_open(app):
            app.push_screen(CommandPalette(providers=[ModelsProvider], placeholder="a model for pane A or B: type to search…"))

    def swap(self, slot: int, spec: str) -> None:
        """The picker's choice: pane ``slot`` gets ``spec``; the other pane goes on as it is."""
        app = self.app
        if app.names_hidden:  # a new pane title would tell which model is which
            app.notify("Blind mode hides the names: b leaves it, then pick a model.")
            return
        if app.session is None or not app.models_loaded.is_set():
            app.notify("Models are still loading: pick again when they are.")
            return
        if app.session.running or app.engine.locked():
            app.notify("A run is in progress: Esc stops it, then pick again.")
            return
        if spec == app.specs[slot]:
            app.notify(f"Pane {PANES[slot]} already has {spec}.")
            return
        app.run_worker(partial(self._swap, slot, spec), group="swap", exclusive=True, exit_on_error=False)

    async def _swap(self, slot: int, spec: str) -> None:
        app = self.app
        async with app.engine:
            session = app.session
            assert session is not None
            pane = app.panes[slot]
            app.specs[slot] = spec
            pane.reset(spec)
            app.new_comparison()
            try:
                backend = await asyncio.to_thread(app.make_backend, spec)
            except BackendError as exc:
                pane.handle(Failed(str(exc)))
                return
            offer_pulls([backend])
            if slot in app.slots:
                k = app.slots.index(slot)
            else:  # its first spec could not even be made: the session gains a model
                k = len(session.backends)
                app.slots.append(slot)
            if await session.replace(k, backend):
                app.notify(f"Pane {PANES[slot]}: {spec} loaded; Enter runs both.")

    def pull(self) -> None:
        """``p``: pull each model its Ollama server lacks, then load it."""
        app = self.app
        s = app.session
        todo = [k for k, b in enumerate(s.backends) if b.can_pull and b.missing and not s.alive[k]] if s else []
        if not todo:
            app.notify("No model is missing from its server: p pulls a model Ollama does not have.")
            return
        if app.engine.locked():
            app.notify("Still loading or running: p again when it is done.")
            return
        for k in todo:
            s.backends[k].pull = True
            app.panes[app.slots[k]].show_reloading("pulling…")
        app.run_worker(self._pull, group="pull", exclusive=True, exit_on_error=False)

    async def _pull(self) -> None:
        app = self.app
        async with app.engine:
            assert app.session is not None
            back = await app.session.reload_failed()
        if back:
            app.notify("Pulled and loaded: Enter runs both.")


def offer_pulls(backends) -> None:
    """Each engine that can fetch a missing model says how to ask for it here."""
    for b in backends:
        if b is not None and b.can_pull:
            b.pull_offer = PULL_OFFER
