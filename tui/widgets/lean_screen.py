"""The main screen, with a compositor that renders only the widgets a frame changes.

Textual's compositor (8.2.8, ``Compositor._get_renders``) picks the widgets to render for a
partial update by whether their *clip* (their container's visible area) overlaps the frame's
crop, so one changed row of streamed text renders every widget in both panes: the card, the
labels and sparklines, the stats line, ~21 widgets a frame where 2 changed. Each costs Textual
0.1–0.5 ms even when all its lines are cached, on a core a model needs.

``LeanCompositor`` renders a widget only where its visible part (region ∩ clip) overlaps the
crop, and only that part: upstream renders the whole widget (all 45 rows of a pane, each taken
from its cache and filtered) to use the rows that changed. Nothing else can add a cell to the
frame: ``_render_chops`` draws each widget into region ∩ clip, and only cells inside the frame's
spans (all inside the crop) are sent. A full update (no crop) is Textual's own.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual._compositor import Compositor
from textual.geometry import Region
from textual.screen import Screen
from textual.strip import Strip


class LeanCompositor(Compositor):
    def _get_renders(self, crop: Region | None = None) -> Iterable[tuple[Region, Region, list[Strip]]]:
        if crop is None:  # a full update: Textual's own
            yield from super()._get_renders(crop)
            return
        for widget, (region, clip) in self.visible_widgets.items():  # front to back, as upstream
            part = region.intersection(clip).intersection(crop)
            if part:  # its cells in the crop, and only those rows (upstream renders it whole)
                x, y, width, height = part
                yield region, part, widget.render_lines(Region(x - region.x, y - region.y, width, height))


class LeanScreen(Screen):
    """A Screen drawn by ``LeanCompositor``; otherwise Textual's own."""

    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._compositor = LeanCompositor()
