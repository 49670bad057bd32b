"""``abtop fit A B [--ctx 2048,8192,32768] [--ram SIZE] [--vram SIZE] [--check] [--json PATH]``:
will each model fit, at each context? The least RAM to run without paging, predicted from the
GGUF header and llama.cpp's own plan (nothing loaded), and with ``--check`` measured."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from backends.base import BackendError
from backends.specs import DEFAULT_PAIR
from backends.units import parse_size
from tui.text.safe import safe

DEFAULT_CTXS = [2048, 8192, 32768]
EPILOG = """\
examples:
  abtop fit                                        the bundled pair at 2k, 8k and 32k
  abtop fit twin:gemma-4-e2b twin:qwen2.5-3b --ram 4G     which fits a 4 GB box, and why
  abtop fit twin:olmoe-1b-7b --ctx 4096 --ram 3G --repack off   an MoE whose experts may page
  abtop fit model.gguf --ctx 8192 --check --json fit.json   predicted, then built, filled and measured

sizes: 4G and 4GB are 4x10^9 bytes, as abtop shows sizes; 4GiB is 4x2^30.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="the least RAM each model needs at each context: predicted, and checked with --check",
        description="Predict what each model must keep in RAM at each context (weights read every token, "
        "KV cache as llama.cpp sizes it, compute buffers), what may stay on disk, the least RAM to run "
        "without paging and a verdict against --ram/--vram; --check builds and measures it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help=f"models (default: {' '.join(DEFAULT_PAIR)})")
    p.add_argument("--ctx", type=ctxs, default=None, metavar="N[,N…]",
                   help="contexts in tokens (default 2048,8192,32768, those within each model's training)")  # fmt: skip
    p.add_argument("--ram", type=fit_size, metavar="SIZE", help="judge each context against this much RAM, e.g. 4G")
    p.add_argument("--vram", type=fit_size, metavar="SIZE", help="judge the GPU's share against this much VRAM (CUDA builds)")
    p.add_argument("--check", action="store_true",
                   help="build each local model at the largest context, fill it (untimed), generate, and measure")  # fmt: skip
    p.add_argument("-n", "--max-tokens", type=int, default=64, help="tokens --check generates (default 64)")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON (schema abtop.fit/1)")
    p.add_argument("--lazy-ple", choices=("on", "off", "auto"), default=None,
                   help="llama.cpp's on-demand reading of per-layer embedding tables (default: the engine's, auto)")  # fmt: skip
    p.add_argument("--repack", choices=("on", "off"), default=None,
                   help="llama.cpp's copy of quantised weights into CPU_REPACK buffers (default: the engine's, on)")  # fmt: skip
    p.add_argument("--flash-attn", choices=("on", "off", "auto"), default="auto", help="flash attention (default auto)")
    p.add_argument("--disk-gbs", type=float, default=2.0, metavar="GB/S",
                   help="disk read speed assumed for what pages (default 2, an NVMe SSD)")  # fmt: skip
    p.add_argument("--beyond-train", action="store_true", help="size contexts longer than a model was trained on")
    p.set_defaults(func=run)


def _ctx(text: str) -> int:
    """``8192``, or ``8k`` as contexts are spoken of (k = 1,024 tokens)."""
    t = text.strip().lower()
    return int(t[:-1]) * 1024 if t.endswith("k") else int(t)


def ctxs(text: str) -> list[int]:
    try:
        vals = [_ctx(v) for v in text.split(",") if v.strip()]
    except ValueError:
        vals = []
    if not vals or min(vals) < 256:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of contexts of 256 tokens or more, e.g. 2048,8192 or 2k,8k")
    return sorted(dict.fromkeys(vals))


def fit_size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def say(line: str) -> None:
    print(safe(f"abtop: {line}"), file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from backends import FitOptions, prepare_fit, run_fit
    from tui.text.fit_text import markdown

    problem = _check_args(args)
    if problem:
        print(safe(problem), file=sys.stderr)
        return 2
    opts = FitOptions(
        ctxs=args.ctx or DEFAULT_CTXS, ctxs_given=args.ctx is not None, ram=args.ram, vram=args.vram,
        check=args.check, gen_tokens=args.max_tokens, lazy_ple=args.lazy_ple, repack=None if args.repack is None else args.repack == "on",
        flash_attn=args.flash_attn, disk_gbs=args.disk_gbs, beyond_train=args.beyond_train,
    )  # fmt: skip
    specs = list(args.models) or list(DEFAULT_PAIR)
    try:
        from tui.text.progress import StderrProgress

        with StderrProgress() as out:
            targets = prepare_fit(specs, opts, out)
    except BackendError as exc:
        say(str(exc))
        return 2
    try:
        doc = asyncio.run(run_fit(targets, opts, say))
    except BackendError as exc:
        say(str(exc))
        return 1
    wrote = True
    if args.json:  # first: figures that took an hour to measure outlive any problem printing them
        from tui.files import export

        try:
            export.write_atomic(args.json, export.json_text(doc))
        except OSError as exc:
            say(export.write_failure(args.json, exc, "--json"))
            wrote = False
    sys.stdout.write(markdown(doc))
    sys.stdout.flush()
    if args.json and wrote:
        say(f"wrote {args.json}")
    failed = [m for m in doc["models"] if m["check"] and "error" in m["check"]]
    return 1 if failed or not wrote else 0


def _check_args(args: argparse.Namespace) -> str | None:
    if args.max_tokens < 1:
        return f"abtop: --max-tokens must be at least 1 (got {args.max_tokens})."
    if not args.disk_gbs > 0:
        return f"abtop: --disk-gbs must be above 0 (got {args.disk_gbs:g})."
    if args.check and max(args.ctx or DEFAULT_CTXS) < args.max_tokens + 64:
        return f"abtop: --check needs a context above --max-tokens {args.max_tokens} and a prompt; raise --ctx."
    if args.json:  # a typo in a path must not cost a whole check
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            return f"abtop: --json {args.json}: the folder {folder} does not exist."
        if os.path.isdir(args.json):
            return f"abtop: --json {args.json} is a folder; give a file name."
    return None



def bench_fit(args: argparse.Namespace, specs: list[str]) -> dict | None:
    """``bench --fit``: the ``abtop.fit/1`` document for the bench's models at its context (each
    model's ``ctx=`` setting where given), nothing loaded; None after a sentence on stderr (bad input)."""
    from backends import fit_specs
    from tui.text.progress import StderrProgress

    repack = None if args.repack is None else args.repack == "on"
    try:
        with StderrProgress() as out:
            return asyncio.run(fit_specs(specs, args.ctx, ram=args.ram, lazy_ple=args.lazy_ple, repack=repack,
                                         flash_attn=getattr(args, "flash_attn", None), say=say, report=out))  # fmt: skip
    except BackendError as exc:
        say(str(exc))
        return None
