"""``abtop bench`` end to end: the real CLI in a subprocess, the real engine, the JSON it writes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from backends.stats import RUN_FIELDS

ABTOP = [sys.executable, "-m", "tui.cli.main"]


def bench(*args, timeout=300):
    return subprocess.run([*ABTOP, "bench", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(600)  # the first to ask for bench_json waits for the bench
def test_json_holds_every_field_from_the_run(bench_json):
    doc, proc, _ = bench_json
    assert doc["schema"] == "abtop.bench/1"
    host = doc["host"]
    for key in ("os", "cpu", "cores_logical", "cores_physical", "ram_bytes", "gpus", "versions"):
        assert key in host
    assert host["ram_bytes"] > 1e9 and host["cores_logical"] >= 1 and host["gpus"] == []
    assert doc["params"] == {**doc["params"], "max_tokens": 16, "runs": 2, "temperature": 0.0, "seed": 42, "mode": "alternate"}
    assert [m["spec"] for m in doc["models"]] == ["smollm2-135m", "gemma3-270m"]
    arches = []
    for m in doc["models"]:
        assert m["backend"] == "llama.cpp" and m["threads"] >= 1
        info = m["info"]
        for key in ("name", "arch", "params", "quant", "file_bytes", "n_ctx_train", "chat_template"):
            assert info[key] is not None, key
        arches.append(info["arch"])
        assert len(m["runs"]) == 2 and len(m["warmup_runs"]) == 1
        for r in m["runs"]:
            assert set(RUN_FIELDS) <= set(r)
            assert r["error"] is None and r["text"]
            assert 0 < r["ttft_s"] < r["wall_s"]
            assert r["gen_tokens"] > 1 and r["gen_tps"] > 0 and r["gen_tps_engine"] > 0
            assert r["prompt_tokens"] > 0 and r["prompt_tps"] > 0
            assert r["itl_p50_ms"] > 0 and r["itl_p99_ms"] >= r["itl_p50_ms"]
            assert r["chars"] == len(r["text"]) and r["chars_per_s"] > 0
            # memory of that model's own process: weights from the GGUF's pages, the rest anonymous
            assert r["peak_rss_bytes"] > r["peak_anon_bytes"] > 0
            assert 0 < r["weights_resident_bytes"] <= info["file_bytes"]
            assert r["cpu_percent_mean"] is not None
            # no GPU on this machine: unknown, never 0
            assert r["gpu_util_mean"] is None and r["vram_peak_bytes"] is None
        s = m["summary"]["gen_tps"]
        assert s["min"] <= s["median"] <= s["max"] and s["n"] == 2
    assert arches == ["llama", "gemma3"]
    assert doc["models"][0]["info"]["chat_template"] is True
    assert doc["models"][1]["info"]["chat_template"] is False


@pytest.mark.timeout(600)  # the first to ask for bench_json waits for the bench
def test_markdown_on_stdout_and_csv_rows(bench_json):
    doc, proc, csv = bench_json
    assert "| model |" in proc.stdout
    for m in doc["models"]:
        assert m["info"]["name"] in proc.stdout
        # the prompt each model actually got: wrapped in its chat template, or bare (base model)
        wrap = "bare" if m["completion_mode"] else "chat"
        row = next(line for line in proc.stdout.splitlines() if line.startswith(f"| {m['info']['name']} |"))
        assert f"| {m['runs'][0]['prompt_tokens']} {wrap} |" in row
    assert {m["completion_mode"] for m in doc["models"]} == {True, False}  # gemma3 base, SmolLM2 chat
    rows = csv.read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * 2  # header + models x runs
    # stderr is no terminal here (a CI log): progress is a line per run, with that run's figure
    for m in doc["models"]:
        name, r = m["info"]["name"], m["runs"][1]
        assert f"{name} warm-up:" in proc.stderr
        assert f"{name} run 2: {r['gen_tokens']} tokens, gen {r['gen_tps']:.1f} tok/s" in proc.stderr


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: str(p / "missing.gguf"), "no such file"),
        (lambda p: (p / "a.gguf").write_text("plain text") and str(p / "a.gguf"), "not a GGUF"),
        (lambda p: "smolm2-135m", "did you mean smollm2-135m?"),  # a typo of an alias
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, make, words):
    spec = make(tmp_path)
    p = bench(spec, "smollm2-135m", "-n", "4", "--warmup", "0", timeout=120)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert words.lower() in p.stderr.lower() and spec.split("/")[-1] in p.stderr
    assert p.stdout == ""


def test_help_has_examples():
    p = subprocess.run([*ABTOP, "bench", "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "examples:" in p.stdout and "--json" in p.stdout
    p = subprocess.run([*ABTOP, "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "abtop bench" in p.stdout
    keys = p.stdout.split("keys:")[1]
    for key in ("Enter", "Esc", "/ edit", "q quit", "m race", "c model card", "g plots", "t whole texts", "e export", "s SVG"):
        assert key in keys
    assert "abtop-results" in keys


UNUSABLE = [
    (["--interval", "0"], "--interval"),
    (["--interval", "-1"], "--interval"),
    (["-n", "0"], "--max-tokens"),
    (["--temperature", "-0.5"], "--temperature"),
    (["--threads", "0"], "--threads"),
    (["--threads", "100000"], "more than"),
    (["--ctx", "0"], "--ctx"),
    (["--runs", "0"], "--runs"),
    (["--record", "."], "is a folder"),
    (["gemma3-270m,kv=q5"], "kv='q5'"),
    (["gemma3-270m,kvv=q8_0"], "unknown setting 'kvv'"),
    (["openai:m@http://127.0.0.1:9/v1,ctx=4096"], "ctx is the server's"),
    ([f"m{i}.gguf" for i in range(9)], "bench takes up to 8"),
]


@pytest.mark.parametrize(
    "command, options, words",
    [(["bench"], *case) for case in UNUSABLE]
    + [([], *case) for case in UNUSABLE]
    + [([], [f"m{i}.gguf" for i in range(5)], "bench takes up to 8")]  # the TUI's panes: fewer
    + [(["bench"], ["--json", "/no/such/folder/out.json"], "does not exist")],  # bench's own outputs
)
def test_unusable_options_are_one_sentence_before_anything_loads(command, options, words):
    p = subprocess.run([*ABTOP, *command, *options], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and words in p.stderr and "Traceback" not in p.stderr


def test_prompt_longer_than_the_context_is_one_sentence_per_model_and_no_table(tmp_path):
    long_prompt = "the sky is blue because " * 80  # ~400 tokens in either tokenizer
    out = tmp_path / "out.json"
    p = bench("smollm2-135m", "gemma3-270m", "--ctx", "256", "-p", long_prompt, "-n", "4", "--runs", "3",
              "--json", str(out), timeout=240)  # fmt: skip
    assert p.returncode == 2 and p.stdout == ""
    # each model was tried once (the warm-up), not 4 times; the JSON still says why, for CI
    doc = json.loads(out.read_text())
    for m in doc["models"]:
        assert m["runs"] == [] and len(m["warmup_runs"]) == 1 and "context" in m["warmup_runs"][0]["error"]
    lines = [line for line in p.stderr.splitlines() if "context" in line]
    assert len(lines) == 2, p.stderr  # once per model, not once per run
    assert any("smollm2-135m" in line for line in lines) and any("gemma3-270m" in line for line in lines)
    assert all("256" in line for line in lines) and "Traceback" not in p.stderr


def test_a_full_context_is_named_as_the_stop_and_said_once_per_model():
    prompt = "the sky is blue because " * 44  # ~220-250 tokens: fits 256, leaves few to generate
    p = bench("smollm2-135m", "gemma3-270m", "--ctx", "256", "-p", prompt, "-n", "128", "--warmup", "0", "--runs", "2")
    assert p.returncode == 0, p.stderr
    rows = [line for line in p.stdout.splitlines() if line.startswith(("| smollm2", "| gemma3"))]
    assert len(rows) == 2 and all("(context full)" in row for row in rows)
    warnings = [line for line in p.stderr.splitlines() if "filled after" in line]
    assert len(warnings) == 2 and all("raise --ctx" in line for line in warnings)


def test_a_worker_lost_between_runs_is_an_error_and_exit_1(tmp_path):
    """smollm2's worker is killed while gemma3 has its turn (alternate mode): its next run fails
    before it starts (a ``Failed`` without ``Started``), which must still be exit 1 and an error
    in the JSON."""
    import os
    import signal

    import psutil

    out = tmp_path / "out.json"
    p = subprocess.Popen(
        [*ABTOP, "bench", "smollm2-135m", "gemma3-270m", "-p", "The sky is blue because", "-n", "16",
         "--runs", "3", "--warmup", "0", "--ctx", "512", "--json", str(out)],  # fmt: skip
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    killed = None
    lines = []
    for line in p.stderr:
        lines.append(line)
        if killed is None and "smollm2-135m run 1:" in line:
            (worker,) = [
                c for c in psutil.Process(p.pid).children(recursive=True)
                if "llamacpp_worker" in " ".join(c.cmdline()) and "SmolLM2" in " ".join(m.path for m in c.memory_maps())
            ]  # fmt: skip
            killed = worker.pid
            os.kill(killed, signal.SIGKILL)
    p.wait(timeout=300)
    err = "".join(lines)
    assert killed is not None, err
    assert p.returncode == 1, err
    doc = json.loads(out.read_text())
    smol = doc["models"][0]
    assert smol["runs"][0]["error"] is None and smol["runs"][0]["gen_tokens"] > 0
    assert any(r["error"] and "worker lost" in r["error"] for r in smol["runs"][1:]), smol["runs"]
    assert "worker lost" in err and "Traceback" not in err
    assert len(doc["models"][1]["runs"]) == 3  # gemma3 goes on


def test_a_run_shorter_than_the_sampling_interval_has_its_memory_figures(tmp_path):
    """The bench's runs go through the same ``stats.Runs`` as the TUI's panes: a 2-token run
    between two samples still has its peaks (from the reading before it)."""
    out = tmp_path / "out.json"
    p = bench("smollm2-135m", "-n", "2", "--runs", "1", "--warmup", "0", "--interval", "5", "--ctx", "512", "--json", str(out))
    assert p.returncode == 0, p.stderr
    (r,) = json.loads(out.read_text())["models"][0]["runs"]
    assert r["peak_rss_bytes"] and r["peak_anon_bytes"] and r["weights_resident_bytes"], r


def test_race_mode_charges_no_model_the_shared_energy(tmp_path):
    """In race mode both models draw on one CPU package (and GPU) at once: its counter is neither
    model's, so J/token is null and the note says why (alternate mode measures each)."""
    out = tmp_path / "out.json"
    p = bench("smollm2-135m", "gemma3-270m", "--mode", "race", "-n", "4", "--runs", "1", "--warmup", "0",
              "--ctx", "512", "--json", str(out))  # fmt: skip
    assert p.returncode == 0, p.stderr
    for m in json.loads(out.read_text())["models"]:
        (r,) = m["runs"]
        assert r["energy_j_per_token"] is None and "race mode" in r["energy_note"] and "share" in r["energy_note"]


@pytest.mark.timeout(600)  # two benches, each loading the model: minutes on a busy box
def test_seed_makes_a_sampled_run_repeat_and_another_seed_changes_it(tmp_path):
    """``--seed`` with ``--temperature`` above 0: the same seed gives the same text on every run
    (the sampler is seeded afresh per run), another seed another text."""

    def texts(seed: int, runs: int) -> list[str]:
        out = tmp_path / f"seed{seed}.json"
        p = bench("smollm2-135m", "-p", "Once upon a time", "-n", "16", "--runs", str(runs), "--warmup", "0",
                  "--ctx", "512", "--temperature", "1.0", "--seed", str(seed), "--json", str(out))  # fmt: skip
        assert p.returncode == 0, p.stderr
        doc = json.loads(out.read_text())
        assert (doc["params"]["seed"], doc["params"]["temperature"]) == (seed, 1.0)
        return [r["text"] for r in doc["models"][0]["runs"]]

    first, again = texts(7, runs=2)
    assert first == again and first.strip()
    (other,) = texts(8, runs=1)
    assert other != first
