"""Faults found by trying abtop as an adversary would (issue 24): each is one sentence or the
right word, never a traceback or a claim the figures contradict."""

from __future__ import annotations

import json

import pytest

from tui.cli.main import main

NESTED = "[" * 200_000
"""A line of JSON nested deeper than Python's parser recurses (RecursionError, not ValueError)."""


def one_sentence(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err and "RecursionError" not in err, err
    return lines[0]


def test_deeply_nested_votes_log_is_a_sentence(tmp_path, capsys):
    log = tmp_path / "battles.jsonl"
    log.write_text(NESTED + "\n" + json.dumps({"model_a": "a", "model_b": "b", "winner": "a"}) + "\n")
    assert main(["votes", str(log)]) == 2
    assert "battles.jsonl line 1: not JSON" in one_sentence(capsys.readouterr().err)


def test_deeply_nested_bench_file_given_to_votes_is_a_sentence(tmp_path, capsys):
    log = tmp_path / "battles.jsonl"
    log.write_text(json.dumps({"model_a": "a", "model_b": "b", "winner": "model_a"}) + "\n")
    bench = tmp_path / "bench.json"
    bench.write_text(NESTED)
    assert main(["votes", str(log), "--bench", str(bench)]) == 2
    assert "not an abtop.bench/1 file (not JSON" in one_sentence(capsys.readouterr().err)


def test_deeply_nested_prompts_jsonl_is_a_sentence(tmp_path, capsys):
    suite = tmp_path / "suite.jsonl"
    suite.write_text(json.dumps({"prompt": "hi"}) + "\n" + NESTED + "\n")
    assert main(["bench", "--prompts", str(suite), "smollm2-135m"]) == 2
    assert "suite.jsonl line 2: not JSON" in one_sentence(capsys.readouterr().err)


def test_deeply_nested_recording_is_a_sentence(tmp_path, capsys):
    rec = tmp_path / "run.jsonl"
    header = {"schema": "abtop.record/1", "specs": ["smollm2-135m"], "params": {}}
    rec.write_text(json.dumps(header) + "\n" + NESTED + "\n" + json.dumps({"slot": 0, "ev": "note"}) + "\n")
    assert main(["replay", str(rec)]) == 2
    assert "run.jsonl line 2: not JSON" in one_sentence(capsys.readouterr().err)
    rec.write_text(NESTED + "\n")  # the header itself
    assert main(["replay", str(rec)]) == 2
    assert "not an abtop recording" in one_sentence(capsys.readouterr().err)


def test_deeply_nested_config_is_a_sentence(tmp_path, monkeypatch, capsys):
    (tmp_path / "abtop").mkdir()
    (tmp_path / "abtop" / "config.toml").write_text("max_tokens = " + "[" * 100_000 + "\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert main(["bench", "smollm2-135m"]) == 2
    assert "config.toml: not valid TOML" in one_sentence(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("wall", "engine", "said"),
    [(8.6, 6.0, " (wall 43% above engine)"), (5.0, 10.0, " (wall 50% below engine)"), (9.8, 10.0, "")],
)
def test_engine_gap_says_above_when_the_wall_rate_is_above(wall, engine, said):
    from tui.text.format import engine_gap

    assert engine_gap(wall, engine) == said


def test_a_killed_twin_write_is_cleared_by_the_next_and_said(tmp_path):
    """``kill -9`` during ``abtop twin`` leaves its hidden ``.NAME.PID.tmp``; the next write
    removes it and says how much it freed. A temp file whose writer is alive stays."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    cmd = [sys.executable, "-m", "tui.cli.main", "twin", "qwen2.5-3b", "--scale", "0.03"]
    folder = tmp_path / "abtop" / "twins"
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    left = []
    while not left:  # the writer is mid-write once its temp file has data
        assert first.poll() is None, "the twin was written before it could be killed"
        assert time.monotonic() < deadline, "abtop twin never started writing"
        left = [p for p in folder.glob(".*.tmp") if p.stat().st_size > 1 << 20] if folder.is_dir() else []
        time.sleep(0.01)  # polling a file another process writes: nothing to wait on
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert left[0].exists()
    busy = folder / f".other.gguf.{os.getpid()}.tmp"  # a live writer's file (this process's, just written)
    busy.write_bytes(b"x")
    second = subprocess.run([*cmd, "--force"], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "removed " in second.stderr and f"left in {folder} by a write that was killed" in second.stderr
    assert not left[0].exists() and busy.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted([busy.name, "qwen2.5-3b-Q4_K-s0.03.gguf"])


def test_the_license_is_an_spdx_string_setuptools_reads_without_a_warning():
    """``license = { text = ... }`` made every install print setuptools' deprecation block
    (PEP 639); a plain SPDX expression needs setuptools 77 or later to build."""
    import re
    from pathlib import Path

    from tui.files.config import tomllib  # tomllib, or tomli before Python 3.11

    doc = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert doc["project"]["license"] == "Apache-2.0"
    (floor,) = [r for r in doc["build-system"]["requires"] if r.startswith("setuptools")]
    assert int(re.search(r">=\s*(\d+)", floor).group(1)) >= 77


def test_a_config_cut_short_says_where_without_guessing(tmp_path, monkeypatch, capsys):
    """tomllib places some errors "at end of document", not at a line: the sentence said
    "somewhere:"; it now says the error is at the end of the file."""
    (tmp_path / "abtop").mkdir()
    (tmp_path / "abtop" / "config.toml").write_text("[defaults]\nmax_tokens = [[[\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert main(["bench", "smollm2-135m"]) == 2
    said = one_sentence(capsys.readouterr().err)
    assert "somewhere" not in said and "not valid TOML (Invalid value at the end of the file)." in said, said
