"""Textual's Linux terminal driver, without the wake-ups it costs the models on their cores.

With a model on every core (alternate mode: llama.cpp's threads meet at a barrier after each op),
any thread of the UI that wakes while the model computes preempts one of its threads and stalls
them all: ~2.5 ms of the model's time a wake-up on this 2-core box, whatever the thread then does
(benchmarks/tui_vs_bench.py; a process that only woke 20 times a second cost a 135M model 5 %).
The app draws its frames in the wake-up that brought their tokens (``ABTopApp._want_frame``), while
the model is between two tokens; Textual's driver added two threads' worth of wake-ups of its own:

- its input thread polled the terminal 10 times a second, idle or not, to time out a lone Esc:
  here it sleeps until a key comes, and polls only while a key sequence is incomplete;
- every frame went out through its writer thread, three queue puts a frame (the frame between
  two "synchronized update" marks), and woke it ~2.4 times a frame: here a frame is written at
  once, in one piece, by the thread that drew it. The writer thread takes over only while the
  terminal does not take it (a stalled SSH link): the loop then goes on, as with Textual's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import selectors
import threading
from codecs import getincrementaldecoder

from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.drivers._writer_thread import WriterThread
from textual.drivers.linux_driver import LinuxDriver


class _Backlog(WriterThread):
    """Textual's writer thread, which also says when all it was given is written."""

    def run(self) -> None:
        get, done = self._queue.get, self._queue.task_done
        while True:
            text = get()
            try:
                if text is None:
                    break
                with contextlib.suppress(OSError, ValueError):  # a terminal gone: lifeline ends the app
                    self._file.write(text)
                    if self._queue.qsize() == 0:
                        self._file.flush()
            finally:
                done()
        with contextlib.suppress(OSError, ValueError):
            self._file.flush()

    @property
    def idle(self) -> bool:
        return self._queue.unfinished_tasks == 0


class _WakingEvent(threading.Event):
    """The input thread's exit event, which also wakes the thread from its wait for a key."""

    def __init__(self, wake_fd: int) -> None:
        super().__init__()
        self._wake_fd = wake_fd

    def set(self) -> None:
        super().set()
        with contextlib.suppress(OSError):
            os.write(self._wake_fd, b"x")


class LeanDriver(LinuxDriver):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.exit_event = _WakingEvent(self._wake_w)
        self._out: list[str] = []
        self._backlog: _Backlog | None = None

    # -- output --------------------------------------------------------------------------------
    def write(self, data: str) -> None:
        """Kept until ``flush`` (Textual flushes after each frame and each group of modes): a
        write with no flush after it (the bell, a cursor shape) goes at the end of this turn of
        the loop."""
        if not self._out:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # not on the app's loop (a thread, the app's last moments)
                self._out.append(data)
                self.flush()
                return
        self._out.append(data)

    def flush(self) -> None:
        if not self._out:
            return
        text = "".join(self._out)
        self._out.clear()
        backlog = self._backlog
        if backlog is not None and backlog.idle and self._takes_output():
            try:
                self._file.write(text)
                self._file.flush()
            except (OSError, ValueError):  # the terminal is gone: the lifeline ends the app
                pass
            return
        if backlog is not None:
            backlog.write(text)
        else:  # before application mode: as Textual's writer would, at once
            with contextlib.suppress(OSError, ValueError):
                self._file.write(text)
                self._file.flush()

    def _takes_output(self) -> bool:
        """The terminal takes a write now (a stalled one would block the event loop)."""
        try:
            return bool(select.select([], [self._file], [], 0)[1])
        except (OSError, ValueError):
            return True  # written, and failed, as before

    def start_application_mode(self) -> None:
        super().start_application_mode()
        # Textual's writer thread is started and kept (``close`` stops it); ours takes its place.
        if self._backlog is None:
            self._backlog = _Backlog(self._file)
            self._backlog.start()

    def close(self) -> None:
        self.flush()
        if self._backlog is not None:
            self._backlog.stop()
            self._backlog = None
        super().close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- input ---------------------------------------------------------------------------------
    def run_input_thread(self) -> None:
        """Textual's input loop, waiting for a key (or the exit) with no timeout unless a key
        sequence is incomplete (a lone Esc becomes the Escape key after the parser's timeout)."""
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode

        def timeout() -> float | None:
            due = getattr(parser, "_timeout_time", 0.0)  # Textual's parser; polled as before if gone
            return None if due is None else max(0.0, min(0.1, due - get_time()))

        def process(events, final: bool = False) -> None:
            for key, mask in events:
                if key.fd == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 64)
                    continue
                if mask & selectors.EVENT_READ:
                    data = decode(os.read(self.fileno, 1024 * 4), final=final)
                    if not data:  # stdin piped, at its end
                        break
                    for event in parser.feed(data):
                        self.process_message(event)
            for event in parser.tick():
                self.process_message(event)

        try:
            while not self.exit_event.is_set():
                process(selector.select(timeout()))
            selector.unregister(self.fileno)
            process(selector.select(0.1), final=True)
        finally:
            selector.close()
            with contextlib.suppress(Exception):
                for _ in parser.feed(""):
                    pass
