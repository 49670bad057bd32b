"""Does the TUI slow the models it measures? Its figures ÷ headless ``bench``'s, pair by pair.

Per mode and size, one TUI stays open (loaded, its first plan run) and the measured runs
alternate: bench, TUI, bench, TUI, bench, … (a pair's closing bench run opens the next pair).
Each TUI run is compared with the mean of the bench runs on either side of it. This box drifts
by several per cent from one minute to the next, and by up to 2× in a slow spell: a drift that is
steady over a pair is the same in the TUI's run as in the mean of its two neighbours, where one
neighbour alone (a pair of two runs) read up to ±8 % from it.

- the TUI, in a detached tmux pane of the given size, driven as a person would: started with
  ``-p PROMPT --warmup 1`` (that first plan warms the workers up and is not counted), then, for
  each pair, a second's pause and Enter; its figures come from its ``--record`` file. It waits,
  loaded and idle (~0.005 core), while bench runs: a TUI started afresh for every pair put its
  start, its load and its first plan (~15 s) between each TUI run and its bench neighbours, and
  the neighbours' mean then missed drifts that the pairs caught once the TUI stayed open;
- ``abtop bench --warmup 1 --runs 1 --record``: the same, headless.

Each side's measured run is the second of a plan of one warm-up and one counted run, so each
model's measured turn comes right after the same turn as in the other: in alternate mode the
models take turns going first from one run to the next (``Session.run``), and a model's TTFT
read ~8 % slower right after the other model's generation than right after its own.

Both recordings are read with the same code (``backends.stats.Runs``), so gen t/s, prompt t/s and
TTFT are defined alike. Prints each pair's TUI ÷ bench ratio per model (bench: the mean of its two
neighbours, both printed), then per mode and size the
median and range of the ratios (goal: gen t/s and prompt t/s ≥ 0.97, TTFT ≤ 1/0.97 = 1.03), beside
the same ratio taken between bench runs alone (each bench run ÷ its two neighbours): the spread the
box gives with no TUI at all. Where the two spreads are alike, a difference of a few per cent
cannot show in the rates; the waited shares (``Waits``: how much longer each model waited for a
core in the TUI's runs than in bench's, in its prompt and in its generation) show it.
Wall-clock ratios: run it on a quiet machine (``uptime`` is printed before and after).

    .venv/bin/python benchmarks/tui_vs_bench.py [--pairs 5] [-n 256] [--modes race,alternate] [--sizes 160x45,80x24]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from backends.stats import Runs  # noqa: E402
from tui.files.record import read_recording  # noqa: E402

PROMPT = "Write a detailed essay about the history of the bicycle, its inventors and its social impact."
MODELS = ["smollm2-135m", "gemma3-270m"]
FIGURES = [("gen_tps", "gen t/s"), ("prompt_tps", "prompt t/s"), ("ttft_s", "TTFT")]
_names = itertools.count()


def abtop_command(args: list[str], root: Path = ROOT) -> list[str]:
    """``abtop ARGS`` from the checkout at ``root`` (its code first on the path, not an installed copy)."""
    return ["env", f"PYTHONPATH={root}", sys.executable, "-m", "tui.cli", *args]


class Tui:
    """The TUI in a detached tmux session: its screen, its keys, its process."""

    def __init__(self, args: list[str], size: tuple[int, int], root: Path = ROOT) -> None:
        self.name = f"abtop-bench-{os.getpid()}-{next(_names)}"
        cmd = f"cd {shlex.quote(str(root))} && exec " + shlex.join(abtop_command(args, root))
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", str(size[0]), "-y", str(size[1]), cmd],
                       check=True)  # fmt: skip
        pid = subprocess.run(["tmux", "display", "-p", "-t", self.name, "#{pane_pid}"], capture_output=True, text=True)
        self.proc = psutil.Process(int(pid.stdout))

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of the UI process itself; its model workers are its children."""
        t = self.proc.cpu_times()
        return t.user + t.system

    def alive(self) -> bool:
        return self.proc.is_running() and self.proc.status() != psutil.STATUS_ZOMBIE

    def close(self) -> None:
        """``q``, as a person quits; the session is killed if the app has not gone in 20 s."""
        try:
            if self.alive():
                self.keys("q")
                deadline = time.monotonic() + 20
                while self.alive() and time.monotonic() < deadline:
                    time.sleep(0.1)
        except psutil.Error:
            pass
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def wait_for(check, timeout: float, what: str, tui: Tui | None = None) -> None:
    """Poll ``check()`` until true; past ``timeout`` s, stop with a sentence (and the screen)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            screen = f"\nthe screen:\n{tui.screen()}" if tui is not None else ""
            raise SystemExit(f"tui_vs_bench: {what} did not happen within {timeout:.0f} s.{screen}")
        if tui is not None and not tui.alive():
            raise SystemExit(f"tui_vs_bench: the TUI ended before {what}.")
        time.sleep(0.5)


class Ends:
    """Runs that ended in every slot of the recording a TUI is writing (the least of the slots),
    read as it grows: only the lines added since the last look. Parsing the whole file at every
    look, five times a second, cost this script ~2 % of a core while the TUI's models ran
    (``perf sched``), where bench's runs have no watcher at all: it biased the ratios against the
    TUI. ``wait_for`` looks twice a second."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._at = 0
        self._partial = b""
        self._ends: list[int] | None = None

    def __call__(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._at)
                data = f.read()
        except OSError:
            return 0
        self._at += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            if self._ends is None:
                self._ends = [0] * len(json.loads(line).get("specs") or [])
            elif b'"Finished"' in line or b'"Failed"' in line:
                d = json.loads(line)
                if d.get("type") in ("Finished", "Failed"):
                    self._ends[d["slot"]] += 1
        return min(self._ends) if self._ends else 0


