"""Textual's Footer, without its leak.

Each time the bindings change (every run's start and end: "esc Stop" comes and goes) the Footer
recomposes, and each new ``FooterKey`` is data-bound to the Footer's ``compact``. Textual drops a
closed key's binding only when ``compact`` changes, which it never does here, so every key the
Footer ever showed stayed alive with its styles: ~0.5 MB a run, growing without end
(Textualize/textual#6666, open). After each recompose the bindings of closed keys are dropped.

``hold``: a recompose (with the relayout and full repaints it brings, ~40 ms) waits until
``release``. The app holds it while the models read their prompt: a run's start changes the
bindings ("esc Stop"), and redrawing the footer then would land in the window TTFT times.
"""

from __future__ import annotations

from textual.widgets import Footer as _TextualFooter


class Footer(_TextualFooter):
    _held = False
    _owed = False

    def hold(self) -> None:
        self._held = True

    def release(self) -> None:
        """Recompose now if the bindings changed while held."""
        self._held = False
        if self._owed:
            self._owed = False
            if self.is_attached:  # from the footer's own message loop, as upstream: its keys bind to it
                self.call_later(self.call_after_refresh, self.recompose)

    def bindings_changed(self, screen) -> None:
        if self._held:
            self._bindings_ready = True  # as upstream; the recompose itself waits for ``release``
            self._owed = True
            return
        super().bindings_changed(screen)

    async def recompose(self) -> None:
        if self._held:  # one asked for before the hold (a binding change still in the queue) waits too
            self._owed = True
            return
        await super().recompose()
        watchers: dict = getattr(self, "__watchers", {})  # textual.reactive._watch's registry
        for bound in watchers.values():
            bound[:] = [(node, callback) for node, callback in bound if not (node._closing or node._closed)]
