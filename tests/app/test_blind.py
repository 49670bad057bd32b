"""Blind A/B votes through Pilot, with the real engine on the bundled models: names hidden until
the vote, sides drawn at random, one fsync'd line in the battle log per vote."""

from __future__ import annotations

import io
import json
import random

from textual.widgets import Static

from backends.base import GenParams
from backends.quality.prompts import Prompt
from tests.support.waiting import wait_for
from tui.app.app import ABTopApp
from tui.widgets.card import CardPanel


def _visible_names(app) -> str:
    bits = []
    for pane in app.panes:
        bits += [str(pane.border_title), str(pane.query_one(".header", Static).render())]
        card = pane.query_one(CardPanel)
        if card.display:
            bits.append(str(card.render()))
    return " ".join(bits)


async def test_a_blind_vote_hides_the_names_until_the_vote_and_logs_one_line(tmp_path):
    rng = random.Random(7)
    expect_swap = random.Random(7).random() < 0.5
    app = ABTopApp(["smollm2-135m", "gemma3-270m"], "The sky is blue because", GenParams(max_tokens=6), n_ctx=512,
                   autostart=True, blind=True, rng=rng, results_dir=tmp_path)  # fmt: skip
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the first blind run to finish")
        await pilot.pause()
        a_slot, b_slot = app.blind.sides
        assert (a_slot, b_slot) == ((1, 0) if expect_swap else (0, 1))
        # side A is the first pane on screen
        assert [p.slot for p in app.query_one("#panes").children] == [a_slot, b_slot]
        shown = _visible_names(app)
        for name in ("smollm2", "gemma", "Q4", "llama", "MB"):
            assert name not in shown, name
        assert str(app.panes[a_slot].border_title) == "model A" and str(app.panes[b_slot].border_title) == "model B"
        assert "TTFT" in str(app.panes[a_slot].query_one(".stats").render())  # the figures stay
        await pilot.press("c")  # the card names the model: refused until the vote
        await pilot.pause()
        assert not any(p.query_one(CardPanel).display for p in app.panes)
        await pilot.press("1")
        await pilot.pause()
        lines = (tmp_path / "battles.jsonl").read_text().splitlines()
        assert len(lines) == 1
        vote = json.loads(lines[0])
        specs = ["smollm2-135m", "gemma3-270m"]
        assert vote["winner"] == "model_a" and vote["model_a"] == specs[a_slot] and vote["model_b"] == specs[b_slot]
        assert (vote["slot_a"], vote["slot_b"]) == (a_slot, b_slot)
        assert vote["prompt"] == "The sky is blue because" and vote["params"]["max_tokens"] == 6
        assert vote["run_ids"] == {"a": 0, "b": 0} and vote["schema"] == "abtop.vote/1"
        # revealed, with the win rate in each border
        assert str(app.panes[a_slot].border_title) == specs[a_slot]
        assert "won 100% (" in str(app.panes[a_slot].border_subtitle)
        assert "won 0% (" in str(app.panes[b_slot].border_subtitle)
        await pilot.press("2")  # voted already: no second line
        await pilot.pause()
        assert len((tmp_path / "battles.jsonl").read_text().splitlines()) == 1


async def test_n_steps_through_the_suite_and_votes_name_the_prompt(tmp_path):
    prompts = [Prompt("one", "The sky is blue because"), Prompt("two", "Water boils at")]
    app = ABTopApp(["smollm2-135m", "gemma3-270m"], prompts[0].text, GenParams(max_tokens=4), n_ctx=512,
                   blind=True, prompts=prompts, rng=random.Random(1), results_dir=tmp_path)  # fmt: skip
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(app.models_loaded, "both models to load")
        assert str(app.query_one("#suite-pos").render()) == "1/2 · n next"
        app.run_finished.clear()
        await pilot.press("n")
        await wait_for(app.run_finished, "the suite's second prompt (n) to finish")
        await pilot.pause()
        assert str(app.query_one("#suite-pos").render()) == "2/2 · n next"
        assert app.query_one("#prompt").value == "Water boils at"
        # a vote open in a suite, alternate mode, 80 columns: every footer key in sight (it was 86)
        from textual.widgets._footer import FooterKey

        for mode in ("race", "alternate"):
            app.mode = mode
            app.refresh_bindings()
            await pilot.pause()
            keys = list(app.screen.query(FooterKey))
            assert {"1", "2", "equals_sign", "x"} <= {k.key for k in keys}
            assert max(k.region.right for k in keys) <= 80, (mode, [(k.key, k.region) for k in keys])
        await pilot.press("equals_sign")
        await pilot.pause()
        vote = json.loads((tmp_path / "battles.jsonl").read_text())
        assert vote["winner"] == "tie" and vote["prompt_id"] == "two" and vote["prompt"] == "Water boils at"


