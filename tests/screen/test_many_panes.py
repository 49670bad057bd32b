"""Three and four panes: a 2x2 grid at 160x45, stacked and compact at 80x24, every pane streaming
and every figure reachable; ``z`` still zooms one. Fed a synthetic recording on a fixed clock, as
``test_main_screen`` is (the same fixed host figures), so the snapshots are the same everywhere."""

from __future__ import annotations

import pytest

from backends.base import GenParams
from tests.screen.test_main_screen import PROMPT, StillApp, _ready, story_events
from tests.screen.test_main_screen import fixed_host as fixed_host  # noqa: F401 - the autouse fixture, here too
from tests.support.waiting import wait_for
from tui.widgets.card import CardPanel
from tui.widgets.stream_view import StreamView


class ManyApp(StillApp):
    def __init__(self, n: int) -> None:
        super().__init__(story_events(n))
        self.specs = [f"synthetic-{chr(ord('a') + i)}" for i in range(n)]
        self.params = GenParams(max_tokens=160)
        self.prompt = PROMPT


@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("size, grid", [((160, 45), True), ((80, 24), False)], ids=["160x45", "80x24"])
async def test_three_and_four_panes_grid_wide_and_stack_compact_narrow(n, size, grid):
    app = ManyApp(n)
    async with app.run_test(size=size) as pilot:
        await _ready(app, pilot)
        panes = app.query_one("#panes")
        assert len(app.panes) == n
        assert panes.has_class("-grid") is grid and panes.has_class("-stacked") is not grid
        regions = [p.region for p in app.panes]
        assert all(r.width > 0 and r.height > 0 for r in regions)
        for a in range(n):  # none covers another
            for b in range(a + 1, n):
                assert not regions[a].overlaps(regions[b]), (regions[a], regions[b])
        if grid:  # two columns, two rows
            assert len({r.x for r in regions}) == 2 and len({r.y for r in regions}) == 2
            assert all(r.width >= size[0] // 2 - 2 for r in regions)
        else:  # stacked, full width, compact chrome, text still shown
            assert len({r.x for r in regions}) == 1 and all(p.has_class("-compact") for p in app.panes)
        for pane in app.panes:
            assert pane.query_one(StreamView).visible_lines(), pane.id
            assert pane.border_title.startswith("synthetic-")
        pane = app.panes[n - 1]
        pane.focus()
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is pane
        assert pane.region.width == size[0]
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is None
        if not grid:  # too short for a card of its own: its rows are in the compact pane's card
            assert not any(p.query_one(CardPanel).display for p in app.panes)


@pytest.mark.parametrize("n", [3, 4])
@pytest.mark.parametrize("size", [(160, 45), (80, 24)], ids=["160x45", "80x24"])
def test_many_panes_snapshot(snap_compare, n, size):
    app = ManyApp(n)

    async def ready(pilot):
        await _ready(app, pilot)

    assert snap_compare(app, terminal_size=size, run_before=ready)


async def test_blind_vote_with_three_panes_draws_two_and_hides_all_names(tmp_path):
    """The real engine on three panes (one file twice, other KV settings): the vote is between two
    drawn at random, the third is hidden too, and the log names the two drawn."""
    import json
    import random

    from tui.app.app import ABTopApp

    specs = ["smollm2-135m", "gemma3-270m", "smollm2-135m,kv=q8_0"]
    expect = random.Random(3).sample(range(3), 2)
    app = ABTopApp(specs, "The sky is blue because", GenParams(max_tokens=4), n_ctx=512, autostart=True, blind=True,
                   rng=random.Random(3), results_dir=tmp_path, mode="alternate")  # fmt: skip
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the run to finish", 300)
        await pilot.pause()
        assert app.blind.sides == expect
        other = ({0, 1, 2} - set(expect)).pop()
        titles = [str(p.border_title) for p in app.panes]
        assert titles[expect[0]] == "model A" and titles[expect[1]] == "model B" and titles[other] == "model C"
        await pilot.press("2")
        await pilot.pause()
        vote = json.loads((tmp_path / "battles.jsonl").read_text().splitlines()[0])
        assert (vote["model_a"], vote["model_b"], vote["winner"]) == (specs[expect[0]], specs[expect[1]], "model_b")
        assert [str(p.border_title) for p in app.panes] == ["smollm2-135m", "gemma3-270m", "smollm2-135m kv=q8_0"]
