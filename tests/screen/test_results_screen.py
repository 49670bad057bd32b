"""The results screen (``g``, ``bench --plot``): plots at 80x24, one figure per widget."""

from __future__ import annotations

import pytest
from textual_plotext import PlotextPlot

from tests.support.waiting import wait_for
from tui.app.replay import ReplayApp, synthetic
from tui.widgets.results import ModelResults, ResultsApp, ResultsScreen, rate_series, short_labels, whiskers


def test_rate_series_counts_tokens_per_second_from_the_request_start():
    times = [0.5 + k / 10 for k in range(11)]  # first token at 0.5 s, then 10 tok/s for 1 s
    xs, ys = rate_series(times, bins=15)
    assert xs[0] == 0 and xs[-1] == pytest.approx(1.5)
    assert all(y == 0 for x, y in zip(xs, ys, strict=True) if x <= 0.5)  # the wait for the first token reads 0
    steady = [y for x, y in zip(xs, ys, strict=True) if x >= 0.7]
    assert steady == pytest.approx([10.0] * len(steady))  # a steady stream is a flat line, no aliasing
    assert rate_series([1.0]) == ([], [])


def test_whiskers_and_labels():
    runs = [{"gen_tps": 10.0}, {"gen_tps": 12.0}, {"gen_tps": 20.0}, {"gen_tps": 99.0, "warmup": True}]
    assert whiskers(runs, "gen_tps") == (12.0, 10.0, 20.0)
    assert whiskers([{"gen_tps": None}], "gen_tps") is None
    assert short_labels(["smollm2-135m", "gemma3-270m"]) == ["smollm2", "gemma3"]
    assert short_labels(["qwen-a-q4", "qwen-a-q8"]) == ["A", "B"]


async def test_g_opens_the_plots_at_80x24_and_escape_closes(tmp_path):
    header, events = synthetic(tokens_per_s=40, seconds=0.5, runs=3)
    app = ReplayApp(header, events, speed=10, results_dir=tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(app.run_finished, "the replay to end", 30)
        await pilot.press("g")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ResultsScreen)
        plots = list(screen.query(PlotextPlot))
        assert len(plots) == 4 and len({id(p.plt) for p in plots}) == 4  # one figure per widget
        for p in plots:
            assert p.size.width >= 20 and p.size.height >= 6, (p.id, p.size)
        legend = str(screen.query_one("#legend").render())
        assert "synthetic-a" in legend and "synthetic-b" in legend and "3 run(s)" in legend
        assert "–" in legend  # min–max of the three runs
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ResultsScreen)


async def test_g_before_a_run_says_so():
    header, events = synthetic(tokens_per_s=40, seconds=0.5)
    app = ReplayApp(header, events[:2])  # the two Loaded events only
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(app.run_finished, "the replay of two loads to end", 30)
        await pilot.press("g")
        sentence = "No results yet: run the models first."
        await wait_for(lambda: sentence in [str(n.message) for n in app._notifications], f"g to say {sentence!r}", 30, pilot=pilot)
        assert not isinstance(app.screen, ResultsScreen)


def _bench_like() -> list[ModelResults]:
    def runs(base):
        return [{"gen_tps": base + i, "ttft_s": 0.1 + i / 50, "peak_rss_bytes": (150 + i) * 10**6} for i in range(3)]

    ticks = [0.2 + k / 40 for k in range(40)]
    return [
        ModelResults("smollm2-135m", runs(50.0), ticks),
        ModelResults("gemma3-270m", runs(20.0), [t * 2 for t in ticks]),
    ]


async def test_results_app_for_bench_plot_quits_on_escape():
    app = ResultsApp(_bench_like(), "alternate mode")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ResultsScreen)
        await pilot.press("escape")
        await pilot.pause()
    assert app.return_code == 0


def test_results_screen_snapshot(snap_compare):
    assert snap_compare(ResultsApp(_bench_like(), "alternate mode"), terminal_size=(80, 24))


def test_y_ticks_are_round_and_distinct():
    from tui.widgets.results import tick_values

    for top, want in ((0.3, [0, 0.1, 0.2, 0.3]), (81, [0, 25, 50, 75]), (454, [0, 200, 400])):
        assert tick_values(top) == want
