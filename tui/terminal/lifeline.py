"""Leave no process behind, even when the terminal disappears.

When an SSH link drops or tmux is killed, the terminal hangs up. With Textual's own driver its
writer thread died on EIO and the next frames blocked the event loop for good, so an
``add_signal_handler`` callback never ran; abtop's driver (``driver.py``) drops what the terminal
refuses, but nothing then tells the app the terminal is gone. Two guards that do not need the
event loop:

- a thread blocked in ``poll()`` on the terminal with an empty event mask: it wakes only on
  POLLHUP/POLLERR, costs nothing meanwhile, and then kills the workers and exits;
- plain ``signal.signal`` handlers: SIGHUP does the same at once; SIGTERM asks the app to exit
  cleanly and hard-exits if that has not happened within a few seconds.

A hard exit restores the terminal first, as Textual's own exit does (alternate screen, mouse
reporting, the cursor, raw mode): a SIGHUP does not always mean the terminal is gone (``kill -HUP``,
a tmux detach race, some SSH multiplexers), and a terminal left in the app's modes is unusable.
Where the terminal is gone the writes fail, and that is no error.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from collections.abc import Callable

try:
    import termios
except ImportError:  # no POSIX terminal: nothing to restore
    termios = None  # type: ignore[assignment]

GRACE_S = 4.0
RESTORE = (
    "\x1b[?1000l\x1b[?1003l\x1b[?1015l\x1b[?1006l"  # mouse reporting off
    "\x1b[?2004l\x1b[?1004l\x1b[?2048l"  # bracketed paste, focus events, in-band resize off
    "\x1b[<u"  # the kitty keyboard protocol off, before leaving the alternate screen (as Textual)
    "\x1b[0m\x1b[?1049l\x1b[?25h\x1b[?7h"  # plain text, the main screen, the cursor, line wrap
)
"""What Textual's driver writes when the app stops (``LinuxDriver.stop_application_mode``)."""


class Lifeline:
    def __init__(self, kill_children: Callable[[], None], request_exit: Callable[[], None]) -> None:
        self.kill_children = kill_children
        self.request_exit = request_exit
        self.fd: int | None = None
        """The terminal the app draws on."""
        self.attrs: list | None = None
        """Its termios settings before the app put it in raw mode."""

    def hard_exit(self, code: int) -> None:
        try:
            self.kill_children()
        finally:
            try:
                self.restore_terminal()
            finally:
                os._exit(code)

    def restore_terminal(self) -> None:
        """Leave the terminal as the app found it; a terminal that is gone (EIO) or will not take
        the bytes at once (a full buffer: never block on the way out) is left as it is."""
        fd = self.fd
        if fd is None:
            return
        try:
            os.set_blocking(fd, False)
            try:
                os.write(fd, RESTORE.encode())
            finally:  # the shell gets the terminal back as it was: blocking
                os.set_blocking(fd, True)
        except OSError:
            pass
        if self.attrs is not None and termios is not None:
            try:
                termios.tcsetattr(fd, termios.TCSANOW, self.attrs)
            except (OSError, termios.error):
                pass

    def install(self) -> None:
        """Call before the app takes the terminal (its settings are saved here)."""
        self.fd = fd = _terminal_fd()
        if fd is not None and termios is not None:
            try:
                self.attrs = termios.tcgetattr(fd)
            except (OSError, termios.error):
                self.attrs = None
        signal.signal(signal.SIGHUP, lambda *_: self.hard_exit(128 + signal.SIGHUP))
        signal.signal(signal.SIGTERM, lambda *_: self._terminate())
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


BENCH_HINT = "`abtop bench` runs the same models headless (--json, --csv or --md write the figures to a file)"


def no_terminal(hint: str = BENCH_HINT) -> str | None:
    """One sentence when the screen would go where no one sees it: with standard output not a
    terminal (``abtop > file``, a pipe, cron) the app would fill it with escape codes and wait for
    keys no one can press. ``abtop serve`` runs the app over pipes on purpose, through
    textual-serve's driver (``TEXTUAL_DRIVER``), and is let through; so is a standard input that
    is not a terminal (``abtop -p … < /dev/null``: the screen still shows the run)."""
    if os.environ.get("TEXTUAL_DRIVER"):
        return None
    try:
        if sys.stdout is not None and sys.stdout.isatty():
            return None
    except (ValueError, OSError):
        pass
    return f"abtop: the screen needs a terminal, and standard output is not one; {hint}."
