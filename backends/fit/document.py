"""``abtop fit``'s work for ``tui/``: model specs in, the ``abtop.fit/1`` document out.

``prepare_fit`` resolves the specs and checks the contexts before anything heavy (a bad spec or a
context past a model's training: one sentence); ``run_fit`` plans each local model with the engine
(``LlamaCppBackend.plan``: one worker per context, nothing allocated), predicts every context
(``predict``) and, with ``check``, builds the model at the largest context and measures it
(``check``). A twin that is not written yet is planned from a sparse file holding only its header,
so a prediction never writes gigabytes; ``--check`` writes it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backends.base import BackendError
from backends.card.gguf import GGUFHeader, read_card, read_header, split_parts
from backends.events import ModelInfo
from backends.fit.predict import DISK_GBS, Plan, context_row, growth, verdict, vram_verdict
from backends.fit.weights import REPACK_TYPES, Weights, cpu_repacks, weights
from backends.specs import BUNDLED, TWIN_PREFIX, ModelSpec, parse_spec, public_spec

SCHEMA = "abtop.fit/1"


@dataclass
class FitOptions:
    ctxs: list[int]
    ram: int | None = None
    vram: int | None = None
    check: bool = False
    gen_tokens: int = 64
    lazy_ple: str | None = None
    repack: bool | None = None
    flash_attn: str | None = None
    disk_gbs: float = DISK_GBS
    beyond_train: bool = False
    ctxs_given: bool = True
    """False when ``ctxs`` are the defaults: a model then gets those within its training."""


@dataclass
class Target:
    spec: str
    kind: str
    """"llama.cpp" (a local GGUF) or "server"."""
    na: str | None = None
    path: Path | None = None
    """The GGUF file; for a twin not written yet, None until planned (``plan_path``)."""
    card: ModelInfo | None = None
    ctxs: list[int] = field(default_factory=list)
    """The contexts this model is sized at."""
    twin: tuple[str, str, float] | None = None
    scratch: list[Path] = field(default_factory=list)


def prepare_fit(specs: list[str], opts: FitOptions, report: Callable | None = None) -> list[Target]:
    """Resolve every spec (downloading an ``hf:`` file, with ``report`` getting its progress) and
    check the contexts against each model's training; ``BackendError`` (one sentence) otherwise."""
    out = []
    for spec in specs:
        t = _target(spec, report)
        t.ctxs = list(opts.ctxs)
        trained = t.card.n_ctx_train if t.card is not None else None
        if trained and max(opts.ctxs) > trained and not opts.beyond_train:
            if opts.ctxs_given:
                raise BackendError(
                    f"{t.spec} was trained on {trained:,} tokens of context; --ctx {max(opts.ctxs)} is beyond "
                    "it (llama.cpp builds it, the answers degrade): add --beyond-train to size it anyway."
                )
            t.ctxs = [c for c in opts.ctxs if c <= trained] or [trained]
        out.append(t)
    return out


def _target(spec: str, report: Callable | None) -> Target:
    if spec.startswith(TWIN_PREFIX):
        from backends.specs import parse_twin
        from backends.twins.writer import twin_card, twin_is_current, twin_path

        name, quant, scale = parse_twin(spec)
        p = twin_path(name, quant, scale)
        path = p if p.exists() and twin_is_current(p) else None
        return Target(spec, "llama.cpp", path=path, card=twin_card(name, quant, scale), twin=(name, quant, scale))
    ms = parse_spec(spec)
    if ms.kind in ("openai", "ollama"):
        why = ("a server's model: the server holds its memory and builds its context, which abtop cannot "
               "size or build from here")  # fmt: skip
        return Target(public_spec(spec), "server", na=why)
    if ms.kind == "hf":
        from backends.fetch.hf import fetch_hf

        path = fetch_hf(spec, report or (lambda _ev: None))
    else:
        path = ms.path
    card = read_card(path)
    if spec in BUNDLED:
        card.name = spec
    return Target(spec, "llama.cpp", path=Path(path), card=card)


