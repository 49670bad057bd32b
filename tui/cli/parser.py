"""The ``abtop`` parser (the TUI's options, its help and examples) and how the config file's
defaults and ``--pair`` are laid under the flags. Shared by ``main`` and the commands that start
the TUI (``serve``) or show its defaults (``config``); it imports no command."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys

from backends.specs import BUNDLED, SETTINGS
from tui.cli.options import add_run_options
from tui.files import config
from tui.text.safe import safe

COMMANDS = ("bench", "info", "fit", "models", "replay", "score", "eval", "votes", "twin", "config")
CONFIGURED = ("bench",)
"""Commands that take the run options, and so the config file's defaults and pairs."""

EPILOG = """\
models:
  an alias of a bundled model ({aliases}), a path to a .gguf file,
  hf:OWNER/REPO[:QUANT] or hf:OWNER/REPO/FILE.gguf (downloaded into the Hugging Face cache),
  openai:MODEL@URL (llama-server, vLLM, LM Studio) or ollama:NAME[@URL] (p pulls a missing one),
  twin:NAME[:QUANT][:SCALE] (a shape twin: a real model's shapes, random weights; abtop twin lists them).
  Any of them may carry settings for that model alone, SPEC,key=value[,key=value...] (no quoting
  needed); the global flags stay the defaults:
{settings}

examples:
  abtop                                          the bundled pair; Enter starts
  abtop A.gguf B.gguf --prompt "Why is the sky blue?" --max-tokens 256
  abtop smollm2-135m gemma3-270m gemma3-270m,kv=q8_0   one model two ways, beside another
  abtop smollm2-135m openai:qwen@http://127.0.0.1:8080/v1
  abtop bench smollm2-135m gemma3-270m --runs 3 --json out.json
  abtop --blind --prompts suite                  blind votes over the bundled 8 prompts
  abtop hf:Qwen/Qwen2.5-3B-Instruct-GGUF ollama:qwen2.5:3b
  abtop --pair edge                              [pairs.edge] of the config file (abtop config)
  abtop serve                                    the TUI in a browser at http://127.0.0.1:8000
  abtop info gemma3-270m
  abtop bench twin:gemma-4-e2b twin:qwen2.5-3b --working-set   which weight bytes each needs
  abtop fit twin:gemma-4-e2b twin:qwen2.5-3b --ram 4G   the least RAM each needs at 2k, 8k, 32k
  abtop models --dir ~/models
  abtop score                                    bits per byte of both on a bundled text
  abtop eval                                     accuracy on ARC-Easy, PIQA, HellaSwag, WinoGrande (paired)
  abtop votes abtop-results/battles.jsonl       win rates from blind votes

keys:
  Enter run both (again)   Esc cancel / leave the prompt   / edit the prompt   q quit   ? all keys
  m race <-> alternate     c model card      g plots        t whole texts     e export   s SVG
  b blind A/B votes: 1 A better, 2 B better, = tie, x both bad   n next prompt (--prompts)
  w working-set probe on/off: each Enter ends with one probe run per local model (card: touched bytes)
  S bits per byte of the bundled text (loaded models)   v the verdict (speed, memory, bpb, votes)
  a accuracy on standard tasks with the loaded models (abtop eval's defaults; Esc stops)
  f least RAM each model needs at --ctx, predicted (abtop fit): in the pane, v and e
  z zoom the selected pane (Tab or a click selects; else the first) to the whole screen, z back
  e and s write to ./abtop-results/ (the file names are shown when written); votes to battles.jsonl.
  Ctrl+C quits from anywhere; Ctrl+Z suspends to the shell (fg brings it back, the models still loaded).

commands: {commands}, serve (abtop COMMAND --help)
"""

def settings_help(indent: str = "    ") -> str:
    """The per-model settings, one a line (``--help`` of the TUI and of ``bench``)."""
    rows = []
    for s in SETTINGS.values():
        vals = "|".join(s.choices) if s.choices else "N"
        rows.append(f"{indent}{s.key}={vals}".ljust(34) + s.help)
    return "\n".join(rows)


def version() -> str:
    try:
        return importlib.metadata.version("abtop")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="abtop",
        description="Two to four LLMs side by side on the same prompt: live tokens/s, latency, CPU, GPU and memory "
        "per model.",
        epilog=EPILOG.format(aliases=", ".join(BUNDLED), commands=", ".join(COMMANDS), settings=settings_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"abtop {version()}")
    add_run_options(p, bench=False)
    p.add_argument("--record", metavar="FILE.jsonl", default=None, help="record every event to a JSONL file")
    p.add_argument("--results", metavar="DIR", default="abtop-results", help="where e and s write (default ./abtop-results)")
    p.add_argument("--runs", type=int, default=1, help="counted runs per model on each Enter (default 1)")
    p.add_argument("--warmup", type=int, default=0, help="runs before the counted ones, not counted (default 0)")
    p.add_argument("--blind", action="store_true", help="blind A/B votes: names hidden until you vote 1, 2, = or x (b toggles)")
    return p


def configured(argv: list[str], parser_for) -> argparse.Namespace | int:
    """Parse ``argv`` with the config file's defaults under the flags, and ``--pair`` applied;
    a file or a pair that cannot be used is one sentence and exit code 2."""
    try:
        cfg = config.load()
    except config.ConfigError as exc:
        print(safe(str(exc)), file=sys.stderr)
        return 2
    args = parser_for(cfg).parse_args(argv)
    problem = config.apply_pair(args, cfg)
    if problem:
        print(safe(problem), file=sys.stderr)
        return 2
    return args


def with_defaults(p: argparse.ArgumentParser, defaults: dict) -> argparse.ArgumentParser:
    p.set_defaults(**defaults)
    return p
