"""The keys that hand the runs on screen on: ``e`` exports, ``s`` saves an SVG, ``g`` plots,
``t`` shows each model's whole text.

A controller the app owns (``app.results_keys``; it uses the app through ``AppSurface``): it reads
only the panes, ``results_dir``, ``results_models()`` and ``export_params()``, so the files are the
same whether the runs were live or replayed.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from tui.files import export
from tui.widgets.results import ModelResults, ResultsScreen
from tui.widgets.stream_view import StreamView
from tui.widgets.texts import TextScreen

if TYPE_CHECKING:
    from tui.app.surface import AppSurface


def failed_sentence(written: list[Path], failed: list[tuple[Path, OSError]], where) -> str:
    """What a failed export says, short enough for the footer line a toast takes: one cause
    (a read-only folder, a full disk) is said once, and a file's stem once, not per file."""
    causes = {str(exc.strerror or exc) for _, exc in failed}
    if len(causes) == 1:
        names = failed[0][0].name + "".join(f", {p.suffix}" for p, _ in failed[1:])
        said = f"Could not write {names if written else 'the exports'} in {where}: {causes.pop()}."
    else:
        said = f"Could not write {'; '.join(f'{p.name} ({exc.strerror or exc})' for p, exc in failed)} in {where}."
    return said + (f" Written: {', '.join(p.name for p in written)}." if written else "")


class ResultsKeys:
    def __init__(self, app: AppSurface) -> None:
        self.app = app

    def export(self) -> None:
        """``e``: JSON, CSV and Markdown of the runs on screen."""
        app = self.app
        if not any(p.runs for p in app.panes):
            app.notify("Nothing to export yet: run the models first.", severity="warning")
            return
        models = app.results_models()
        params = app.export_params(max(len(m["runs"]) for m in models))
        modes = {r["mode"] for p in app.panes for r in p.runs if r.get("mode")}
        if len(modes) == 1:  # the mode the runs had, not the one chosen since (m after the run)
            params["mode"] = modes.pop()
        app.run_worker(partial(self._export, models, params), group="export", exit_on_error=False)

    async def _export(self, models: list[dict], params: dict) -> None:
        app = self.app
        where = app.results_dir
        doc = await asyncio.to_thread(export.document, models, params)  # host_info reads sensors
        fit = app.fit_section()
        if fit:
            doc["fit"] = fit
        try:
            written, failed = await asyncio.to_thread(export.write_all, doc, where)
        except OSError as exc:
            app.notify(f"Could not write the exports in {where}: {exc.strerror or exc}.", severity="error")
            return
        if failed:  # each file is whole or absent: say which, and what was written
            app.notify(failed_sentence(written, failed, where), severity="error", timeout=12)
            return
        n = sum(len(m["runs"]) for m in models)
        app.notify(f"Exported {n} run{'s' if n != 1 else ''}: {written[0].with_suffix('')}.json, .csv, .md", timeout=8)

    def screenshot(self) -> None:
        """``s``: the screen as an SVG."""
        app = self.app
        where = app.results_dir
        path = where / time.strftime("abtop-%Y%m%d-%H%M%S.svg")
        try:
            where.mkdir(parents=True, exist_ok=True)
            export.write_atomic(path, app.export_screenshot())  # whole or absent, never a cut SVG
        except OSError as exc:
            app.notify(f"Could not save the screenshot in {where}: {exc.strerror or exc}.", severity="error")
            return
        app.notify(f"Screenshot saved to {path}", timeout=8)

    def texts(self) -> None:
        """``t``: each model's whole latest text, scrollable, side by side."""
        app = self.app
        if isinstance(app.screen, TextScreen):
            app.screen.dismiss(None)
            return
        texts = [
            ((p.loaded.info.name if p.loaded else p.spec) + (" · so far" if p.has_class("-streaming") else ""),
             p.query_one(StreamView).text)
            for p in app.panes
        ]  # fmt: skip
        if not any(text for _, text in texts):
            app.notify("No text yet: run the models first.", severity="warning")
            return
        app.push_screen(TextScreen(texts, narrow=app.narrow))

    def results(self) -> None:
        """``g``: the plots (``g`` again closes them)."""
        app = self.app
        if isinstance(app.screen, ResultsScreen):
            app.screen.dismiss(None)
            return
        if not any(p.runs or (p.collector and p.collector.token_times) for p in app.panes):
            app.notify("No results yet: run the models first.", severity="warning")
            return
        models = [
            ModelResults.from_collector(p.loaded.info.name if p.loaded else p.spec, list(p.runs), p.collector)
            for p in app.panes
        ]
        app.push_screen(ResultsScreen(models, f"{app.panes[0].mode or app.mode} mode"))
