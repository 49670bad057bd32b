"""Does the UI keep up? A synthetic recording at 2 × 2,000 tokens/s replayed into a headless app.

Measures, in one run:

- the UI process's CPU (psutil, user + system) while streaming, in cores, beside an idle baseline
  of the same app with nothing arriving (goal: < 0.5 core);
- the lag from each token's time (its recorded time moved onto the current clock, i.e. when it
  was due) to the first time its pane's text is drawn with it (goal: < 100 ms), and, apart, the
  replay's own scheduling lag (due → handed to the pane).

    .venv/bin/python benchmarks/ui_stress.py [--rate 2000] [--seconds 5] [--size 160x45] [--gc default]

``--gc default`` leaves Python's collector as it comes (no ``tui.app.gcpolicy``): the baseline to
interleave with, one process each, since a process's collector state carries over.

``--live``: the real TUI instead, in a detached tmux pane of ``--size``, its process's CPU time
(psutil, user + system, its model workers not included) over each phase, in cores:

- idle: both bundled models loaded, no run (goal ≤ 0.02);
- streaming: Enter, both models generating ``-n`` tokens at whatever rate this machine gives
  them (printed beside it), until both have finished (a run's start and end drawn included);
- while both stream: the UI's CPU (every thread's ``schedstat``, read every 0.1 s by this script)
  from the later model's first token to the earlier model's end, the recording's own times: what
  the UI costs while the models it measures both compute (goal ≤ 0.05);
- at real rates: ``abtop replay`` of a made-up recording of two models streaming at ``--rates``
  (default 25,15 tok/s, what the bundled models reach in a race on a quiet 2-core box) with
  readings that move as live ones do (goal ≤ 0.05).

``--baseline DIR`` measures another checkout too (e.g. ``git worktree add /tmp/base main``),
phase by phase, alternating which goes first, ``--rounds`` times.

    .venv/bin/python benchmarks/ui_stress.py --live [--baseline DIR] [--rounds 2] [--rates 25,15] [--size 160x45]

``--frames``: the CPU of one frame of streamed text (the app's frame callback, both panes given a
word), warm, no model, this checkout and ``--baseline`` alternating, ``--rounds`` each.

    .venv/bin/python benchmarks/ui_stress.py --frames [--baseline DIR] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from backends.events import Token, now  # noqa: E402
from backends.stats import percentile  # noqa: E402
from tui.app import gcpolicy  # noqa: E402
from tui.app.replay import ReplayApp, synthetic  # noqa: E402
from tui.widgets.stream_view import StreamView  # noqa: E402


def cpu_seconds(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


async def main(rate: float, seconds: float, size: tuple[int, int], idle_s: float, no_card: bool = False, gc_mode: str = "app") -> None:
    header, events = synthetic(tokens_per_s=rate, seconds=seconds)
    app = ReplayApp(header, events, speed=1.0)
    app.autostart = False
    emit_lag: list[float] = []
    screen_lag: list[float] = []
    arrived: dict[int, list[float]] = {0: [], 1: []}
    flushed: dict[int, list[float]] = {0: [], 1: []}

    def on_event(slot: int, ev) -> None:
        if isinstance(ev, Token):
            t = now()
            emit_lag.append(t - ev.t)
            arrived[slot].append(ev.t)

    app.hooks.append(on_event)
    proc = psutil.Process()
    gate = asyncio.Event()
    play = app._play

    async def gated_play() -> None:  # hold the replay until the idle baseline is measured
        await gate.wait()
        await play()

    app._play = gated_play
    async with app.run_test(size=size) as pilot:
        for pane in app.panes:
            view = pane.query_one(StreamView)

            def flush(pane=pane, orig=pane.flush) -> None:
                flushed[pane.slot].extend(arrived[pane.slot])
                arrived[pane.slot].clear()
                orig()

            def draw(view=view, orig=view.visible_lines, slot=pane.slot):  # a frame of the pane's text
                t = now()
                screen_lag.extend(t - x for x in flushed[slot])
                flushed[slot].clear()
                return orig()

            pane.flush = flush
            view.visible_lines = draw
        if no_card:
            app.action_toggle_card()
        await pilot.pause()
        c0, w0 = cpu_seconds(proc), time.monotonic()
        await asyncio.sleep(idle_s)
        idle = (cpu_seconds(proc) - c0) / (time.monotonic() - w0)
        c0, w0 = cpu_seconds(proc), time.monotonic()
        gate.set()
        await asyncio.wait_for(app.run_finished.wait(), seconds * 20 + 30)
        busy_wall = time.monotonic() - w0
        busy = (cpu_seconds(proc) - c0) / busy_wall
        await pilot.pause()
        shown = [p.query_one(StreamView).text for p in app.panes]
        runs = [p.runs[0] for p in app.panes]

    n = sum(r["gen_tokens"] for r in runs)
    print(f"ui_stress: 2 panes × {rate:.0f} tok/s for {seconds:g} s ({n:,} tokens) replayed at ×1 into a headless "
          f"{size[0]}x{size[1]} app; the replay took {busy_wall:.2f} s for {app.duration:.2f} s of recording; "
          f"collector: {'the app policy (tui/app/gcpolicy.py)' if gc_mode == 'app' else 'Python default'}")  # fmt: skip
    print(f"UI process CPU: {busy:.2f} cores while streaming · {idle:.2f} cores idle   (goal < 0.5)")
    ms = lambda v: f"{v * 1000:.0f} ms"  # noqa: E731
    print(f"token → on screen: p50 {ms(percentile(screen_lag, 50))} · p99 {ms(percentile(screen_lag, 99))} · "
          f"max {ms(max(screen_lag))} over {len(screen_lag):,} tokens   (goal < 100 ms)")  # fmt: skip
    print(f"  of which replay scheduling (due → pane): p50 {ms(percentile(emit_lag, 50))} · "
          f"p99 {ms(percentile(emit_lag, 99))} · max {ms(max(emit_lag))}")  # fmt: skip
    gen = [r["gen_tps"] for r in runs]
    print(f"gen t/s shown: {', '.join(f'{g:.0f}' for g in gen)} (recorded {rate:.0f}); "
          f"text complete: {all(len(s) == r['chars'] for s, r in zip(shown, runs, strict=True))}; "
          f"mean lag {ms(statistics.fmean(screen_lag))}")  # fmt: skip


# -- --live: the real TUI in tmux ---------------------------------------------------------------
class _CpuTrace:
    """(monotonic time, on-CPU ns) of a process every ``every`` s, in a thread of this script (its
    own reads cost the box, not the traced process), to read its CPU over any window later."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        from tui_vs_bench import schedstat

        self.pid, self.every, self.points, self._schedstat = pid, every, [], schedstat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.points.append((time.monotonic(), self._schedstat(self.pid)[0]))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cores(self, t0: float, t1: float) -> float | None:
        """Cores used over [t0, t1] (each end interpolated between the points around it)."""
        pts = self.points

        def at(t: float) -> float | None:
            for (ta, ca), (tb, cb) in zip(pts, pts[1:], strict=False):
                if ta <= t <= tb:
                    return ca + (cb - ca) * (t - ta) / max(tb - ta, 1e-9)
            return None

        a, b = at(t0), at(t1)
        return None if a is None or b is None or t1 <= t0 else (b - a) / 1e9 / (t1 - t0)