def last_runs(path: Path) -> list[dict]:
    """Per slot, the figures of the last run that was neither a warm-up nor a failure."""
    header, events = read_recording(path)
    feeds = [Runs() for _ in header["specs"]]
    out: list[dict | None] = [None] * len(feeds)
    for slot, ev in events:
        ended = feeds[slot].add(ev)
        if ended is not None and not ended.warmup and ended.error is None and ended.finished is not None:
            out[slot] = ended.result()
    if any(r is None for r in out):
        raise SystemExit(f"tui_vs_bench: {path} holds no finished run for every model.")
    return out  # type: ignore[return-value]


def schedstat(pid: int) -> tuple[int, int]:
    """(ns on a CPU, ns waiting for one) over every thread of ``pid``, from each thread's
    ``/proc/PID/task/TID/schedstat`` (exact, where ``stat`` counts 10 ms ticks); a thread that
    ended is skipped, a process that ended is ``OSError``."""
    on = waited = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, ValueError):
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                a, b, _ = f.read().split()
            on, waited = on + int(a), waited + int(b)
    return on, waited


class Waits:
    """How long each model waited for a core: every thread's ``/proc/PID/task/TID/schedstat`` of
    the watched process's children (the model workers), read every 50 ms in a thread of this
    script. One tracer for both sides, watching the side that runs (so each side's runs bear the
    same tracer, ~0.003 core).

    A model's waited share in a window, waited ÷ (on a core + waited), is what any other work on
    the box (the TUI, tmux, bench's own parent, this script) took from it there. The box's slow
    spells slow a model without making it wait (memory bandwidth, the host), so the rates drift by
    ±15 % from run to run while this share moves by a point or two: the difference between the
    sides is what the TUI costs the models, without the drift."""

    EVERY = 0.05

    def __init__(self) -> None:
        self.points: list[tuple[float, dict[int, tuple[int, int]]]] = []
        self._root: psutil.Process | None = None
        self._pids: list[int] = []
        self._scan = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def watch(self, pid: int) -> None:
        """From now on, the children of ``pid``."""
        self._root, self._scan = psutil.Process(pid), 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            if self._root is not None and now >= self._scan:  # a worker started since: its pid (~5 ms)
                with contextlib.suppress(psutil.Error):
                    self._pids = [c.pid for c in self._root.children(recursive=True)]
                self._scan = now + 1.0
            snap = {}
            for pid in self._pids:
                with contextlib.suppress(OSError):  # a worker that ended
                    snap[pid] = schedstat(pid)
            self.points.append((now, snap))
            self._stop.wait(self.EVERY)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def share(self, pid: int | None, t0: float, t1: float) -> float | None:
        """``pid``'s waited share over the points around [t0, t1] (a model idle there adds nothing
        to either side of the share), or None."""
        pts = [(t, snap[pid]) for t, snap in self.points if pid in snap]
        a = next((p for p in reversed(pts) if p[0] <= t0), None)
        b = next((p for p in pts if p[0] >= t1), None)
        if a is None or b is None:
            return None
        on, waited = b[1][0] - a[1][0], b[1][1] - a[1][1]
        return waited / (on + waited) if on + waited > 0 else None


