"""A blocking call that may never return, kept off the event loop and out of the way of quitting.

Opening a model file can block for good: a FIFO that nothing writes to, a file on a network
filesystem whose server went away. ``asyncio.to_thread`` runs the call in the loop's executor,
whose threads are joined when the loop closes and again at interpreter exit, so a call that never
returns holds the process after its last line (``q`` blanked the screen and hung; ``bench`` lived
on after SIGTERM). ``off_loop`` runs it in a daemon thread of its own: cancelling the await leaves
the thread behind, blocked, and the process exits without it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _settle(fut: asyncio.Future, result=None, exc: BaseException | None = None) -> None:
    if fut.done():  # cancelled: nobody waits for it any more
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


async def off_loop(
    fn: Callable[..., T], *args, slow_s: float | None = None, on_slow: Callable[[], None] | None = None
) -> T:
    """``fn(*args)`` in a daemon thread; its result or its exception. ``on_slow()`` is called on
    the loop if it has not returned after ``slow_s`` seconds."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()

    def run() -> None:
        try:
            result, exc = fn(*args), None
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task as it is
            result, exc = None, e
        try:
            loop.call_soon_threadsafe(_settle, fut, result, exc)
        except RuntimeError:  # the loop is closed: the process is on its way out
            pass

    threading.Thread(target=run, name=f"abtop-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    timer = loop.call_later(slow_s, on_slow) if slow_s is not None and on_slow is not None else None
    try:
        return await fut
    finally:
        if timer is not None:
            timer.cancel()
