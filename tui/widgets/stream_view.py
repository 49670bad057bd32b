"""Streaming text that stays cheap however long it grows."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget


class StreamView(Widget):
    """The tail of a growing text, wrapped to the widget and bottom-aligned.

    ``append`` is called in batches at frame rate, never per token; ``render`` wraps only the
    tail that can fit on screen, so a redraw costs the same at token 10 and token 10,000.
    """

    DEFAULT_CSS = """
    StreamView { height: 1fr; padding: 0 1; }
    StreamView.-error { color: $error; }
    StreamView.-note { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._parts: list[str] = []
        self._length = 0
        self._message: Text | None = None

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def clear(self) -> None:
        self._parts = []
        self._length = 0
        self._message = None
        self.refresh()

    def append(self, text: str) -> None:
        if text:
            self._parts.append(text)
            self._length += len(text)
            if len(self._parts) > 256:  # keep joins cheap
                self._parts = ["".join(self._parts)]
            self.refresh()

    def set_message(self, message: str | None, style: str = "") -> None:
        """A line under the text (an error, a note such as 'waiting')."""
        self._message = Text(message, style=style) if message else None
        self.refresh()

    def render(self) -> RenderableType:
        width = max(self.content_region.width, 1)
        height = max(self.content_region.height, 1)
        budget = width * height * 2
        tail = self.text[-budget:] if self._length > budget else self.text
        body = Text(tail)
        if self._message is not None:
            body.append("\n" if tail and not tail.endswith("\n") else "")
            body.append_text(self._message)
        lines = body.wrap(self.app.console, width, overflow="fold")
        if len(lines) > height:
            lines = lines[len(lines) - height :]
        return Text("\n").join(lines)
