"""``--record FILE.jsonl``: every event of both panes, with its timestamp, one JSON object a line.

The first line is a header (``schema``, the model specs, and ``params``: prompt, sampling and mode
when the writer knows them); each further line is an event as
``backends.events.to_dict`` writes it, plus ``slot``. Lines are written at the end of the
event-loop turn that made them (at once off a loop), so a crash loses at most that turn's events,
and a batch of tokens costs one write, not one a token (a system call each, on a core the models
need, tens a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from backends.events import Event, from_dict, to_dict
from backends.specs import public_spec
from backends.userfiles import json_lines, loads, read_user_text

SCHEMA = "abtop.record/1"


class Recorder:
    """Streams the events to ``path`` as they come. Opening raises ``OSError``; a write that fails
    later (a full disk) never stops the run: the recording stops, ``error`` says where, and what
    was written stays (each line is whole, a replay reads up to the last one)."""

    def __init__(self, path: str | Path, specs: list[str], params: dict | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:  # fmt: skip
        self.path = Path(path)
        self.error: str | None = None
        """One sentence once a write failed; None while the recording is whole."""
        self.on_error = on_error
        """Called with ``error`` when a write fails (the lines are written at the end of a loop turn)."""
        self.events = 0
        self._f: TextIO | None = self.path.open("w", encoding="utf-8")
        self._lines: list[str] = []
        """Lines of this loop turn not yet written (``_flush`` writes them at its end)."""
        self._unwritten = 0
        """Events among ``_lines``."""
        self._flush_on: asyncio.AbstractEventLoop | None = None
        """The loop a ``_flush`` of ``_lines`` is scheduled on."""
        header = {"schema": SCHEMA, "specs": [public_spec(s) for s in specs], "params": params}
        self._put(json.dumps(header))

    def write(self, slot: int, ev: Event) -> None:
        if self._f is None:
            return
        d = to_dict(ev)
        d["slot"] = slot
        self._unwritten += 1  # before ``_put``: with no loop it writes at once
        self._put(json.dumps(d, separators=(",", ":")))

    def _put(self, line: str) -> None:
        self._lines.append(line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: at once
            self._flush()
            return
        if self._flush_on is not loop:  # none on this loop yet (one on a loop that has ended would never run)
            self._flush_on = loop
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write the kept lines, whole, and flush them to the file."""
        self._flush_on = None
        lines, self._lines = self._lines, []
        n, self._unwritten = self._unwritten, 0
        if self._f is None or not lines:
            return
        try:
            self._f.write("\n".join(lines) + "\n")
            self._f.flush()
            self.events += n
        except OSError as exc:
            self._stop(exc)

    def _stop(self, exc: OSError) -> None:
        self.error = (
            f"the recording --record {self.path} stopped after {self.events} events "
            f"({exc.strerror or exc}); the run went on, what was recorded before is kept."
        )
        f, self._f = self._f, None
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()  # what is still buffered cannot be written either
        if self.on_error is not None:
            self.on_error(self.error)

    def close(self) -> None:
        self._flush()
        f, self._f = self._f, None
        if f is not None:
            try:
                f.close()
            except OSError as exc:  # the last buffered line did not fit
                self._stop(exc)


def read_recording(path: str | Path) -> tuple[dict, list[tuple[int, Event]]]:
    """The header and the (slot, event) pairs of a recording; ``ValueError`` with one sentence
    naming the file (and the line) for a file that cannot be read or is not an abtop recording.
    """
    name = Path(path).name
    missing = "record one with abtop --record FILE.jsonl"
    lines = read_user_text(path, str(path), kind="recording (abtop --record FILE.jsonl)", missing=missing).splitlines()
    try:
        header = loads(lines[0]) if lines else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("schema") != SCHEMA:
        found = header.get("schema") if isinstance(header, dict) else None
        what = f"schema {found!r}" if found else "no abtop header on its first line"
        raise ValueError(f"{name}: not an abtop recording ({what}); record one with --record FILE.jsonl.")
    n_slots = len(header.get("specs") or [])
    out = []
    shape = "a recording has one event a line"
    for no, d in json_lines(lines[1:], name, shape, first=2, cut_tail=True):
        try:
            slot = d.pop("slot")
            ev = from_dict(d)
            if not isinstance(ev.t, (int, float)):
                raise TypeError(f"time {ev.t!r} is not a number")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if no == len(lines):  # the writer was killed mid-line: keep what came before
                break
            raise ValueError(f"{name} line {no}: not an abtop event ({type(exc).__name__}: {exc}).") from None
        if not isinstance(slot, int) or not 0 <= slot < max(n_slots, 1):
            raise ValueError(f"{name} line {no}: slot {slot!r} does not match the {n_slots} models in the header.")
        out.append((slot, ev))
    return header, out
