"""In a real terminal the UI's helper threads sleep: no polling while idle, no wake-up per frame.

With a model on every core, any UI thread that wakes mid-graph stalls all the model's threads
(``tui/terminal/driver.py``). Textual's Linux driver woke its input thread 10 times a second to poll
the terminal, and its writer thread ~2.4 times a frame. The real ``abtop`` runs in a
pseudo-terminal with both bundled models; the context switches of its threads other than the
main one (the kernel's counts, ``/proc/PID/task/*/status``) are counted over a window, idle and
while both models stream. Counted, not timed: a busy machine makes fewer frames, never more
wake-ups. The samplers' slow reads run in a thread pool: ``--interval 60`` keeps them out of the
windows, so what is counted is the driver's threads (and anything new that would wake).
With stdin at its end (``abtop < /dev/null``) the other threads' CPU time is read instead: a
thread that spins may never switch.
"""

from __future__ import annotations

import os
import signal
import time

import psutil

from tests.conftest import kill_leftovers, worker_children
from tests.support.terminal import spawn_abtop
from tests.terminal.test_exit import _drain

TIMEOUT = 180
WINDOW_S = 2.0
IDLE_PER_S = 1
"""Wake-ups a second of the idle app's threads but its main one (Textual's input poll alone: 10)."""
STREAMING_PER_S = 3
"""The same while both models stream (Textual's writer thread alone: ~45 at 20 frames a second)."""


def _other_threads(pid: int, name: str) -> list[str]:
    """``/proc/PID/task/TID/NAME`` of every thread of ``pid`` but its main one."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        if int(tid) == pid:
            continue
        try:
            with open(f"/proc/{pid}/task/{tid}/{name}") as f:
                out.append(f.read())
        except OSError:  # a pool thread that ended
            continue
    return out


def _switches(pid: int) -> int:
    """Context switches of every thread of ``pid`` but its main one, so far."""
    return sum(int(line.split()[1]) for status in _other_threads(pid, "status") for line in status.splitlines()
               if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))  # fmt: skip


def _window(pid: int, master: int) -> float:
    """Wake-ups a second of ``pid``'s threads but its main one, over WINDOW_S, reading the
    terminal meanwhile as a terminal would."""
    before, t0 = _switches(pid), time.monotonic()
    _drain(master, t0 + WINDOW_S)
    return (_switches(pid) - before) / (time.monotonic() - t0)


def _cpu(procs: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def test_the_ui_threads_sleep_while_idle_and_while_models_stream():
    proc, master = spawn_abtop(
        ["smollm2-135m", "gemma3-270m", "--ctx", "1024", "-n", "900", "--interval", "60",
         "-p", "Write a long essay about the history of the bicycle."], 160, 45,
    )  # fmt: skip
    seen: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + TIMEOUT
        out = b""
        while time.monotonic() < deadline and (len(seen) < 2 or out.count(b"loaded in") < 2):
            out += _drain(master, time.monotonic() + 0.5)
            seen = seen if len(seen) == 2 else worker_children(proc.pid)
        assert len(seen) == 2 and out.count(b"loaded in") >= 2, f"both models should load: {out[-1500:]!r}"
        # The loads' last work (a memory bandwidth probe, the first readings) may still run in a
        # thread: the idle figure is the quietest of three windows (the old input poll: every one).
        idle = min(_window(proc.pid, master) for _ in range(3))
        assert idle <= IDLE_PER_S, f"{idle:.1f} wake-ups a second of the idle UI's threads (main one aside)"

        os.write(master, b"\r")  # Enter: both models stream (race)
        cpu0 = _cpu(seen)
        while time.monotonic() < deadline and _cpu(seen) - cpu0 < 1.0:  # the models compute
            _drain(master, time.monotonic() + 0.3)
        cpu1 = _cpu(seen)
        streaming = _window(proc.pid, master)
        assert _cpu(seen) - cpu1 > 0.1, "the models should still run through the window"
        assert streaming <= STREAMING_PER_S, f"{streaming:.1f} wake-ups a second of the UI's threads while streaming"
        os.write(master, b"\x1b")  # Esc stops the run
        _drain(master, time.monotonic() + 1.0)
        os.write(master, b"q")
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            _drain(master, time.monotonic() + 0.5)
        assert proc.poll() is not None, "abtop did not quit on q"
        _, alive = psutil.wait_procs(seen, timeout=10)
        assert not alive, f"workers left behind: {[p.pid for p in alive]}"
    finally:
        kill_leftovers(proc, seen)
        os.close(master)


def _until_loaded(master: int) -> float:
    """Read the terminal until both models say "loaded in"; returns the test's deadline."""
    deadline = time.monotonic() + TIMEOUT
    out = b""
    while time.monotonic() < deadline and out.count(b"loaded in") < 2:
        out += _drain(master, time.monotonic() + 0.5)
    assert out.count(b"loaded in") >= 2, f"both models should load: {out[-1500:]!r}"
    return deadline


