"""The model picker: Textual's command palette with one provider, the list ``abtop models`` finds.

``o`` opens it alone; Ctrl+P's palette holds it beside Textual's own commands. Each model is
offered for pane A and for pane B ("A ← …", "B ← …"), with its arch, size, quant and PLE/MoE, and
a fuzzy search over all of it. Picking one swaps that pane's model without a restart.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from backends import model_list
from tui.text.format import human_bytes
from tui.text.safe import safe

if TYPE_CHECKING:
    from tui.app.surface import AppSurface

PANES = "ABCD"
"""A letter per pane, in order (the TUI shows up to four)."""


def _line(slot: int, f: model_list.Found) -> str:
    bits = [b for b in (f.arch, human_bytes(f.size) if f.size else None, f.quant, f.kind) if b]
    return safe(f"{PANES[slot]} ← {f.spec}" + (f"  {' · '.join(bits)}" if bits else ""))


def gather() -> list[tuple[str, model_list.Found]]:
    """(section title, model) for every model here, cards read (blocking: run it in a thread)."""
    out = []
    for sec in model_list.find(picker=True):
        for f in sec.items:
            if f.size is None and f.path is None and sec.title == "bundled":
                continue  # not installed
            out.append((sec.title.split(" (")[0], model_list.with_card(f)))
    return out


class ModelsProvider(Provider):
    """Models to swap into a pane."""

    async def startup(self) -> None:
        self.models = await asyncio.to_thread(gather)

    def _hits(self):
        app = cast("AppSurface", self.app)  # only ABTopApp (and so its replay) lists this provider
        for slot in range(min(len(app.panes), len(PANES))):
            for where, f in self.models:
                yield _line(slot, f), partial(app.swap_model, slot, f.spec), safe(f"{where} · {f.detail}" if f.detail else where)

    async def discover(self) -> Hits:
        for text, command, help in self._hits():
            yield DiscoveryHit(text, command, text=text, help=help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help in self._hits():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, text=text, help=help)
