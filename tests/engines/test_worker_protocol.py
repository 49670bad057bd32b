"""The local worker's protocol: run ids, cancels that are never lost, an isolated start, hung
workers. All through the real llama-cpp-python worker on the bundled smollm2."""

from __future__ import annotations

import asyncio
import os
import signal

import psutil
import pytest

from backends.base import GenParams, Placement
from backends.engines.llamacpp import LlamaCppBackend
from backends.events import Failed, Finished, Started, Token

STORY = "Tell me a long story about a dragon who learns to fly."


async def collect(backend, prompt="Say hello.", max_tokens=8):
    return [ev async for ev in backend.stream(prompt, GenParams(max_tokens=max_tokens))]


class Abandon(Exception):
    """The consumer's own error, raised mid-stream."""


async def test_abandoned_run_does_not_leak_into_the_next(smollm2_path):
    """A consumer that raises mid-run walks away from its iterator; the placement and the run
    after it read their own replies, never the abandoned run's tokens or ``finished``."""
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=1024, placement=Placement(threads=2))
    try:
        await b.load()
        with pytest.raises(Abandon):
            async for ev in b.stream(STORY, GenParams(max_tokens=300)):
                if isinstance(ev, Token):
                    raise Abandon
        await b.place(Placement(threads=1))
        assert b.loaded.threads == 1
        alone = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=1024, placement=Placement(threads=1))
        try:
            await alone.load()
            expected = await collect(alone, max_tokens=8)
        finally:
            await alone.close()
        events = await collect(b, max_tokens=8)
    finally:
        await b.close()
    assert isinstance(events[0], Started) and events[0].prompt_tokens == expected[0].prompt_tokens
    assert sum(isinstance(e, Started) for e in events) == 1
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.stop == expected[-1].stop != "cancelled"
    text = lambda evs: "".join(e.text for e in evs if isinstance(e, Token))  # noqa: E731
    assert text(events) == text(expected)
    assert fin.gen_tokens == sum(e.n for e in events if isinstance(e, Token))


async def test_worker_starts_isolated_from_a_backends_folder_in_cwd(tmp_path, monkeypatch, smollm2_path):
    """A ``backends/`` package in the current directory (a user's own project) must not shadow
    abtop's: the worker is started by file path with ``python -I``."""
    bogus = tmp_path / "backends"
    (bogus / "engines").mkdir(parents=True)
    (bogus / "__init__.py").write_text("raise SystemExit('the bogus backends package was imported')\n")
    (bogus / "engines" / "__init__.py").write_text("")
    (bogus / "engines" / "llamacpp_worker.py").write_text("raise SystemExit('bogus worker')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # -I ignores it too
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=512, placement=Placement(threads=1))
    try:
        loaded = await b.load()
        cmdline = psutil.Process(loaded.pid).cmdline()
        events = await collect(b)
    finally:
        await b.close()
    assert "-I" in cmdline and any(a.endswith("llamacpp_worker.py") for a in cmdline)
    assert isinstance(events[-1], Finished) and events[-1].gen_tokens > 0


async def test_cancel_right_after_start_is_not_lost(smollm2_path):
    """Esc just after Enter: the cancel reaches the worker right behind ``gen``; it must stop
    that run, not be cleared when the worker takes the ``gen``."""
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=1024, placement=Placement(threads=1))
    try:
        await b.load()
        send = b.worker.send

        def send_then_cancel(**cmd):
            ok = send(**cmd)
            if cmd.get("cmd") == "gen":  # the Esc, in the same breath: both lines in the pipe at once
                send(cmd="cancel", run=cmd.get("run"))
            return ok

        b.worker.send = send_then_cancel
        events = await collect(b, STORY, max_tokens=400)
        b.worker.send = send
        again = await collect(b, max_tokens=4)  # a cancel for the last run does not touch this one
    finally:
        await b.close()
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.stop == "cancelled"
    assert fin.gen_tokens < 50
    assert isinstance(again[-1], Finished) and again[-1].stop != "cancelled" and again[-1].gen_tokens > 0


async def test_long_prompt_can_be_cancelled_while_it_is_processed(smollm2_path):
    """A ~2,000-token prompt is evaluated in batches of n_batch (512); a cancel that lands while
    they run stops between batches, before the first token."""
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=4096, placement=Placement(threads=1))
    prompt = " ".join(f"word{i}" for i in range(500))
    try:
        await b.load()
        events = []
        async for ev in b.stream(prompt, GenParams(max_tokens=64)):
            events.append(ev)
            if isinstance(ev, Started):
                assert ev.prompt_tokens > 1500
                await b.cancel()
    finally:
        await b.close()
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.stop == "cancelled"
    assert fin.gen_tokens == 0 and not any(isinstance(e, Token) for e in events)
    assert fin.engine.prompt_tokens < events[0].prompt_tokens  # stopped part-way through the prompt


