"""The README's promise for an engine that reports its own timings (llama-server): the stats line
shows the engine's rate beside the one measured here, and "says how far the wall clock trails when
the gap is over 5 %". A replayed recording makes both rates exact: 20 tokens 25 ms apart are
40 tok/s on the wall clock whatever the speed of the replay; the engine's own count is set per pane."""

from __future__ import annotations

import dataclasses

import pytest

from backends.events import Finished
from tests.support.waiting import wait_for
from tui.app.replay import ReplayApp, synthetic
from tui.text.format import engine_gap


def _recording(engine_tps: list[float]):
    """Three panes at 40 tok/s on the wall clock, each with its engine claiming its own rate."""
    header, events = synthetic(tokens_per_s=40, seconds=0.5, models=len(engine_tps))
    out = []
    for slot, ev in events:
        if isinstance(ev, Finished):
            ms = ev.engine.gen_tokens / engine_tps[slot] * 1000
            ev = dataclasses.replace(ev, engine=dataclasses.replace(ev.engine, gen_ms=ms))
        out.append((slot, ev))
    return header, out


async def test_the_stats_line_says_when_the_wall_clock_trails_the_engine():
    # 40 on the wall: 20 % below an engine at 50; 2.4 % below one at 41 (no note); 14 % above one at 35
    header, events = _recording([50.0, 41.0, 35.0])
    app = ReplayApp(header, events, speed=10)
    async with app.run_test(size=(200, 40)) as pilot:
        await wait_for(app.run_finished, "the replay to end", 30)
        await pilot.pause()
        lines = [str(p.query_one(".stats").render()) for p in app.panes]
    assert [p.runs[0]["gen_tps"] for p in app.panes] == pytest.approx([40.0] * 3)
    assert "gen 40.0 tok/s · engine 50.0 tok/s (wall 20% below engine)" in lines[0]
    assert "gen 40.0 tok/s · engine 41.0 tok/s ·" in lines[1] and "below engine" not in lines[1]
    assert "gen 40.0 tok/s · engine 35.0 tok/s (wall 14% above engine)" in lines[2]


def test_engine_gap_speaks_only_past_five_percent_either_way():
    assert engine_gap(94.0, 100.0) == " (wall 6% below engine)"
    assert engine_gap(95.5, 100.0) == ""  # within 5 %: the two agree
    assert engine_gap(120.0, 100.0) == " (wall 20% above engine)"  # ahead: said as ahead, never "-20% below"
    assert engine_gap(None, 100.0) == engine_gap(50.0, None) == ""