def _header(path: Path) -> GGUFHeader:
    """The header with every part's tensors (a split GGUF's first part holds only some)."""
    h = read_header(path)
    parts = split_parts(path, h.kv)
    if len(parts) == 1:
        return h
    rest = [read_header(q) for q in parts[1:]]
    return GGUFHeader(h.version, h.kv, h.tensors + [t for r in rest for t in r.tensors], h.data_offset,
                      h.file_bytes + sum(r.file_bytes for r in rest))  # fmt: skip


def _plan_path(t: Target) -> Path:
    if t.path is not None:
        return t.path
    from backends.twins.writer import write_plan_file

    d = Path(tempfile.mkdtemp(prefix="abtop-fit-"))
    t.scratch.append(d)
    name, quant, scale = t.twin  # type: ignore[misc]
    return write_plan_file(name, quant, scale, path=d / f"{name}-{quant}-plan.gguf")


async def plan(t: Target, path: Path, opts: FitOptions, say: Callable[[str], None]) -> tuple[list[Plan] | None, bool, str | None]:
    """The engine's plan at each context, one worker per context (its runtime memory then holds
    what a worker built at that context holds); (plans, gpu offload available, why not planned)."""
    from backends.engines.llamacpp import LlamaCppBackend

    plans, gpu = [], False
    for ctx in t.ctxs:
        say(f"{t.spec}: asking llama.cpp for its plan at --ctx {ctx} (nothing allocated)…")
        b = LlamaCppBackend(t.spec, path, lazy_ple=opts.lazy_ple, repack=opts.repack, flash_attn=opts.flash_attn)
        try:
            msg = await b.plan([ctx])
        except BackendError as exc:
            return None, False, f"llama.cpp could not plan it: {exc}"
        c = msg["contexts"][0]
        gpu = bool(msg.get("gpu_offload"))
        plans.append(Plan(c["n_ctx"], c["kv_bytes"], c["compute_bytes"], c["output_bytes"], msg["runtime_anon"],
                          msg["runtime_file"], c.get("device_bytes")))  # fmt: skip
    return plans, gpu, None


def _gpu_absent(gpu_offload: bool) -> str | None:
    """Why VRAM is not judged here, or None when a GPU is usable."""
    if not gpu_offload:
        return "no GPU here: this llama.cpp build offloads nothing (a CPU build), so VRAM is not predicted"
    from backends.telemetry.nvml import Nvml

    nvml = Nvml.open()
    if nvml is None:
        return "no GPU here: NVML finds no NVIDIA GPU, so VRAM is not predicted"
    nvml.close()
    return None


def _weights_entry(w: Weights, h: GGUFHeader, opts: FitOptions) -> dict:
    rule = "repack off" if opts.repack is False else (
        f"{'/'.join(sorted(q.name for q in REPACK_TYPES))} matrices with ne1 % 8 == 0"
        if cpu_repacks() else "this CPU has none of the kernels llama.cpp repacks for (AVX2, NEON)"
    )  # fmt: skip
    return {
        "file_bytes": h.file_bytes,
        "every_token_file_bytes": w.every_file,
        "repacked_bytes": w.repacked,
        "repacked_tensors": len(w.repacked_names),
        "repack_rule": rule,
        "lookups": [{"name": lk.name, "bytes": lk.bytes, "row_bytes": lk.row_bytes, "prefaulted": lk.prefaulted}
                    for lk in w.lookups],  # fmt: skip
        "experts": None if not w.experts else {
            "bytes": w.experts_bytes, "experts": w.experts, "used": w.experts_used, "active_bytes": w.experts_active,
            "repacked": w.experts_repacked, "back_after_tokens_uniform": growth(w),
        },  # fmt: skip
        "device_bytes": w.device_bytes,
    }


