"""``abtop eval``'s document as people read it: a Markdown table, CSV rows, the verdict's rows."""

from __future__ import annotations

import csv
import io

from tui.text.safe import safe

METRIC_NAMES = {"acc": "acc", "acc_norm": "acc_norm", "strict": "strict", "flexible": "flexible"}


def pct(s: dict | None) -> str:
    """``61.0 % [51–70]``: a fraction and its 95 % interval, in per cent."""
    if not s or s.get("value") is None:
        return "n/a"
    ci = s.get("ci")
    tail = f" [{ci[0] * 100:.0f}–{ci[1] * 100:.0f}]" if ci else ""
    return f"{s['value'] * 100:.1f} %{tail}"


def _label(m: dict) -> str:
    return safe(m.get("name") or m.get("spec") or "?")


def _metrics(entry: dict) -> tuple[str, ...]:
    return ("strict", "flexible") if "strict" in entry else ("acc", "acc_norm")


def markdown(doc: dict) -> str:
    models = doc["models"]
    head = ["task (items)"]
    for m in models:
        head += [f"{_label(m)} acc", "acc_norm"]
    head.append("paired verdict (primary figure)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, t in doc["tasks"].items():
        cells = [f"{name} ({t['items']})"]
        for m in models:
            e = m["tasks"].get(name)
            if e is None:
                cells += ["n/a", "n/a"]
                continue
            a, b = _metrics(e)
            first, second = (pct(e.get(a)), pct(e.get(b)))
            if a == "strict":
                first, second = f"strict {first}", f"flexible {second}"
            cells += [first, second]
        cells.append(safe(t["verdict"]) if t.get("verdict") else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    macro = ["macro mean (multiple choice)"]
    for m in models:
        mm = m.get("macro") or {}
        macro += [pct(mm.get("acc")), pct(mm.get("acc_norm"))]
    macro.append("")
    lines.append("| " + " | ".join(macro) + " |")
    notes = _notes(doc)
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def _notes(doc: dict) -> list[str]:
    p = doc["params"]
    primary = ", ".join(f"{n} {t['primary']}" for n, t in doc["tasks"].items())
    out = [
        f"Items: a seeded sample (seed {p['seed']}) of each task's items, the same for every model; "
        f"prompts from {doc['data']['package']} {doc['data']['version']} (lm-evaluation-harness style, 0-shot cloze; "
        "GSM8K 8-shot chain of thought, greedy).",
        "Figures in per cent with 95 % Wilson intervals. acc: the option with the highest log-likelihood; "
        "acc_norm: per character of the option (lm-eval's process_results).",
        f"Verdict: McNemar's exact test on the items both models read, on the task's primary figure ({primary}); "
        "a model is called better only where p < 0.05.",
    ]
    if doc.get("partial"):
        out.append("PARTIAL: the run was stopped; the figures are of the items read before it stopped.")
    for m in doc["models"]:
        if m.get("reason"):
            out.append(safe(m["reason"]))
        for name, e in m["tasks"].items():
            if e.get("reason"):
                out.append(f"{name}: " + safe(e["reason"]))
            if e.get("skipped_note"):
                out.append(f"{_label(m)}, {name}: " + safe(e["skipped_note"]))
    return out


CSV_FIELDS = ("model", "spec", "backend", "task", "items", "scored", "skipped", "metric", "value", "ci_low", "ci_high",
              "primary", "a_only", "b_only", "p", "verdict", "partial", "reason")  # fmt: skip


def csv_text(doc: dict) -> str:
    """One row per model, task and figure."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for m in doc["models"]:
        for name, e in m["tasks"].items():
            t = doc["tasks"].get(name) or {}
            mc = t.get("mcnemar") or {}
            for metric in _metrics(e):
                s = e.get(metric) or {}
                ci = s.get("ci") or (None, None)
                w.writerow({"model": m.get("name"), "spec": m.get("spec"), "backend": m.get("backend"), "task": name,
                            "items": e["items"], "scored": e["scored"], "skipped": e["skipped"], "metric": metric,
                            "value": s.get("value"), "ci_low": ci[0], "ci_high": ci[1],
                            "primary": metric == t.get("primary"), "a_only": mc.get("a_only"), "b_only": mc.get("b_only"),
                            "p": mc.get("p"), "verdict": t.get("verdict"), "partial": m.get("partial"),
                            "reason": e.get("reason") or m.get("reason")})  # fmt: skip
    return buf.getvalue()


def verdict_rows(doc: dict) -> list[tuple[str, list[str], str]]:
    """``(task, [figure per model], verdict)`` for a verdict table: the primary figure per task."""
    rows = []
    for name, t in doc["tasks"].items():
        cells = []
        for m in doc["models"]:
            e = m["tasks"].get(name)
            if e is None or e.get("reason"):
                cells.append("n/a")
            else:
                cells.append(pct(e.get(t["primary"])))
        rows.append((f"{name} {t['primary']} ({t['items']})", cells, safe(t.get("verdict") or "n/a")))
    return rows
