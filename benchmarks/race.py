"""Is race mode fair? Each bundled model's gen t/s racing the other, against it alone on its share.

In one run, interleaved round by round so a noisy machine's drift hits every configuration alike:

- alone@half: the model alone, pinned to half the cores with that many threads — its fair share;
- race:       both at once, the cores split as ``abtop`` splits them (``session.placements``);
- alternate:  one at a time with every core (the bench default);
- defaults:   both at once at llama-cpp-python's default thread count (cpu_count // 2), unpinned —
              what a race looks like without abtop's placement.

gen t/s = (tokens − 1) / (last − first token time), timestamps from the worker. Prints medians and
the ratios to alone@half (goal: race ≥ 0.9).

    .venv/bin/python benchmarks/race.py [--tokens 96] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.base import GenParams, Placement  # noqa: E402
from backends.catalog import make_backend
from backends.session import available_cpus, placements  # noqa: E402
from backends.specs import DEFAULT_PAIR  # noqa: E402
from backends.stats import RunCollector  # noqa: E402

PROMPT = "Once upon a time, in a small village by the sea, there lived"


async def gen_tps(backend, tokens: int) -> float | None:
    c = RunCollector()
    async for ev in backend.stream(PROMPT, GenParams(max_tokens=tokens)):
        c.add(ev)
    return c.result()["gen_tps"]


async def place_all(backends, plans) -> None:
    for b, p in zip(backends, plans, strict=True):
        await b.place(p)


async def main(tokens: int, rounds: int) -> None:
    cpus = available_cpus()
    half = tuple(cpus[: max(1, len(cpus) // 2)])
    default_threads = max(multiprocessing.cpu_count() // 2, 1)  # llama-cpp-python's Llama() default
    backends = [make_backend(alias, n_ctx=512) for alias in DEFAULT_PAIR]
    for b in backends:
        b.placement = Placement(threads=len(half), cpus=half)
    await asyncio.gather(*(b.load() for b in backends))
    results: dict[str, list[list[float]]] = {k: [[], []] for k in ("alone", "race", "alternate", "defaults")}

    def keep(name: str, i: int, v: float | None) -> None:
        if v:
            results[name][i].append(v)

    try:
        for b in backends:  # warm-up: page the weights in, settle the caches
            await gen_tps(b, 16)
        for r in range(rounds):
            print(f"round {r + 1}/{rounds}…", file=sys.stderr, flush=True)
            for i, b in enumerate(backends):
                await b.place(Placement(threads=len(half), cpus=half))
                keep("alone", i, await gen_tps(b, tokens))
            await place_all(backends, placements("race", [True, True]))
            for i, v in enumerate(await asyncio.gather(*(gen_tps(b, tokens) for b in backends))):
                keep("race", i, v)
            await place_all(backends, placements("alternate", [True, True]))
            for i, b in enumerate(backends):
                keep("alternate", i, await gen_tps(b, tokens))
            await place_all(backends, [Placement(threads=default_threads, cpus=tuple(cpus))] * 2)
            for i, v in enumerate(await asyncio.gather(*(gen_tps(b, tokens) for b in backends))):
                keep("defaults", i, v)
    finally:
        await asyncio.gather(*(b.close() for b in backends))

    race_plan = placements("race", [True, True])
    print(f"\n{len(cpus)} cores; race gives each model {race_plan[0].threads} thread(s) on cpus "
          f"{' / '.join(','.join(map(str, p.cpus or ())) for p in race_plan)}; alone@half = {len(half)} thread(s) "
          f"on cpu {','.join(map(str, half))}; llama-cpp-python default n_threads = {default_threads}, unpinned.")  # fmt: skip
    print(f"{tokens} tokens, median of {rounds} interleaved rounds, gen t/s (worker timestamps)\n")
    head = ("model", "alone@half", "race", "alternate", "defaults", "race/alone", "alt/alone", "defaults/alone")
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for i, alias in enumerate(DEFAULT_PAIR):
        med = {k: statistics.median(v[i]) if v[i] else None for k, v in results.items()}

        def ratio(k: str, med=med) -> str:
            return f"{med[k] / med['alone']:.2f}" if med[k] and med["alone"] else "n/a"

        cells = [alias] + [f"{med[k]:.1f}" if med[k] else "n/a" for k in ("alone", "race", "alternate", "defaults")]
        cells += [ratio("race"), ratio("alternate"), ratio("defaults")]
        print("| " + " | ".join(cells) + " |")
    print("\ngoal: race/alone ≥ 0.90 for each model")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    asyncio.run(main(a.tokens, a.rounds))
