"""Blind-vote statistics and ``abtop votes``: pure figures checked against closed forms."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from backends.quality.votes import (
    Battle,
    _win_matrix,
    append_vote,
    battle_record,
    bradley_terry,
    read_battles,
    records,
    vote_summary,
    wilson,
)
from tui.cli.main import main


def test_wilson_matches_the_published_interval():
    # 8 of 10: Wilson's score interval is (0.4902, 0.9433) (Agresti & Coull 1998, statsmodels' "wilson")
    lo, hi = wilson(8, 10)
    assert math.isclose(lo, 0.4902, abs_tol=1e-4) and math.isclose(hi, 0.9433, abs_tol=1e-4)
    # symmetric around 1/2 for half the votes; inside [0, 1] at the edges, where Wald's is not
    lo, hi = wilson(5, 10)
    assert math.isclose(lo + hi, 1.0)
    assert math.isclose(wilson(0, 3)[0], 0.0, abs_tol=1e-12) and 0 < wilson(0, 3)[1] < 1
    assert wilson(0, 0) == (0.0, 1.0)


def test_ties_and_both_bad_count_half_a_win():
    battles = [
        Battle("a", "b", "model_a"),
        Battle("b", "a", "model_a"),  # b sat on side A and won
        Battle("a", "b", "tie"),
        Battle("a", "b", "tie (bothbad)"),
    ]
    recs = {r.model: r for r in records(battles)}
    assert (recs["a"].wins, recs["a"].losses, recs["a"].ties, recs["a"].both_bad) == (1, 1, 1, 1)
    assert recs["a"].win_rate == 0.5 and recs["b"].win_rate == 0.5
    assert recs["a"].interval == wilson(2, 4)


def test_bradley_terry_two_models_is_the_odds_ratio():
    # For two models the BT maximum-likelihood strengths have ratio wins_a / wins_b.
    w = np.array([[0.0, 3.0], [1.0, 0.0]])
    p = bradley_terry(w, prior=0.0)
    assert math.isclose(p[0] / p[1], 3.0, rel_tol=1e-6)


def test_bradley_terry_is_the_likelihood_fixed_point_and_recovers_the_order():
    rng = np.random.default_rng(1)
    truth = {"a": 4.0, "b": 2.0, "c": 1.0}
    battles = []
    names = list(truth)
    for _ in range(600):
        i, j = rng.choice(3, 2, replace=False)
        x, y = names[i], names[j]
        battles.append(Battle(x, y, "model_a" if rng.random() < truth[x] / (truth[x] + truth[y]) else "model_b"))
    w = _win_matrix(battles, names)
    p = bradley_terry(w, prior=0.0)
    # the MLE's score equations: each model's wins equal its expected wins
    n = w + w.T
    expected = (n * p[:, None] / (p[:, None] + p[None, :])).sum(axis=1)
    assert np.allclose(expected, w.sum(axis=1), rtol=1e-6)
    assert p[0] > p[1] > p[2]
    s = vote_summary(battles)
    assert [r["model"] for r in s["ratings"]] == ["a", "b", "c"]
    for r in s["ratings"]:
        assert r["ci95"][0] <= r["rating"] <= r["ci95"][1]


def test_a_model_that_never_won_gets_a_finite_rating():
    battles = [Battle("a", "b", "model_a")] * 3 + [Battle("b", "c", "model_a")] * 3
    s = vote_summary(battles)
    assert all(math.isfinite(r["rating"]) for r in s["ratings"])
    assert [r["model"] for r in s["ratings"]] == ["a", "b", "c"]


def _log(tmp_path, votes):
    path = tmp_path / "battles.jsonl"
    for m_a, m_b, winner in votes:
        append_vote(path, battle_record(model_a=m_a, model_b=m_b, winner=winner, prompt="why?", name_a=m_a.upper()))
    return path


def test_abtop_votes_prints_win_rates_and_writes_json(tmp_path, capsys):
    path = _log(tmp_path, [("x", "y", "model_a")] * 3 + [("y", "x", "model_a"), ("x", "y", "tie")])
    out_json = tmp_path / "v.json"
    assert main(["votes", str(path), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "| X | 5 | 3 | 1 | 1 | 0 | 70% (" in out  # (3 + 0.5) / 5
    doc = json.loads(out_json.read_text())
    assert doc["schema"] == "abtop.votes/1" and doc["ratings"] is None  # two models: no BT needed
    x = next(m for m in doc["models"] if m["model"] == "x")
    assert x["ci95"] == list(wilson(3.5, 5))


def test_three_models_across_logs_get_ratings(tmp_path, capsys):
    a = _log(tmp_path, [("x", "y", "model_a")] * 2)
    b = tmp_path / "other.jsonl"
    for _ in range(2):
        append_vote(b, battle_record(model_a="y", model_b="z", winner="model_a", prompt="p"))
    assert main(["votes", str(a), str(b)]) == 0
    assert "Bradley–Terry" in capsys.readouterr().out


def test_a_vote_cut_short_by_a_kill_is_skipped_and_bad_lines_get_a_sentence(tmp_path, capsys):
    path = _log(tmp_path, [("x", "y", "model_b")])
    with open(path, "a") as f:
        f.write('{"model_a": "x", "mod')  # killed mid-write
    assert len(read_battles([path])) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"model_a": "x"}\n{"model_a": "x", "model_b": "y", "winner": "b"}\n')
    assert main(["votes", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.jsonl line 1: not a vote" in err
    assert main(["votes", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err


def test_append_vote_is_fsynced_lines(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    path = _log(tmp_path, [("x", "y", "tie"), ("x", "y", "tie (bothbad)")])
    assert len(synced) == 2
    lines = path.read_text().splitlines()
    assert [json.loads(line)["winner"] for line in lines] == ["tie", "tie (bothbad)"]
    assert json.loads(lines[0])["schema"] == "abtop.vote/1"


def test_abtop_votes_with_an_unwritable_export_writes_the_other_and_exits_1(tmp_path, capsys):
    """A full device for --json is one sentence; --md is still written whole, without raw ESC bytes."""
    path = tmp_path / "battles.jsonl"
    append_vote(path, battle_record(model_a="\x1b]0;PWNED\x07x", model_b="y", winner="model_a", prompt="why?"))
    md = tmp_path / "v.md"
    assert main(["votes", str(path), "--json", "/dev/full", "--md", str(md)]) == 1
    err = capsys.readouterr().err
    assert "could not write --json /dev/full" in err and "Traceback" not in err
    text = md.read_text()
    assert "\x1b" not in text and "\x07" not in text and "PWNED" in text


@pytest.mark.timeout(600)  # the first to ask for bench_json waits for the bench
def test_abtop_votes_with_bench_and_score_prints_the_whole_verdict(bench_json, tmp_path, capsys):
    """``abtop votes LOG --bench out.json --score score.json`` (README): speed and memory from a
    real bench of the bundled pair, bits per byte from a real ``abtop score``, win rates from the
    log, in one verdict table, the better value of each row marked."""
    doc, _, _ = bench_json
    bench = tmp_path / "out.json"
    bench.write_text(json.dumps(doc))
    text = tmp_path / "t.txt"
    text.write_text("It is for us the living, rather, to be dedicated here to the unfinished work.\n", encoding="utf-8")
    score = tmp_path / "score.json"
    assert main(["score", "--text", str(text), "--ctx", "256", "--json", str(score)]) == 0
    bpbs = {m["spec"]: m["bpb"] for m in json.loads(score.read_text())["models"]}
    log = _log(tmp_path, [("smollm2-135m", "gemma3-270m", "model_a")] * 3 + [("gemma3-270m", "smollm2-135m", "tie")])
    capsys.readouterr()
    md = tmp_path / "verdict.md"
    assert main(["votes", str(log), "--bench", str(bench), "--score", str(score), "--md", str(md)]) == 0
    out = capsys.readouterr().out
    assert md.read_text() == out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    speed = {m["spec"]: m["summary"]["gen_tps"]["median"] for m in doc["models"]}
    for spec in ("smollm2-135m", "gemma3-270m"):
        assert f"{speed[spec]:.1f}" in rows["gen t/s (median)"]
        assert f"{bpbs[spec]:.4f}" in rows["bits per byte (lower: predicts text better)"]
    specs = list(speed)  # a column per model, in the bench's order

    def cells(question: str) -> list[str]:
        return [c.strip() for c in rows[question].split("|")[2:4]]

    def marked(question: str) -> list[str]:
        return [spec for spec, cell in zip(specs, cells(question), strict=True) if "✓" in cell]

    assert marked("gen t/s (median)") == [max(speed, key=speed.get)]
    assert marked("bits per byte (lower: predicts text better)") == [min(bpbs, key=bpbs.get)]
    win = dict(zip(specs, cells("blind win rate (95% Wilson)"), strict=True))
    assert win["smollm2-135m"].startswith("**88% (") and win["gemma3-270m"].startswith("12% (")  # (3 + ½) / 4
    assert marked("blind win rate (95% Wilson)") == ["smollm2-135m"]
    assert "alternate" in out  # the mode the bench ran in, from its params


def test_abtop_votes_names_a_document_of_the_wrong_kind(tmp_path, capsys):
    log = _log(tmp_path, [("x", "y", "model_a")])
    votes = tmp_path / "v.json"
    assert main(["votes", str(log), "--json", str(votes)]) == 0
    capsys.readouterr()
    assert main(["votes", str(log), "--bench", str(votes)]) == 2
    assert capsys.readouterr().err == f"abtop: --bench {votes}: not an abtop.bench/1 file (an abtop.votes/1 file).\n"
    (tmp_path / "t.json").write_text("hello")
    assert main(["votes", str(log), "--eval", str(tmp_path / "t.json")]) == 2
    assert capsys.readouterr().err.endswith("not an abtop.eval/1 file (not JSON).\n")
    assert main(["votes", str(log), "--score", str(tmp_path / "none.json")]) == 2
    assert "abtop: --score " in capsys.readouterr().err
