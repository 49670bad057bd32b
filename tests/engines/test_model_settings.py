"""Per-model settings (``SPEC,key=value``): parsed and checked before anything loads, carried to the
real llama.cpp worker, and the columns of one file with other settings named by what differs."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from backends.base import BackendError
from backends.specs import distinct_names, parse_spec, setting_options, split_settings
from tui.widgets.card import layers_text

ABTOP = [sys.executable, "-m", "tui.cli.main"]


def test_settings_are_split_off_the_spec_with_canonical_keys_and_values():
    base, settings = split_settings("twin:gemma-4-e2b,lazy-ple=ON,ctx=8192,fa=off,n-gpu-layers=20")
    assert base == "twin:gemma-4-e2b"
    assert settings == (("lazy-ple", "on"), ("ctx", "8192"), ("flash-attn", "off"), ("ngl", "20"))
    assert split_settings("hf:OWNER/REPO:Q4_K_M,kv=q8_0") == ("hf:OWNER/REPO:Q4_K_M", (("kv", "q8_0"),))
    assert split_settings("gemma3-270m") == ("gemma3-270m", ())
    opts = setting_options(split_settings("x,kv=q8_0,kv-v=q4_0,repack=off,mmap=off,n-cpu-moe=8,threads=1")[1])
    assert opts == {"type_k": "q8_0", "type_v": "q4_0", "repack": False, "use_mmap": False, "n_cpu_moe": 8, "threads": 1}


def test_a_file_whose_name_holds_a_comma_stays_whole(tmp_path, smollm2_path):
    odd = tmp_path / "model,kv=q8_0.gguf"
    odd.symlink_to(smollm2_path)
    assert split_settings(str(odd)) == (str(odd), ())


@pytest.mark.parametrize(
    "spec, words",
    [
        ("gemma3-270m,kvv=q8_0", "unknown setting 'kvv'; did you mean kv-v?"),
        ("gemma3-270m,kv=q5", "kv='q5': give one of f16, q8_0, q4_0"),
        ("gemma3-270m,ctx=100", "ctx='100': give a whole number, 256 or more"),
        ("gemma3-270m,ngl=all", "ngl='all'"),
        ("gemma3-270m,kv=q8_0,mlock", "'mlock' is not key=value"),
        ("openai:m@http://u:secret@127.0.0.1:9/v1,ctx=4096", "ctx is the server's to set"),
        ("ollama:gemma3:270m,kv=q8_0", "kv is the server's to set"),
    ],
)
def test_a_bad_setting_is_one_sentence_naming_it(spec, words):
    with pytest.raises(BackendError) as e:
        parse_spec(spec)
    assert words in str(e.value) and "\n" not in str(e.value) and "secret" not in str(e.value)


def test_columns_of_one_file_are_named_by_what_differs():
    assert distinct_names(["smollm2-135m", "gemma3-270m", "gemma3-270m,kv=q8_0"]) == ["", "", "kv=q8_0"]
    assert distinct_names(["g,lazy-ple=on,ctx=4096", "g,lazy-ple=off,ctx=4096"]) == ["lazy-ple=on", "lazy-ple=off"]
    assert distinct_names(["a,kv=q8_0", "b,kv=q8_0"]) == ["", ""]  # other files: their names differ already


def test_gpu_settings_without_a_gpu_are_recorded_and_said():
    cpu_only = {"ngl": 20, "n-cpu-moe": 8, "gpu_offload": False}
    assert layers_text(cpu_only) == "no GPU: all layers on the CPU (ngl 20, n-cpu-moe 8 recorded)"
    assert layers_text({"ngl": -1, "n-cpu-moe": 0, "gpu_offload": False}) is None  # nothing asked: no row
    assert layers_text({"ngl": 99, "gpu_offload": True}, {"offloaded": 3_000_000}).endswith("on GPU 3.0 MB")


def test_bench_carries_each_models_settings_to_its_engine(tmp_path):
    """The same file twice, one with a q8_0 KV cache and GPU settings: the real engine builds each
    as asked, the table, the verdict, the JSON and the CSV name the second by what differs."""
    out, table = tmp_path / "out.json", tmp_path / "out.md"
    runs = tmp_path / "out.csv"
    p = subprocess.run(
        [*ABTOP, "bench", "gemma3-270m", "gemma3-270m,kv=q8_0,ngl=4,n-cpu-moe=2", "-p", "The sky is", "-n", "4",
         "--warmup", "0", "--ctx", "512", "--json", str(out), "--md", str(table), "--csv", str(runs)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    plain, q8 = json.loads(out.read_text())["models"]
    assert plain["spec"] == "gemma3-270m" and q8["spec"] == "gemma3-270m,kv=q8_0,ngl=4,n-cpu-moe=2"
    assert (plain["context"]["type_k"], plain["context"]["type_v"]) == ("f16", "f16")
    assert (q8["context"]["type_k"], q8["context"]["type_v"]) == ("q8_0", "q8_0")
    assert q8["context"]["kv_bytes"] < plain["context"]["kv_bytes"]
    assert q8["settings"] == {**q8["settings"], "kv-k": "q8_0", "kv-v": "q8_0", "ngl": 4, "n-cpu-moe": 2, "ctx": 512}
    assert q8["spec_settings"] == {"kv": "q8_0", "ngl": "4", "n-cpu-moe": "2"} and plain["spec_settings"] == {}
    assert plain["info"]["name"] == "gemma3-270m"
    assert q8["info"]["name"] == "gemma3-270m kv=q8_0 ngl=4 n-cpu-moe=2"
    md = table.read_text()
    assert "| gemma3-270m kv=q8_0 ngl=4 n-cpu-moe=2 |" in md  # its table row
    assert "| question | gemma3-270m | gemma3-270m kv=q8_0 ngl=4 n-cpu-moe=2 |" in md  # the verdict's columns
    rows = list(csv.DictReader(io.StringIO(runs.read_text())))
    assert [r["settings"] for r in rows] == ["", "kv=q8_0 ngl=4 n-cpu-moe=2"]


def _sweep(models, sweep):
    import argparse

    from tui.cli.options import expand_sweep

    args = argparse.Namespace(models=list(models), sweep=sweep)
    return expand_sweep(args), args.models


def test_sweep_makes_a_model_per_value_keeping_the_specs_own_settings():
    assert _sweep(["twin:gemma-4-e2b"], "lazy-ple=on,off") == (None, ["twin:gemma-4-e2b,lazy-ple=on", "twin:gemma-4-e2b,lazy-ple=off"])
    assert _sweep(["g,ctx=4096"], "KV=f16,q8_0")[1] == ["g,ctx=4096,kv=f16", "g,ctx=4096,kv=q8_0"]


@pytest.mark.parametrize(
    "models, sweep, words",
    [
        (["a", "b"], "kv=f16,q8_0", "give exactly one (got 2)"),
        (["a"], "kv=f16", "two values or more"),
        (["a"], "kvv=f16,q8_0", "unknown setting 'kvv'"),
        (["a"], "kv=f16,q5", "kv='q5'"),
        (["a,kv-k=q8_0"], "kv=f16,q8_0", "sets it already"),
        (["a"], "kv=f16,F16", "all the same"),
        (["openai:m@http://127.0.0.1:9/v1"], "ctx=512,1024", "server's model"),
    ],
)
def test_a_sweep_that_cannot_be_is_one_sentence(models, sweep, words):
    problem, _ = _sweep(models, sweep)
    assert problem is not None and words in problem and "\n" not in problem


def test_bench_sweep_gives_a_column_per_value(tmp_path):
    out = tmp_path / "out.json"
    p = subprocess.run(
        [*ABTOP, "bench", "smollm2-135m", "--sweep", "repack=on,off", "-p", "Hi", "-n", "2", "--warmup", "0",
         "--ctx", "512", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    models = json.loads(out.read_text())["models"]
    assert [m["info"]["name"] for m in models] == ["smollm2-135m repack=on", "smollm2-135m repack=off"]
    assert [m["repack"] for m in models] == [True, False]
    assert "| question | smollm2-135m repack=on | smollm2-135m repack=off |" in p.stdout
