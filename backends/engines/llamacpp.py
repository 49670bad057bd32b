"""Local GGUF models through llama-cpp-python, one worker process per model.

The worker (``llamacpp_worker.py``) owns the model; this side speaks JSON lines to it and turns
its lines into events. If the worker dies (killed, OOM), the stream ends with
``Failed(lost=True)`` and nothing else is affected.

Every run has an id: the worker's stream lines carry it, replies to ``load``/``place`` carry the
command's id instead, and a reader task routes each line to whoever waits for it. A run whose
consumer walked away (raised mid-stream) is cancelled and whatever it still sends is dropped.

A worker that stops answering (SIGSTOP, a hang in C) sends nothing and burns no CPU: after
``$ABTOP_STALL_TIMEOUT`` seconds (30) of that the run fails with "worker not responding" and
``lost``; the worker is left as it is (the TUI's Enter kills it and loads it again, ``close()``
kills it). A cancel the worker does not answer
within a second while it burns no CPU kills it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil

from backends.base import Backend, BackendError, GenParams, Placement
from backends.card.gguf import read_card
from backends.engines.httpbase import default_stall_timeout
from backends.events import EngineTimings, Event, Failed, Finished, Loaded, Started, Token
from backends.fetch.meter import Cancelled, Meter
from backends.specs import BUNDLED, TWIN_PREFIX

_STREAM_LIMIT = 1 << 20  # a single token line is tiny, but keep room for long error texts
WORKER = str(Path(__file__).with_name("llamacpp_worker.py"))
_TICK_S = 0.25
"""How often a stream with nothing to read looks at the worker (CPU time, a pending cancel)."""
CANCEL_GRACE_S = 1.0
"""A cancel not answered within this while the worker burns no CPU: it is killed."""


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

    def __init__(
        self,
        spec: str,
        path,
        n_ctx: int = 2048,
        placement: Placement | None = None,
        *,
        fetch=None,
        lazy_ple: str | None = None,
        repack: bool | None = None,
        flash_attn: str | None = None,
    ) -> None:
        super().__init__(spec)
        self.path = str(path or "")
        self.fetch = fetch
        """``(report, meter) -> Path``, run in a thread before each load: the file comes from
        elsewhere (``backends.fetch``); cached, it answers at once."""
        self._meter: Meter | None = None
        self.n_ctx = n_ctx
        self.lazy_ple = lazy_ple
        """``on``/``off``/``auto`` for llama.cpp's ``lazy_mode``; None: the engine's default."""
        self.repack = repack
        """False turns off llama.cpp's weight repacking (``use_extra_bufts``); None: its default."""
        self.flash_attn = flash_attn
        """``on``/``off``/``auto`` for llama.cpp's flash attention; None: auto, as llama.cpp's tools."""
        self.placement = placement or Placement()
        self.proc: asyncio.subprocess.Process | None = None
        self.log: collections.deque[str] = collections.deque(maxlen=400)
        """llama.cpp's own log lines (stderr of the worker), newest last."""
        self._replies: asyncio.Queue[dict | None] = asyncio.Queue()
        """Answers to ``load`` and ``place`` (lines without a run id); None: the worker is gone."""
        self._run = 0
        """The id of the latest run; lines of older runs are dropped."""
        self._run_q: asyncio.Queue[dict | None] | None = None
        """The lines of run ``_run`` while it streams."""
        self._eof = False
        self._cmd_id = 0
        self._cancel_at: float | None = None
        """When the run in flight was cancelled (``time.monotonic()``), None if it was not."""
        self._hung = False
        """The worker stopped answering: ``close()`` kills it rather than ask it to quit."""
        self._ps: psutil.Process | None = None
        self._tasks: list[asyncio.Task] = []
        self._oom_kills: int | None = None
        """The kernel's OOM-kill count when the worker started, to tell an OOM kill from ``kill -9``."""

    # -- process plumbing -------------------------------------------------------------------
    async def _spawn(self) -> None:
        self._oom_kills = oom_kills()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._replies, self._run_q, self._eof, self._hung, self._ps = asyncio.Queue(), None, False, False, None
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",  # isolated: no cwd, PYTHONPATH or user site on sys.path (the worker finds abtop)
            "-u",
            WORKER,
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
                msg = json.loads(line)
            except ValueError:
                self.log.append(line.decode("utf-8", "replace").rstrip())
                continue
            run = msg.get("run")
            if run is None:
                self._replies.put_nowait(msg)
            elif run == self._run and self._run_q is not None:
                self._run_q.put_nowait(msg)
            # else: a run nobody reads any more (its consumer walked away): dropped
        self._eof = True  # the worker is gone
        self._replies.put_nowait(None)
        if self._run_q is not None:
            self._run_q.put_nowait(None)

    async def _reply(self, cmd_id: int, timeout: float | None = None) -> dict | None:
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

    def _command(self, cmd: str, **fields) -> int | None:
        """Send a command that gets a reply; its id, or None when the worker cannot be written to."""
        self._cmd_id += 1
        return self._cmd_id if self._send(cmd=cmd, id=self._cmd_id, **fields) else None

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
        self.loaded = None  # a reload: nothing of the previous worker stays
        if self.fetch is not None:
            self.path = str(await self._fetch())
        # A missing, foreign or truncated file fails here, in one sentence; in a thread: a GGUF on
        # a slow disk must not hold the event loop (the other pane's tokens, the screen).
        info = await asyncio.to_thread(read_card, self.path)
        if self.spec in BUNDLED:  # "smollm2-135m" reads better than the GGUF's general.name
            info.name = self.spec
        elif not self.spec.startswith(TWIN_PREFIX):  # a path, or the file an hf: spec chose: by its name
            stem = re.sub(r"-\d{5}-of-\d{5}$", "", Path(self.path).stem)  # a split: the model, not its part
            info.name, info.gguf_name = stem, info.name
        threads = self.placement.threads or len(self.placement.cpus or ()) or os.cpu_count() or 1
        cpus = list(self.placement.cpus) if self.placement.cpus else None
        await self._spawn()
        cmd_id = self._command(
            "load", path=self.path, n_ctx=self.n_ctx, threads=threads, cpus=cpus, lazy_ple=self.lazy_ple, repack=self.repack,
            flash_attn=self.flash_attn,
        )
        msg = None if cmd_id is None else await self._reply(cmd_id)
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
            lazy_ple=msg.get("lazy_ple"),
            repack=msg.get("repack"),
            context=msg.get("context"),
        )
        self.lazy_tensors = msg.get("lazy_tensors") or []
        """Tensors llama.cpp reads on demand (its load log), e.g. a PLE table with ``--lazy-ple on``."""
        self.repacked_tensors: list[str] = msg.get("repacked_tensors") or []
        """Tensors llama.cpp copied into ``CPU_REPACK`` buffers at load (its load log)."""
        try:
            self._ps = psutil.Process(msg["pid"])
        except psutil.Error:
            self._ps = None
        return self.loaded

    async def plan(self, ctxs: list[int], **kv_types: str) -> dict:
        """llama.cpp's own plan for this model at each context, with nothing allocated (the worker's
        ``plan``): ``{contexts: [{n_ctx, kv_bytes, compute_bytes, output_bytes, …}], runtime_anon,
        runtime_file, gpu_offload}``; ``type_k``/``type_v`` name other KV cache types. In a worker
        of its own, closed after (a model llama.cpp cannot read may abort it: that is a
        ``BackendError``, never this process)."""
        if self.fetch is not None:
            self.path = str(await self._fetch())
        await self._spawn()
        try:
            cmd_id = self._command(
                "plan", path=self.path, ctxs=list(ctxs), lazy_ple=self.lazy_ple, repack=self.repack,
                flash_attn=self.flash_attn, **kv_types,
            )  # fmt: skip
            msg = None if cmd_id is None else await self._reply(cmd_id)
            if msg is None:
                reason = (await self._death_sentence()).rstrip(".")
                last = next((ln for ln in reversed(self.log) if "error" in ln.lower() or "assert" in ln.lower()), "")
                raise BackendError(f"{reason} while planning{': ' + last.strip() if last else ''}.")
            if msg.get("ev") != "planned":
                raise BackendError(f"{self.label}: {msg.get('reason', 'the worker could not plan the model.')}")
            return msg
        finally:
            await self.close()

    async def _fetch(self):
        """Run ``fetch`` in a thread; its events reach ``report`` on this loop's thread."""
        loop = asyncio.get_running_loop()
        report = self.report

        def on_loop(ev) -> None:
            loop.call_soon_threadsafe(report, ev)

        self._meter = Meter(on_loop)
        try:
            return await asyncio.to_thread(self.fetch, on_loop, self._meter)
        except Cancelled:
            raise BackendError(f"{self.spec}: download stopped.") from None
        finally:
            self._meter = None

    async def place(self, placement: Placement) -> None:
        self.placement = placement
        if self.loaded is None:
            return
        cmd_id = self._command("place", threads=placement.threads, cpus=list(placement.cpus or ()) or None)
        if cmd_id is not None:
            msg = await self._reply(cmd_id, default_stall_timeout())  # a hung worker does not hold us
            if msg is not None and msg.get("ev") == "placed":
                self.loaded.threads = msg["threads"]
                self.loaded.cpus = list(placement.cpus) if placement.cpus else None

    async def stream(self, prompt: str, params: GenParams) -> AsyncIterator[Event]:
        if self.loaded is None:
            yield Failed(f"{self.label}: not ready (load it first).")
            return
        if self._run_q is not None:  # an earlier run's consumer walked away without closing it
            self._send(cmd="cancel", run=self._run)
            self._run_q.put_nowait({"ev": "superseded"})
        self._run += 1
        run = self._run
        q = self._run_q = asyncio.Queue()
        self._cancel_at = None
        if self._eof:
            q.put_nowait(None)
        done = False
        try:
            sent = self._send(
                cmd="gen",
                run=run,
                prompt=prompt,
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                seed=params.seed,
                working_set=params.working_set,
                depth=params.depth,
                send_every_s=params.send_every_s,
            )
            if not sent:
                done = True
                yield Failed(await self._death_sentence(), lost=True)
                return
            watch = _Watch(self._ps, default_stall_timeout())
            while True:
                if q.empty():
                    try:
                        msg = await asyncio.wait_for(q.get(), _TICK_S)
                    except asyncio.TimeoutError:
                        verdict = watch.check(self._cancel_at)
                        if verdict is not None:
                            done = True
                            yield self._unresponsive(verdict, watch)
                            return
                        continue
                else:
                    msg = q.get_nowait()
                watch.heard()
                if msg is None:
                    done = True
                    yield Failed(await self._death_sentence(), lost=True)
                    return
                ev = msg["ev"]
                if ev == "tok":
                    yield Token(msg["s"], msg["t"], msg.get("n", 1))
                elif ev == "started":
                    yield Started(msg["t"], msg["prompt_tokens"])
                elif ev == "finished":
                    done = True
                    yield Finished(
                        msg["t"],
                        msg["stop"],
                        msg["gen_tokens"],
                        EngineTimings(**msg["engine"]) if msg.get("engine") else None,
                        working_set=msg.get("working_set"),
                        working_set_note=msg.get("working_set_note"),
                    )
                    return
                elif ev == "failed":
                    done = True
                    yield Failed(f"{self.label}: {msg['reason']}", msg["t"])
                    return
                elif ev == "superseded":
                    done = True
                    yield Failed(f"{self.label}: a newer run took the worker; this one was cancelled.")
                    return
        finally:
            if self._run == run:
                if not done:  # the consumer walked away mid-run: stop the worker's generation
                    self._send(cmd="cancel", run=run)
                self._run_q = None
                self._cancel_at = None

    async def score(self, text: str, *, window: int | None = None, stride: int | None = None, progress=None) -> dict:
        """The log-likelihood of ``text`` in the worker (``backends.quality.llama_score``): a run
        of its own id; ``progress(done, total)`` as tokens are scored. ``BackendError`` (one
        sentence) when it cannot be scored or the worker is lost."""
        if self.loaded is None:
            raise BackendError(f"{self.label}: not ready (load it first).")
        if self._run_q is not None:
            raise BackendError(f"{self.label}: busy with a run; score it after.")
        self._run += 1
        run = self._run
        q = self._run_q = asyncio.Queue()
        if self._eof:
            q.put_nowait(None)
        done = False
        try:
            if not self._send(cmd="score", run=run, text=text, window=window, stride=stride):
                done = True
                raise BackendError(await self._death_sentence())
            while True:
                msg = await q.get()
                if msg is None:
                    done = True
                    raise BackendError(await self._death_sentence())
                if msg["ev"] == "score_progress":
                    if progress is not None:
                        progress(msg["done"], msg["total"])
                elif msg["ev"] == "scored":
                    done = True
                    return msg["result"]
                elif msg["ev"] == "failed":
                    done = True
                    raise BackendError(f"{self.label}: {msg['reason']}")
        finally:
            if self._run == run:
                if not done:  # interrupted: stop the worker's scoring
                    self._send(cmd="cancel", run=run)
                self._run_q = None

    def _unresponsive(self, verdict: str, watch: _Watch) -> Failed:
        """The run's end when the worker stopped answering: a stall, or a cancel it ignored."""
        pid = self.loaded.pid if self.loaded else None
        if verdict == "cancel":
            self.kill_now()
            return Failed(
                f"{self.label}: the worker did not answer the cancel within {CANCEL_GRACE_S:g} s and was killed "
                f"(pid {pid}).",
                lost=True,
            )
        self._hung = True
        return Failed(
            f"{self.label}: worker not responding (pid {pid}: no token and no CPU time for {watch.stall_s:g} s).",
            lost=True,
        )

    async def cancel(self) -> None:
        if self._run_q is not None:
            self._send(cmd="cancel", run=self._run)
            if self._cancel_at is None:
                self._cancel_at = time.monotonic()

    async def close(self) -> None:
        if self._meter is not None:  # a download in flight stops at its next chunk
            self._meter.cancel()
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None and (self._hung or _stopped(self._ps)):  # it would not hear "quit"
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
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass



