"""abtop against llama.cpp's own ``llama-bench``, built from the same vendored llama.cpp.

``llama-bench`` is built once (``lib/llama_bench_build.py``: the installed llama-cpp-python's sdist,
pip's cmake options, cached in ``~/.cache/abtop/llama-bench/<version>/``). Then, in one run and
round by round (llama-bench, abtop, llama-bench, abtop, … so a noisy machine's drift hits both
alike), on both bundled models with the same thread count:

- tg: abtop gen t/s (default prompt, 128 tokens, alternate mode) ÷ llama-bench tg128;
- pp: abtop prompt t/s (a ~500-token prompt) ÷ llama-bench pp512;
  each at llama.cpp's default flash attention (auto) and with it off in both (``-fa 0``,
  ``--flash-attn off``);
- race: each model's gen t/s racing the other (``--mode race``) ÷ it alone pinned to its half of
  the cores with that many threads (``taskset``);
- the same race for llama-bench itself, as the physics it runs into: two ``llama-bench -n 128``
  at once, each pinned to its half with that many threads, ÷ each alone on its half. Two models
  on one memory bus slow each other whoever runs them; abtop's race should lose no more than that;
- TTFT − the engine's own prompt time (what abtop adds before the first token: tokenising, the
  chat template, the first sample, the pipe).

Each ratio is taken within a round and the table shows the median of those per-round ratios with
their range: on a shared VM the speed of the whole box drifts by ±10 % from one minute to the
next, which a ratio of medians would fold in. Each abtop stage is bracketed by two llama-bench
stages run right before and right after it (the one after serves as the next stage's before
only when nothing ran in between), and its figure is divided by their mean: a drift across the
stage cancels. Prints the goals (tg ≥ 0.98, pp ≥ 0.97, race ≥ 0.95, TTFT − prompt ≤ 3 ms).
Not part of ``make test`` (``make bench`` runs it).

    .venv/bin/python benchmarks/vs_llama_bench.py [--rounds 6] [--reps 3] [--no-fa-off] [--no-race]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib.llama_bench_build import build  # noqa: E402

from backends.session import available_cpus  # noqa: E402
from backends.specs import DEFAULT_PAIR, bundled_path  # noqa: E402

ABTOP = [sys.executable, "-m", "tui.cli.main", "bench"]
LONG_PROMPT = (
    "Summarise the following notes in three sentences. "
    + " ".join(
        f"Note {i}: the harbour master logged {i * 7 % 23} boats, wind from the {('north', 'east', 'south', 'west')[i % 4]}, "
        f"and a tide of {i % 5 + 1} metres at dawn."
        for i in range(1, 17)
    )
)
"""About 460–490 tokens with either bundled model's chat template: one n_ubatch (512); llama-bench
is given the same count (``-p``)."""


def llama_bench(binary: Path, model: Path, threads: int, reps: int, fa_off: bool, extra: list[str] = (), n_prompt: int = 512) -> dict:
    """{"pp": t/s of pp<n_prompt>, "tg": t/s of tg128} from llama-bench's JSON."""
    cmd = [str(binary), "-m", str(model), "-t", str(threads), "-p", str(n_prompt), "-n", "128", "-r", str(reps), "-o", "json"]
    cmd += (["-fa", "0"] if fa_off else []) + list(extra)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    res = {}
    for test in json.loads(out):
        res["pp" if test["n_prompt"] else "tg"] = test["avg_ts"]
        res["flash_attn"] = test.get("flash_attn")
    return res


def _lb_tg_cmd(binary: Path, model: Path, part: str, threads: int, reps: int) -> list[str]:
    return ["taskset", "-c", part, str(binary), "-m", str(model), "-t", str(threads), "-p", "0", "-n", "128",
            "-r", str(reps), "-o", "json"]  # fmt: skip


def lb_tg(binary: Path, model: Path, part: str, threads: int, reps: int) -> float:
    """llama-bench tg128 pinned to ``part``."""
    out = subprocess.run(_lb_tg_cmd(binary, model, part, threads, reps), capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]["avg_ts"]


