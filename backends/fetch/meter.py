"""Bytes arriving, told as ``Progress`` events: throttled, with a rate, and a way to stop.

A fetch runs in a thread (huggingface_hub and its progress bar are synchronous); ``Meter.add`` is
called from that thread per chunk. It hands a ``Progress`` to ``on_progress`` at most every
``every`` seconds, plus one at the end. ``cancel()`` (from any thread) makes the next ``add``
raise ``Cancelled``, which unwinds the download (huggingface_hub then removes its partial file).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from backends.events import Progress, now


class Cancelled(Exception):
    """The fetch was stopped (abtop is quitting or the pane closed)."""


class Meter:
    def __init__(self, on_progress: Callable[[Progress], None] | None, every: float = 0.1) -> None:
        self.on_progress = on_progress
        self.every = every
        self.what = ""
        self.total: int | None = None
        self.done = 0
        self._start_done = 0
        self._t0 = now()
        self._last = 0.0
        self._stop = threading.Event()

    def start(self, what: str, total: int | None, initial: int = 0) -> None:
        self.what, self.total, self.done, self._start_done = what, total, initial, initial
        self._t0 = now()
        self._last = 0.0
        self._tell()

    def add(self, n: int) -> None:
        if self._stop.is_set():
            raise Cancelled()
        self.done += n
        if now() - self._last >= self.every:
            self._tell()

    def set(self, done: int, total: int | None) -> None:
        """Absolute figures (an Ollama pull reports ``completed`` of ``total``)."""
        if self._stop.is_set():
            raise Cancelled()
        self.total = total
        self.done = done
        if now() - self._last >= self.every:
            self._tell()

    def finish(self) -> None:
        self._tell(finished=True)

    def cancel(self) -> None:
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    def _tell(self, finished: bool = False) -> None:
        t = now()
        self._last = t
        elapsed = t - self._t0
        got = self.done - self._start_done
        rate = got / elapsed if elapsed > 0.2 and got > 0 else None
        if self.on_progress is not None:
            self.on_progress(Progress(self.what, self.done, self.total, rate, t, finished))

    def bar_class(self):
        """A ``tqdm_class`` for huggingface_hub: it builds one bar per file and calls ``update``."""
        meter = self

        class _Bar:
            def __init__(self, *, total=None, initial=0, desc="", **_ignored) -> None:
                meter.start(meter.what or str(desc), total, initial or 0)

            def update(self, n=1) -> None:
                meter.add(int(n or 0))

            def close(self) -> None:
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc) -> None:
                return None

        return _Bar
