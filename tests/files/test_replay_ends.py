"""A replay says what the recording says: the mode each run had (not the one abtop started in),
and where a cut-off recording ends, instead of two panes "streaming" for ever."""

from __future__ import annotations

import asyncio

from backends.base import GenParams
from backends.events import Finished, Started
from tests.conftest import worker_children
from tests.support.waiting import wait_for
from tui.app.app import ABTopApp
from tui.app.replay import ReplayApp, load, synthetic

TIMEOUT = 180


async def test_a_run_switched_to_alternate_replays_as_alternate(tmp_path):
    rec = tmp_path / "run.jsonl"
    live = ABTopApp(["smollm2-135m", "gemma3-270m"], "The sky is blue because", GenParams(max_tokens=6),
                    n_ctx=512, record=str(rec))  # fmt: skip  (starts in race, the header says so)
    async with live.run_test(size=(120, 40)) as pilot:
        await wait_for(live.models_loaded, "live: the models to load", TIMEOUT)
        await pilot.press("m")  # alternate, then Enter
        await live.workers.wait_for_complete()
        await pilot.press("enter")
        await asyncio.sleep(0)
        await wait_for(live.run_finished, "live: the run to finish", TIMEOUT)
        await pilot.pause()
        assert [p.runs[0]["mode"] for p in live.panes] == ["alternate", "alternate"]
        await pilot.press("q")
    assert not worker_children()
    header, events = load(rec)
    assert header["params"]["mode"] == "race"  # what abtop started in
    assert {ev.mode for _, ev in events if isinstance(ev, Started)} == {"alternate"}  # what each run had
    app = ReplayApp(header, events, speed=8, source=str(rec))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(app.run_finished, "the run to finish", 60)
        await pilot.pause()
        for pane in app.panes:
            assert pane.runs[0]["mode"] == "alternate"
            assert pane.border_subtitle == "replay ×8 · alternate"
            assert str(pane.query_one(".stats").render()).startswith("alternate · ")


async def test_a_truncated_recording_says_where_it_ends():
    header, events = synthetic(tokens_per_s=40, seconds=1.0)
    last_tokens = max(i for i, (_, ev) in enumerate(events) if not isinstance(ev, Finished)) // 2
    cut = [(s, ev) for s, ev in events[:last_tokens]]  # both panes mid-stream
    assert sum(isinstance(ev, Started) for _, ev in cut) == 2
    app = ReplayApp(header, cut, speed=20)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(app.run_finished, "the run to finish", 30)
        await pilot.pause()
        for pane in app.panes:
            assert not pane.has_class("-streaming")
            assert pane.collector.t_end is not None  # its clock stopped
            shown = pane.query_one("StreamView").render().plain
            assert f"recording ends here (truncated after {len(cut)} events)" in shown, shown
            assert pane.runs == []  # a cut run is no figure
