"""Blind A/B votes in the TUI (``--blind`` or ``b``), and stepping through a prompt suite (``n``).

Two controllers the app owns (``app.blind``, ``app.suite``; they use the app through
``AppSurface``). In blind mode each run draws at random which model sits on side A (the
left or top pane) and which on B (with three or four panes: which two of them are A and B, the
others C and D, as LMArena draws two per vote), and the panes hide whatever names a model — title, header
(arch, size, quant), card — until the vote; the figures stay. Once both have finished, ``1`` (A
better), ``2`` (B better), ``=`` (tie) or ``x`` (both bad) appends one line to
``abtop-results/battles.jsonl`` (fsync'd before the names are shown: a kill after the vote loses
nothing), reveals the names, and each pane's border shows its model's win rate against the other
with a 95 % Wilson interval (ties half), over every vote in the log between the two.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from textual.widgets import Input, Static

from backends import WINNERS, append_vote, battle_record, read_battles, vote_summary
from backends.specs import public_spec
from tui.text.safe import safe
from tui.text.votes_text import win_rate

if TYPE_CHECKING:
    from tui.app.surface import AppSurface

VOTE_WORDS = {"1": "A is better", "2": "B is better", "=": "a tie", "x": "both bad"}


class BlindVotes:
    """The blind mode, the sides of the battle on screen, and the votes (keys ``b``, ``1 2 = x``)."""

    def __init__(self, app: AppSurface, on: bool = False, rng: random.Random | None = None) -> None:
        self.app = app
        self.on = on
        """Blind mode: the names stay hidden from the next run until the vote."""
        self.rng = rng or random.Random()
        self.sides: list[int] = [0, 1]
        """The pane slots on side A and B of the battle on screen."""
        self.battle: dict | None = None
        """The run awaiting a vote: prompt, prompt id, sides; None once voted (or not blind)."""

    # -- the draw ----------------------------------------------------------------------------------
    def before_run(self, prompt: str, prompt_id: str | None) -> None:
        """Called as a run starts: in blind mode, draw the sides and hide the names."""
        panes = self.app.panes
        if not self.on or len(panes) < 2:
            self.battle = None
            return
        if len(panes) == 2:  # A is the left (or top) pane
            self.sides = [1, 0] if self.rng.random() < 0.5 else [0, 1]
            container = self.app.query_one("#panes")
            a, b = (panes[s] for s in self.sides)
            container.move_child(a, before=b)
        else:  # more than two: each vote is between two drawn at random (LMArena's way); the panes stay
            self.sides = self.rng.sample(range(len(panes)), 2)
        others = [i for i in range(len(panes)) if i not in self.sides]
        for label, slot in zip("ABCD", self.sides + others, strict=False):
            panes[slot].set_blind(label)  # the others' names are hidden too: none is told by elimination
        self.battle = {"prompt": prompt, "prompt_id": prompt_id, "sides": list(self.sides)}
        self.app.refresh_bindings()

    def _reveal(self) -> None:
        for pane in self.app.panes:
            pane.set_blind(None)

    def can_vote(self) -> bool:
        session = self.app.session
        if self.battle is None or session is None or session.running:
            return False
        return all(
            p.collector is not None and p.collector.finished is not None and p.collector.finished.stop != "cancelled"
            and not p.failed
            for p in (self.app.panes[s] for s in self.battle["sides"])
        )  # fmt: skip

    # -- keys ----------------------------------------------------------------------------------------
    def vote(self, key: str) -> None:
        app = self.app
        if self.battle is None:
            app.notify("Nothing to vote on: press b for blind mode, then Enter.", severity="warning")
            return
        if not self.can_vote():
            app.notify("Vote once both answers have finished.", severity="warning")
            return
        a, b = (app.panes[s] for s in self.battle["sides"])
        runs = {"a": a.runs[-1]["run"] if a.runs else None, "b": b.runs[-1]["run"] if b.runs else None}
        record = battle_record(
            model_a=public_spec(a.spec), model_b=public_spec(b.spec), winner=WINNERS[key],
            prompt=self.battle["prompt"], prompt_id=self.battle["prompt_id"],
            name_a=a.loaded.info.name if a.loaded else None, name_b=b.loaded.info.name if b.loaded else None,
            slot_a=a.slot, slot_b=b.slot, params=app.export_params(), run_ids=runs,
        )  # fmt: skip
        log = app.battle_log
        try:
            append_vote(log, record)
        except OSError as exc:
            app.notify(f"Could not write the vote to {log}: {exc.strerror or exc}.", severity="error")
            return
        self.battle = None
        self._reveal()
        self.show_win_rates()
        app.refresh_bindings()
        app.notify(
            f"{VOTE_WORDS[key]}: A was {safe(record['name_a'] or record['model_a'])}, "
            f"B was {safe(record['name_b'] or record['model_b'])}. Vote saved to {log}.",
            timeout=8,
        )

    def show_win_rates(self) -> None:
        """Each pane's border: its model's win rate against the other, from the whole log."""
        log = self.app.battle_log
        try:
            battles = read_battles([log]) if log.exists() else []
        except (OSError, ValueError):
            return
        specs = {public_spec(p.spec) for p in self.app.panes}
        pair = [x for x in battles if {x.model_a, x.model_b} <= specs]  # among the models on screen (Bradley–Terry for N)
        if not pair:
            return
        by_model = {m["model"]: m for m in vote_summary(pair)["models"]}
        for pane in self.app.panes:
            m = by_model.get(public_spec(pane.spec))
            if m:
                pane.show_votes("won " + win_rate(m["win_rate"], m["ci95"], m["battles"]))

    def toggle(self) -> None:
        """``b``: blind mode on or off."""
        self.on = not self.on
        if self.on:
            self.app.notify("Blind mode: names hidden from the next run; vote with 1, 2, = or x.")
        else:
            self.battle = None
            self._reveal()
            self.app.notify("Blind mode off.")


class Suite:
    """A ``--prompts`` suite: which of its prompts is in the bar (key ``n``)."""

    def __init__(self, app: AppSurface, prompts: list | None = None) -> None:
        self.app = app
        self.prompts = prompts or []
        self.index = 0
        self.prompt_id: str | None = self.prompts[0].id if self.prompts else None
        """The suite's id of the prompt in the bar; None once it is edited (or with no suite)."""

    def position(self) -> str:
        return suite_position(self.index, len(self.prompts))

    def running(self, prompt: str) -> None:
        """A run of ``prompt`` starts: an edited prompt is no longer the suite's."""
        if self.prompts:
            here = self.prompts[self.index]
            self.prompt_id = here.id if prompt == here.text else None

    def tag(self, models: list[dict]) -> None:
        """In a suite, the runs on screen are all of the prompt in the bar: each export entry says which."""
        if self.prompts:
            for m in models:
                m["runs"] = [dict(r, prompt_id=self.prompt_id, prompt=self.app.prompt) for r in m["runs"]]

    def next(self) -> None:
        """``n``: the suite's next prompt into the bar, and run it."""
        app = self.app
        if not self.prompts:
            app.notify("No prompt suite: start abtop with --prompts FILE (or --prompts suite).", severity="warning")
            return
        if app.session is not None and app.session.running:
            app.notify("Running: Esc cancels, then n.")
            return
        self.index = (self.index + 1) % len(self.prompts)
        p = self.prompts[self.index]
        self.prompt_id = p.id
        app.query_one("#prompt", Input).value = p.text
        app.query_one("#suite-pos", Static).update(self.position())
        app.action_run()


def suite_position(index: int, total: int) -> str:
    """The prompt bar's place in a suite, with its key: the footer has no room for "n Next"."""
    return f"{index + 1}/{total} · n next"