async def test_S_scores_the_loaded_models_and_v_shows_the_verdict(tmp_path):
    from rich.console import Console

    from tui.widgets.verdict_screen import VerdictScreen, verdict_table

    app = ABTopApp(["smollm2-135m", "gemma3-270m"], "The sky is blue because", GenParams(max_tokens=6), n_ctx=512,
                   autostart=True, results_dir=tmp_path)  # fmt: skip
    app.quality_keys.score_source = ("Four score and seven years ago our fathers brought forth on this continent a new nation.", "t")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(app.run_finished, "the first run to finish")
        await pilot.press("S")
        for w in app.workers:
            if w.group == "score":
                await wait_for(w.wait(), "both models' bits per byte (S)")
        await pilot.pause()
        assert set(app.quality_keys.scores) == {0, 1} and all(e["bpb"] > 0 for e in app.quality_keys.scores.values())
        assert "bpb " in str(app.panes[0].border_subtitle)
        await pilot.press("v")  # the verdict gathers the host's facts off the loop, then shows
        await wait_for(lambda: isinstance(app.screen, VerdictScreen), "the verdict screen (v)", pilot=pilot)
        console = Console(width=80, record=True, file=io.StringIO())
        console.print(verdict_table(app.screen.cols))
        drawn = console.export_text()
        assert "gen t/s (median)" in drawn and "bits per byte" in drawn and "✓" in drawn
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, VerdictScreen)
        # e: the exports carry bpb beside the speed
        docs = app.results_models()
        assert all(m["score"]["bpb"] > 0 for m in docs)


def _said(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_b_turns_blind_votes_on_for_the_next_run_x_votes_both_bad_and_b_turns_them_off(tmp_path):
    app = ABTopApp(["smollm2-135m", "gemma3-270m"], "The sky is blue because", GenParams(max_tokens=4), n_ctx=512,
                   rng=random.Random(3), results_dir=tmp_path)  # fmt: skip
    log = tmp_path / "battles.jsonl"
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.models_loaded, "both models to load")
        await pilot.press("b")
        on = "Blind mode: names hidden from the next run; vote with 1, 2, = or x."
        await wait_for(lambda: on in _said(app), f"b to say {on!r}", 30, pilot=pilot)
        app.run_finished.clear()
        await pilot.press("enter")
        await wait_for(app.run_finished, "the first blind run to finish")
        await pilot.pause()
        assert sorted(str(p.border_title) for p in app.panes) == ["model A", "model B"]
        assert "smollm2" not in _visible_names(app) and "gemma" not in _visible_names(app)
        await pilot.press("x")
        await pilot.pause()
        vote = json.loads(log.read_text())
        assert vote["winner"] == "tie (bothbad)" and {vote["model_a"], vote["model_b"]} == {"smollm2-135m", "gemma3-270m"}
        assert [str(p.border_title) for p in app.panes] == ["smollm2-135m", "gemma3-270m"]  # revealed
        assert all("won 50% (" in str(p.border_subtitle) for p in app.panes)  # both bad: half a win each
        assert any(m.startswith("both bad: A was ") for m in _said(app))

        await pilot.press("b")
        off = "Blind mode off."
        await wait_for(lambda: off in _said(app), f"b again to say {off!r}", 30, pilot=pilot)
        app.run_finished.clear()
        await pilot.press("enter")
        await wait_for(app.run_finished, "a run with blind mode off to finish")
        await pilot.pause()
        assert [str(p.border_title) for p in app.panes] == ["smollm2-135m", "gemma3-270m"]  # names stay
        await pilot.press("x")  # no vote open: the key is not offered and writes nothing
        await pilot.pause()
        assert len(log.read_text().splitlines()) == 1


def test_blind_with_one_model_is_one_sentence_and_exit_2():
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "tui.cli.main", "--blind", "smollm2-135m"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("abtop: --blind ") and "two models" in lines[0], p.stderr
