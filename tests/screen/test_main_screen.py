"""The main screen's layout at 80x24, 100x30 and 160x45: text first, every figure reachable.

The panes are fed a synthetic recording (``tui.app.replay.synthetic``, its tokens turned into a story)
all at once on a fixed clock, so every figure on screen is the recorded one and the snapshots are
the same on every machine; the host line reads fixed figures (``host_load`` is the one thing
replaced: it reads this machine's /proc), and the bandwidth probe (run by the app after loading, which this one skips) a fixed 20 GB/s.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from textual import work
from textual.widgets._toast import ToastRack

from backends.base import GenParams
from backends.events import Finished, Sample, Token
from tests.support.waiting import wait_for
from tui.app import app as app_module
from tui.app.app import ABTopApp
from tui.app.replay import synthetic
from tui.widgets import card as card_module
from tui.widgets import host as host_module
from tui.widgets.card import CardPanel, CardScroll
from tui.widgets.host import HostBar
from tui.widgets.metrics import MetricsStrip
from tui.widgets.pane import COMPACT_BELOW
from tui.widgets.prompt import MORE, PromptInput
from tui.widgets.stream_view import StreamView

STORY = (
    "The keeper climbed the hundred and twelve steps at dusk, as he had every evening for thirty "
    "years. He trimmed the wick, wound the clockwork and watched the beam sweep the black water. "
    "Ships he never saw passed in the dark; he knew them by their lights and by the entries in his "
    "log.\n\nOne winter night the lamp failed. The wind had torn a pane from the lantern room and "
    "the flame guttered out. He carried the spare lens up in his arms, step by step, while the sea "
    "threw itself at the rock below. By the time the light turned again, a trawler had found the "
    "channel, and in the morning its crew left a sack of coal and a letter at the door.\n\n"
)
WORDS = re.findall(r"\S+\s*", STORY)
PROMPT = "Write a long story about a lighthouse keeper who keeps the light burning through one winter storm."
BANDWIDTH = 20.0


def story_events(n: int = 2) -> list:
    """``n`` models racing through the story at once; the first finishes, the others are still
    streaming when it ends."""
    _, events = synthetic(tokens_per_s=40, seconds=4, models=n)
    count = dict.fromkeys(range(n), 0)
    out = []
    for slot, ev in events:
        if isinstance(ev, Token):
            ev = dataclasses.replace(ev, text=WORDS[count[slot] % len(WORDS)])
            count[slot] += 1
        out.append((slot, ev))
    end = next(ev.t for slot, ev in out if slot == 0 and isinstance(ev, Finished))
    return [(slot, ev) for slot, ev in out if ev.t <= end]


class StillApp(ABTopApp):
    """The main screen with no engine: ``events`` go to the panes at once, at their recorded
    times, and the sparklines tick at each recorded sample (no wall-clock timer: ``interval``
    is an hour)."""

    CSS_PATH = Path(app_module.__file__).parent / ABTopApp.CSS_PATH  # relative to the class's own module

    def __init__(self, events: list, prompt: str = PROMPT) -> None:
        super().__init__(["synthetic-a", "synthetic-b"], prompt, GenParams(max_tokens=160), interval=3600)
        self.events = events
        self.end = max(ev.t for _, ev in events)

    @work(group="load", exit_on_error=False)
    async def _load(self) -> None:
        for pane in self.panes:
            pane.clock = lambda: self.end
            pane.query_one(CardPanel).bandwidth_gbs = BANDWIDTH
        self._show_mode(self.mode)
        self.models_loaded.set()
        self.feed(self.events)
        self.run_finished.set()

    def feed(self, events: list) -> None:
        for slot, ev in events:
            self.emit(slot, ev)
            if isinstance(ev, Sample) and slot == len(self.panes) - 1:
                for pane in self.panes:
                    pane.tick(ev.t)
        for pane in self.panes:
            pane.flush()


@pytest.fixture(autouse=True)
def fixed_host(monkeypatch):
    """This machine's load and bandwidth would change every picture: fixed figures instead."""
    reading = _Load(cpu_percent=42.0, mem_used_bytes=3_200_000_000, mem_total_bytes=16_000_000_000,
                              swap_used_bytes=0, load1=1.5)  # fmt: skip
    monkeypatch.setattr(host_module, "host_load", lambda: reading)
    monkeypatch.setattr(card_module, "rapl_note", lambda: "n/a (no RAPL here)")
    monkeypatch.setattr(card_module, "available_cpus", lambda: [0, 1, 2, 3])


@dataclasses.dataclass
class _Load:
    cpu_percent: float
    mem_used_bytes: int
    mem_total_bytes: int
    swap_used_bytes: int
    load1: float | None
    self_cpu_percent: float | None = None  # the UI's own CPU varies run to run: not in the picture


async def _ready(app: StillApp, pilot) -> None:
    await wait_for(app.run_finished, "the run to finish", 30)
    app.query_one(HostBar).refresh_load()
    await pilot.pause()


