"""A failed export write loses nothing else: each file is written whole or not at all (a temp file
in the same folder, then a rename), a failure is one sentence, the others are still written.

Real failures only: ``/dev/full`` (every write is ENOSPC) and ``RLIMIT_FSIZE``, the kernel's own
file-size limit, which fails a write past it with EFBIG on a regular file, root or not (chmod does
not stop root; a full disk cannot be made here).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import stat
import subprocess
import sys

import pytest

from tests.support.waiting import wait_for
from tui.app.replay import ReplayApp, synthetic
from tui.files import export

ABTOP = [sys.executable, "-m", "tui.cli.main"]


@contextlib.contextmanager
def file_size_limit(n: int):
    """Writes past ``n`` bytes fail with EFBIG (SIGXFSZ ignored, as a shell's ``ulimit -f``)."""
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, old_handler)


def test_bench_with_an_unwritable_export_writes_the_others_prints_the_table_and_exits_1(tmp_path):
    ok_csv, ok_md, rec = tmp_path / "ok.csv", tmp_path / "ok.md", tmp_path / "run.jsonl"
    p = subprocess.run(
        [*ABTOP, "bench", "smollm2-135m", "-p", "Hi", "-n", "4", "--runs", "1", "--warmup", "0", "--ctx", "512",
         "--json", "/dev/full", "--csv", str(ok_csv), "--md", str(ok_md), "--record", str(rec)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    failed = [line for line in p.stderr.splitlines() if "/dev/full" in line]
    assert len(failed) == 1 and "could not write" in failed[0] and "no space" in failed[0].lower(), p.stderr
    assert "| model |" in p.stdout  # the table is still printed
    assert ok_csv.read_text().count("\n") == 2 and "| model |" in ok_md.read_text()
    assert rec.read_text().count("\n") > 3
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)  # written to, never replaced by a file


def test_bench_record_to_a_full_device_is_one_sentence_and_the_run_goes_on(tmp_path):
    out = tmp_path / "out.json"
    p = subprocess.run(
        [*ABTOP, "bench", "smollm2-135m", "-p", "Hi", "-n", "4", "--runs", "1", "--warmup", "0", "--ctx", "512",
         "--record", "/dev/full", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert any("/dev/full" in line and "record" in line for line in p.stderr.splitlines()), p.stderr
    assert json.loads(out.read_text())["models"][0]["runs"][0]["gen_tokens"] > 0


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old\n")
    with file_size_limit(1000), pytest.raises(OSError):
        export.write_atomic(path, "x" * 5000)
    assert path.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["out.json"]  # no temp file left behind
    with file_size_limit(1000), pytest.raises(OSError):
        export.write_atomic(tmp_path / "new.json", "x" * 5000)
    assert sorted(os.listdir(tmp_path)) == ["out.json"]  # no 0-byte or partial new file


def test_write_atomic_keeps_a_link_and_the_file_mode(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    export.write_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def _messages(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_e_with_a_failed_write_says_so_and_writes_the_others(tmp_path):
    header, events = synthetic(tokens_per_s=2000, seconds=2.0)  # 4,000 tokens: JSON and CSV are big
    out = tmp_path / "out"
    out.mkdir()
    app = ReplayApp(header, events, speed=50, results_dir=out)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await wait_for(app.run_finished, "the run to finish", 60)
        with file_size_limit(8000):  # the Markdown table fits, the JSON and CSV do not
            await pilot.press("e")
            await app.workers.wait_for_complete()
        await pilot.pause()
        files = sorted(f.suffix for f in out.iterdir())
        assert files == [".md"], files  # no 0-byte or cut JSON/CSV
        said = " ".join(_messages(app))
        assert "Could not write" in said and ".json" in said and ".csv" in said and ".md" in said, said
        with file_size_limit(8000):  # s: the SVG is larger than that
            await pilot.press("s")
            await pilot.pause()
        assert not list(out.glob("*.svg"))
        assert any("Could not save the screenshot" in m for m in _messages(app)), _messages(app)


async def test_e_into_a_folder_that_takes_no_file_says_where_and_why_in_the_footer_line(tmp_path, monkeypatch):
    """Every file refused for one cause (a read-only folder, a full disk; here ``ulimit -f``, as
    root writes to a read-only mode): at 80x24 the toast takes the one footer line, and the
    folder and the cause must fit on it. It named each file's full name and cause, three times
    (~150 columns), so the line ended before the folder."""
    from tests.terminal.test_terminal_safety import screen_lines

    header, events = synthetic(tokens_per_s=200, seconds=0.5)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "abtop-results").mkdir()
    app = ReplayApp(header, events, speed=50, results_dir="abtop-results")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(app.run_finished, "the run to finish", 60)
        with file_size_limit(1):
            await pilot.press("e")
            await app.workers.wait_for_complete()
        await pilot.pause()
        assert not list((tmp_path / "abtop-results").iterdir())
        said = "Could not write the exports in abtop-results: File too large."
        assert said in _messages(app), _messages(app)
        assert any(said in line for line in screen_lines(app)), screen_lines(app)[-2:]