def _both_streaming(rec: Path) -> tuple[float, float] | None:
    """The window in which every model of the last run streamed tokens: from the latest first
    token to the earliest end (the recording's times are ``time.monotonic()``, as this script's)."""
    from tui.files.record import read_recording

    header, events = read_recording(rec)
    slots = set(range(len(header.get("specs") or [])))
    first: dict[int, float] = {}
    ends: dict[int, float] = {}
    for slot, ev in events:
        kind = type(ev).__name__
        if kind == "Started":
            first.pop(slot, None)
            ends.pop(slot, None)
        elif kind == "Token" and slot not in first:
            first[slot] = ev.t
        elif kind in ("Finished", "Failed"):
            ends[slot] = ev.t
    if not slots or set(first) != slots or set(ends) != slots:
        return None
    t0, t1 = max(first.values()), min(ends.values())
    return (t0, t1) if t1 > t0 else None


def _cores(tui, seconds: float) -> float:
    c0, w0 = tui.cpu_s(), time.monotonic()
    time.sleep(seconds)
    return (tui.cpu_s() - c0) / (time.monotonic() - w0)


def live_models(root: Path, size: tuple[int, int], idle_s: float, n: int, tmp: Path) -> tuple[float, float, float | None, list[float]]:
    """(idle cores, streaming cores from Enter to both ends, cores while both models stream,
    gen t/s per model) of the TUI from ``root`` with both bundled models."""
    from tui_vs_bench import MODELS, PROMPT, Ends, Tui, last_runs, wait_for

    rec = tmp / f"live-{time.monotonic_ns()}.jsonl"
    tui = Tui([*MODELS, "-n", str(n), "--record", str(rec)], size, root)
    try:
        wait_for(lambda: "loaded in" in tui.screen() and tui.screen().count("loaded in") >= 2, 300, "both models loaded", tui)
        time.sleep(3.0)  # the bandwidth probe (cached after the first run) and the load's last frames
        idle = _cores(tui, idle_s)
        for keys in (["/"], ["C-u"], ["-l", PROMPT]):  # the prompt, typed as a person would (not all at once)
            tui.keys(*keys)
            time.sleep(0.5)
        trace = _CpuTrace(tui.proc.pid)
        try:
            c0, w0 = tui.cpu_s(), time.monotonic()
            tui.keys("Enter")
            ends = Ends(rec)
            wait_for(lambda: ends() >= 1, 900, "the run", tui)
            streaming = (tui.cpu_s() - c0) / (time.monotonic() - w0)
            time.sleep(0.3)  # a point after the last end
        finally:
            trace.stop()
    finally:
        tui.close()
    window = _both_streaming(rec)
    both = trace.cores(*window) if window else None
    return idle, streaming, both, [r["gen_tps"] or 0.0 for r in last_runs(rec)]


