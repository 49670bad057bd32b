"""Blind A/B votes in the TUI (``--blind`` or ``b``), and stepping through a prompt suite (``n``).

A mixin for ``ABTopApp``. In blind mode each run draws at random which model sits on side A (the
left or top pane) and which on B, and the panes hide whatever names a model — title, header
(arch, size, quant), card — until the vote; the figures stay. Once both have finished, ``1`` (A
better), ``2`` (B better), ``=`` (tie) or ``x`` (both bad) appends one line to
``abtop-results/battles.jsonl`` (fsync'd before the names are shown: a kill after the vote loses
nothing), reveals the names, and each pane's border shows its model's win rate against the other
with a 95 % Wilson interval (ties half), over every vote in the log between the two.
"""

from __future__ import annotations

import random
from pathlib import Path

from textual.widgets import Input, Static

from backends import LOG_NAME, WINNERS, append_vote, battle_record, read_battles, vote_summary
from backends.specs import public_spec
from tui.text.safe import safe
from tui.text.votes_text import win_rate

VOTE_WORDS = {"1": "A is better", "2": "B is better", "=": "a tie", "x": "both bad"}


class BlindVotes:
    panes: list
    results_dir: Path
    prompt: str

    def setup_blind(self, blind: bool, prompts: list | None = None, rng: random.Random | None = None) -> None:
        self.blind = blind
        self.rng = rng or random.Random()
        self.sides: list[int] = [0, 1]
        """The pane slots on side A and B of the battle on screen."""
        self.battle: dict | None = None
        """The run awaiting a vote: prompt, prompt id, sides; None once voted (or not blind)."""
        self.prompts = prompts or []
        self.prompt_index = 0
        self.prompt_id: str | None = self.prompts[0].id if self.prompts else None

    @property
    def battle_log(self) -> Path:
        return self.results_dir / LOG_NAME

    # -- the draw ----------------------------------------------------------------------------------
    def blind_before_run(self, prompt: str) -> None:
        """Called as a run starts: in blind mode, draw the sides and hide the names."""
        if not self.blind or len(self.panes) != 2:
            self.battle = None
            return
        self.sides = [1, 0] if self.rng.random() < 0.5 else [0, 1]
        container = self.query_one("#panes")
        a, b = (self.panes[s] for s in self.sides)
        container.move_child(a, before=b)
        for label, slot in zip("AB", self.sides, strict=True):
            self.panes[slot].set_blind(label)
        self.battle = {"prompt": prompt, "prompt_id": self.prompt_id, "sides": list(self.sides)}
        self.refresh_bindings()

    def _reveal(self) -> None:
        for pane in self.panes:
            pane.set_blind(None)

    def can_vote(self) -> bool:
        if self.battle is None or getattr(self, "session", None) is None or self.session.running:
            return False
        return all(
            p.collector is not None and p.collector.finished is not None and p.collector.finished.stop != "cancelled"
            and not p.failed
            for p in self.panes
        )  # fmt: skip

    # -- keys ----------------------------------------------------------------------------------------
    def action_vote(self, key: str) -> None:
        if self.battle is None:
            self.notify("Nothing to vote on: press b for blind mode, then Enter.", severity="warning")
            return
        if not self.can_vote():
            self.notify("Vote once both answers have finished.", severity="warning")
            return
        a, b = (self.panes[s] for s in self.battle["sides"])
        runs = {"a": a.runs[-1]["run"] if a.runs else None, "b": b.runs[-1]["run"] if b.runs else None}
        record = battle_record(
            model_a=public_spec(a.spec), model_b=public_spec(b.spec), winner=WINNERS[key],
            prompt=self.battle["prompt"], prompt_id=self.battle["prompt_id"],
            name_a=a.loaded.info.name if a.loaded else None, name_b=b.loaded.info.name if b.loaded else None,
            slot_a=a.slot, slot_b=b.slot, params=self.export_params(), run_ids=runs,
        )  # fmt: skip
        try:
            append_vote(self.battle_log, record)
        except OSError as exc:
            self.notify(f"Could not write the vote to {self.battle_log}: {exc.strerror or exc}.", severity="error")
            return
        self.battle = None
        self._reveal()
        self.show_win_rates()
        self.refresh_bindings()
        self.notify(
            f"{VOTE_WORDS[key]}: A was {safe(record['name_a'] or record['model_a'])}, "
            f"B was {safe(record['name_b'] or record['model_b'])}. Vote saved to {self.battle_log}.",
            timeout=8,
        )

    def show_win_rates(self) -> None:
        """Each pane's border: its model's win rate against the other, from the whole log."""
        try:
            battles = read_battles([self.battle_log]) if self.battle_log.exists() else []
        except (OSError, ValueError):
            return
        specs = {public_spec(p.spec) for p in self.panes}
        pair = [x for x in battles if {x.model_a, x.model_b} == specs]
        if not pair:
            return
        by_model = {m["model"]: m for m in vote_summary(pair)["models"]}
        for pane in self.panes:
            m = by_model.get(public_spec(pane.spec))
            if m:
                pane.show_votes("won " + win_rate(m["win_rate"], m["ci95"], m["battles"]))

    def action_blind(self) -> None:
        self.blind = not self.blind
        if self.blind:
            self.notify("Blind mode: names hidden from the next run; vote with 1, 2, = or x.")
        else:
            self.battle = None
            self._reveal()
            self.notify("Blind mode off.")

    def action_next_prompt(self) -> None:
        """``n``: the suite's next prompt into the bar, and run it."""
        if not self.prompts:
            self.notify("No prompt suite: start abtop with --prompts FILE (or --prompts suite).", severity="warning")
            return
        if getattr(self, "session", None) is not None and self.session.running:
            self.notify("Running: Esc cancels, then n.")
            return
        self.prompt_index = (self.prompt_index + 1) % len(self.prompts)
        p = self.prompts[self.prompt_index]
        self.prompt_id = p.id
        self.query_one("#prompt", Input).value = p.text
        self.show_suite_position()
        self.action_run()

    def show_suite_position(self) -> None:
        if self.prompts:
            self.query_one("#suite-pos", Static).update(suite_position(self.prompt_index, len(self.prompts)))


def suite_position(index: int, total: int) -> str:
    """The prompt bar's place in a suite, with its key: the footer has no room for "n Next"."""
    return f"{index + 1}/{total} · n next"
