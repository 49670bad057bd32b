"""PLE vs MoE vs dense on this box: the three shape twins through ``abtop bench``, with the probe.

For each twin (``twin:gemma-4-e2b``, ``twin:qwen2.5-3b``, ``twin:olmoe-1b-7b``, built on first use
into ~/.cache/abtop/twins) one ``abtop bench`` in alternate mode, ``--max-tokens 64``,
``--working-set``: its speed runs give gen t/s, TTFT, peak resident weights and anonymous memory;
its probe run the bytes each tensor group brought back from an evicted start. The MoE twin
samples at temperature 1 (seeded): greedy decoding on random weights repeats one token, which
would route to the same experts every time. Then Gemma's twin again with ``--lazy-ple on``: llama.cpp
reads the PLE table on demand instead of pre-faulting it.

    .venv/bin/python benchmarks/archs.py [--scale 1] [--quant Q4_K] [--repack on|off] [--runs 2]

``--repack off`` stops llama.cpp copying Q4_K matrices into anonymous CPU_REPACK buffers, so the
probe sees which of their *file* pages a token reads; with repack on (the default on AVX2/AVX-512)
those groups say ``repacked`` and live in anon memory instead.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tui.text.format import human_bytes  # noqa: E402

GROUPS = ("token_embd", "ple", "experts", "output", "attention", "ffn", "other")
PROMPT = "Explain in two sentences why the sky is blue."


def bench(spec: str, args, out: Path, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "tui.cli.main", "bench", spec, "-p", PROMPT, "-n", str(args.max_tokens),
           "--runs", str(args.runs), "--warmup", str(args.warmup), "--mode", "alternate", "--working-set",
           "--repack", args.repack, "--json", str(out), *extra]  # fmt: skip
    print("$ abtop " + " ".join(cmd[3:]), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=sys.stderr)
    if p.returncode != 0:
        raise SystemExit(f"archs.py: abtop bench {spec} failed (exit {p.returncode})")
    return json.loads(out.read_text())["models"][0]


def row(label: str, m: dict) -> tuple[str, list[str]]:
    s = m["summary"]
    med = lambda k, f: "n/a" if not s.get(k) else f(s[k]["median"])  # noqa: E731
    probe = next((r for r in m["runs"] if r.get("probe")), None)
    ws = probe and probe.get("working_set")
    cells = [
        med("gen_tps", lambda x: f"{x:.1f}"),
        med("ttft_s", lambda x: f"{x:.2f} s"),
        med("weights_resident_bytes", human_bytes),
        med("peak_anon_bytes", human_bytes),
    ]
    for g in GROUPS:
        v = ws["groups"].get(g) if ws else None
        if v is None:
            cells.append("—" if ws else "n/a")
            continue
        pct = 100 * v["touched_bytes"] / v["bytes"] if v["bytes"] else 0
        cells.append(
            f"{human_bytes(v['touched_bytes'])}/{human_bytes(v['bytes'])} {pct:.0f}%"
            + (" R" if v["repacked"] else "")
        )
    return label, cells


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="twin scale (1: the real shapes)")
    ap.add_argument("--quant", default="Q4_K")
    ap.add_argument("--repack", choices=("on", "off"), default="on")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--keep", metavar="DIR", help="keep each bench's JSON in DIR")
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    tail = ("" if args.quant == "Q4_K" else f":{args.quant}") + (
        "" if args.scale == 1 else f":{args.scale:g}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = args.keep or tmp
        Path(d).mkdir(parents=True, exist_ok=True)
        for name, extra in (
            ("gemma-4-e2b", ()),
            ("qwen2.5-3b", ()),
            ("olmoe-1b-7b", ("--temperature", "1.0")),
            ("gemma-4-e2b", ("--lazy-ple", "on")),
        ):
            m = bench(f"twin:{name}{tail}", args, Path(d) / f"{name}{len(rows)}.json", *extra)
            label = name + (f" (lazy PLE {m['lazy_ple']})" if m["info"].get("ple") else "")
            rows.append(row(label, m))
            print(f"| {label} | " + " | ".join(rows[-1][1]) + " |", file=sys.stderr, flush=True)
    head = ["twin", "gen t/s", "TTFT", "weights resident", "anon"] + [f"{g} touched" for g in GROUPS]
    print(f"\n{args.quant} twins at scale {args.scale:g}, {args.max_tokens} tokens, {args.runs} run(s) after "
          f"{args.warmup} warm-up, alternate mode, repack {args.repack}; "
          "touched = file bytes back in memory after the probe run (R: repacked, read from its anon copy)\n")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, cells in rows:
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
