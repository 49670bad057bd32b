"""The shapes of the models the twins copy, each from its published config, and how ``--scale``
shrinks them (fewer layers, a smaller vocabulary, the same per-layer shapes).

Keys and tensors follow llama.cpp's loader for each architecture (llama.cpp@0c1e570, vendored in
llama-cpp-python 0.3.36): ``src/models/<arch>.cpp`` says which tensors and keys it requires, with
which shapes; a tensor it does not expect fails the load. Shapes here are llama.cpp's ``ne``
order (``ne0`` first: a matrix ``(n_in, n_out)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from gguf import GGUFValueType

PLAN_VERSION = 2
"""Bumped when a preset's weights or keys change: a cached twin of another version is rewritten
on next use (2: the MoE twin's quiet residual writers)."""

MIN_VOCAB = 512
"""``<unk> <s> </s>``, the 256 byte tokens and a few hundred words: the smallest useful vocabulary."""


@dataclass(frozen=True, slots=True)
class TensorPlan:
    name: str
    ne: tuple[int, ...]
    kind: str = "matrix"
    """"matrix" (stored in the twin's quant type), "norm" (F32 ones), "bias" (F32, small noise),
    "f32" (F32 noise: routers, kept unquantised as llama.cpp's quantizer does)."""
    gain: float = 1.0
    """Times the writer's weight scale: a larger token embedding keeps tokens apart in the residual
    stream, so a random router picks experts per token instead of one set for every token."""

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.ne:
            n *= d
        return n


@dataclass(slots=True)
class Plan:
    """One concrete twin: its keys (``key: (type, value)``, arrays as ``(ARRAY, (item type, list))``)
    and its tensors, in file order."""

    n_vocab: int
    n_layer: int
    kv: dict[str, tuple[GGUFValueType, object]] = field(default_factory=dict)
    tensors: list[TensorPlan] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    arch: str
    title: str
    source: str
    """Where the shape comes from (config class or model card), for the card and the code."""
    published_total: int
    """Parameters the model card quotes for the whole model."""
    published_other: int
    """The card's second figure: effective (PLE) or active (MoE) parameters; dense: non-embedding."""
    other_label: str
    not_in_gguf: int
    """Parameters the published total counts but a text GGUF does not hold (Gemma 4's vision and
    audio encoders live in llama.cpp's separate mmproj file)."""
    plan: Callable[[float], Plan]
    note: str = ""
    not_in_gguf_what: str = ""
    """What ``not_in_gguf`` is, for the card's sentence."""


def _u32(v: int) -> tuple[GGUFValueType, int]:
    return GGUFValueType.UINT32, int(v)


def _f32(v: float) -> tuple[GGUFValueType, float]:
    return GGUFValueType.FLOAT32, float(v)


def _arr(item: GGUFValueType, values: list) -> tuple[GGUFValueType, tuple]:
    return GGUFValueType.ARRAY, (item, list(values))


def _scaled(n: int, scale: float, lo: int) -> int:
    return max(lo, round(n * scale))


def _check_scale(scale: float) -> None:
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], not {scale}")