def run_windows(path: Path) -> list[tuple[int | None, float, float, float] | None]:
    """Per slot, (worker pid, start, first token, last token) of its last run in a recording."""
    header, events = read_recording(path)
    out: list = [None] * len(header["specs"])
    pids: dict[int, int | None] = {}
    for slot, ev in events:
        kind = type(ev).__name__
        if kind == "Loaded":
            pids[slot] = ev.pid
        elif kind == "Started":
            out[slot] = [pids.get(slot), ev.t, None, None]
        elif kind == "Token" and out[slot] is not None:
            out[slot][2] = out[slot][2] or ev.t
            out[slot][3] = ev.t
    return [tuple(w) if w is not None and w[2] is not None else None for w in out]


def waited(waits: Waits, path: Path) -> list[tuple[float | None, float | None]]:
    """Per slot, (waited share while reading the prompt, while generating) in its last run."""
    return [(waits.share(w[0], w[1], w[2]), waits.share(w[0], w[2], w[3])) if w else (None, None)
            for w in run_windows(path)]  # fmt: skip


PLAN = ["--warmup", "1", "--runs", "1"]
"""Both sides' plans: the measured run follows a warm-up run (see the docstring)."""


class TuiRuns:
    """One TUI, open for a mode and size: its first plan at the start, then a measured plan at
    each ``measure()`` (Enter), as a person runs the same prompt again."""

    def __init__(self, mode: str, size: tuple[int, int], n: int, out: Path, waits: Waits) -> None:
        self.out, self.waits = out, waits
        self.tui = Tui([*MODELS, "-p", PROMPT, "-n", str(n), "--mode", mode, *PLAN, "--record", str(out)], size)
        self.ends = Ends(out)
        self.plans = 1
        wait_for(lambda: self.ends() >= 2, 900, "the first plan (warming up)", self.tui)

    def measure(self) -> tuple[list[dict], list]:
        """One more plan (Enter); the figures of its counted run, and how long each model waited."""
        self.waits.watch(self.tui.proc.pid)
        time.sleep(1.0)  # as a person would: read the result, then press Enter
        self.plans += 1
        self.tui.keys("Enter")
        wait_for(lambda: self.ends() >= 2 * self.plans, 900, f"plan {self.plans} after Enter", self.tui)
        time.sleep(2 * Waits.EVERY)  # a point after the last token
        return last_runs(self.out), waited(self.waits, self.out)

    def close(self) -> None:
        self.tui.close()


def run_bench(mode: str, n: int, out: Path, waits: Waits) -> tuple[list[dict], list]:
    args = ["bench", *MODELS, "-p", PROMPT, "-n", str(n), "--mode", mode, *PLAN, "--record", str(out)]
    proc = subprocess.Popen(abtop_command(args), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    waits.watch(proc.pid)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"tui_vs_bench: bench failed ({proc.returncode}): {err.strip()[-400:]}")
    return last_runs(out), waited(waits, out)


def ratio(tui: float | None, bench: float | None, name: str) -> float | None:
    """TUI ÷ bench, as a speed: for TTFT (a time) bench ÷ TUI, so below 1 is the TUI slower for all three."""
    if not tui or not bench:
        return None
    return bench / tui if name == "ttft_s" else tui / bench


def _cells(table: dict, where: tuple, slot: int, tui: list[dict], before: list[dict], after: list[dict]) -> list[str]:
    """One model's figures in a pair: the TUI's, bench's on either side, the ratio (kept in ``table``)."""
    cells = []
    for key, label in FIGURES:
        sides = [before[slot][key], after[slot][key]]
        bench = statistics.fmean(sides) if all(sides) else None
        r = ratio(tui[slot][key], bench, key)
        if r is None:
            cells.append(f"{label} n/a")
            continue
        table.setdefault((*where, label), []).append(r)
        cells.append(f"{label} {tui[slot][key]:.3g}/({sides[0]:.3g}, {sides[1]:.3g}) = {r:.3f}")
    return cells


