"""The GPU check: abtop on a CUDA build against llama-bench built with CUDA, both bundled models.

Needs an NVIDIA GPU, its driver and the CUDA toolkit (nvcc). It has NOT run on a GPU yet (the
machines abtop is developed on have none); run it where one is at hand:

    CMAKE_ARGS="-DGGML_CUDA=on" .venv/bin/pip install --force-reinstall --no-deps --no-binary :all: \\
        llama-cpp-python==$(.venv/bin/python -c 'import llama_cpp; print(llama_cpp.__version__)')
    .venv/bin/python benchmarks/gpu_check.py [--rounds 3]

It checks that the installed llama-cpp-python offloads (``llama_supports_gpu_offload``), builds
``llama-bench`` with ``-DGGML_CUDA=ON`` from the same sdist (``lib/llama_bench_build.py --tag cuda``,
cached outside the repository), then in interleaved rounds runs llama-bench tg128 (``-ngl 99``)
and ``abtop bench`` (every layer offloaded, ``ABTOP_GPU_LAYERS=-1``) and prints per model: the tg
ratio abtop ÷ llama-bench (goal ≥ 0.98), the NVML figures abtop read for that model's own
process (VRAM peak, mean GPU utilisation), and llama.cpp's offloaded buffer bytes from the card.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib.llama_bench_build import build  # noqa: E402
from vs_llama_bench import abtop_bench, llama_bench  # noqa: E402

from backends.specs import DEFAULT_PAIR, bundled_path  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    import llama_cpp

    if shutil.which("nvidia-smi") is None:
        print("gpu_check: no nvidia-smi here: this needs an NVIDIA GPU and its driver.", file=sys.stderr)
        return 2
    if not llama_cpp.llama_supports_gpu_offload():
        print("gpu_check: this llama-cpp-python was built without GPU offload; rebuild it with CUDA "
              "(the command is in this script's docstring).", file=sys.stderr)  # fmt: skip
        return 2
    binary = build(cmake_args="-DGGML_CUDA=ON", tag="cuda", jobs=os.cpu_count() or 2)
    models = list(DEFAULT_PAIR)
    env = dict(os.environ, ABTOP_GPU_LAYERS="-1")
    lb: dict[str, list[float]] = {m: [] for m in models}
    ab: dict[str, list[float]] = {m: [] for m in models}
    nv: dict[str, list[tuple]] = {m: [] for m in models}
    for r in range(a.rounds):
        print(f"round {r + 1}/{a.rounds}…", file=sys.stderr, flush=True)
        for m in models:
            lb[m].append(llama_bench(binary, bundled_path(m), os.cpu_count() or 1, a.reps, False, ["-ngl", "99"])["tg"])
        doc = abtop_bench(models, ["-n", "128", "--warmup", "1", "--runs", "3", "--mode", "alternate"], env=env)
        for i, m in enumerate(models):
            runs = doc["models"][i]["runs"]
            ab[m].append(statistics.median(x["gen_tps"] for x in runs))
            offloaded = (doc["models"][i].get("buffers") or {}).get("offloaded")
            nv[m] += [(x.get("vram_peak_bytes"), x.get("gpu_util_mean"), offloaded) for x in runs]
    print(f"\nGPU: {doc['host'].get('gpus')}\nllama-bench {binary} (-ngl 99); abtop ABTOP_GPU_LAYERS=-1; medians of {a.rounds} rounds\n")
    print("| model | abtop tg | llama-bench tg128 | ratio | VRAM peak (NVML, its process) | GPU util mean | offloaded (llama.cpp) |")
    print("|---|---|---|---|---|---|---|")
    for m in models:
        t_ab, t_lb = statistics.median(ab[m]), statistics.median(lb[m])
        vram = max((v for v, _, _ in nv[m] if v is not None), default=None)
        utils = [u for _, u, _ in nv[m] if u is not None]
        off = next((o for _, _, o in nv[m] if o is not None), None)
        print(f"| {m} | {t_ab:.1f} | {t_lb:.1f} | {t_ab / t_lb:.3f} | {vram if vram is not None else 'n/a'} | "
              f"{statistics.median(utils) if utils else 'n/a'} | {off if off is not None else 'n/a'} |")  # fmt: skip
    print("\ngoal: ratio ≥ 0.98; VRAM peak and utilisation present (not n/a) for each model's process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
