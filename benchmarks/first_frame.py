"""How long from starting ``abtop`` to its first frame on the terminal (goal < 1 s).

Starts the real TUI in a detached tmux session of the given size and polls the pane every 5 ms
until both panes' borders are drawn (the models may still be loading: a frame is what a person
sees). Prints each try and the median. Needs tmux.

    .venv/bin/python benchmarks/first_frame.py [--tries 5] [--size 160x45]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def one(size: tuple[int, int], name: str) -> float | None:
    abtop = str(Path(sys.executable).with_name("abtop"))
    t0 = time.monotonic()
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1]), abtop], check=True, cwd=ROOT)
    try:
        while time.monotonic() - t0 < 20:
            pane = subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout
            if pane.count("╭") + pane.count("┌") + pane.count("▔") >= 2 or "smollm2" in pane:
                return time.monotonic() - t0
            time.sleep(0.005)
        return None
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tries", type=int, default=5)
    ap.add_argument("--size", default="160x45")
    a = ap.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("first_frame: needs tmux.")
    w, h = (int(x) for x in a.size.split("x"))
    times = [one((w, h), f"abtop-ff-{os.getpid()}-{i}") for i in range(a.tries)]
    for i, t in enumerate(times):
        print(f"try {i + 1}: {'no frame in 20 s' if t is None else f'{t * 1000:.0f} ms'}")
    ok = [t for t in times if t is not None]
    if ok:
        print(f"first frame at {a.size}: median {statistics.median(ok) * 1000:.0f} ms (goal < 1000 ms)")


if __name__ == "__main__":
    main()