def _text_rows(pane) -> int:
    """Rows of model text the pane shows."""
    view = pane.query_one(StreamView)
    return min(view.size.height, len([line for line in view.visible_lines()]))


async def test_80x24_gives_each_pane_8_lines_of_text_and_keeps_every_figure():
    app = StillApp(story_events())
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(app, pilot)
        a, b = app.panes
        assert b.collector.t_end is None  # the second model is still streaming
        for pane in app.panes:
            assert pane.has_class("-compact") and pane.outer_size.height < COMPACT_BELOW
            assert _text_rows(pane) >= 8
            assert pane.query_one(StreamView).size.height >= 8
            assert pane.query_one(MetricsStrip).size.height == 1  # the sparklines on one row
            assert "TTFT" in pane.border_subtitle and "gen 40.0 tok/s" in pane.border_subtitle
            assert not pane.query_one(".header").display and not pane.query_one(".stats").display
        assert "stop" not in b.border_subtitle and "max tokens" in a.border_subtitle
        # the rest is on the card: the header and the whole stats line
        moved = dict(a.query_one(CardPanel).moved)
        assert "135.0M params" in moved["model"] and "Q4_1" in moved["model"]
        assert "prompt" in moved["run"] and "chars/s" in moved["run"] and "tok/100 chars" in moved["run"]
        assert "mem w " in a.query_one(MetricsStrip).metric("mem").text  # never one RSS
        app.set_focus(None)
        await pilot.press("c")
        await pilot.pause()
        assert a.query_one(CardPanel).display and a.query_one(CardScroll).display
        assert "chars/s" in str(a.query_one(CardPanel).render())
        # full size again: the stats line and header come back, the card loses the moved rows
        await pilot.resize_terminal(160, 45)
        await pilot.pause()
        assert not a.has_class("-compact") and a.query_one(".stats").display
        assert a.query_one(CardPanel).moved == [] and a.border_subtitle == "race"


@pytest.mark.parametrize(
    ("size", "stacked", "compact", "card"),
    [
        ((80, 24), True, True, False),
        ((100, 30), True, True, False),
        ((100, 50), True, False, False),  # stacked panes of 24 rows: full chrome, no card yet
        ((120, 24), False, False, False),
        ((120, 40), False, False, True),
        ((160, 45), False, False, True),
    ],
)
async def test_layout_changes_in_predictable_steps(size, stacked, compact, card):
    app = StillApp(story_events())
    async with app.run_test(size=size) as pilot:
        await _ready(app, pilot)
        assert app.query_one("#panes").has_class("-stacked") is stacked
        for pane in app.panes:
            assert pane.has_class("-compact") is compact
            assert pane.query_one(CardPanel).display is card
            assert _text_rows(pane) >= 8, (size, pane.id)


async def test_z_zooms_the_selected_pane_and_the_other_keeps_streaming():
    events = story_events()
    first = [(s, ev) for s, ev in events if not (s == 1 and isinstance(ev, Token) and ev.t > events[-1][1].t - 1)]
    later = [(s, ev) for s, ev in events if (s, ev) not in first]
    app = StillApp(first)
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(app, pilot)
        a, b = app.panes
        await pilot.press("z")  # nothing selected: the first pane
        await pilot.pause()
        assert app.screen.maximized is a and a.outer_size.height == 22 and not a.has_class("-compact")
        assert a.query_one(".header").display and a.query_one(MetricsStrip).size.height == 2
        view = a.query_one(StreamView)  # taller: more of the text (here all of it), not blank rows
        assert view.size.height > 8 and view.visible_lines()[0].plain.startswith("The keeper climbed")
        assert app.query_one("#prompt").region.height == 1  # the prompt bar and footer stay
        before = len(b.query_one(StreamView).text)
        app.feed(later)  # the hidden pane keeps streaming
        assert len(b.query_one(StreamView).text) > before
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is None and all(p.has_class("-compact") for p in app.panes)
        assert b.query_one(StreamView).text.endswith(str(later[-1][1].text)) and _text_rows(b) >= 8
        await pilot.press("tab", "tab")  # Tab (or a click) selects the second pane
        assert app.focused is b
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is b
        await pilot.press("z")
        await pilot.pause()
        assert app.screen.maximized is None
        # typing in the prompt, z is a letter
        await pilot.press("slash", "end", "z")
        assert app.screen.maximized is None and app.query_one(PromptInput).value.endswith("z")


async def test_each_quality_key_keeps_its_place_in_the_border_and_a_new_model_clears_them():
    """S (bpb), a (accuracy) and f (fit) each write their figure in the pane's border: one key's
    figure must not hide another's (f used to overwrite S's), and a model picked with ``o`` starts
    with none of the old one's."""
    app = StillApp(story_events())
    async with app.run_test(size=(160, 45)) as pilot:
        await _ready(app, pilot)
        pane = app.panes[0]
        pane.show_score("bpb 1.2345")
        pane.show_score("least RAM 300 MB at 512", "fit")
        pane.show_score("acc 41.0 % (macro)", "acc")
        await pilot.pause()
        assert "bpb 1.2345 · acc 41.0 % (macro) · least RAM 300 MB at 512" in str(pane.border_subtitle)
        pane.show_score("fit n/a", "fit")  # a key run again replaces only its own figure
        await pilot.pause()
        assert "bpb 1.2345 · acc 41.0 % (macro) · fit n/a" in str(pane.border_subtitle)
        pane.reset("synthetic-c")
        await pilot.pause()
        assert "bpb" not in str(pane.border_subtitle) and "fit" not in str(pane.border_subtitle)


