"""The one event vocabulary every engine speaks.

A pane, the bench and the recorder see only these classes, never an engine. Every event carries
``t``, a ``time.monotonic()`` reading taken where the thing happened (in the worker process for a
local model, on response arrival for a server). CLOCK_MONOTONIC is system-wide on Linux and macOS,
so times taken in a worker process compare directly with times taken here, and IPC or UI delays
never distort a rate.

A stream is: ``Started``, then ``Token``\\ s, then exactly one ``Finished`` or ``Failed``.
``Loaded`` is answered by ``Backend.load()``; ``Sample`` comes from the telemetry samplers;
``Note`` tells a pane something that is not an error (waiting for its turn, a warm-up run).
``Progress`` comes during ``load()`` while a model is fetched first (a Hugging Face download, an
Ollama pull): bytes done of total, the rate and what is left, computed where the bytes arrive.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Union


def now() -> float:
    """The clock every event uses."""
    return time.monotonic()


@dataclass(slots=True)
class ModelInfo:
    """What a model is, from its GGUF header or its server's model card. Unknown is ``None``."""

    name: str
    arch: str | None = None
    params: int | None = None
    quant: str | None = None
    file_bytes: int | None = None
    n_ctx_train: int | None = None
    chat_template: bool | None = None
    n_layers: int | None = None
    n_embd: int | None = None
    n_head: int | None = None
    n_head_kv: int | None = None
    """Attention heads that hold K/V (fewer than ``n_head`` with grouped-query attention)."""
    n_vocab: int | None = None
    path: str | None = None
    params_effective: int | None = None
    """Total parameters less a per-layer embedding table that is only looked up."""
    ple: dict | None = None
    """``{"params": int, "bytes": int}`` for per-layer embeddings (gemma3n, gemma4), else None."""
    moe: dict | None = None
    """``{"experts": int, "experts_used": int, "params_active": int}`` for mixture-of-experts."""
    bytes_per_token: int | None = None
    """Estimated weight bytes read per generated token (looked-up tables excluded)."""
    placement: str | None = None
    """Where a server keeps the model, e.g. "100% GPU" or "48%/52% CPU/GPU" (Ollama's /api/ps)."""
    gguf_name: str | None = None
    """The GGUF's own ``general.name`` when ``name`` is another (the file name a person gave)."""
    synthetic: bool = False
    """A shape twin (``twin:NAME``): the real model's shapes with random weights; its text is noise."""
    twin: dict | None = None
    """For a shape twin, the model it copies and that model's published figures: ``{"preset",
    "title", "source", "scale", "published_total", "published_other", "other_label",
    "not_in_gguf", "not_in_gguf_what"}`` (``not_in_gguf``: parameters the published total counts
    that a text GGUF does not hold, e.g. Gemma 4's vision and audio encoders in llama.cpp's mmproj
    file; ``not_in_gguf_what`` says which)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class EngineTimings:
    """The engine's own counters for one request (llama_perf_context, llama-server, Ollama)."""

    source: str
    prompt_tokens: int | None = None
    prompt_ms: float | None = None
    gen_tokens: int | None = None
    gen_ms: float | None = None
    load_ms: float | None = None
    cache_tokens: int | None = None
    """Prompt tokens the server took from its prompt cache instead of processing them
    (llama-server's ``timings.cache_n``): a TTFT with them is not comparable."""


@dataclass(slots=True)
class Loaded:
    info: ModelInfo
    t: float
    backend: str
    """"llama.cpp", "openai" or "ollama"."""
    load_s: float
    pid: int | None = None
    """The process whose CPU and memory belong to this model (worker or local server)."""
    threads: int | None = None
    cpus: list[int] | None = None
    completion_mode: bool = False
    """True when the model has no chat template and runs plain completion."""
    n_ctx: int | None = None
    weights_path: str | None = None
    """The GGUF file whose resident pages count as weights."""
    buffers: dict | None = None
    """llama.cpp's planned bytes ``{model, model_mapped, kv, compute, output, offloaded}`` from its
    load log (``llamalog.parse_buffers``); None for a server."""
    lazy_ple: str | None = None
    """llama.cpp's ``lazy_mode`` the model was loaded with (``on``, ``off``, ``auto``); None: a server."""
    repack: bool | None = None
    """Whether llama.cpp may repack weights into ``CPU_REPACK`` buffers; None: a server."""
    context: dict | None = None
    """The context llama.cpp built, from its load log (``llamalog.parse_context``): ``flash_attn``
    (the setting: auto/enabled/disabled) and ``flash_attn_on`` (what it resolved to), ``n_batch``,
    ``n_ubatch``, ``type_k``, ``type_v``, ``kv_layers``, ``kv_bytes_per_token``, ``kv_bytes``,
    ``swa_cells``, ``swa_full``, ``mmap``, ``mlock``; None for a server."""
    settings: dict | None = None
    """Every load setting the engine took, whether the spec's own or a default, by the spec keys
    (``ctx``, ``threads``, ``flash-attn``, ``lazy-ple``, ``repack``, ``kv-k``, ``kv-v``, ``ngl``,
    ``n-cpu-moe``, ``mmap``, ``mlock``), and ``gpu_offload``: whether this build can offload at
    all (without it ``ngl``/``n-cpu-moe`` are recorded, all layers stay on the CPU); None: a server."""


