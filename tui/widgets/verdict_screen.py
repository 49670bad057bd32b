"""The verdict screen (key ``v``): one row per question, a column per model, the better value
of each row marked — the table a person shows a teammate (``tui/text/verdict.py`` builds it)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from tui.text import verdict
from tui.text.safe import safe
from tui.widgets.footer import Footer


def verdict_table(cols: list[dict]) -> Table:
    t = Table(expand=True, show_lines=False, header_style="bold")
    t.add_column("question", ratio=2)
    for c in cols:
        t.add_column(Text(safe(c["name"])), ratio=2, justify="right")
    for question, cells in verdict.table(cols):
        t.add_row(question, *(Text(f"{cell} ✓", style="bold green") if good else Text(cell) for cell, good in cells))
    return t


class VerdictScreen(Screen):
    DEFAULT_CSS = """
    VerdictScreen VerticalScroll { height: 1fr; border: round $panel; border-title-color: $text; }
    VerdictScreen Static { padding: 0 1; }
    VerdictScreen #context { color: $text-muted; }
    """
    BINDINGS = [Binding("escape", "close", "Back"), Binding("v", "close", "Back", show=False)]

    def __init__(self, cols: list[dict], context: str) -> None:
        super().__init__()
        self.cols = cols
        self.context = context

    def compose(self) -> ComposeResult:
        scroll = VerticalScroll()
        scroll.border_title = "verdict · ✓ the better value of each row"
        with scroll:
            yield Static(verdict_table(self.cols), id="verdict")
            yield Static(safe(self.context, one_line=False), id="context", markup=False)
        yield Footer(compact=True, show_command_palette=False)

    def action_close(self) -> None:
        self.dismiss(None)
