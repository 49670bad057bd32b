"""The main screen, with a compositor that renders only the widgets a frame changes.

Textual's compositor (8.2.8, ``Compositor._get_renders``) picks the widgets to render for a
partial update by whether their *clip* (their container's visible area) overlaps the frame's
crop, so one changed row of streamed text renders every widget in both panes: the card, the
labels and sparklines, the stats line, ~21 widgets a frame where 2 changed. Each costs Textual
0.1–0.5 ms even when all its lines are cached, on a core a model needs.

``LeanCompositor`` keeps a widget only where its visible part (region ∩ clip) overlaps the crop.
A widget that does not cannot add a cell to the frame: ``_render_chops`` draws each widget into
region ∩ clip, and only rows and columns inside the crop are sent. A full update (no crop) is
unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual._compositor import Compositor
from textual.geometry import Region
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget


class LeanCompositor(Compositor):
    _lean_crop: Region | None = None

    def _get_renders(self, crop: Region | None = None) -> Iterable[tuple[Region, Region, list[Strip]]]:
        # ``visible_widgets`` is read once, as the upstream generator starts: filtered while it is.
        self._lean_crop = crop
        try:
            yield from super()._get_renders(crop)
        finally:
            self._lean_crop = None

    @property
    def visible_widgets(self) -> dict[Widget, tuple[Region, Region]]:
        widgets = super().visible_widgets
        crop = self._lean_crop
        if crop is None:
            return widgets
        overlaps, visible = crop.overlaps, Region.intersection
        return {w: rc for w, rc in widgets.items() if overlaps(visible(*rc))}


class LeanScreen(Screen):
    """A Screen drawn by ``LeanCompositor``; otherwise Textual's own."""

    def __init__(self, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._compositor = LeanCompositor()
