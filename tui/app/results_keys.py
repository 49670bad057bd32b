"""The keys that hand the runs on screen on: ``e`` exports, ``s`` saves an SVG, ``g`` plots,
``t`` shows each model's whole text.

A mixin for ``ABTopApp`` (and so for the replay): it reads only the panes, ``results_dir`` and
``export_params()``, so the files are the same whether the runs were live or replayed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from textual import work

from tui.files import export
from tui.widgets.results import ModelResults, ResultsScreen
from tui.widgets.stream_view import StreamView
from tui.widgets.texts import TextScreen


class ResultsKeys:
    panes: list
    results_dir: Path
    mode: str
    narrow: bool

    def export_params(self, runs: int) -> dict:  # pragma: no cover - the app defines it
        raise NotImplementedError

    def results_models(self) -> list[dict]:
        """The export entries for the runs on screen (``export.model_entry``)."""
        return [export.model_entry(p.spec, p.loaded, list(p.runs)) for p in self.panes]

    def action_export(self) -> None:
        if not any(p.runs for p in self.panes):
            self.notify("Nothing to export yet: run the models first.", severity="warning")
            return
        models = self.results_models()
        params = self.export_params(max(len(m["runs"]) for m in models))
        modes = {r["mode"] for p in self.panes for r in p.runs if r.get("mode")}
        if len(modes) == 1:  # the mode the runs had, not the one chosen since (m after the run)
            params["mode"] = modes.pop()
        self._export(models, params)

    @work(group="export", exit_on_error=False)
    async def _export(self, models: list[dict], params: dict) -> None:
        doc = await asyncio.to_thread(export.document, models, params)  # host_info reads sensors
        try:
            written, failed = await asyncio.to_thread(export.write_all, doc, self.results_dir)
        except OSError as exc:
            self.notify(f"Could not write the exports in {self.results_dir}: {exc.strerror or exc}.", severity="error")
            return
        if failed:  # each file is whole or absent: say which, and what was written
            what = "; ".join(f"{p.name} ({exc.strerror or exc})" for p, exc in failed)
            kept = f" Written: {', '.join(p.name for p in written)}." if written else ""
            self.notify(f"Could not write {what} in {self.results_dir}.{kept}", severity="error", timeout=12)
            return
        n = sum(len(m["runs"]) for m in models)
        self.notify(f"Exported {n} runs to\n{written[0].with_suffix('')}.json, .csv, .md", timeout=8)

    def action_screenshot(self) -> None:
        path = self.results_dir / time.strftime("abtop-%Y%m%d-%H%M%S.svg")
        try:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            export.write_atomic(path, self.export_screenshot())  # whole or absent, never a cut SVG
        except OSError as exc:
            self.notify(f"Could not save the screenshot in {self.results_dir}: {exc.strerror or exc}.", severity="error")
            return
        self.notify(f"Screenshot saved to {path}", timeout=8)

    def action_texts(self) -> None:
        """``t``: each model's whole latest text, scrollable, side by side."""
        if isinstance(self.screen, TextScreen):
            self.screen.dismiss(None)
            return
        texts = [
            ((p.loaded.info.name if p.loaded else p.spec) + (" · so far" if p.has_class("-streaming") else ""),
             p.query_one(StreamView).text)
            for p in self.panes
        ]  # fmt: skip
        if not any(text for _, text in texts):
            self.notify("No text yet: run the models first.", severity="warning")
            return
        self.push_screen(TextScreen(texts, narrow=self.narrow))

    def action_results(self) -> None:
        if isinstance(self.screen, ResultsScreen):
            self.screen.dismiss(None)
            return
        if not any(p.runs or (p.collector and p.collector.token_times) for p in self.panes):
            self.notify("No results yet: run the models first.", severity="warning")
            return
        models = [
            ModelResults.from_collector(p.loaded.info.name if p.loaded else p.spec, list(p.runs), p.collector)
            for p in self.panes
        ]
        self.push_screen(ResultsScreen(models, f"{self.panes[0].mode or self.mode} mode"))
