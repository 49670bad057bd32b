"""The contract every engine adapter fulfils.

An adapter turns one model spec into events (see ``events.py``):

- ``load()`` makes the model ready and answers ``Loaded``; a user mistake (missing file, not a
  GGUF, server unreachable) raises ``BackendError`` whose message is one sentence naming the
  model and what to try. Nothing else may escape ``load()`` or ``stream()`` for a user mistake.
- ``stream(prompt, params)`` is an async iterator: ``Started``, ``Token``\\ s, then exactly one
  ``Finished`` or ``Failed``. It never raises; a failure is a ``Failed`` event.
- ``cancel()`` stops the stream in flight at once (the iterator then ends with
  ``Finished(stop="cancelled")``); ``close()`` releases everything and leaves no process behind.
- ``report`` is how ``load()`` says what happens before ``Loaded`` (``Progress`` of a download
  or a pull, a ``Note`` naming the file chosen); the session points it at its ``emit``. Called on
  the event loop's thread only.
- ``place(placement)`` moves a local engine onto given cores and thread count between runs
  (race mode splits the cores, alternate mode gives each model all of them in turn); the session
  sets ``placement`` before ``load()`` for an engine with ``local_process``.
- ``kill_now()`` is the synchronous last resort of exit paths (no event loop left to await on).

Capabilities are class flags with defaults here, so callers ask instead of guessing
(``getattr`` on an engine is a contract leak).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import ClassVar

from backends.events import Event, Loaded


class BackendError(Exception):
    """A failure a person can act on; ``str()`` is one sentence."""


@dataclass(frozen=True, slots=True)
class GenParams:
    """Sampling settings, the same for both panes. Temperature 0 and a fixed seed by default."""

    max_tokens: int = 128
    temperature: float = 0.0
    seed: int = 42
    working_set: bool = False
    """Probe the weights' working set during this run (local GGUF on Linux; see ``card/workingset``)."""
    depth: int = 0
    """Tokens of context put in the KV cache before the prompt, untimed (llama-bench's ``-d``):
    the prompt and generation are then measured at that depth. Local models only."""
    send_every_s: float = 0.1
    """How often a local worker sends its tokens (each keeps the timestamp it was made at, so no
    figure changes). A pane draws a frame per batch (10 a second); a headless bench needs far
    fewer, and every send wakes the parent on the cores the model computes on."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Threads and CPU affinity for a local engine. ``None`` leaves that setting alone."""

    threads: int | None = None
    cpus: tuple[int, ...] | None = None


class Backend(abc.ABC):
    kind: ClassVar[str] = "?"
    """Engine name shown in the pane header: "llama.cpp", "openai", "ollama"."""
    local_process: ClassVar[bool] = False
    """True when abtop owns the model's process (it can place it and sample it)."""
    can_pull: ClassVar[bool] = False
    """True when a model the server lacks can be fetched onto it (Ollama's /api/pull): the engine
    sets ``missing`` when its load found the model absent, and pulls first when ``pull`` is set;
    ``pull_offer`` is how the front end offers it ("press p to pull it here"), said in the sentence."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.loaded: Loaded | None = None
        self.placement = Placement()
        """Where a ``local_process`` engine runs (threads, cores); others keep the empty one."""
        self.report: Callable[[Event], None] = lambda ev: None
        self.pull = False
        self.missing = False
        self.pull_offer: str | None = None
        self.settings: tuple[tuple[str, str], ...] = ()
        """The spec's own settings (``SPEC,key=value``), as ``specs.split_settings`` gives them."""

    @property
    def full_spec(self) -> str:
        """The spec as given, its own settings included (``gemma3-270m,kv=q8_0``)."""
        return ",".join([self.spec, *(f"{k}={v}" for k, v in self.settings)])

    @property
    def label(self) -> str:
        return self.loaded.info.name if self.loaded else self.spec

    @abc.abstractmethod
    async def load(self) -> Loaded: ...

    @abc.abstractmethod
    def stream(self, prompt: str, params: GenParams) -> AsyncIterator[Event]: ...

    @abc.abstractmethod
    async def cancel(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def place(self, placement: Placement) -> None:  # noqa: B027 - optional capability
        """Move the engine onto ``placement``; engines we do not own ignore it."""

    async def share_pages(self, release: bool) -> None:  # noqa: B027 - optional capability
        """``release``: drop this process's mapping of its weights file (another process maps the
        same file for a working-set probe); False: read it back in. Engines without one ignore it."""

    def kill_now(self) -> None:  # noqa: B027 - optional capability
        """Kill the engine's own process at once, synchronously; engines that own none do nothing."""

    @property
    def pid(self) -> int | None:
        """The process to sample for CPU and memory, when there is one on this machine."""
        return self.loaded.pid if self.loaded else None
