"""Prefix-reuse scoring against scoring each option from scratch, on ARC-Easy (goal ≥ 2.5x).

For each bundled model, the worker's own ``Model`` (in this process: no pipe, no parent) reads the
same seeded ARC-Easy items in interleaved rounds: ``reuse`` (the eval's way: the context decoded
once, each option's own tokens after it, ``llama_memory_seq_rm`` between options) and ``scratch``
(each option from an empty cache: context and option in one batch, logits rows at the option's
positions only, so the two differ in the prefix reuse alone). Prints items/s by the wall clock and
by this process's CPU time (steadier on a shared box), tokens decoded per item, the speed-up of
each, and how many items' picks the two ways agree on (their batches differ in shape, and
llama.cpp's CPU numbers move a little with that; see backends/quality/eval/llama_eval.py).

    .venv/bin/python benchmarks/eval_speed.py [--items 40] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
OUT = os.fdopen(os.dup(1), "w", buffering=1)  # the worker module sends fd 1 to stderr when imported

import backends.engines.llamacpp_worker as worker  # noqa: E402
from backends.quality.eval.llama_eval import Evaluator  # noqa: E402
from backends.quality.eval.scoring import picks  # noqa: E402
from backends.quality.eval.tasks import load_task, subset  # noqa: E402
from backends.specs import DEFAULT_PAIR, bundled_path  # noqa: E402


def one_round(ev: Evaluator, items, reuse: bool) -> tuple[float, float, int, list[int]]:
    """(wall s, CPU s, tokens decoded, picks) of one pass over ``items``."""
    ev.reset()
    ev.decoded = 0
    t, c = time.perf_counter(), time.process_time()
    out = [ev.choices(it.contexts, it.continuations, reuse=reuse) for it in items]
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return wall, cpu, ev.decoded, [picks(o["lls"], it.lengths)[0] for o, it in zip(out, items, strict=True)]


def measure(model: str, items, rounds: int, threads: int, n_ctx: int) -> str:
    m = worker.Model(str(bundled_path(model)), n_ctx, threads, None)
    ev = Evaluator(m)
    one_round(ev, items[:5], True)  # warm: pages in, buffers touched
    got: dict[bool, list] = {True: [], False: []}
    for r in range(rounds):
        for reuse in ((True, False) if r % 2 == 0 else (False, True)):  # interleaved, order alternating
            got[reuse].append(one_round(ev, items, reuse))
    n = len(items)

    def rate(reuse: bool, k: int) -> float:
        return n / statistics.median(x[k] for x in got[reuse])

    agree = sum(a == b for a, b in zip(got[True][0][3], got[False][0][3], strict=True))
    tokens = {k: got[k][0][2] / n for k in got}
    return (
        f"{model} ({threads} threads): reuse {rate(True, 0):.2f} items/s wall, {rate(True, 1):.2f} per CPU s, "
        f"{tokens[True]:.1f} tokens/item · scratch {rate(False, 0):.2f} items/s wall, {rate(False, 1):.2f} per CPU s, "
        f"{tokens[False]:.1f} tokens/item · speed-up {rate(True, 0) / rate(False, 0):.2f}x wall, "
        f"{rate(True, 1) / rate(False, 1):.2f}x CPU · picks agree on {agree}/{n} items"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    items = subset(load_task("arc_easy"), a.items, a.seed)
    print(f"ARC-Easy, {len(items)} items (seed {a.seed}), {a.rounds} interleaved rounds each, medians:", file=OUT)
    for model in DEFAULT_PAIR:
        real = sys.stderr
        sys.stderr = io.StringIO()  # llama.cpp's load log
        try:
            line = measure(model, items, a.rounds, a.threads, a.ctx)
        finally:
            sys.stderr = real
        print(line, file=OUT)
    print("goal: prefix reuse ≥ 2.5x the items/s of scoring each option from scratch", file=OUT)


if __name__ == "__main__":
    main()
