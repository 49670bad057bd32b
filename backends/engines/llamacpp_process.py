"""The worker process of a local GGUF model, seen from the parent: start it, speak JSON lines to
it, route what it says, and end it.

Every run has an id: the worker's stream lines carry it, replies to ``load``/``place`` carry the
command's id instead, and a reader task routes each line to whoever waits for it (``reply`` for a
command, the queue of the run in flight). A run whose consumer walked away (raised mid-stream) is
cancelled and whatever it still sends is dropped. The engine's side (``llamacpp.LlamaCppBackend``)
turns those lines into events.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil

_STREAM_LIMIT = 1 << 20  # a single token line is tiny, but keep room for long error texts
WORKER = str(Path(__file__).with_name("llamacpp_worker.py"))


def oom_kills() -> int | None:
    """How many processes the kernel's OOM killer has killed since boot (``/proc/vmstat``), or None."""
    try:
        with open("/proc/vmstat", encoding="ascii") as f:
            for line in f:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def stopped(ps: psutil.Process | None) -> bool:
    """The process is stopped (SIGSTOP): it would not hear a command."""
    try:
        return ps is not None and ps.status() == psutil.STATUS_STOPPED
    except psutil.Error:
        return False


class _Lines(asyncio.subprocess.SubprocessStreamProtocol):
    """The worker's stdout handed on line by line in the loop's read callback. A ``StreamReader``
    and a task awaiting ``readline`` would wake the loop once more for every batch of tokens (~25 a
    second a model), on the cores the models need; stderr keeps its reader."""

    def __init__(self, on_line: Callable[[bytes], None], on_end: Callable[[], None], limit: int,
                 loop: asyncio.AbstractEventLoop) -> None:  # fmt: skip
        super().__init__(limit=limit, loop=loop)
        self._on_line, self._on_end = on_line, on_end
        self._rest = b""
        self._cut = False
        """A line longer than ``limit`` was cut: what follows up to its end is dropped."""

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd != 1:
            return super().pipe_data_received(fd, data)
        *lines, rest = (self._rest + data).split(b"\n")
        if self._cut and lines:  # the end of the line that was cut
            lines.pop(0)
            self._cut = False
        if len(rest) > self._limit:  # a line without end: its start kept as a log line, the rest dropped
            if not self._cut:
                lines.append(rest[:200] + b" ... (a line longer than %d bytes, cut)" % self._limit)
            rest, self._cut = b"", True
        self._rest = rest
        for line in lines:
            if line:
                self._on_line(line)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            try:
                if self._rest and not self._cut:
                    self._on_line(self._rest)
                    self._rest = b""
            finally:
                try:
                    self._on_end()
                finally:
                    super().pipe_connection_lost(fd, exc)
            return
        super().pipe_connection_lost(fd, exc)


