"""Blind A/B votes: the battle log, win rates with Wilson intervals, and a Bradley–Terry fit.

The battle log is JSON Lines, one vote a line, appended and fsync'd as each vote is cast, so a
killed abtop loses nothing already voted. The fields follow LMArena's battle records, so their
notebooks read the file as is:

- ``schema``: ``"abtop.vote/1"``; ``tstamp``: Unix time; ``time``: the same as ISO 8601;
- ``model_a`` / ``model_b``: the specs on sides A and B (credentials stripped);
  ``name_a`` / ``name_b``: their display names; ``slot_a`` / ``slot_b``: which pane each was;
- ``winner``: ``"model_a"``, ``"model_b"``, ``"tie"`` or ``"tie (bothbad)"`` (keys 1, 2, =, x);
- ``prompt``, ``prompt_id``, ``params`` (sampling, mode), ``run_ids`` ({"a": .., "b": ..}).

Win rate counts a tie (both kinds) as half a win, and its 95 % interval is Wilson's score
interval, which stays inside [0, 1] and behaves for the handful of votes a person casts. With
more than two models across logs, ratings come from a Bradley–Terry fit (Hunter's MM algorithm,
ties as half a win each way, as LMArena does instead of sequential Elo), on LMArena's scale
(1000 + 400·log10 strength), with a bootstrap interval.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backends.userfiles import json_lines, read_user_text

SCHEMA = "abtop.vote/1"
WINNERS = {"1": "model_a", "2": "model_b", "=": "tie", "x": "tie (bothbad)"}
"""The vote keys and the ``winner`` each writes."""
LOG_NAME = "battles.jsonl"
"""The battle log's file name in the results folder."""
Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Battle:
    model_a: str
    model_b: str
    winner: str
    name_a: str | None = None
    name_b: str | None = None
    prompt_id: str | None = None


def battle_record(
    *,
    model_a: str,
    model_b: str,
    winner: str,
    prompt: str,
    prompt_id: str | None = None,
    name_a: str | None = None,
    name_b: str | None = None,
    slot_a: int | None = None,
    slot_b: int | None = None,
    params: dict | None = None,
    run_ids: dict | None = None,
    now: float | None = None,
) -> dict:
    """One vote as the battle log stores it; ``model_a``/``model_b`` must already be public specs."""
    if winner not in WINNERS.values():
        raise ValueError(f"winner {winner!r} is not one of {', '.join(WINNERS.values())}")
    now = time.time() if now is None else now
    return {
        "schema": SCHEMA,
        "tstamp": now,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
        "model_a": model_a,
        "model_b": model_b,
        "name_a": name_a,
        "name_b": name_b,
        "slot_a": slot_a,
        "slot_b": slot_b,
        "winner": winner,
        "prompt_id": prompt_id,
        "prompt": prompt,
        "params": params,
        "run_ids": run_ids,
    }


def append_vote(path: str | Path, record: dict) -> None:
    """Append one line and fsync it: once this returns, the vote survives a kill or a power cut."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_battles(paths: list[str | Path]) -> list[Battle]:
    """Every vote in the logs. ``ValueError`` with one sentence naming the file (and line) for a
    file that cannot be read or a line that is not a vote (a last line cut short by a kill
    mid-write is skipped)."""
    out: list[Battle] = []
    for path in paths:
        name = Path(path).name
        lines = read_user_text(path, name, kind="battle log (one vote a line)").splitlines()
        for no, d in json_lines(lines, name, "a battle log has one vote per line", cut_tail=True):
            if not isinstance(d, dict) or not {"model_a", "model_b", "winner"} <= d.keys():
                raise ValueError(
                    f"{name} line {no}: not a vote (a vote has model_a, model_b and winner); "
                    "abtop --blind writes battle logs to abtop-results/battles.jsonl."
                )
            if d["winner"] not in WINNERS.values():
                raise ValueError(f"{name} line {no}: winner {d['winner']!r} is not one of {', '.join(WINNERS.values())}.")
            a, b = str(d["model_a"]), str(d["model_b"])
            out.append(Battle(a, b, d["winner"], d.get("name_a"), d.get("name_b"), d.get("prompt_id")))
    return out


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion; fractional successes (half-wins) are fine."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class Record:
    """One model's votes: ``score`` = wins + ties / 2 over ``n`` battles."""

    model: str
    name: str
    wins: int
    losses: int
    ties: int
    both_bad: int

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties + self.both_bad

    @property
    def score(self) -> float:
        return self.wins + (self.ties + self.both_bad) / 2

    @property
    def win_rate(self) -> float | None:
        return self.score / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.score, self.n)

    def to_dict(self) -> dict:
        lo, hi = self.interval
        return {
            "model": self.model, "name": self.name, "battles": self.n, "wins": self.wins,
            "losses": self.losses, "ties": self.ties, "both_bad": self.both_bad,
            "win_rate": self.win_rate, "ci95": [lo, hi],
        }  # fmt: skip