def _delta(pred: int | None, meas: int | None) -> dict:
    pct = None if pred is None or not meas else round(100 * (pred - meas) / meas, 1)
    return {"predicted": pred, "measured": meas, "delta_pct": pct}


def compare(row: dict, measured: dict, w: Weights) -> dict:
    """Prediction against measurement at the checked context (``delta_pct`` = (pred − meas) / meas)."""
    engine = set(measured.get("repacked_tensors") or [])
    out = {
        "least_ram": _delta(row["least_ram_bytes"], measured["least_ram_bytes"]),
        "anon": _delta(row["anon_bytes"], measured["peak_anon_bytes"]),
        "weights_needed": _delta(row["weights_file_bytes"] + row["experts_file_bytes"], measured["weights_needed_bytes"]),
        "kv": _delta(row["kv_bytes"], measured["kv_engine_bytes"]),
        "vram": _delta(row["vram"]["vram_bytes"], measured.get("vram_peak_bytes")),
        "repack_rule": {
            "agrees": engine == w.repacked_names,
            "predicted_only": sorted(w.repacked_names - engine)[:20],
            "engine_only": sorted(engine - w.repacked_names)[:20],
        },
    }
    return out


async def run_fit(targets: list[Target], opts: FitOptions, say: Callable[[str], None]) -> dict:
    """The ``abtop.fit/1`` document for ``targets`` (in order)."""
    from backends.telemetry.process import host_info

    models = []
    try:
        for t in targets:
            models.append(await _model(t, opts, say))
    finally:
        for d in (d for t in targets for d in t.scratch):
            for f in d.iterdir():
                f.unlink(missing_ok=True)
            d.rmdir()
    return {
        "schema": SCHEMA,
        "host": host_info(bandwidth=False),
        "params": {
            "ctxs": opts.ctxs, "ram_bytes": opts.ram, "vram_bytes": opts.vram, "check": opts.check,
            "gen_tokens": opts.gen_tokens, "lazy_ple": opts.lazy_ple,
            "repack": None if opts.repack is None else ("on" if opts.repack else "off"),
            "flash_attn": opts.flash_attn or "auto", "disk_gbs": opts.disk_gbs, "beyond_train": opts.beyond_train,
        },  # fmt: skip
        "models": models,
    }


async def _model(t: Target, opts: FitOptions, say: Callable[[str], None]) -> dict:
    entry: dict = {"spec": t.spec, "kind": t.kind, "na": t.na, "info": t.card.to_dict() if t.card else None,
                   "ctxs_note": None if t.ctxs == opts.ctxs or t.na else
                   f"trained on {t.card.n_ctx_train:,} tokens: the default contexts past it are left out (--ctx, --beyond-train)",
                   "weights": None, "plan": None, "contexts": [], "check": None}  # fmt: skip
    if t.na:
        return entry
    path = _plan_path(t)
    h = _header(path)
    w = weights(h, repack=opts.repack, lazy_ple=opts.lazy_ple)
    entry["weights"] = _weights_entry(w, h, opts)
    plans, gpu_offload, why = await plan(t, path, opts, say)
    gpu = _gpu_absent(gpu_offload) if plans else why
    entry["plan"] = {"source": "llama.cpp no_alloc, one output per batch", "error": why, "gpu_offload": gpu_offload,
                     "no_gpu": gpu}  # fmt: skip
    n_vocab = t.card.n_vocab if t.card and t.card.n_vocab else 0
    bandwidth = _bandwidth()
    for i, ctx in enumerate(t.ctxs):
        p = plans[i] if plans else None
        row = context_row(h, w, ctx, p, n_vocab=n_vocab, gen_tokens=opts.gen_tokens, sampled=True, why_no_plan=why)
        row["device_compute_bytes"] = p.device_bytes if p else None
        v, reason = verdict(row, w, opts.ram, bytes_per_token=t.card.bytes_per_token if t.card else None,
                            bandwidth_gbs=bandwidth, disk_gbs=opts.disk_gbs, lazy_ple=opts.lazy_ple)  # fmt: skip
        row["verdict"], row["verdict_why"] = v, reason
        row["vram"] = vram_verdict(row, w, opts.vram, gpu)
        entry["contexts"].append(row)
    if opts.check:
        entry["check"] = await _check(t, opts, say, entry["contexts"][t.ctxs.index(max(t.ctxs))], w)
    return entry


