"""A model file that never opens must never hold quitting.

A FIFO nothing writes to stands in for a file on a hung network filesystem: opening it blocks
for good. The real ``abtop`` runs in a pseudo-terminal beside a real second model; after the pane
says "still opening … after 10 s", ``q`` or Ctrl+C must end it with no worker left and no
traceback. ``abtop bench`` on the same file must exit on SIGTERM.
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


@pytest.mark.parametrize("how", ["q", "ctrl+c"])
def test_quitting_while_a_model_file_never_opens(tmp_path, how):
    fifo = tmp_path / "stuck.gguf"
    os.mkfifo(fifo)
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="35")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli.main", str(fifo), "smollm2-135m", "--ctx", "256"],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    out = b""
    seen: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + LOAD_S
        while b"still opening" not in out or not seen:
            assert proc.poll() is None, f"abtop ended early: {out[-2000:]!r}"
            assert time.monotonic() < deadline, f"no 'still opening' note or no second worker in {LOAD_S} s"
            out += _drain(master, time.monotonic() + 0.5)
            seen = seen or worker_children(proc.pid)
        os.write(master, b"q" if how == "q" else b"\x03")
        end = time.monotonic() + EXIT_S
        while proc.poll() is None and time.monotonic() < end:
            out += _drain(master, time.monotonic() + 0.5)
        assert proc.poll() is not None, f"abtop did not quit on {how} while a model file would not open"
        out += _drain(master, time.monotonic() + 0.5)
        _, alive = psutil.wait_procs(seen, timeout=10)
        assert not alive, f"workers left behind: {[p.pid for p in alive]}"
        assert b"Traceback" not in out, out[-3000:]
    finally:
        kill_leftovers(proc, seen)
        os.close(master)


def test_bench_exits_on_sigterm_while_a_model_file_never_opens(tmp_path):
    fifo = tmp_path / "stuck.gguf"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli.main", "bench", str(fifo), "-n", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: list[str] = []
    noted = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "still opening" in line:
                noted.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert noted.wait(LOAD_S), f"bench never said the file is still opening: {''.join(lines)}"
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(EXIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"bench did not exit within {EXIT_S} s of SIGTERM: {''.join(lines)}")
        reader.join(5)
        err = "".join(lines)
        assert rc == 128 + signal.SIGTERM, err
        assert f"abtop: still opening {fifo} after 10 s (it is a FIFO: is anything writing to it?)" in err
        assert "interrupted by SIGTERM" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
