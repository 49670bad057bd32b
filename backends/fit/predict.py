"""Per model and context: what must stay resident, what may stay paged out, the least RAM to run
without paging, and a verdict against a RAM (and VRAM) budget.

The terms (bytes):

- ``weights_file``: every-token tensors read from their file pages (``weights.every_file``) plus
  the rows the looked-up tables bring back for the run's tokens;
- ``repacked``: the anonymous copies llama.cpp reads instead of the file (anonymous memory has no
  file to page back from: without swap it stays resident, cold experts included);
- ``kv``: the KV cache as llama.cpp sizes it (``kvsize``; all of it is touched at load: llama.cpp
  clears the buffer), else the engine's plan;
- ``compute`` and ``output``: the engine's plan with one output per batch (what the worker runs);
- ``runtime``: the worker's own memory with that plan built and nothing allocated (Python,
  llama.cpp, the vocabulary, the batch), its file pages (libraries), and the sampler's arrays
  (two of the vocabulary's size when sampling at a temperature).

``least_ram = weights_file + experts' file pages + repacked + kv + compute + output + runtime``: an
MoE's experts all come back within tens of tokens (``experts_back``), so running without paging
needs them all. What may stay out: a looked-up table's untouched rows, and, where the experts are
file pages, the share a budget cannot hold (every token then reads what it misses from disk).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from backends.card.gguf import GGUFHeader
from backends.fit.kvsize import KVSize, kv_size, plain_kv_bytes
from backends.fit.weights import Weights, experts_back, lookup_rows_bytes

SAMPLER_BYTES_PER_TOKEN = 16
"""llama.cpp's sampler at a temperature: a candidates array (12 bytes per vocabulary entry) and the
top-k bucket index (4 bytes per entry); greedy argmax over the logits needs neither."""
DISK_GBS = 2.0
"""The read speed assumed for paging (an NVMe SSD) unless ``--disk-gbs`` says otherwise."""


@dataclass
class Plan:
    """The engine's planned figures at one context (``LlamaCppBackend.plan``)."""

    n_ctx: int
    kv_bytes: int | None
    compute_bytes: int | None
    output_bytes: int | None
    runtime_anon: int
    runtime_file: int
    device_bytes: int | None = None


def context_row(
    h: GGUFHeader,
    w: Weights,
    ctx: int,
    plan: Plan | None,
    *,
    n_vocab: int,
    gen_tokens: int,
    sampled: bool,
    why_no_plan: str | None = None,
) -> dict:
    """One context's figures for ``abtop.fit/1`` (``None`` where a term cannot be known)."""
    kv: KVSize = kv_size(h, ctx)
    kv_bytes, kv_source = kv.bytes, "header"
    if kv_bytes is None and plan is not None:
        kv_bytes, kv_source = plan.kv_bytes, "engine plan"
    rows = lookup_rows_bytes(w, gen_tokens)
    sampler = SAMPLER_BYTES_PER_TOKEN * n_vocab if sampled else 0
    weights_file = w.every_file + rows
    compute = plan.compute_bytes if plan else None
    output = plan.output_bytes if plan else None
    runtime = plan.runtime_anon + plan.runtime_file + sampler if plan else None
    parts = (weights_file, w.experts_file, w.repacked, kv_bytes, compute, output, runtime)
    least = sum(parts) if None not in parts else None
    resident = None if least is None else least - w.experts_file
    prefaulted = sum(lk.bytes - min(lk.bytes, rows) for lk in w.lookups if lk.prefaulted)
    lazy_table = sum(lk.bytes for lk in w.lookups if not lk.prefaulted)
    anon = None if None in (kv_bytes, compute, output, plan) else (
        w.repacked + kv_bytes + compute + output + plan.runtime_anon + sampler
    )
    plain = plain_kv_bytes(h, ctx)
    return {
        "ctx": ctx,
        "n_ctx": kv.cells,
        "kv_bytes": kv_bytes,
        "kv_source": kv_source,
        "kv": {
            "cells": kv.cells, "swa_cells": kv.swa_cells, "layers": kv.layers, "swa_layers": kv.swa_layers,
            "shared_layers": kv.shared_layers, "bytes_per_token": kv.bytes_per_token, "swa_bytes": kv.swa_bytes,
            "type_k": kv.type_k, "type_v": kv.type_v, "not_modelled": kv.why,
            "engine_plan_bytes": plan.kv_bytes if plan else None,
        },  # fmt: skip
        "compute_bytes": compute,
        "output_bytes": output,
        "runtime_bytes": runtime,
        "anon_bytes": anon,
        "weights_file_bytes": weights_file,
        "repacked_bytes": w.repacked,
        "experts_file_bytes": w.experts_file,
        "resident_bytes": resident,
        "pageable_bytes": prefaulted + lazy_table + w.experts_file,
        "least_ram_bytes": least,
        "engine_resident_bytes": None if anon is None else h.file_bytes - lazy_table + anon + plan.runtime_file,
        "lookup_prefaulted_bytes": prefaulted,
        "lookup_lazy_bytes": lazy_table,
        "file_rule_bytes": None if plain is None else h.file_bytes + plain,
        "plain_kv_bytes": plain,
        "why_no_plan": why_no_plan,
    }


