"""Exports: one document shape for ``bench`` and the TUI's ``e`` key; CSV, Markdown, SVG.

The TUI cases replay a synthetic recording (no engine needed: the panes are the real ones); the
real-engine bench exports are covered in ``test_modes.py``.
"""

from __future__ import annotations

import csv
import io
import json

from backends.events import Loaded, ModelInfo
from backends.stats import RUN_FIELDS
from tests.support.waiting import wait_for
from tui.app.replay import ReplayApp, synthetic
from tui.files import export

HOST = {"os": "test", "cpu": "test cpu", "cores_logical": 2, "ram_bytes": 8 * 10**9, "gpus": []}


def _run(i: int, gen: float, mode: str = "alternate") -> dict:
    r = {k: None for k in RUN_FIELDS}
    r.update(run=i, warmup=False, mode=mode, ttft_s=0.1 + i / 100, prompt_tps=200.0 + i, gen_tps=gen, gen_tokens=20,
             chars=80, chars_per_s=gen * 4, tokens_per_100_chars=25.0, text="x" * 80, peak_rss_bytes=150 * 10**6)  # fmt: skip
    return r


def _doc(runs: int = 3) -> dict:
    models = []
    for name, base in (("smollm2-135m", 50.0), ("gemma3-270m", 20.0)):
        lo = Loaded(ModelInfo(name, quant="Q4_1"), 0.0, "llama.cpp", 0.5, threads=2, cpus=[0, 1])
        warm = dict(_run(0, base), warmup=True)
        models.append(export.model_entry(name, lo, [warm] + [_run(i, base + i) for i in range(runs)]))
    params = {"prompt": "p", "max_tokens": 20, "temperature": 0.0, "seed": 42, "runs": runs, "warmup": 1,
              "mode": "alternate", "n_ctx": 512}  # fmt: skip
    return export.document(models, params, host=HOST)


def test_csv_has_one_row_per_model_per_run_with_json_names():
    doc = _doc(runs=3)
    rows = list(csv.DictReader(io.StringIO(export.csv_text(doc))))
    assert len(rows) == 2 * 3  # models x counted runs; the warm-up is not a row
    run_keys = set(doc["models"][0]["runs"][0])
    for col in rows[0]:
        assert col in run_keys or col in ("model", "backend", "quant", "synthetic", "settings", "lazy_ple", "flash_attn", "depth"), col
    assert {r["model"] for r in rows} == {"smollm2-135m", "gemma3-270m"}
    assert {r["mode"] for r in rows} == {"alternate"}
    assert float(rows[0]["tokens_per_100_chars"]) == 25.0


def test_markdown_has_both_models_with_spread_and_tokenizer_neutral_speed():
    md = export.markdown(_doc(runs=3))
    lines = md.splitlines()
    assert "chars/s" in lines[0] and "tok/100 chars" in lines[0] and "mode" in lines[0]
    body = [ln for ln in lines if ln.startswith("| smollm2") or ln.startswith("| gemma3")]
    assert len(body) == 2
    assert "| alternate |" in body[0]
    assert "51.0 (50.0–52.0)" in body[0]  # gen t/s: median (min–max)
    assert "| 25.0 |" in body[0]  # tokens per 100 characters
    assert "3 run(s) after 1 warm-up" in md


def test_document_keeps_warmups_apart_and_summarizes_counted_runs():
    doc = _doc(runs=2)
    m = doc["models"][0]
    assert doc["schema"] == "abtop.bench/1" and doc["host"] == HOST
    assert len(m["runs"]) == 2 and len(m["warmup_runs"]) == 1
    assert m["summary"]["gen_tps"]["n"] == 2 and m["info"]["name"] == "smollm2-135m"
    assert m["threads"] == 2 and m["backend"] == "llama.cpp"


async def _replayed(tmp_path, runs: int = 2) -> ReplayApp:
    header, events = synthetic(tokens_per_s=40, seconds=0.5, runs=runs)
    return ReplayApp(header, events, speed=10, results_dir=tmp_path / "out")


def _messages(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_e_exports_the_runs_on_screen(tmp_path):
    app = await _replayed(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(app.run_finished, "the run to finish", 30)
        await pilot.press("e")
        await app.workers.wait_for_complete()
        await pilot.pause()
        files = sorted((tmp_path / "out").iterdir())
        assert [f.suffix for f in files] == [".csv", ".json", ".md"]
        doc = json.loads(files[1].read_text())
        assert doc["schema"] == export.SCHEMA and doc["params"]["mode"] == "race"
        assert [len(m["runs"]) for m in doc["models"]] == [2, 2]
        assert doc["models"][0]["summary"]["gen_tps"]["n"] == 2
        assert len(files[0].read_text().strip().splitlines()) == 1 + 2 * 2
        md = files[2].read_text()
        assert "synthetic-a" in md and "synthetic-b" in md
        assert any(str(files[0].with_suffix("")) in m for m in _messages(app))


async def test_s_saves_an_svg_and_says_where(tmp_path):
    app = await _replayed(tmp_path, runs=1)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(app.run_finished, "the run to finish", 30)
        await pilot.press("s")
        await pilot.pause()
        (svg,) = (tmp_path / "out").glob("*.svg")
        assert svg.read_text().lstrip().startswith("<svg")
        assert any(str(svg) in m for m in _messages(app))


async def test_e_before_any_run_says_so(tmp_path):
    header, events = synthetic(tokens_per_s=40, seconds=0.5)
    loads_only = [(s, ev) for s, ev in events if isinstance(ev, Loaded)]
    app = ReplayApp(header, loads_only, results_dir=tmp_path / "out")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(app.run_finished, "the run to finish", 30)
        await pilot.press("e")
        await pilot.pause()
        assert not (tmp_path / "out").exists()
        assert any("Nothing to export" in m for m in _messages(app))


def test_csv_and_markdown_keep_the_text_but_no_raw_escape_or_bell():
    hostile = "\x1b[2J\x1b[31mRED\x07 \x1b]0;PWNED\x07 end"
    doc = _doc(runs=1)
    doc["models"][0]["info"]["name"] = f"evil|{hostile}\nname"
    doc["models"][0]["runs"][0]["text"] = f"said {hostile}\nline two"
    doc["params"]["prompt"] = hostile
    for text in (export.csv_text(doc), export.markdown(doc)):
        assert "\x1b" not in text and "\x07" not in text
        assert "\\x1b[2J\\x1b[31mRED\\x07" in text  # kept, visibly escaped
    rows = list(csv.DictReader(io.StringIO(export.csv_text(doc))))
    assert rows[0]["text"] == "said \\x1b[2J\\x1b[31mRED\\x07 \\x1b]0;PWNED\\x07 end\nline two"
    body = [ln for ln in export.markdown(doc).splitlines() if ln.startswith("| evil")]
    assert len(body) == 1 and body[0].startswith("| evil\\|\\x1b[2J")  # one row: the | and newline escaped
    assert json.loads(json.dumps(doc))["models"][0]["runs"][0]["text"].startswith("said \x1b[2J")  # JSON keeps it
