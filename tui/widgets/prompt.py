"""The prompt bar: an ``Input`` that draws its value safely (``tui.text.safe``) and shows its start.

A prompt given with ``-p`` may hold anything the shell passed: an escape sequence, a newline.
Textual's ``Input`` would draw it raw (the terminal then clears the screen or sets its title; a
newline overwrites the footer). The value itself is kept as typed, since it is what the models
get; only what is drawn changes, one character for one so the cursor and selection stay put: a
line break is drawn as ``⏎``, a control character as its picture. Unfocused, the bar shows the
prompt's start and ends in ``…`` where the prompt goes on; focused (``/`` or a click) it scrolls
with the cursor (Home, End, arrows).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Input

from tui.text.safe import ONE_FOR_ONE

MORE = "…"
"""Drawn in the last cell of an unfocused bar whose prompt goes on past it."""


class PromptInput(Input):
    _drawing = False

    @property
    def _value(self) -> Text:  # Input's own renders ``Text(self.value)``: controls and all
        if self.password:
            return super()._value
        shown = self.value.translate(ONE_FOR_ONE)
        width = self.scrollable_content_region.width
        if self._drawing and not self.has_focus and 1 < width < len(shown):  # the bar is cut: say so
            shown = shown[: width - 1] + MORE
        return Text(shown, no_wrap=True, overflow="ignore", end="")

    def render_line(self, y: int):
        # Only what is drawn is cut: the virtual width and cursor cells still come from the whole value.
        self._drawing = True
        try:
            return super().render_line(y)
        finally:
            self._drawing = False

    def on_blur(self) -> None:
        self.cursor_position = 0  # back to the start, which is what the bar shows unfocused
        self.scroll_to(x=0, animate=False)
