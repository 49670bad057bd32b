"""A person's files (``--prompts``, ``--text``, battle logs, recordings): read whole as UTF-8 text
or refused in one sentence, and JSON Lines read a line at a time.

Every failure is a ``ValueError`` whose text is one sentence naming the file (and the line), so a
command prints it and exits 2, and a screen shows it, without a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def read_user_text(path: str | Path, label: str | None = None, *, kind: str = "text file", missing: str = "") -> str:
    """The file's text. ``label`` names it in the sentence (``--text notes.txt``; default the
    path), ``kind`` says what it should be ("text file"), ``missing`` what to do when it is not there."""
    label = label or str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{label}: no such file" + (f"; {missing}" if missing else "") + ".") from None
    except IsADirectoryError:
        raise ValueError(f"{label} is a folder; give a {kind}.") from None
    except UnicodeDecodeError:
        raise ValueError(f"{label}: not UTF-8 text, so not a {kind}.") from None
    except OSError as exc:
        raise ValueError(f"{label}: cannot read it ({exc.strerror or exc}).") from None


def loads(text: str) -> Any:
    """``json.loads``; JSON nested deeper than the parser recurses (``RecursionError``) is bad JSON
    like any other: ``ValueError``."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None


def json_lines(lines: list[str], name: str, shape: str, *, first: int = 1, cut_tail: bool = False) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of each line that is not blank, numbered from ``first``. A line that
    is not JSON is ``ValueError`` ("NAME line N: not JSON; SHAPE."), except, with ``cut_tail``, the
    last line: a writer killed mid-line leaves it cut short, and what came before is kept."""
    last = first + len(lines) - 1
    for no, line in enumerate(lines, start=first):
        if not line.strip():
            continue
        try:
            value = loads(line)
        except ValueError:
            if cut_tail and no == last:
                return
            raise ValueError(f"{name} line {no}: not JSON; {shape}.") from None
        yield no, value
