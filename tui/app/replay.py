"""Play a recording (``--record FILE.jsonl``) back in the same TUI, with no model and no engine.

``ReplayApp`` is an ``ABTopApp`` whose event source is the file instead of a ``Session``: each
recorded ``(slot, event)`` is handed to ``emit`` at its recorded offset divided by ``speed``, so
the panes, the stats line, the exports and the plots are the very ones of a live run.

Timestamps are shifted by one constant onto the current clock (never scaled), so every figure
(TTFT, tok/s, inter-token latency) is the recorded one whatever the speed; the panes' own clock
(live tok/s sparkline, elapsed) runs ``speed`` times faster to match. Idle stretches between runs
(a person typing a prompt) are cut to ``IDLE_MAX`` seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from textual import work
from textual.binding import Binding

from backends.base import GenParams
from backends.events import (
    EngineTimings,
    Event,
    Failed,
    Finished,
    Loaded,
    ModelInfo,
    Note,
    Sample,
    Started,
    Token,
    now,
)
from tui.app.app import ABTopApp
from tui.files.record import SCHEMA, Recorder, read_recording
from tui.text.safe import safe
from tui.widgets.host import HostBar

RECORDED = frozenset({"mode", "edit_prompt"})
"""Keys a replay does not offer: the recorded prompt and mode stay."""
IDLE_MAX = 1.0
"""Seconds of recorded idle time (no stream in flight) kept between runs."""
FIRST_WAIT = 0.25
"""Seconds kept between the models being loaded and the first run (the person typing Enter)."""


class ReplayError(Exception):
    """A recording that cannot be played; ``str()`` is one sentence."""


def load(path: str | Path) -> tuple[dict, list[tuple[int, Event]]]:
    """The header and events of ``path``, or ``ReplayError`` saying what is wrong with it."""
    try:
        header, events = read_recording(path)
    except ValueError as exc:
        raise ReplayError(str(exc)) from None
    if not events:
        raise ReplayError(f"{path}: the recording holds no events (was the run started?).")
    return header, events


def select(header: dict, events: list[tuple[int, Event]], only: str | None, max_panes: int, *,
           source: str = "the recording") -> tuple[dict, list]:
    """The models ``only`` names (``"1,3"``: numbered from 1 as in the header), their slots renumbered;
    all of them when ``only`` is None. ``ReplayError`` when that is more than ``max_panes`` (a bench
    of up to eight models is recorded whole; the TUI shows four) or ``only`` is not such a list."""
    specs = list(header.get("specs") or [])
    n = len(specs)
    if only is None:
        if n > max_panes:
            raise ReplayError(f"{source} holds {n} models and the TUI shows {max_panes} at most; "
                              f"pick them with --only, e.g. --only {','.join(map(str, range(1, max_panes + 1)))}.")  # fmt: skip
        return header, events
    try:
        keep = [int(x) - 1 for x in only.split(",")]
    except ValueError:
        keep = []
    if not keep or any(not 0 <= k < n for k in keep) or len(set(keep)) != len(keep):
        raise ReplayError(f"--only {only}: give distinct model numbers between 1 and {n}, with commas (e.g. --only 1,3).")
    if len(keep) > max_panes:
        raise ReplayError(f"--only {only}: {len(keep)} models; the TUI shows {max_panes} at most.")
    slot = {old: new for new, old in enumerate(keep)}
    return {**header, "specs": [specs[k] for k in keep]}, [(slot[s], ev) for s, ev in events if s in slot]


def timeline(events: list[tuple[int, Event]], idle_max: float = IDLE_MAX) -> list[tuple[float, int, Event]]:
    """``(offset_s, slot, event)`` in recorded order, offsets from the first event.

    While no stream is in flight, telemetry older than ``idle_max`` past the last activity is
    dropped and the next run is pulled forward, so a replay does not show minutes of typing.
    """
    t0 = min(ev.t for _, ev in events)
    cut = 0.0
    last_active = 0.0
    streaming: set[int] = set()
    out_started = False
    out: list[tuple[float, int, Event]] = []
    for slot, ev in events:
        off = ev.t - t0 - cut
        limit = idle_max if out_started else FIRST_WAIT  # after loading, the first run starts soon
        idle = not streaming and off - last_active > limit
        if idle and isinstance(ev, Started):
            cut += off - last_active - limit
            off = last_active + limit
        elif idle and isinstance(ev, (Sample, Note)):
            continue  # telemetry and notes of an idle stretch
        if isinstance(ev, Started):
            streaming.add(slot)
            out_started = True
        elif isinstance(ev, (Finished, Failed)):
            streaming.discard(slot)
        if not isinstance(ev, (Sample, Note)):
            last_active = max(last_active, off)
        out.append((off, slot, ev))
    return out


class ReplayApp(ABTopApp):
    """``abtop replay``: the recorded run, as it happened, ``speed`` times faster."""

    TITLE = "abtop replay"
    BINDINGS = [Binding("enter", "run", "Replay", show=True)]  # Enter plays it again from the start

    def __init__(self, header: dict, events: list[tuple[int, Event]], *, speed: float = 1.0, source: str = "", **kw) -> None:
        p = header.get("params") or {}
        params = GenParams(
            max_tokens=p.get("max_tokens", 0), temperature=p.get("temperature", 0.0), seed=p.get("seed", 0)
        )
        super().__init__(
            list(header.get("specs") or ["model A", "model B"]),
            p.get("prompt") or "",
            params,
            mode=p.get("mode") or "race",
            n_ctx=p.get("n_ctx") or 0,
            runs=p.get("runs") or 1,
            warmup=p.get("warmup") or 0,
            **kw,
        )
        self.speed = speed
        self.source = source
        self.timeline = timeline(events)
        self.n_events = len(events)
        """Events in the recording (the timeline may drop idle telemetry)."""
        self.duration = self.timeline[-1][0] if self.timeline else 0.0
        """Seconds of recorded time the replay covers (after idle cuts)."""
        self._start = now()
        self.replayed = 0
        """Events handed to the panes so far."""

    def on_mount(self) -> None:
        super().on_mount()
        self.sub_title = safe(f"{self.source} ×{self.speed:g}")
        prompt = self.query_one("#prompt")
        prompt.disabled = True
        self.query_one(HostBar).display = False  # this machine's load says nothing of the recording
        for pane in self.panes:
            pane.clock = self.clock

    def clock(self) -> float:
        """The replay's time on the current clock: it runs ``speed`` times faster than ``now()``."""
        return self._start + (now() - self._start) * self.speed

    # -- the source: replaces loading models and running a Session ---------------------------------
    @work(group="run", exclusive=True, exit_on_error=False)
    async def _load(self) -> None:
        await self._probe_bandwidth()  # before the first run, as live: a run must not end before its roofline's bandwidth
        self.models_loaded.set()
        self._show_mode(self.mode)
        await self._play()

    async def _play(self) -> None:
        self.run_finished.clear()
        try:
            for pane in self.panes:
                pane.runs.clear()
            self.replayed = 0
            start = self._start = now()
            speed, gap = self.speed, self.MIN_GAP
            emit = self.emit
            for off, slot, ev in self.timeline:
                due, t = start + off / speed, now()
                if due - t > 0.002:  # events that are due together go out together
                    # and what falls due sooner than a frame may be drawn (``MIN_GAP`` after the
                    # last) waits until one may, as a local worker sends its tokens in batches: a
                    # wake-up a token (~70 a second for two models) costs more than the frames it
                    # cannot add to (the app's clock is ``now()``'s)
                    drawn = t if self._frame_soon else self._last_frame  # a frame of what went out is on its way
                    await asyncio.sleep(max(due, drawn + gap) - t)
                if isinstance(ev, Started) and ev.mode and ev.mode != self.mode:  # switched with m
                    self.mode = ev.mode
                    self._show_mode(ev.mode)
                if isinstance(ev, Started):  # as live: a race shares one socket's energy (app._run)
                    self.panes[slot].shared_energy = (ev.mode or self.mode) == "race" and len(self.panes) > 1
                emit(slot, dataclasses.replace(ev, t=start + off))  # type: ignore[type-var]
                self.replayed += 1
            self._end_open_streams()
        finally:
            for pane in self.panes:
                pane.flush()
            self.run_finished.set()

    def _end_open_streams(self) -> None:
        """A recording cut off mid-stream (abtop killed, a full disk): each stream still open ends
        here, saying so, rather than 'streaming' for ever. It is no figure: not counted."""
        n = self.n_events
        for slot, pane in enumerate(self.panes):
            c = pane.collector
            if c is not None and c.t_start is not None and c.t_end is None:
                self.emit(slot, Failed(f"recording ends here (truncated after {n} events)", self.clock()))

    def action_run(self) -> None:
        """Enter or r: play the recording again from the start."""
        self._load()

    def _show_mode(self, mode: str) -> None:
        for pane in self.panes:  # no one should take a replay for a live run
            pane.badge = f"replay ×{self.speed:g}"
        super()._show_mode(mode)

    def action_mode(self, mode: str) -> None:
        self.notify("A replay shows the recorded mode; it cannot be changed.", severity="warning")

    def check_action(self, action: str, parameters) -> bool | None:
        if action in RECORDED:
            return False
        return super().check_action(action, parameters)

    async def action_cancel(self) -> None:
        """Esc: stop playing; a stream cut short ends as cancelled (its clock stops)."""
        for w in self.workers:
            if w.group == "run":
                w.cancel()
        for pane in self.panes:
            c = pane.collector
            if c is not None and c.t_start is not None and c.t_end is None:
                pane.handle(Finished(self.clock(), "cancelled"))


