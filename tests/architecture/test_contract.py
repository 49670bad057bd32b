"""The Backend contract declares every capability a caller uses: no ``getattr`` guesses, no
type-ignores, one ``stream()`` signature."""

from __future__ import annotations

import inspect
from pathlib import Path

from backends.base import Backend, Placement
from backends.catalog import make_backend

ROOT = Path(__file__).resolve().parents[2]


def test_every_engine_has_the_contract_capabilities():
    engines = [make_backend("smollm2-135m"), make_backend("openai:m@http://127.0.0.1:9"), make_backend("ollama:m@http://127.0.0.1:9")]
    base = inspect.signature(Backend.stream)
    for b in engines:
        assert isinstance(b.placement, Placement)
        assert callable(b.kill_now)
        b.kill_now()  # nothing loaded: a no-op, never an AttributeError
        assert inspect.signature(type(b).stream) == base, type(b).__name__


def test_no_capability_is_guessed_outside_the_contract():
    for path in [*ROOT.glob("tui/**/*.py"), ROOT / "backends/session.py"]:
        text = path.read_text()
        assert 'getattr(b, "' not in text, path
        assert "type: ignore[attr-defined]" not in text, path
