"""Local GGUF models through llama-cpp-python, one worker process per model: the engine's side.

The worker (``llamacpp_worker.py``) owns the model; ``llamacpp_process.WorkerProcess`` starts it,
speaks JSON lines to it and routes its lines; this adapter turns them into events. If the worker
dies (killed, OOM), the stream ends with ``Failed(lost=True)`` and nothing else is affected; one
that dies between runs is reported at once, through ``report``, with the same ``Failed(lost=True)``.

A worker that stops answering (SIGSTOP, a hang in C) sends nothing and burns no CPU: after
``$ABTOP_STALL_TIMEOUT`` seconds (30) of that the run fails with "worker not responding" and
``lost``; the worker is left as it is (the TUI's Enter kills it and loads it again, ``close()``
kills it). A cancel the worker does not answer
within a second while it burns no CPU kills it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil

from backends.base import Backend, BackendError, GenParams, Placement
from backends.card.gguf import read_card
from backends.engines.blocking import off_loop
from backends.engines.httpbase import default_stall_timeout
from backends.engines.llamacpp_process import WorkerProcess, stopped
from backends.events import EngineTimings, Event, Failed, Finished, Loaded, Note, Started, Token
from backends.fetch.meter import Cancelled, Meter
from backends.specs import BUNDLED, TWIN_PREFIX

_TICK_S = 0.25
"""How often a stream with nothing to read looks at the worker (CPU time, a pending cancel)."""
CANCEL_GRACE_S = 1.0
"""A cancel not answered within this while the worker burns no CPU: it is killed."""
OPEN_SLOW_S = 10.0
"""A model file whose header is still not read after this is said to be stuck opening."""


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
        threads: int | None = None,
        type_k: str | None = None,
        type_v: str | None = None,
        n_gpu_layers: int | None = None,
        n_cpu_moe: int | None = None,
        use_mmap: bool | None = None,
        use_mlock: bool | None = None,
    ) -> None:
        super().__init__(spec)
        self.threads = threads
        """This model's own thread count (``SPEC,threads=N``): it wins over the session's placement."""
        self.engine = {
            "type_k": type_k,
            "type_v": type_v,
            "n_gpu_layers": n_gpu_layers,
            "n_cpu_moe": n_cpu_moe,
            "use_mmap": use_mmap,
            "use_mlock": use_mlock,
        }
        """Per-model llama.cpp load options (None: the engine's default), passed to the worker."""
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
        self.worker = WorkerProcess()
        """The worker process: started by ``load()``, ended by ``close()``."""
        self.worker.on_idle_death = self._lost_while_idle
        self._cancel_at: float | None = None
        """When the run in flight was cancelled (``time.monotonic()``), None if it was not."""

    def _name(self) -> str:
        """The model as a lost worker's sentence names it."""
        return self.spec if self.spec in BUNDLED else os.path.basename(self.path)

    async def _death_sentence(self) -> str:
        return await self.worker.death_sentence(self._name())

    async def _lost_while_idle(self, run: int) -> None:
        if self.loaded is None:  # a load in flight hears it from its own reply
            return
        reason = await self._death_sentence()
        if self.worker.run_id == run and not self.worker.closing:  # a run started meanwhile said it itself
            self.report(Failed(reason, lost=True))

    # -- Backend ----------------------------------------------------------------------------
    async def load(self) -> Loaded:
        self.loaded = None  # a reload: nothing of the previous worker stays
        if self.fetch is not None:
            self.path = str(await self._fetch())
        # A missing, foreign or truncated file fails here, in one sentence; in a thread: a GGUF on
        # a slow disk must not hold the event loop (the other pane's tokens, the screen), and one
        # that never opens (a FIFO, a hung network filesystem) must not hold quitting (off_loop).
        info = self._named(await self._read_card())
        threads = self.threads or self.placement.threads or len(self.placement.cpus or ()) or os.cpu_count() or 1
        cpus = list(self.placement.cpus) if self.placement.cpus else None
        w = self.worker
        await w.spawn()
        cmd_id = w.command(
            "load", path=self.path, n_ctx=self.n_ctx, threads=threads, cpus=cpus, lazy_ple=self.lazy_ple, repack=self.repack,
            flash_attn=self.flash_attn, **self.engine,
        )
        msg = None if cmd_id is None else await w.reply(cmd_id)
        if msg is None or msg.get("ev") != "loaded":
            raise await self._load_failed(msg, info.name)
        self.loaded = self._loaded(msg, info, cpus)
        try:
            w.ps = psutil.Process(msg["pid"])
        except psutil.Error:
            w.ps = None
        return self.loaded

    def _named(self, info):
        """The card's name as a person knows the model: the bundled alias, or the file's name
        (the GGUF's ``general.name`` kept as ``gguf_name``); a twin keeps its own."""
        if self.spec in BUNDLED:  # "smollm2-135m" reads better than the GGUF's general.name
            info.name = self.spec
        elif not self.spec.startswith(TWIN_PREFIX):  # a path, or the file an hf: spec chose: by its name
            stem = re.sub(r"-\d{5}-of-\d{5}$", "", Path(self.path).stem)  # a split: the model, not its part
            info.name, info.gguf_name = stem, info.name
        return info

    async def _load_failed(self, msg: dict | None, name: str) -> BackendError:
        """The load's one sentence: the worker died (its last error line), or it said why."""
        if msg is None:
            reason = (await self._death_sentence()).rstrip(".")
            last = next((ln for ln in reversed(self.worker.log) if "error" in ln.lower()), "")
            return BackendError(f"{reason}{': ' + last.strip() if last else ''}.")
        await self.close()
        return BackendError(f"{name}: {msg.get('reason', 'the worker could not load the model.')}")

    def _loaded(self, msg: dict, info, cpus: list[int] | None) -> Loaded:
        """The worker's ``loaded`` line as the event (and the tensors its load log named)."""
        loaded = Loaded(
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
            settings=msg.get("settings"),
        )
        self.lazy_tensors = msg.get("lazy_tensors") or []
        """Tensors llama.cpp reads on demand (its load log), e.g. a PLE table with ``--lazy-ple on``."""
        self.repacked_tensors: list[str] = msg.get("repacked_tensors") or []
        """Tensors llama.cpp copied into ``CPU_REPACK`` buffers at load (its load log)."""
        return loaded

    async def _read_card(self):
        """The file's card, read off the loop; a read still blocked after ``OPEN_SLOW_S`` is said."""
        path, seen = self.path, {}

        def read():
            with contextlib.suppress(OSError):  # a stat that blocks too leaves "fifo" unknown
                seen["fifo"] = stat.S_ISFIFO(os.stat(path).st_mode)
            return read_card(path)

        def slow() -> None:
            why = {True: "it is a FIFO: is anything writing to it?", False: "a slow or hung disk?"}
            clause = why.get(seen.get("fifo"), "a hung network filesystem?")
            who = "" if self.spec == path else f"{self.spec}: "  # a path spec names itself
            self.report(Note(f"{who}still opening {path} after {OPEN_SLOW_S:g} s ({clause})"))

        return await off_loop(read, slow_s=OPEN_SLOW_S, on_slow=slow)

    async def plan(self, ctxs: list[int], **kv_types: str) -> dict:
        """llama.cpp's own plan for this model at each context, with nothing allocated (the worker's
        ``plan``): ``{contexts: [{n_ctx, kv_bytes, compute_bytes, output_bytes, …}], runtime_anon,
        runtime_file, gpu_offload}``; ``type_k``/``type_v`` name other KV cache types. In a worker
        of its own, closed after (a model llama.cpp cannot read may abort it: that is a
        ``BackendError``, never this process)."""
        if self.fetch is not None:
            self.path = str(await self._fetch())
        w = self.worker
        await w.spawn()
        try:
            cmd_id = w.command(
                "plan", path=self.path, ctxs=list(ctxs), lazy_ple=self.lazy_ple, repack=self.repack,
                flash_attn=self.flash_attn, **kv_types,
            )  # fmt: skip
            msg = None if cmd_id is None else await w.reply(cmd_id)
            if msg is None:
                reason = (await self._death_sentence()).rstrip(".")
                last = next((ln for ln in reversed(w.log) if "error" in ln.lower() or "assert" in ln.lower()), "")
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
        cmd_id = self.worker.command("place", threads=self.threads or placement.threads, cpus=list(placement.cpus or ()) or None)
        if cmd_id is not None:
            msg = await self.worker.reply(cmd_id, default_stall_timeout())  # a hung worker does not hold us
            if msg is not None and msg.get("ev") == "placed":
                self.loaded.threads = msg["threads"]
                self.loaded.cpus = list(placement.cpus) if placement.cpus else None

    async def share_pages(self, release: bool) -> None:
        if self.loaded is None:
            return
        cmd_id = self.worker.command("pages", release=release)
        if cmd_id is not None:
            await self.worker.reply(cmd_id, default_stall_timeout())  # a hung worker does not hold us

    async def stream(self, prompt: str, params: GenParams) -> AsyncIterator[Event]:
        if self.loaded is None:
            yield Failed(f"{self.label}: not ready (load it first).")
            return
        w = self.worker
        if w.run_q is not None:  # an earlier run's consumer walked away without closing it
            w.send(cmd="cancel", run=w.run_id)
            w.run_q.put_nowait({"ev": "superseded"})
        run, q = w.open_run()
        self._cancel_at = None
        done = False
        ticks = None
        try:
            sent = w.send(
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
            watch = _Watch(w.ps, default_stall_timeout())
            loop = asyncio.get_running_loop()
            ticks = _Ticks(loop, q)
            while True:
                msg = await q.get()
                if msg is _TICK:  # a quiet tick: no line since the last one
                    if loop.time() - ticks.heard_at < _TICK_S - 1e-3:
                        continue
                    verdict = watch.check(self._cancel_at)
                    if verdict is not None:
                        done = True
                        yield self._unresponsive(verdict, watch)
                        return
                    continue
                ticks.heard_at = loop.time()
                watch.heard()
                if msg is None:
                    done = True
                    yield Failed(await self._death_sentence(), lost=True)
                    return
                event = self._event(msg)
                if isinstance(event, (Finished, Failed)):  # the run's last line
                    done = True
                    yield event
                    return
                if event is not None:
                    yield event
        finally:
            if ticks is not None:
                ticks.stop()
            if w.run_id == run:  # not done: the consumer walked away mid-run; the worker stops it
                w.close_run(run, cancel=not done)
                self._cancel_at = None

    def _event(self, msg: dict) -> Event | None:
        """A run's line from the worker as its event (None for a line a run does not show)."""
        ev = msg["ev"]
        if ev == "tok":
            return Token(msg["s"], msg["t"], msg.get("n", 1))
        if ev == "started":
            return Started(msg["t"], msg["prompt_tokens"])
        if ev == "finished":
            return Finished(
                msg["t"],
                msg["stop"],
                msg["gen_tokens"],
                EngineTimings(**msg["engine"]) if msg.get("engine") else None,
                working_set=msg.get("working_set"),
                working_set_note=msg.get("working_set_note"),
            )
        if ev == "failed":
            return Failed(f"{self.label}: {msg['reason']}", msg["t"])
        if ev == "superseded":
            return Failed(f"{self.label}: a newer run took the worker; this one was cancelled.")
        return None

    async def score(self, text: str, *, window: int | None = None, stride: int | None = None, progress=None) -> dict:
        """The log-likelihood of ``text`` in the worker (``backends.quality.llama_score``): a run
        of its own id; ``progress(done, total)`` as tokens are scored. ``BackendError`` (one
        sentence) when it cannot be scored or the worker is lost."""
        on_step = None if progress is None else lambda msg: progress(msg["done"], msg["total"])
        msg = await self._worker_run("score", "score it after", "score_progress", on_step, "scored",
                                     text=text, window=window, stride=stride)  # fmt: skip
        return msg["result"]

    async def evaluate(self, items: list[dict], *, reuse: bool = True, on_item=None) -> dict:
        """Standard-task items in the worker (``backends.quality.eval.llama_eval``): ``on_item(line)``
        for each item as it is read; the run's totals (``cancelled`` True when ``cancel()`` stopped
        it after the item in hand). ``BackendError`` (one sentence) when the worker is lost."""
        return await self._worker_run("eval", "run the eval after", "eval_item", on_item, "evaluated", items=items, reuse=reuse)

    async def _worker_run(self, command: str, after: str, step: str, on_step, end: str, **args) -> dict:
        """Drive one worker run of its own id that is not a stream (score, eval): send ``command``
        with ``args``, hand each ``step`` reply to ``on_step(msg)``, return the ``end`` reply.
        ``BackendError`` (one sentence) when not loaded, busy (``after`` says when to ask again),
        failed in the worker, or the worker is lost. Interrupted (cancelled, an ``on_step`` that
        raised), the worker is told to stop the run."""
        if self.loaded is None:
            raise BackendError(f"{self.label}: not ready (load it first).")
        w = self.worker
        if w.run_q is not None:
            raise BackendError(f"{self.label}: busy with a run; {after}.")
        run, q = w.open_run()
        done = False
        try:
            if not w.send(cmd=command, run=run, **args):
                done = True
                raise BackendError(await self._death_sentence())
            while True:
                msg = await q.get()
                if msg is None:
                    done = True
                    raise BackendError(await self._death_sentence())
                if msg["ev"] == step:
                    if on_step is not None:
                        on_step(msg)
                elif msg["ev"] == end:
                    done = True
                    return msg
                elif msg["ev"] == "failed":
                    done = True
                    raise BackendError(f"{self.label}: {msg['reason']}")
        finally:
            w.close_run(run, cancel=not done)  # interrupted: the worker stops the run

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
        self.worker.hung = True
        return Failed(
            f"{self.label}: worker not responding (pid {pid}: no token and no CPU time for {watch.stall_s:g} s).",
            lost=True,
        )

    async def cancel(self) -> None:
        w = self.worker
        if w.run_q is not None:
            w.send(cmd="cancel", run=w.run_id)
            if self._cancel_at is None:
                self._cancel_at = time.monotonic()

    async def close(self) -> None:
        if self._meter is not None:  # a download in flight stops at its next chunk
            self._meter.cancel()
        # A worker still loading is killed at once: a load can block for good, and there is
        # nothing of it to keep.
        await self.worker.close(kill=self.loaded is None)

    def kill_now(self) -> None:
        """Synchronous last resort for exit paths where no event loop is left to await on."""
        self.worker.kill_now()


_TICK = {"ev": "tick"}
"""Put in a run's queue every ``_TICK_S`` by ``_Ticks``."""


class _Ticks:
    """A tick in a run's queue every ``_TICK_S``, so its reader can tell a silent worker without
    ``asyncio.wait_for`` around each ``get``: that makes a task and a timer per line (~25 lines a
    second a model), on the cores the models need; this is one timer a quarter second."""

    def __init__(self, loop: asyncio.AbstractEventLoop, q: asyncio.Queue) -> None:
        self.loop, self.q = loop, q
        self.heard_at = loop.time()
        """Loop time of the last line; a tick sooner after it than ``_TICK_S`` is not quiet."""
        self._handle = loop.call_later(_TICK_S, self._tick)

    def _tick(self) -> None:
        self.q.put_nowait(_TICK)
        self._handle = self.loop.call_later(_TICK_S, self._tick)

    def stop(self) -> None:
        self._handle.cancel()


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
        if cpu is not None and self.cpu is not None and cpu - self.cpu > 0.005 and not stopped(self.ps):
            self.progress = now
        self.cpu = cpu
        if cancel_at is not None and now - max(cancel_at, self.progress) >= CANCEL_GRACE_S:
            return "cancel"
        if cancel_at is not None and now - cancel_at >= self.stall_s:  # busy, yet deaf to the cancel
            return "cancel"
        if now - self.progress >= self.stall_s:
            return "stall"
        return None
