"""Progress on stderr, for what runs without a pane (``bench``, ``score``, ``info``, ``twin``, and a
shape twin written before the TUI takes the screen): rich bars on a terminal, a line at the start
and the end of each fetch in a log. A pane's one-line form is ``format.progress_line``.

One display holds two kinds of bar: bytes (``Progress`` events: a download, a pull, a twin being
written) with size, speed and time left; counts (tokens generated or scored) with done/total and
time elapsed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column
from rich.text import Text

from backends.events import Event, Note
from backends.events import Progress as Fetching
from tui.text.format import human_bytes
from tui.text.safe import safe


def say(line: str) -> None:
    """One line on stderr, never wrapped or styled (scripts grep it); a server's or a file's text
    in it is shown, never obeyed, by the terminal."""
    print(safe(line), file=sys.stderr, flush=True)


class _Figures(ProgressColumn):
    """A bytes bar's ``41.2/98.4 MB 23.1 MB/s 0:00:02``, a count bar's ``12/128 0:00:03``."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self._bytes = (DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        self._count = (MofNCompleteColumn(), TimeElapsedColumn())

    def render(self, task: Task) -> Text:
        columns = self._bytes if task.fields.get("bytes") else self._count
        return Text(" ").join(c.render(task) for c in columns)


class StderrProgress:
    """Bars on stderr; use as a context manager. Call it with events (``Note``: a line;
    ``Progress``: a bytes bar named by its ``what``); ``count()`` adds a count bar. In a log
    (``live`` False) counts draw nothing and a fetch is a line at its start and one at its end."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        self.bar: Progress | None = None
        self._fetches: dict[str, TaskID | None] = {}

    def __enter__(self) -> StderrProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the bars where they are (what is printed after goes below them)."""
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def _bar(self) -> Progress:
        if self.bar is None:
            self.bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), _Figures(),
                                console=self.console)  # fmt: skip
            self.bar.start()
        return self.bar

    def count(self, description: str, total: int | None = None) -> TaskID | None:
        """A count bar (None in a log, where ``update`` and ``advance`` then do nothing)."""
        return self._bar().add_task(safe(description), total=total) if self.live else None

    def update(self, task: TaskID | None, *, description: str | None = None, **figures) -> None:
        if task is not None and self.bar is not None:
            self.bar.update(task, description=None if description is None else safe(description), **figures)

    def advance(self, task: TaskID | None, n: float) -> None:
        if task is not None and self.bar is not None:
            self.bar.advance(task, n)

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, Note):
            say(f"abtop: {ev.text}")
        elif isinstance(ev, Fetching):
            self._fetching(ev)

    def _fetching(self, ev: Fetching) -> None:
        if not self.live:  # a log: one line when a fetch starts, one when it is done
            if ev.what not in self._fetches:
                self._fetches[ev.what] = None
                say(f"abtop: {ev.what}…")
            elif ev.finished:
                say(f"abtop: {ev.what}: done ({human_bytes(ev.done)}).")
            return
        total = ev.done if ev.finished and ev.total is None else ev.total
        task = self._fetches.get(ev.what)
        if task is None:
            task = self._fetches[ev.what] = self._bar().add_task(safe(ev.what), total=total, bytes=True)
        self._bar().update(task, completed=ev.done, total=total)


def written_with_bar(write: Callable[[Callable[[Event], None]], Path]) -> Path:
    """``write(on_progress)`` (a file written with ``Progress`` events), its bar on stderr, then
    where the file went."""
    with StderrProgress() as bars:
        path = write(bars)
    say(f"wrote {path}")
    return path
