"""What telemetry costs the model: generation t/s with the sampler at 4 Hz vs off, in one run.

For each bundled model, through the real worker at all cores (alternate mode's placement, where
a sampler's CPU time would hurt most; ``--threads`` for fewer), runs are interleaved on, off, off,
on, … so drift on a noisy machine hits both sides alike. "on" is the TUI's sampler exactly as a session
runs it: ``ProcessSampler`` (CPU, /proc status, resident weights through pagemap at 1 Hz, USS
at 0.2 Hz, NVML when present) driven by ``sample_every`` in a thread of this process.

gen t/s is (tokens − 1) / (last − first token time), timestamped in the worker; llama.cpp's own
counter is printed beside it. Prints medians and the ratio on/off (goal ≥ 0.99), and the
sampler's own CPU time per reading (thread CPU time, kernel included): on a busy box the t/s
ratio swings by far more than the 1 % it is after, while the CPU the sampler takes from the
model's cores is steady: a thread delayed that long holds the others at llama.cpp's barrier, so
the expected ratio is about 1 − that share of a core.

    .venv/bin/python benchmarks/sampler_cost.py [--tokens 128] [--repeats 6] [--hz 4] [--threads N]

``--parent``: instead, what sampling costs the process that samples (the TUI's, ``bench``'s) in
all, readings, thread hops and the event loop's wakeups: both bundled workers loaded and at rest,
sampled as a session does while a plan runs (``Pace`` busy: every sampler at ``--hz`` on one grid),
``--seconds`` at a time, three times; the process's CPU time per second and per reading.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.base import GenParams, Placement  # noqa: E402
from backends.engines.llamacpp import LlamaCppBackend  # noqa: E402
from backends.session import available_cpus  # noqa: E402
from backends.specs import BUNDLED, bundled_path  # noqa: E402
from backends.stats import RunCollector  # noqa: E402
from backends.telemetry.process import Pace, ProcessSampler, sample_every  # noqa: E402

PROMPT = "Once upon a time, in a small village by the sea, there lived"


class TimedSampler:
    """A ``ProcessSampler`` whose readings count their own CPU time (in the sampling thread)."""

    def __init__(self, sampler: ProcessSampler) -> None:
        self.sampler, self.cpu_s, self.n = sampler, 0.0, 0

    def sample(self):
        t = time.thread_time()
        s = self.sampler.sample()
        self.cpu_s += time.thread_time() - t
        self.n += 1
        return s

    def blocking(self) -> bool:
        return self.sampler.blocking()


async def one_run(backend: LlamaCppBackend, tokens: int, sampler: TimedSampler | None, interval: float) -> tuple:
    """(gen t/s, engine t/s, samples taken) of one run, the sampler running throughout when given."""
    stop = asyncio.Event()
    taken: list[object] = []
    task = asyncio.create_task(sample_every(sampler, interval, taken.append, stop)) if sampler else None
    c = RunCollector()
    try:
        async for ev in backend.stream(PROMPT, GenParams(max_tokens=tokens)):
            c.add(ev)
    finally:
        stop.set()
        if task is not None:
            await task
    r = c.result()
    return r["gen_tps"], r["gen_tps_engine"], len(taken)


async def measure(alias: str, tokens: int, repeats: int, interval: float, threads: int) -> dict[str, list[float]]:
    path = bundled_path(alias)
    cpus = tuple(available_cpus()[:threads])
    backend = LlamaCppBackend(alias, path, n_ctx=512, placement=Placement(threads=len(cpus), cpus=cpus))
    loaded = await backend.load()
    sampler = TimedSampler(ProcessSampler(loaded.pid, loaded.weights_path))
    out: dict[str, list[float]] = {"on": [], "off": [], "on_engine": [], "off_engine": [], "samples": []}
    try:
        await one_run(backend, 16, None, interval)  # warm the worker once
        order = ["on", "off", "off", "on"] * ((repeats + 1) // 2)
        for side in order[: 2 * repeats]:
            gen, eng, n = await one_run(backend, tokens, sampler if side == "on" else None, interval)
            if gen is not None:
                out[side].append(gen)
            if eng is not None:
                out[side + "_engine"].append(eng)
            if side == "on":
                out["samples"].append(n)
    finally:
        sampler.sampler.close()
        await backend.close()
    out["cpu_ms_per_sample"] = [1000 * sampler.cpu_s / max(sampler.n, 1)]
    return out


async def parent(interval: float, seconds: float) -> None:
    """The sampling process's own CPU while both bundled workers are sampled at ``interval``."""
    backends = [
        LlamaCppBackend(alias, bundled_path(alias), n_ctx=512, placement=Placement(threads=1, cpus=(cpu,)))
        for alias, cpu in zip(BUNDLED, available_cpus() * 2, strict=False)
    ]
    loaded = [await b.load() for b in backends]
    samplers = [await asyncio.to_thread(ProcessSampler, lo.pid, lo.weights_path) for lo in loaded]
    pace = Pace(interval)
    pace.busy()  # as while a plan runs: every reading at the run's interval
    try:
        for _ in range(3):
            stop, taken = asyncio.Event(), []
            tasks = [asyncio.create_task(sample_every(s, interval, taken.append, stop, pace)) for s in samplers]
            await asyncio.sleep(interval * 2)
            c0, w0, n0 = time.process_time(), time.monotonic(), len(taken)
            await asyncio.sleep(seconds)
            cpu, wall, n = time.process_time() - c0, time.monotonic() - w0, len(taken) - n0
            stop.set()
            await asyncio.gather(*tasks)
            print(f"sampling {len(samplers)} workers at {1 / interval:g} Hz: {1000 * cpu / wall:.2f} ms CPU per s "
                  f"({cpu / wall:.4f} core), {n / wall:.1f} readings/s, {1000 * cpu / max(n, 1):.3f} ms per reading")  # fmt: skip
    finally:
        for s in samplers:
            s.close()
        for b in backends:
            await b.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=6, help="runs per side (default 6)")
    ap.add_argument("--hz", type=float, default=4.0, help="sampling rate of the 'on' side (default 4)")
    ap.add_argument("--threads", type=int, default=len(available_cpus()), help="worker threads and cores (default all)")
    ap.add_argument("--parent", action="store_true", help="the sampling process's own CPU, workers at rest (see above)")
    ap.add_argument("--seconds", type=float, default=20.0, help="--parent: seconds per measurement (default 20)")
    args = ap.parse_args()
    if args.parent:
        asyncio.run(parent(1.0 / args.hz, args.seconds))
        return
    print(f"threads={args.threads} of {len(available_cpus())} cores, tokens={args.tokens} repeats={args.repeats} per side, sampler {args.hz:g} Hz")
    print(f"{'model':<14} {'off t/s':>8} {'on t/s':>8} {'on/off':>7}   {'engine off':>10} {'engine on':>10} {'on/off':>7}  samples/run")
    for alias in BUNDLED:
        r = asyncio.run(measure(alias, args.tokens, args.repeats, 1.0 / args.hz, args.threads))
        med = {k: statistics.median(v) if v else float("nan") for k, v in r.items()}
        print(
            f"{alias:<14} {med['off']:>8.1f} {med['on']:>8.1f} {med['on'] / med['off']:>7.3f}   "
            f"{med['off_engine']:>10.1f} {med['on_engine']:>10.1f} {med['on_engine'] / med['off_engine']:>7.3f}  "
            f"{med['samples']:.0f}"
        )
        spread = {k: f"{min(r[k]):.1f}–{max(r[k]):.1f}" for k in ("off", "on") if r[k]}
        ms = r["cpu_ms_per_sample"][0]
        print(f"{'':<14} range off {spread.get('off')}, on {spread.get('on')}")
        print(
            f"{'':<14} sampler CPU {ms:.2f} ms per reading = {ms * args.hz / 10:.2f} % of one core at {args.hz:g} Hz "
            f"(what it takes from the model: ratio ≈ {1 - ms * args.hz / 1000:.4f})"
        )


if __name__ == "__main__":
    main()
