"""Leave no process behind, even when the terminal disappears.

When an SSH link drops or tmux is killed, the terminal hangs up: Textual's writer thread dies on
EIO and the next frame blocks the event loop for good, so an ``add_signal_handler`` callback
never runs. Two guards that do not need the event loop:

- a thread blocked in ``poll()`` on the terminal with an empty event mask: it wakes only on
  POLLHUP/POLLERR, costs nothing meanwhile, and then kills the workers and exits;
- plain ``signal.signal`` handlers: SIGHUP does the same at once (the terminal is gone, nothing
  to restore); SIGTERM asks the app to exit cleanly and hard-exits if that has not happened
  within a few seconds.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from collections.abc import Callable

GRACE_S = 4.0


class Lifeline:
    def __init__(self, kill_children: Callable[[], None], request_exit: Callable[[], None]) -> None:
        self.kill_children = kill_children
        self.request_exit = request_exit

    def hard_exit(self, code: int) -> None:
        try:
            self.kill_children()
        finally:
            os._exit(code)

    def install(self) -> None:
        signal.signal(signal.SIGHUP, lambda *_: self.hard_exit(128 + signal.SIGHUP))
        signal.signal(signal.SIGTERM, lambda *_: self._terminate())
        fd = _terminal_fd()
        if fd is not None and hasattr(select, "poll"):
            threading.Thread(target=self._watch, args=(fd,), name="abtop-hangup", daemon=True).start()

    def _terminate(self) -> None:
        self.request_exit()
        timer = threading.Timer(GRACE_S, self.hard_exit, args=(128 + signal.SIGTERM,))
        timer.daemon = True
        timer.start()

    def _watch(self, fd: int) -> None:
        p = select.poll()
        p.register(fd, 0)  # no POLLIN: only hang-up and errors wake us
        while True:
            for _fd, ev in p.poll():
                if ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    self.hard_exit(128 + signal.SIGHUP)


def _terminal_fd() -> int | None:
    for stream in (sys.__stdout__, sys.__stdin__):
        try:
            if stream is not None and stream.isatty():
                return stream.fileno()
        except (ValueError, OSError):
            continue
    return None