class WorkerProcess:
    """One ``llamacpp_worker.py`` process and the routing of its lines."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.log: collections.deque[str] = collections.deque(maxlen=400)
        """llama.cpp's own log lines (stderr of the worker), newest last."""
        self.ps: psutil.Process | None = None
        """The worker as psutil sees it, once it has loaded (CPU time, stopped or not)."""
        self.hung = False
        """The worker stopped answering: ``close()`` kills it rather than ask it to quit."""
        self.closing = False
        """``close()`` or ``kill_now()`` ends the worker: its end is no loss to report."""
        self.on_idle_death: Callable[[int], Awaitable[None]] | None = None
        """Called (with the latest run's id) when the worker ends while no run is in flight."""
        self.run_id = 0
        """The id of the latest run; lines of older runs are dropped."""
        self.run_q: asyncio.Queue[dict | None] | None = None
        """The lines of run ``run_id`` while it streams; None (in it) once the worker is gone."""
        self._replies: asyncio.Queue[dict | None] = asyncio.Queue()
        """Answers to ``load`` and ``place`` (lines without a run id); None: the worker is gone."""
        self._eof = False
        self._cmd_id = 0
        self._tasks: list[asyncio.Task] = []
        self._gen = 0
        """Which spawn the stdout callbacks belong to (``spawn``)."""
        self._oom_kills: int | None = None
        """The kernel's OOM-kill count when the worker started, to tell an OOM kill from ``kill -9``."""

    # -- starting and talking ---------------------------------------------------------------
    async def spawn(self) -> None:
        self._oom_kills = oom_kills()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._replies, self.run_q, self._eof, self.hung, self.ps = asyncio.Queue(), None, False, False, None
        self.closing = False
        loop = asyncio.get_running_loop()
        self._gen += 1
        gen = self._gen  # an earlier worker's end, heard late, must not end this one

        def on_line(line: bytes) -> None:
            if gen == self._gen:
                self._line(line)

        def on_end() -> None:
            if gen == self._gen:
                self._ended()

        transport, protocol = await loop.subprocess_exec(
            lambda: _Lines(on_line, on_end, _STREAM_LIMIT, loop),
            sys.executable,
            "-I",  # isolated: no cwd, PYTHONPATH or user site on sys.path (the worker finds abtop)
            "-u",
            WORKER,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        self.proc = asyncio.subprocess.Process(transport, protocol, loop)  # as create_subprocess_exec makes it
        self._tasks = [asyncio.create_task(self._read_stderr(self.proc.stderr))]

    def _line(self, line: bytes) -> None:
        """One line of the worker's stdout: a reply, a line of the run in flight, or a log line."""
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError):
            self.log.append(line.decode("utf-8", "replace").rstrip())
            return
        if not isinstance(msg, dict):
            self.log.append(line.decode("utf-8", "replace").rstrip())
            return
        run = msg.get("run")
        if run is None:
            self._replies.put_nowait(msg)
        elif run == self.run_id and self.run_q is not None:
            self.run_q.put_nowait(msg)
        # else: a run nobody reads any more (its consumer walked away): dropped

    def _ended(self) -> None:
        """The worker's stdout closed: the worker is gone."""
        self._eof = True
        self._replies.put_nowait(None)
        if self.run_q is not None:
            self.run_q.put_nowait(None)
        elif not self.closing and self.on_idle_death is not None:  # it died while idle
            self._tasks.append(asyncio.ensure_future(self.on_idle_death(self.run_id)))

    async def _read_stderr(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            self.log.append(line.decode("utf-8", "replace").rstrip())

    async def reply(self, cmd_id: int, timeout: float | None = None) -> dict | None:
        """The worker's answer to command ``cmd_id``; None if it is gone (or silent for ``timeout``)."""
        while True:
            try:
                msg = await asyncio.wait_for(self._replies.get(), timeout)
            except asyncio.TimeoutError:
                return None
            if msg is None:
                self._replies.put_nowait(None)  # every later wait learns it too
                return None
            if msg.get("id") == cmd_id:
                return msg

    def command(self, cmd: str, **fields) -> int | None:
        """Send a command that gets a reply; its id, or None when the worker cannot be written to."""
        self._cmd_id += 1
        return self._cmd_id if self.send(cmd=cmd, id=self._cmd_id, **fields) else None

    def send(self, **cmd) -> bool:
        if self.proc is None or self.proc.stdin is None or self.proc.returncode is not None:
            return False
        try:
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            return False
        return True

    # -- runs ---------------------------------------------------------------------------------
    def open_run(self) -> tuple[int, asyncio.Queue]:
        """A new run's id and the queue its lines arrive on (None first if the worker is gone)."""
        self.run_id += 1
        q = self.run_q = asyncio.Queue()
        if self._eof:
            q.put_nowait(None)
        return self.run_id, q

    def close_run(self, run: int, *, cancel: bool) -> None:
        """Run ``run`` is over for its consumer; ``cancel``: it walked away mid-run, so the worker
        stops generating for it."""
        if self.run_id == run:
            if cancel:
                self.send(cmd="cancel", run=run)
            self.run_q = None

    async def death_sentence(self, name: str) -> str:
        """Why the worker is gone, in words."""
        assert self.proc is not None
        try:
            code = await asyncio.wait_for(self.proc.wait(), 2.0)
        except asyncio.TimeoutError:
            code = None
        if code is not None and code < 0:
            try:
                sig = signal.Signals(-code).name
            except ValueError:
                sig = f"signal {-code}"
            oom = sig == "SIGKILL" and self._oom_kills is not None and (oom_kills() or 0) > self._oom_kills
            why = f"killed by {sig}" + (" by the kernel's out-of-memory killer" if oom else "")
        else:
            why = f"exit code {code}"
        return f"{name}: worker lost ({why})."

    # -- ending -------------------------------------------------------------------------------
    async def close(self, *, kill: bool = False) -> None:
        """End the worker: asked to quit (3 s, then killed), or killed at once when ``kill``, when
        it is hung or when it is stopped (it would not hear "quit")."""
        self.closing = True
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None and (kill or self.hung or stopped(self.ps)):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if proc.returncode is None:
            try:
                proc.stdin.write(b'{"cmd":"cancel"}\n{"cmd":"quit"}\n')
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError, RuntimeError):
                pass
            try:
                await asyncio.wait_for(proc.wait(), 3.0)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    def kill_now(self) -> None:
        """Synchronous last resort for exit paths where no event loop is left to await on."""
        self.closing = True
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
