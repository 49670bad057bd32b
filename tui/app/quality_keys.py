"""The quality keys: ``S`` scores bits per byte, ``a`` the accuracy on standard tasks, with the
loaded models; ``f`` predicts the least RAM each model needs (abtop fit); ``v`` shows the verdict.

A controller the app owns (``app.quality_keys``; it uses the app through ``AppSurface``). ``S``
reads the bundled reference text with each loaded model in turn (in its worker: no reload), shows
the figure in the pane's border, and puts it beside the speed in ``e``'s exports and in the
verdict. ``a`` runs ``abtop eval``'s default tasks the same way (each model in turn, all cores, the
same seeded items): the pane's border counts the items and the rate, then shows the macro
accuracy; Esc stops after the item in hand and keeps what was read. ``v`` builds the verdict from
the runs on screen, the scores, the accuracy (a row per task, marked only where the paired test
says p < 0.05) and the battle log's votes between the two models. The accuracy lives here, beside
the scores, because the verdict reads both.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import TYPE_CHECKING

from backends import (
    EVAL_DEFAULT_TASKS,
    EvalDataError,
    eval_loaded,
    eval_plan,
    eval_section,
    fit_specs,
    host_info,
    read_battles,
    reference_text,
    score_loaded,
    text_info,
    vote_summary,
)
from backends.base import BackendError
from backends.specs import public_spec
from backends.units import human_bytes
from tui.text import verdict
from tui.widgets.verdict_screen import VerdictScreen

if TYPE_CHECKING:
    from tui.app.surface import AppSurface


class QualityKeys:
    def __init__(self, app: AppSurface) -> None:
        self.app = app
        self.scores: dict[int, dict] = {}
        """Per pane slot: its model's ``score_loaded`` entry (bpb on the bundled text)."""
        self.score_text_info: dict | None = None
        self.score_source: tuple[str, str] | None = None
        """(text, name) ``S`` reads; None: the bundled reference text."""
        self.evals: dict | None = None
        """``a``'s last eval: the entries and the paired comparison (``eval_section``)."""
        self.eval_tasks: tuple[str, ...] = EVAL_DEFAULT_TASKS
        self.eval_limit: int | None = None
        """Items per task (None: the eval's default)."""
        self._eval_worker = None
        self._eval_stop: asyncio.Event | None = None
        self.fit_doc: dict | None = None
        """``f``'s ``abtop.fit/1`` document, a model per pane; None until asked (or after a model changed)."""

    def add_scores(self, models: list[dict]) -> None:
        """Each export entry (one per pane) gets its model's score, where ``S`` gave one."""
        for pane, m in zip(self.app.panes, models, strict=True):
            if pane.slot in self.scores:
                m["score"] = self.scores[pane.slot]

    def score(self) -> None:
        """``S``: bits per byte of the text, with each loaded model."""
        app = self.app
        s = app.session
        if s is None or not app.models_loaded.is_set():
            app.notify("Models are still loading…")
            return
        if s.running or app.engine.locked():
            app.notify("Running: score once the runs are done (Esc cancels).")
            return
        app.run_worker(self._score, group="score", exclusive=True, exit_on_error=False)

    async def _score(self) -> None:
        app = self.app
        text, name = self.score_source or (reference_text(), "bundled reference text")
        self.score_text_info = text_info(text, name)
        async with app.engine:
            session = app.session
            assert session is not None
            for k, b in enumerate(session.backends):
                if not session.alive[k]:
                    continue
                pane = app.panes[app.slots[k]]

                def progress(done: int, total: int, pane=pane) -> None:
                    pane.show_score(f"scoring {done}/{total} tokens")

                pane.show_score("scoring…")
                try:
                    entry = await score_loaded(b, text, progress=progress)
                except BaseException:  # cancelled (quit, o) or worse: no "scoring 3/9" left behind
                    pane.show_score(None)
                    raise
                self.scores[pane.slot] = entry
                pane.show_score(f"bpb {entry['bpb']:.4f}" if entry["bpb"] is not None else "bpb n/a")
                if entry["bpb"] is None:
                    app.notify(entry["reason"], severity="warning", timeout=8)
        app.notify("Bits per byte of the bundled text: lower predicts it better. v shows the verdict.")

    def fit(self) -> None:
        """``f``: the least RAM each pane's model needs at this context (abtop fit; nothing loaded)."""
        app = self.app
        s = app.session
        if (s is not None and s.running) or app.engine.locked():
            app.notify("Running: ask what fits once the runs are done (Esc cancels).")
            return
        app.run_worker(self._fit, group="fit", exclusive=True, exit_on_error=False)

    async def _fit(self) -> None:
        app = self.app
        opts = app.engine_options
        docs = []
        for pane in app.panes:
            pane.show_score(f"fit: asking llama.cpp for its plan at --ctx {app.n_ctx:,}…", "fit")
            try:
                doc = await fit_specs([pane.spec], app.n_ctx, lazy_ple=opts.get("lazy_ple"), repack=opts.get("repack"),
                                      flash_attn=opts.get("flash_attn"))  # fmt: skip
            except BackendError as exc:
                pane.show_score("fit n/a", "fit")
                app.notify(str(exc), severity="warning", timeout=8)
                return
            m = doc["models"][0]
            r = m["contexts"][0] if m["contexts"] else None
            least = r and r["least_ram_bytes"]
            pane.show_score(f"least RAM {human_bytes(least)} at {r['ctx']:,}" if least else "least RAM n/a", "fit")
            docs.append(doc)
        self.fit_doc = dict(docs[0], models=[d["models"][0] for d in docs])
        app.notify("Least RAM to run without paging, predicted (abtop fit): in the verdict (v) and the exports (e).")

    def fit_section(self) -> dict | None:
        """``f``'s figures for an export or the verdict, while they are of the panes' models."""
        if self.fit_doc and [m["spec"] for m in self.fit_doc["models"]] == [public_spec(p.spec) for p in self.app.panes]:
            return self.fit_doc
        return None

    def eval_running(self) -> bool:
        return self._eval_worker is not None and not self._eval_worker.is_finished

    def stop_eval(self) -> bool:
        """Esc: the eval stops after the item in hand; False when none runs."""
        if not self.eval_running() or self._eval_stop is None:
            return False
        self._eval_stop.set()
        return True

    def accuracy(self) -> None:
        """``a``: the accuracy on standard tasks, with each loaded model."""
        app = self.app
        s = app.session
        if s is None or not app.models_loaded.is_set():
            app.notify("Models are still loading…")
            return
        if s.running or app.engine.locked() or self.eval_running():
            app.notify("Running: run the eval once the runs are done (Esc cancels).")
            return
        self._eval_stop = asyncio.Event()
        self._eval_worker = app.run_worker(self._eval, group="eval", exclusive=True, exit_on_error=False)
        app.refresh_bindings()  # "esc Stop"

    async def _eval(self) -> None:
        app, stop = self.app, self._eval_stop
        assert stop is not None
        try:
            chosen = await asyncio.to_thread(eval_plan, list(self.eval_tasks), self.eval_limit, 0)
        except EvalDataError as exc:
            app.notify(str(exc), severity="error", timeout=10)
            return
        entries = []
        async with app.engine:
            session = app.session
            assert session is not None
            mode = session.mode
            await session.set_mode("alternate")  # one at a time, every core
            for k, b in enumerate(session.backends):
                if not session.alive[k] or stop.is_set():
                    continue
                pane = app.panes[app.slots[k]]
                t0 = time.monotonic()

                def progress(task: str, done: int, total: int, pane=pane, t0=t0) -> None:
                    spent = time.monotonic() - t0
                    rate = f", {done / spent:.1f} items/s" if spent > 0 else ""
                    pane.show_score(f"eval {done}/{total} items ({task}){rate}", "acc")

                pane.show_score("eval…", "acc")
                try:
                    entry = await eval_loaded(b, chosen, stop=stop, progress=progress)
                except BaseException:  # cancelled (quit, o) or worse: no "eval 3/40" left behind
                    pane.show_score(None, "acc")
                    raise
                entries.append(entry)
                macro = (entry.get("macro") or {}).get("acc") or {}
                pane.show_score(f"acc {macro['value'] * 100:.1f} % (macro)" if macro.get("value") is not None else "acc n/a", "acc")
                if entry.get("reason"):
                    app.notify(entry["reason"], severity="warning", timeout=8)
            if mode != "alternate":
                await session.set_mode(mode)
        self.evals = eval_section(entries, chosen, seed=0, limit=self.eval_limit)
        app.refresh_bindings()
        what = "stopped: the items read so far are kept" if stop.is_set() else "done"
        app.notify(f"Accuracy {what}. v shows the verdict (a row per task; ✓ only where the paired test says p < 0.05).")

    def verdict(self) -> None:
        """``v``: the verdict screen (``v`` again closes it)."""
        app = self.app
        if isinstance(app.screen, VerdictScreen):
            app.screen.dismiss(None)
            return
        models = app.results_models()
        if not any(m["runs"] or m.get("score") for m in models) and not self.evals and not self.fit_doc:
            app.notify("Nothing to judge yet: run the models (Enter), score them (S) or vote (--blind).", severity="warning")
            return
        app.run_worker(partial(self._verdict, models), group="verdict", exit_on_error=False)

    async def _verdict(self, models: list[dict]) -> None:
        app = self.app
        doc = {"models": models, "params": app.export_params()}
        if self.fit_section():
            doc["fit"] = self.fit_section()
        votes = None
        log = app.battle_log
        specs = {public_spec(p.spec) for p in app.panes}
        try:
            battles = [x for x in read_battles([log]) if {x.model_a, x.model_b} == specs] if log.exists() else []
        except (OSError, ValueError):
            battles = []
        if battles:
            votes = vote_summary(battles)
        host = await asyncio.to_thread(host_info)
        cols = verdict.columns(bench=doc, votes=votes, evals=self.evals)
        modes = {r.get("mode") for m in models for r in m["runs"] if r.get("mode")}
        context = verdict.context_line(host, "/".join(sorted(modes)) or app.mode)
        if self.score_text_info:
            t = self.score_text_info
            context += f"\nbpb: {t['name']}, {t['bytes']:,} bytes."
        if battles:
            context += f"\nwin rate: {len(battles)} blind vote(s) in {log}."
        app.push_screen(VerdictScreen(cols, context))