async def test_the_card_scrolls_when_taller_than_its_place():
    app = StillApp(story_events())
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(app, pilot)
        await pilot.press("z", "c")
        await pilot.pause()
        scroll = app.panes[0].query_one(CardScroll)
        card = app.panes[0].query_one(CardPanel)
        assert scroll.display and scroll.outer_size.height <= 0.4 * app.panes[0].size.height + 1
        assert card.outer_size.height > scroll.size.height and scroll.max_scroll_y > 0
        assert _text_rows(app.panes[0]) >= 6  # zoomed, the card still leaves the text most rows
        scroll.scroll_end(animate=False)
        await pilot.pause()
        assert scroll.scroll_y == scroll.max_scroll_y


async def test_prompt_bar_shows_the_start_and_a_multi_line_prompt_on_one_line():
    prompt = "First line of the prompt\nsecond line\x1b[2J " + "and a great deal more " * 6
    app = StillApp(story_events(), prompt=prompt)
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(app, pilot)
        bar = app.query_one(PromptInput)
        shown = bar.render_line(0).text
        assert shown.strip().startswith("First line of the prompt⏎second line␛[2J and")
        assert shown.rstrip().endswith(MORE) and "\x1b" not in shown
        assert bar.value == prompt  # the run gets the prompt as given, line breaks and all
        assert bar.size.width >= 44  # the narrow host line leaves the prompt most of the row
        await pilot.press("slash", "end")
        shown = bar.render_line(0).text
        assert MORE not in shown and shown.rstrip().endswith("more")  # it scrolls with the cursor
        await pilot.press("escape")
        await pilot.pause()
        assert bar.render_line(0).text.strip().startswith("First line")  # back to the start


async def test_notifications_sit_on_the_footer_line_and_cover_no_text():
    app = StillApp(story_events())
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await _ready(app, pilot)
        app.notify("first")
        app.notify("Could not write run.csv (No space left on device)\nWritten: run.json, run.md", timeout=8)
        await pilot.pause()
        await pilot.pause()
        holders = app.screen.get_child_by_type(ToastRack).children  # a holder per toast
        shown = [h.children[0] for h in holders if h.display]
        assert len(holders) == 2 and len(shown) == 1  # the newest only
        toast = shown[0]
        assert toast.region.y == 23 and toast.region.height == 1  # the footer's row
        assert "Could not write run.csv (No space left on device) · Written: run.json" in str(toast.render())
        for pane in app.panes:
            assert pane.region.bottom <= 22


async def test_every_footer_key_fits_at_80_columns():
    from textual.widgets._footer import FooterKey

    app = StillApp(story_events())
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(app, pilot)
        for mode, flying in (("race", False), ("alternate", False), ("race", True), ("alternate", True)):
            app.mode = mode
            app.in_flight = lambda flying=flying: flying  # a run in flight: "esc Stop" takes "o Model"'s place
            app.refresh_bindings()
            await pilot.pause()
            keys = list(app.screen.query(FooterKey))
            assert "z" in {k.key for k in keys} and ("escape" in {k.key for k in keys}) is flying
            assert max(k.region.right for k in keys) <= 80, (mode, [(k.key, k.region) for k in keys])


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 45)], ids=["80x24", "100x30", "160x45"])
def test_main_screen_snapshot(snap_compare, size):
    app = StillApp(story_events())

    async def ready(pilot):
        await _ready(app, pilot)

    assert snap_compare(app, terminal_size=size, run_before=ready)


@pytest.mark.parametrize("size", [(110, 45), (160, 45)])
async def test_the_stats_line_shows_all_its_final_figures(size):
    """The stats line is laid out again only when its wrapped height changes (a live line shorter
    than its box keeps the box): after runs whose final figures wrap, and a spread line that
    comes after the second run, every line of it is still on screen."""
    from rich._wrap import divide_line

    from tui.app.replay import ReplayApp

    app = ReplayApp(*synthetic([300, 200], 0.3, runs=3), speed=2.0)
    async with app.run_test(size=size) as pilot:
        await wait_for(app.run_finished, "the replay to finish", 60)
        await pilot.pause()
        for pane in app.panes:
            stats = pane.query_one(".stats")
            text = str(stats.render())
            assert "3 runs, median" in text
            width = stats.content_region.width
            lines = sum(len(divide_line(line, width, fold=True)) + 1 for line in text.split("\n"))
            assert lines >= 2 and stats.size.height == min(4, lines), (text, stats.size)
