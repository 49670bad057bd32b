"""Prefix-reuse scoring against scoring each option from scratch, on ARC-Easy (goal ≥ 2.5x).

For each bundled model, the worker's own ``Model`` (in this process: no pipe, no parent) reads the
same seeded ARC-Easy items in interleaved rounds, three ways:

- ``reuse``: the eval's way (the context decoded once, each option's own tokens after it,
  ``llama_memory_seq_rm`` between options, logits rows at the options' positions only);
- ``scratch``: each option from an empty cache, context and option in one batch, logits rows at
  the option's positions only: the two differ in the prefix reuse alone;
- ``scratch, every row``: the same with a logits row at every position, as a plain
  ``Llama(logits_all=True)`` decode (or lm-eval's Hugging Face model) computes them.

Prints items/s by the wall clock and by this process's CPU time (steadier on a shared box), tokens
decoded per item, the speed-up over each baseline, and how many items' picks agree (the batches
differ in shape, and llama.cpp's CPU numbers move a little with that; see
backends/quality/eval/llama_eval.py).

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

WAYS = {"reuse": (True, False), "scratch": (False, False), "scratch, every row": (False, True)}


def one_round(ev: Evaluator, items, way: str) -> tuple[float, float, int, list[int]]:
    """(wall s, CPU s, tokens decoded, picks) of one pass over ``items``."""
    reuse, every_row = WAYS[way]
    ev.reset()
    ev.decoded = 0
    t, c = time.perf_counter(), time.process_time()
    out = [ev.choices(it.contexts, it.continuations, reuse=reuse, every_row=every_row) for it in items]
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return wall, cpu, ev.decoded, [picks(o["lls"], it.lengths)[0] for o, it in zip(out, items, strict=True)]


def measure(model: str, items, rounds: int, threads: int, n_ctx: int) -> str:
    m = worker.Model(str(bundled_path(model)), n_ctx, threads, None)
    ev = Evaluator(m)
    one_round(ev, items[:5], "reuse")  # warm: pages in, buffers touched
    got: dict[str, list] = {w: [] for w in WAYS}
    order = list(WAYS)
    for r in range(rounds):
        for way in order[r % len(order) :] + order[: r % len(order)]:  # interleaved, the order rotating
            got[way].append(one_round(ev, items, way))
    n = len(items)

    def rate(way: str, k: int) -> float:
        return n / statistics.median(x[k] for x in got[way])

    parts = []
    for way in WAYS:
        agree = sum(a == b for a, b in zip(got["reuse"][0][3], got[way][0][3], strict=True))
        part = f"{way} {rate(way, 0):.2f} items/s wall, {rate(way, 1):.2f} per CPU s, {got[way][0][2] / n:.1f} tokens/item"
        if way != "reuse":
            part += (f" (reuse {rate('reuse', 0) / rate(way, 0):.2f}x wall, {rate('reuse', 1) / rate(way, 1):.2f}x CPU;"
                     f" picks agree on {agree}/{n})")  # fmt: skip
        parts.append(part)
    return f"{model} ({threads} threads): " + " · ".join(parts)


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
