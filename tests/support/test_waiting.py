"""The tests' one way to wait (tests/support/waiting.py): each kind of thing it waits on, and the sentence
a wait that runs out says."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.support.waiting import TimedOut, wait_for, wait_until


async def test_waits_for_an_event_an_awaitable_and_a_condition():
    ready = asyncio.Event()
    asyncio.get_running_loop().call_soon(ready.set)
    await wait_for(ready, "the event")

    async def answer() -> int:
        return 42

    assert await wait_for(answer(), "the answer") == 42
    done = threading.Event()
    threading.Thread(target=done.set).start()
    assert await wait_for(done, "the thread") is True
    calls = []
    assert await wait_for(lambda: calls.append(1) or len(calls) >= 3 and "third", "the third call", poll=0) == "third"


async def test_a_wait_that_runs_out_says_what_it_waited_for():
    with pytest.raises(TimedOut, match=r"^timed out waiting for the models to load \(0.05 s\)$"):
        await wait_for(asyncio.Event(), "the models to load", 0.05)
    with pytest.raises(TimedOut, match="waiting for a reply"):
        await wait_for(asyncio.Future(), "a reply", 0.05)
    with pytest.raises(TimedOut, match="waiting for a flag"):
        await wait_for(threading.Event(), "a flag", 0.05)
    with pytest.raises(TimedOut, match="waiting for never"):
        await wait_for(lambda: False, "never", 0.05)


def test_blocking_waits_outside_a_loop():
    done = threading.Event()
    threading.Thread(target=done.set).start()
    assert wait_until(done, "the thread") is True
    calls = []
    assert wait_until(lambda: calls.append(1) or len(calls) >= 2, "the second call", poll=0)
    with pytest.raises(TimedOut, match=r"^timed out waiting for nothing \(0.05 s\)$"):
        wait_until(lambda: None, "nothing", 0.05)
    with pytest.raises(TimedOut, match="waiting for a flag"):
        wait_until(threading.Event(), "a flag", 0.05)