def live_replay(root: Path, size: tuple[int, int], rates: list[float], seconds: float, tmp: Path) -> float:
    """Cores the TUI from ``root`` uses replaying two models streaming at ``rates`` (its middle 80 %)."""
    from tui_vs_bench import Tui, wait_for

    from tui.app.replay import synthetic, write

    rec = tmp / "rates.jsonl"
    if not rec.exists():
        write(rec, *synthetic(rates, seconds, moving=True))
        # fields left unset are dropped, so a baseline checkout from before a field existed reads it too
        lines = rec.read_text().splitlines()
        rec.write_text("\n".join([lines[0], *(json.dumps({k: v for k, v in json.loads(x).items() if v is not None})
                                               for x in lines[1:])]) + "\n")  # fmt: skip
    tui = Tui(["replay", str(rec)], size, root)
    try:
        wait_for(lambda: "w1 " in tui.screen(), 120, "the replay's first tokens", tui)
        time.sleep(0.1 * seconds)
        return _cores(tui, 0.8 * seconds)
    finally:
        tui.close()


def live(a) -> None:
    import shutil
    import tempfile

    if shutil.which("tmux") is None:
        raise SystemExit("ui_stress --live: needs tmux.")
    size = tuple(int(x) for x in a.size.lower().split("x"))
    rates = [float(x) for x in a.rates.split(",")]
    roots = {"this checkout": ROOT} | ({f"baseline {a.baseline}": Path(a.baseline).resolve()} if a.baseline else {})
    got: dict[str, dict[str, list]] = {name: {"idle": [], "streaming": [], "both": [], "t/s": [], "replay": []} for name in roots}
    print(f"ui_stress --live: the TUI in tmux at {size[0]}x{size[1]}; load {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="ui-stress-") as tmp:
        for k in range(a.rounds):
            order = list(roots.items()) if k % 2 == 0 else list(roots.items())[::-1]
            for name, root in order:
                idle, streaming, both, tps = live_models(root, size, a.idle_s, a.n, Path(tmp))
                got[name]["idle"].append(idle)
                got[name]["streaming"].append(streaming)
                if both is not None:
                    got[name]["both"].append(both)
                got[name]["t/s"].append(tps)
                shown = "n/a" if both is None else f"{both:.4f}"
                print(f"round {k + 1} {name}: idle {idle:.4f} core · Enter to the end {streaming:.4f} core · while both "
                      f"stream {shown} core, at {' + '.join(f'{x:.1f}' for x in tps)} t/s", flush=True)  # fmt: skip
            for name, root in order:
                cores = live_replay(root, size, rates, a.seconds_live, Path(tmp))
                got[name]["replay"].append(cores)
                print(f"round {k + 1} {name}: replay at {' + '.join(f'{r:g}' for r in rates)} t/s {cores:.4f} core", flush=True)
    print("\nUI process CPU, median (min–max) over the rounds, in cores")
    span = lambda v: f"{statistics.median(v):.4f} ({min(v):.4f}–{max(v):.4f})" if v else "n/a"  # noqa: E731
    for name, g in got.items():
        print(f"  {name}: idle {span(g['idle'])} (goal ≤ 0.02) · the real models, Enter to the end {span(g['streaming'])}, "
              f"while both stream {span(g['both'])} (goal ≤ 0.05) · replayed at {'+'.join(f'{r:g}' for r in rates)} t/s "
              f"{span(g['replay'])} (goal ≤ 0.05)")  # fmt: skip
    if a.baseline:
        ours, base = got["this checkout"], got[f"baseline {a.baseline}"]
        for key in ("idle", "streaming", "both", "replay"):
            if not ours[key] or not base[key]:
                continue
            print(f"  {key}: this ÷ baseline {statistics.median(ours[key]) / max(statistics.median(base[key]), 1e-9):.2f}")
    print(f"load after: {os.getloadavg()[0]:.2f}")


FRAME_SCRIPT = """
import asyncio, random, sys, time
sys.path.insert(0, sys.argv[1])
from tui.app.replay import ReplayApp, synthetic
async def main():
    app = ReplayApp(*synthetic([46, 28], 1, moving=True), speed=1.0)
    async with app.run_test(size=(160, 45)) as pilot:
        await app.run_finished.wait(); await pilot.pause(); await asyncio.sleep(0.5)
        words, rnd = "the quick brown fox jumps over a lazy dog while bicycles roll along".split(), random.Random(1)
        def frame():
            for pane in app.panes:
                pane._pending.append(" " + rnd.choice(words))
            app._frame()
        for _ in range(50):
            frame()
        t = time.thread_time()
        for _ in range(400):
            frame()
        print((time.thread_time() - t) / 400 * 1000)
asyncio.run(main())
"""


def frames(a: argparse.Namespace) -> None:
    """``--frames``: the app's frame callback's CPU per frame (``thread_time``, ms), both panes
    given a word each frame, no model: this checkout and ``--baseline``, alternating, one process
    each. Warm caches: live, with models beside it, a frame costs 2–5× this."""
    roots = [("this checkout", str(ROOT))] + ([(f"baseline {a.baseline}", a.baseline)] if a.baseline else [])
    got: dict[str, list[float]] = {name: [] for name, _ in roots}
    for r in range(a.rounds):
        for name, root in roots if r % 2 == 0 else roots[::-1]:
            out = subprocess.run([sys.executable, "-c", FRAME_SCRIPT, root], capture_output=True, text=True, check=True)
            got[name].append(float(out.stdout.split()[-1]))
    for name, ms in got.items():
        print(f"{name}: {statistics.median(ms):.3f} ms a frame ({min(ms):.3f}–{max(ms):.3f}, {len(ms)} rounds)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=2000.0, help="tokens/s per pane (default 2000)")
    ap.add_argument("--seconds", type=float, default=5.0, help="recording length (default 5)")
    ap.add_argument("--size", default="160x45", help="terminal size (default 160x45)")
    ap.add_argument("--idle", type=float, default=2.0, help="seconds of idle baseline (default 2)")
    ap.add_argument("--no-card", action="store_true", help="hide the model cards (c) during the run")
    ap.add_argument("--gc", choices=("app", "default"), default="app",
                    help="app: the app's collector policy (tui/app/gcpolicy.py); default: Python's as it comes")  # fmt: skip
    ap.add_argument("--live", action="store_true", help="the real TUI in tmux: idle, streaming, and at real rates")
    ap.add_argument("--frames", action="store_true", help="CPU per frame of text (no model, warm), vs --baseline")
    ap.add_argument("--baseline", metavar="DIR", help="--live: another checkout to measure the same way, interleaved")
    ap.add_argument("--rounds", type=int, default=2, help="--live: rounds (default 2)")
    ap.add_argument("--rates", default="25,15", help="--live: tok/s of the two replayed models (default 25,15)")
    ap.add_argument("--idle-s", type=float, default=10.0, help="--live: seconds of idle measured (default 10)")
    ap.add_argument("--seconds-live", type=float, default=20.0, help="--live: seconds of the replayed recording (default 20)")
    ap.add_argument("-n", type=int, default=256, help="--live: tokens per model in the streaming phase (default 256)")
    a = ap.parse_args()
    if a.frames:
        frames(a)
        sys.exit(0)
    if a.live:
        sys.path.insert(0, str(Path(__file__).resolve().parent))  # tui_vs_bench: the tmux driver
        live(a)
        sys.exit(0)
    if a.gc == "default":
        gcpolicy.settle = lambda: None  # type: ignore[assignment]
    w, h = (int(x) for x in a.size.lower().split("x"))
    asyncio.run(main(a.rate, a.seconds, (w, h), a.idle, a.no_card, a.gc))