# -- Gemma 4 E2B (gemma4: per-layer embeddings) -----------------------------------------------------
# Source: google/gemma-4-E2B config.json `text_config` (transformers Gemma4TextConfig): hidden_size
# 1536, num_hidden_layers 35, num_attention_heads 8, num_key_value_heads 1, head_dim 256 (sliding),
# global_head_dim 512 (full), intermediate_size 6144 with use_double_wide_mlp (12288 on the KV-
# sharing layers), hidden_size_per_layer_input 256, vocab_size 262144 (vocab_size_per_layer_input
# 262144), num_kv_shared_layers 20, sliding_window 512, layer_types four sliding then one full,
# rope_theta 1e6 (full, partial 0.25) / 1e4 (sliding), rms_norm_eps 1e-6, final_logit_softcapping
# 30, tie_word_embeddings true. Model card: "2.3B effective (5.1B with embeddings)"; the 5.1B also
# counts the vision (~150M) and audio (~300M) encoders, which llama.cpp keeps in the mmproj file.
def _gemma4(scale: float) -> Plan:
    _check_scale(scale)
    E, H, HKV, HD_SWA, HD_FULL, FF, P = 1536, 8, 1, 256, 512, 6144, 256
    blocks = _scaled(7, scale, 1)  # 35 layers = 7 blocks of (4 sliding + 1 full)
    n_layer = blocks * 5
    # The last 20 of 35 layers reuse earlier layers' KV; llama.cpp needs the last KV-owning layer
    # to be full attention and at least two owners: owners are whole blocks, 3 of 7 at full size.
    owners = 5 * max(1, round(blocks * 3 / 7))
    n_shared = n_layer - owners
    vocab = _scaled(262144, scale, MIN_VOCAB)
    swa = [(i % 5) != 4 for i in range(n_layer)]
    ff = [FF * (2 if i >= owners else 1) for i in range(n_layer)]
    p = Plan(vocab, n_layer)
    a = "gemma4"
    p.kv = {
        f"{a}.context_length": _u32(131072),
        f"{a}.embedding_length": _u32(E),
        f"{a}.block_count": _u32(n_layer),
        f"{a}.feed_forward_length": _arr(GGUFValueType.UINT32, ff),
        f"{a}.attention.head_count": _u32(H),
        f"{a}.attention.head_count_kv": _u32(HKV),
        f"{a}.attention.key_length": _u32(HD_FULL),
        f"{a}.attention.value_length": _u32(HD_FULL),
        f"{a}.attention.key_length_swa": _u32(HD_SWA),
        f"{a}.attention.value_length_swa": _u32(HD_SWA),
        f"{a}.rope.dimension_count": _u32(HD_FULL),
        f"{a}.rope.dimension_count_swa": _u32(HD_SWA),
        f"{a}.rope.freq_base": _f32(1e6),
        f"{a}.rope.freq_base_swa": _f32(1e4),
        f"{a}.attention.layer_norm_rms_epsilon": _f32(1e-6),
        f"{a}.attention.sliding_window": _u32(512),
        f"{a}.attention.sliding_window_pattern": _arr(GGUFValueType.BOOL, swa),
        f"{a}.attention.shared_kv_layers": _u32(n_shared),
        f"{a}.embedding_length_per_layer_input": _u32(P),
        f"{a}.final_logit_softcapping": _f32(30.0),
    }
    t = p.tensors
    t += [
        TensorPlan("token_embd.weight", (E, vocab)),
        TensorPlan("per_layer_token_embd.weight", (P * n_layer, vocab)),
        TensorPlan("per_layer_model_proj.weight", (E, P * n_layer)),
        TensorPlan("per_layer_proj_norm.weight", (P,), "norm"),
        TensorPlan("output_norm.weight", (E,), "norm"),
        TensorPlan("rope_freqs.weight", (HD_FULL // 2,), "norm"),
    ]
    for i in range(n_layer):
        hd = HD_SWA if swa[i] else HD_FULL
        b = f"blk.{i}."
        t += [
            TensorPlan(b + "attn_norm.weight", (E,), "norm"),
            TensorPlan(b + "attn_q.weight", (E, H * hd)),
        ]
        if i < owners:  # KV-sharing layers carry no K/V of their own
            t += [
                TensorPlan(b + "attn_k.weight", (E, HKV * hd)),
                TensorPlan(b + "attn_v.weight", (E, HKV * hd)),
                TensorPlan(b + "attn_k_norm.weight", (hd,), "norm"),
            ]
        t += [
            TensorPlan(b + "attn_output.weight", (H * hd, E)),
            TensorPlan(b + "attn_q_norm.weight", (hd,), "norm"),
            TensorPlan(b + "post_attention_norm.weight", (E,), "norm"),
            TensorPlan(b + "layer_output_scale.weight", (1,), "norm"),
            TensorPlan(b + "ffn_norm.weight", (E,), "norm"),
            TensorPlan(b + "ffn_gate.weight", (E, ff[i])),
            TensorPlan(b + "ffn_up.weight", (E, ff[i])),
            TensorPlan(b + "ffn_down.weight", (ff[i], E)),
            TensorPlan(b + "post_ffw_norm.weight", (E,), "norm"),
            TensorPlan(b + "inp_gate.weight", (E, P)),
            TensorPlan(b + "proj.weight", (P, E)),
            TensorPlan(b + "post_norm.weight", (E,), "norm"),
        ]
    return p


# -- Qwen2.5-3B (qwen2: dense) ------------------------------------------------------------------------
# Source: Qwen/Qwen2.5-3B config.json (transformers Qwen2Config): hidden_size 2048,
# intermediate_size 11008, num_attention_heads 16, num_key_value_heads 2, num_hidden_layers 36,
# vocab_size 151936, max_position_embeddings 32768, rope_theta 1e6, rms_norm_eps 1e-6,
# tie_word_embeddings true; Q/K/V projections with bias. Model card: 3.09B parameters, 2.77B
# non-embedding.
def _qwen2(scale: float) -> Plan:
    _check_scale(scale)
    E, H, HKV, FF = 2048, 16, 2, 11008
    hd = E // H
    n_layer = _scaled(36, scale, 1)
    vocab = _scaled(151936, scale, MIN_VOCAB)
    p = Plan(vocab, n_layer)
    a = "qwen2"
    p.kv = {
        f"{a}.context_length": _u32(32768),
        f"{a}.embedding_length": _u32(E),
        f"{a}.block_count": _u32(n_layer),
        f"{a}.feed_forward_length": _u32(FF),
        f"{a}.attention.head_count": _u32(H),
        f"{a}.attention.head_count_kv": _u32(HKV),
        f"{a}.rope.freq_base": _f32(1e6),
        f"{a}.attention.layer_norm_rms_epsilon": _f32(1e-6),
    }
    t = p.tensors
    t += [TensorPlan("token_embd.weight", (E, vocab)), TensorPlan("output_norm.weight", (E,), "norm")]
    for i in range(n_layer):
        b = f"blk.{i}."
        t += [
            TensorPlan(b + "attn_norm.weight", (E,), "norm"),
            TensorPlan(b + "attn_q.weight", (E, E)),
            TensorPlan(b + "attn_q.bias", (E,), "bias"),
            TensorPlan(b + "attn_k.weight", (E, HKV * hd)),
            TensorPlan(b + "attn_k.bias", (HKV * hd,), "bias"),
            TensorPlan(b + "attn_v.weight", (E, HKV * hd)),
            TensorPlan(b + "attn_v.bias", (HKV * hd,), "bias"),
            TensorPlan(b + "attn_output.weight", (E, E)),
            TensorPlan(b + "ffn_norm.weight", (E,), "norm"),
            TensorPlan(b + "ffn_gate.weight", (E, FF)),
            TensorPlan(b + "ffn_up.weight", (E, FF)),
            TensorPlan(b + "ffn_down.weight", (FF, E)),
        ]
    return p


# -- OLMoE-1B-7B (olmoe: mixture of experts) -----------------------------------------------------------
# Source: allenai/OLMoE-1B-7B-0924 config.json (transformers OlmoeConfig): hidden_size 2048,
# intermediate_size 1024 (per expert), num_attention_heads 16, num_key_value_heads 16,
# num_hidden_layers 16, num_experts 64, num_experts_per_tok 8, vocab_size 50304,
# max_position_embeddings 4096, rope_theta 1e4, rms_norm_eps 1e-5, tie_word_embeddings false,
# Q/K norms over the full width. Model card / paper (arXiv:2409.02060): 6.9B total, 1.3B active.
_QUIET = 0.1
"""The gain of the MoE twin's residual writers (attention output, expert down projections)."""


def _olmoe(scale: float) -> Plan:
    _check_scale(scale)
    E, H, FF, NE, NU = 2048, 16, 1024, 64, 8
    n_layer = _scaled(16, scale, 1)
    vocab = _scaled(50304, scale, MIN_VOCAB)
    p = Plan(vocab, n_layer)
    a = "olmoe"
    p.kv = {
        f"{a}.context_length": _u32(4096),
        f"{a}.embedding_length": _u32(E),
        f"{a}.block_count": _u32(n_layer),
        f"{a}.feed_forward_length": _u32(FF),
        f"{a}.attention.head_count": _u32(H),
        f"{a}.attention.head_count_kv": _u32(H),
        f"{a}.rope.freq_base": _f32(1e4),
        f"{a}.attention.layer_norm_rms_epsilon": _f32(1e-5),
        f"{a}.expert_count": _u32(NE),
        f"{a}.expert_used_count": _u32(NU),
    }
    t = p.tensors
    t += [
        # With weights of one scale the attention output outweighs the embedding, every token routes
        # alike and a handful of experts serve the whole run; a loud embedding routes per token.
        # The layers' writes to the residual stream are quiet too (``_QUIET``): at full depth, 16
        # layers of random writes otherwise drown the token and the later layers route every token
        # to the same few experts (36 % of expert bytes touched after 64 tokens, 95 % with them).
        TensorPlan("token_embd.weight", (E, vocab), gain=400.0),
        TensorPlan("output_norm.weight", (E,), "norm"),
        TensorPlan("output.weight", (E, vocab)),
    ]
    for i in range(n_layer):
        b = f"blk.{i}."
        t += [
            TensorPlan(b + "attn_norm.weight", (E,), "norm"),
            TensorPlan(b + "attn_q.weight", (E, E)),
            TensorPlan(b + "attn_k.weight", (E, E)),
            TensorPlan(b + "attn_v.weight", (E, E)),
            TensorPlan(b + "attn_output.weight", (E, E), gain=_QUIET),
            TensorPlan(b + "attn_q_norm.weight", (E,), "norm"),
            TensorPlan(b + "attn_k_norm.weight", (E,), "norm"),
            TensorPlan(b + "ffn_norm.weight", (E,), "norm"),
            TensorPlan(b + "ffn_gate_inp.weight", (E, NE), "f32"),
            TensorPlan(b + "ffn_gate_exps.weight", (E, FF, NE)),
            TensorPlan(b + "ffn_down_exps.weight", (FF, E, NE), gain=_QUIET),
            TensorPlan(b + "ffn_up_exps.weight", (E, FF, NE)),
        ]
    return p


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "gemma-4-e2b",
            "gemma4",
            "Gemma 4 E2B",
            "google/gemma-4-E2B config.json (transformers Gemma4TextConfig); model card",
            published_total=5_100_000_000,
            published_other=2_300_000_000,
            other_label="effective",
            not_in_gguf=450_000_000,
            not_in_gguf_what="vision and audio encoders that llama.cpp keeps in a separate mmproj file",
            plan=_gemma4,
            note="per-layer embeddings: one row of the PLE table per token and layer",
        ),
        Preset(
            "qwen2.5-3b",
            "qwen2",
            "Qwen2.5-3B",
            "Qwen/Qwen2.5-3B config.json (transformers Qwen2Config); model card",
            published_total=3_090_000_000,
            published_other=2_770_000_000,
            other_label="non-embedding",
            not_in_gguf=0,
            plan=_qwen2,
            note="dense: every weight is read for every token",
        ),
        Preset(
            "olmoe-1b-7b",
            "olmoe",
            "OLMoE-1B-7B",
            "allenai/OLMoE-1B-7B-0924 config.json (transformers OlmoeConfig); arXiv:2409.02060",
            published_total=6_900_000_000,
            published_other=1_300_000_000,
            other_label="active",
            not_in_gguf=0,
            plan=_olmoe,
            note="64 experts, 8 used per token; random routing is near-uniform, real routing is skewed",
        ),
    )
}
TWIN_PRESETS = PRESETS