def test_suspended_and_resumed_the_app_still_takes_keys():
    """Ctrl+Z (the app sends itself SIGTSTP) and ``fg`` (SIGCONT) stop and start the driver's application mode again:
    its wake-up pipe, terminal descriptor and writer are made anew, and keys still work."""
    proc, master = spawn_abtop(["smollm2-135m", "gemma3-270m", "--ctx", "256"])
    seen: list[psutil.Process] = []
    try:
        deadline = _until_loaded(master)
        seen = worker_children(proc.pid)
        me = psutil.Process(proc.pid)
        os.write(master, b"\x1a")  # Ctrl+Z, as a person suspends it (the app's binding sends SIGTSTP)
        while time.monotonic() < deadline and me.status() != psutil.STATUS_STOPPED:
            _drain(master, time.monotonic() + 0.2)
        assert me.status() == psutil.STATUS_STOPPED, "abtop should stop on SIGTSTP"
        proc.send_signal(signal.SIGCONT)
        out = b""
        while time.monotonic() < deadline and not (b"Run" in out and b"gemma3-270m" in out):  # redrawn, footer and all
            out += _drain(master, time.monotonic() + 0.5)
        assert b"Run" in out and b"gemma3-270m" in out, f"the whole screen drawn again after a resume: {out[-1500:]!r}"
        os.write(master, b"q")
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            out += _drain(master, time.monotonic() + 0.5)
        assert proc.poll() is not None, f"abtop did not quit on q after a resume: {out[-1500:]!r}"
        assert b"Traceback" not in out and b"Error" not in out, out[-3000:]
    finally:
        kill_leftovers(proc, seen)
        os.close(master)


def _other_threads_cpu(pid: int) -> float:
    """CPU seconds (user + system) of every thread of ``pid`` but its main one, so far."""
    ticks = sum(sum(map(int, stat.rsplit(")", 1)[1].split()[11:13])) for stat in _other_threads(pid, "stat"))
    return ticks / os.sysconf("SC_CLK_TCK")


def test_the_input_thread_sleeps_when_stdin_is_at_its_end():
    """``abtop < /dev/null`` (a script, a cron job): stdin is at its end at once. The input thread
    used to select on it again and again, a whole core for as long as the app ran."""
    proc, master = spawn_abtop(["smollm2-135m", "gemma3-270m", "--ctx", "256"], no_keys=True)
    seen: list[psutil.Process] = []
    try:
        _until_loaded(master)
        seen = worker_children(proc.pid)
        before = _other_threads_cpu(proc.pid)
        _drain(master, time.monotonic() + WINDOW_S)
        spent = _other_threads_cpu(proc.pid) - before
        assert spent < 0.3 * WINDOW_S, f"the UI's other threads used {spent:.2f} s of CPU in {WINDOW_S:.0f} s with no keys to read"
        proc.send_signal(signal.SIGTERM)  # no q to type: as a script ends it
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            _drain(master, time.monotonic() + 0.5)
        assert proc.poll() is not None, "abtop did not end on SIGTERM"
    finally:
        kill_leftovers(proc, seen)
        os.close(master)
