"""The real ``abtop`` in a pseudo-terminal, as it runs over SSH or in tmux."""

from __future__ import annotations

import os
import pty
import subprocess
import sys


def spawn_abtop(args: list[str], columns: int = 100, lines: int = 30, *, no_keys: bool = False) -> tuple[subprocess.Popen, int]:
    """``abtop ARGS`` on a new pseudo-terminal of ``columns`` x ``lines``, in a session of its own
    (its process group can be killed whole); returns the process and the terminal's master end.
    ``no_keys``: its stdin is ``/dev/null`` (at its end at once), as in a script, the screen still the terminal."""
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(columns), LINES=str(lines))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli.main", *args],
        stdin=subprocess.DEVNULL if no_keys else slave, stdout=slave, stderr=slave, env=env,
        start_new_session=True, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    return proc, master
