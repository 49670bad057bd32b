"""The verdict: one row per question, a column per model, the better value of each row marked.

Built from whatever was measured — a bench document's summaries (speed, memory), a score
document (bits per byte), a battle log (win rate) — so ``bench --md``, ``abtop votes`` and the
TUI's ``v`` screen show the same table. A row nobody measured is left out; a value a model lacks
is ``n/a`` and never marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tui.text import format as fmt
from tui.text.eval_text import pct
from tui.text.safe import escape_controls
from tui.text.votes_text import win_rate


@dataclass(frozen=True)
class Row:
    key: str
    question: str
    better: str  # "higher" or "lower"
    show: Callable[[dict], str]


def _num(digits: int, unit: str = "") -> Callable[[dict], str]:
    return lambda v: f"{v['value']:.{digits}f}{unit}"


ROWS = (
    Row("gen_tps", "gen t/s (median)", "higher", _num(1)),
    Row("ttft_s", "TTFT (median)", "lower", lambda v: fmt.seconds(v["value"])),
    Row("prompt_tps", "prompt t/s (median)", "higher", _num(1)),
    Row("weights", "resident weights (peak)", "lower", lambda v: fmt.human_bytes(v["value"])),
    Row("anon", "anonymous memory (peak)", "lower", lambda v: fmt.human_bytes(v["value"])),
    Row("least_ram", "least RAM to run without paging (abtop fit, predicted)", "lower",
        lambda v: f"{fmt.human_bytes(v['value'])} at {v['ctx']:,}" + (f", {v['verdict']}" if v.get("verdict") else "")),
    Row("bpb", "bits per byte (lower: predicts text better)", "lower", _num(4)),
    Row("win", "blind win rate (95% Wilson)", "higher", lambda v: win_rate(v["value"], v["ci95"], v["n"])),
)


def _median(summary: dict, name: str) -> float | None:
    s = (summary or {}).get(name)
    return s.get("median") if s else None


def _peak(runs: list[dict], name: str) -> float | None:
    vals = [r[name] for r in runs if r.get(name) is not None and not r.get("error") and r.get("stop") != "cancelled"]
    return max(vals) if vals else None


def columns(bench: dict | None = None, score: dict | None = None, votes: dict | None = None,
            evals: dict | None = None) -> list[dict]:
    """One column per model: {"spec", "name", KEY: {"value", ...}} from the documents given;
    ``evals`` (an ``abtop.eval/1`` document, or a bench document's ``eval``) adds ``accuracy``:
    per task the primary figure and whether the paired test calls this model better."""
    cols: dict[str, dict] = {}

    def col(spec: str, name: str | None) -> dict:
        c = cols.setdefault(spec, {"spec": spec, "name": name or spec})
        if name and c["name"] == spec:
            c["name"] = name
        return c

    for m in (bench or {}).get("models", []):
        c = col(m["spec"], (m.get("info") or {}).get("name"))
        s = m.get("summary") or {}
        for key, value in (("gen_tps", _median(s, "gen_tps")), ("ttft_s", _median(s, "ttft_s")),
                           ("prompt_tps", _median(s, "prompt_tps")),
                           ("weights", _peak(m.get("runs") or [], "weights_resident_bytes")),
                           ("anon", _peak(m.get("runs") or [], "peak_anon_bytes"))):  # fmt: skip
            if value is not None:
                c[key] = {"value": value}
        if (m.get("score") or {}).get("bpb") is not None:
            c["bpb"] = {"value": m["score"]["bpb"]}
    fits = ((bench or {}).get("fit") or {}).get("models") or []
    for m, f in zip((bench or {}).get("models", []), fits, strict=False):  # bench --fit: one per bench model
        r = (f.get("contexts") or [None])[-1]
        if r and r.get("least_ram_bytes") is not None:
            col(m["spec"], None)["least_ram"] = {"value": r["least_ram_bytes"], "ctx": r["ctx"], "verdict": r.get("verdict")}
    for m in (score or {}).get("models", []):
        if m.get("bpb") is not None:
            col(m["spec"], m.get("name"))["bpb"] = {"value": m["bpb"]}
    for m in (votes or {}).get("models", []):
        if m.get("win_rate") is not None:
            col(m["model"], m.get("name"))["win"] = {"value": m["win_rate"], "ci95": m["ci95"], "n": m["battles"]}
    tasks = (evals or {}).get("tasks") or {}
    for m in (evals or {}).get("models", []):
        for task, e in (m.get("tasks") or {}).items():
            t = tasks.get(task) or {}
            figure = e.get(t.get("primary", "acc")) if not e.get("reason") else None
            if figure and figure.get("value") is not None:
                acc = col(m["spec"], m.get("name")).setdefault("accuracy", {})
                acc[task] = {"value": figure["value"], "ci": figure.get("ci"), "better": t.get("better") == m["spec"],
                             "question": f"accuracy: {task} {t.get('primary', 'acc')}, {t.get('items', '?')} items "
                                         "(✓ only where the paired test says p < 0.05)"}  # fmt: skip
    return list(cols.values())


def best(cols: list[dict], row: Row) -> set[int]:
    """The columns holding the better value of ``row`` (all of them on a tie; none alone)."""
    have = [(i, c[row.key]["value"]) for i, c in enumerate(cols) if row.key in c]
    if len(have) < 2 or len({c[row.key].get("ctx") for c in cols if row.key in c}) > 1:
        return set()  # least RAM at different contexts is no comparison
    pick = max if row.better == "higher" else min
    target = pick(v for _, v in have)
    if all(v == target for _, v in have):
        return set()
    return {i for i, v in have if v == target}


def table(cols: list[dict]) -> list[tuple[str, list[tuple[str, bool]]]]:
    """(question, [(cell, better)]) for every row some model has."""
    out = []
    for row in ROWS:
        if not any(row.key in c for c in cols):
            continue
        marks = best(cols, row)
        out.append((row.question, [(row.show(c[row.key]) if row.key in c else "n/a", i in marks) for i, c in enumerate(cols)]))
    tasks = list(dict.fromkeys(t for c in cols for t in c.get("accuracy", {})))
    for task in tasks:  # one row per task of an eval; marked by its paired test, never by the higher value
        question = next(c["accuracy"][task]["question"] for c in cols if task in c.get("accuracy", {}))
        cells = []
        for c in cols:
            a = c.get("accuracy", {}).get(task)
            cells.append((pct(a), a["better"]) if a else ("n/a", False))
        out.append((question, cells))
    return out


def context_line(host: dict | None, mode: str | None) -> str:
    """Which mode and which box produced the figures."""
    h = host or {}
    gpus = ", ".join(g.get("name", "?") for g in h.get("gpus") or []) or "no GPU"
    bits = [f"{mode} mode" if mode else None,
            f"{h.get('cpu', '?')}, {h.get('cores_logical', '?')} logical cores, {fmt.human_bytes(h.get('ram_bytes'))} RAM, {gpus}" if h else None]  # fmt: skip
    return "; ".join(b for b in bits if b)


def markdown(cols: list[dict], host: dict | None = None, mode: str | None = None) -> str:
    """The verdict as a Markdown section; the better value of each row in bold with ✓."""
    if not cols:
        return ""
    names = [escape_controls(c["name"]).replace("|", "\\|") for c in cols]
    out = "## Verdict\n\n| question | " + " | ".join(names) + " |\n|---|" + "---|" * len(cols) + "\n"
    for question, cells in table(cols):
        out += f"| {question} | " + " | ".join(f"**{c} ✓**" if good else c for c, good in cells) + " |\n"
    ctx = context_line(host, mode)
    if ctx:
        out += f"\n{ctx}.\n"
    return out
