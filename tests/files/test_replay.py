"""Record and replay: a real run recorded by the TUI plays back with the same text and timings.

The replay needs no model and no engine; the recording here is made by the real llama-cpp-python
on the bundled pair, then played back through the same ABTopApp panes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys

import pytest

from backends.base import GenParams
from backends.events import Sample, Started, Token, now
from backends.stats import RUN_FIELDS
from tests.conftest import worker_children
from tests.support.waiting import wait_for
from tui.app.app import ABTopApp
from tui.app.replay import ReplayApp, ReplayError, load, synthetic, timeline, write
from tui.cli.main import _command_parser
from tui.widgets.stream_view import StreamView


async def test_record_then_replay_reproduces_text_and_timings(tmp_path):
    rec = tmp_path / "run.jsonl"
    live = ABTopApp(["smollm2-135m", "gemma3-270m"], "The sky is blue because", GenParams(max_tokens=12),
                    n_ctx=512, autostart=True, record=str(rec))  # fmt: skip
    async with live.run_test(size=(120, 40)) as pilot:
        await wait_for(live.run_finished, "the recorded run to finish")
        await pilot.pause()
        recorded = [list(p.runs) for p in live.panes]
        times = [list(p.collector.token_times) for p in live.panes]
        await pilot.press("q")
    assert not worker_children()
    assert all(len(r) == 1 and r[0]["gen_tokens"] > 1 for r in recorded)

    header, events = load(rec)
    assert header["params"]["prompt"] == "The sky is blue because" and header["params"]["mode"] == "race"
    app = ReplayApp(header, events, speed=8, source=str(rec))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(app.run_finished, "the replay to end", 60)
        await pilot.pause()
        for pane, runs, ts in zip(app.panes, recorded, times, strict=True):
            assert pane.loaded is not None and not pane.failed
            assert len(pane.runs) == 1
            got, want = pane.runs[0], runs[0]
            assert got["text"] == want["text"] and pane.query_one(StreamView).text == want["text"]
            for key in RUN_FIELDS:
                if isinstance(want[key], float):
                    assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9), key
                else:
                    assert got[key] == want[key], key
            assert got["mode"] == "race"
            # the gaps between tokens, not only their summary, are the recorded ones
            assert _gaps(pane.collector.token_times) == pytest.approx(_gaps(ts), abs=1e-6)
            assert pane.border_subtitle == "replay ×8 · race"  # never mistaken for a live run
        # the recorded prompt and mode stay: "/" and "m" are not offered
        assert app.check_action("edit_prompt", ()) is False and app.check_action("mode", ("alternate",)) is False


async def test_replay_paces_events_by_their_recorded_times(tmp_path):
    """Played at 4x, a 1.2 s recording takes at least 0.3 s: events are not dumped at once."""
    header, events = synthetic(tokens_per_s=40, seconds=1.0)
    app = ReplayApp(header, events, speed=4)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(app.run_finished, "the replay to end", 30)
        took = now() - app._start  # the replay starts on mount, before this block runs
        await pilot.pause()
        assert took >= app.duration / 4 - 0.005
        assert app.replayed == len(app.timeline)
        for pane in app.panes:
            r = pane.runs[0]
            assert r["gen_tokens"] == 40 and r["gen_tps"] == pytest.approx(40, rel=1e-6)  # recorded, not 4x
            assert "TTFT" in str(pane.query_one(".stats").render())
        # r plays it again from the start
        app.run_finished.clear()
        await pilot.press("r")
        await wait_for(app.run_finished, "the replay played again (r) to end", 30)
        assert [len(p.runs) for p in app.panes] == [1, 1]


def test_idle_between_runs_is_cut():
    header, events = synthetic(tokens_per_s=20, seconds=0.5, runs=2)
    # a person typing for a minute between the runs: push the second run 60 s later
    second = next(i for i, (_, ev) in enumerate(events) if isinstance(ev, Started) and ev.run == 1)
    first_end = max(ev.t for _, ev in events[:second] if not isinstance(ev, Sample))
    shifted = [(s, ev) if i < second or isinstance(ev, Sample) and ev.t < first_end else (s, _shift(ev, 60.0))
               for i, (s, ev) in enumerate(events)]  # fmt: skip
    shifted += [(0, Sample(first_end + k, cpu_percent=1.0)) for k in range(1, 59)]  # idle telemetry
    shifted.sort(key=lambda e: e[1].t)
    line = timeline(shifted)
    assert line[-1][0] < 5.0  # the minute is gone
    tokens = [(off, ev) for off, _, ev in line if isinstance(ev, Token)]
    # within a run, the gaps stay exactly as recorded
    assert tokens[-1][1].t - tokens[-2][1].t == pytest.approx(tokens[-1][0] - tokens[-2][0])


def _gaps(ts: list[float]) -> list[float]:
    return [b - a for a, b in zip(ts, ts[1:], strict=False)]


def _shift(ev, dt):
    return dataclasses.replace(ev, t=ev.t + dt)


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "no such file"),
        ("", "not an abtop recording"),
        ("hello\n", "not an abtop recording"),
        ('{"schema": "other/1"}\n', "schema 'other/1'"),
        ('{"schema": "abtop.record/1", "specs": ["a", "b"]}\n', "holds no events"),
        ('{"schema": "abtop.record/1", "specs": ["a", "b"]}\n{"type": "Nope", "slot": 0}\n{"type": "Note", "text": "x", "t": 1.0, "slot": 0}\n',
         "line 2: not an abtop event"),
        ('{"schema": "abtop.record/1", "specs": ["a", "b"]}\n{"type": "Note", "text": "x", "t": 1.0, "slot": 7}\n',
         "slot 7"),
    ],
)  # fmt: skip
def test_bad_recording_is_one_sentence(tmp_path, capsys, content, words):
    path = tmp_path / "rec.jsonl"
    if content is not None:
        path.write_text(content)
    args = _command_parser("replay").parse_args(["replay", str(path)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("abtop: ")


def test_truncated_last_line_is_tolerated(tmp_path):
    """A recorder killed mid-line leaves half a line: what came before still plays."""
    header, events = synthetic(tokens_per_s=10, seconds=0.5)
    path = tmp_path / "rec.jsonl"
    write(path, header, events)
    path.write_text(path.read_text() + '{"type":"Tok')
    _, got = load(path)
    assert len(got) == len(events)


def test_speed_must_be_positive(tmp_path, capsys):
    args = _command_parser("replay").parse_args(["replay", str(tmp_path / "x.jsonl"), "--speed", "0"])
    assert args.func(args) == 2
    assert "--speed" in capsys.readouterr().err


def test_load_raises_replay_error_for_a_directory(tmp_path):
    with pytest.raises(ReplayError, match="is a folder"):
        load(tmp_path)


def test_header_round_trips_through_the_recorder(tmp_path):
    header, events = synthetic(tokens_per_s=10, seconds=0.5)
    write(tmp_path / "r.jsonl", header, events)
    first = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert first["params"]["mode"] == "race" and first["specs"] == header["specs"]


async def test_escape_stops_a_replay_and_its_clock():
    header, events = synthetic(tokens_per_s=40, seconds=3.0)
    app = ReplayApp(header, events, speed=1)
    tokens = [0, 0]
    streaming = asyncio.Event()

    def count(slot: int, ev) -> None:
        if isinstance(ev, Token):
            tokens[slot] += 1
            if tokens[slot] >= 3:
                streaming.set()

    app.hooks.append(count)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(streaming, "three tokens of a replayed stream", 30)
        await pilot.press("escape")
        await pilot.pause()
        for pane in app.panes:
            assert pane.collector.finished.stop == "cancelled" and pane.runs == []
            assert pane.collector.elapsed(now() + 60) == pane.collector.elapsed(now())  # the clock stopped
            assert "cancelled" in str(pane.query_one(".stats").render())
        footer = {b.binding.key: b.binding.description for b in app.screen.active_bindings.values() if b.binding.show}
        assert footer["enter"] == "Replay"


def test_every_event_of_a_recording_reads_back_as_it_was_written():
    """``to_dict`` writes a token and a reading without ``asdict`` (tens a second); every kind reads back equal."""
    from backends.events import from_dict, to_dict

    _, events = synthetic([20, 10], 0.5, runs=2, moving=True)
    kinds = {type(ev).__name__ for _, ev in events}
    assert {"Loaded", "Started", "Token", "Sample", "Finished"} <= kinds
    for _, ev in events:
        d = to_dict(ev)
        assert d == dataclasses.asdict(ev) | {"type": type(ev).__name__}
        assert from_dict(json.loads(json.dumps(d))) == ev


async def test_the_recorder_writes_a_loop_turns_events_at_once_and_says_when_a_write_fails(tmp_path):
    """A batch of tokens is one write at the end of the loop turn that made it (not a system call
    a token); a full device stops the recording with one sentence, handed to ``on_error``."""
    from tui.files.record import Recorder

    path = tmp_path / "r.jsonl"
    rec = Recorder(path, ["a", "b"])
    await asyncio.sleep(0)
    assert len(path.read_text().splitlines()) == 1  # the header
    for k in range(5):
        rec.write(k % 2, Token(f"w{k}", 1.0 + k))
    assert len(path.read_text().splitlines()) == 1  # still this turn: nothing written yet
    await asyncio.sleep(0)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["text"] for line in lines[1:]] == [f"w{k}" for k in range(5)]
    assert rec.events == 5
    rec.close()

    def off_a_loop() -> Recorder:  # bench's exports, a test's file: every line at once, each counted
        plain = Recorder(tmp_path / "plain.jsonl", ["a"])
        for k in range(3):
            plain.write(0, Token(f"p{k}", 1.0 + k))
        assert len((tmp_path / "plain.jsonl").read_text().splitlines()) == 4
        plain.close()
        return plain

    assert (await asyncio.to_thread(off_a_loop)).events == 3

    said: list[str] = []
    full = Recorder("/dev/full", ["a"], on_error=said.append)
    full.write(0, Token("x", 1.0))
    await asyncio.sleep(0)
    assert full.error is not None and said == [full.error]
    assert "/dev/full" in said[0] and "the run went on" in said[0]
    full.write(0, Token("y", 2.0))  # stopped: no second sentence
    await asyncio.sleep(0)
    full.close()
    assert said == [full.error]


async def test_a_replay_wakes_once_a_frame_not_once_a_token(monkeypatch):
    """Two models at 46 + 28 tok/s, one token an event: the replay hands over what fell due once a
    frame may draw it (as a local worker sends its tokens in batches), not a wake-up a token."""
    sleeps = [0]
    real_sleep = asyncio.sleep

    async def sleep(delay, *args, **kwargs):
        if sys._getframe(1).f_code.co_name == "_play":
            sleeps[0] += 1
        return await real_sleep(delay, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    header, events = synthetic([46, 28], 2.0, moving=True)
    tokens = sum(isinstance(ev, Token) for _, ev in events)
    app = ReplayApp(header, events, speed=1)
    frames = [0]
    real_frame = app._frame

    def frame() -> None:
        frames[0] += 1
        real_frame()

    app._frame = frame
    async with app.run_test(size=(160, 45)):
        await wait_for(app.run_finished, f"the replay to end ({app.duration:.1f} s of recording)")
    assert tokens >= 140 and frames[0] >= 10
    assert sleeps[0] <= frames[0] + 2, f"{sleeps[0]} wake-ups for {frames[0]} frames and {tokens} tokens"
