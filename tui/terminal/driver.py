"""Textual's Linux terminal driver, without the wake-ups it costs the models on their cores.

With a model on every core (alternate mode: llama.cpp's threads meet at a barrier after each op),
any thread of the UI that wakes while the model computes preempts one of its threads and stalls
them all: ~2.5 ms of the model's time a wake-up on this 2-core box, whatever the thread then does
(a process that did nothing but wake 20 times a second cost a 135M model 5 % of its speed). The
app draws its frames in the wake-up that brought their tokens (``ABTopApp._want_frame``), while
the model is between two tokens; Textual's driver added two threads' worth of wake-ups:

- its input thread polled the terminal 10 times a second, idle or not, to time out a lone Esc:
  here it sleeps until a key comes (or the app stops), and polls only while a key sequence is
  incomplete;
- every frame went out through its writer thread, three queue puts a frame (the frame between
  two "synchronized update" marks), which woke it ~2.4 times a frame: here a frame is written in
  one piece, at once, by the thread that drew it, through a non-blocking descriptor of its own
  on the terminal. What the terminal does not take at once (a stalled SSH link) goes, in order,
  to a writer thread, and the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import threading
from codecs import getincrementaldecoder

from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver


class _Backlog(threading.Thread):
    """Writes, in order and blocking, what the terminal did not take at once."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True, name="abtop-output")
        self.fd = fd
        self._queue: list[bytes | None] = []
        self._cond = threading.Condition()
        self._pending = 0

    def put(self, data: bytes | None) -> None:
        with self._cond:
            self._queue.append(data)
            self._pending += 1
            self._cond.notify()

    @property
    def idle(self) -> bool:
        return self._pending == 0

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                data = self._queue.pop(0)
            try:
                if data is None:
                    return
                view = memoryview(data)
                while view:
                    try:
                        view = view[os.write(self.fd, view) :]
                    except OSError:  # the terminal is gone: the lifeline ends the app
                        break
            finally:
                with self._cond:
                    self._pending -= 1

    def stop(self) -> None:
        self.put(None)
        self.join()


class _WakingEvent(threading.Event):
    """The input thread's exit event, which also wakes the thread from its wait for a key."""

    def __init__(self) -> None:
        super().__init__()
        self.wake_fd: int | None = None

    def set(self) -> None:
        super().set()
        fd = self.wake_fd
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, b"x")


class LeanDriver(LinuxDriver):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.exit_event = _WakingEvent()
        self._wake: tuple[int, int] | None = None
        self._out: list[str] = []
        self._lock = threading.RLock()
        """``_out`` and the output's order: the input thread writes too (a mode it answers)."""
        self._tty: int | None = None
        """A non-blocking descriptor of our own on the terminal (its own open file description:
        the shell's, which stdin shares, stays blocking)."""
        self._backlog: _Backlog | None = None
        self._encoding = getattr(self._file, "encoding", None) or "utf-8"

    # -- output --------------------------------------------------------------------------------
    def write(self, data: str) -> None:
        """Kept until ``flush`` (Textual flushes after each frame and each group of modes); a
        write with no flush after it (the bell, a cursor shape) goes at the end of this turn of
        the loop. Off the loop (the input thread), at once."""
        with self._lock:
            first = not self._out
            self._out.append(data)
            if not first:
                return
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # not on a loop's thread
                self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._out:
                return
            data = "".join(self._out).encode(self._encoding, "replace")
            self._out.clear()
            backlog, tty = self._backlog, self._tty
            if backlog is None or tty is None:  # not in application mode: as Textual's writer would
                with contextlib.suppress(OSError, ValueError):
                    self._file.buffer.write(data)
                    self._file.flush()
                return
            if backlog.idle:
                try:
                    sent = os.write(tty, data)
                except BlockingIOError:
                    sent = 0
                except OSError:  # the terminal is gone: the lifeline ends the app
                    return
                data = data[sent:]
            if data:
                backlog.put(data)

    def start_application_mode(self) -> None:
        self._wake = os.pipe()
        for fd in self._wake:
            os.set_blocking(fd, False)
        self.exit_event.wake_fd = self._wake[1]
        out = self._file.fileno()
        try:
            self._tty = os.open(os.ttyname(out), os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:  # not a terminal: every write goes through the writer thread
            self._tty = None
        self._backlog = _Backlog(out)
        self._backlog.start()
        super().start_application_mode()
        textual_writer, self._writer_thread = self._writer_thread, None
        if textual_writer is not None:  # ours writes; Textual's would only wait
            textual_writer.stop()

    def close(self) -> None:
        """After ``stop_application_mode``, at the app's end and when it is suspended (Ctrl+Z):
        ``start_application_mode`` makes all of this again on resume."""
        self.flush()
        backlog, self._backlog = self._backlog, None
        if backlog is not None:
            backlog.stop()
        super().close()
        self.exit_event.wake_fd = None
        for fd in (*(self._wake or ()), *(() if self._tty is None else (self._tty,))):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake = self._tty = None

    # -- input ---------------------------------------------------------------------------------
    def run_input_thread(self) -> None:
        """Textual's input loop, waiting for a key (or the exit) with no timeout unless a key
        sequence is incomplete (a lone Esc becomes the Escape key after the parser's timeout)."""
        assert self._wake is not None
        wake = self._wake[0]
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        selector.register(wake, selectors.EVENT_READ)
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode

        def timeout() -> float | None:
            if not hasattr(parser, "_timeout_time"):  # another Textual: polled as Textual does
                return 0.1
            due = parser._timeout_time
            return None if due is None else max(0.0, min(0.1, due - get_time()))

        def process(events, final: bool = False) -> None:
            for key, mask in events:
                if key.fd == wake:
                    with contextlib.suppress(OSError):
                        os.read(wake, 64)
                    continue
                if mask & selectors.EVENT_READ:
                    data = decode(os.read(self.fileno, 1024 * 4), final=final)
                    if not data:  # stdin piped, at its end: no key will come (selecting on it would spin)
                        if not final:
                            selector.unregister(self.fileno)
                        break
                    for event in parser.feed(data):
                        self.process_message(event)
            for event in parser.tick():
                self.process_message(event)

        try:
            while not self.exit_event.is_set():
                process(selector.select(timeout()))
            if self.fileno in (key.fd for key in selector.get_map().values()):
                selector.unregister(self.fileno)
                process(selector.select(0.1), final=True)
        finally:
            selector.close()
            with contextlib.suppress(Exception):
                for _ in parser.feed(""):
                    pass
