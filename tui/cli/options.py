"""Run options shared by the TUI, ``bench`` and ``score``, so all drive the engine the same way."""

from __future__ import annotations

import argparse
import os

from backends.base import BackendError
from backends.specs import (
    DEFAULT_PAIR,
    SERVER_PREFIXES,
    TWIN_PREFIX,
    check_setting,
    check_settings,
    public_spec,
    split_settings,
    twin_file,
)

MAX_PANES = 4
"""Models the TUI shows at once (a 2x2 grid at 160x45)."""
MAX_BENCH = 8
"""Models ``abtop bench`` runs at once (a column each in its tables and verdict)."""
DEFAULT_PROMPT = "Explain in two sentences why the sky is blue."


def add_run_options(p: argparse.ArgumentParser, *, bench: bool) -> None:
    """Options shared by the TUI and ``bench``, so both drive the engine the same way."""
    p.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help=f"up to {MAX_BENCH if bench else MAX_PANES} models, each SPEC[,key=value...] (default: {' '.join(DEFAULT_PAIR)})",
    )
    p.add_argument("--pair", metavar="NAME", default=None, help="the two models of [pairs.NAME] in the config file (abtop config)")
    p.add_argument("-p", "--prompt", default=None, help="the prompt both models get")
    p.add_argument(
        "--prompts",
        metavar="FILE",
        default=None,
        help="a prompt suite: .txt (one prompt a line), .jsonl (prompt, optional id), or `suite` (the bundled eight)",
    )
    p.add_argument("-n", "--max-tokens", type=int, default=128, help="tokens to generate (default 128)")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0)")
    p.add_argument("--seed", type=int, default=42, help="sampling seed (default 42)")
    p.add_argument("--ctx", type=int, default=2048, help="context size for local models (default 2048)")
    p.add_argument(
        "--mode",
        choices=("race", "alternate"),
        default="alternate" if bench else "race",
        help="race: both at once, cores split; alternate: one at a time with all cores "
        f"(default {'alternate' if bench else 'race'})",
    )
    p.add_argument("--threads", type=int, default=None, help="threads per local model (default: its share of the cores)")
    p.add_argument("--interval", type=float, default=0.25, help="telemetry sampling interval, seconds (default 0.25 = 4 Hz)")
    p.add_argument(
        "--working-set",
        action="store_true",
        help="after the runs, one probe run per local model: which weight bytes (per tensor group) it reads "
        "(Linux; never counted in the speed figures)",
    )
    p.add_argument(
        "--lazy-ple",
        choices=("on", "off", "auto"),
        default=None,
        help="llama.cpp's on-demand reading of per-layer embedding tables (lazy_mode; default: the engine's, auto)",
    )
    p.add_argument(
        "--repack",
        choices=("on", "off"),
        default=None,
        help="llama.cpp's copy of quantised weights into CPU_REPACK buffers (default: the engine's, on)",
    )
    p.add_argument(
        "--sweep",
        metavar="KEY=V1,V2[,..]",
        default=None,
        help="one model, a column per value of one of its settings (as llama-bench's comma lists), "
        "e.g. --sweep lazy-ple=on,off or --sweep kv=f16,q8_0,q4_0",
    )
    p.add_argument(
        "--flash-attn",
        choices=("on", "off", "auto"),
        default="auto",
        help="llama.cpp's flash attention (default auto, as llama.cpp's own tools: on where the backend has it)",
    )


def backend_options(args: argparse.Namespace) -> dict:
    """The local engine's load options from the run options (``make_backend(spec, **these)``)."""
    return {
        "n_ctx": args.ctx,
        "lazy_ple": args.lazy_ple,
        "repack": None if args.repack is None else args.repack == "on",
        "flash_attn": getattr(args, "flash_attn", None),
    }


def prompt_list(args: argparse.Namespace) -> list:
    """The prompts to run: ``--prompts``' suite, else the one ``--prompt`` (id None).
    ``ValueError`` with one sentence when the suite cannot be used."""
    from backends import Prompt, load_prompts

    if getattr(args, "prompts", None):
        return load_prompts(args.prompts)
    return [Prompt(None, args.prompt if args.prompt is not None else default_prompt(args))]


def default_prompt(args: argparse.Namespace) -> str:
    """The prompt when none was given: the config file's (``[defaults] prompt``), else abtop's."""
    return getattr(args, "config_prompt", None) or DEFAULT_PROMPT