def _bandwidth() -> Callable[[], float | None]:
    """This box's read bandwidth, probed (or read from abtop's cache) once, and only when a verdict
    needs it (the slowdown of paging experts)."""
    got: list[float | None] = []

    def get() -> float | None:
        if not got:
            from backends.telemetry.hardware import mem_bandwidth_gbs

            got.append(mem_bandwidth_gbs())
        return got[0]

    return get


async def _check(t: Target, opts: FitOptions, say: Callable[[str], None], row: dict, w: Weights) -> dict:
    from backends.fit.check import check

    if t.twin is not None and t.path is None:
        from backends.twins.writer import ensure

        say(f"{t.spec}: writing the twin for --check…")
        t.path = ensure(*t.twin)
    try:
        measured = await check(ModelSpec(t.spec, "gguf", path=t.path), max(t.ctxs), gen_tokens=opts.gen_tokens,
                               lazy_ple=opts.lazy_ple, repack=opts.repack, flash_attn=opts.flash_attn, progress=say)  # fmt: skip
    except BackendError as exc:
        return {"error": str(exc)}
    measured["vs"] = compare(row, measured, w)
    return measured


FIT_SETTINGS = {"ctx", "threads", "lazy-ple", "repack", "flash-attn"}
"""Settings a spec may carry (``SPEC,key=value``) that fit sizes as the engine would; any other (KV
types, GPU layers, mmap) makes that model's figures n/a rather than wrong."""


async def fit_specs(
    specs: list[str],
    n_ctx: int,
    *,
    ram: int | None = None,
    lazy_ple: str | None = None,
    repack: bool | None = None,
    flash_attn: str | None = None,
    say: Callable[[str], None] = lambda _s: None,
    report: Callable | None = None,
) -> dict:
    """``abtop.fit/1`` for a run's models at its context (a spec's own ``ctx=`` and engine settings
    win), as ``bench --fit`` and the TUI's ``f`` ask it: nothing loaded, contexts past a model's
    training sized as asked (the run builds them anyway). ``BackendError`` (one sentence) on a bad spec."""
    import asyncio

    from backends.specs import setting_options, split_settings

    doc: dict | None = None
    for spec in specs:
        base, settings = split_settings(spec)
        local = setting_options(settings)
        opts = FitOptions(
            ctxs=[local.get("n_ctx", n_ctx)], ram=ram, lazy_ple=local.get("lazy_ple", lazy_ple),
            repack=local.get("repack", repack), flash_attn=local.get("flash_attn", flash_attn), beyond_train=True,
        )  # fmt: skip
        targets = await asyncio.to_thread(prepare_fit, [base], opts, report)
        other = [f"{k}={v}" for k, v in settings if k not in FIT_SETTINGS]
        if other and not targets[0].na:
            targets[0].na = f"abtop fit sizes the engine's own choices; this spec's {', '.join(other)} is not modelled"
        say(f"{public_spec(spec)}: predicting the least RAM at --ctx {opts.ctxs[0]:,} (abtop fit)…")
        part = await run_fit(targets, opts, lambda _line: None)
        part["models"][0]["spec"] = public_spec(spec)
        if doc is None:
            doc = part
        else:
            doc["models"] += part["models"]
    assert doc is not None, "no specs"
    doc["params"]["ctxs"] = sorted({r["ctx"] for m in doc["models"] for r in m["contexts"]})
    return doc
