"""An idle screen costs next to nothing: with both bundled models loaded and no run in flight
(before the first run, and again after one), the event loop runs no more than a few timer
callbacks a second: the host line's reading, one reading per model, a frame when a figure on
screen changed. The text's frames and the tok/s ticks run only while tokens arrive.

Counted, not timed: every timer handle the loop runs (asyncio's ``call_later``/``call_at``, which
Textual's timers and ``asyncio.sleep`` use too) is counted over a window; the window's length
only sets how many the budget allows. A busy machine runs fewer, never more.
"""

from __future__ import annotations

import asyncio
import collections

from backends.base import GenParams
from tests.conftest import worker_children
from tests.support.waiting import wait_for
from tui.app.app import ABTopApp
from tui.widgets.host import HostBar

TIMEOUT = 180
WINDOW_S = 2.0
PER_S = 8
"""Timer callbacks a second an idle app may run (it ran ~35 when it redrew at 20 Hz regardless)."""


def _name(handle: asyncio.TimerHandle) -> str:
    cb = handle._callback
    owner = getattr(cb, "__self__", None)
    coro = owner.get_coro() if isinstance(owner, asyncio.Task) else None
    return getattr(coro, "__qualname__", None) or getattr(cb, "__qualname__", None) or repr(cb)


async def _count(ran: list[str]) -> tuple[int, float, list]:
    loop = asyncio.get_running_loop()
    ran.clear()
    t0 = loop.time()
    await asyncio.sleep(WINDOW_S)
    n, span = len(ran), loop.time() - t0
    return n, span, collections.Counter(ran).most_common(6)


async def test_idle_app_with_two_loaded_models_runs_few_timer_callbacks(monkeypatch):
    ran: list[str] = []
    real = asyncio.TimerHandle._run

    def counted(handle: asyncio.TimerHandle) -> None:
        ran.append(_name(handle))
        return real(handle)

    monkeypatch.setattr(asyncio.TimerHandle, "_run", counted)
    app = ABTopApp(["smollm2-135m", "gemma3-270m"], "The sky is blue because", GenParams(max_tokens=8), n_ctx=512)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.models_loaded, "the models to load", TIMEOUT)
        await asyncio.sleep(1.0)  # the load's last readings and frames
        n, span, top = await _count(ran)
        assert n <= PER_S * span, f"{n} timer callbacks in {span:.1f} s of idle after loading; most: {top}"

        await pilot.press("enter")
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        assert all(p.runs and p.runs[0]["gen_tokens"] > 0 for p in app.panes)
        await asyncio.sleep(1.0)  # the run's last tick and readings
        n, span, top = await _count(ran)
        assert n <= PER_S * span, f"{n} timer callbacks in {span:.1f} s of idle after a run; most: {top}"
        await pilot.press("q")
    assert not worker_children()


async def test_frames_ride_on_the_wake_ups_that_bring_the_tokens(monkeypatch):
    """While the models stream, a frame is drawn in the loop's wake-up that brought its tokens
    (``call_soon``), not by a timer of the app's own: a timer wakes the UI at any moment of a
    model's graph, and with a model on every core each such wake-up stalls all its threads
    (``ABTopApp._want_frame``). A timer only stands in for an arrival that does not come."""
    by: collections.Counter[str] = collections.Counter()
    via: list[str] = []
    real_run, real_flush = asyncio.Handle._run, ABTopApp._flush_panes

    def run(handle: asyncio.Handle) -> None:
        if getattr(handle._callback, "__name__", "") != "_frame":
            return real_run(handle)
        via.append("timer" if isinstance(handle, asyncio.TimerHandle) else "arrival")
        try:
            return real_run(handle)
        finally:
            via.pop()

    def flush(app: ABTopApp, t: float) -> None:  # a frame that draws (a held screen's draws nothing)
        by[via[-1] if via else "other"] += 1
        return real_flush(app, t)

    host: collections.Counter[str] = collections.Counter()
    real_host = HostBar.refresh_load

    def read_host(bar: HostBar) -> None:
        if bar.app.session is not None and bar.app.session.running:  # the models are at work
            host["in a frame" if via else "on its own"] += 1
        return real_host(bar)

    monkeypatch.setattr(asyncio.Handle, "_run", run)
    monkeypatch.setattr(ABTopApp, "_flush_panes", flush)
    monkeypatch.setattr(HostBar, "refresh_load", read_host)
    app = ABTopApp(["smollm2-135m", "gemma3-270m"], "The sky is blue because", GenParams(max_tokens=96), n_ctx=512)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.models_loaded, "the models to load", TIMEOUT)
        await asyncio.sleep(0.5)
        by.clear()
        host.clear()
        await pilot.press("enter")
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        assert all(p.runs and p.runs[0]["gen_tokens"] > 0 for p in app.panes)
        # the host line too is read in the frames while a run is in flight, not on its own timer
        assert host["on its own"] == 0, f"host line readings during the run: {dict(host)}"
        frames = by["arrival"] + by["timer"]
        assert by["arrival"] >= 5, f"the text should stream in frames: {dict(by)}"
        assert by["timer"] <= frames / 3, f"frames drawn by the app's own timer: {dict(by)}"
        await pilot.press("q")
    assert not worker_children()
