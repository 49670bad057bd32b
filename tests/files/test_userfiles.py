"""A person's files through the one reader (``backends/userfiles.py``): the three JSON Lines files
(a battle log, a ``--prompts`` suite, a recording) answer JSON nested deeper than Python's parser
recurses with the same one sentence as any other line that is not JSON, never a traceback."""

from __future__ import annotations

import json

import pytest

from backends.quality.prompts import load_prompts
from backends.userfiles import read_user_text
from tui.cli.main import _command_parser, main

DEEP = "[" * 100_000 + "]" * 100_000
"""Valid JSON that ``json.loads`` cannot read: it raises ``RecursionError``, not ``ValueError``."""


def test_the_deep_line_really_is_too_deep_for_the_parser():
    with pytest.raises(RecursionError):
        json.loads(DEEP)


def test_a_battle_log_with_a_deep_line_is_one_sentence(tmp_path, capsys):
    log = tmp_path / "battles.jsonl"
    log.write_text(DEEP + '\n{"model_a": "x", "model_b": "y", "winner": "tie"}\n')
    assert main(["votes", str(log)]) == 2
    err = capsys.readouterr().err
    assert err == "abtop: battles.jsonl line 1: not JSON; a battle log has one vote per line.\n"
    log.write_text('{"model_a": "x", "mod\n{"model_a": "x", "model_b": "y", "winner": "tie"}\n')
    assert main(["votes", str(log)]) == 2
    assert capsys.readouterr().err == err  # the same sentence as a line that is plainly not JSON


def test_a_prompt_suite_with_a_deep_line_is_one_sentence(tmp_path):
    suite = tmp_path / "suite.jsonl"
    suite.write_text('{"prompt": "hi"}\n' + DEEP + "\n")
    with pytest.raises(ValueError, match=r"^suite\.jsonl line 2: not JSON; a \.jsonl suite") as deep:
        load_prompts(str(suite))
    suite.write_text('{"prompt": "hi"}\nnot json\n')
    with pytest.raises(ValueError) as plain:
        load_prompts(str(suite))
    assert str(deep.value) == str(plain.value)


@pytest.mark.parametrize("head", [True, False], ids=["header", "event"])
def test_a_recording_with_a_deep_line_is_one_sentence(tmp_path, capsys, head):
    rec = tmp_path / "rec.jsonl"
    header = json.dumps({"schema": "abtop.record/1", "specs": ["a"]})
    event = '{"type": "Note", "text": "x", "t": 1.0, "slot": 0}'
    rec.write_text(f"{DEEP}\n{event}\n" if head else f"{header}\n{DEEP}\n{event}\n")
    args = _command_parser("replay").parse_args(["replay", str(rec)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("abtop: rec.jsonl") and err.count("\n") == 1 and "Traceback" not in err
    assert ("no abtop header on its first line" if head else "line 2: not JSON; a recording has one event a line") in err


@pytest.mark.parametrize(
    "make, sentence",
    [
        (lambda d: d / "missing.txt", "--text X: no such file; make it first."),
        (lambda d: d, "--text X is a folder; give a text file."),
        (lambda d: (d / "latin1.txt", (d / "latin1.txt").write_bytes(b"caf\xe9"))[0],
         "--text X: not UTF-8 text, so not a text file."),
    ],
    ids=["missing", "folder", "not-utf8"],
)  # fmt: skip
def test_a_file_that_cannot_be_read_is_one_sentence_naming_it(tmp_path, make, sentence):
    with pytest.raises(ValueError) as exc:
        read_user_text(make(tmp_path), "--text X", missing="make it first")
    assert str(exc.value) == sentence