def records(battles: list[Battle]) -> list[Record]:
    """Per model, in order of first appearance."""
    tally: dict[str, list[int]] = {}
    names: dict[str, str] = {}
    for b in battles:
        for side, model, name in (("model_a", b.model_a, b.name_a), ("model_b", b.model_b, b.name_b)):
            t = tally.setdefault(model, [0, 0, 0, 0])
            names.setdefault(model, name or model)
            if b.winner == side:
                t[0] += 1
            elif b.winner in ("model_a", "model_b"):
                t[1] += 1
            elif b.winner == "tie":
                t[2] += 1
            else:
                t[3] += 1
    return [Record(m, names[m], *t) for m, t in tally.items()]


def _win_matrix(battles: list[Battle], models: list[str]) -> np.ndarray:
    """w[i, j] = wins of i over j, a tie counting half to each."""
    idx = {m: k for k, m in enumerate(models)}
    w = np.zeros((len(models), len(models)))
    for b in battles:
        i, j = idx[b.model_a], idx[b.model_b]
        if i == j:
            continue
        if b.winner == "model_a":
            w[i, j] += 1
        elif b.winner == "model_b":
            w[j, i] += 1
        else:
            w[i, j] += 0.5
            w[j, i] += 0.5
    return w


def bradley_terry(w: np.ndarray, *, prior: float = 0.1, iters: int = 1000, tol: float = 1e-10) -> np.ndarray:
    """Strengths from a win matrix by Hunter's MM algorithm: p_i ← W_i / Σ_j n_ij / (p_i + p_j).

    ``prior`` adds that many virtual wins each way to every pair that met, so a model that never
    won (or never lost) gets a finite rating. Normalised to a geometric mean of 1.
    """
    n_models = len(w)
    met = (w + w.T) > 0
    w = w + prior * met
    n = w + w.T
    wins = w.sum(axis=1)
    p = np.ones(n_models)
    for _ in range(iters):
        denom = (n / (p[:, None] + p[None, :])).sum(axis=1)
        new = np.where(denom > 0, wins / np.where(denom > 0, denom, 1), 1.0)
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(new - p)) < tol:
            return new
        p = new
    return p


def elo_scale(p: np.ndarray) -> np.ndarray:
    """LMArena's display scale: 1000 + 400·log10(strength)."""
    return 1000 + 400 * np.log10(p)


def ratings(battles: list[Battle], *, rounds: int = 200, seed: int = 0) -> list[dict]:
    """Bradley–Terry ratings with a 95 % bootstrap interval (battles resampled ``rounds`` times,
    fixed seed: the same log gives the same figures), best first."""
    models = [r.model for r in records(battles)]
    names = {r.model: r.name for r in records(battles)}
    point = elo_scale(bradley_terry(_win_matrix(battles, models)))
    rng = np.random.default_rng(seed)
    boot = np.empty((rounds, len(models)))
    for k in range(rounds):
        sample = [battles[i] for i in rng.integers(0, len(battles), len(battles))]
        boot[k] = elo_scale(bradley_terry(_win_matrix(sample, models)))
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
    out = [
        {"model": m, "name": names[m], "rating": float(point[k]), "ci95": [float(lo[k]), float(hi[k])]}
        for k, m in enumerate(models)
    ]
    return sorted(out, key=lambda r: -r["rating"])


def vote_summary(battles: list[Battle]) -> dict:
    """What ``abtop votes`` reports: per-model records, and ratings when more than two models met."""
    recs = records(battles)
    return {
        "battles": len(battles),
        "models": [r.to_dict() for r in recs],
        "ratings": ratings(battles) if len(recs) > 2 else None,
    }