@dataclass(slots=True)
class Started:
    t: float
    prompt_tokens: int | None = None
    run: int = 0
    warmup: bool = False
    probe: bool = False
    """A working-set probe run: its pages start evicted, so it is never a speed figure."""
    mode: str | None = None
    """"race" or "alternate": how the run shared the box (set by the session; None in old recordings)."""


@dataclass(slots=True)
class Token:
    text: str
    t: float
    n: int = 1
    """Tokens in this piece: a server chunk may carry several."""


@dataclass(slots=True)
class Finished:
    t: float
    stop: str
    """"eos", "length", "context full" or "cancelled"."""
    gen_tokens: int | None = None
    """Tokens generated, as the engine counts them (None: count the Token events)."""
    engine: EngineTimings | None = None
    working_set: dict | None = None
    """A probed run's weights working set (``backends/card/workingset.py``): ``{"groups": {NAME:
    {"bytes", "touched_bytes", "repacked"}}, "curve": [[tokens, touched_bytes], …], "note"}``."""
    working_set_note: str | None = None
    """Why a probed run has no ``working_set`` (not Linux, a server, pages that could not be evicted)."""


@dataclass(slots=True)
class Failed:
    reason: str
    """One sentence for a person: which model, what went wrong, what to try."""
    t: float = field(default_factory=now)
    lost: bool = False
    """The worker died (killed, OOM): the model must be loaded again."""


@dataclass(slots=True)
class Sample:
    """One telemetry reading of a model's process and GPU. A sensor that is missing is None."""

    t: float
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    anon_bytes: int | None = None
    weights_resident_bytes: int | None = None
    uss_bytes: int | None = None
    gpu_util: float | None = None
    vram_bytes: int | None = None
    """This process's GPU memory."""
    gpu_mem_used_bytes: int | None = None
    gpu_power_w: float | None = None
    gpu_temp_c: float | None = None
    cpu_energy_j: float | None = None
    """CPU package energy (RAPL, whole socket) since the sampler started: a counter, not a rate."""
    note: str | None = None
    """Why a figure is missing ("no GPU", "remote", …)."""
    server: dict | None = None
    """What a remote server says about itself (Prometheus ``/metrics``, Ollama ``/api/ps``), see
    ``remote.ServerMetrics``: gen_tps, prompt_tps, kv_cache_used (0–1), requests_running, …"""


@dataclass(slots=True)
class Note:
    """A line for a pane that is not a figure ("waiting: … runs alone"); an empty text clears it."""

    text: str
    t: float = field(default_factory=now)


@dataclass(slots=True)
class Progress:
    """A fetch in flight before a model can load: a download or an Ollama pull."""

    what: str
    """What is fetched ("Qwen2.5-3B-Instruct-Q4_K_M.gguf", "pulling 6a0746a1ec1a")."""
    done: int = 0
    """Bytes so far."""
    total: int | None = None
    """Bytes in all, when known."""
    rate: float | None = None
    """Bytes per second since this fetch started (None until a rate can be told)."""
    t: float = field(default_factory=now)
    finished: bool = False

    @property
    def eta_s(self) -> float | None:
        if self.total is None or not self.rate:
            return None
        return max(self.total - self.done, 0) / self.rate


Event = Union[Loaded, Started, Token, Finished, Failed, Sample, Note, Progress]

_TYPES: dict[str, type] = {
    c.__name__: c for c in (Loaded, Started, Token, Finished, Failed, Sample, Note, Progress)
}


_SAMPLE_FIELDS = tuple(f.name for f in dataclasses.fields(Sample))


def to_dict(event: Event) -> dict[str, Any]:
    """A JSON-ready dict with a ``type`` key (used by the recorder and the exports)."""
    if type(event) is Token:  # tens a second into a recording: ``asdict``'s deep copy was most of a line's cost
        return {"text": event.text, "t": event.t, "n": event.n, "type": "Token"}
    if type(event) is Sample and event.server is None:  # every reading: its fields are all numbers or text
        d = {name: getattr(event, name) for name in _SAMPLE_FIELDS}
        d["type"] = "Sample"
        return d
    d = dataclasses.asdict(event)
    d["type"] = type(event).__name__
    return d


def from_dict(d: dict[str, Any]) -> Event:
    d = dict(d)
    cls = _TYPES[d.pop("type")]
    if cls is Loaded:
        d["info"] = ModelInfo(**d["info"])
    if cls is Finished and d.get("engine") is not None:
        d["engine"] = EngineTimings(**d["engine"])
    return cls(**d)
