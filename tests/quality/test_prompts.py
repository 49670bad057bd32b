"""Prompt suites: the file formats, their errors, the bundled suite, and ``bench --prompts``."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import pytest

from backends.quality.prompts import load_prompts

ABTOP = [sys.executable, "-m", "tui.cli.main"]


def test_txt_is_one_prompt_a_line_and_jsonl_takes_ids(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("Why is the sky blue?\n\n  Write a haiku.  \n", encoding="utf-8")
    assert [(p.id, p.text) for p in load_prompts(str(txt))] == [("p1", "Why is the sky blue?"), ("p2", "Write a haiku.")]
    jl = tmp_path / "p.jsonl"
    jl.write_text('{"id": "sky", "prompt": "Why blue?"}\n{"prompt": "2+2?"}\n', encoding="utf-8")
    assert [(p.id, p.text) for p in load_prompts(str(jl))] == [("sky", "Why blue?"), ("p2", "2+2?")]


def test_the_bundled_suite_covers_the_tasks_and_languages():
    suite = load_prompts("suite")
    assert len(suite) == 8 and len({p.id for p in suite}) == 8
    ids = " ".join(p.id for p in suite)
    for task in ("explain", "code", "arith", "summary"):
        assert task in ids
    texts = " ".join(p.text for p in suite)
    assert re.search(r"[\u4e00-\u9fff]", texts)  # Chinese
    assert "giải thích" in texts  # Vietnamese
    assert "Jelaskan" in texts  # Indonesian


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("empty.txt", "\n\n", "holds no prompt"),
        ("bad.jsonl", '{"prompt": "ok"}\nnot json\n', "bad.jsonl line 2: not JSON"),
        ("noprompt.jsonl", '{"id": "a"}\n', 'line 1: no "prompt"'),
        ("twice.jsonl", '{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', "used twice"),
        ("missing.txt", None, "no such file"),
    ],
)
def test_an_unusable_suite_is_one_sentence_before_anything_loads(tmp_path, name, content, words):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(words)):
        load_prompts(str(path))
    p = subprocess.run([*ABTOP, "bench", "--prompts", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == "" and p.stderr.count("\n") == 1 and words in p.stderr


def test_prompt_and_prompts_together_are_refused():
    p = subprocess.run([*ABTOP, "bench", "-p", "hi", "--prompts", "suite"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "not both" in p.stderr


def test_bench_runs_every_prompt_times_runs_with_per_prompt_rows(tmp_path):
    suite = tmp_path / "two.jsonl"
    suite.write_text('{"id": "sky", "prompt": "The sky is blue because"}\n{"id": "zh", "prompt": "天空是蓝色的，因为"}\n')
    out, rows = tmp_path / "o.json", tmp_path / "o.csv"
    p = subprocess.run(
        [*ABTOP, "bench", "smollm2-135m", "gemma3-270m", "--prompts", str(suite), "-n", "4", "--runs", "2",
         "--warmup", "0", "--ctx", "512", "--json", str(out), "--csv", str(rows)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert doc["params"]["prompts"] == [{"id": "sky", "prompt": "The sky is blue because"}, {"id": "zh", "prompt": "天空是蓝色的，因为"}]
    for m in doc["models"]:
        assert [(r["prompt_id"], r["run"]) for r in m["runs"]] == [("sky", 0), ("sky", 1), ("zh", 0), ("zh", 1)]
        assert {r["prompt"] for r in m["runs"]} == {"The sky is blue because", "天空是蓝色的，因为"}
        assert [b["prompt_id"] for b in m["by_prompt"]] == ["sky", "zh"]
        assert all(b["summary"]["gen_tps"]["n"] == 2 for b in m["by_prompt"])
        assert m["summary"]["gen_tps"]["n"] == 4  # the model's summary is over all prompts
    table = list(csv.DictReader(rows.open(encoding="utf-8")))
    assert len(table) == 2 * 2 * 2 and {r["prompt_id"] for r in table} == {"sky", "zh"}
    assert "| sky |" in p.stdout and "| zh |" in p.stdout  # the per-prompt table
