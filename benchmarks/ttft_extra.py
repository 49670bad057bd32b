"""What abtop adds before the first token, measured in the worker itself (goal ≤ 3 ms).

For each bundled model, the worker's own ``Model.generate`` runs a short prompt to one token,
``--runs`` times in this process (no pipe, no parent: the worker's clock is the one its TTFT is
read from). Prints the median of TTFT minus llama.cpp's own prompt time (``llama_perf_context``):
the chat template, tokenising, emptying the KV cache, the sampler, the first sample. Then the
same two steps that cost most, timed alone: the chat template with tokenising, and the KV clear.

    .venv/bin/python benchmarks/ttft_extra.py [--runs 25] [--ctx 2048]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
OUT = os.fdopen(os.dup(1), "w", buffering=1)  # the worker module sends fd 1 to stderr when imported

import backends.engines.llamacpp_worker as worker  # noqa: E402
from backends.specs import DEFAULT_PAIR, bundled_path  # noqa: E402

PROMPT = "Explain in two sentences why the sky is blue."


def measure(model: str, runs: int, n_ctx: int) -> str:
    m = worker.Model(str(bundled_path(model)), n_ctx, 2, None)
    extra, template, clear = [], [], []
    for i in range(runs):
        worker._OUT = io.StringIO()  # the worker's event lines, read back here
        m.generate({"run": i, "prompt": PROMPT, "max_tokens": 1, "temperature": 0.0}, worker.Cancels())
        events = [json.loads(line) for line in worker._OUT.getvalue().splitlines()]
        started = next(e for e in events if e["ev"] == "started")
        first = next(e for e in events if e["ev"] == "tok")
        extra.append((first["t"] - started["t"]) * 1000 - events[-1]["engine"]["prompt_ms"])
        t = time.perf_counter()
        m.format_prompt(PROMPT)
        template.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        m._clear_cache()
        clear.append((time.perf_counter() - t) * 1000)
    med = lambda xs: statistics.median(xs[2:])  # noqa: E731  (the first runs warm the caches)
    return (
        f"{model}: TTFT − engine prompt time {med(extra):.2f} ms (median of {runs - 2}) · "
        f"of which chat template + tokenising {med(template):.2f} ms, KV clear {med(clear):.2f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=25)
    ap.add_argument("--ctx", type=int, default=2048)
    a = ap.parse_args()
    if a.runs < 3:
        ap.error("--runs must be 3 or more (the first two warm the caches)")
    lines = []
    for model in DEFAULT_PAIR:
        real = sys.stderr
        sys.stderr = io.StringIO()  # llama.cpp's load log
        try:
            lines.append(measure(model, a.runs, a.ctx))
        finally:
            sys.stderr = real
    print("\n".join(lines), file=OUT)
    print("goal: TTFT − engine prompt time ≤ 3 ms", file=OUT)


if __name__ == "__main__":
    main()
