"""Local GGUF models through llama-cpp-python, one worker process per model.

The worker (``llamacpp_worker.py``) owns the model; this side speaks JSON lines to it and turns
its lines into events. If the worker dies (killed, OOM), the stream ends with
``Failed(lost=True)`` and nothing else is affected.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import sys
from collections.abc import AsyncIterator

from backends.base import Backend, BackendError, GenParams, Placement
from backends.card.gguf import read_card
from backends.events import EngineTimings, Event, Failed, Finished, Loaded, Started, Token
from backends.specs import BUNDLED

_STREAM_LIMIT = 1 << 20  # a single token line is tiny, but keep room for long error texts


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


class LlamaCppBackend(Backend):
    kind = "llama.cpp"
    local_process = True

    def __init__(self, spec: str, path, n_ctx: int = 2048, placement: Placement | None = None) -> None:
        super().__init__(spec)
        self.path = str(path)
        self.n_ctx = n_ctx
        self.placement = placement or Placement()
        self.proc: asyncio.subprocess.Process | None = None
        self.log: collections.deque[str] = collections.deque(maxlen=400)
        """llama.cpp's own log lines (stderr of the worker), newest last."""
        self._events: asyncio.Queue[dict | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._busy = False
        self._oom_kills: int | None = None
        """The kernel's OOM-kill count when the worker started, to tell an OOM kill from ``kill -9``."""

    # -- process plumbing -------------------------------------------------------------------
    async def _spawn(self) -> None:
        self._oom_kills = oom_kills()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "backends.engines.llamacpp_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=_STREAM_LIMIT,
        )
        self._tasks = [
            asyncio.create_task(self._read_stdout(self.proc.stdout)),
            asyncio.create_task(self._read_stderr(self.proc.stderr)),
        ]

    async def _read_stdout(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            try:
                self._events.put_nowait(json.loads(line))
            except ValueError:
                self.log.append(line.decode("utf-8", "replace").rstrip())
        self._events.put_nowait(None)  # EOF: the worker is gone

    async def _read_stderr(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            self.log.append(line.decode("utf-8", "replace").rstrip())

    def _send(self, **cmd) -> bool:
        if self.proc is None or self.proc.stdin is None or self.proc.returncode is not None:
            return False
        try:
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            return False
        return True

    async def _death_sentence(self) -> str:
        """Why the worker is gone, in words."""
        assert self.proc is not None
        try:
            code = await asyncio.wait_for(self.proc.wait(), 2.0)
        except asyncio.TimeoutError:
            code = None
        name = self.spec if self.spec in BUNDLED else os.path.basename(self.path)
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

    # -- Backend ----------------------------------------------------------------------------
    async def load(self) -> Loaded:
        self.loaded, self._busy = None, False  # a reload: nothing of the previous worker stays
        info = read_card(self.path)  # a missing, foreign or truncated file fails here, in one sentence
        if self.spec in BUNDLED:  # "smollm2-135m" reads better than the GGUF's general.name
            info.name = self.spec
        threads = self.placement.threads or len(self.placement.cpus or ()) or os.cpu_count() or 1
        cpus = list(self.placement.cpus) if self.placement.cpus else None
        self._events = asyncio.Queue()  # a reload: nothing of the previous worker is read
        await self._spawn()
        self._send(cmd="load", path=self.path, n_ctx=self.n_ctx, threads=threads, cpus=cpus)
        msg = await self._events.get()
        if msg is None or msg.get("ev") != "loaded":
            if msg is None:
                reason = (await self._death_sentence()).rstrip(".")
                last = next((ln for ln in reversed(self.log) if "error" in ln.lower()), "")
                raise BackendError(f"{reason}{': ' + last.strip() if last else ''}.")
            await self.close()
            raise BackendError(f"{info.name}: {msg.get('reason', 'the worker could not load the model.')}")
        self.loaded = Loaded(
            info=info,
            t=msg["t"],
            backend=self.kind,
            load_s=msg["load_s"],
            pid=msg["pid"],
            threads=msg["threads"],
            cpus=cpus,
            completion_mode=not msg["chat_template"],
            n_ctx=msg["n_ctx"],
            weights_path=self.path,
            buffers=msg.get("buffers"),
        )
        return self.loaded

    async def place(self, placement: Placement) -> None:
        self.placement = placement
        if self.loaded is None:
            return
        if self._send(cmd="place", threads=placement.threads, cpus=list(placement.cpus or ()) or None):
            msg = await self._events.get()
            if msg is not None and msg.get("ev") == "placed":
                self.loaded.threads = msg["threads"]
                self.loaded.cpus = list(placement.cpus) if placement.cpus else None

    async def stream(self, prompt: str, params: GenParams) -> AsyncIterator[Event]:
        if self.loaded is None or self._busy:
            yield Failed(f"{self.label}: not ready (load it first, one stream at a time).")
            return
        self._busy = True
        try:
            sent = self._send(
                cmd="gen",
                prompt=prompt,
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                seed=params.seed,
            )
            if not sent:
                yield Failed(await self._death_sentence(), lost=True)
                return
            get = self._events.get
            while True:
                msg = await get()
                if msg is None:
                    yield Failed(await self._death_sentence(), lost=True)
                    return
                ev = msg["ev"]
                if ev == "tok":
                    yield Token(msg["s"], msg["t"], msg.get("n", 1))
                elif ev == "started":
                    yield Started(msg["t"], msg["prompt_tokens"])
                elif ev == "finished":
                    yield Finished(msg["t"], msg["stop"], msg["gen_tokens"], EngineTimings(**msg["engine"]))
                    return
                elif ev == "failed":
                    yield Failed(f"{self.label}: {msg['reason']}", msg["t"])
                    return
        finally:
            self._busy = False

    async def cancel(self) -> None:
        self._send(cmd="cancel")

    async def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
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
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass

