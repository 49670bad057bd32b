"""``abtop bench``: the same engine as the TUI, headless, with progress on stderr and exports."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
import threading

from backends import (
    EvalDataError,
    eval_loaded,
    eval_plan,
    eval_section,
    mem_bandwidth_gbs,
    rapl_note,
    read_battles,
    score_loaded,
    text_info,
    unknown_tasks,
    vote_summary,
)
from backends.base import Backend, BackendError, GenParams
from backends.catalog import make_backend
from backends.events import Event, Failed, Finished, Loaded, Note, Started, Token
from backends.events import Progress as Fetching
from backends.session import RunPlan, Session, race_shares_cores
from backends.specs import DEFAULT_PAIR, public_spec
from backends.stats import RunCollector, Runs
from tui.cli.commands.fit import bench_fit, fit_size
from tui.cli.options import backend_options
from tui.files import export
from tui.text.progress import StderrProgress, say

EPILOG = """\
examples:
  abtop bench                                            the bundled pair, alternate mode
  abtop bench A.gguf B.gguf -p "Write a haiku" -n 128 --runs 3 --json out.json
  abtop bench smollm2-135m gemma3-270m --mode race --csv runs.csv --md table.md
  abtop bench my-model.gguf -n 256 --runs 5         one model alone: a sanity check on new hardware
  abtop bench twin:gemma-4-e2b twin:qwen2.5-3b twin:olmoe-1b-7b --working-set   up to 8 models
  abtop bench gemma3-270m gemma3-270m,kv=q8_0,ctx=8192   one model two ways (settings below)
  abtop bench --prompts suite --runs 2 --csv runs.csv   the bundled 8-prompt suite, every prompt x runs
  abtop bench --score --votes abtop-results/battles.jsonl --md verdict.md   speed, bpb and votes: the verdict
  abtop bench --eval arc_easy,hellaswag:40 --json out.json   speed and accuracy on 40 items of each task
  abtop bench twin:gemma-4-e2b twin:qwen2.5-3b --fit --ram 4G   speed and the least RAM each needs (abtop fit)

per-model settings: SPEC,key=value[,key=value...] (the global flags stay the defaults):
{settings}

