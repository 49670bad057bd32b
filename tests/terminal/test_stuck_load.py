"""A model file that never opens must never hold quitting.

A FIFO nothing writes to stands in for a file on a hung network filesystem: opening it blocks
for good. The real ``abtop`` runs in a pseudo-terminal beside a real second model; after the pane
says "still opening … after 10 s", ``q`` or Ctrl+C must end it with no worker left and no
traceback. ``abtop bench`` on the same file must exit on SIGTERM.

The three run at once: each waits for the same 10 s note, which then costs the suite 10 s once.
"""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from tests.conftest import kill_leftovers, worker_children
from tests.terminal.test_exit import _drain

LOAD_S = 180
"""The deadline for the second model's worker to load and for the note to show (a busy box)."""
EXIT_S = 30
"""The deadline for the exit once asked: seconds here, where the fault held it for good."""


class Tui:
    """``abtop FIFO smollm2-135m`` in a pseudo-terminal of its own."""

    def __init__(self, fifo) -> None:
        self.master, slave = pty.openpty()
        env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="35")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tui.cli.main", str(fifo), "smollm2-135m", "--ctx", "256"],
            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, close_fds=True,
        )  # fmt: skip
        os.close(slave)
        self.out = b""
        self.seen: list[psutil.Process] = []

    def ready(self) -> bool:
        """The note is on screen and the second model's worker runs."""
        assert self.proc.poll() is None, f"abtop ended early: {self.out[-2000:]!r}"
        self.out += _drain(self.master, time.monotonic() + 0.2)
        self.seen = self.seen or worker_children(self.proc.pid)
        return b"still opening" in self.out and bool(self.seen)

    def close(self) -> None:
        kill_leftovers(self.proc, self.seen)
        os.close(self.master)


def test_quitting_or_a_sigterm_while_a_model_file_never_opens(tmp_path):
    fifo = tmp_path / "stuck.gguf"
    os.mkfifo(fifo)
    tuis = {"q": None, "ctrl+c": None}
    bench = subprocess.Popen([sys.executable, "-m", "tui.cli.main", "bench", str(fifo), "-n", "4"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: list[str] = []
    noted = threading.Event()

    def read() -> None:
        for line in bench.stderr:
            lines.append(line)
            if "still opening" in line:
                noted.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        for how in tuis:
            tuis[how] = Tui(fifo)
        deadline = time.monotonic() + LOAD_S
        waiting = dict(tuis)
        while waiting:
            assert time.monotonic() < deadline, f"no 'still opening' note or no second worker in {LOAD_S} s: {list(waiting)}"
            waiting = {how: tui for how, tui in waiting.items() if not tui.ready()}
        assert noted.wait(max(1.0, deadline - time.monotonic())), f"bench never said the file is still opening: {''.join(lines)}"
        for how, tui in tuis.items():
            os.write(tui.master, b"q" if how == "q" else b"\x03")
        bench.send_signal(signal.SIGTERM)
        end = time.monotonic() + EXIT_S
        for how, tui in tuis.items():
            while tui.proc.poll() is None and time.monotonic() < end:
                tui.out += _drain(tui.master, time.monotonic() + 0.5)
            assert tui.proc.poll() is not None, f"abtop did not quit on {how} while a model file would not open"
            tui.out += _drain(tui.master, time.monotonic() + 0.5)
            _, alive = psutil.wait_procs(tui.seen, timeout=10)
            assert not alive, f"{how}: workers left behind: {[p.pid for p in alive]}"
            assert b"Traceback" not in tui.out, tui.out[-3000:]
        try:
            rc = bench.wait(max(1.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"bench did not exit within {EXIT_S} s of SIGTERM: {''.join(lines)}")
        reader.join(5)
        err = "".join(lines)
        assert rc == 128 + signal.SIGTERM, err
        assert f"abtop: still opening {fifo} after 10 s (it is a FIFO: is anything writing to it?)" in err
        assert "interrupted by SIGTERM" in err and "Traceback" not in err
    finally:
        for tui in tuis.values():
            if tui is not None:
                tui.close()
        if bench.poll() is None:
            bench.kill()
            bench.wait()
