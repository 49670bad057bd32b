"""Results as JSON (``abtop.bench/1``), CSV (one row per model per run) and Markdown.

``document()`` builds the one document shape both ``abtop bench`` and the TUI's ``e`` key write,
from per-model entries (``model_entry``), so a file from either can be read the same way.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import stat
import statistics
import time
from pathlib import Path

from backends.base import BackendError, GenParams
from backends.events import Loaded
from backends.specs import public_spec, settings_text, split_settings
from backends.stats import RUN_FIELDS, summarize
from tui.text import format as fmt
from tui.text import verdict
from tui.text.safe import escape_controls

SCHEMA = "abtop.bench/1"
DEFAULT_DIR = "abtop-results"
"""Where the TUI writes exports and screenshots (relative to the working directory)."""


def run_params(prompt: str, params: GenParams, *, runs: int, warmup: int, mode: str, n_ctx: int | None) -> dict:
    """The document's ``params``: what both models were asked to do."""
    return {
        "prompt": prompt,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "seed": params.seed,
        "runs": runs,
        "warmup": warmup,
        "mode": mode,
        "n_ctx": n_ctx,
    }


def flash_attn(loaded: Loaded | None) -> str | None:
    """"on"/"off": whether the model's runs had flash attention (llama.cpp's resolved setting);
    None for a server, which does not say."""
    ctx = getattr(loaded, "context", None)
    return None if not ctx else "on" if ctx.get("flash_attn_on") else "off"


def model_entry(spec: str, loaded: Loaded | None, runs: list[dict], backend: str | None = None) -> dict:
    """One model's part of the document; ``runs`` may hold warm-ups (they are kept apart)."""
    counted = [r for r in runs if not r.get("warmup")]
    # The placement the runs had (each run records it); the model's current one only for a
    # document without runs: the mode, hence the cores, may have changed since.
    placed = next((r for r in reversed(counted) if "threads" in r), None)
    return {
        "spec": public_spec(spec),
        "backend": backend or (loaded.backend if loaded else None),
        "info": loaded.info.to_dict() if loaded else None,
        "threads": placed["threads"] if placed else loaded.threads if loaded else None,
        "cpus": placed["cpus"] if placed else loaded.cpus if loaded else None,
        "completion_mode": loaded.completion_mode if loaded else None,
        "load_s": loaded.load_s if loaded else None,
        "buffers": getattr(loaded, "buffers", None),
        "lazy_ple": getattr(loaded, "lazy_ple", None),
        "repack": getattr(loaded, "repack", None),
        "context": getattr(loaded, "context", None),
        "settings": getattr(loaded, "settings", None),
        "spec_settings": spec_settings(spec),
        "synthetic": bool(loaded and loaded.info.synthetic),
        "runs": counted,
        "warmup_runs": [r for r in runs if r.get("warmup")],
        "summary": summarize(counted),
        **({"by_prompt": by_prompt(counted)} if any(r.get("prompt_id") for r in counted) else {}),
        **({"by_depth": by_depth(counted)} if any(r.get("depth") for r in counted) else {}),
    }


def spec_settings(spec: str) -> dict:
    """The settings the spec itself gave (``SPEC,key=value``); the rest were the global flags'."""
    try:
        return dict(split_settings(spec)[1])
    except BackendError:
        return {}


def by_depth(runs: list[dict]) -> list[dict]:
    """Runs at each ``--depth`` summarised apart (``summary`` is over them all), shallowest first."""
    groups: dict[int, list[dict]] = {}
    for r in runs:
        groups.setdefault(r.get("depth") or 0, []).append(r)
    return [{"depth": d, "summary": summarize(rs)} for d, rs in sorted(groups.items())]


def by_prompt(runs: list[dict]) -> list[dict]:
    """A suite's runs summarised per prompt, in the suite's order (``summary`` is over them all)."""
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(r.get("prompt_id"), []).append(r)
    return [{"prompt_id": pid, "prompt": rs[0].get("prompt"), "summary": summarize(rs)} for pid, rs in groups.items()]


