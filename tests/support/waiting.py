"""The one way a test waits: for an event, an awaitable or a condition, with a deadline that fails
with a sentence ("timed out waiting for <what> (N s)") instead of hanging or asserting a time.

The deadline only bounds a hang; it is never a measurement, so it is generous (a model loading on
a busy 2-core box): a test that needs a figure measures it (CPU time, counts of events), never how
long a wait took. Prefer an event (``asyncio.Event``, a worker's ``wait()``, a process's exit) to a
condition; a condition is polled, at ``poll`` seconds, letting the app run in between.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

TIMEOUT = 180.0
"""Seconds before a wait fails: long enough for two models to load on a busy box."""


class TimedOut(AssertionError):
    """A wait ran past its deadline; ``str()`` says what it was waiting for."""


def _sentence(what: str, timeout: float) -> str:
    return f"timed out waiting for {what} ({timeout:g} s)"


async def wait_for(
    on: asyncio.Event | threading.Event | Awaitable | Callable[[], Any],
    what: str,
    timeout: float = TIMEOUT,
    *,
    pilot=None,
    poll: float = 0.02,
) -> Any:
    """Wait in a coroutine (a Pilot test, an async backend test) until ``on`` happens.

    ``on`` is an ``asyncio.Event``, a ``threading.Event`` (waited for in a thread), an awaitable
    (its result is returned), or a callable polled until it returns something true (returned).
    With ``pilot``, each poll is a ``pilot.pause(poll)`` so the app draws and handles messages.
    """
    if isinstance(on, asyncio.Event):
        on = on.wait()
    elif isinstance(on, threading.Event):
        if not await asyncio.to_thread(on.wait, timeout):
            raise TimedOut(_sentence(what, timeout))
        return True
    if inspect.isawaitable(on):
        try:
            return await asyncio.wait_for(on, timeout)
        except TimeoutError:
            raise TimedOut(_sentence(what, timeout)) from None
    if not callable(on):
        raise TypeError(f"wait_for needs an event, an awaitable or a callable, not {type(on).__name__}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (got := on()):
        if loop.time() > deadline:
            raise TimedOut(_sentence(what, timeout))
        if pilot is not None:
            await pilot.pause(poll)
        else:
            await asyncio.sleep(poll)
    return got


def wait_until(on: threading.Event | Callable[[], Any], what: str, timeout: float = TIMEOUT, *, poll: float = 0.02) -> Any:
    """The same wait outside an event loop (a plain test, a fixture): blocks this thread."""
    if isinstance(on, threading.Event):
        if not on.wait(timeout):
            raise TimedOut(_sentence(what, timeout))
        return True
    deadline = time.monotonic() + timeout
    while not (got := on()):
        if time.monotonic() > deadline:
            raise TimedOut(_sentence(what, timeout))
        time.sleep(poll)
    return got
