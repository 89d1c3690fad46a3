"""The architectures of the models the field rows use (validation/field/*.toml, obs.model.spec):
GGUF metadata as llama.cpp b11434's converter (convert_hf_to_gguf.py) writes it from each model's
Hugging Face config.json, plus the Hub GGUF repo the rows cite and the quants to record.

Models the validation grid already has (validation/model_configs.toml) are reused unchanged; the rest
are plain tables in validation/field/configs.toml or, for the Qwen3.5 and Gemma 4 families, built
here from their shared shape, each with its values' source (validation/field/models.toml holds the
same facts with their citations). Only header facts live here: tensor lists come from validation/layouts.py, quant
mixes from llama.cpp's quantizer (validation/field/make_specs.py).

MTP: where the GGUF the rows cite carries the multi-token-prediction block (the converter's
default since MTP export landed), `nextn_predict_layers` is set and block_count includes it; the
published parameter counts decide (noted per model). llama.cpp loads those tensors only when asked
to (they are TENSOR_SKIP otherwise), so they count in the file but not in the weights buffers.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from gguf import GGUFValueType as V

from validation.model_configs import BY_NAME, _model, f32, i32s, load_configs, s, u32

HERE = Path(__file__).resolve().parent
QUANTS = ["Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "BF16"]


def bools(xs: list[bool]) -> tuple[Any, V, V]:
    return ([bool(x) for x in xs], V.ARRAY, V.BOOL)


def _every(n: int, interval: int, n_mtp: int = 0) -> list[bool]:
    """Qwen3.5 layer_types as the converter writes attention.recurrent_layers: layer i is linear
    attention unless (i + 1) % interval == 0; MTP blocks (appended) are full attention."""
    return [(i + 1) % interval != 0 for i in range(n)] + [False] * n_mtp


def _swa_5_1(n: int) -> list[bool]:
    """Gemma 4 layer_types: 5 sliding_attention layers, then 1 full_attention."""
    return [(i + 1) % 6 != 0 for i in range(n)]


QWEN35_VOCAB = {"model": "gpt2", "pre": "qwen35", "n_tokens": 248320,
                "special": {"eos": 248046, "padding": 248044}, "add_bos_token": False}
GEMMA4_VOCAB = {"model": "gemma4", "pre": "gemma4", "n_tokens": 262144,
                "special": {"bos": 2, "eos": 1, "unknown": 3, "padding": 0}, "add_bos_token": True}


def _qwen35(name: str, repo: str, arch: str, *, n_layer: int, n_embd: int, n_head: int, n_head_kv: int,
            n_v_heads: int, n_mtp: int, n_ff: int | None = None, moe: tuple[int, int, int, int] | None = None,
            notes: str = "") -> dict:
    """Qwen3.5 / 3.6 (qwen35, qwen35moe): Qwen3NextModel.set_gguf_parameters + _Qwen35MRopeMixin.
    Shared by the family: head_dim 256, 16 linear key heads of 128, value heads of 128, conv kernel
    4, full attention every 4th layer, partial rotary 0.25 (64 dims), rope_theta 1e7, interleaved
    MRoPE sections [11, 11, 10], rms_norm_eps 1e-6, 262144 context, vocab 248320, untied."""
    keys: dict[str, Any] = {
        "block_count": u32(n_layer + n_mtp), "context_length": u32(262144), "embedding_length": u32(n_embd),
        "attention.head_count": u32(n_head), "attention.head_count_kv": u32(n_head_kv),
        "rope.freq_base": f32(10000000.0), "attention.layer_norm_rms_epsilon": f32(1e-6),
        "attention.key_length": u32(256), "attention.value_length": u32(256),
        "rope.dimension_sections": i32s([11, 11, 10, 0]),
        "ssm.conv_kernel": u32(4), "ssm.state_size": u32(128), "ssm.group_count": u32(16),
        "ssm.time_step_rank": u32(n_v_heads), "ssm.inner_size": u32(128 * n_v_heads),
        "attention.recurrent_layers": bools(_every(n_layer, 4, n_mtp)),
        "full_attention_interval": u32(4), "rope.dimension_count": u32(64),
    }
    if n_ff is not None:
        keys["feed_forward_length"] = u32(n_ff)
    if moe is not None:
        n_exp, n_used, n_ff_exp, n_ff_sh = moe
        keys.update({"expert_count": u32(n_exp), "expert_used_count": u32(n_used),
                     "expert_feed_forward_length": u32(n_ff_exp),
                     "expert_shared_feed_forward_length": u32(n_ff_sh)})
    if n_mtp:
        keys["nextn_predict_layers"] = u32(n_mtp)
    return _model(name, repo, arch, "Q4_K_M", QWEN35_VOCAB, keys, notes)


def _gemma4(name: str, repo: str, *, n_layer: int, n_embd: int, n_ff: int, n_head: int, kv_swa: int, kv_full: int,
            moe: tuple[int, int, int] | None = None, notes: str = "") -> dict:
    """Gemma 4 (Gemma4Model.set_gguf_parameters over Gemma3Model's): head_dim 256 on sliding layers
    and global_head_dim 512 on full layers (rope dims 256 / 512: the full layers' proportional rope
    is the rope_freqs tensor), per-layer KV heads array, sliding window 1024 in a 5:1 pattern, rope
    theta 1e6 (full) / 1e4 (sliding), final logit softcap 30, no KV sharing, no per-layer inputs,
    262144 context, vocab 262144, tied embeddings."""
    swa = _swa_5_1(n_layer)
    keys: dict[str, Any] = {
        "block_count": u32(n_layer), "context_length": u32(262144), "embedding_length": u32(n_embd),
        "feed_forward_length": u32(n_ff), "attention.head_count": u32(n_head),
        "attention.head_count_kv": i32s([kv_swa if w else kv_full for w in swa]),
        "rope.freq_base": f32(1000000.0), "rope.freq_base_swa": f32(10000.0),
        "attention.layer_norm_rms_epsilon": f32(1e-6),
        "attention.key_length": u32(512), "attention.value_length": u32(512),
        "attention.key_length_swa": u32(256), "attention.value_length_swa": u32(256),
        "final_logit_softcapping": f32(30.0), "attention.sliding_window": u32(1024),
        "attention.shared_kv_layers": u32(0), "embedding_length_per_layer_input": u32(0),
        "attention.sliding_window_pattern": bools(swa),
        "rope.dimension_count": u32(512), "rope.dimension_count_swa": u32(256),
    }
    if moe is not None:
        n_exp, n_used, n_ff_exp = moe
        keys.update({"expert_count": u32(n_exp), "expert_used_count": u32(n_used),
                     "expert_feed_forward_length": u32(n_ff_exp)})
    return _model(name, repo, "gemma4", "Q4_K_M", GEMMA4_VOCAB, keys, notes, layout={"k_eq_v": True})


# the plain tables (validation/field/configs.toml), then the two families built from their shape
NEW_MODELS: list[dict] = load_configs(HERE / "configs.toml")[0] + [
    # Qwen/Qwen3.5-9B: 32 layers, 4096, 16 heads / 4 KV of 256, ffn 12288 (THUDM/slime
    # scripts/models/qwen3.5-9B.sh); Gated DeltaNet 16 key / 32 value heads of 128 (transformers
    # Qwen3_5TextConfig, whose defaults are this model's). Untied: 8.95 B parameters (tied would be
    # 7.94 B). Converted without MTP (the 3.5 GGUFs predate MTP export: see 122B-A10B).
    _qwen35("qwen3.5-9b", "Qwen/Qwen3.5-9B", "qwen35", n_layer=32, n_embd=4096, n_head=16, n_head_kv=4,
            n_v_heads=32, n_mtp=0, n_ff=12288,
            notes="hybrid dense: 24 Gated DeltaNet + 8 gated-attention layers; no MTP block"),
    # Qwen/Qwen3.5-35B-A3B: 40 layers, 2048, 16 heads / 2 KV of 256, 256 experts of 512 (8 active) +
    # shared 512, DeltaNet 16 key / 32 value heads (THUDM/slime qwen3.5-35B-A3B.sh; a public
    # simulator's KNOWN_MODEL_METADATA table of the HF configs). 34.66 B without MTP.
    _qwen35("qwen3.5-35b-a3b", "Qwen/Qwen3.5-35B-A3B", "qwen35moe", n_layer=40, n_embd=2048, n_head=16,
            n_head_kv=2, n_v_heads=32, n_mtp=0, moe=(256, 8, 512, 512),
            notes="hybrid MoE: 30 Gated DeltaNet + 10 gated-attention layers, 256 experts + shared; no MTP block"),
    # Qwen/Qwen3.6-35B-A3B: the 3.5-35B-A3B shape (same table). unsloth/Qwen3.6-35B-A3B-GGUF carries
    # the MTP block: 35.51 B (llama-bench) = 34.66 B + one full-attention MoE block + eh_proj.
    _qwen35("qwen3.6-35b-a3b", "Qwen/Qwen3.6-35B-A3B", "qwen35moe", n_layer=40, n_embd=2048, n_head=16,
            n_head_kv=2, n_v_heads=32, n_mtp=1, moe=(256, 8, 512, 512),
            notes="hybrid MoE as Qwen3.5-35B-A3B; MTP block 40 present (skipped by llama.cpp)"),
    # Qwen/Qwen3.5-122B-A10B: 48 layers, 3072, 32 heads / 2 KV of 256, 256 experts of 1024 (8
    # active) + shared 1024, DeltaNet 16 key / 64 value heads (a public run script's qwen3_5_moe 122B
    # config). 122.11 B as llama-bench reports for unsloth's file: no MTP block.
    _qwen35("qwen3.5-122b-a10b", "Qwen/Qwen3.5-122B-A10B", "qwen35moe", n_layer=48, n_embd=3072, n_head=32,
            n_head_kv=2, n_v_heads=64, n_mtp=0, moe=(256, 8, 1024, 1024),
            notes="hybrid MoE: 36 Gated DeltaNet + 12 gated-attention layers, 256 experts + shared; no MTP block"),
    # Qwen/Qwen3.6-27B: 64 layers, 5120, 24 heads / 4 KV of 256, ffn 17408, DeltaNet 16 key / 48
    # value heads (public configs quoted in tests; same as THUDM/slime qwen3.5-27B.sh). 26.90 B
    # without MTP (lmstudio-community's GGUF: 26895998464); unsloth's file (the rows) has the MTP block:
    # 27.32 B.
    _qwen35("qwen3.6-27b", "Qwen/Qwen3.6-27B", "qwen35", n_layer=64, n_embd=5120, n_head=24, n_head_kv=4,
            n_v_heads=48, n_mtp=1, n_ff=17408,
            notes="hybrid dense: 48 Gated DeltaNet + 16 gated-attention layers; MTP block 64 present (skipped by llama.cpp)"),
    # Qwen/Qwen3.8-27B: a qwen3_5 checkpoint of the 27B shape (public tests pin its text config:
    # 64 layers, 5120, ffn 17408, 24 heads / 4 KV of 256, DeltaNet 16 / 48 heads of 128, mtp 1);
    # unsloth's GGUF carries blk.*.nextn.* tensors (sudoingX/qwen38-mtp).
    _qwen35("qwen3.8-27b", "Qwen/Qwen3.8-27B", "qwen35", n_layer=64, n_embd=5120, n_head=24, n_head_kv=4,
            n_v_heads=48, n_mtp=1, n_ff=17408,
            notes="qwen35 27B shape (as Qwen3.6-27B); MTP block 64 present (skipped by llama.cpp)"),
    # google/gemma-4-31B-it: 60 layers, 5376, ffn 21504, 32 heads, 16 KV heads (sliding) / 4 (full,
    # attention_k_eq_v: no v_proj), head_dim 256 / global 512. 30.70 B (llama-bench) exactly.
    _gemma4("gemma-4-31b", "google/gemma-4-31B-it", n_layer=60, n_embd=5376, n_ff=21504, n_head=32,
            kv_swa=16, kv_full=4,
            notes="dense, 50 sliding (1024) + 10 full-attention layers with their own head size and KV heads, k=v on full layers"),
    # google/gemma-4-26B-A4B-it: 30 layers, 2816, dense ffn 2112 in parallel with 128 experts of 704
    # (8 active), 16 heads, 8 KV (sliding) / 2 (full, k=v), head_dim 256 / 512. 25.23 B exactly.
    _gemma4("gemma-4-26b-a4b", "google/gemma-4-26B-A4B-it", n_layer=30, n_embd=2816, n_ff=2112, n_head=16,
            kv_swa=8, kv_full=2, moe=(128, 8, 704),
            notes="MoE (128 experts, 8 active, fused gate_up) + parallel dense FFN, 25 sliding + 5 full layers"),
]

_coder_next = dict(BY_NAME["qwen3-next-80b-a3b"])
_coder_next.update({
    "name": "qwen3-coder-next", "hf_repo": "Qwen/Qwen3-Coder-Next",
    "metadata": {**BY_NAME["qwen3-next-80b-a3b"]["metadata"], "general.name": s("Qwen3-Coder-Next")},
    "notes": "Qwen3-Next-80B-A3B architecture (48 layers, 2048, 512 experts + shared, 10 active, DeltaNet 16/32 "
             "heads; docker/model-runner's Qwen3-Coder-Next card); 79.67 B without MTP as llama-bench reports",
})

# spec id -> (model config, Hub GGUF repo the rows cite, its file name pattern, quants to record,
# vision projector): the [[field]] table of validation/field/configs.toml, in its order
_CONFIGS = {**BY_NAME, **{m["name"]: m for m in NEW_MODELS}, _coder_next["name"]: _coder_next}
FIELD: dict[str, dict[str, Any]] = {
    f["spec"]: {"cfg": _CONFIGS[f["spec"]], "repo": f["repo"], "file_pattern": f["file_pattern"],
                "quants": f.get("quants") or f.get("extra_quants", []) + QUANTS, "mmproj": f.get("mmproj")}
    for f in tomllib.loads((HERE / "configs.toml").read_text(encoding="utf-8"))["field"]
}
