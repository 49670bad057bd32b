"""The footer keeps no key it no longer shows (Textualize/textual#6666: a data-bound FooterKey
stayed alive after every recompose, ~0.5 MB a run). A replay is enough: every run's start and end
changes the bindings ("esc Stop"), and so recomposes the footer."""

from __future__ import annotations

import gc

from textual.widgets._footer import FooterKey

from tests.support.waiting import wait_for
from tui.app.replay import ReplayApp, synthetic


async def test_runs_leave_no_footer_keys_behind():
    header, events = synthetic(tokens_per_s=400, seconds=0.3)
    app = ReplayApp(header, events, speed=4.0)
    async with app.run_test(size=(120, 40)) as pilot:
        for i in range(12):
            app.run_finished.clear()
            if i:
                app.action_run()
            await wait_for(app.run_finished, "the run to finish", 30)
            await pilot.pause()
        gc.collect()
        shown = set(app.screen.query(FooterKey))
        alive = [o for o in gc.get_objects() if isinstance(o, FooterKey)]
        assert shown and len(alive) == len(shown), f"{len(alive)} FooterKeys alive, {len(shown)} shown"
        await pilot.press("q")


async def test_the_footer_recomposes_only_when_its_keys_change():
    """Textual's Footer recomposes (a dozen keys mounted, the screen laid out again: ~10 ms) at every
    bindings signal; ours only when a key it shows comes, goes, or is enabled or disabled."""
    header, events = synthetic(tokens_per_s=50, seconds=1.5)
    app = ReplayApp(header, events, speed=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(app.run_finished, "the replay to finish", 30)
        await pilot.pause()
        keys = list(app.screen.query(FooterKey))
        app.refresh_bindings()  # a signal that changes no key
        app.screen.focus_next()  # nor does a pane taking the focus
        await pilot.pause()
        await pilot.pause()
        assert list(app.screen.query(FooterKey)) == keys
        app.run_finished.clear()
        app.action_run()  # "esc Stop" comes: new keys
        await pilot.pause()
        await pilot.pause()
        assert "Stop" in [k.description for k in app.screen.query(FooterKey)]
        await wait_for(app.run_finished, "the run to finish", 30)
        await pilot.pause()
        await pilot.pause()
        assert "Stop" not in [k.description for k in app.screen.query(FooterKey)]
        await pilot.press("q")
