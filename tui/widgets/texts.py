"""The whole text of each model's latest run, side by side and scrollable (key ``t``).

A pane shows the tail of its text as it streams; reading and comparing the two answers (the
quality half of "which model should this box run") needs all of it.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from tui.text.safe import STREAM, plain
from tui.widgets.footer import Footer


class TextScreen(Screen):
    DEFAULT_CSS = """
    TextScreen #texts { layout: horizontal; height: 1fr; }
    TextScreen #texts.-stacked { layout: vertical; }
    TextScreen VerticalScroll { width: 1fr; height: 1fr; border: round $panel; border-title-color: $text; }
    TextScreen VerticalScroll:focus-within, TextScreen VerticalScroll:focus { border: round $accent; }
    TextScreen Static { padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("t", "close", "Back", show=False),
        Binding("tab", "app.focus_next", "Other model"),
    ]

    def __init__(self, texts: list[tuple[str, str]], narrow: bool = False) -> None:
        super().__init__()
        self.texts = texts
        """(model name, its latest run's whole text) per pane."""
        self.narrow = narrow

    def compose(self) -> ComposeResult:
        with Container(id="texts", classes="-stacked" if self.narrow else ""):
            for name, text in self.texts:
                scroll = VerticalScroll()
                scroll.border_title = plain(f"{name} · {len(text):,} chars")
                with scroll:
                    yield Static(Text(text.translate(STREAM) or "(no text yet)"))
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query(VerticalScroll).first().focus()  # arrows, PgUp/PgDn scroll it; Tab the other

    def action_close(self) -> None:
        self.dismiss(None)
