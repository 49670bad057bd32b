"""The model card read from GGUF headers: the two bundled models, bad files, and tiny GGUFs built
with ``gguf.GGUFWriter`` that carry per-layer-embedding and mixture-of-experts layouts."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType

from backends.base import BackendError
from backends.card.gguf import read_card, read_header
from backends.specs import bundled_path
from tests.conftest import write_tiny_gguf


def test_smollm2_card():
    path = bundled_path("smollm2-135m")
    c = read_card(path)
    assert c.arch == "llama"
    assert abs(c.params - 134.52e6) / 134.52e6 < 0.01
    assert c.quant == "Q4_1"
    assert c.file_bytes == path.stat().st_size
    assert (c.n_layers, c.n_ctx_train, c.chat_template) == (30, 8192, True)
    assert c.ple is None and c.moe is None and c.params_effective == c.params
    # Tied embeddings: token_embd is also the output matrix, read in full for every token.
    assert c.bytes_per_token == sum(t.n_bytes for t in read_header(path).tensors)
    assert c.bytes_per_token < c.file_bytes


def test_gemma3_card():
    path = bundled_path("gemma3-270m")
    c = read_card(path)
    assert c.arch == "gemma3"
    assert abs(c.params - 268.10e6) / 268.10e6 < 0.01
    assert c.quant == "Q4_K_M"
    assert c.file_bytes == path.stat().st_size
    assert (c.n_layers, c.n_ctx_train, c.chat_template) == (18, 32768, False)
    assert c.ple is None and c.moe is None


def test_missing_file(tmp_path):
    with pytest.raises(BackendError, match=r"nope\.gguf: no such file\.$"):
        read_card(tmp_path / "nope.gguf")


def test_directory(tmp_path):
    with pytest.raises(BackendError, match="is a directory"):
        read_card(tmp_path)


def test_text_file_is_not_gguf(tmp_path):
    p = tmp_path / "x.gguf"
    p.write_text("this is not a model\n")
    with pytest.raises(BackendError, match=r"x\.gguf: is not a GGUF file"):
        read_card(p)


def test_empty_file_is_not_gguf(tmp_path):
    p = tmp_path / "empty.gguf"
    p.write_bytes(b"")
    with pytest.raises(BackendError, match="is not a GGUF file"):
        read_card(p)


def test_truncated_to_half(tmp_path):
    src = bundled_path("smollm2-135m")
    p = tmp_path / "half.gguf"
    with open(src, "rb") as f, open(p, "wb") as out:
        out.write(f.read(src.stat().st_size // 2))
    with pytest.raises(BackendError, match=r"half\.gguf: truncated GGUF: its tensors need [\d,]+ bytes") as e:
        read_card(p)
    assert str(e.value).count(". ") == 0  # one sentence


def test_truncated_inside_header(tmp_path):
    src = bundled_path("smollm2-135m")
    p = tmp_path / "head.gguf"
    with open(src, "rb") as f:
        p.write_bytes(f.read(5000))
    with pytest.raises(BackendError, match="truncated GGUF: the file ends inside its header"):
        read_card(p)


def test_garbage_after_magic(tmp_path):
    p = tmp_path / "bad.gguf"
    p.write_bytes(b"GGUF" + (99).to_bytes(4, "little") + bytes(64))
    with pytest.raises(BackendError, match=r"unreadable GGUF header \(GGUF version 99"):
        read_card(p)


def test_copy_reads_same(tmp_path):
    """The card depends on the bytes, not on where the file lives (path is the resolved path)."""
    src = bundled_path("smollm2-135m")
    p = tmp_path / "copy.gguf"
    shutil.copyfile(src, p)
    c = read_card(p)
    assert c.params == read_card(src).params and c.path == str(p.resolve())


# ---- tiny GGUFs: every number below is worked out by hand from the tensors written ----

F32 = 4  # bytes per element


def test_dense_untied_excludes_token_embd(tmp_path):
    p = tmp_path / "dense.gguf"
    write_tiny_gguf(p, "llama", {}, {
        "token_embd.weight": (100, 8),   # 800: looked up (there is a separate output.weight)
        "blk.0.attn_q.weight": (8, 8),   # 64
        "output.weight": (100, 8),       # 800
    })
    c = read_card(p)
    assert (c.name, c.arch, c.quant, c.n_ctx_train, c.n_layers) == ("tiny llama", "llama", "F32", 256, 1)
    assert c.chat_template is False
    assert c.params == c.params_effective == 1664
    assert c.bytes_per_token == (64 + 800) * F32


def test_ple_card(tmp_path):
    p = tmp_path / "ple.gguf"
    write_tiny_gguf(p, "gemma3n", {"gemma3n.embedding_length_per_layer_input": 4}, {
        "token_embd.weight": (100, 8),               # 800, tied (no output.weight): read per token
        "per_layer_token_embd.weight": (100, 1, 4),  # 400, looked up
        "per_layer_model_proj.weight": (8, 4),       # 32
        "blk.0.attn_q.weight": (8, 8),               # 64
        "output_norm.weight": (8,),                  # 8
    })
    c = read_card(p)
    assert c.arch == "gemma3n"
    assert c.params == 1304
    assert c.ple == {"params": 400, "bytes": 400 * F32}
    assert c.params_effective == 904
    assert c.moe is None
    assert c.bytes_per_token == (800 + 32 + 64 + 8) * F32


def test_ple_detected_from_tensor_alone(tmp_path):
    p = tmp_path / "ple2.gguf"
    write_tiny_gguf(p, "gemma4", {}, {"per_layer_token_embd.weight": (10, 3), "blk.0.attn_q.weight": (2, 2)})
    c = read_card(p)
    assert c.ple == {"params": 30, "bytes": 120} and c.params_effective == 4


def test_moe_card(tmp_path):
    p = tmp_path / "moe.gguf"
    write_tiny_gguf(p, "qwen3moe", {"qwen3moe.expert_count": 8, "qwen3moe.expert_used_count": 2}, {
        "token_embd.weight": (50, 8),              # 400, looked up (untied)
        "output.weight": (50, 8),                  # 400
        "blk.0.attn_q.weight": (8, 8),             # 64
        "blk.0.ffn_gate_inp.weight": (8, 8),       # 64: the router, always active
        "blk.0.ffn_gate_exps.weight": (8, 16, 8),  # 1024
        "blk.0.ffn_up_exps.weight": (8, 16, 8),    # 1024
        "blk.0.ffn_down_exps.weight": (8, 8, 16),  # 1024
        "blk.0.ffn_up_shexp.weight": (16, 8),      # 128: shared expert, always active
    })
    c = read_card(p)
    assert c.params == 400 + 400 + 64 + 64 + 3 * 1024 + 128 == 4128
    shared = 400 + 400 + 64 + 64 + 128
    assert c.moe == {"experts": 8, "experts_used": 2, "params_active": shared + 3 * 1024 * 2 // 8}
    assert c.ple is None and c.params_effective == c.params
    assert c.bytes_per_token == (400 + 64 + 64 + 128) * F32 + 3 * 1024 * F32 * 2 // 8


def test_quantized_tensor_bytes(tmp_path):
    """Q8_0 stores 32 elements in 34 bytes: the card counts bytes from the block size."""
    p = tmp_path / "q8.gguf"
    w = GGUFWriter(str(p), "llama")
    w.add_file_type(LlamaFileType.MOSTLY_Q8_0)
    w.add_tensor("blk.0.attn_q.weight", np.zeros((2, 2 * 34), dtype=np.uint8), raw_dtype=GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    c = read_card(p)
    assert (c.params, c.bytes_per_token, c.quant) == (128, 4 * 34, "Q8_0")
    assert c.name == "q8"  # no general.name: the file stem
    assert c.n_layers is None and c.n_ctx_train is None



def test_tensor_type_newer_than_the_gguf_package(tmp_path):
    """A quant type this gguf package does not know: its size is the gap to the next tensor."""
    p = tmp_path / "new.gguf"
    write_tiny_gguf(p, "llama", {}, {"blk.0.attn_q.weight": (8, 8), "blk.0.attn_k.weight": (8, 8)})
    data = bytearray(p.read_bytes())
    name = b"blk.0.attn_q.weight"
    at = data.index(name) + len(name)
    n_dims = int.from_bytes(data[at : at + 4], "little")
    type_at = at + 4 + 8 * n_dims
    assert int.from_bytes(data[type_at : type_at + 4], "little") == GGMLQuantizationType.F32
    data[type_at : type_at + 4] = (250).to_bytes(4, "little")
    p.write_bytes(data)
    c = read_card(p)
    assert c.params == 128 and c.bytes_per_token == 2 * 64 * F32


def test_a_split_gguf_card_counts_every_part(smollm2_path, tmp_path):
    """llama.cpp's gguf-split layout: the first part has the metadata and some tensors, the others
    the rest. The card is the whole model's, not its first part's."""
    from pathlib import Path

    from tests.conftest import write_split_gguf

    parts = write_split_gguf(smollm2_path, tmp_path / "SmolLM2-Q4_K_M")
    assert len(parts) == 2
    whole, split = read_card(smollm2_path), read_card(parts[0])
    assert split.params == whole.params and split.bytes_per_token == whole.bytes_per_token
    assert split.file_bytes == sum(Path(p).stat().st_size for p in parts)
    assert split.n_layers == whole.n_layers and split.quant == whole.quant
    with pytest.raises(BackendError) as e:  # llama.cpp opens a split model from its first part only
        read_card(parts[1])
    assert str(e.value).endswith("part 2 of a split GGUF in 2 parts; open its first part, SmolLM2-Q4_K_M-00001-of-00002.gguf.")
    Path(parts[1]).unlink()
    with pytest.raises(BackendError) as e:
        read_card(parts[0])
    assert "SmolLM2-Q4_K_M-00002-of-00002.gguf is not beside it" in str(e.value) and "\n" not in str(e.value)
