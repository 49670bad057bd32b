"""The quality keys: ``S`` scores bits per byte with the loaded models, ``v`` shows the verdict.

A mixin for ``ABTopApp``. ``S`` reads the bundled reference text with each loaded model in turn
(in its worker: no reload), shows the figure in the pane's border, and puts it beside the speed
in ``e``'s exports and in the verdict. ``v`` builds the verdict from the runs on screen, the
scores, and the battle log's votes between the two models.
"""

from __future__ import annotations

import asyncio

from textual import work

from backends import host_info, read_battles, reference_text, score_loaded, text_info, vote_summary
from backends.specs import public_spec
from tui.text import verdict
from tui.widgets.verdict_screen import VerdictScreen


class QualityKeys:
    panes: list

    def setup_quality(self) -> None:
        self.scores: dict[int, dict] = {}
        """Per pane slot: its model's ``score_loaded`` entry (bpb on the bundled text)."""
        self.score_text_info: dict | None = None
        self.score_source: tuple[str, str] | None = None
        """(text, name) ``S`` reads; None: the bundled reference text."""

    def results_models(self) -> list[dict]:
        models = super().results_models()
        for pane, m in zip(self.panes, models, strict=True):
            if pane.slot in self.scores:
                m["score"] = self.scores[pane.slot]
            if self.prompts:  # a suite: the runs on screen are all of the prompt in the bar
                m["runs"] = [dict(r, prompt_id=self.prompt_id, prompt=self.prompt) for r in m["runs"]]
        return models

    def action_score(self) -> None:
        s = self.session
        if s is None or not self.models_loaded.is_set():
            self.notify("Models are still loading…")
            return
        if s.running or self._engine.locked():
            self.notify("Running: score once the runs are done (Esc cancels).")
            return
        self._score()

    @work(group="score", exclusive=True, exit_on_error=False)
    async def _score(self) -> None:
        text, name = self.score_source or (reference_text(), "bundled reference text")
        self.score_text_info = text_info(text, name)
        async with self._engine:
            for k, b in enumerate(self.session.backends):
                if not self.session.alive[k]:
                    continue
                pane = self.panes[self._slots[k]]

                def progress(done: int, total: int, pane=pane) -> None:
                    pane.show_score(f"scoring {done}/{total} tokens")

                pane.show_score("scoring…")
                entry = await score_loaded(b, text, progress=progress)
                self.scores[pane.slot] = entry
                pane.show_score(f"bpb {entry['bpb']:.4f}" if entry["bpb"] is not None else "bpb n/a")
                if entry["bpb"] is None:
                    self.notify(entry["reason"], severity="warning", timeout=8)
        self.notify("Bits per byte of the bundled text: lower predicts it better. v shows the verdict.")

    def action_verdict(self) -> None:
        if isinstance(self.screen, VerdictScreen):
            self.screen.dismiss(None)
            return
        models = self.results_models()
        if not any(m["runs"] or m.get("score") for m in models):
            self.notify("Nothing to judge yet: run the models (Enter), score them (S) or vote (--blind).", severity="warning")
            return
        self._verdict(models)

    @work(group="verdict", exit_on_error=False)
    async def _verdict(self, models: list[dict]) -> None:
        doc = {"models": models, "params": self.export_params()}
        votes = None
        log = self.battle_log
        specs = {public_spec(p.spec) for p in self.panes}
        try:
            battles = [x for x in read_battles([log]) if {x.model_a, x.model_b} == specs] if log.exists() else []
        except (OSError, ValueError):
            battles = []
        if battles:
            votes = vote_summary(battles)
        host = await asyncio.to_thread(host_info)
        cols = verdict.columns(bench=doc, votes=votes)
        modes = {r.get("mode") for m in models for r in m["runs"] if r.get("mode")}
        context = verdict.context_line(host, "/".join(sorted(modes)) or self.mode)
        if self.score_text_info:
            t = self.score_text_info
            context += f"\nbpb: {t['name']}, {t['bytes']:,} bytes."
        if battles:
            context += f"\nwin rate: {len(battles)} blind vote(s) in {log}."
        self.push_screen(VerdictScreen(cols, context))