exit codes: 0 done; 1 a model failed after it started streaming, or an export could not be
written (the others and the table are still written); 2 bad input (a model that cannot be
loaded or fails before its first token), with one sentence on stderr.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from tui.cli.options import add_run_options
    from tui.cli.parser import settings_help

    p = sub.add_parser(
        "bench",
        help="run both models headless and export the figures",
        description="Run two models on the same prompt, headless: progress on stderr, a Markdown table on stdout.",
        epilog=EPILOG.format(settings=settings_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_options(p, bench=True)
    p.add_argument(
        "--depth",
        type=_depths,
        default=[0],
        metavar="N[,N…]",
        help="tokens of context already in the KV cache before each run (untimed, as llama-bench -d): "
        "the prompt and generation are measured at each depth, e.g. 0,1024,4096 (default 0; local models)",
    )
    p.add_argument("--runs", type=int, default=1, help="counted runs per model (default 1)")
    p.add_argument("--warmup", type=int, default=1, help="runs before the counted ones, not counted (default 1)")
    p.add_argument("--json", metavar="PATH", help="write the full results as JSON (schema abtop.bench/1)")
    p.add_argument("--csv", metavar="PATH", help="write one CSV row per model per run")
    p.add_argument("--md", metavar="PATH", help="write the Markdown summary table to a file too")
    p.add_argument("--record", metavar="FILE.jsonl", help="record every event (replay with abtop replay)")
    p.add_argument("--plot", action="store_true", help="open the results screen (plots) at the end")
    p.add_argument("--score", action="store_true", help="also score bits per byte (abtop score) on the bundled text or --text")
    p.add_argument("--text", metavar="FILE", help="the text --score reads (default: the bundled reference text)")
    p.add_argument("--votes", metavar="LOG", nargs="+", help="battle logs whose win rates join the verdict")
    p.add_argument("--eval", metavar="TASKS[:N]", help="also the accuracy on tasks (abtop eval), N items each "
                   "(default 25), e.g. arc_easy,piqa:50; in the exports and the verdict")
    p.add_argument("--pull", action="store_true", help="pull an ollama: model the server does not have (ollama pull)")
    p.add_argument("--fit", action="store_true", help="also predict the least RAM each model needs at --ctx "
                   "(abtop fit, nothing loaded); in the exports and the verdict")
    p.add_argument("--ram", type=fit_size, metavar="SIZE", help="with --fit: judge each model against this much RAM, e.g. 4G")
    p.set_defaults(func=run)


def _depths(text: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        vals = []
    if not vals or min(vals) < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of token counts (0 or more), e.g. 0,1024,4096")
    return list(dict.fromkeys(vals))


def depth_problem(depths: list[int], n_ctx: int, max_tokens: int) -> str | None:
    """The sentence when the context cannot hold the deepest run (its prompt still to come)."""
    deepest = max(depths)
    if deepest and deepest + max_tokens >= n_ctx:
        need = -(-(deepest + max_tokens + 256) // 256) * 256
        return (
            f"abtop: --depth {deepest} and --max-tokens {max_tokens} do not fit the context (--ctx {n_ctx}) "
            f"with a prompt besides; raise --ctx to {need} or more."
        )
    return None


class _Collect:
    """The bench's ``emit``: per-model runs, progress, and the last telemetry sample."""

    def __init__(self, n: int, bars: StderrProgress, total_tokens: int, recorder=None) -> None:
        self.loaded: list[Loaded | None] = [None] * n
        self.load_error: list[str | None] = [None] * n
        self.feeds = [Runs() for _ in range(n)]
        """Each model's events cut into runs (the same ``stats.Runs`` as the TUI's panes)."""
        self.runs: list[list[dict]] = [[] for _ in range(n)]
        self.failures: list[tuple[int, str]] = []
        self.bars = bars
        self.tasks = [bars.count("loading", total_tokens) for _ in range(n)]
        self.recorder = recorder
        self.last: list[RunCollector | None] = [None] * n
        """Each model's latest counted run (its token times feed ``--plot``)."""
        self.bandwidth_gbs: float | None = None
        """The host's read bandwidth, for each run's ``roofline_pct``."""
        self.shared_energy = False
        """Race mode with several models: the socket's and GPU's energy is not one model's."""
        self.scores: list[dict | None] = [None] * n
        """Each model's ``--score`` entry (abtop.score/1's per-model object)."""
        self.evals: dict | None = None
        """``--eval``'s section (``abtop.eval/1``'s entries and paired comparison)."""
        self.prompt = None
        """The suite's prompt being run (each run records its ``prompt_id`` and ``prompt``)."""
        self.depth = 0
        """Tokens of context in the KV cache before the runs now going (each run records it)."""

    def __call__(self, slot: int, ev: Event) -> None:
        if self.recorder is not None:
            self.recorder.write(slot, ev)
        if isinstance(ev, Loaded):
            self.loaded[slot] = ev
            self.bars.update(self.tasks[slot], description=f"{ev.info.name}: loaded")
            return
        if isinstance(ev, Note):
            if ev.text and self.loaded[slot] is None:  # the file a spec chose
                say(f"abtop: {ev.text}")
            return
        if isinstance(ev, Fetching):  # a download before the load: a bar of its own
            self.bars(ev)
            return
        ended = self.feeds[slot].add(ev, loaded=self.loaded[slot] is not None)
        if isinstance(ev, Token):
            if ev.n and self.feeds[slot].current is not None:
                self.bars.advance(self.tasks[slot], ev.n)
        elif isinstance(ev, Started):
            self._describe(slot, ev)
        elif isinstance(ev, Failed) and self.loaded[slot] is None:  # failed before any run: loading
            self.load_error[slot] = ev.reason
        if ended is not None:
            cur = ended
            lo = self.loaded[slot]
            result = cur.result(
                bytes_per_token=lo.info.bytes_per_token if lo else None,
                bandwidth_gbs=self.bandwidth_gbs,
                energy_note=rapl_note(),
                shared_energy=self.shared_energy,
            )
            if cur.t_start is None:  # it never started (its worker was lost between runs)
                result["run"] = sum(not r["warmup"] for r in self.runs[slot])
            if self.prompt is not None:
                result["prompt_id"], result["prompt"] = self.prompt.id, self.prompt.text
            result["depth"] = self.depth
            if lo is not None:
                result["lazy_ple"] = lo.lazy_ple
                result["flash_attn"] = export.flash_attn(lo)
            self.runs[slot].append(result)
            if not self.bars.live and isinstance(ev, Finished):  # a log, not a terminal: a line per run
                self._log_run(slot, result)
            if not cur.warmup:
                self.last[slot] = cur
            if isinstance(ev, Failed):
                self.failures.append((slot, ev.reason))

    def _log_run(self, slot: int, r: dict) -> None:
        name = self.loaded[slot].info.name if self.loaded[slot] else f"model {slot}"
        what = "warm-up" if r["warmup"] else f"run {r['run'] + 1}"
        if r.get("prompt_id"):
            what += f" of {r['prompt_id']}"
        gen = "n/a" if r["gen_tps"] is None else f"{r['gen_tps']:.1f} tok/s"
        ttft = "n/a" if r["ttft_s"] is None else f"{r['ttft_s']:.3f} s"
        say(f"abtop: {name} {what}: {r['gen_tokens']} tokens, gen {gen}, TTFT {ttft}")

    def _describe(self, slot: int, ev: Started) -> None:
        name = self.loaded[slot].info.name if self.loaded[slot] else f"model {slot}"
        what = "warm-up" if ev.warmup else f"run {ev.run + 1}"
        if self.prompt is not None and self.prompt.id:
            what += f" · {self.prompt.id}"
        self.bars.update(self.tasks[slot], description=f"{name}: {what}")


def _document(args, col: _Collect, session: Session, params: GenParams, specs: list[str]) -> dict:
    """The same document as the TUI's ``e`` key (``export.document``)."""
    models = [
        export.model_entry(spec, col.loaded[i], col.runs[i], session.backends[i].kind) for i, spec in enumerate(specs)
    ]
    doc = export.document(models, _params(args, params))
    for m, entry in zip(doc["models"], col.scores, strict=True):
        if entry is not None:
            m["score"] = entry
    if args.score:
        doc["score_text"] = text_info(*args.score_text)
    if args.votes:
        doc["votes"] = vote_summary(read_battles(args.votes))
    if col.evals is not None:
        doc["eval"] = col.evals
    if getattr(args, "fit_doc", None) is not None:
        doc["fit"] = args.fit_doc
    return doc


def _params(args, params: GenParams) -> dict:
    out = export.run_params(args.prompt, params, runs=args.runs, warmup=args.warmup, mode=args.mode, n_ctx=args.ctx)
    out["depths"] = list(args.depth)
    if getattr(args, "race_note", None):
        out["race_note"] = args.race_note
    if args.prompts:
        out["prompts"] = [{"id": p.id, "prompt": p.text} for p in args.prompt_list]
    return out


async def _plot(col: _Collect, doc: dict) -> None:
    """``--plot``: the results screen over the terminal, after the table is printed."""
    from tui.widgets.results import ModelResults, ResultsApp

    if not (sys.stdout.isatty() and sys.stdin.isatty()):
        say("abtop: --plot needs a terminal; the figures are in the table above.")
        return
    models = [
        ModelResults.from_collector(m["info"]["name"] if m["info"] else m["spec"], m["runs"], col.last[i])
        for i, m in enumerate(doc["models"])
    ]
    await ResultsApp(models, f"{doc['params']['mode']} mode").run_async()


class _Refused(Exception):
    """A step found bad input and said so on stderr: the bench ends with exit 2."""


def _make_backends(args, specs: list[str]) -> list[Backend]:
    """A backend per spec, each checked against the options before anything loads."""
    backends = []
    for spec in specs:
        try:
            b = make_backend(spec, **backend_options(args))
        except BackendError as exc:
            say(f"abtop: {exc}")
            raise _Refused from None
        if max(args.depth) and not b.local_process:
            say(f"abtop: --depth fills a local model's KV cache; {public_spec(spec)} is a server's model: drop --depth.")
            raise _Refused
        if b.can_pull:  # a model the server lacks: pulled only when asked for
            b.pull, b.pull_offer = bool(getattr(args, "pull", False)), "add --pull to pull it"
        backends.append(b)
    shared = race_shares_cores([b.local_process for b in backends]) if args.mode == "race" else None
    if shared:  # said before the runs, and kept in the table's foot
        say(f"abtop: {shared}")
        args.race_note = shared
    return backends


def _open_recorder(args, specs: list[str], params: GenParams):
    """``--record``'s ``Recorder`` (None without it)."""
    if not args.record:
        return None
    from tui.files.record import Recorder

    try:
        return Recorder(args.record, specs, _params(args, params))
    except OSError as exc:
        say(f"abtop: --record {args.record}: cannot be written ({exc.strerror or exc}).")
        raise _Refused from None


EXIT_GRACE_S = 15.0
"""After Ctrl+C, SIGTERM or SIGHUP the bench writes what it has and exits; if something still
holds it this long after (a call that never returns), it kills the workers and exits anyway."""
_deadlines: list[threading.Timer] = []
"""Armed by the first signal, disarmed once ``run`` has returned (the bench may run in a test's process)."""


def _exit_after(seconds: float, code: int, kill_children) -> None:
    def hard_exit() -> None:
        try:
            kill_children()
        finally:
            os._exit(code)

    timer = threading.Timer(seconds, hard_exit)
    timer.daemon = True  # a bench that ends in time never waits for it
    timer.start()
    _deadlines.append(timer)


def _cancel_on_signals(backends: list[Backend]) -> list[int]:
    """Ctrl+C, SIGTERM or a dropped SSH link cancel the bench's task: the runs stop, those done
    are kept (and written). The list fills with the signals that came. Whatever still holds the
    way out ``EXIT_GRACE_S`` after the first is cut off: the workers are killed, the process exits."""
    signals: list[int] = []
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def interrupted(sig: int) -> None:
        if not signals:
            _exit_after(EXIT_GRACE_S, 128 + sig, lambda: [b.kill_now() for b in backends])
        signals.append(sig)
        main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, interrupted, sig)
    return signals


async def _load(args, session: Session, col: _Collect) -> None:
    """The host's bandwidth (cached; probed before the models take the memory bus), then the models."""
    col.bandwidth_gbs = await asyncio.to_thread(mem_bandwidth_gbs)
    await session.load()
    col.shared_energy = args.mode == "race" and sum(lo is not None for lo in col.loaded) > 1
    bad = [e for e in col.load_error if e]
    if bad:
        col.bars.close()  # the sentences after the bars, not among them
        for e in bad:
            say(f"abtop: {e}")
        raise _Refused


async def _run_plans(args, session: Session, col: _Collect, params: GenParams) -> None:
    """Every prompt x depth x ``--runs``; the warm-up once, first; the working-set probe once, last."""
    plans = [(prompt, d) for prompt in args.prompt_list for d in args.depth]
    for k, (prompt, depth) in enumerate(plans):
        col.prompt, col.depth = (prompt if args.prompts else None), depth
        await session.run(
            RunPlan(
                prompt.text,
                dataclasses.replace(params, depth=depth),
                mode=args.mode,
                runs=args.runs,
                warmup=args.warmup if k == 0 else 0,
                working_set=args.working_set and k == len(plans) - 1,  # one probe per model, after every speed run
            )
        )
        if not any(session.alive):  # every worker lost: the next prompt has no one to run it
            return


async def _score(args, session: Session, col: _Collect) -> None:
    """``--score``: bits per byte with the loaded workers, one at a time with all cores."""
    await session.set_mode("alternate")
    for slot, b in enumerate(session.backends):
        if session.alive[slot]:
            say(f"abtop: scoring {col.loaded[slot].info.name if col.loaded[slot] else b.spec} on {args.score_text[1]}…")
            col.scores[slot] = await score_loaded(b, args.score_text[0])


async def _eval(args, session: Session, col: _Collect) -> None:
    """``--eval``: the same items for each loaded worker, one at a time with all cores."""
    await session.set_mode("alternate")
    entries = []
    for slot, b in enumerate(session.backends):
        if session.alive[slot]:
            say(f"abtop: eval of {col.loaded[slot].info.name if col.loaded[slot] else b.spec} on "
                f"{', '.join(t.name for t, _ in args.eval_plan)}…")  # fmt: skip
            entries.append(await eval_loaded(b, args.eval_plan))
    col.evals = eval_section(entries, args.eval_plan, seed=0, limit=args.eval_limit)


def _write_exports(args, doc: dict, table: str, recorder) -> tuple[list[str], list[str]]:
    """(written paths, sentences for those that were not). Each export is written whole or not at
    all, on its own: one that fails (a full disk) is a sentence and exit 1, never a lost table or a
    lost other file. The JSON is written even when every run failed: the errors are in it, for the
    CI step after."""
    unwritten: list[str] = []
    written: list[str] = []
    for option, path, text in (("--json", args.json, export.json_text), ("--csv", args.csv, export.csv_text),
                               ("--md", args.md, lambda _doc: table)):  # fmt: skip
        if path:
            try:
                export.write_atomic(path, text(doc))
                written.append(path)
            except OSError as exc:
                unwritten.append(export.write_failure(path, exc, option))
    if recorder is not None and recorder.error:
        unwritten.append(recorder.error)
    return written, unwritten


def _say_context_full(args, col: _Collect, specs: list[str]) -> None:
    """A full context ends runs early: say so, once per model."""
    for i, runs in enumerate(col.runs):
        short = [r for r in runs if r.get("stop") == "context full"]
        if short:
            name = col.loaded[i].info.name if col.loaded[i] else specs[i]
            say(
                f"abtop: {name}: the context (--ctx {args.ctx}) filled after {short[0]['gen_tokens']} generated "
                f"tokens, before --max-tokens {args.max_tokens}; raise --ctx to compare full runs."
            )


async def _report(args, col: _Collect, session: Session, params: GenParams, specs: list[str], recorder,
                  signals: list[int]) -> int:  # fmt: skip
    """The table on stdout, the exports, the sentences on stderr; the exit code."""
    first_failure: dict[int, tuple[bool, str]] = {}
    for slot, reason in col.failures:  # one sentence per model, however many runs failed
        streamed = any(r["gen_tokens"] for r in col.runs[slot])  # it worked at least once: not bad input
        first_failure.setdefault(slot, (streamed, reason))
    nothing_ran = bool(first_failure) and not any(r["gen_tokens"] for runs in col.runs for r in runs)
    doc = _document(args, col, session, params, specs)
    table = export.markdown(doc)
    written, unwritten = _write_exports(args, doc, table, recorder)
    if not nothing_ran or signals:  # nothing ran: no table of n/a, only the sentences below
        sys.stdout.write(table)
        sys.stdout.flush()
    for path in written:
        say(f"abtop: wrote {path}")
    for sentence in unwritten:
        say(f"abtop: {sentence}")
    if args.plot and not signals and not nothing_ran:
        await _plot(col, doc)
    if signals:
        say(f"abtop: interrupted by {signal.Signals(signals[0]).name}; the runs finished so far are above.")
        return 128 + signals[0]
    _say_context_full(args, col, specs)
    if first_failure:
        for _after, reason in first_failure.values():
            say(f"abtop: {reason}")
        return 1 if any(after for after, _ in first_failure.values()) else 2
    return 1 if unwritten else 0  # the runs went well, but a result could not be kept


async def _bench(args, specs: list[str]) -> int:
    # Tokens come in 4 times a second: enough for the progress bar, and the worker's sends wake
    # this process on the cores the models compute on far less (race mode: one core each).
    params = GenParams(max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed, send_every_s=0.25)
    try:
        backends = _make_backends(args, specs)
        recorder = _open_recorder(args, specs, params)
    except _Refused:
        return 2
    total = (args.runs * len(args.prompt_list) * len(args.depth) + args.warmup + bool(args.working_set)) * args.max_tokens
    with StderrProgress() as bars:
        col = _Collect(len(specs), bars, total, recorder)
        session = Session(backends, col, mode=args.mode, threads=args.threads, interval=args.interval)
        signals = _cancel_on_signals(backends)
        try:
            if not bars.live:
                say(f"abtop: loading {', '.join(public_spec(s) for s in specs)}…")  # no URL's password
            await _load(args, session, col)
            await _run_plans(args, session, col, params)
            if args.score:
                await _score(args, session, col)
            if args.eval:
                await _eval(args, session, col)
        except _Refused:
            return 2
        except asyncio.CancelledError:
            if not signals:
                raise
        finally:
            bars.close()
            await session.close()
            if recorder is not None:
                recorder.close()
    return await _report(args, col, session, params, specs, recorder, signals)


def run(args: argparse.Namespace) -> int:
    from tui.cli.options import MAX_BENCH, check_run_options, default_prompt, prompt_list, write_twins

    problem = check_run_options(args, max_models=MAX_BENCH) or depth_problem(args.depth, args.ctx, args.max_tokens)
    if problem:
        say(problem)
        return 2
    specs = list(args.models) or list(DEFAULT_PAIR)  # after the check: --sweep has made its models
    args.prompt_list = prompt_list(args)
    if args.score:
        from tui.cli.commands.score import read_text

        try:
            args.score_text = read_text(args.text)
        except ValueError as exc:
            say(f"abtop: {exc}")
            return 2
    elif args.text:
        say("abtop: --text is the text --score reads; add --score.")
        return 2
    if args.votes:
        try:
            read_battles(args.votes)
        except ValueError as exc:
            say(f"abtop: {exc}")
            return 2
    if args.eval:
        problem = eval_option(args)
        if problem:
            say(f"abtop: {problem}")
            return 2
    if args.ram is not None and not args.fit:
        say("abtop: --ram is the budget --fit judges each model against; add --fit.")
        return 2
    if args.prompt is None and not args.prompts:
        args.prompt = default_prompt(args)
    problem = write_twins(specs)  # before the bars of the run, each with its own
    if problem:
        say(problem)
        return 2
    if args.fit:  # before the models load: its planning workers are gone by then
        args.fit_doc = bench_fit(args, specs)
        if args.fit_doc is None:
            return 2
    try:
        return asyncio.run(_bench(args, specs))
    finally:
        while _deadlines:
            _deadlines.pop().cancel()


def eval_option(args) -> str | None:
    """Read ``--eval TASKS[:N]`` into ``args.eval_plan`` and ``args.eval_limit``; the problem, if any."""
    tasks_text, _, n = args.eval.partition(":")
    tasks = [t.strip() for t in tasks_text.split(",") if t.strip()]
    if not tasks:
        return f"--eval {args.eval}: name at least one task, e.g. --eval arc_easy,piqa:50."
    try:
        args.eval_limit = int(n) if n else None
    except ValueError:
        return f"--eval {args.eval}: N after the colon must be a number of items, e.g. arc_easy:50."
    if args.eval_limit is not None and args.eval_limit <= 0:
        return f"--eval {args.eval}: N must be at least 1 (got {args.eval_limit})."
    bad = unknown_tasks(tasks)
    if bad:
        return f"--eval: {bad}"
    try:
        args.eval_plan = eval_plan(tasks, args.eval_limit, 0)
    except EvalDataError as exc:
        return str(exc)
    return None
