"""A download's progress on stderr, for the commands without a pane (``info``; ``bench`` shows it
in its own progress lines): a rich bar on a terminal, a line at the start and the end otherwise."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from backends.events import Event, Note
from backends.events import Progress as Fetching
from tui.text.safe import safe


class StderrFetch:
    """``report``/``on_progress`` for a fetch outside the TUI; use as a context manager."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bar: Progress | None = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> StderrFetch:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, Note):
            print(safe(f"abtop: {ev.text}"), file=sys.stderr, flush=True)
        elif isinstance(ev, Fetching):
            self._progress(ev)

    def _progress(self, ev: Fetching) -> None:
        if not self.console.is_terminal:  # a log: one line when a file starts, one when it is done
            if ev.what not in self._tasks:
                self._tasks[ev.what] = 0
                print(safe(f"abtop: {ev.what}…"), file=sys.stderr, flush=True)
            elif ev.finished:
                print(safe(f"abtop: {ev.what}: done ({ev.done} bytes)."), file=sys.stderr, flush=True)
            return
        if self.bar is None:
            self.bar = Progress(
                TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn(), console=self.console,
            )
            self.bar.start()
        task = self._tasks.get(ev.what)
        if task is None:
            task = self._tasks[ev.what] = self.bar.add_task(safe(ev.what), total=ev.total)
        self.bar.update(task, completed=ev.done, total=ev.total)
