"""The smaller things issue 24 found on the screen: the footer's room, a card row's spacing, the
export toast's wording, alternate mode's waiting pane, a character cut by max tokens."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from textual.widgets._footer import FooterKey
from textual.widgets._toast import Toast

from backends.base import GenParams
from backends.events import Started, Token
from tests.screen.test_main_screen import StillApp, _ready, fixed_host, story_events  # noqa: F401 - fixture
from tests.support.waiting import wait_for
from tui.widgets.card import CardPanel

TIMEOUT = 180


@pytest.mark.parametrize(("size", "listed"), [((160, 45), True), ((120, 40), True), ((80, 24), False)])
async def test_the_footer_lists_help_and_quit_where_it_has_room(size, listed):
    app = StillApp(story_events())
    async with app.run_test(size=size) as pilot:
        await _ready(app, pilot)
        for flying in (False, True):  # "esc Stop" while a run is in flight
            app.in_flight = lambda flying=flying: flying
            app.refresh_bindings()
            await pilot.pause()
            keys = list(app.screen.query(FooterKey))
            shown = [k.key for k in keys]
            assert (shown[-2:] == ["question_mark", "q"]) is listed, shown
            assert max(k.region.right for k in keys) <= size[0]
        await pilot.press("question_mark")  # listed or not, both keys work
        await pilot.pause()
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape", "q")
        await pilot.pause()
        assert not app.is_running


async def test_a_resize_brings_help_and_quit_into_the_footer():
    app = StillApp(story_events())
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(app, pilot)
        assert "q" not in [k.key for k in app.screen.query(FooterKey)]
        await pilot.resize_terminal(160, 45)
        await pilot.pause()
        await pilot.pause()
        assert [k.key for k in app.screen.query(FooterKey)][-2:] == ["question_mark", "q"]


async def test_the_gguf_name_row_has_a_space_after_its_label():
    app = StillApp(story_events())
    async with app.run_test(size=(160, 45)) as pilot:
        await _ready(app, pilot)
        pane = app.panes[0]
        info = dataclasses.replace(pane.loaded.info, name="smollm2-135m", gguf_name="Smollm2 135M 8k Lc100K Mix1 Ep2")
        app.emit(0, dataclasses.replace(pane.loaded, info=info))
        await pilot.pause()
        lines = str(pane.query_one(CardPanel).render()).splitlines()
        assert "gguf name Smollm2 135M 8k Lc100K Mix1 Ep2" in lines, lines


async def test_the_export_toast_reads_as_a_sentence(tmp_path):
    app = StillApp(story_events())
    app.results_dir = tmp_path
    async with app.run_test(size=(160, 45), notifications=True) as pilot:
        await _ready(app, pilot)
        await pilot.press("e")
        await wait_for(lambda: list(tmp_path.glob("*.md")), "e to write the export", 30, pilot=pilot)
        await pilot.pause()
        toasts = [str(t.render()) for t in app.screen.query(Toast)]
        stem = next(tmp_path.glob("*.md")).with_suffix("")
        assert any(f"Exported 1 run: {stem}.json, .csv, .md" in t for t in toasts), toasts
        assert not any(" to · " in t for t in toasts), toasts


async def test_alternate_modes_waiting_pane_shows_no_earlier_figures():
    """A race run, then m and Enter: while the first model runs alone the second one's stats line
    says it waits, not the race run's figures; once the plan ends its own figures are back."""
    from tui.app.app import ABTopApp

    app = ABTopApp(["smollm2-135m", "gemma3-270m"], "The sky is blue because", GenParams(max_tokens=6), n_ctx=256,
                   autostart=True)  # fmt: skip
    seen: list[str] = []

    def on_event(slot, ev) -> None:
        if slot == 0 and isinstance(ev, Started) and ev.mode == "alternate":
            seen.append(str(app.panes[1].query_one(".stats").render()))

    app.hooks.append(on_event)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        assert "race" in str(app.panes[1].query_one(".stats").render())
        app.run_finished.clear()
        await pilot.press("m", "enter")
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        assert seen and "TTFT" not in seen[0] and "waiting for its turn" in seen[0], seen
        after = str(app.panes[1].query_one(".stats").render())
        assert "alternate" in after and "TTFT" in after, after


async def test_a_character_cut_by_max_tokens_is_held_back_not_replaced():
    """SmolLM2 writes Japanese in byte-level pieces: a run that ends between two pieces of one
    character shows the text up to it, never U+FFFD (in the pane, the export, the recording)."""
    from backends.catalog import make_backend

    prompt = "Write the word 'hello' in Japanese, Chinese and Korean."
    backend = make_backend("smollm2-135m", n_ctx=256)
    await backend.load()
    try:
        full = [ev async for ev in backend.stream(prompt, GenParams(max_tokens=24))]
        pieces = [ev.text for ev in full if isinstance(ev, Token)]
        cut = next((i for i, text in enumerate(pieces, start=1) if text == "" and i > 1), None)
        assert cut is not None, f"no token ended mid-character in {pieces}"
        short = [ev async for ev in backend.stream(prompt, GenParams(max_tokens=cut))]
    finally:
        await backend.close()
    text = "".join(ev.text for ev in short if isinstance(ev, Token))
    assert "\ufffd" not in text and "".join(pieces).startswith(text) and text, (text, pieces)
    assert short[-1].gen_tokens == cut


async def test_a_worker_killed_while_idle_is_said_at_once_and_one_enter_reloads_and_runs():
    """kill -9 of an idle worker: the pane says "worker lost" when it happens (not "ready" until
    the next run), and a single Enter loads it again and runs it."""
    import os
    import signal

    from backends.events import Failed
    from tests.conftest import worker_children
    from tui.app.app import ABTopApp

    app = ABTopApp(["smollm2-135m"], "The sky is blue because", GenParams(max_tokens=6), n_ctx=256)
    lost = asyncio.Event()
    app.hooks.append(lambda slot, ev: isinstance(ev, Failed) and ev.lost and lost.set())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(app.models_loaded, "the models to load", TIMEOUT)
        pane = app.panes[0]
        first = pane.loaded.pid
        os.kill(first, signal.SIGKILL)
        await wait_for(lost, "the pane to be told its idle worker was lost", 30)
        await pilot.pause()
        assert pane.failed
        assert "worker lost" in str(pane.query_one(".stats").render())
        assert "smollm2-135m: worker lost (killed by SIGKILL)" in pane.query_one("StreamView")._message.plain
        await pilot.press("enter")
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        assert not pane.failed and pane.loaded.pid != first
        assert pane.runs and pane.runs[-1]["gen_tokens"] > 0 and not pane.runs[-1]["error"]
    assert not worker_children()
