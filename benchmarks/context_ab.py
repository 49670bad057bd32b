"""abtop's llama.cpp context against one built as llama-bench builds it, in one process.

Between processes this VM's speed drifts by ±10 % (llama-bench against itself a minute later),
more than the 2–3 % ``vs_llama_bench.py`` is after. In one process, with rounds shuffled, that
noise is smaller: this loads a bundled model once through the worker's own ``Model`` (abtop's
context settings), builds a second context on the same weights with llama-bench's settings
(``n_ctx`` = the prompt, ``swa_full`` off, flash attention auto, ``no_perf``), and times the long
prompt's prefill in each (decode + synchronize, as llama-bench times pp): abtop's context with
the real prompt's tokens and with random ones (as llama-bench feeds), and the llama-bench one.

    .venv/bin/python benchmarks/context_ab.py [--model gemma3-270m] [--rounds 12]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
OUT = os.fdopen(os.dup(1), "w", buffering=1)  # the worker module sends fd 1 to stderr when imported

import numpy as np  # noqa: E402

from backends.engines.llamacpp_worker import Model  # noqa: E402
from backends.specs import bundled_path  # noqa: E402


def long_prompt() -> str:
    src = (Path(__file__).resolve().parent / "vs_llama_bench.py").read_text()  # the same prompt, not a copy
    ns: dict = {}
    exec(src[src.index("LONG_PROMPT = (") : src.index('"""About')], ns)  # noqa: S102
    return ns["LONG_PROMPT"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    a = ap.parse_args()
    real = sys.stderr
    sys.stderr = io.StringIO()  # llama.cpp's load log
    try:
        m = Model(str(bundled_path(a.model)), 2048, a.threads, None)
    finally:
        sys.stderr = real
    lc = m.lc
    toks, _ = m.format_prompt(long_prompt())
    n = len(toks)
    cp = lc.llama_context_default_params()
    cp.n_ctx, cp.n_batch, cp.n_ubatch = n, 2048, 512
    cp.n_threads = cp.n_threads_batch = a.threads
    cp.swa_full, cp.flash_attn_type, cp.no_perf = False, -1, True
    bench_ctx = lc.llama_init_from_model(m.llm.model, cp)

    def prefill(ctx, tokens: list[int]) -> float:
        lc.llama_memory_clear(lc.llama_get_memory(ctx), False)
        arr = (lc.llama_token * len(tokens))(*tokens)
        t = time.perf_counter()
        lc.llama_decode(ctx, lc.llama_batch_get_one(arr, len(tokens)))
        lc.llama_synchronize(ctx)
        return len(tokens) / (time.perf_counter() - t)

    rng = np.random.default_rng(1)
    arms = {"abtop context, the prompt": (m.ctx, False), "abtop context, random tokens": (m.ctx, True),
            "llama-bench context, random tokens": (bench_ctx, True)}  # fmt: skip
    res: dict[str, list[float]] = {k: [] for k in arms}
    for ctx in (m.ctx, bench_ctx):  # warm-up, as llama-bench does
        prefill(ctx, toks)
    for _ in range(a.rounds):
        rnd = [lc.llama_vocab_bos(m.vocab)] + [int(x) for x in rng.integers(0, m.n_vocab, n - 1)]
        for name in random.sample(list(arms), len(arms)):
            ctx, random_tokens = arms[name]
            res[name].append(prefill(ctx, rnd if random_tokens else toks))
    base = res["llama-bench context, random tokens"]
    print(f"{a.model}: pp{n}, {a.threads} threads, {a.rounds} shuffled rounds", file=OUT)
    for name, v in res.items():
        ratios = [x / y for x, y in zip(v, base, strict=True)]
        print(f"  {name:36s} {statistics.median(v):7.1f} t/s · ÷ llama-bench context {statistics.median(ratios):.3f} "
              f"[{min(ratios):.2f}–{max(ratios):.2f}]", file=OUT)  # fmt: skip
    lc.llama_free(bench_ctx)


if __name__ == "__main__":
    main()