def lb_race(binary: Path, models: list[Path], cpus: list[int], half: int, reps: int) -> list[float]:
    """Two llama-bench tg128 at once, each pinned to its half of the cores."""
    procs = [
        subprocess.Popen(
            _lb_tg_cmd(binary, m, ",".join(map(str, cpus[i * half : (i + 1) * half])), half, reps),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        for i, m in enumerate(models)
    ]
    return [json.loads(p.communicate()[0])[0]["avg_ts"] for p in procs]


def abtop_bench(models: list[str], args: list[str], taskset: str | None = None, env: dict | None = None) -> dict:
    """The ``abtop bench --json`` document for ``models``."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out.json"
        cmd = ([] if taskset is None else ["taskset", "-c", taskset]) + ABTOP + models + args + ["--json", str(out)]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parent.parent)
        if p.returncode != 0:
            raise SystemExit(f"abtop bench failed ({' '.join(cmd)}):\n{p.stderr}")
        return json.loads(out.read_text())


def _runs(doc: dict, i: int, prompt_id: str | None = None) -> list[dict]:
    return [r for r in doc["models"][i]["runs"] if prompt_id is None or r.get("prompt_id") == prompt_id]


def _med(vals) -> float | None:
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--reps", type=int, default=3, help="llama-bench -r (default 3: short stages, more rounds)")
    ap.add_argument("--runs", type=int, default=3, help="abtop counted runs per round")
    ap.add_argument("--no-race", action="store_true")
    ap.add_argument("--no-fa-off", action="store_true", help="only llama.cpp's default flash attention (auto)")
    a = ap.parse_args()
    binary = build()
    cpus = available_cpus()
    threads = len(cpus)
    half = len(cpus) // 2
    models = list(DEFAULT_PAIR)
    paths = [bundled_path(m) for m in models]
    keys = [(fa, what) for fa in ("auto", "off") for what in ("lb_tg", "lb_pp", "ab_tg", "ab_pp")]
    res: dict = {m: {k: [] for k in keys} | {"race": [], "alone": [], "lb_race": [], "lb_alone": [], "ttft_extra_ms": [], "lb_self_tg": [], "lb_self_pp": []} for m in models}
    with tempfile.TemporaryDirectory() as d:
        suite = Path(d) / "suite.jsonl"
        suite.write_text(
            json.dumps({"id": "short", "prompt": "Explain in two sentences why the sky is blue."})
            + "\n"
            + json.dumps({"id": "long", "prompt": LONG_PROMPT})
            + "\n"
        )
        common = ["-n", "128", "--ctx", "2048", "--threads", str(threads), "--warmup", "1", "--runs", str(a.runs)]
        first = abtop_bench(models, ["-n", "1", "--ctx", "2048", "--warmup", "0", "--runs", "1", "--mode", "alternate", "--prompts", str(suite)])
        n_long = [_runs(first, i, "long")[0]["prompt_tokens"] for i in range(len(models))]
        print(f"the long prompt is {dict(zip(models, n_long, strict=True))} tokens: llama-bench -p the same", file=sys.stderr)
        fas = ("auto",) if a.no_fa_off else ("auto", "off")

        def lb_stage(fa: str) -> list[dict]:
            return [llama_bench(binary, p, threads, a.reps, fa_off=fa == "off", n_prompt=n) for p, n in zip(paths, n_long, strict=True)]

        # Each abtop stage is bracketed by two llama-bench stages run right before and right after
        # it; the one after is reused as the next one's before only when nothing ran in between.
        adjacent: dict[str, list[dict]] = {}
        for r in range(a.rounds):
            print(f"round {r + 1}/{a.rounds}…", file=sys.stderr, flush=True)
            for fa in fas:
                before = {fa: adjacent.get(fa) or lb_stage(fa)}
                doc = abtop_bench(models, [*common, "--mode", "alternate", "--prompts", str(suite), "--flash-attn", fa])
                after = lb_stage(fa)
                adjacent = {fa: after}
                for i, m in enumerate(models):
                    # llama-bench's figure for this round: the mean of the stages just before and
                    # just after abtop's, so a box whose speed drifts linearly cancels out
                    for what in ("tg", "pp"):
                        res[m][(fa, f"lb_{what}")].append((before[fa][i][what] + after[i][what]) / 2)
                        if fa == "auto":  # llama-bench against itself across abtop's stage: the box's noise
                            res[m][f"lb_self_{what}"].append((after[i][what], before[fa][i][what]))
                    short, long = _runs(doc, i, "short"), _runs(doc, i, "long")
                    res[m][(fa, "ab_tg")].append(_med(x["gen_tps"] for x in short))
                    res[m][(fa, "ab_pp")].append(_med(x["prompt_tps"] for x in long))
                    if fa == "auto":
                        res[m]["ttft_extra_ms"].append(
                            _med(
                                (x["ttft_s"] - x["prompt_tokens"] / x["prompt_tps"]) * 1000
                                for x in short
                                if x.get("prompt_tps_source") == "llama_perf_context"
                            )
                        )
            if not (a.no_race or half < 1):
                adjacent = {}
                race = abtop_bench(models, ["-n", "128", "--ctx", "2048", "--warmup", "1", "--runs", str(a.runs), "--mode", "race"])
                for i, m in enumerate(models):
                    res[m]["race"].append(_med(x["gen_tps"] for x in _runs(race, i)))
                    part = ",".join(map(str, cpus[i * half : (i + 1) * half]))
                    alone = abtop_bench([m], ["-n", "128", "--ctx", "2048", "--warmup", "1", "--runs", str(a.runs)], taskset=part)
                    res[m]["alone"].append(_med(x["gen_tps"] for x in _runs(alone, 0)))
                    res[m]["lb_alone"].append(lb_tg(binary, paths[i], part, half, a.reps))
                for m, tps in zip(models, lb_race(binary, paths, cpus, half, a.reps), strict=True):
                    res[m]["lb_race"].append(tps)
            report(res, models, threads, binary, r + 1, n_long)  # a partial table after each round


def _paired(num: list, den: list) -> str:
    """The median of per-round ratios, their range, and the medians they come from."""
    pairs = [(x, y) for x, y in zip(num, den, strict=False) if x and y]
    if not pairs:
        return "n/a"
    ratios = sorted(x / y for x, y in pairs)
    rng = f" [{ratios[0]:.2f}–{ratios[-1]:.2f}]" if len(ratios) > 1 else ""
    return f"{statistics.median(ratios):.3f}{rng} ({_med(x for x, _ in pairs):.1f}/{_med(y for _, y in pairs):.1f})"


def report(res: dict, models: list[str], threads: int, binary: Path, rounds: int, n_long: list[int]) -> None:
    print(f"\n{threads} threads (llama-bench -t, abtop --threads); llama-bench {binary}; {rounds} rounds")
    print(
        "abtop: alternate mode, 128 tokens, tg from the default prompt, pp from a prompt of "
        + ", ".join(f"{n}" for n in n_long)
        + " tokens (llama-bench -p the same)"
    )
    print("cells: median of per-round ratios [range] (median abtop t/s / median llama-bench t/s)\n")
    head = ["model", "tg (fa auto)", "pp (fa auto)", "tg (fa off)", "pp (fa off)", "race/alone@half",
            "llama-bench race/alone@half", "TTFT − prompt"]  # fmt: skip
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for m in models:
        v = {k: _med(x) for k, x in res[m].items() if not str(k).startswith("lb_self")}

        def ratio(fa: str, what: str, m=m) -> str:
            return _paired(res[m][(fa, f"ab_{what}")], res[m][(fa, f"lb_{what}")])

        race = _paired(res[m]["race"], res[m]["alone"])
        lb_r = _paired(res[m]["lb_race"], res[m]["lb_alone"])
        extra = "n/a" if v["ttft_extra_ms"] is None else f"{v['ttft_extra_ms']:.2f} ms"
        cells = [m, ratio("auto", "tg"), ratio("auto", "pp"), ratio("off", "tg"), ratio("off", "pp"), race, lb_r, extra]
        print("| " + " | ".join(cells) + " |")
    for m in models:
        noise = [_paired([x for x, _ in res[m][f"lb_self_{w}"]], [y for _, y in res[m][f"lb_self_{w}"]]) for w in ("tg", "pp")]
        print(f"\nllama-bench ÷ itself across abtop's stage ({m}, fa auto), the box's own noise: tg {noise[0]} · pp {noise[1]}", end="")
    print("\n\ngoals: tg ≥ 0.98, pp ≥ 0.97 (fa auto); race ≥ 0.95 × alone@half; TTFT − engine prompt time ≤ 3 ms")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


if __name__ == "__main__":
    main()
