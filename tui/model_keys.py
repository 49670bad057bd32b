"""The keys that change which models are on screen: ``p`` pulls a model the Ollama server lacks.

A mixin for ``ABTopApp``: it works through the session (``reload_failed``) under the app's engine
lock, so a pull never lands in the middle of a run or a placement.
"""

from __future__ import annotations

import asyncio

from textual import work

PULL_OFFER = "press p to pull it here"


class ModelKeys:
    session: object
    panes: list
    _slots: list[int]
    _engine: asyncio.Lock

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