def expand_sweep(args: argparse.Namespace) -> str | None:
    """``--sweep KEY=V1,V2``: the one model becomes a model per value (``SPEC,KEY=V``), in
    ``args.models``; the sentence when that cannot be. Checked before anything loads."""
    sweep = getattr(args, "sweep", None)
    if not sweep:
        return None
    key, sep, values = sweep.partition("=")
    vals = [v for v in values.split(",") if v.strip()]
    if not sep or not key.strip() or len(vals) < 2:
        return f"abtop: --sweep {sweep}: write KEY=V1,V2[,..] with two values or more, e.g. --sweep kv=f16,q8_0."
    if len(args.models) != 1:
        return f"abtop: --sweep varies one model; give exactly one (got {len(args.models)})."
    spec = args.models[0]
    try:
        base, settings = check_settings(spec)
        pairs = [check_setting(key, v, "--sweep") for v in vals]
    except BackendError as exc:
        return f"abtop: {exc}"
    if base.startswith(SERVER_PREFIXES):
        return f"abtop: --sweep {pairs[0][0]}: {public_spec(spec)} is a server's model; its settings are the server's to set."
    k = pairs[0][0]
    if k == "kv" and any(s in ("kv-k", "kv-v") for s, _ in settings) or any(s == k for s, _ in settings):
        return f"abtop: --sweep {k}: {spec} sets it already; drop it there or sweep another key."
    own = ",".join(f"{s}={v}" for s, v in settings)
    args.models = [",".join(filter(None, [base, own, f"{k}={v}"])) for v in dict.fromkeys(v for _, v in pairs)]
    if len(args.models) < 2:
        return f"abtop: --sweep {sweep}: the values are all the same; give two different ones."
    return None


def check_run_options(args: argparse.Namespace, *, max_models: int = MAX_PANES) -> str | None:
    """The sentence that says what is wrong with the run options, or None when they are usable.

    Checked before anything loads, so a typo costs nothing: the TUI and ``bench`` share it.
    """
    from backends.session import available_cpus  # psutil: only when checking

    n_cpus = len(available_cpus())
    problem = expand_sweep(args)
    if problem:
        return problem
    if len(args.models) > max_models:
        where = "abtop bench takes" if max_models >= MAX_BENCH else f"the TUI shows {max_models} panes at most; bench takes"
        given = f"{len(args.models)} models were given"
        if getattr(args, "pair", None):
            given = f"[pairs.{args.pair}] in the config file names {len(args.models)} models"
        return (
            f"abtop: {given} ({', '.join(public_spec(m) for m in args.models)}); "
            f"{where} up to {MAX_BENCH}."
        )
    for spec in args.models:
        try:
            check_settings(spec)
        except BackendError as exc:
            return f"abtop: {exc}"
    for option in ("record", "json", "csv", "md"):  # a typo in a path must not cost a whole bench
        path = getattr(args, option, None)
        if path:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                return f"abtop: --{option} {path}: the folder {folder} does not exist."
            if not os.access(folder, os.W_OK):
                return f"abtop: --{option} {path}: the folder {folder} is not writable."
            if os.path.isdir(path):
                return f"abtop: --{option} {path} is a folder; give a file name."
    if getattr(args, "prompts", None):
        if args.prompt is not None:
            return "abtop: give --prompt or --prompts, not both."
        try:
            prompt_list(args)
        except ValueError as exc:
            return f"abtop: {exc}"
    checks = [
        (args.max_tokens >= 1, f"--max-tokens must be at least 1 (got {args.max_tokens})."),
        (args.temperature >= 0, f"--temperature must be 0 or more (got {args.temperature}); 0 is greedy."),
        (args.ctx >= 256, f"--ctx must be at least 256 tokens, llama.cpp's smallest context (got {args.ctx})."),
        (args.threads is None or args.threads >= 1, f"--threads must be at least 1 (got {args.threads})."),
        (
            args.threads is None or args.threads <= n_cpus,
            f"--threads {args.threads} is more than the {n_cpus} cores abtop may use here; "
            "more threads than cores only slows llama.cpp down.",
        ),
        (
            0.05 <= args.interval <= 60,
            f"--interval must be between 0.05 and 60 seconds (got {args.interval})"
            + ("; faster sampling costs the models speed." if args.interval < 0.05 else "."),
        ),
        (args.runs >= 1, f"--runs must be at least 1 (got {args.runs})."),
        (args.warmup >= 0, f"--warmup must be 0 or more (got {args.warmup})."),
    ]
    return next((f"abtop: {why}" for ok, why in checks if not ok), None)


def write_twins(specs: list[str]) -> str | None:
    """Write the shape twins among ``specs`` not yet on disk, each with its bar on stderr, before
    the run takes the terminal (a loading pane would show nothing for minutes); the sentence when
    one cannot be."""
    from backends import twin_is_current
    from tui.text.progress import written_with_bar

    for spec in (split_settings(s)[0] for s in specs):  # a twin's settings are the engine's, not the file's
        if not spec.startswith(TWIN_PREFIX):
            continue
        try:
            path = twin_file(spec, build=False)
            if not (path.exists() and twin_is_current(path)):
                written_with_bar(lambda bar, spec=spec: twin_file(spec, on_progress=bar))
        except BackendError as exc:
            return f"abtop: {exc}"
    return None
