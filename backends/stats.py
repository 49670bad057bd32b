"""Pure functions from events to the figures a person quotes.

Definitions (the same in the TUI, the bench and every export):

- ``ttft_s`` = first token time − request start (``Started.t``).
- ``gen_tps`` = (gen_tokens − 1) / (last token time − first token time): the first token's wait is
  prompt processing, so it is not a generation interval.
- ``gen_tps_engine`` = the engine's own counter (tokens / eval time), or None.
- ``prompt_tps`` = the engine's prompt tokens / prompt time when it reports one, else
  prompt_tokens / ttft_s (wall clock, which also holds the first sample); ``prompt_tps_source``
  says which.
- ``itl_*_ms`` = inter-token latency: the gap between consecutive token events, divided by the
  tokens the later one carries.
- ``chars_per_s`` = characters after the first token / (last − first token time): a
  tokenizer-neutral speed (two tokenizers' tokens are not the same size).
- ``energy_j_per_token`` = joules over the generation window (first → last token) / (gen_tokens
  − 1): GPU power (NVML) for a model holding GPU memory, else CPU package energy (RAPL); None
  with the reason in ``energy_note``. In race mode (``shared_energy``) both counters measure the
  whole socket or GPU that both models draw on at once: neither model's, so None, and the note
  says so (alternate mode measures each model alone).
- ``roofline_pct`` = gen_tps × bytes read per token / the host's measured read bandwidth, in %.

The machine's context (bytes per token, bandwidth, why RAPL is unreadable) is passed in to
``result()``: this module reads no sensor and no file.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import numpy as np

from backends.events import Event, Failed, Finished, Sample, Started, Token
from backends.telemetry.hardware import counter_joules, energy_per_token, roofline_pct

RUN_FIELDS = (
    "ttft_s", "prompt_tokens", "prompt_tps", "gen_tokens", "gen_tps", "gen_tps_engine",
    "itl_p50_ms", "itl_p99_ms", "wall_s", "chars", "chars_per_s", "peak_rss_bytes",
    "peak_anon_bytes", "weights_resident_bytes", "cpu_percent_mean", "gpu_util_mean",
    "vram_peak_bytes", "energy_j_per_token", "energy_note", "roofline_pct", "prompt_cache_tokens", "ttft_note",
    "stop", "probe", "working_set_note", "text", "error",
)  # fmt: skip
SUMMARY_FIELDS = (
    "ttft_s", "prompt_tps", "gen_tps", "gen_tps_engine", "chars_per_s", "itl_p50_ms",
    "peak_rss_bytes", "peak_anon_bytes", "weights_resident_bytes",
)  # fmt: skip


SHARED_ENERGY = (
    "n/a: race mode, the models share the CPU package and GPU whose energy is counted; "
    "alternate mode measures each alone"
)


def percentile(values: list[float], q: float) -> float | None:
    """numpy's q-th percentile (0–100), linear interpolation between the closest ranks (numpy's
    default, spelled out); None for no values."""
    return float(np.percentile(values, q, method="linear")) if values else None


def rate(count: float | None, seconds: float | None) -> float | None:
    if count is None or not seconds or seconds <= 0 or count <= 0:
        return None
    return count / seconds


@dataclass
class RunCollector:
    """Accumulates one run's events; ``result()`` gives the run's figures."""

    run: int = 0
    warmup: bool = False
    probe: bool = False
    t_start: float | None = None
    t_end: float | None = None
    prompt_tokens: int | None = None
    token_times: list[float] = field(default_factory=list)
    itl_s: list[float] = field(default_factory=list)
    n_tokens: int = 0
    parts: list[str] = field(default_factory=list)
    first_chars: int = 0
    finished: Finished | None = None
    error: str | None = None
    samples: list[Sample] = field(default_factory=list)

    def add(self, ev: Event) -> None:
        if isinstance(ev, Token):
            self.parts.append(ev.text)
            if ev.n <= 0:  # a trailing text fragment, no token of its own
                return
            if self.token_times:
                self.itl_s.append((ev.t - self.token_times[-1]) / ev.n)
            else:
                self.first_chars = len(ev.text)
            self.token_times.append(ev.t)
            self.n_tokens += ev.n
        elif isinstance(ev, Sample):
            self.samples.append(ev)
        elif isinstance(ev, Started):
            self.t_start, self.prompt_tokens, self.run, self.warmup = ev.t, ev.prompt_tokens, ev.run, ev.warmup
            self.probe = ev.probe
        elif isinstance(ev, Finished):
            self.finished, self.t_end = ev, ev.t
            if ev.engine and ev.engine.prompt_tokens and not self.prompt_tokens:
                self.prompt_tokens = ev.engine.prompt_tokens
        elif isinstance(ev, Failed):
            self.error, self.t_end = ev.reason, ev.t

    # -- live figures (the pane's stats line while streaming) ---------------------------------
    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def gen_tokens(self) -> int:
        if self.finished and self.finished.gen_tokens is not None:
            return self.finished.gen_tokens
        return self.n_tokens

    @property
    def ttft_s(self) -> float | None:
        if self.t_start is None or not self.token_times:
            return None
        return self.token_times[0] - self.t_start

    @property
    def gen_tps(self) -> float | None:
        if len(self.token_times) < 2:
            return None
        return rate(self.gen_tokens - 1, self.token_times[-1] - self.token_times[0])

    def elapsed(self, at: float) -> float | None:
        if self.t_start is None:
            return None
        return (self.t_end or at) - self.t_start

    # -- the run's figures ---------------------------------------------------------------------
    def _window(self) -> list[Sample]:
        if self.t_start is None:
            return []
        end = self.t_end if self.t_end is not None else math.inf
        inside = [s for s in self.samples if self.t_start <= s.t <= end]
        if inside:
            return inside
        before = [s for s in self.samples if s.t <= end]
        return before[-1:]  # a run shorter than one sampling interval: the latest reading

    def energy(self, note: str | None = None, shared: bool = False) -> tuple[float | None, str]:
        """(J/token, source or reason) over the generation window; ``note``: why RAPL is unreadable;
        ``shared``: another model ran at the same time (race mode)."""
        if shared:
            return None, SHARED_ENERGY
        if len(self.token_times) < 2:
            return None, "n/a: fewer than two tokens generated"
        t0, t1 = self.token_times[0], self.token_times[-1]
        cpu_j = counter_joules(((s.t, s.cpu_energy_j) for s in self.samples), t0, t1)
        if cpu_j is None and any(s.cpu_energy_j is not None for s in self.samples):
            note = "n/a: the generation was shorter than the sampling interval"
        return energy_per_token(self.samples, t0, t1, self.gen_tokens - 1, cpu_j, note)

    def result(
        self,
        *,
        bytes_per_token: int | None = None,
        bandwidth_gbs: float | None = None,
        energy_note: str | None = None,
        shared_energy: bool = False,
    ) -> dict:
        """The run's figures; the keywords give the energy and roofline their context (see top)."""
        eng = self.finished.engine if self.finished else None
        ttft = self.ttft_s
        if eng and eng.prompt_tokens and eng.prompt_ms:
            prompt_tps, source = rate(eng.prompt_tokens, eng.prompt_ms / 1000), eng.source
        else:
            prompt_tps, source = rate(self.prompt_tokens, ttft), "wall clock"
        span = self.token_times[-1] - self.token_times[0] if len(self.token_times) > 1 else None
        text = self.text
        window = self._window()
        energy = self.energy(energy_note, shared_energy)
        cached = eng.cache_tokens if eng else None

        def peak(name: str) -> int | None:
            vals = [getattr(s, name) for s in window if getattr(s, name) is not None]
            return max(vals) if vals else None

        def mean(name: str) -> float | None:
            vals = [getattr(s, name) for s in window if getattr(s, name) is not None]
            return statistics.fmean(vals) if vals else None

        return {
            "run": self.run,
            "warmup": self.warmup,
            "ttft_s": ttft,
            "prompt_tokens": self.prompt_tokens,
            "prompt_tps": prompt_tps,
            "prompt_tps_source": source,
            "gen_tokens": self.gen_tokens if self.token_times else 0,
            "gen_tps": self.gen_tps,
            "gen_tps_engine": rate(eng.gen_tokens, eng.gen_ms / 1000) if eng and eng.gen_ms else None,
            "engine_source": eng.source if eng else None,
            "itl_p50_ms": _ms(percentile(self.itl_s, 50)),
            "itl_p99_ms": _ms(percentile(self.itl_s, 99)),
            "wall_s": self.elapsed(self.t_end) if self.t_end is not None else None,
            "chars": len(text),
            "chars_per_s": rate(len(text) - self.first_chars, span),
            "tokens_per_100_chars": 100 * self.gen_tokens / len(text) if text else None,
            "peak_rss_bytes": peak("rss_bytes"),
            "peak_anon_bytes": peak("anon_bytes"),
            "weights_resident_bytes": peak("weights_resident_bytes"),
            "cpu_percent_mean": mean("cpu_percent"),
            "gpu_util_mean": mean("gpu_util"),
            "vram_peak_bytes": peak("vram_bytes"),
            "energy_j_per_token": energy[0],
            "energy_note": energy[1],
            "roofline_pct": roofline_pct(self.gen_tps, bytes_per_token, bandwidth_gbs),
            "prompt_cache_tokens": cached,
            "ttft_note": f"prompt cache reused {cached} tokens: TTFT not comparable" if cached else None,
            "stop": self.finished.stop if self.finished else None,
            "probe": self.probe,
            "working_set": self.finished.working_set if self.finished else None,
            "working_set_note": self.finished.working_set_note if self.finished else None,
            "text": text,
            "error": self.error,
        }


