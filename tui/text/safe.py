"""Outside text (prompts, model names, server errors, file names) made safe to draw or to write.

A terminal obeys the control characters in what it is sent: ESC starts a sequence that can clear
the screen, leave the alternate screen or set the window title, BEL rings, CR and LF move the
cursor. Text a user, a server or a model supplied therefore never reaches a widget as it is:

- ``safe()`` for the screen: every C0/C1 control shown as a visible picture (ESC as ``␛``), one
  character for one, so an escape sequence can be read but never acts; a line break is ``⏎`` in
  the one-line places (prompt bar, titles, headers, labels), kept where text may wrap; tabs as
  spaces. Widgets get it as plain text (``plain()``), never parsed as Textual markup.
- ``STREAM``: a ``str.translate`` table for a model's streaming output (StreamView, the ``t``
  screen), which drops the controls instead, as a terminal program would show them.
- ``escape_controls()`` for CSV and Markdown files, which keep the text but no raw ESC/BEL byte:
  a control is written as ``\\x1b``; line breaks and tabs stay (CSV quotes them).
"""

from __future__ import annotations

from textual.content import Content

NEWLINE_MARK = "⏎"
"""What a line break looks like in a one-line place."""

_BREAKS = ("\r\n", "\n", "\r", "\x85", "\u2028", "\u2029")
"""Line breaks a terminal (or Rich) would act on; ``\\x85`` is C1's NEL."""

_C0 = {c: chr(0x2400 + c) for c in range(32)} | {0x7F: "\u2421"}
"""Control pictures: U+2400 ``␀`` … U+241B ``␛`` … U+241F, and ``␡`` for DEL."""
_C1 = {c: "\ufffd" for c in range(0x80, 0xA0)}
"""C1 controls (``\\x9b`` is an 8-bit CSI) have no pictures: the replacement character."""
_PICTURES = str.maketrans(_C0 | _C1)
_PICTURES_BUT_LF = str.maketrans({c: p for c, p in (_C0 | _C1).items() if c != 10})

ONE_FOR_ONE = str.maketrans(_C0 | _C1 | {9: " ", 10: NEWLINE_MARK, 13: NEWLINE_MARK, 0x85: NEWLINE_MARK, 0x2028: NEWLINE_MARK, 0x2029: NEWLINE_MARK})
"""``safe`` one character for one, for an editable field whose cursor indexes the raw value."""

STREAM = str.maketrans({c: None for c in range(32) if c != 10} | {9: "    ", 127: None} | dict.fromkeys(_C1))
"""Model output on screen: tabs as spaces, newlines kept, every other control dropped."""


def safe(text: object, *, one_line: bool = True, tab: str = "    ") -> str:
    """``text`` as a string that draws as what it says and moves no cursor.

    ``one_line``: line breaks become ``⏎`` (a prompt bar, a title); else they stay ``\\n``.
    ``tab``: what a tab becomes (one space keeps an editable field's offsets one to one).
    """
    s = text if isinstance(text, str) else str(text)
    for brk in _BREAKS:
        s = s.replace(brk, NEWLINE_MARK if one_line else "\n")
    return s.replace("\t", tab).translate(_PICTURES if one_line else _PICTURES_BUT_LF)


def plain(text: object, *, one_line: bool = True) -> Content:
    """Safe text as Textual ``Content``: drawn as it is, ``[`` and all, never read as markup."""
    return Content(safe(text, one_line=one_line))


_ESCAPED = str.maketrans({c: f"\\x{c:02x}" for c in [*range(32), *range(0x7F, 0xA0)] if c not in (9, 10, 13)})


def escape_controls(text: str) -> str:
    """Text for a CSV or Markdown file: each control but newline, CR and tab as ``\\xNN``."""
    return text.translate(_ESCAPED)
