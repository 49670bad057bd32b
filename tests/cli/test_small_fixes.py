"""The issue's smaller defects: two of the same model, a model named by its file, one model alone,
``--version``, the ``?`` help screen, what a server model's card can know, a corrupt GGUF header,
and dependency floors that match what the code calls."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

from backends.base import BackendError
from backends.card.gguf import read_card
from backends.events import ModelInfo
from backends.specs import bundled_path
from tests.conftest import worker_children
from tests.support.waiting import wait_for
from tui.app.replay import ReplayApp, synthetic
from tui.cli.main import main
from tui.cli.parser import build_parser
from tui.text.card_text import card_lines

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 180


def test_the_same_file_twice_is_titled_by_its_name_and_numbered(tmp_path):
    link = tmp_path / "my-smol.gguf"
    link.symlink_to(bundled_path("smollm2-135m"))
    out = tmp_path / "out.json"
    p = subprocess.run(
        [sys.executable, "-m", "tui.cli.main", "bench", str(link), str(link), "-n", "2", "--warmup", "0", "--ctx", "512",
         "--json", str(out)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    infos = [m["info"] for m in json.loads(out.read_text())["models"]]
    assert [i["name"] for i in infos] == ["my-smol", "my-smol #2"]  # the file's name, as typed; numbered
    assert infos[0]["gguf_name"] == read_card(link).name != "my-smol"  # the GGUF's own name kept for the card
    rows = [line for line in p.stdout.splitlines() if line.startswith("| my-smol")]
    assert [r.split(" | ")[0] for r in rows] == ["| my-smol", "| my-smol #2"]


async def test_one_model_runs_alone_in_one_pane():
    from tui.app.app import app_for

    app = app_for(build_parser().parse_args(["smollm2-135m", "-n", "4", "--ctx", "512", "-p", "Hi"]))
    assert app.specs == ["smollm2-135m"]  # no partner added behind the person's back
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(app.run_finished, "the run to finish", TIMEOUT)
        await pilot.pause()
        assert len(app.panes) == 1 and len(app.panes[0].runs) == 1
        assert app.panes[0].loaded.info.name == "smollm2-135m"
        assert app.panes[0].size.width > 100  # the whole width
        await pilot.press("q")
    assert not worker_children()


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"abtop {importlib.metadata.version('abtop')}"


async def test_question_mark_shows_every_key_and_closes():
    from tui.app.help import HelpScreen

    header, events = synthetic(tokens_per_s=40, seconds=0.2)
    app = ReplayApp(header, events, speed=50)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(app.run_finished, "the run to finish", 30)
        for close in ("escape", "q", "question_mark"):
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            text = app.screen.text
            from tui.app.app import ABTopApp

            for b in ABTopApp.BINDINGS:  # every key the app answers to is explained
                key = {"slash": "/", "equals_sign": "=", "question_mark": "?", "escape": "Esc", "enter": "Enter",
                       "ctrl+c": "Ctrl+C", "ctrl+z": "Ctrl+Z"}.get(b.key, b.key)  # fmt: skip
                assert f" {key} " in f" {text} ".replace("\n", " "), key
            await pilot.press(close)
            await pilot.pause()
            assert not isinstance(app.screen, HelpScreen), close
        assert app.is_running  # q closed the help, not the app


def test_a_server_models_card_does_not_claim_dense():
    rows = dict(card_lines(ModelInfo("qwen2.5-3b", quant="Q4_K_M")))  # no GGUF read: a server's model
    assert rows["PLE"] == rows["MoE"] == "unknown (server model)"
    gguf = dict(card_lines(read_card(bundled_path("smollm2-135m"))))
    assert (gguf["PLE"], gguf["MoE"]) == ("none", "none (dense)")


def test_absurd_counts_are_corrupt_not_truncated(tmp_path):
    p = tmp_path / "claims.gguf"
    p.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (10**12).to_bytes(8, "little") + (0).to_bytes(8, "little") + bytes(64))
    with pytest.raises(BackendError) as e:
        read_card(p)
    msg = str(e.value)
    assert "corrupt" in msg and "truncated" not in msg and "1,000,000,000,000 tensors" in msg, msg


def test_dependency_floors_cover_what_the_code_calls():
    deps = {Requirement(d).name: Requirement(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    textual, llama = deps["textual"].specifier, deps["llama-cpp-python"].specifier
    # Static.update(layout=) is Textual 5's, and the compositor LeanCompositor reads (its private
    # _get_renders, render_partial_update) 8.2's, checked up to 9 (tests/screen/test_frames.py);
    # llama_kv_self_clear (the KV reset) llama-cpp-python 0.3.9's
    assert not textual.contains("8.1.9") and textual.contains("8.2.0") and not textual.contains("9.0.0")
    assert not llama.contains("0.3.8") and llama.contains("0.3.9")
    for name in ("textual", "llama-cpp-python"):  # and what is installed here satisfies them
        assert deps[name].specifier.contains(Version(importlib.metadata.version(name)), prereleases=True), name
    from textual.widgets import Static

    assert "layout" in inspect.signature(Static.update).parameters
    import llama_cpp

    assert hasattr(llama_cpp, "llama_memory_clear") or hasattr(llama_cpp, "llama_kv_self_clear")
