"""Textual's Footer, without its leak.

Each time the bindings change (every run's start and end: "esc Stop" comes and goes) the Footer
recomposes, and each new ``FooterKey`` is data-bound to the Footer's ``compact``. Textual drops a
closed key's binding only when ``compact`` changes, which it never does here, so every key the
Footer ever showed stayed alive with its styles: ~0.5 MB a run, growing without end
(Textualize/textual#6666, open). After each recompose the bindings of closed keys are dropped.

And it recomposes only when what it shows changed. Textual's recomposes at every bindings
signal (a focus change, each ``refresh_bindings``), mounting a dozen keys and relayouting the
screen (~10 ms at 160x45), where most signals leave every key as it was.
"""

from __future__ import annotations

from textual.widgets import Footer as _TextualFooter


class Footer(_TextualFooter):
    _shown: tuple | None = None
    """What the keys on screen were composed from (``_keys``)."""

    def _keys(self) -> tuple | None:
        """Everything ``compose`` reads: each binding, whether it is enabled, its tooltip."""
        if not self._bindings_ready or not self.is_attached:
            return None
        bindings = tuple((b.key, b.description, b.action, b.group, b.show, enabled, tooltip)
                         for _, b, enabled, tooltip in self.screen.active_bindings.values())  # fmt: skip
        return bindings, self.show_command_palette, self.compact

    async def recompose(self) -> None:
        keys = self._keys()
        if keys is not None and keys == self._shown and self.children:
            return  # the same keys, enabled alike: the footer on screen is the one it would compose
        self._shown = keys
        await super().recompose()
        watchers: dict = getattr(self, "__watchers", {})  # textual.reactive._watch's registry
        for bound in watchers.values():
            bound[:] = [(node, callback) for node, callback in bound if not (node._closing or node._closed)]
