"""``abtop info``: the card of the bundled models, of PLE and MoE layouts, and bad input."""

from __future__ import annotations

import json

import pytest

from backends.card.gguf import read_card
from tests.conftest import write_tiny_gguf
from tui.cli.main import main


def test_text_card_of_bundled_model(capsys, gemma3_path):
    assert main(["info", "gemma3-270m"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("gemma3-270m (Gemma 3 270m)\n")  # the alias, as in the panes
    for expected in ("gemma3", "268.1M (268,098,176) total", "Q4_K_M", f"({gemma3_path.stat().st_size:,} bytes)",
                     "layers       18", "n_embd 640 · 4 heads (1 KV) · vocab 262,144", "32,768 tokens", "none: completion mode", "PLE          none",
                     "none (dense)", "read per generated token"):
        assert expected in out


def test_json_is_the_bench_info_object(capsys, smollm2_path):
    assert main(["info", str(smollm2_path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d == read_card(smollm2_path).to_dict()
    assert (d["arch"], d["quant"], d["chat_template"], d["ple"], d["moe"]) == ("llama", "Q4_1", True, None, None)
    assert d["params_effective"] == d["params"] and d["bytes_per_token"] > 0


def test_ple_card(capsys, tmp_path):
    p = write_tiny_gguf(tmp_path / "e2b.gguf", "gemma3n", {"gemma3n.embedding_length_per_layer_input": 256}, {
        "token_embd.weight": (1000, 10),
        "per_layer_token_embd.weight": (1000, 3000),
        "blk.0.attn_q.weight": (10, 10),
    })
    assert main(["info", p]) == 0
    out = capsys.readouterr().out
    assert "3.01M (3,010,100) total · 10.1K effective" in out
    assert "3.00M params · 12.0 MB per-layer embeddings, looked up" in out
    assert main(["info", p, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["ple"] == {"params": 3_000_000, "bytes": 12_000_000} and d["params_effective"] == 10_100


def test_moe_card(capsys, tmp_path):
    p = write_tiny_gguf(tmp_path / "moe.gguf", "qwen3moe", {"qwen3moe.expert_count": 128, "qwen3moe.expert_used_count": 8}, {
        "blk.0.attn_q.weight": (100, 100),
        "blk.0.ffn_up_exps.weight": (128, 100, 100),
    })
    assert main(["info", p]) == 0
    out = capsys.readouterr().out
    assert "128 experts, 8 used per token" in out
    assert "active 90.0K per token" in out  # 10,000 shared + 1,280,000 × 8/128
    assert main(["info", p, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["moe"] == {"experts": 128, "experts_used": 8, "params_active": 90_000}


@pytest.mark.parametrize(
    ("make", "sentence"),
    [
        (lambda d: str(d / "missing.gguf"), "missing.gguf: no such file"),
        (lambda d: (d / "x.gguf").write_text("hello\n") and str(d / "x.gguf"), "x.gguf: is not a GGUF file"),
        (lambda d: str(d), "is a directory"),
        (lambda d: "ollama:gemma3:270m", "ollama:gemma3:270m: abtop info reads GGUF files"),
    ],
)
def test_bad_input_is_one_sentence_exit_2(capsys, tmp_path, make, sentence):
    assert main(["info", make(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and sentence in err
    assert err.startswith("abtop: ") and err.count("\n") == 1 and "Traceback" not in err


def test_truncated_gguf(capsys, tmp_path, smollm2_path):
    half = tmp_path / "half.gguf"
    with open(smollm2_path, "rb") as f:
        half.write_bytes(f.read(smollm2_path.stat().st_size // 2))
    assert main(["info", str(half)]) == 2
    assert "half.gguf: truncated GGUF" in capsys.readouterr().err
