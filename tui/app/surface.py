"""What the key groups may use of the app: ``AppSurface``, one typed list of names.

The key groups (``blind.py``, ``model_keys.py``, ``quality_keys.py``, ``results_keys.py``) are small
controllers the app owns (``app.blind``, ``app.model_keys``, …). Each keeps its own state and
reaches the app only through these names: never another group's state, never a private name of
the app. The app's ``action_*`` methods hand each key to its group. ``tests/architecture/test_surface.py``
checks both: the groups use no other name of the app, and the app has every name here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from textual.screen import Screen
    from textual.worker import Worker

    from backends.base import Backend
    from backends.session import Session
    from tui.widgets.pane import ModelPane


@runtime_checkable
class AppSurface(Protocol):
    # -- the models on screen
    session: Session | None
    """Set once the models are made; None before (and after quitting)."""
    panes: list[ModelPane]
    specs: list[str]
    """The spec of each pane, by slot."""
    slots: list[int]
    """The pane slot of each of the session's backends (a spec that could not be made has none)."""
    engine: asyncio.Lock
    """Held while the workers are placed or run: a placement never lands mid-stream."""
    models_loaded: asyncio.Event

    # -- what a run is and where its files go
    prompt: str
    n_ctx: int
    engine_options: dict
    """The local engine's load options but the context (lazy_ple, repack, flash_attn, …)."""
    mode: str
    results_dir: Path
    battle_log: Path
    names_hidden: bool
    """Blind mode: a pane's title must not name its model."""
    narrow: bool
    """The screen is too narrow for two panes side by side: they (and the texts of ``t``) stack."""

    def make_backend(self, spec: str) -> Backend:
        """A backend for ``spec`` with the app's context size and engine options (blocking)."""
        ...

    def new_comparison(self) -> None:
        """A pane's model changed: the next run starts the figures on screen afresh."""
        ...

    def export_params(self, runs: int | None = None) -> dict: ...

    def results_models(self) -> list[dict]: ...

    def fit_section(self) -> dict | None: ...

    def action_run(self) -> None: ...

    def swap_model(self, slot: int, spec: str) -> None: ...

    # -- Textual's App, as used here
    screen: Screen

    def notify(self, message: str, *, title: str = "", markup: bool = False, **kw: Any) -> None: ...

    def refresh_bindings(self) -> None: ...

    def push_screen(self, screen: Any) -> Any: ...

    def query_one(self, selector: Any, expect_type: Any = None) -> Any: ...

    def run_worker(self, work: Any, *, group: str = "default", exclusive: bool = False,
                   exit_on_error: bool = True) -> Worker: ...  # fmt: skip

    def export_screenshot(self) -> str: ...


__all__ = ["AppSurface"]
