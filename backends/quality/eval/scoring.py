"""Scores as lm-evaluation-harness computes them, their intervals, and the paired comparison.

Per item (lm-eval ``Task.process_results`` for multiple choice): ``pick`` is the argmax of the
options' summed log-likelihoods (``acc``), ``pick_norm`` the argmax of each divided by its
option's length in characters (``acc_norm``); ties go to the first option, as ``np.argmax``.

Intervals are 95 % Wilson score intervals (honest near 0 and 1, and on a few dozen items, where
lm-eval's ``stderr`` normal interval is not). Both models see the same items, so the comparison
is paired: McNemar's exact test on the discordant items (right for one model, wrong for the
other), two-sided binomial p-value. A model is called better on a task only where p < 0.05.
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054
ALPHA = 0.05


def picks(lls: list[float], lengths: list[int]) -> tuple[int, int]:
    """(pick, pick_norm): argmax of the log-likelihoods, and of them per character."""
    pick = max(range(len(lls)), key=lambda i: (lls[i], -i))
    norm = [ll / max(n, 1) for ll, n in zip(lls, lengths, strict=True)]
    return pick, max(range(len(norm)), key=lambda i: (norm[i], -i))


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of k successes in n; None for n = 0."""
    if n <= 0:
        return None
    p = k / n
    d = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, mid - half), min(1.0, mid + half)


def mcnemar_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs: twice the smaller
    binomial tail of Binomial(b + c, 1/2), at most 1."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def summary(correct: list[bool]) -> dict:
    """``{"value", "ci", "n", "k"}`` of one metric: a fraction and its 95 % interval."""
    n, k = len(correct), sum(correct)
    return {"value": k / n if n else None, "ci": wilson(k, n), "n": n, "k": k}


def macro(values: list[dict]) -> dict:
    """The mean over tasks of one metric, with a 95 % normal interval from the tasks' binomial
    variances (independent tasks), each taken at Agresti-Coull's (k + 2) / (n + 4) so a task at
    0 or 100 % on a few items still counts its uncertainty: ``{"value", "ci", "tasks"}``."""
    vals = [v for v in values if v.get("value") is not None and v.get("n")]
    if not vals:
        return {"value": None, "ci": None, "tasks": 0}
    t = len(vals)
    mean = sum(v["value"] for v in vals) / t
    adj = [((v["value"] * v["n"] + 2) / (v["n"] + 4), v["n"] + 4) for v in vals]
    var = sum(p * (1 - p) / n for p, n in adj) / t**2
    half = Z95 * math.sqrt(var)
    return {"value": mean, "ci": (max(0.0, mean - half), min(1.0, mean + half)), "tasks": t}


def mcnemar(a: dict[int, bool], b: dict[int, bool]) -> dict:
    """Paired comparison over the items both models scored (``doc_id -> correct``)."""
    both = sorted(set(a) & set(b))
    a_only = sum(1 for d in both if a[d] and not b[d])
    b_only = sum(1 for d in both if b[d] and not a[d])
    return {
        "items": len(both),
        "a_only": a_only,
        "b_only": b_only,
        "both": sum(1 for d in both if a[d] and b[d]),
        "neither": sum(1 for d in both if not a[d] and not b[d]),
        "p": mcnemar_p(a_only, b_only),
    }


def verdict(m: dict, names: tuple[str, str]) -> str:
    """One phrase: which model is better on the task, or level, from a ``mcnemar`` entry."""
    if not m["items"]:
        return "no items both scored"
    if m["p"] < ALPHA and m["a_only"] != m["b_only"]:
        win = names[0] if m["a_only"] > m["b_only"] else names[1]
        return f"{win} better (p = {m['p']:.3g})"
    return f"level (p = {m['p']:.2g}, not < {ALPHA:g})"
