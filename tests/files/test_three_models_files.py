"""Three models through the files: bench's ``--record`` played back by ``abtop replay`` in three
panes (a recording of six: the TUI shows four, ``--only`` picks them), ``abtop score`` with a row each,
and a config file's ``[pairs.x] models = [a, b, c]``.

Real workers on the bundled models (one of them twice, its KV cache in q8_0), tiny runs; and
``abtop votes`` on votes among the three, beside that bench."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

from backends.quality.votes import append_vote, battle_record
from backends.specs import name_suffix
from backends.stats import RUN_FIELDS
from tests.support.waiting import wait_for
from tui.app.replay import ReplayApp, load, select, synthetic, write
from tui.cli.main import _command_parser, main
from tui.widgets.stream_view import StreamView

ABTOP = [sys.executable, "-m", "tui.cli.main"]
THREE = ["smollm2-135m", "gemma3-270m", "smollm2-135m,kv=q8_0"]
NAMES = ["smollm2-135m", "gemma3-270m", "smollm2-135m kv=q8_0"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """``abtop bench`` on the three, one run of 8 tokens, recorded: (recording, bench JSON)."""
    d = tmp_path_factory.mktemp("three")
    rec, out = d / "run.jsonl", d / "out.json"
    p = subprocess.run([*ABTOP, "bench", *THREE, "--record", str(rec), "--runs", "1", "--warmup", "0", "-n", "8",
                        "--ctx", "256", "-p", "The sky is blue because", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return rec, json.loads(out.read_text())


async def test_a_bench_of_three_recorded_replays_in_three_panes_with_its_figures(recorded):
    rec, doc = recorded
    header, events = load(rec)
    assert header["specs"] == THREE and {slot for slot, _ in events} == {0, 1, 2}
    app = ReplayApp(header, events, speed=8, source=str(rec))
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the replay of three models to end", 60)
        await pilot.pause()
        assert len(app.panes) == 3 and app.query_one("#panes").has_class("-grid")
        for pane, model, name in zip(app.panes, doc["models"], NAMES, strict=True):
            assert pane.loaded is not None and not pane.failed, name
            assert name in pane.border_title
            (got,), (want,) = pane.runs, model["runs"]
            assert got["gen_tokens"] == want["gen_tokens"] == 8
            assert got["text"] == want["text"] and pane.query_one(StreamView).text == want["text"]
            for key in ("ttft_s", "gen_tps", "prompt_tokens"):
                assert key in RUN_FIELDS and got[key] == pytest.approx(want[key], rel=1e-6), (name, key)
            assert "TTFT" in str(pane.query_one(".stats").render())


def test_abtop_score_of_three_gives_three_rows(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("It is for us the living, rather, to be dedicated here to the unfinished work.\n", encoding="utf-8")
    out = tmp_path / "s.json"
    p = subprocess.run([*ABTOP, "score", *THREE, "--text", str(text), "--ctx", "256", "--json", str(out)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert [m["spec"] for m in doc["models"]] == THREE
    assert [m["name"] for m in doc["models"]] == NAMES
    for m in doc["models"]:
        assert m["bpb"] > 0 and m["tokens"] > 0 and m["reason"] is None
        assert f"| {m['name']} | {m['bpb']:.4f} |" in p.stdout
    # the same file and tokenizer: a q8_0 cache scores the text as the f16 one within a hair
    assert doc["models"][2]["tokens"] == doc["models"][0]["tokens"]


def test_a_configured_pair_of_three_benches_all_three(tmp_path):
    cfg = tmp_path / "abtop" / "config.toml"
    cfg.parent.mkdir()
    cfg.write_text('[defaults]\nmax_tokens = 4\nctx = 256\n\n[pairs.three]\nmodels = ["' + '", "'.join(THREE) + '"]\n')
    out = tmp_path / "out.json"
    p = subprocess.run([*ABTOP, "bench", "--pair", "three", "--warmup", "0", "-p", "Hi", "--json", str(out)],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)})  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert [m["spec"] for m in doc["models"]] == THREE and [m["info"]["name"] for m in doc["models"]] == NAMES
    assert doc["params"]["max_tokens"] == 4 and doc["params"]["n_ctx"] == 256
    assert all(r["gen_tokens"] > 0 for m in doc["models"] for r in m["runs"])
    assert "| question | " + " | ".join(NAMES) + " |" in p.stdout



def test_a_configured_pair_of_five_is_refused_naming_the_pair(tmp_path, monkeypatch, capsys):
    cfg = tmp_path / "abtop" / "config.toml"
    cfg.parent.mkdir()
    cfg.write_text('[pairs.five]\nmodels = ["' + '", "'.join(THREE + THREE[:2]) + '"]\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert main(["--pair", "five"]) == 2  # the TUI: refused before anything loads
    err = capsys.readouterr().err
    assert err.startswith("abtop: [pairs.five] in the config file names 5 models (") and "4 panes at most" in err

def test_a_name_gains_what_tells_it_apart_as_the_live_panes_and_score_say():
    specs = ["smollm2-135m", "smollm2-135m", "smollm2-135m,kv=q8_0", "gemma3-270m"]
    assert [name_suffix(specs, i) for i in range(4)] == ["", " #2", " kv=q8_0", ""]


@pytest.mark.parametrize(
    "only, words",
    [(None, "holds 6 models and the TUI shows 4 at most; pick them with --only, e.g. --only 1,2,3,4."),
     ("1,2,3,4,5", "--only 1,2,3,4,5: 5 models; the TUI shows 4 at most."),
     ("0,2", "give distinct model numbers between 1 and 6"), ("2,2", "distinct"), ("a", "with commas")],
)  # fmt: skip
def test_a_bench_of_six_replays_only_what_fits_and_says_so(tmp_path, capsys, only, words):
    path = tmp_path / "six.jsonl"
    write(path, *synthetic(tokens_per_s=20, seconds=0.2, models=6))
    args = _command_parser("replay").parse_args(["replay", str(path), *(["--only", only] if only else [])])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and err.startswith("abtop: ")


async def test_only_picks_models_of_a_recording_and_renumbers_their_slots():
    header, events = select(*synthetic(tokens_per_s=[20, 21, 22, 23, 24, 25], seconds=0.4), "2,5,6", 4)
    assert header["specs"] == ["synthetic-b", "synthetic-e", "synthetic-f"] and {s for s, _ in events} == {0, 1, 2}
    app = ReplayApp(header, events, speed=4)
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the replay of three of six models to end", 30)
        await pilot.pause()
        assert [p.loaded.info.name for p in app.panes] == header["specs"]
        assert all(r.width and r.height for r in (p.region for p in app.panes))  # none left unseen
        assert [p.runs[0]["gen_tokens"] for p in app.panes] == [int(r * 0.4) for r in (21, 24, 25)]


def test_abtop_votes_of_three_drawn_two_at_a_time_rates_all_three_beside_the_bench(recorded, tmp_path, capsys):
    """Votes as a blind session of three logs them (each between two drawn at random), the
    stronger of each two always winning: a win rate and a Bradley–Terry rating each, in strength
    order, and the verdict beside the three-model bench marks the one that won every vote."""
    _, doc = recorded
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(doc))
    strength = [THREE[1], THREE[2], THREE[0]]
    rng, drawn = random.Random(0), {s: 0 for s in THREE}
    log = tmp_path / "battles.jsonl"
    for _ in range(30):
        a, b = rng.sample(THREE, 2)
        drawn[a] += 1
        drawn[b] += 1
        winner = "model_a" if strength.index(a) < strength.index(b) else "model_b"
        append_vote(log, battle_record(model_a=a, model_b=b, winner=winner, prompt="p"))
    out_json = tmp_path / "votes.json"
    assert main(["votes", str(log), "--bench", str(bench), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    votes = json.loads(out_json.read_text())
    assert {m["model"]: m["battles"] for m in votes["models"]} == drawn
    assert [r["model"] for r in votes["ratings"]] == strength
    verdict = out.split("## Verdict")[1]
    assert "| question | " + " | ".join(NAMES) + " |" in verdict
    row = next(line for line in verdict.splitlines() if line.startswith("| blind win rate"))
    cells = [c.strip() for c in row.split("|")[2:5]]
    assert [("✓" in c) for c in cells] == [s == strength[0] for s in THREE] and "100% (" in cells[THREE.index(strength[0])]
