"""``--record FILE.jsonl``: every event of both panes, with its timestamp, one JSON object a line.

The first line is a header (``schema``, the model specs); each further line is an event as
``backends.events.to_dict`` writes it, plus ``slot``. Lines are flushed as they are written, so a
crash loses nothing already seen.
"""

from __future__ import annotations

import json
from pathlib import Path

from backends.catalog import public_spec
from backends.events import Event, from_dict, to_dict

SCHEMA = "abtop.record/1"


class Recorder:
    def __init__(self, path: str | Path, specs: list[str]) -> None:
        self.path = Path(path)
        self._f = self.path.open("w", encoding="utf-8", buffering=1)
        self._f.write(json.dumps({"schema": SCHEMA, "specs": [public_spec(s) for s in specs]}) + "\n")

    def write(self, slot: int, ev: Event) -> None:
        d = to_dict(ev)
        d["slot"] = slot
        self._f.write(json.dumps(d, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._f.close()


def read_recording(path: str | Path) -> tuple[dict, list[tuple[int, Event]]]:
    """The header and the (slot, event) pairs of a recording."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    if header.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not an abtop recording (schema {header.get('schema')!r}).")
    out = []
    for line in lines[1:]:
        if line.strip():
            d = json.loads(line)
            slot = d.pop("slot")
            out.append((slot, from_dict(d)))
    return header, out
