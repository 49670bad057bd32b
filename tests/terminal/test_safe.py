"""tui.text.safe: outside text is drawn as what it says, never acted on by the terminal."""

from __future__ import annotations

from tui.text.safe import ONE_FOR_ONE, STREAM, escape_controls, plain, safe

HOSTILE = "\x1b[2J\x1b[31mRED\x07 \x1b]0;PWNED\x07 \x1b[?1049l end"
"""The issue's prompt: clear screen, red, BEL, set the title, leave the alternate screen."""


def _no_controls(s: str) -> bool:
    return not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in s)


def test_escape_sequences_are_shown_not_obeyed():
    shown = safe(HOSTILE)
    assert _no_controls(shown)
    assert shown == "␛[2J␛[31mRED␇ ␛]0;PWNED␇ ␛[?1049l end"


def test_line_breaks_are_a_marker_in_one_line_places_and_kept_elsewhere():
    assert safe("Line one.\nLine two.") == "Line one.⏎Line two."
    assert safe("a\r\nb\rc\u2028d\x85e") == "a⏎b⏎c⏎d⏎e"
    assert safe("a\r\nb\x1bc\td", one_line=False) == "a\nb␛c    d"
    assert safe("\x9b2J") == "\ufffd2J"  # an 8-bit CSI


def test_one_for_one_keeps_offsets():
    for s in (HOSTILE, "Line one.\nLine two.\r\n\tend"):
        t = s.translate(ONE_FOR_ONE)
        assert len(t) == len(s) and _no_controls(t)


def test_plain_is_never_markup():
    assert plain("[red]x[/]\x1b").plain == "[red]x[/]␛"


def test_stream_table_drops_controls_keeps_lines():
    assert "a\tb\x1b[2Jc\rd\x07e\nf\x9b".translate(STREAM) == "a    b[2Jcde\nf"


def test_exports_escape_controls_visibly():
    out = escape_controls(HOSTILE + "\nnext\tcol\r\n")
    assert "\x1b" not in out and "\x07" not in out
    assert out == "\\x1b[2J\\x1b[31mRED\\x07 \\x1b]0;PWNED\\x07 \\x1b[?1049l end\nnext\tcol\r\n"
