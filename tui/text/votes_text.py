"""How votes are written for people: win rate ± interval, and the ``abtop votes`` Markdown."""

from __future__ import annotations


def win_rate(rate: float | None, ci: tuple[float, float] | list[float], n: int) -> str:
    """``62% (41–79%, 12 votes)``: the Wilson interval is not symmetric, so both ends are shown."""
    if rate is None or not n:
        return "no votes"
    return f"{rate:.0%} ({ci[0]:.0%}–{ci[1]:.0%}, {n} vote{'s' if n != 1 else ''})"


def markdown(summary: dict) -> str:
    """The votes section: one row per model; ratings (Bradley–Terry) when more than two met."""
    head = "| model | votes | won | lost | tie | both bad | win rate (95% Wilson) |\n|---|---|---|---|---|---|---|\n"
    rows = [
        f"| {m['name']} | {m['battles']} | {m['wins']} | {m['losses']} | {m['ties']} | {m['both_bad']} | "
        f"{win_rate(m['win_rate'], m['ci95'], m['battles'])} |"
        for m in summary["models"]
    ]
    out = "## Blind votes\n\n" + head + "\n".join(rows) + "\n"
    if summary.get("ratings"):
        out += (
            "\n### Bradley–Terry ratings (LMArena scale, 95% bootstrap interval)\n\n"
            "| model | rating | interval |\n|---|---|---|\n"
        )
        out += "\n".join(
            f"| {r['name']} | {r['rating']:.0f} | {r['ci95'][0]:.0f}–{r['ci95'][1]:.0f} |" for r in summary["ratings"]
        )
        out += "\n"
    out += f"\n{summary['battles']} vote(s); a tie or a both-bad vote counts as half a win for each side.\n"
    return out