class Runs:
    """One model's event stream cut into runs: the TUI's pane and ``bench`` both feed it, so a
    figure on screen and the same figure in an export come from one place.

    Each run's ``RunCollector`` is seeded with the last telemetry sample before its ``Started``:
    a run shorter than one sampling interval still has its memory figures (the reading that was
    on screen while it ran), not None."""

    def __init__(self) -> None:
        self.current: RunCollector | None = None
        """The run in flight."""
        self.last_sample: Sample | None = None

    def add(self, ev: Event, *, loaded: bool = True) -> RunCollector | None:
        """Take one event; the collector of the run it ended (``Finished``/``Failed``), else None.

        A ``Failed`` outside a run ends a run of its own when the model was ``loaded`` (its
        worker was lost between runs: the next run fails before it starts); before that it is a
        load failure, no run, and None is returned."""
        cur = self.current
        if isinstance(ev, Sample):
            self.last_sample = ev
            if cur is not None:
                cur.add(ev)
        elif isinstance(ev, Token):
            if cur is not None:
                cur.add(ev)
        elif isinstance(ev, Started):
            cur = self.current = RunCollector()
            if self.last_sample is not None:
                cur.add(self.last_sample)
            cur.add(ev)
        elif isinstance(ev, (Finished, Failed)):
            if cur is None:
                if isinstance(ev, Finished) or not loaded:
                    return None
                cur = RunCollector()
            cur.add(ev)
            self.current = None
            return cur
        return None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def summarize(runs: list[dict]) -> dict:
    """Median, min and max of the rates, TTFT and memory over the counted runs (not warm-ups,
    working-set probes, failed or cancelled runs)."""
    counted = [
        r
        for r in runs
        if not r.get("warmup") and not r.get("probe") and not r.get("error") and r.get("stop") != "cancelled"
    ]
    out: dict[str, dict | None] = {}
    for name in SUMMARY_FIELDS:
        vals = [r[name] for r in counted if r.get(name) is not None]
        out[name] = (
            {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)} if vals else None
        )
    return out
