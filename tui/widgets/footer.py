"""Textual's Footer, without its leak.

Each time the bindings change (every run's start and end: "esc Stop" comes and goes) the Footer
recomposes, and each new ``FooterKey`` is data-bound to the Footer's ``compact``. Textual drops a
closed key's binding only when ``compact`` changes, which it never does here, so every key the
Footer ever showed stayed alive with its styles: ~0.5 MB a run, growing without end
(Textualize/textual#6666, open). After each recompose the bindings of closed keys are dropped.
"""

from __future__ import annotations

from textual.widgets import Footer as _TextualFooter


class Footer(_TextualFooter):
    async def recompose(self) -> None:
        await super().recompose()
        watchers: dict = getattr(self, "__watchers", {})  # textual.reactive._watch's registry
        for bound in watchers.values():
            bound[:] = [(node, callback) for node, callback in bound if not (node._closing or node._closed)]
