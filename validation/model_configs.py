"""The real architectures the validation runs on: their GGUF metadata, as llama.cpp's converter
(convert_hf_to_gguf.py, b11434) writes it from each model's Hugging Face config.json.

Only header facts live here; the tensor lists come from validation/layouts.py and the quant mix
from llama.cpp's own quantizer (validation/modelgen.py). Values are the published configs of the
named repos. Typed helpers make the GGUF value types those the converter writes (uint32 counts,
float32 floats, int32 arrays).
"""

from __future__ import annotations

from typing import Any

from gguf import GGUFValueType as V


def u32(x: int) -> tuple[Any, V, None]:
    return (int(x), V.UINT32, None)


def f32(x: float) -> tuple[Any, V, None]:
    return (float(x), V.FLOAT32, None)


def s(x: str) -> tuple[Any, V, None]:
    return (x, V.STRING, None)


def b(x: bool) -> tuple[Any, V, None]:
    return (bool(x), V.BOOL, None)


def i32s(xs: list[int]) -> tuple[Any, V, V]:
    return ([int(x) for x in xs], V.ARRAY, V.INT32)


def _prefixed(arch: str, keys: dict[str, Any]) -> dict[str, Any]:
    return {f"{arch}.{k}": v for k, v in keys.items()}


def _model(name: str, repo: str, arch: str, quant: str, vocab: dict, keys: dict[str, Any], notes: str = "") -> dict:
    meta = {"general.architecture": s(arch), "general.name": s(repo.split("/")[-1])}
    meta.update(_prefixed(arch, keys))
    return {"name": name, "hf_repo": repo, "arch": arch, "quant": quant, "vocab": vocab, "metadata": meta, "notes": notes}


QWEN_VOCAB = {"model": "gpt2", "pre": "qwen2", "n_tokens": 151936,
              "special": {"bos": 151643, "eos": 151645, "padding": 151643}, "add_bos_token": False}

