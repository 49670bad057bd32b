"""The prompt bar: an ``Input`` that draws its value safely (``tui.safe``).

A prompt given with ``-p`` may hold anything the shell passed: an escape sequence, a newline.
Textual's ``Input`` would draw it raw (the terminal then clears the screen or sets its title; a
newline overwrites the footer). The value itself is kept as typed, since it is what the models
get; only what is drawn changes, one character for one so the cursor and selection stay put.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Input

from tui.safe import ONE_FOR_ONE


class PromptInput(Input):
    @property
    def _value(self) -> Text:  # Input's own renders ``Text(self.value)``: controls and all
        return Text(self.value.translate(ONE_FOR_ONE), no_wrap=True, overflow="ignore", end="")
