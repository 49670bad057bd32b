"""Bench results as JSON (``abtop.bench/1``), CSV (one row per model per run) and Markdown."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from backends.stats import RUN_FIELDS

from . import format as fmt

SCHEMA = "abtop.bench/1"


def write_json(doc: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def csv_text(doc: dict) -> str:
    """One row per model per run, with the JSON's run field names (text last: it is long)."""
    cols = ["model", "backend", "quant", "mode", "run", "warmup"] + [f for f in RUN_FIELDS if f != "text"] + ["text"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for m in doc["models"]:
        for r in m["runs"]:
            row = dict(r, model=m["info"]["name"], backend=m["backend"], quant=m["info"].get("quant"), mode=doc["params"]["mode"])
            w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def _median(summary: dict, name: str) -> float | None:
    s = summary.get(name)
    return s["median"] if s else None


def _spread(summary: dict, name: str, formatter) -> str:
    s = summary.get(name)
    if not s:
        return "n/a"
    text = formatter(s["median"])
    if s["n"] > 1:
        text += f" ({formatter(s['min'])}–{formatter(s['max'])})"
    return text


def markdown(doc: dict) -> str:
    """The table a person pastes into an issue or a chat."""
    host = doc.get("host", {})
    p = doc["params"]
    head = (
        "| model | quant | backend | mode | TTFT | prompt t/s | gen t/s | engine gen t/s | chars/s | "
        "peak RSS | weights resident | anon |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for m in doc["models"]:
        s = m["summary"]
        runs = [r for r in m["runs"] if not r.get("warmup") and not r.get("error")]

        def peak(name: str, runs=runs) -> str:
            vals = [r[name] for r in runs if r.get(name) is not None]
            return fmt.human_bytes(max(vals)) if vals else "n/a"

        rows.append(
            f"| {m['info']['name']} | {m['info'].get('quant') or 'n/a'} | {m['backend']} | {p['mode']} | "
            f"{_spread(s, 'ttft_s', fmt.seconds)} | {_spread(s, 'prompt_tps', lambda x: f'{x:.1f}')} | "
            f"{_spread(s, 'gen_tps', lambda x: f'{x:.1f}')} | {_spread(s, 'gen_tps_engine', lambda x: f'{x:.1f}')} | "
            f"{_spread(s, 'chars_per_s', lambda x: f'{x:.0f}')} | {peak('peak_rss_bytes')} | "
            f"{peak('weights_resident_bytes')} | {peak('peak_anon_bytes')} |"
        )
    gpus = ", ".join(g.get("name", "?") for g in host.get("gpus") or []) or "no GPU"
    foot = (
        f"\n{p['runs']} run(s) after {p.get('warmup', 0)} warm-up, {p['max_tokens']} max tokens, "
        f"temperature {p['temperature']}, seed {p['seed']}. Host: {host.get('cpu', '?')}, "
        f"{host.get('cores_logical', '?')} logical cores, {fmt.human_bytes(host.get('ram_bytes'))} RAM, {gpus}."
    )
    return head + "\n".join(rows) + "\n" + foot + "\n"
