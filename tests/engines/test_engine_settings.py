"""llama.cpp's context settings: flash attention as its own tools default it (auto), --flash-attn,
and what the context holds (n_batch, n_ubatch, KV types and bytes per token), read back from the
engine's own load log and carried into the card and the exports. Real engine, bundled models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from backends.base import Placement
from backends.engines.llamacpp import LlamaCppBackend
from backends.engines.llamalog import parse_context
from tui.widgets.card import context_text

ABTOP = [sys.executable, "-m", "tui.cli.main"]


@pytest.mark.parametrize(("setting", "logged", "on"), [(None, "auto", True), ("off", "disabled", False), ("on", "enabled", True)])
async def test_flash_attn_reaches_the_engine(smollm2_path, setting, logged, on):
    b = LlamaCppBackend("smollm2-135m", smollm2_path, n_ctx=512, placement=Placement(threads=1), flash_attn=setting)
    try:
        loaded = await b.load()
    finally:
        await b.close()
    # read from llama.cpp's own load log in the worker: "llama_context: flash_attn = <setting>" and,
    # for auto, what its probe graph resolved it to ("Flash Attention enabled" on the CPU backend)
    ctx = loaded.context
    assert ctx["flash_attn"] == logged and ctx["flash_attn_on"] is on
    # llama.cpp's defaults (llama-bench, common_params) rather than Llama()'s 512/512, clamped to n_ctx
    assert ctx["n_batch"] == 512 and ctx["n_ubatch"] == 512
    # SmolLM2-135M: 30 layers x 3 KV heads x 64 dims, K and V in f16
    assert (ctx["type_k"], ctx["type_v"], ctx["kv_layers"]) == ("f16", "f16", 30)
    assert ctx["kv_bytes_per_token"] == 30 * 3 * 64 * 2 * 2
    assert ctx["kv_bytes"] == 512 * ctx["kv_bytes_per_token"]  # n_ctx 512, one cache
    assert ctx["swa_cells"] is None and ctx["swa_full"] is None  # no sliding window in SmolLM2
    assert ctx["mmap"] is True and ctx["mlock"] is False
    text = context_text(ctx)
    assert text.startswith(f"flash attn {setting or 'auto'}") and "KV f16/f16 23.0 KB/token (30 layers)" in text


def test_sliding_window_model_counts_both_caches():
    """gemma3 logs a global and a sliding-window cache; a token of context costs both."""
    lines = [
        "llama_context: n_batch               = 2048",
        "llama_context: n_ubatch              = 512",
        "llama_context: flash_attn            = auto",
        "llama_kv_cache: size =    6.00 MiB (  2048 cells,   3 layers,  1/1 seqs), K (f16):    3.00 MiB, V (f16):    3.00 MiB",
        "llama_kv_cache: size =   30.00 MiB (  2048 cells,  15 layers,  1/1 seqs), K (q8_0):   15.00 MiB, V (f16):   15.00 MiB",
        "resolve_fused_ops: Flash Attention not supported, set to disabled",
    ]
    ctx = parse_context(lines)
    assert ctx["kv_layers"] == 18 and ctx["kv_bytes_per_token"] == 18 * 1 * 256 * 2 * 2
    assert ctx["flash_attn"] == "auto" and ctx["flash_attn_on"] is False and ctx["n_batch"] == 2048
    assert "flash attn auto (off)" in context_text(ctx)
    assert ctx["swa_cells"] is None  # that log had no iswa line
    assert parse_context(["llama_model_loader: nothing of a context"]) is None


def test_window_cache_full_or_capped_is_read_and_shown():
    base = [
        "llama_context: n_batch               = 2048",
        "llama_context: n_ubatch              = 512",
        "llama_context: flash_attn            = auto",
    ]
    capped = base + [
        "llama_kv_cache_iswa: creating non-SWA KV cache, size = 2048 cells",
        "llama_kv_cache: size =    6.00 MiB (  2048 cells,   3 layers,  1/1 seqs), K (f16):    3.00 MiB, V (f16):    3.00 MiB",
        "llama_kv_cache_iswa: creating     SWA KV cache, size = 1024 cells",
        "llama_kv_cache: size =   15.00 MiB (  1024 cells,  15 layers,  1/1 seqs), K (f16):    7.50 MiB, V (f16):    7.50 MiB",
    ]
    ctx = parse_context(capped)
    assert (ctx["swa_cells"], ctx["swa_full"]) == (1024, False) and ctx["kv_bytes"] == 21 * 2**20
    assert "window layers' cache capped at 1024 cells" in context_text(ctx)
    full = base + ["llama_kv_cache_iswa: using full-size SWA cache (ref: https://github.com/ggml-org/llama.cpp/pull/13194)",
                   "llama_kv_cache_iswa: creating     SWA KV cache, size = 2048 cells",
                   "llama_kv_cache: size =   30.00 MiB (  2048 cells,  15 layers,  1/1 seqs), K (f16):   15.00 MiB, V (f16):   15.00 MiB"]  # fmt: skip
    ctx = parse_context(full)
    assert (ctx["swa_cells"], ctx["swa_full"]) == (2048, True) and "window layers' cache full size" in context_text(ctx)


def test_bench_export_records_flash_attn(tmp_path, gemma3_path):
    out = tmp_path / "out.json"
    csv = tmp_path / "out.csv"
    p = subprocess.run(
        [*ABTOP, "bench", "gemma3-270m", "-p", "The sky is", "-n", "4", "--warmup", "0", "--ctx", "512",
         "--flash-attn", "off", "--json", str(out), "--csv", str(csv)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    m = json.loads(out.read_text())["models"][0]
    assert m["context"]["flash_attn"] == "disabled" and m["context"]["flash_attn_on"] is False
    assert m["context"]["kv_layers"] == 18 and m["context"]["kv_bytes_per_token"] == 18 * 256 * 2 * 2
    # the window layers' cache as llama.cpp's own tools size it (swa_full off): the 512-token window
    # plus a ubatch, clamped to the context; the 3 global layers hold every cell
    assert m["context"]["swa_full"] is False and m["context"]["swa_cells"] == 512
    assert m["context"]["kv_bytes"] == 512 * 18 * 256 * 2 * 2
    assert [r["flash_attn"] for r in m["runs"]] == ["off"]
    header, row = csv.read_text().splitlines()[:2]
    assert dict(zip(header.split(","), row.split(","), strict=False))["flash_attn"] == "off"


def test_flash_attn_option_is_checked():
    p = subprocess.run([*ABTOP, "bench", "--flash-attn", "maybe"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--flash-attn" in p.stderr and "on" in p.stderr


def test_bench_depth_runs_each_depth_with_its_context_kept(tmp_path, smollm2_path):
    """``--depth``: llama-bench's -d. The filled context is untimed and not counted as prompt, yet
    stays in the KV cache: greedy text after it differs, and it counts against the context."""
    out = tmp_path / "d.json"
    p = subprocess.run(
        [*ABTOP, "bench", "smollm2-135m", "-p", "The sky is blue because", "-n", "8", "--warmup", "0",
         "--ctx", "512", "--depth", "0,256", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    m = doc["models"][0]
    assert doc["params"]["depths"] == [0, 256]
    shallow, deep = m["runs"]
    assert (shallow["depth"], deep["depth"]) == (0, 256)
    assert shallow["prompt_tokens"] == deep["prompt_tokens"] < 64  # the depth is not prompt
    assert shallow["ttft_s"] > 0 and deep["ttft_s"] > 0 and deep["prompt_tps"] > 0 and deep["gen_tps"] > 0
    assert shallow["text"] != deep["text"]  # the random context before the prompt is seen
    assert [d["depth"] for d in m["by_depth"]] == [0, 256]
    assert "| depth |" in p.stdout and "| 256 |" in p.stdout


def test_depth_the_context_cannot_hold_is_one_sentence(smollm2_path):
    p = subprocess.run([*ABTOP, "bench", "smollm2-135m", "--depth", "1024", "--ctx", "512"], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "abtop: --depth 1024 and --max-tokens 128 do not fit the context (--ctx 512) with a prompt besides; "
        "raise --ctx to 1536 or more."
    ]
    # it fits with --max-tokens alone, not with the prompt: the worker says so, before any decode
    p = subprocess.run([*ABTOP, "bench", "smollm2-135m", "--depth", "500", "-n", "4", "--ctx", "512", "--warmup", "0"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert "--depth 500 and the prompt's" in p.stderr and "raise --ctx to at least" in p.stderr
    p = subprocess.run([*ABTOP, "bench", "--depth", "a,b"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "not a list of token counts" in p.stderr
