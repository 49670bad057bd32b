"""The app keeps Python's full collections off the token path, and gives the collector back on exit.

A replay (no engine) is enough: the policy belongs to the app, not to any model.
"""

from __future__ import annotations

import gc

from tests.support.waiting import wait_for
from tui.app import gcpolicy
from tui.app.replay import ReplayApp, synthetic
from tui.widgets.stream_view import StreamView


async def test_startup_objects_frozen_while_streaming_and_released_on_exit():
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    header, events = synthetic(tokens_per_s=400, seconds=0.5)
    app = ReplayApp(header, events, speed=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(app.run_finished, "the run to finish", 30)
        await pilot.pause()
        # frozen once the first frame was up: the widget tree is out of every later collection
        assert gcpolicy.settled()
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == (before[0], before[1], gcpolicy.FULL_EVERY)
        # and the young collections still run: a cycle made now is freed without a full collection
        gen0_before = gc.get_stats()[0]["collections"]
        for _ in range(5_000):
            a: list = []
            a.append(a)
        del a
        assert gc.get_stats()[0]["collections"] > gen0_before
        shown = [p.query_one(StreamView).text for p in app.panes]
        assert all(len(s) == p.runs[0]["chars"] for s, p in zip(shown, app.panes, strict=True))
        await pilot.press("q")
    assert not gcpolicy.settled()
    assert gc.get_freeze_count() == 0  # nothing of the app outlives it in a long-lived process
    assert gc.get_threshold() == before


def test_release_without_settle_is_harmless():
    before = gc.get_threshold()
    gcpolicy.release()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
