"""SIGHUP to an abtop whose terminal survives (``kill -HUP``, a tmux detach race, an SSH
multiplexer): the terminal comes back as it was — main screen, cursor shown, no mouse reporting,
not in raw mode — and no worker is left.

The real ``abtop`` runs in a real tmux pane (its own tmux server); tmux itself says which modes
the pane's terminal is in, and ``stty -a`` run in the same pane after abtop says the rest.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import worker_children
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
ROOT = Path(__file__).resolve().parents[2]
LOAD_S = 180


def wait_for(what: str, check, deadline_s: float):
    """tests/support/waiting.py's wait, polled at 0.2 s: tmux and /proc have no event to wait on from here."""
    return wait_until(check, what, deadline_s, poll=0.2)


def test_sighup_restores_a_terminal_that_survives(tmp_path):
    sock = f"abtop-test-{os.getpid()}"
    tmux = ["tmux", "-L", sock]
    stty = tmp_path / "stty.txt"
    app = shlex.join([sys.executable, "-m", "tui.cli.main", "smollm2-135m", "--ctx", "256"])
    script = f"cd {shlex.quote(str(ROOT))} && {app}; stty -a > {shlex.quote(str(stty))}; sleep 600"
    env = dict(os.environ, TERM="xterm-256color")
    subprocess.run([*tmux, "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "120", "-y", "35", script],
                   check=True, env=env)  # fmt: skip

    def modes() -> str:
        out = subprocess.run([*tmux, "display", "-p", "-t", "t", "#{alternate_on} #{cursor_flag} #{mouse_any_flag}"],
                             capture_output=True, text=True)  # fmt: skip
        return out.stdout.strip()

    seen: list[psutil.Process] = []
    try:
        pane = int(subprocess.run([*tmux, "display", "-p", "-t", "t", "#{pane_pid}"], capture_output=True,
                                  text=True, check=True).stdout)  # fmt: skip
        proc = wait_for("abtop to start in the pane",
                        lambda: next((p for p in psutil.Process(pane).children() if "tui.cli" in " ".join(p.cmdline())), None),
                        60)  # fmt: skip
        seen = wait_for("the worker to load its model", lambda: [
            w for w in worker_children(proc.pid) if any(m.path.endswith(".gguf") for m in w.memory_maps())], LOAD_S)  # fmt: skip
        assert wait_for("abtop to take the terminal", lambda: modes() == "1 0 1" and modes(), 60)
        proc.send_signal(signal.SIGHUP)
        text = wait_for("stty to run in the pane after abtop", lambda: stty.exists() and stty.read_text(), 60)
        assert modes() == "0 1 0", f"alternate screen, cursor, mouse after SIGHUP: {modes()} (want 0 1 0)"
        flags = text.split()
        assert "icanon" in flags and "echo" in flags, f"the terminal was left in raw mode: {text}"
        _, alive = psutil.wait_procs(seen, timeout=10)
        assert not alive, f"workers left behind: {[p.pid for p in alive]}"
    finally:
        for w in seen:
            if w.is_running():
                w.kill()
        subprocess.run([*tmux, "kill-server"], capture_output=True)
