"""``abtop models``: what can be compared here — bundled aliases, GGUF files in the Hugging Face
cache and in ``--dir`` directories, shape twins, and the models of an Ollama (or OpenAI-compatible)
server. The finding is ``backends/model_list.py`` (the model picker searches the same list).

Every line starts with the spec to paste into ``abtop A B``. A server that does not answer is
"not reachable", not an error: the listing is still useful without it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backends import model_list
from backends.specs import OLLAMA_DEFAULT_URL
from tui.text.format import human_bytes
from tui.text.safe import safe


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "models",
        help="list the models abtop can compare",
        description="List the bundled models, .gguf files in the Hugging Face cache and in --dir "
        "directories, and the models of an Ollama server (and of an OpenAI-compatible one with --openai).",
    )
    p.add_argument("--dir", action="append", default=[], metavar="DIR", help="also list .gguf files under DIR (repeatable)")
    p.add_argument("--ollama", default=OLLAMA_DEFAULT_URL, metavar="URL", help=f"Ollama server (default {OLLAMA_DEFAULT_URL})")
    p.add_argument("--openai", action="append", default=[], metavar="URL", help="also list an OpenAI-compatible server's models, e.g. http://127.0.0.1:8080/v1")
    p.set_defaults(func=run)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [("  " + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]).rstrip() for r in rows]


def _lines(sec: model_list.Section) -> list[str]:
    rows = [(f.spec, human_bytes(f.size) if f.size is not None else "", f.detail) for f in sec.items]
    if not rows and sec.empty:
        return [sec.title, f"  {sec.empty}"]
    return [sec.title] + _table(rows)


def run(args: argparse.Namespace) -> int:
    status = 0
    dirs = []
    for d in args.dir:
        if not Path(d).expanduser().is_dir():
            print(safe(f"abtop models: --dir {d}: no such directory."), file=sys.stderr)
            status = 2
        else:
            dirs.append(d)
    sections = model_list.find(dirs, args.ollama, args.openai)
    # names from a server or a file system: shown, never obeyed, by the terminal
    print("\n\n".join("\n".join(safe(line) for line in _lines(s)) for s in sections))
    return status