def verdict(
    row: dict,
    w: Weights,
    ram: int | None,
    *,
    bytes_per_token: int | None,
    bandwidth_gbs: Callable[[], float | None] = lambda: None,
    disk_gbs: float = DISK_GBS,
    lazy_ple: str | None = None,
) -> tuple[str | None, str | None]:
    """(verdict, why) against ``ram`` bytes: ``fits``, ``fits with lazy PLE``, ``fits only if N
    pages``, ``does not fit``; (None, None) without a budget, (None, why) when the figure is unknown.
    ``bandwidth_gbs()``: the box's read bandwidth, asked only to say how much paging slows."""
    if ram is None:
        return None, None
    least = row["least_ram_bytes"]
    if least is None:
        return None, row.get("why_no_plan") or "the least RAM is unknown"
    from backends.units import human_bytes as hb

    if ram >= least:
        ple = next((lk for lk in w.lookups if lk.name != "token_embd.weight" and lk.prefaulted), None)
        if ple is not None and ram < least + ple.bytes and lazy_ple != "on":
            return "fits with lazy PLE", (
                f"--lazy-ple on keeps the {hb(ple.bytes)} PLE table on disk (one row per token is read); "
                f"without it llama.cpp reads the table in at load and it competes for the {hb(ram - least)} left"
            )
        return "fits", f"{hb(ram - least)} to spare"
    short = least - ram
    if w.experts_file and short < w.experts_file:
        share = short / w.experts_bytes
        disk = share * w.experts_active
        why = f"{share:.0%} of the experts ({hb(short)}) stay on disk; each token reads ~{hb(disk)} of them from disk"
        bw = bandwidth_gbs() if bytes_per_token else None
        if bytes_per_token and bw:
            t_mem = bytes_per_token / (bw * 1e9)
            slow = (t_mem + disk / (disk_gbs * 1e9)) / t_mem
            why += f" at {disk_gbs:g} GB/s, beside {hb(bytes_per_token)} from RAM at {bw:.1f} GB/s: ~{slow:.1f}x slower per token"
        return f"fits only if {hb(short)} pages", why
    why = f"{hb(short)} short"
    if w.experts_bytes and w.experts_repacked:
        why += ("; its experts are repacked into anonymous memory, which cannot page without swap "
                "(--repack off keeps them file pages that can)")  # fmt: skip
    return "does not fit", why


def vram_verdict(row: dict, w: Weights, vram: int | None, gpu: str | None) -> dict:
    """The GPU's side: with every layer offloaded, the weights but the looked-up tables, the KV
    cache and the device compute buffer. ``gpu``: None where a GPU is usable, else why not."""
    if gpu is not None:
        return {"vram_bytes": None, "verdict": None, "why": gpu}
    device_compute = row.get("device_compute_bytes")
    need = None if row["kv_bytes"] is None or device_compute is None else w.device_bytes + row["kv_bytes"] + device_compute
    out = {"vram_bytes": need, "weights_bytes": w.device_bytes, "verdict": None, "why": None,
           "host_bytes": sum(lk.bytes for lk in w.lookups)}  # fmt: skip
    if vram is None or need is None:
        return out
    from backends.units import human_bytes as hb

    if vram >= need:
        out["verdict"], out["why"] = "fits", f"{hb(vram - need)} to spare (plus the GPU runtime's own context)"
    elif w.experts_bytes and vram >= need - w.experts_bytes:
        out["verdict"] = "fits with experts on the CPU"
        out["why"] = f"n-cpu-moe keeps {hb(w.experts_bytes)} of experts in host memory"
    else:
        out["verdict"], out["why"] = "does not fit", f"{hb(need - vram)} short"
    return out


def growth(w: Weights) -> dict | None:
    """Tokens until half, 90 % and 99 % of the experts' bytes have been read, routing uniform."""
    if not w.experts:
        return None
    return {f"p{int(q * 100)}": experts_back(w.experts_used, w.experts, q) for q in (0.5, 0.9, 0.99)}
