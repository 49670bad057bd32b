"""What abtop's worker costs: generation t/s through abtop vs a bare llama-cpp-python loop.

For each bundled model, in one run and interleaved (bare, abtop, bare, abtop, …) so drift on a
noisy machine hits both sides alike, at the same thread count:

- bare:   ``Llama.create_completion(stream=True)``, the loop a llama-cpp-python user writes;
- abtop:  the worker process, timestamps taken in the worker, events over the pipe;
- engine: llama.cpp's own counter (``llama_perf_context``) for the abtop runs.

gen t/s is (tokens − 1) / (last token time − first token time) on both sides. Prints medians and
the ratios abtop/bare (goal ≥ 0.97) and abtop/engine (goal ≥ 0.95).

    .venv/bin/python benchmarks/overhead.py [--tokens 128] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import llama_cpp  # noqa: E402

from backends.base import GenParams, Placement  # noqa: E402
from backends.engines.llamacpp import LlamaCppBackend  # noqa: E402
from backends.specs import BUNDLED, bundled_path  # noqa: E402
from backends.stats import RunCollector  # noqa: E402

PROMPT = "Once upon a time, in a small village by the sea, there lived"


def bare_run(llm: llama_cpp.Llama, tokens: int) -> float | None:
    llm.reset()
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
    times = []
    for _chunk in llm.create_completion(PROMPT, max_tokens=tokens, temperature=0.0, stream=True):
        times.append(time.monotonic())
    if len(times) < 2:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


async def abtop_run(backend: LlamaCppBackend, tokens: int) -> tuple[float | None, float | None, int]:
    c = RunCollector()
    async for ev in backend.stream(PROMPT, GenParams(max_tokens=tokens)):
        c.add(ev)
    r = c.result()
    return r["gen_tps"], r["gen_tps_engine"], r["gen_tokens"]


async def measure(alias: str, tokens: int, repeats: int, threads: int) -> dict:
    path = bundled_path(alias)
    cpus = tuple(sorted(os.sched_getaffinity(0)))[:threads] if hasattr(os, "sched_getaffinity") else None
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False)
    backend = LlamaCppBackend(alias, path, n_ctx=512, placement=Placement(threads=threads, cpus=cpus))
    await backend.load()
    bare, ours, engine = [], [], []
    try:
        bare_run(llm, 8)  # warm both sides once
        await abtop_run(backend, 8)
        for _ in range(repeats):
            if (b := bare_run(llm, tokens)) is not None:
                bare.append(b)
            g, e, n = await abtop_run(backend, tokens)
            if g is not None and n > 2:
                ours.append(g)
            if e is not None:
                engine.append(e)
    finally:
        await backend.close()
        del llm
    return {"bare": bare, "abtop": ours, "engine": engine}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    args = ap.parse_args()
    print(f"threads={args.threads} tokens={args.tokens} repeats={args.repeats} (medians; interleaved)")
    print(f"{'model':<14} {'bare t/s':>9} {'abtop t/s':>10} {'engine t/s':>11} {'abtop/bare':>11} {'abtop/engine':>13}")
    for alias in BUNDLED:
        r = asyncio.run(measure(alias, args.tokens, args.repeats, args.threads))
        med = {k: statistics.median(v) if v else float("nan") for k, v in r.items()}
        print(
            f"{alias:<14} {med['bare']:>9.1f} {med['abtop']:>10.1f} {med['engine']:>11.1f} "
            f"{med['abtop'] / med['bare']:>11.3f} {med['abtop'] / med['engine']:>13.3f}"
        )


if __name__ == "__main__":
    main()