def document(models: list[dict], params: dict, host: dict | None = None) -> dict:
    """The whole export; ``host`` defaults to this machine's ``host_info()``."""
    if host is None:
        from backends import host_info

        host = host_info()
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": host,
        "params": params,
        "models": models,
    }


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a temp file in the same folder, flushed to
    disk, then renamed over it. A failed write (a full disk) raises ``OSError`` and leaves the old
    file as it was and no partial or 0-byte file. A link keeps pointing at its (new) file, an old
    file keeps its mode; a device or a pipe (``/dev/stdout``) is written to as it is, never replaced."""
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():
        with open(target, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if target.exists():
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_failure(path: str | Path, exc: OSError, what: str = "") -> str:
    """The sentence for an export that could not be written (``what``: the option, ``--json``)."""
    return f"could not write {what + ' ' if what else ''}{path} ({exc.strerror or exc}); the other results are kept."


def json_text(doc: dict) -> str:
    return json.dumps(doc, indent=2) + "\n"


def write_json(doc: dict, path: str | Path) -> None:
    write_atomic(path, json_text(doc))


def write_all(
    doc: dict, directory: str | Path = DEFAULT_DIR, stem: str | None = None
) -> tuple[list[Path], list[tuple[Path, OSError]]]:
    """JSON, CSV and Markdown side by side as ``DIR/STEM.{json,csv,md}``, each written on its own
    (one that fails does not stop the others): (the paths written, the (path, error) that failed).
    A folder that cannot be made raises ``OSError``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    stem = stem or time.strftime("abtop-%Y%m%d-%H%M%S")
    written, failed = [], []
    for path, text in ((d / f"{stem}.json", json_text), (d / f"{stem}.csv", csv_text), (d / f"{stem}.md", markdown)):
        try:
            write_atomic(path, text(doc))
            written.append(path)
        except OSError as exc:
            failed.append((path, exc))
    return written, failed


def _name(m: dict) -> str:
    name = m["info"]["name"] if m.get("info") else m["spec"]
    return f"{name} (synthetic)" if m.get("synthetic") else name


