"""``abtop fit --check``: build the model at a context, fill it, generate, and measure what it held.

The model loads in abtop's worker as every run does; the context is filled with random tokens
(untimed, as ``bench --depth`` and ``llama-bench -d`` do) up to the last few cells, then the
working-set probe evicts the model file's pages and the model generates (sampled at temperature 1,
so an MoE's routing moves as a real model's does; greedy decoding on random weights repeats one
token). Measured, from ``/proc`` every 0.1 s:

- peak anonymous memory (repacked weights, KV cache, compute buffers as touched, runtime);
- the model file's pages that came back while generating (what the weights need), and the
  file's resident pages at their peak (what llama.cpp pre-faults at load);
- the runtime's own file pages (libraries): the process's file pages less the model's;
- llama.cpp's KV buffer as allocated (its load log), against the header's prediction;
- on a GPU, the process's VRAM at its peak (NVML), against the predicted VRAM.

``least_ram_bytes`` measured = peak anonymous + pages the weights needed + the runtime's file pages.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable

from backends.base import BackendError, GenParams
from backends.catalog import make_backend
from backends.events import Failed, Finished, Started, Token
from backends.specs import ModelSpec
from backends.telemetry.memmaps import WeightsResident, read_status
from backends.telemetry.nvml import Nvml, NvmlLost

PROMPT = "The"
MARGIN = 16
"""Cells left free beyond the fill and the generated tokens, for the prompt (BOS and a word)."""
TEMPERATURE = 1.0


class _Monitor:
    """Samples one process's memory on a thread until stopped: peak anonymous and model pages."""

    def __init__(self, pid: int, path: str, every: float = 0.1) -> None:
        self.pid, self.every = pid, every
        self.weights = WeightsResident(pid, path)
        self.peak_anon = self.peak_weights = 0
        self.nvml = Nvml.open()
        self.peak_vram: int | None = None
        """The process's GPU memory at its peak (NVML); None without a GPU."""
        self.cpu0 = self._cpu()
        self.t0 = time.monotonic()
        self.load0 = os.getloadavg()[0]
        self._stop = threading.Event()
        self._n = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _cpu(self) -> float | None:
        try:
            with open(f"/proc/{self.pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def read(self) -> dict:
        st = read_status(self.pid)
        self.peak_anon = max(self.peak_anon, int(st.get("RssAnon", 0)))
        if self._n % 10 == 0:  # pagemap over the whole file: ~3 ms per GB, once a second
            self.peak_weights = max(self.peak_weights, self.weights.read())
            if self.nvml is not None:
                try:
                    vram = self.nvml.read(self.pid).vram
                except NvmlLost:
                    self.nvml = None
                    vram = None
                if vram is not None:
                    self.peak_vram = max(self.peak_vram or 0, vram)
        self._n += 1
        return st

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.read()
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        if self.nvml is not None and not self._thread.is_alive():
            self.nvml.close()
            self.nvml = None

    def stop(self) -> dict:
        """The last reading: ``{anon, file, weights, cpu_s, wall_s, load1_start, load1_end}``."""
        self._stop.set()
        self._thread.join()
        st = self.read()
        weights = self.weights.read()
        cpu = self._cpu()
        with open(f"/proc/{self.pid}/status", "rb") as f:
            rss_file = next((int(ln.split()[1]) * 1024 for ln in f if ln.startswith(b"RssFile:")), 0)
        return {
            "anon": int(st.get("RssAnon", 0)),
            "file": rss_file,
            "weights": weights,
            "cpu_s": None if cpu is None or self.cpu0 is None else cpu - self.cpu0,
            "wall_s": time.monotonic() - self.t0,
            "load1_start": self.load0,
            "load1_end": os.getloadavg()[0],
        }


async def _heartbeat(say: Callable[[float], None], every: float = 60.0) -> None:
    """A line every minute while a long fill says nothing."""
    t0 = time.monotonic()
    while True:
        await asyncio.sleep(every)
        say(time.monotonic() - t0)


async def check(
    spec: ModelSpec,
    ctx: int,
    *,
    gen_tokens: int = 64,
    lazy_ple: str | None = None,
    repack: bool | None = None,
    flash_attn: str | None = None,
    progress: Callable[[str], None] = lambda _s: None,
) -> dict:
    """Measure one local model at ``ctx``; ``BackendError`` (one sentence) when it cannot run."""
    b = make_backend(spec, n_ctx=ctx, lazy_ple=lazy_ple, repack=repack, flash_attn=flash_attn)
    name = spec.text
    mon: _Monitor | None = None
    beat: asyncio.Task | None = None
    try:
        progress(f"{name}: loading at --ctx {ctx}…")
        t0 = time.monotonic()
        lo = await b.load()
        load_s = time.monotonic() - t0
        mon = await asyncio.to_thread(_Monitor, lo.pid, lo.weights_path or b.path)
        fill = max(0, (lo.n_ctx or ctx) - gen_tokens - MARGIN)
        progress(f"{name}: filling {fill:,} tokens of context (untimed)…")
        params = GenParams(max_tokens=gen_tokens, temperature=TEMPERATURE, seed=42, working_set=True, depth=fill,
                           send_every_s=0.25)  # fmt: skip
        fin = None
        t_fill = time.monotonic()
        fill_s = gen_n = 0
        beat = asyncio.create_task(_heartbeat(lambda s: progress(f"{name}: still filling ({s:.0f} s)…")))
        async for ev in b.stream(PROMPT, params):
            if isinstance(ev, Started):
                beat.cancel()
                fill_s = time.monotonic() - t_fill
                progress(f"{name}: filled in {fill_s:.0f} s; generating {gen_tokens} tokens from evicted weights…")
            elif isinstance(ev, Token):
                gen_n += ev.n
            elif isinstance(ev, Finished):
                fin = ev
            elif isinstance(ev, Failed):
                raise BackendError(ev.reason)
        end = await asyncio.to_thread(mon.stop)
    finally:
        if beat is not None:
            beat.cancel()
        if mon is not None:
            mon.close()
        await b.close()
    ws = fin.working_set if fin else None
    needed = ws.get("resident_bytes") if ws else None
    runtime_file = max(0, end["file"] - end["weights"])
    least = None if needed is None else mon.peak_anon + needed + runtime_file
    context = lo.context or {}
    buffers = lo.buffers or {}
    return {
        "ctx": ctx,
        "n_ctx": lo.n_ctx,
        "fill_tokens": fill,
        "gen_tokens": fin.gen_tokens if fin and fin.gen_tokens is not None else gen_n,
        "temperature": TEMPERATURE,
        "load_s": round(load_s, 2),
        "fill_s": round(fill_s, 2),
        "peak_anon_bytes": mon.peak_anon,
        "weights_resident_peak_bytes": mon.peak_weights,
        "weights_needed_bytes": needed,
        "weights_needed_note": None if needed is not None else (fin.working_set_note if fin else "no run finished"),
        "runtime_file_bytes": runtime_file,
        "least_ram_bytes": least,
        "kv_engine_bytes": context.get("kv_bytes") if context.get("kv_bytes") is not None else buffers.get("kv"),
        "kv_swa_cells": context.get("swa_cells"),
        "kv_layers": context.get("kv_layers"),
        "compute_reserved_bytes": buffers.get("compute"),
        "repacked_engine_bytes": max(0, buffers.get("model", 0) - buffers.get("model_mapped", 0)) or 0,
        "repacked_tensors": list(getattr(b, "repacked_tensors", []) or []),
        "vram_peak_bytes": mon.peak_vram,
        "offloaded_engine_bytes": buffers.get("offloaded"),
        "working_set": ws,
        "box": {
            "worker_cpu_s": None if end["cpu_s"] is None else round(end["cpu_s"], 1),
            "wall_s": round(end["wall_s"], 1),
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "load1_start": round(end["load1_start"], 2),
            "load1_end": round(end["load1_end"], 2),
        },
    }