def _stopped(ps: psutil.Process | None) -> bool:
    try:
        return ps is not None and ps.status() == psutil.STATUS_STOPPED
    except psutil.Error:
        return False


class _Watch:
    """Whether a silent worker still works: a line heard or CPU time spent is progress."""

    def __init__(self, ps: psutil.Process | None, stall_s: float) -> None:
        self.ps, self.stall_s = ps, stall_s
        self.cpu = self._cpu()
        self.progress = time.monotonic()

    def _cpu(self) -> float | None:
        try:
            return sum(self.ps.cpu_times()[:2]) if self.ps is not None else None
        except psutil.Error:
            return None

    def heard(self) -> None:
        self.progress = time.monotonic()

    def check(self, cancel_at: float | None) -> str | None:
        """After a quiet tick: "cancel" (a cancel unanswered and no CPU spent for the grace),
        "stall" (no line and no CPU for ``stall_s``), or None."""
        now, cpu = time.monotonic(), self._cpu()
        if cpu is not None and self.cpu is not None and cpu - self.cpu > 0.005 and not _stopped(self.ps):
            self.progress = now
        self.cpu = cpu
        if cancel_at is not None and now - max(cancel_at, self.progress) >= CANCEL_GRACE_S:
            return "cancel"
        if cancel_at is not None and now - cancel_at >= self.stall_s:  # busy, yet deaf to the cancel
            return "cancel"
        if now - self.progress >= self.stall_s:
            return "stall"
        return None
