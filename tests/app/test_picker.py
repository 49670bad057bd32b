"""The model picker: ``o`` (and Ctrl+P) lists what ``abtop models`` finds, with arch, size, quant and
PLE/MoE; picking swaps one pane's model without a restart (the old worker closes, the new one
loads, the cores are split again). The real engine on the bundled models."""

from __future__ import annotations

import os

from textual.command import CommandList, CommandPalette

from backends import model_list
from backends.base import GenParams
from backends.events import Loaded
from tests.conftest import worker_children
from tests.support.waiting import wait_for
from tui.app.app import ABTopApp, app_for
from tui.app.picker import ModelsProvider, gather
from tui.cli.parser import build_parser
from tui.widgets.card import CardPanel


def _said(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def _app(specs):
    return ABTopApp(list(specs), "The sky is", GenParams(max_tokens=6), n_ctx=512)


def test_the_listing_says_arch_size_quant_and_ple_or_moe(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "none"))
    found = dict((f.spec, (where, f)) for where, f in gather())
    where, smol = found["smollm2-135m"]
    assert where == "bundled" and (smol.arch, smol.quant, smol.kind) == ("llama", "Q4_1", "dense") and smol.size > 1e7
    assert found["gemma3-270m"][1].quant == "Q4_K_M"
    # `abtop models` prints the same list (one function finds it for both)
    titles = [s.title for s in model_list.find(ollama_url="http://127.0.0.1:9")]
    assert titles[0] == "bundled" and titles[-1] == "Ollama at http://127.0.0.1:9: not reachable"


async def test_o_picks_a_model_for_pane_b_and_swaps_it_mid_session():
    app = _app(["smollm2-135m", "gemma3-270m"])
    seen: list = []
    app.hooks.append(lambda slot, ev: seen.append((slot, ev)))
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.models_loaded, "both models to load")
        old_pid = app.session.loaded[1].pid
        await pilot.press("o")
        await wait_for(lambda: isinstance(app.screen, CommandPalette), "the picker (o)", pilot=pilot)
        await pilot.press(*"B smol")
        palette = app.screen
        await wait_for(lambda: palette.query_one(CommandList).option_count >= 1, "the picker to offer smollm2", pilot=pilot)
        shown = str(palette.query_one(CommandList).get_option_at_index(0).prompt)
        assert shown.startswith("B ← smollm2-135m  llama · 98.4 MB · Q4_1 · dense")
        n = len(seen)
        await pilot.press("enter")
        # the swap ends (loaded, the cores split again, the engine free for Enter) with its sentence
        done = "Pane B: smollm2-135m loaded; Enter runs both."
        await wait_for(lambda: done in _said(app), f"the swap to say {done!r}", pilot=pilot)
        assert any(s == 1 and isinstance(e, Loaded) for s, e in seen[n:])
        await pilot.pause()
        assert app.specs == ["smollm2-135m", "smollm2-135m"]
        assert app.session.loaded[1].info.name == "smollm2-135m #2" and app.session.loaded[1].pid != old_pid
        assert old_pid not in {p.pid for p in worker_children()} and len(worker_children()) == 2
        if len(os.sched_getaffinity(0)) >= 2:  # race: the cores are split again between the two
            assert not set(app.session.loaded[0].cpus) & set(app.session.loaded[1].cpus)
        assert str(app.panes[1].query_one(".header").render()).startswith("llama · 134.5M params")
        app.run_finished.clear()
        await pilot.press("enter")  # and both run
        await wait_for(app.run_finished, "both models to run")
        assert all(len(p.runs) == 1 for p in app.panes)
    assert not worker_children()


async def test_ctrl_p_holds_the_picker_and_fills_a_pane_whose_model_never_loaded(tmp_path):
    assert ModelsProvider in ABTopApp.COMMANDS
    app = _app([str(tmp_path / "missing.gguf"), "smollm2-135m"])
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.models_loaded, "the models to load (one of them cannot)")
        assert app.panes[0].failed and len(app.session.backends) == 1
        await pilot.press("ctrl+p")
        await wait_for(lambda: isinstance(app.screen, CommandPalette), "the palette (ctrl+p)", pilot=pilot)
        await pilot.press(*"A gemma3")
        palette = app.screen
        await wait_for(lambda: palette.query_one(CommandList).option_count >= 1, "the palette to offer gemma3", pilot=pilot)
        await pilot.press("enter")
        done = "Pane A: gemma3-270m loaded; Enter runs both."
        await wait_for(lambda: done in _said(app), f"the swap to say {done!r}", pilot=pilot)
        assert app.session.loaded[-1] is not None and app.session.alive == [True, True]
        assert app.specs[0] == "gemma3-270m" and not app.panes[0].failed and app.slots == [1, 0]
        app.run_finished.clear()
        await pilot.press("enter")
        await wait_for(app.run_finished, "both models to run")
        assert all(len(p.runs) == 1 for p in app.panes)
    assert not worker_children()


async def test_blind_mode_keeps_its_names_hidden_from_the_picker():
    app = ABTopApp(["smollm2-135m", "gemma3-270m"], "The sky is", GenParams(max_tokens=6), n_ctx=512, blind=True)
    async with app.run_test(size=(160, 45)) as pilot:
        app.swap_model(1, "smollm2-135m")
        await pilot.pause()
        assert app.specs == ["smollm2-135m", "gemma3-270m"]
        assert any("Blind mode hides the names" in str(n.message) for n in app._notifications)


def _context_row(pane) -> str:
    return dict((label, value) for label, value, _ in pane.query_one(CardPanel).rows())["context"]


async def test_a_picked_model_keeps_the_engine_options():
    """``--flash-attn off`` applies to the model ``o`` puts in a pane too, not only to the first two:
    the swap builds its backend the way the load does. llama.cpp's own load log says so (the card's
    context row)."""
    app = app_for(build_parser().parse_args(["smollm2-135m", "gemma3-270m", "--ctx", "512", "--flash-attn", "off"]))
    seen: list = []
    app.hooks.append(lambda slot, ev: seen.append((slot, ev)))
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.models_loaded, "both models to load")
        assert ["flash attn off" in _context_row(p) for p in app.panes] == [True, True]
        n = len(seen)
        app.swap_model(1, "smollm2-135m")  # what the picker's "B ← smollm2-135m" calls
        await wait_for(lambda: any(s == 1 and isinstance(e, Loaded) for s, e in seen[n:]), "pane B's new model to load", pilot=pilot)
        await pilot.pause()
        assert app.specs[1] == "smollm2-135m"
        row = _context_row(app.panes[1])
        assert "flash attn off" in row, f"the picked model lost --flash-attn off: {row}"
    assert not worker_children()