MODELS: list[dict] = [
    _model(
        "llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct", "llama", "Q4_K_M",
        {"model": "gpt2", "pre": "llama-bpe", "n_tokens": 128256, "special": {"bos": 128000, "eos": 128009}},
        {
            "block_count": u32(32), "context_length": u32(131072), "embedding_length": u32(4096),
            "feed_forward_length": u32(14336), "attention.head_count": u32(32), "attention.head_count_kv": u32(8),
            "rope.freq_base": f32(500000.0), "attention.layer_norm_rms_epsilon": f32(1e-5),
            "attention.key_length": u32(128), "attention.value_length": u32(128),
            "vocab_size": u32(128256), "rope.dimension_count": u32(128),
        },
        "dense GQA; llama3 rope scaling ships as the rope_freqs.weight tensor",
    ),
    _model(
        "qwen3-32b", "Qwen/Qwen3-32B", "qwen3", "Q4_K_M", QWEN_VOCAB,
        {
            "block_count": u32(64), "context_length": u32(40960), "embedding_length": u32(5120),
            "feed_forward_length": u32(25600), "attention.head_count": u32(64), "attention.head_count_kv": u32(8),
            "rope.freq_base": f32(1000000.0), "attention.layer_norm_rms_epsilon": f32(1e-6),
            "attention.key_length": u32(128), "attention.value_length": u32(128),
        },
        "head_dim 128 != 5120/64; q/k norms",
    ),
    _model(
        "qwen3-vl-32b", "Qwen/Qwen3-VL-32B-Instruct", "qwen3vl", "Q4_K_M", QWEN_VOCAB,
        {
            "block_count": u32(64), "context_length": u32(262144), "embedding_length": u32(5120),
            "feed_forward_length": u32(25600), "attention.head_count": u32(64), "attention.head_count_kv": u32(8),
            "rope.freq_base": f32(5000000.0), "attention.layer_norm_rms_epsilon": f32(1e-6),
            "attention.key_length": u32(128), "attention.value_length": u32(128),
            "rope.dimension_sections": i32s([24, 20, 20, 0]), "n_deepstack_layers": u32(3),
        },
        "text model of the VL release (the mmproj is a separate file); deepstack widens the input embeddings",
    ),
    _model(
        "qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B-Instruct-2507", "qwen3moe", "Q4_K_M", QWEN_VOCAB,
        {
            "block_count": u32(48), "context_length": u32(262144), "embedding_length": u32(2048),
            "feed_forward_length": u32(6144), "attention.head_count": u32(32), "attention.head_count_kv": u32(4),
            "rope.freq_base": f32(10000000.0), "attention.layer_norm_rms_epsilon": f32(1e-6),
            "expert_used_count": u32(8), "attention.key_length": u32(128), "attention.value_length": u32(128),
            "expert_count": u32(128), "expert_feed_forward_length": u32(768),
        },
        "MoE, 128 experts (8 active), no shared expert",
    ),
    _model(
        "gpt-oss-20b", "openai/gpt-oss-20b", "gpt-oss", "MXFP4_MOE",
        {"model": "gpt2", "pre": "gpt-4o", "n_tokens": 201088,
         "special": {"bos": 199998, "eos": 200002, "padding": 199999}},
        {
            "block_count": u32(24), "context_length": u32(131072), "embedding_length": u32(2880),
            "feed_forward_length": u32(2880), "attention.head_count": u32(64), "attention.head_count_kv": u32(8),
            "rope.freq_base": f32(150000.0), "attention.layer_norm_rms_epsilon": f32(1e-5),
            "expert_count": u32(32), "expert_used_count": u32(4),
            "attention.key_length": u32(64), "attention.value_length": u32(64),
            "rope.scaling.type": s("yarn"), "rope.scaling.factor": f32(32.0),
            "rope.scaling.original_context_length": u32(4096),
            "attention.sliding_window": u32(128), "expert_feed_forward_length": u32(2880),
        },
        "SWA (window 128, every other layer) + MoE with MXFP4 experts, attention sinks and biases",
    ),
    _model(
        "gemma-3-12b", "google/gemma-3-12b-it", "gemma3", "Q4_K_M",
        {"model": "llama", "pre": "default", "n_tokens": 262208,
         "special": {"bos": 2, "eos": 1, "unknown": 3, "padding": 0}, "add_bos_token": True, "add_eos_token": False},
        {
            "context_length": u32(131072), "embedding_length": u32(3840), "block_count": u32(48),
            "feed_forward_length": u32(15360), "attention.head_count": u32(16),
            "attention.layer_norm_rms_epsilon": f32(1e-6), "attention.key_length": u32(256),
            "attention.value_length": u32(256), "rope.freq_base": f32(1000000.0),
            "attention.sliding_window": u32(1024), "attention.head_count_kv": u32(8),
            "rope.scaling.type": s("linear"), "rope.scaling.factor": f32(8.0),
        },
        "SWA 1024, 5 local : 1 global; tied embeddings; 262208-token vocab",
    ),
    _model(
        "deepseek-v2-lite", "deepseek-ai/DeepSeek-V2-Lite-Chat", "deepseek2", "Q4_K_M",
        {"model": "gpt2", "pre": "deepseek-llm", "n_tokens": 102400,
         "special": {"bos": 100000, "eos": 100001, "padding": 100001}},
        {
            "block_count": u32(27), "context_length": u32(163840), "embedding_length": u32(2048),
            "feed_forward_length": u32(10944), "attention.head_count": u32(16), "attention.head_count_kv": u32(1),
            "rope.freq_base": f32(10000.0), "attention.layer_norm_rms_epsilon": f32(1e-6),
            "expert_used_count": u32(6), "leading_dense_block_count": u32(1), "vocab_size": u32(102400),
            "attention.kv_lora_rank": u32(512), "attention.key_length": u32(576), "attention.value_length": u32(512),
            "attention.key_length_mla": u32(192), "attention.value_length_mla": u32(128),
            "expert_feed_forward_length": u32(1408), "expert_count": u32(64), "expert_shared_count": u32(2),
            "expert_weights_scale": f32(1.0), "rope.dimension_count": u32(64),
            "rope.scaling.type": s("yarn"), "rope.scaling.factor": f32(40.0),
            "rope.scaling.original_context_length": u32(4096), "rope.scaling.yarn_log_multiplier": f32(0.0707),
        },
        "MLA (kv_lora_rank 512 + 64 rope dims, latent cache), 64 routed + 2 shared experts, first layer dense",
    ),
    _model(
        "lfm2-1.2b", "LiquidAI/LFM2-1.2B", "lfm2", "Q4_K_M",
        {"model": "gpt2", "pre": "lfm2", "n_tokens": 65536,
         "special": {"bos": 1, "eos": 7, "padding": 0}, "add_bos_token": True},
        {
            "block_count": u32(16), "context_length": u32(128000), "embedding_length": u32(2048),
            "feed_forward_length": u32(8192), "attention.head_count": u32(32),
            "attention.head_count_kv": i32s([0, 0, 8, 0, 0, 8, 0, 0, 8, 0, 8, 0, 8, 0, 8, 0]),
            "rope.freq_base": f32(1000000.0), "attention.layer_norm_rms_epsilon": f32(1e-5),
            "vocab_size": u32(65536), "shortconv.l_cache": u32(3),
        },
        "hybrid: 10 short-convolution layers (recurrent state) + 6 attention layers",
    ),
    _model(
        "qwen3-next-80b-a3b", "Qwen/Qwen3-Next-80B-A3B-Instruct", "qwen3next", "Q4_K_M", QWEN_VOCAB,
        {
            "block_count": u32(48), "context_length": u32(262144), "embedding_length": u32(2048),
            "feed_forward_length": u32(5120), "attention.head_count": u32(16), "attention.head_count_kv": u32(2),
            "rope.freq_base": f32(10000000.0), "attention.layer_norm_rms_epsilon": f32(1e-6),
            "expert_used_count": u32(10), "attention.key_length": u32(256), "attention.value_length": u32(256),
            "expert_count": u32(512), "expert_feed_forward_length": u32(512),
            "expert_shared_feed_forward_length": u32(512),
            "ssm.conv_kernel": u32(4), "ssm.state_size": u32(128), "ssm.group_count": u32(16),
            "ssm.time_step_rank": u32(32), "ssm.inner_size": u32(4096),
            "full_attention_interval": u32(4), "rope.dimension_count": u32(64),
        },
        "hybrid: 36 gated-delta-net layers (recurrent) + 12 full-attention layers, 512 experts + shared; "
        "converted without the MTP block (as most published GGUFs)",
    ),
]

BY_NAME = {m["name"]: m for m in MODELS}