def csv_text(doc: dict) -> str:
    """One row per model per run, with the JSON's run field names (text last: it is long)."""
    fields = [f for f in RUN_FIELDS if f != "text"]
    if "tokens_per_100_chars" not in fields:
        fields.insert(fields.index("chars_per_s") + 1, "tokens_per_100_chars")
    cols = ["model", "backend", "quant", "synthetic", "settings", "lazy_ple", "flash_attn", "depth", "mode", "run", "warmup"] + fields + ["text"]
    if any(m.get("score") for m in doc["models"]):  # bits per byte beside the speed, per model
        cols.insert(cols.index("text"), "bpb")
    fit = {i: (f.get("contexts") or [{}])[-1] for i, f in enumerate((doc.get("fit") or {}).get("models") or [])}
    if fit:  # bench --fit: the least RAM predicted at the bench's context, per model
        cols[cols.index("text") : cols.index("text")] = ["fit_ctx", "least_ram_bytes", "fit_verdict"]
    if any("prompt_id" in r for m in doc["models"] for r in m["runs"]):  # a suite: which prompt each row ran
        cols[cols.index("run") : cols.index("run")] = ["prompt_id", "prompt"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for i, m in enumerate(doc["models"]):
        quant = (m.get("info") or {}).get("quant")
        f = fit.get(i) or {}
        for r in m["runs"]:
            row = dict(r, model=_name(m), backend=m["backend"], quant=quant, mode=r.get("mode") or doc["params"]["mode"])
            row.setdefault("lazy_ple", m.get("lazy_ple"))
            row.setdefault("depth", 0)
            row["synthetic"] = bool(m.get("synthetic"))
            row["settings"] = settings_text((m.get("spec_settings") or {}).items())
            row["bpb"] = (m.get("score") or {}).get("bpb")
            row.update(fit_ctx=f.get("ctx"), least_ram_bytes=f.get("least_ram_bytes"), fit_verdict=f.get("verdict"))
            # the text stays, but no raw ESC/BEL byte reaches a file that is often `cat`ed
            w.writerow({k: ("" if v is None else escape_controls(v) if isinstance(v, str) else v) for k, v in row.items()})
    return buf.getvalue()


def _cell(value: object) -> str:
    """A Markdown table cell: one line, no raw control byte, no ``|`` that would split it."""
    return escape_controls(" ".join(str(value).splitlines())).replace("|", "\\|")


def _median_of(runs: list[dict], name: str) -> float | None:
    vals = [r[name] for r in runs if r.get(name) is not None]
    return statistics.median(vals) if vals else None


def markdown(doc: dict) -> str:
    """The table a person pastes into an issue or a chat."""
    host = doc.get("host", {})
    p = doc["params"]
    head = (
        "| model | quant | backend | mode | prompt tok | gen tok (stop) | TTFT | prompt t/s | gen t/s | "
        "engine gen t/s | ITL p50/p99 ms | chars/s | tok/100 chars | peak RSS | weights resident | anon |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    one = lambda x: f"{x:.1f}"  # noqa: E731
    rows = []
    for m in doc["models"]:
        s = m["summary"]
        runs = [
            r
            for r in m["runs"]
            if not r.get("warmup") and not r.get("probe") and not r.get("error") and r.get("stop") != "cancelled"
        ]
        modes = sorted({r["mode"] for r in runs if r.get("mode")}) or [p["mode"]]

        def peak(name: str, runs=runs) -> str:
            vals = [r[name] for r in runs if r.get(name) is not None]
            return fmt.human_bytes(max(vals)) if vals else "n/a"

        tpc = _median_of(runs, "tokens_per_100_chars")
        # A chat template wraps the prompt in turns, a base model gets it bare: say which, since
        # the same prompt is then a different amount of work for each.
        n_prompt = _median_of(runs, "prompt_tokens")
        wrap = {True: " bare", False: " chat"}.get(m.get("completion_mode"), "")
        prompt_tok = "n/a" if n_prompt is None else f"{n_prompt:.0f}{wrap}"
        # how many tokens each generated and why it stopped: 76 at the end of its text vs 128 at
        # --max-tokens is a different amount of work, and a full context is a setting to raise
        n_gen = _median_of(runs, "gen_tokens")
        stops = ", ".join(sorted({fmt.STOP_WORDS.get(r["stop"], r["stop"]) for r in runs if r.get("stop")}))
        gen_tok = "n/a" if n_gen is None else f"{n_gen:.0f}" + (f" ({stops})" if stops else "")
        p50, p99 = _median_of(runs, "itl_p50_ms"), _median_of(runs, "itl_p99_ms")
        itl = "n/a" if p50 is None or p99 is None else f"{p50:.1f}/{p99:.1f}"
        rows.append(
            f"| {_cell(_name(m))} | {_cell((m.get('info') or {}).get('quant') or 'n/a')} | {_cell(m['backend'])} | "
            f"{_cell('/'.join(modes))} | "
            f"{prompt_tok} | {gen_tok} | "
            f"{fmt.spread(s.get('ttft_s'), fmt.seconds)} | {fmt.spread(s.get('prompt_tps'), one)} | "
            f"{fmt.spread(s.get('gen_tps'), one)} | {fmt.spread(s.get('gen_tps_engine'), one)} | {itl} | "
            f"{fmt.spread(s.get('chars_per_s'), lambda x: f'{x:.0f}')} | {'n/a' if tpc is None else one(tpc)} | "
            f"{peak('peak_rss_bytes')} | {peak('weights_resident_bytes')} | {peak('peak_anon_bytes')} |"
        )
    gpus = ", ".join(g.get("name", "?") for g in host.get("gpus") or []) or "no GPU"
    gpus, cpu = escape_controls(gpus), escape_controls(str(host.get("cpu", "?")))
    per_prompt = _per_prompt_table(doc) + _per_depth_table(doc) + working_set_table(doc)
    foot = per_prompt + (
        f"\n{p['runs']} run(s) after {p.get('warmup', 0)} warm-up, {p['max_tokens']} max tokens, "
        f"temperature {p['temperature']}, seed {p['seed']}. Host: {cpu}, "
        f"{host.get('cores_logical', '?')} logical cores, {fmt.human_bytes(host.get('ram_bytes'))} RAM, {gpus}."
        + (f"\n\n{escape_controls(p['race_note'][:1].upper() + p['race_note'][1:])}" if p.get("race_note") else "")
    )
    out = head + "\n".join(rows) + "\n" + foot + "\n"
    if doc.get("eval"):  # bench --eval: the accuracy table, then its rows in the verdict
        from tui.text.eval_text import markdown as eval_markdown

        out += "\n## Accuracy\n\n" + eval_markdown(doc["eval"])
    if doc.get("fit"):  # bench --fit: what each model needs at the bench's context
        from tui.text.fit_text import summary

        out += "\n## Will it fit (abtop fit, predicted)\n\n" + summary(doc["fit"])
    cols = verdict.columns(bench=doc, votes=doc.get("votes"), evals=doc.get("eval"))
    return out + ("\n" + verdict.markdown(cols, host, p.get("mode")) if len(cols) > 1 else "")


WS_GROUPS = ("token_embd", "ple", "experts", "output", "attention", "ffn", "other")


def working_set_table(doc: dict) -> str:
    """One row per probed model: each tensor group's bytes touched of its bytes in the file."""
    rows = []
    for m in doc["models"]:
        probes = [r for r in m["runs"] if r.get("probe")]
        if not probes:
            continue
        r = probes[-1]
        ws = r.get("working_set")
        if ws is None:
            rows.append(f"| {_cell(_name(m))} | " + _cell(f"n/a: {r.get('working_set_note') or 'no probe'}") + " |" + " |" * 6)
            continue
        cells = []
        for g in WS_GROUPS:
            v = ws["groups"].get(g)
            cells.append("—" if v is None else _cell(fmt.touched(v)))
        rows.append(f"| {_cell(_name(m))} | " + " | ".join(cells) + " |")
    if not rows:
        return ""
    head = "\nWeights working set (probe run, touched / in file):\n\n| model | " + " | ".join(WS_GROUPS) + " |\n"
    head += "|---|" + "---|" * len(WS_GROUPS) + "\n"
    return head + "\n".join(rows) + "\n"


def _per_depth_table(doc: dict) -> str:
    """With ``--depth``, one row per depth: each model's prompt and gen t/s there (medians), as
    llama-bench's ``pp … @ dN`` and ``tg … @ dN``."""
    models = [m for m in doc["models"] if m.get("by_depth")]
    if not models:
        return ""
    depths = sorted({d["depth"] for m in models for d in m["by_depth"]})
    head = "\n| depth | " + " | ".join(f"{_cell(_name(m))} prompt t/s · gen t/s" for m in models) + " |\n"
    head += "|---|" + "---|" * len(models) + "\n"
    rows = []
    for depth in depths:
        cells = []
        for m in models:
            s = next((d["summary"] for d in m["by_depth"] if d["depth"] == depth), {})
            pp, tg = ((s.get(k) or {}).get("median") for k in ("prompt_tps", "gen_tps"))
            cells.append(f"{'n/a' if pp is None else f'{pp:.1f}'} · {'n/a' if tg is None else f'{tg:.1f}'}")
        rows.append(f"| {depth} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n"


def _per_prompt_table(doc: dict) -> str:
    """With a suite, one row per prompt: each model's gen t/s, TTFT and chars/s on it (medians)."""
    models = [m for m in doc["models"] if m.get("by_prompt")]
    if not models:
        return ""
    ids = list(dict.fromkeys(p["prompt_id"] for m in models for p in m["by_prompt"]))
    names = [_cell(_name(m)) for m in models]
    head = "| prompt | " + " | ".join(f"{n} gen t/s · TTFT · chars/s" for n in names) + " |\n"
    head += "|---|" + "---|" * len(models) + "\n"
    rows = []
    for pid in ids:
        cells = []
        for m in models:
            s = next((p["summary"] for p in m["by_prompt"] if p["prompt_id"] == pid), {})

            def med(name, s=s):
                return (s.get(name) or {}).get("median")

            gen, ttft, cps = med("gen_tps"), med("ttft_s"), med("chars_per_s")
            cells.append(
                f"{'n/a' if gen is None else f'{gen:.1f}'} · {fmt.seconds(ttft)} · {'n/a' if cps is None else f'{cps:.0f}'}"
            )
        rows.append(f"| {_cell(pid)} | " + " | ".join(cells) + " |")
    return "\n" + head + "\n".join(rows) + "\n"
