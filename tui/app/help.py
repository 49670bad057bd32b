"""``?``: every key abtop answers to, on one screen (Esc, q or ? closes it)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from tui.text.safe import plain
from tui.widgets.footer import Footer

KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Running", (
        ("Enter", "run both models on the prompt (again); r does the same"),
        ("Esc", "cancel the runs, or leave the prompt"),
        ("/", "edit the prompt (a click works too); Enter runs it, Esc leaves it"),
        ("m", "race (both at once, cores split) <-> alternate (one at a time, all cores)"),
        ("n", "next prompt of a --prompts suite"),
        ("p", "pull a model Ollama does not have yet (offered in its pane)"),
        ("w", "working-set probe: which of the model's pages a run reads"),
        ("o", "pick another model for pane A or B (also in Ctrl+P's palette)"),
    )),
    ("Looking", (
        ("c", "show or hide the model cards (a compact pane's header and stats are there)"),
        ("z", "zoom the selected pane (Tab or a click selects; else the first) to the screen; z: both"),
        ("g", "plots: tokens/s over time, medians with min-max whiskers"),
        ("t", "each model's whole text, side by side, scrollable (Tab: the other one)"),
        ("S", "bits per byte of the bundled text, for the loaded models"),
        ("a", "accuracy on ARC-Easy, PIQA, HellaSwag, WinoGrande (25 items each; Esc stops)"),
        ("f", "the least RAM each model needs at this context, predicted (abtop fit; nothing loaded)"),
        ("v", "the verdict: speed, memory, bits per byte, accuracy, least RAM and votes side by side"),
        ("?", "this help"),
    )),
    ("Keeping", (
        ("e", "export the runs on screen as JSON, CSV and Markdown (./abtop-results/)"),
        ("s", "save an SVG screenshot (./abtop-results/)"),
    )),
    ("Blind votes", (
        ("b", "blind mode: names hidden, sides drawn per run"),
        ("1", "A is better"),
        ("2", "B is better"),
        ("=", "a tie"),
        ("x", "both are bad"),
    )),
    ("Leaving", (
        ("q", "quit (closes every model's process)"),
        ("Ctrl+C", "quit from anywhere, the prompt included"),
        ("Ctrl+Z", "suspend to the shell (fg brings it back, the models loaded)"),
    )),
)  # fmt: skip
"""(section, ((key, what it does), …)); tests check that every binding of the app is here."""


_NAMES = {"slash": "/", "equals_sign": "=", "question_mark": "?", "escape": "Esc", "enter": "Enter", "ctrl+c": "Ctrl+C",
          "ctrl+z": "Ctrl+Z"}


def help_text(bindings=()) -> str:
    """The help; a binding of ``bindings`` that ``KEYS`` does not explain is listed under
    "Other" with its footer word, so the screen never leaves a key out."""
    known = {key for _, rows in KEYS for key, _ in rows}
    other = {}
    for b in bindings:
        key = _NAMES.get(b.key, b.key)
        if key not in known and key not in other:
            other[key] = b.description
    sections = [*KEYS, ("Other", tuple(other.items()))] if other else list(KEYS)
    width = max(len(key) for _, rows in sections for key, _ in rows)
    blocks = []
    for section, rows in sections:
        blocks.append("\n".join([section, *(f"  {key:<{width}}  {what}" for key, what in rows)]))
    blocks.append("The prompt starts unfocused, so letters are commands, as in top.")
    return "\n\n".join(blocks)


class HelpScreen(Screen):
    DEFAULT_CSS = """
    HelpScreen VerticalScroll { border: round $panel; border-title-color: $text; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("q", "close", "Back", show=False),
        Binding("question_mark", "close", "Back", show=False),
    ]

    def compose(self) -> ComposeResult:
        scroll = VerticalScroll()
        scroll.border_title = "abtop keys"
        with scroll:
            yield Static(plain(self.text, one_line=False))
        yield Footer(compact=True, show_command_palette=False)

    @property
    def text(self) -> str:
        return help_text(self.app.BINDINGS)

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()  # arrows and PgUp/PgDn scroll it at 80x24

    def action_close(self) -> None:
        self.dismiss(None)
