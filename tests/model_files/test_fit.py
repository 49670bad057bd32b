"""``abtop fit``: KV sizes against llama.cpp's own plan, the prediction against a measured run
(``--check``), the verdicts, and bad input. Real engine and real files throughout: the bundled
models and small twins of the three architectures (``tiny_twins``)."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from backends.card.gguf import read_header
from backends.engines.llamacpp import LlamaCppBackend
from backends.fit.kvsize import kv_size, plain_kv_bytes
from backends.fit.predict import Plan, context_row, verdict
from backends.fit.weights import experts_back, weights
from backends.twins.writer import plan_header, twin_path, write_plan_file
from backends.units import parse_size
from tests.conftest import TINY_TWINS
from tui.cli.main import main

MiB = 1 << 20


def _plan(path, ctxs, **kv_types) -> dict:
    return asyncio.run(LlamaCppBackend("x", path).plan(ctxs, **kv_types))


def test_kv_bytes_are_the_engines_at_every_context(tiny_twins, smollm2_path, gemma3_path, tmp_path):
    """Window caches (gemma3, gemma4), shared-KV layers (gemma4 at full size: 20 of 35 layers),
    plain caches (llama, qwen2, olmoe), contexts padded to 256: the header's figure is the
    engine's, byte for byte (f16). The full-size twins are planned from their sparse header-only
    files (nothing is read but the header)."""
    ctxs = [300, 2048, 5000]
    full = {f"{n} full": write_plan_file(n, "Q4_K", 1.0, path=tmp_path / f"{n}.gguf") for n in TINY_TWINS}
    paths = {"smollm2": smollm2_path, "gemma3": gemma3_path, **tiny_twins, **full}
    kinds = set()
    for name, path in paths.items():
        h = read_header(path)
        for pc in _plan(path, ctxs)["contexts"]:
            k = kv_size(h, pc["n_ctx"])
            assert (k.bytes, k.cells, k.swa_cells, k.layers) == (pc["kv_bytes"], pc["n_ctx"], pc["swa_cells"], pc["kv_layers"]), name
            kinds |= {"window"} if k.swa_layers else set()
            kinds |= {"shared"} if k.shared_layers else set()
        assert [kv_size(h, c).cells for c in ctxs] == [-(-c // 256) * 256 for c in ctxs]
    assert kinds == {"window", "shared"}  # both of llama.cpp's savings were exercised


@pytest.mark.parametrize("type_k,type_v", [("q8_0", "q8_0"), ("q4_0", "f16")])
def test_kv_types_are_sized_as_the_engine_sizes_them(tiny_twins, gemma3_path, type_k, type_v):
    """Quantised caches count their blocks. The engine's figure comes from its log, in MiB with two
    decimals per cache: equal within that rounding."""
    for path in (gemma3_path, tiny_twins["gemma-4-e2b"]):
        h = read_header(path)
        plan = _plan(path, [1000, 4096], type_k=type_k, type_v=type_v)
        for pc in plan["contexts"]:
            k = kv_size(h, pc["n_ctx"], type_k=type_k, type_v=type_v)
            caches = 1 + (k.swa_cells is not None)
            assert (pc["type_k"], pc["type_v"]) == (type_k, type_v)
            assert abs(k.bytes - pc["kv_bytes"]) <= caches * 0.005 * MiB
            assert k.bytes < kv_size(h, pc["n_ctx"]).bytes  # smaller than f16


def test_the_plain_formula_overstates_window_and_shared_kv_and_matches_a_plain_model():
    gemma, qwen = plan_header("gemma-4-e2b"), plan_header("qwen2.5-3b")
    ctx = 32768
    assert plain_kv_bytes(gemma, ctx) > 5 * kv_size(gemma, ctx).bytes  # 35 layers × 512 dims vs what owns KV
    assert plain_kv_bytes(qwen, ctx) == kv_size(qwen, ctx).bytes


def test_what_stays_resident_per_architecture():
    """From the full-size twins' headers: the PLE table and an untied embedding are looked up;
    repacked experts are anonymous (nothing to page); with repack off they are file pages."""
    gemma, qwen, olmoe = (plan_header(n) for n in ("gemma-4-e2b", "qwen2.5-3b", "olmoe-1b-7b"))
    g = weights(gemma)
    assert {lk.name for lk in g.lookups} == {"token_embd.weight", "per_layer_token_embd.weight"}
    assert "per_layer_token_embd.weight" not in g.repacked_names and not g.experts
    lazy = {lk.name: lk.prefaulted for lk in weights(gemma, lazy_ple="on").lookups}
    auto = {lk.name: lk.prefaulted for lk in g.lookups}
    assert auto["per_layer_token_embd.weight"] and not lazy["per_layer_token_embd.weight"]  # < 4 GiB: auto reads it in
    q = weights(qwen, repack=False)
    assert q.repacked == 0 and q.every_file >= sum(t.n_bytes for t in qwen.tensors)  # tied: the output reads it whole
    o = weights(olmoe)
    assert o.experts_repacked and o.experts_file == 0 and o.experts_used < o.experts
    off = weights(olmoe, repack=False)
    assert off.experts_file == off.experts_bytes == o.experts_bytes and off.repacked == 0
    n90 = experts_back(o.experts_used, o.experts, 0.9)
    assert 1 - (1 - o.experts_used / o.experts) ** n90 >= 0.9 > 1 - (1 - o.experts_used / o.experts) ** (n90 - 1)


def _row(h, w, ctx=4096):
    plan = Plan(ctx, None, MiB, MiB, 8 * MiB, 4 * MiB)
    return context_row(h, w, ctx, plan, n_vocab=1000, gen_tokens=64, sampled=True)


def test_verdicts_against_a_budget():
    gemma = plan_header("gemma-4-e2b")
    w = weights(gemma)
    row = _row(gemma, w)
    least = row["least_ram_bytes"]
    ple = next(lk.bytes for lk in w.lookups if "per_layer" in lk.name)
    bpt = 1 << 30
    assert verdict(row, w, least, bytes_per_token=bpt)[0] == "fits with lazy PLE"
    assert verdict(row, w, least, bytes_per_token=bpt, lazy_ple="on")[0] == "fits"
    assert verdict(row, w, least + ple, bytes_per_token=bpt)[0] == "fits"
    assert verdict(row, w, least - 1, bytes_per_token=bpt)[0] == "does not fit"
    assert verdict(row, w, None, bytes_per_token=bpt) == (None, None)

    olmoe = plan_header("olmoe-1b-7b")
    on, off = weights(olmoe), weights(olmoe, repack=False)
    v, why = verdict(_row(olmoe, on), on, _row(olmoe, on)["least_ram_bytes"] - 1, bytes_per_token=bpt)
    assert v == "does not fit" and "--repack off" in why
    row = _row(olmoe, off)
    v, why = verdict(row, off, row["least_ram_bytes"] - off.experts_bytes // 2, bytes_per_token=bpt,
                     bandwidth_gbs=lambda: 10.0, disk_gbs=1.0)  # fmt: skip
    assert v.startswith("fits only if") and "50%" in why and "slower per token" in why


def test_sizes_parse_as_they_are_shown():
    assert parse_size("4G") == parse_size("4 GB") == 4 * 10**9
    assert parse_size("4GiB") == 4 << 30 and parse_size("512M") == 512 * 10**6 and parse_size("1000") == 1000
    for bad in ("4X", "G", "-1G", "nanG", "0"):
        with pytest.raises(ValueError, match="is not a size"):
            parse_size(bad)


def test_an_unwritten_twin_is_planned_from_a_sparse_header_only_file(tiny_twins, tmp_path):
    for name, scale in TINY_TWINS.items():
        p = write_plan_file(name, "Q4_K", scale, path=tmp_path / f"{name}.gguf")
        real = read_header(tiny_twins[name])
        h = read_header(p)
        assert p.stat().st_size == tiny_twins[name].stat().st_size and h.data_offset == real.data_offset
        assert [(t.name, t.offset, t.n_bytes) for t in h.tensors] == [(t.name, t.offset, t.n_bytes) for t in real.tensors]
        assert p.stat().st_blocks * 512 < p.stat().st_size // 10  # the weights are a hole


def test_servers_are_na_and_no_gpu_is_said(tmp_path, monkeypatch, capsys):
    """A prediction of a twin writes nothing to the cache; a server's model is n/a with why; on a
    CPU build --vram gets its sentence."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    out = tmp_path / "fit.json"
    specs = ["openai:m@http://127.0.0.1:9/v1", "twin:qwen2.5-3b:0.03", "twin:gemma-4-e2b:0.1"]
    assert main(["fit", *specs, "--ctx", "1024,2048", "--ram", "1G", "--vram", "6G", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["schema"] == "abtop.fit/1" and [m["spec"] for m in doc["models"]] == specs
    server, qwen, gemma = doc["models"]
    assert server["na"] and "server" in server["na"] and not server["contexts"] and "n/a: " in text
    keys = {"ctx", "kv_bytes", "compute_bytes", "resident_bytes", "pageable_bytes", "least_ram_bytes", "verdict"}
    for m in (qwen, gemma):
        assert [r["ctx"] for r in m["contexts"]] == [1024, 2048]
        for r in m["contexts"]:
            assert keys <= r.keys() and r["least_ram_bytes"] > r["kv_bytes"] > 0 and r["verdict"] == "fits"
            assert r["vram"]["vram_bytes"] is None and r["vram"]["why"].startswith("no GPU here")
        assert m["contexts"][1]["least_ram_bytes"] > m["contexts"][0]["least_ram_bytes"]
    assert "no GPU here" in text and "least RAM" in text
    assert not twin_path("qwen2.5-3b", "Q4_K", 0.03).exists()


@pytest.mark.parametrize(
    "args,words",
    [
        (["twin:nope"], "no such twin"),
        (["/nonexistent/m.gguf"], "no such file"),
        (["twin:olmoe-1b-7b:0.0625", "--ctx", "8192"], "--beyond-train"),
        (["twin:qwen2.5-3b:0.03", "--max-tokens", "0"], "--max-tokens"),
        (["twin:qwen2.5-3b:0.03", "--json", "/nonexistent/dir/f.json"], "does not exist"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, monkeypatch, capsys, args, words):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["fit", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["--ram", "4X"], ["--ctx", "100"], ["--ctx", "2q"]])
def test_unparsable_options_are_usage_errors(capsys, args):
    with pytest.raises(SystemExit) as e:
        main(["fit", "twin:qwen2.5-3b:0.03", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def _check(tmp_path, paths: list[Path], ctx: int, *more: str) -> dict:
    out = tmp_path / "check.json"
    assert main(["fit", *map(str, paths), "--ctx", str(ctx), "--check", "--json", str(out), *more]) == 0
    return json.loads(out.read_text())


def _assert_within_10_percent(doc: dict) -> None:
    for m in doc["models"]:
        c = m["check"]
        assert "error" not in c, c
        vs = c["vs"]
        assert c["weights_needed_bytes"] is not None, c["weights_needed_note"]
        assert abs(vs["least_ram"]["delta_pct"]) <= 10, (m["spec"], vs)
        assert abs(vs["anon"]["delta_pct"]) <= 10, (m["spec"], vs)
        assert vs["kv"]["predicted"] == vs["kv"]["measured"], m["spec"]
        assert vs["repack_rule"]["agrees"], vs["repack_rule"]


@pytest.mark.timeout(600)
def test_prediction_is_within_10_percent_of_the_measured_run(tiny_twins, tmp_path):
    """PLE, dense and MoE twins built at a context, filled, generating from evicted weights: the
    least RAM predicted is within 10 % of what the run held, the KV cache is the engine's."""
    doc = _check(tmp_path, list(tiny_twins.values()), 512, "-n", "32")
    _assert_within_10_percent(doc)
    moe = doc["models"][2]["check"]
    assert moe["working_set"]["curve"] and moe["gen_tokens"] == 32


def test_check_writes_an_unwritten_twin_first(tmp_path, monkeypatch, capsys):
    """A prediction never writes a twin; --check needs its weights, so it writes it, then measures."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    doc = _check(tmp_path, ["twin:qwen2.5-3b:0.03"], 512, "-n", "8")
    assert twin_path("qwen2.5-3b", "Q4_K", 0.03).exists()
    assert doc["models"][0]["check"]["gen_tokens"] == 8 and "writing the twin" in capsys.readouterr().err
    _assert_within_10_percent(doc)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bundled_models_are_predicted_within_10_percent(smollm2_path, gemma3_path, tmp_path):
    """The bundled models, copied so no other process maps them (their pages must be evictable):
    one without repacked weights (every weight is a file page), one with a window cache."""
    copies = []
    for p in (smollm2_path, gemma3_path):
        dst = tmp_path / Path(p).name
        shutil.copyfile(p, dst)
        fd = os.open(dst, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        copies.append(dst)
    _assert_within_10_percent(_check(tmp_path, copies, 512, "-n", "32"))


def test_contexts_may_be_written_as_spoken(monkeypatch, tmp_path, capsys):
    """``--ctx 1k,2k`` is 1,024 and 2,048 tokens, as contexts are spoken of."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    out = tmp_path / "fit.json"
    assert main(["fit", "twin:qwen2.5-3b:0.03", "--ctx", "2k,1k", "--json", str(out)]) == 0
    assert [r["ctx"] for r in json.loads(out.read_text())["models"][0]["contexts"]] == [1024, 2048]


def test_bench_fit_joins_the_exports_and_the_verdict(smollm2_path, gemma3_path, tmp_path, capsys):
    """``bench --fit``: abtop fit's figures at the bench's context (a model's own ctx= where given)
    in the JSON, a column of the CSV, a table of the Markdown and a row of the verdict; a setting
    fit does not model (a quantised KV cache) makes that model n/a rather than wrong."""
    j, c = tmp_path / "b.json", tmp_path / "b.csv"
    specs = ["smollm2-135m", "gemma3-270m,ctx=1024", "gemma3-270m,kv=q8_0"]
    argv = ["bench", *specs, "-n", "4", "--warmup", "0", "--ctx", "512", "--fit", "--ram", "1G", "--json", str(j), "--csv", str(c)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    doc = json.loads(j.read_text())
    fit = doc["fit"]
    assert fit["schema"] == "abtop.fit/1" and [m["spec"] for m in fit["models"]] == specs
    small, own_ctx, kv8 = fit["models"]
    assert [r["ctx"] for r in small["contexts"]] == [512] and [r["ctx"] for r in own_ctx["contexts"]] == [1024]
    for m in (small, own_ctx):
        r = m["contexts"][0]
        assert r["least_ram_bytes"] > r["kv_bytes"] > 0 and r["verdict"] == "fits"
    assert "kv=q8_0 is not modelled" in kv8["na"] and not kv8["contexts"]
    rows = list(csv.DictReader(c.read_text().splitlines()))
    assert {r["model"]: r["least_ram_bytes"] for r in rows}.get("smollm2-135m") == str(small["contexts"][0]["least_ram_bytes"])
    assert "## Will it fit" in table and "least RAM to run without paging" in table
    assert "✓" not in table.split("least RAM to run without paging")[1].splitlines()[0]  # 512 vs 1,024: not compared
    assert main(["bench", "smollm2-135m", "--ram", "1G"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--fit" in err


async def test_f_in_the_tui_predicts_in_the_panes_and_joins_the_verdict_and_exports(tmp_path):
    """``f``: each pane says what it is asking, then the least RAM at the app's context; ``v`` has the
    row and ``e``'s JSON the ``abtop.fit/1`` section. Real engine, bundled models."""
    import io

    from rich.console import Console

    from backends.base import GenParams
    from tests.support.waiting import wait_for
    from tui.app.app import ABTopApp
    from tui.widgets.verdict_screen import VerdictScreen, verdict_table

    app = ABTopApp(["smollm2-135m", "gemma3-270m"], "The sky is blue because", GenParams(max_tokens=4), n_ctx=512,
                   autostart=True, results_dir=tmp_path)  # fmt: skip
    async with app.run_test(size=(160, 45)) as pilot:
        await wait_for(app.run_finished, "the first run to finish")
        await pilot.press("f")
        await pilot.pause()
        assert any("fit: asking llama.cpp" in str(p.border_subtitle) or "least RAM" in str(p.border_subtitle)
                   for p in app.panes)  # fmt: skip
        for w in app.workers:
            if w.group == "fit":
                await wait_for(w.wait(), "both models' least RAM (f)")
        await pilot.pause()
        assert all("least RAM" in str(p.border_subtitle) and "512" in str(p.border_subtitle) for p in app.panes)
        fit = app.fit_section()
        assert [m["spec"] for m in fit["models"]] == ["smollm2-135m", "gemma3-270m"]
        await pilot.press("v")
        await wait_for(lambda: isinstance(app.screen, VerdictScreen), "the verdict screen (v)", pilot=pilot)
        console = Console(width=160, record=True, file=io.StringIO())
        console.print(verdict_table(app.screen.cols))
        assert "least RAM to run without paging" in console.export_text()
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("e")
        await wait_for(lambda: list(tmp_path.glob("*.json")), "the export (e)", pilot=pilot)
        await pilot.pause()
    doc = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert doc["fit"]["schema"] == "abtop.fit/1" and len(doc["fit"]["models"]) == 2