def _waited_cells(table: dict, where: tuple, slot: int, tui: list, before: list, after: list) -> list[str]:
    """One model's waited shares in a pair (``Waits``), in %: the TUI's, bench's on either side, and
    the TUI's minus their mean in points (kept in ``table``)."""
    cells = []
    for i, label in enumerate(("prompt", "gen")):
        mine, sides = tui[slot][i], [before[slot][i], after[slot][i]]
        if mine is None or None in sides:
            cells.append(f"waited in {label} n/a")
            continue
        d = 100 * (mine - statistics.fmean(sides))
        table.setdefault((*where, f"{label} wait"), []).append(d)
        cells.append(f"waited in {label} {100 * mine:.1f}%/({100 * sides[0]:.1f}, {100 * sides[1]:.1f}) {d:+.1f}")
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=5, help="pairs per mode and size (default 5)")
    ap.add_argument("-n", type=int, default=256, help="tokens per run (default 256, as the issue)")
    ap.add_argument("--modes", default="race,alternate")
    ap.add_argument("--sizes", default="160x45,80x24")
    a = ap.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("tui_vs_bench: needs tmux.")
    sizes = [tuple(int(x) for x in s.lower().split("x")) for s in a.sizes.split(",")]
    print(f"uptime before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"(1/5/15 min load, {os.cpu_count()} CPUs)")  # fmt: skip
    print(f"models {' '.join(MODELS)}, -n {a.n}; ratio = TUI ÷ the mean of the bench runs before and after it (TTFT: bench ÷ TUI), < 1 = the TUI slower")
    table: dict[tuple, list[float]] = {}
    waits_table: dict[tuple, list[float]] = {}
    control: dict[tuple, list[float]] = {}
    waits = Waits()
    with tempfile.TemporaryDirectory(prefix="tui-vs-bench-") as tmp:
        for mode, size in itertools.product(a.modes.split(","), sizes):
            where = f"{mode} {size[0]}x{size[1]}"
            tui_runs = TuiRuns(mode, size, a.n, Path(tmp, f"tui-{where}.jsonl".replace(" ", "_")), waits)
            try:
                before = run_bench(mode, a.n, Path(tmp, f"bench-{where}-0.jsonl".replace(" ", "_")), waits)
                benches = [before[0]]
                for k in range(a.pairs):
                    tag = f"{where} pair {k + 1}"
                    tui = tui_runs.measure()
                    after = run_bench(mode, a.n, Path(tmp, f"bench-{where}-{k + 1}.jsonl".replace(" ", "_")), waits)
                    benches.append(after[0])
                    for slot, model in enumerate(MODELS):
                        print(f"{tag} {model:<13} " + " · ".join(_cells(table, (mode, size, model), slot, tui[0], before[0], after[0])))
                        print(f"{'':>{len(tag)}} {'':<13} " + " · ".join(_waited_cells(waits_table, (mode, size, model), slot, tui[1], before[1], after[1])), flush=True)
                    before = after
                for k in range(1, len(benches) - 1):  # the same ratio, bench against its own neighbours
                    for slot, model in enumerate(MODELS):
                        _cells(control, (mode, size, model), slot, benches[k], benches[k - 1], benches[k + 1])
            finally:
                tui_runs.close()
    waits.stop()
    print("\nmedian (min–max) of the pairs' ratios; goal ≥ 0.97; then the box's own spread: each bench run but the first and")
    print("last ÷ the mean of the bench runs before and after it, as if it were the TUI's (they are twice as far apart)")
    for key, rs in table.items():
        mode, size, model, label = key
        cs = control.get(key) or [math.nan]
        print(f"  {mode:<9} {size[0]}x{size[1]:<3} {model:<13} {label:<10} {statistics.median(rs):.3f} ({min(rs):.3f}–{max(rs):.3f}), {len(rs)} pairs"
              f" · bench ÷ bench {statistics.median(cs):.3f} ({min(cs):.3f}–{max(cs):.3f})")  # fmt: skip
    print("\nhow much longer each model waited for a core in the TUI than in bench, in % of its time: median (min–max) of the pairs")
    for (mode, size, model, label), ds in waits_table.items():
        print(f"  {mode:<9} {size[0]}x{size[1]:<3} {model:<13} {label:<10} {statistics.median(ds):+.2f} ({min(ds):+.2f} – {max(ds):+.2f}), {len(ds)} pairs")
    print(f"uptime after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
