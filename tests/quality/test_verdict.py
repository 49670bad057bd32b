"""The verdict table: rows from bench, score and votes documents, the better value marked."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

from backends.quality.votes import append_vote, battle_record
from tui.files import export
from tui.text import verdict


def _bench_model(spec, gen, ttft, anon, bpb=None):
    runs = [{"gen_tps": gen, "ttft_s": ttft, "prompt_tps": 100.0, "peak_anon_bytes": anon,
             "weights_resident_bytes": 90e6, "warmup": False, "stop": "length", "text": "x", "run": 0}]  # fmt: skip
    m = {"spec": spec, "backend": "llama.cpp", "info": {"name": spec}, "runs": runs,
         "summary": {"gen_tps": {"median": gen}, "ttft_s": {"median": ttft}, "prompt_tps": {"median": 100.0}}}  # fmt: skip
    if bpb is not None:
        m["score"] = {"bpb": bpb}
    return m


BENCH = {"schema": "abtop.bench/1", "params": {"mode": "alternate"}, "host": {"cpu": "Test CPU", "cores_logical": 2},
         "models": [_bench_model("a", 120.0, 0.2, 100e6, 0.8), _bench_model("b", 80.0, 0.1, 130e6, 0.5)]}  # fmt: skip
VOTES = {"models": [{"model": "a", "name": "a", "win_rate": 0.25, "ci95": [0.05, 0.7], "battles": 4},
                    {"model": "b", "name": "b", "win_rate": 0.75, "ci95": [0.3, 0.95], "battles": 4}]}  # fmt: skip


def test_each_row_marks_the_better_model_by_its_direction():
    cols = verdict.columns(bench=BENCH, votes=VOTES)
    rows = dict(verdict.table(cols))
    assert rows["gen t/s (median)"] == [("120.0", True), ("80.0", False)]  # higher is better
    assert rows["TTFT (median)"] == [("200 ms", False), ("100 ms", True)]  # lower is better
    assert rows["bits per byte (lower: predicts text better)"] == [("0.8000", False), ("0.5000", True)]
    assert rows["blind win rate (95% Wilson)"][1][1] is True
    assert not any(good for _, good in rows["prompt t/s (median)"])  # a tie marks nobody
    assert not any(good for _, good in rows["resident weights (peak)"])


def test_markdown_names_mode_and_box_and_leaves_out_rows_nobody_measured():
    md = verdict.markdown(verdict.columns(bench=BENCH))
    assert "| question | a | b |" in md and "**80.0 ✓**" not in md and "**120.0 ✓**" in md
    assert "win rate" not in md  # no votes given
    md = verdict.markdown(verdict.columns(bench=BENCH), BENCH["host"], "alternate")
    assert "alternate mode; Test CPU, 2 logical cores" in md


def test_a_value_only_one_model_has_is_not_marked():
    score = {"models": [{"spec": "a", "name": "a", "bpb": 0.7}, {"spec": "b", "name": "b", "bpb": None}]}
    rows = dict(verdict.table(verdict.columns(score=score, votes=VOTES)))
    assert rows["bits per byte (lower: predicts text better)"] == [("0.7000", False), ("n/a", False)]


def test_bench_score_and_votes_put_bpb_and_win_rate_beside_the_speed(tmp_path):
    log = tmp_path / "battles.jsonl"
    for winner in ("model_a", "model_a", "tie"):
        append_vote(log, battle_record(model_a="gemma3-270m", model_b="smollm2-135m", winner=winner, prompt="p"))
    text = tmp_path / "t.txt"
    text.write_text("Four score and seven years ago our fathers brought forth on this continent a new nation.\n")
    out, rows = tmp_path / "b.json", tmp_path / "b.csv"
    p = subprocess.run(
        [sys.executable, "-m", "tui.cli.main", "bench", "-p", "The sky is blue because", "-n", "4", "--warmup", "0",
         "--ctx", "256", "--score", "--text", str(text), "--votes", str(log), "--json", str(out), "--csv", str(rows)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert doc["score_text"]["bytes"] == len(text.read_bytes())
    bpbs = [m["score"]["bpb"] for m in doc["models"]]
    assert all(b > 0 for b in bpbs)
    table = list(csv.DictReader(io.StringIO(rows.read_text())))
    assert {float(r["bpb"]) for r in table} == set(bpbs)
    assert "## Verdict" in p.stdout and "bits per byte" in p.stdout and "blind win rate" in p.stdout
    assert p.stdout.count("✓") >= 3
    assert export.markdown(doc) == p.stdout
