"""Drives two (or more) models through the same prompt: loading, placement, runs and sampling.

The TUI and ``abtop bench`` both use a ``Session``, so a figure on screen and a figure in an
export come from the same code. Everything that happens is handed to ``emit(slot, event)``;
the recorder, the panes and the bench collectors are all just ``emit`` callbacks.

Modes (see ``placements``):

- ``race``: all models at once; the cores are split between the local ones (threads and
  affinity), so each gets its share and neither collapses.
- ``alternate``: one model at a time with all cores, A then B, then B then A (each run another
  model goes first), run after run; the waiting pane gets a ``Note``. The uncontended figure a person should quote.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from backends.base import Backend, BackendError, GenParams, Placement
from backends.events import Event, Failed, Finished, Loaded, Note, Sample, Started, Token
from backends.specs import name_suffix
from backends.telemetry.process import Pace, ProcessSampler, sample_every
from backends.telemetry.remote import remote_sampler

Emit = Callable[[int, Event], None]


def available_cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def placements(mode: str, local: list[bool], threads: int | None = None) -> list[Placement]:
    """Where each model runs. Remote models get an empty placement (we do not own them)."""
    cpus = available_cpus()
    n_local = sum(local)
    out: list[Placement] = []
    if mode == "race" and n_local > 1 and len(cpus) >= n_local:
        size, extra = divmod(len(cpus), n_local)  # 3 models on 4 cores: 2, 1, 1
        start = i = 0
        for is_local in local:
            if not is_local:
                out.append(Placement())
                continue
            part = tuple(cpus[start : start + size + (i < extra)])
            start += len(part)
            i += 1
            out.append(Placement(threads=threads or len(part), cpus=part))
        return out
    # alternate, or a single local model, or more local models than cores (race shares them: see
    # ``race_shares_cores``): all cores each
    return [Placement(threads=threads or len(cpus), cpus=tuple(cpus)) if loc else Placement() for loc in local]


def race_shares_cores(local: list[bool]) -> str | None:
    """The sentence when race mode cannot give each local model cores of its own, else None."""
    n_local, n_cpus = sum(local), len(available_cpus())
    if n_local <= n_cpus:
        return None
    return (
        f"race mode: {n_local} local models on {n_cpus} cores share them (no core of their own), so each "
        "one's speed depends on the others'; alternate mode (one at a time, all cores) is the fair figure."
    )


@dataclass
class RunPlan:
    prompt: str
    params: GenParams
    mode: str = "race"
    runs: int = 1
    warmup: int = 0
    working_set: bool = False
    """After the counted runs, one working-set probe run per model (alone, labelled ``probe``)."""


class Session:
    def __init__(
        self,
        backends: list[Backend],
        emit: Emit,
        *,
        mode: str = "race",
        threads: int | None = None,
        interval: float = 0.25,
        before_turn: Callable[[list[int]], Awaitable[None]] | None = None,
    ) -> None:
        self.backends = backends
        self.emit = emit
        self.before_turn = before_turn
        """Awaited with the models about to start (each run in race, each turn in alternate), while
        no model of this plan computes: a UI redraws there what the last turn's end and this one's
        start changed, out of the windows its models' figures time. ``Started`` carries the
        worker's own clock, so the wait is in no figure."""
        self.mode = mode
        self.threads = threads
        self.interval = interval
        self.pace = Pace(interval)
        """Every sampler of the session reads on this one clock: ``interval`` s apart while a plan
        runs, about once a second between runs (``telemetry.process.Pace``)."""
        self.loaded: list[Loaded | None] = [None] * len(backends)
        self.alive: list[bool] = [False] * len(backends)
        self._samplers: dict[int, tuple[asyncio.Task, asyncio.Event]] = {}
        """Per slot: the task sampling its process or server, and the event that stops it."""
        self._cancelled = False
        self._closed = False
        self._running = False
        self._benched: set[int] = set()
        """Models sitting out the current plan (they failed before they ever streamed in it)."""
        self._streamed: set[int] = set()
        self._oom: set[int] = set()
        """Models the kernel's OOM killer took: not loaded again by ``reload_failed``."""

    # -- loading ---------------------------------------------------------------------------------
    async def load(self) -> None:
        """Load every model at once; a model that fails gets a ``Failed`` and the others go on."""
        plans = placements(self.mode, [b.local_process for b in self.backends], self.threads)
        for b, p in zip(self.backends, plans, strict=True):
            if b.local_process:
                b.placement = p
        mode = self.mode
        await asyncio.gather(*(self._load_one(i) for i in range(len(self.backends))))
        # The survivors of a failed load take its cores; a mode chosen while loading applies now.
        if self.mode != mode or any(self.alive) and not all(self.alive):
            await self.set_mode(self.mode)
            for i in self._live():  # the placement each model really has (panes, recordings, exports)
                self.emit(i, self.loaded[i])

    async def _load_one(self, i: int) -> None:
        b = self.backends[i]
        b.report = lambda ev: self._reported(i, ev)  # a download's progress, the file it chose, a loss
        try:
            loaded = await b.load()
        except BackendError as exc:
            self.emit(i, Failed(str(exc)))
            return
        except Exception as exc:  # an engine bug must not take the other model down
            self.emit(i, Failed(f"{b.spec}: could not load ({type(exc).__name__}: {exc})."))
            return
        # one file with other settings is named by what differs (gemma3-270m kv=q8_0), the same model twice by #2
        loaded.info.name += name_suffix([x.full_spec for x in self.backends], i)
        self.loaded[i] = loaded
        self.alive[i] = True
        self.emit(i, loaded)
        # A process on this machine (worker, local server) is sampled directly; a server elsewhere
        # through what it says about itself (Prometheus /metrics, Ollama /api/ps), else "remote".
        # NVML's init and the first smaps read block: the sampler is made in a thread
        sampler = await asyncio.to_thread(ProcessSampler, loaded.pid, loaded.weights_path) if loaded.pid else remote_sampler(b)
        if sampler is not None and self._closed:  # closed while the sampler was being made
            sampler.close()
        elif sampler is not None:
            stop = asyncio.Event()
            self._samplers[i] = (asyncio.create_task(self._sample_loop(i, sampler, stop)), stop)

    async def _sample_loop(self, i: int, sampler, stop: asyncio.Event) -> None:
        try:
            await sample_every(sampler, self.interval, lambda s: self._sample(i, s), stop, self.pace)
        finally:  # after its thread has returned: a sampler is never closed mid-reading
            sampler.close()

    def _stop_sampler(self, i: int) -> asyncio.Task | None:
        """Ask slot ``i``'s sampler to stop; it closes itself once its reading in flight is done."""
        old = self._samplers.pop(i, None)
        if old is None:
            return None
        old[1].set()
        return old[0]

    async def reload_failed(self) -> list[int]:
        """Load again every model that failed to load or whose worker was lost: Enter after the
        server was started or the file fixed retries them, as restarting abtop would. Returns the
        slots that are back."""
        todo = [i for i, ok in enumerate(self.alive) if not ok and i not in self._oom]
        if not todo:
            return []
        for i in todo:
            self._stop_sampler(i)  # the old process's sampler goes with it
            await self.backends[i].close()
        await asyncio.gather(*(self._load_one(i) for i in todo))
        back = [i for i in todo if self.alive[i]]
        if back:  # two models share the cores again (race), or the survivor keeps them all
            before = {i: (self.loaded[i].threads, list(self.loaded[i].cpus or [])) for i in self._live()}
            await self.set_mode(self.mode)
            for i in self._live():  # the placement each really has now, where it changed
                if i in back or before[i] != (self.loaded[i].threads, list(self.loaded[i].cpus or [])):
                    self.emit(i, self.loaded[i])
        return back

    async def replace(self, i: int, backend: Backend) -> bool:
        """Put ``backend`` in slot ``i`` (``i == len(backends)`` adds one): the old model's worker
        closes, the new one loads as a failed one is loaded again, the cores are split again."""
        if i == len(self.backends):
            self.backends.append(backend)
            self.loaded.append(None)
            self.alive.append(False)
        else:
            self.alive[i], self.loaded[i] = False, None
            self._stop_sampler(i)
            old, self.backends[i] = self.backends[i], backend
            await old.close()
        self._oom.discard(i)
        return i in await self.reload_failed()

    def _reported(self, i: int, ev: Event) -> None:
        """What an engine says outside a run: a worker lost while idle is no longer alive (the
        next run loads it again), and its sampler stops reading a process that is gone."""
        if isinstance(ev, Failed) and ev.lost and self.alive[i]:
            self.alive[i] = False
            self._stop_sampler(i)
            if "out-of-memory" in ev.reason:  # loading it again would only do it again
                self._oom.add(i)
        self.emit(i, ev)

    def _sample(self, i: int, s: Sample) -> None:
        if self.alive[i]:
            self.emit(i, s)

    # -- running -----------------------------------------------------------------------------------
    async def set_mode(self, mode: str) -> None:
        self.mode = mode
        plans = placements(mode, [b.local_process and ok for b, ok in zip(self.backends, self.alive, strict=True)], self.threads)
        for i, (b, p) in enumerate(zip(self.backends, plans, strict=True)):
            if self.alive[i] and b.local_process:
                await b.place(p)

    async def run(self, plan: RunPlan) -> None:
        """All runs of ``plan``; returns when they are done or cancelled."""
        self._cancelled = False
        self._running = True
        self.pace.busy()
        try:
            if plan.mode != self.mode:
                await self.set_mode(plan.mode)
            total = plan.warmup + plan.runs
            # A model that fails before it ever streamed in this plan (prompt longer than its
            # context, unknown model on a server) would fail the same way on every run: it sits
            # out the rest. One that has streamed keeps its turns (a 503 may not come back).
            self._benched = set()
            self._streamed = set()
            waiting: set[int] = set()
            for k in range(total):
                warm = k < plan.warmup
                run = k - plan.warmup
                if self._cancelled or not self._runnable():
                    break
                if plan.mode == "race":
                    if not await self._before(self._runnable()):
                        break
                    await asyncio.gather(*(self._stream(i, plan, run, warm) for i in self._runnable()))
                else:
                    order = self._runnable()
                    shift = k % len(order)  # each run another model goes first: none always has the cold box
                    for i in order[shift:] + order[:shift]:
                        if self._cancelled:
                            break
                        waiting.discard(i)
                        for j in self._runnable():
                            if j != i:
                                self.emit(j, Note(f"waiting: {self._name(i)} runs alone (alternate mode)"))
                                waiting.add(j)
                        if not await self._before([i]):
                            break
                        await self._stream(i, plan, run, warm)
            if plan.working_set:  # alone, after the speed runs: it starts from evicted pages
                probe = dataclasses.replace(plan, params=dataclasses.replace(plan.params, working_set=True))
                released: set[int] = set()
                try:
                    for i in self._runnable():
                        if self._cancelled:
                            break
                        for j in self._runnable():
                            if j != i:
                                self.emit(j, Note(f"waiting: {self._name(i)} runs its working-set probe alone"))
                                waiting.add(j)
                        # one file in several columns (a sweep): a page another worker maps cannot be
                        # evicted, so the others drop their mapping's pages for this probe
                        for j in self._same_file(i):
                            await self.backends[j].share_pages(release=True)
                            released.add(j)
                        if not await self._before([i]):
                            break
                        await self._stream(i, probe, plan.runs, False)
                finally:
                    for j in sorted(released):  # their next runs are not cold
                        if self.alive[j]:
                            await self.backends[j].share_pages(release=False)
        finally:
            self._running = False
            self.pace.rest()
            for i in sorted(waiting):  # nobody is waiting any more (a failure's sentence stays)
                self.emit(i, Note(""))

    async def _before(self, slots: list[int]) -> bool:
        """``before_turn``; False if the plan was cancelled meanwhile (its models do not start)."""
        if self.before_turn is not None and not self._cancelled:
            await self.before_turn(slots)
        return not self._cancelled

    def _same_file(self, i: int) -> list[int]:
        """The other live models whose worker maps model ``i``'s weights file."""
        path = self.loaded[i].weights_path if self.loaded[i] else None
        return [
            j for j in self._live() if j != i and path and self.loaded[j] and self.loaded[j].weights_path == path
        ]

    def _live(self) -> list[int]:
        return [i for i, ok in enumerate(self.alive) if ok]

    def _runnable(self) -> list[int]:
        return [i for i in self._live() if i not in self._benched]

    def _name(self, i: int) -> str:
        lo = self.loaded[i]
        return lo.info.name if lo else self.backends[i].spec

    async def _stream(self, i: int, plan: RunPlan, run: int, warmup: bool) -> None:
        b = self.backends[i]
        try:
            async for ev in b.stream(plan.prompt, plan.params):
                if isinstance(ev, Started):  # the session numbers the runs and says how they ran
                    ev.run, ev.warmup, ev.probe, ev.mode = run, warmup, plan.params.working_set, plan.mode
                elif isinstance(ev, Finished) and plan.params.working_set and ev.working_set is None:
                    ev.working_set_note = ev.working_set_note or (
                        f"{b.kind} server: abtop does not own its process, so it cannot see which pages it reads."
                        if not b.local_process
                        else "this engine does not report a working set."
                    )
                self.emit(i, ev)
                if isinstance(ev, Token):
                    self._streamed.add(i)
                elif isinstance(ev, Failed):
                    if ev.lost:
                        self.alive[i] = False
                        if "out-of-memory" in ev.reason:  # loading it again would only do it again
                            self._oom.add(i)
                    elif i not in self._streamed:
                        self._benched.add(i)
        except Exception as exc:  # an adapter bug: contain it to this pane
            self.emit(i, Failed(f"{self._name(i)}: stream failed ({type(exc).__name__}: {exc})."))
            self._benched.add(i)

    @property
    def running(self) -> bool:
        return self._running

    async def cancel(self) -> None:
        self._cancelled = True
        await asyncio.gather(*(b.cancel() for b in self.backends), return_exceptions=True)

    async def close(self) -> None:
        self._cancelled = self._closed = True
        tasks = [t for t in (self._stop_sampler(i) for i in list(self._samplers)) if t is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=2.0)  # a reading takes milliseconds
            for t in late:
                t.cancel()
        await asyncio.gather(*(b.close() for b in self.backends), return_exceptions=True)