async def test_stopped_worker_is_reported_not_responding(smollm2_path, monkeypatch):
    """SIGSTOP the worker mid-stream: no token and no CPU time for ABTOP_STALL_TIMEOUT seconds
    ends the run with one sentence naming the model; the stopped worker can be killed and loaded
    again."""
    monkeypatch.setenv("ABTOP_STALL_TIMEOUT", "1.5")
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=1024, placement=Placement(threads=1))
    try:
        loaded = await b.load()
        events = []

        async def run():
            async for ev in b.stream(STORY, GenParams(max_tokens=2000)):
                events.append(ev)
                if isinstance(ev, Token) and sum(isinstance(e, Token) for e in events) == 2:
                    os.kill(loaded.pid, signal.SIGSTOP)

        await asyncio.wait_for(run(), 60)  # bounded: a hang fails the test instead of blocking it
        last = events[-1]
        assert isinstance(last, Failed) and last.lost
        assert "smollm2-135m" in last.reason and "worker not responding" in last.reason
        assert psutil.Process(loaded.pid).status() == psutil.STATUS_STOPPED  # not killed behind the user's back
        await asyncio.wait_for(b.close(), 10)  # Enter: kill it, then load again
        assert not psutil.pid_exists(loaded.pid) or psutil.Process(loaded.pid).status() == psutil.STATUS_ZOMBIE
        again = await b.load()
        assert isinstance((await collect(b))[-1], Finished) and again.pid != loaded.pid
    finally:
        await b.close()


async def test_cancel_on_a_stopped_worker_ends_the_run(smollm2_path, monkeypatch):
    """Esc on a worker that does not answer (SIGSTOP): the run still ends, the worker is killed
    and the sentence says so."""
    monkeypatch.setenv("ABTOP_STALL_TIMEOUT", "600")  # the Esc, not the stall detector, ends it
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=1024, placement=Placement(threads=1))
    try:
        loaded = await b.load()
        events = []

        async def run():
            async for ev in b.stream(STORY, GenParams(max_tokens=2000)):
                events.append(ev)
                if isinstance(ev, Token) and sum(isinstance(e, Token) for e in events) == 2:
                    os.kill(loaded.pid, signal.SIGSTOP)
                    await b.cancel()

        await asyncio.wait_for(run(), 30)
        last = events[-1]
        assert isinstance(last, Failed) and last.lost
        assert "smollm2-135m" in last.reason and "killed" in last.reason
        assert await asyncio.wait_for(b.worker.proc.wait(), 10) == -signal.SIGKILL
    finally:
        await b.close()



async def test_score_and_eval_runs_end_cleanly_when_busy_abandoned_or_lost(smollm2_path):
    """Score and eval drive their worker runs through one loop: busy while a stream is open, a
    consumer that raises mid-score (the worker stops that run; the next score is unaffected), and
    a worker killed mid-score (one sentence, the death's)."""
    from backends.base import BackendError
    from backends.quality.bpb import reference_text

    text = reference_text()[:800]
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=256, placement=Placement(threads=2))
    try:
        await b.load()
        want = await b.score(text)
        stream = b.stream(STORY, GenParams(max_tokens=300))
        assert isinstance(await anext(stream), Started)
        with pytest.raises(BackendError, match="busy with a run; score it after"):
            await b.score(text)
        with pytest.raises(BackendError, match="busy with a run; run the eval after"):
            await b.evaluate([])
        await stream.aclose()

        def walk_away(done, total):
            raise Abandon

        with pytest.raises(Abandon):
            await b.score(text, progress=walk_away)
        again = await b.score(text)
        assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in want.items() if k != "seconds"}

        def kill(done, total):
            os.kill(b.loaded.pid, signal.SIGKILL)

        with pytest.raises(BackendError) as lost:
            await b.score(text, progress=kill)
        assert "smollm2-135m" in str(lost.value) and "\n" not in str(lost.value)
    finally:
        await b.close()


def test_stdout_lines_are_split_across_chunks_and_an_endless_line_is_cut_once():
    """The parent reads a worker's stdout in the loop's read callback (``_Lines``): a line split
    across reads is whole, the last line without a newline is still handed on at the end, and a
    line longer than the limit is cut once (its start kept as a log line), its tail dropped up to
    its newline, and the next line read as usual. The protocol fed by hand, as the loop feeds it."""
    from backends.engines.llamacpp_process import _Lines

    loop = asyncio.new_event_loop()
    try:
        got, ended = [], []
        p = _Lines(got.append, lambda: ended.append(True), 64, loop)
        for chunk in (b'{"ev":"tok","s":"he', b'llo"}\n{"ev":"tok"', b',"s":"!"}\n', b"x" * 50, b"y" * 50, b"z" * 50,
                      b'z\n{"ev":"done"}\n', b'{"ev":"last"}'):  # fmt: skip
            p.pipe_data_received(1, chunk)
        assert got[:2] == [b'{"ev":"tok","s":"hello"}', b'{"ev":"tok","s":"!"}']
        assert got[2].startswith(b"x" * 50) and b"cut" in got[2] and got[3:] == [b'{"ev":"done"}']
        p.pipe_connection_lost(1, None)
        assert got[-1] == b'{"ev":"last"}' and ended == [True]
    finally:
        loop.close()


async def test_a_late_end_of_an_earlier_worker_does_not_end_the_next(smollm2_path):
    """A worker's stdout may close a loop turn after its exit was seen and ``close()`` returned; a
    reload then spawns the next worker in the same ``WorkerProcess``. The old worker's end, heard
    then, must not tell the new one's load or runs that their worker is gone."""
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=512, placement=Placement(threads=1))
    try:
        await b.load()
        old = b.worker.proc._protocol
        await b.close()
        await b.load()
        old._on_end()  # what a late pipe_connection_lost of the first worker calls
        old._on_line(b'{"ev":"loaded","id":1}')
        assert not b.worker._eof and b.worker._replies.empty()
        events = await collect(b)
        assert isinstance(events[-1], Finished), events[-1]
    finally:
        await b.close()
