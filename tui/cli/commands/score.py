"""``abtop score A B [--text FILE] [--json PATH]``: bits per byte of both models on one text.

bpb = −Σ log₂ p(token | previous) / UTF-8 bytes (lm-evaluation-harness's ``bits_per_byte``):
comparable across tokenizers, lower is better. Without ``--text`` the bundled reference text
(~20 KB of US founding documents and Lincoln, public domain) is read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from backends import reference_text, score_document
from backends.specs import DEFAULT_PAIR
from backends.userfiles import read_user_text
from tui.cli.options import write_twins
from tui.text import format as fmt
from tui.text.progress import StderrProgress

EPILOG = """\
examples:
  abtop score                                      the bundled pair on the bundled text
  abtop score A.gguf B.gguf --text my.txt --json score.json
  abtop score smollm2-135m openai:qwen@http://127.0.0.1:8000/v1   vLLM: prompt log-probs (echo)

Local GGUFs are read in windows of --ctx tokens that advance by --stride tokens (default ctx - 1:
disjoint windows, as lm-evaluation-harness reads a long text); a smaller stride gives each scored
token at least ctx - 1 - stride tokens of context, and costs decoding tokens again.
llama-server and Ollama return log-probabilities only for generated tokens: their bpb is null,
with the reason.
exit codes: 0 done; 2 bad input (a text or model that cannot be used), one sentence on stderr.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "score",
        help="bits per byte of each model on the same text (lower is better)",
        description="Bits per byte of each model on the same text: how well it predicts it, comparable across tokenizers.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help=f"models (default: {' '.join(DEFAULT_PAIR)})")
    p.add_argument("--text", metavar="FILE", help="a UTF-8 text file (default: the bundled reference text)")
    p.add_argument("--json", metavar="PATH", help="write the scores as JSON (schema abtop.score/1)")
    p.add_argument("--ctx", type=int, default=2048, help="window (context) size for local models (default 2048)")
    p.add_argument("--stride", type=int, default=None, help="tokens a window advances (default --ctx - 1: disjoint windows)")
    p.add_argument("--threads", type=int, default=None, help="threads per local model (default: all cores)")
    p.set_defaults(func=run)


def _problem(args) -> str | None:
    if args.ctx < 256:
        return f"--ctx must be at least 256 tokens, llama.cpp's smallest context (got {args.ctx})."
    if args.stride is not None and not 1 <= args.stride <= args.ctx - 1:
        return f"--stride must be between 1 and --ctx less one ({args.ctx - 1}); got {args.stride}."
    if args.threads is not None and args.threads < 1:
        return f"--threads must be at least 1 (got {args.threads})."
    if args.json:
        folder = Path(args.json).resolve().parent
        if not folder.is_dir():
            return f"--json {args.json}: the folder {folder} does not exist."
    return None


def read_text(path_or_none: str | None) -> tuple[str, str]:
    """(text, name): the file's, or the bundled reference text's; ``ValueError`` with one sentence."""
    if not path_or_none:
        return reference_text(), "bundled reference text"
    text = read_user_text(path_or_none, f"--text {path_or_none}")
    if not text.strip():
        raise ValueError(f"--text {path_or_none}: the file is empty.")
    return text, Path(path_or_none).name


def markdown(doc: dict) -> str:
    t = doc["text"]
    head = ("| model | bpb | tokens | tok/byte | seconds (CPU s) | window/stride | anon after load → peak |\n"
            "|---|---|---|---|---|---|---|\n")
    rows = []
    for m in doc["models"]:
        bpb = "n/a" if m["bpb"] is None else f"{m['bpb']:.4f}"
        tpb = "n/a" if m["tokens_per_byte"] is None else f"{m['tokens_per_byte']:.3f}"
        secs = "n/a" if m["seconds"] is None else f"{m['seconds']:.1f}"
        if m.get("cpu_seconds") is not None:
            secs += f" ({m['cpu_seconds']:.0f})"
        win = f"{m['window']}/{m['stride']}" if m.get("window") else "n/a"
        mem = f"{fmt.human_bytes(m['anon_before_bytes'])} → {fmt.human_bytes(m['peak_anon_bytes'])}"
        rows.append(f"| {m['name'] or m['spec']} | {bpb} | {m['tokens'] or 'n/a'} | {tpb} | {secs} | {win} | {mem} |")
    foot = f"\nbits per byte of {t['name']} ({t['bytes']} bytes, sha256 {t['sha256'][:12]}…); lower is better.\n"
    return head + "\n".join(rows) + "\n" + foot


def run(args) -> int:
    problem = _problem(args)
    try:
        text, name = (None, None) if problem else read_text(args.text)
    except ValueError as exc:
        problem = str(exc)
    if problem:
        print(f"abtop: {problem}", file=sys.stderr)
        return 2
    specs = list(args.models) or list(DEFAULT_PAIR)
    problem = write_twins(specs)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    with StderrProgress() as bars:
        tasks: dict = {}  # slot → its bar

        def on_progress(slot: int, label: str, done: int, total: int) -> None:
            if slot not in tasks:
                tasks[slot] = bars.count(f"{label}: loading")
            if total:
                bars.update(tasks[slot], description=f"{label}: scoring", completed=done, total=total)

        if not bars.live:
            print(f"abtop: scoring {', '.join(specs)} on {name}…", file=sys.stderr)
        doc = asyncio.run(score_document(specs, text, name, n_ctx=args.ctx, stride=args.stride, threads=args.threads,
                                         progress=on_progress))  # fmt: skip
    sys.stdout.write(markdown(doc))
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"abtop: wrote {args.json}", file=sys.stderr)
    bad = False
    for m in doc["models"]:
        if m["bpb"] is None:
            print(f"abtop: {m['reason']}", file=sys.stderr)
            bad = bad or m["name"] is None  # it never loaded: bad input
    return 2 if bad else 0
