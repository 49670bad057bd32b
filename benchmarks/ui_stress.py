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
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=2000.0, help="tokens/s per pane (default 2000)")
    ap.add_argument("--seconds", type=float, default=5.0, help="recording length (default 5)")
    ap.add_argument("--size", default="160x45", help="terminal size (default 160x45)")
    ap.add_argument("--idle", type=float, default=2.0, help="seconds of idle baseline (default 2)")
    ap.add_argument("--no-card", action="store_true", help="hide the model cards (c) during the run")
    ap.add_argument("--gc", choices=("app", "default"), default="app",
                    help="app: the app's collector policy (tui/app/gcpolicy.py); default: Python's as it comes")  # fmt: skip
    a = ap.parse_args()
    if a.gc == "default":
        gcpolicy.settle = lambda: None  # type: ignore[assignment]
    w, h = (int(x) for x in a.size.lower().split("x"))
    asyncio.run(main(a.rate, a.seconds, (w, h), a.idle, a.no_card, a.gc))
