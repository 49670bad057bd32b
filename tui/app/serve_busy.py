"""What a second browser tab of ``abtop serve`` gets: one sentence, not a second pair of models.

textual-serve starts one app process per websocket; each abtop would load both models again and
the two would fight for the same cores. ``abtop serve`` runs this instead while a session is open.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Static

BUSY = (
    "abtop is already open in another browser tab: one session at a time (each would load both "
    "models again and share the cores). Close that tab, then reload this one."
)


class BusyApp(App):
    CSS = "Screen { align: center middle; } Static { width: 72; padding: 1 2; border: round $warning; }"

    def compose(self) -> ComposeResult:
        yield Static(BUSY, markup=False)


if __name__ == "__main__":
    BusyApp().run()