def synthetic(
    tokens_per_s: float | Sequence[float] = 50.0,
    seconds: float = 2.0,
    *,
    models: int = 2,
    runs: int = 1,
    interval: float = 0.25,
    t0: float = 1000.0,
    moving: bool = False,
) -> tuple[dict, list[tuple[int, Event]]]:
    """A made-up recording, for tests and ``benchmarks/ui_stress.py``: ``models`` panes streaming
    at once (race mode) ``runs`` times, ``tokens_per_s`` × ``seconds`` tokens each (each further
    run 10 % faster, so a spread shows), with telemetry every ``interval`` seconds. A list of
    rates gives each model its own (``models`` is then its length), for ``seconds`` each.
    ``moving``: readings that move as a live model's do (CPU up and down, anonymous memory growing
    with the KV cache), so a screen redraws them as it would live; else the same reading throughout."""
    rates = [float(tokens_per_s)] * models if isinstance(tokens_per_s, (int, float)) else [float(r) for r in tokens_per_s]
    models = len(rates)
    names = [f"synthetic-{chr(ord('a') + i)}" for i in range(models)]
    counts = [max(2, int(r * seconds)) for r in rates]
    n = max(counts)
    header = {
        "schema": SCHEMA,
        "specs": names,
        "params": {"prompt": "synthetic", "max_tokens": n, "temperature": 0.0, "seed": 42, "runs": runs,
                   "warmup": 0, "mode": "race", "n_ctx": 2048},
    }  # fmt: skip
    out: list[tuple[int, Event]] = []
    for i, name in enumerate(names):
        info = ModelInfo(name, arch="llama", params=135_000_000, quant="Q4_1", file_bytes=100_000_000)
        out.append((i, Loaded(info, t0, "llama.cpp", 0.5, threads=1, cpus=[i])))
    events: list[tuple[float, int, Event]] = []
    start = t0 + 0.1
    for r in range(runs):
        last = start
        for i in range(models):
            rate, n = rates[i] * (1 + 0.1 * r), counts[i]
            events.append((start, i, Started(start, prompt_tokens=10, run=r)))
            ttft = 0.05 * (i + 1)
            for k in range(n):
                t = start + ttft + k / rate
                events.append((t, i, Token(f"w{k % 10} ", t)))
            end = start + ttft + (n - 1) / rate + 1e-4
            eng = EngineTimings("llama_perf_context", 10, ttft * 1000, n, (n - 1) / rate * 1000)
            events.append((end, i, Finished(end, "length", n, eng)))
            last = max(last, end)
        start = last + 0.3
    for i in range(models):
        t = t0 + 0.1
        k = 0
        while t < start:
            grow = 40_960 * k if moving else 0
            mem = (150 + 100 * i) * 10**6 + grow
            cpu = 95.0 - 7 * ((k * 3 + i) % 4) if moving else 95.0
            sample = Sample(t, cpu_percent=cpu, rss_bytes=mem, anon_bytes=50 * 10**6 + grow,
                            weights_resident_bytes=mem - 50 * 10**6 - grow, note="no GPU")  # fmt: skip
            events.append((t, i, sample))
            t += interval
            k += 1
    events.sort(key=lambda e: e[0])  # stable: a Started comes before a Sample of the same instant
    out += [(slot, ev) for _, slot, ev in events]
    return header, out


def write(path: str | Path, header: dict, events: list[tuple[int, Event]]) -> None:
    """Write ``header`` and ``events`` in the recorder's format."""
    rec = Recorder(path, header["specs"], header.get("params"))
    try:
        for slot, ev in events:
            rec.write(slot, ev)
    finally:
        rec.close()
