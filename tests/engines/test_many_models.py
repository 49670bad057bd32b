"""More than two models: the cores split in race mode (and the sentence when they cannot be),
alternate mode rotating which model goes first, and bench's table and verdict with a column each."""

from __future__ import annotations

import json
import subprocess
import sys

from backends.base import GenParams
from backends.catalog import make_backend
from backends.events import Started
from backends.session import RunPlan, Session, available_cpus, placements, race_shares_cores

ABTOP = [sys.executable, "-m", "tui.cli.main"]


def test_race_splits_the_cores_among_local_models_leftovers_to_the_first(monkeypatch):
    """Four and six cores are more than this box has: ``available_cpus`` answers as such a box would."""
    monkeypatch.setattr("backends.session.available_cpus", lambda: [0, 1, 2, 3])
    parts = placements("race", [True, True, False, True])
    assert [p.cpus for p in parts] == [(0, 1), (2,), None, (3,)] and [p.threads for p in parts] == [2, 1, None, 1]
    monkeypatch.setattr("backends.session.available_cpus", lambda: list(range(6)))
    assert [p.cpus for p in placements("race", [True] * 4)] == [(0, 1), (2, 3), (4,), (5,)]


def test_more_local_models_than_cores_share_them_and_say_so():
    n = len(available_cpus())
    assert race_shares_cores([True] * n) is None and race_shares_cores([True] * n + [False]) is None
    sentence = race_shares_cores([True] * (n + 1))
    assert f"{n + 1} local models on {n} cores" in sentence and "alternate" in sentence
    assert all(p.cpus == tuple(available_cpus()) for p in placements("race", [True] * (n + 1)))


async def test_alternate_rotates_which_model_goes_first(smollm2_path):
    """Three real workers (one file, three KV settings), three runs: each run starts with another."""
    specs = ["smollm2-135m", "smollm2-135m,kv=q8_0", "smollm2-135m,kv=q4_0"]
    starts: list[int] = []
    session = Session([make_backend(s, n_ctx=512) for s in specs], lambda i, ev: isinstance(ev, Started) and starts.append(i),
                      mode="alternate")  # fmt: skip
    try:
        await session.load()
        assert all(session.alive)
        await session.run(RunPlan("Hi", GenParams(max_tokens=2), mode="alternate", runs=3))
    finally:
        await session.close()
    assert starts == [0, 1, 2, 1, 2, 0, 2, 0, 1]


def test_bench_race_with_more_models_than_cores_says_alternate_is_fair(tmp_path):
    n = len(available_cpus())
    specs = ["smollm2-135m"] + [f"smollm2-135m,ctx={512 + 256 * k}" for k in range(1, n + 1)]
    out = tmp_path / "out.json"
    p = subprocess.run([*ABTOP, "bench", *specs, "--mode", "race", "-p", "Hi", "-n", "2", "--warmup", "0",
                        "--json", str(out)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "share them" in p.stderr and "alternate mode (one at a time, all cores) is the fair figure" in p.stdout
    doc = json.loads(out.read_text())
    assert "share them" in doc["params"]["race_note"]
    names = [m["info"]["name"] for m in doc["models"]]
    assert names[0] == "smollm2-135m" and names[1:] == [f"smollm2-135m ctx={512 + 256 * k}" for k in range(1, n + 1)]
    verdict = p.stdout.split("## Verdict")[1]
    assert "| question | " + " | ".join(names) + " |" in verdict and verdict.count("✓") >= 1
