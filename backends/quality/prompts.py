"""Prompt suites for ``--prompts``: a ``.txt`` (one prompt a line) or ``.jsonl`` (``prompt`` and
an optional ``id``), or ``suite``, the bundled eight (explanation, code, arithmetic, summarisation,
and Chinese, Vietnamese and Indonesian, where tokenizers cut text very differently)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from backends.userfiles import json_lines, read_user_text

BUNDLED_SUITE = "suite"
"""``--prompts suite``: the bundled suite (``backends/quality/data/suite.jsonl``)."""


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str | None
    """None for a lone ``--prompt``; a suite's prompts always have one."""
    text: str


def _parse_jsonl(lines: list[str], name: str) -> list[Prompt]:
    out = []
    shape = 'a .jsonl suite has one object a line, e.g. {"id": "q1", "prompt": "Why is the sky blue?"}'
    for no, d in json_lines(lines, name, shape):
        text = d.get("prompt") if isinstance(d, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f'{name} line {no}: no "prompt" text; each line needs {{"prompt": "..."}} (and an optional "id").')
        pid = d.get("id")
        out.append(Prompt(str(pid) if pid is not None else f"p{len(out) + 1}", text.strip()))
    return out


def load_prompts(source: str) -> list[Prompt]:
    """The prompts of a file or of the bundled suite. ``ValueError`` with one sentence naming the
    file (and line) when it cannot be used: missing, empty, not UTF-8, a bad line, a repeated id."""
    if source == BUNDLED_SUITE:
        text = resources.files("backends.quality").joinpath("data/suite.jsonl").read_text(encoding="utf-8")
        return _parse_jsonl(text.splitlines(), "suite.jsonl")
    path = Path(source)
    missing = f"give a .txt (one prompt a line), a .jsonl, or `{BUNDLED_SUITE}` for the bundled suite"
    text = read_user_text(path, f"--prompts {source}", kind=".txt or .jsonl file", missing=missing)
    lines = text.splitlines()
    if path.suffix.lower() == ".jsonl":
        prompts = _parse_jsonl(lines, path.name)
    else:
        prompts = [Prompt(f"p{k}", line.strip()) for k, line in enumerate((ln for ln in lines if ln.strip()), start=1)]
    if not prompts:
        raise ValueError(f"--prompts {source}: holds no prompt.")
    seen: set[str] = set()
    for p in prompts:
        if p.id in seen:
            raise ValueError(f"--prompts {source}: the id {p.id!r} is used twice; each prompt needs its own id.")
        seen.add(p.id)
    return prompts
