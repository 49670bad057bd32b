"""Python's full garbage collections, kept off the token path.

A full (generation 2) collection walks every object the collector tracks. With Textual's widget
tree, styles and caches that is ~150,000 objects once the app is up, and a full collection took
70–100 ms: seven of them in a 5 s stream at 2 × 2,000 tok/s, each one holding a frame back. They
were the token-to-screen p99 (``benchmarks/ui_stress.py``: 104–148 ms, against 60–80 ms without).

So, once the first frame is drawn, the objects alive then (the app itself, nearly all of which
lives as long as it does; the few removed later stay until it ends) are frozen out of every later
collection (``gc.freeze``), and full collections come after 100 younger ones instead of 10.
Young collections still run as often as before (they take < 3 ms), so short-lived cycles are
freed as soon as ever; what survives into the old generation and dies there waits for a full
collection a few seconds longer. When the app ends, everything
is unfrozen and the thresholds restored, so nothing the app left behind outlives it (a test
process runs hundreds of apps one after another).

Textual does the same in spirit: ``App.PAUSE_GC_ON_SCROLL`` turns the collector off while a
scroll animates.
"""

from __future__ import annotations

import gc

FULL_EVERY = 100
"""Young (generation 1) collections between two full ones; Python's default is 10."""

_saved: tuple[int, int, int] | None = None


def settle() -> None:
    """Freeze what is alive now and space out full collections (the app's first frame is up)."""
    global _saved
    if _saved is not None:  # already settled (a second app in the same process)
        return
    _saved = gc.get_threshold()
    gc.collect()  # garbage frozen now would never be freed: collect it first
    gc.freeze()
    young, middle, _ = _saved
    gc.set_threshold(young, middle, FULL_EVERY)


def release() -> None:
    """Undo ``settle``: unfreeze, and Python's thresholds again (the app has ended)."""
    global _saved
    if _saved is None:
        return
    gc.unfreeze()
    gc.set_threshold(*_saved)
    _saved = None


def settled() -> bool:
    return _saved is not None


def collect_now() -> None:
    """A full collection now, between two models' turns (``ABTopApp._before_turn``): the
    allocations of the redraw just done (a footer's recompose makes new widgets) would otherwise
    bring one due during the next model's prompt, on its core."""
    gc.collect()
