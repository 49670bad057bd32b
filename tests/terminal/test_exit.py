"""Quitting leaves no process behind: q, Ctrl+C, SIGTERM, SIGHUP and a terminal that vanishes.

The real ``abtop`` runs in a pseudo-terminal, as it would over SSH; we wait until both workers
are up, end it, and check that no worker survives.
"""

from __future__ import annotations

import os
import select
import signal
import time

import psutil
import pytest

from tests.conftest import kill_leftovers, worker_children
from tests.support.terminal import spawn_abtop

TIMEOUT = 180


def _drain(fd: int, until: float) -> bytes:
    out = b""
    while time.monotonic() < until:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


@pytest.mark.parametrize("how", ["SIGHUP", "SIGTERM", "q", "ctrl+c", "hangup"])
def test_quit_leaves_no_worker(how):
    proc, master = spawn_abtop(["smollm2-135m", "gemma3-270m", "--ctx", "256"])
    seen: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and len(seen) < 2:
            _drain(master, time.monotonic() + 0.5)
            seen = worker_children(proc.pid)
        assert len(seen) == 2, "both workers should start"
        # wait until both models are loaded (the workers have mapped their GGUF files)
        def mapped() -> bool:
            return all(any(m.path.endswith(".gguf") for m in w.memory_maps()) for w in seen)

        while time.monotonic() < deadline and not mapped():
            _drain(master, time.monotonic() + 0.5)
        assert mapped(), f"the workers did not map their GGUF files in {TIMEOUT} s"
        if how == "q":
            os.write(master, b"q")  # the prompt starts unfocused: q is a command at once, as in top
        elif how == "ctrl+c":
            os.write(master, b"\x03")
        elif how == "hangup":  # the terminal goes away with no signal at all (tmux killed, sshd gone)
            os.close(master)
            master = None
        else:
            proc.send_signal(getattr(signal, how))
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            if master is None:
                time.sleep(0.2)  # nothing left to read: just wait for the exit
            else:
                _drain(master, time.monotonic() + 0.5)
        assert proc.poll() is not None, f"abtop did not exit on {how}"
        gone, alive = psutil.wait_procs(seen, timeout=10)
        assert not alive, f"workers left behind after {how}: {[p.pid for p in alive]}"
    finally:
        kill_leftovers(proc, seen)
        if master is not None:
            os.close(master)
