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


def _model(name: str, repo: str, arch: str, quant: str, vocab: dict, keys: dict[str, Any], notes: str = "",
           layout: dict | None = None) -> dict:
    """layout: tensor choices the metadata does not record (validation/layouts.py, Hp.options)."""
    meta = {"general.architecture": s(arch), "general.name": s(repo.split("/")[-1])}
    meta.update(_prefixed(arch, keys))
    cfg = {"name": name, "hf_repo": repo, "arch": arch, "quant": quant, "vocab": vocab, "metadata": meta, "notes": notes}
    if layout:
        cfg["layout"] = layout
    return cfg


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
    # --- added for wider coverage; each value's source is named next to it --------------------
    # google/gemma-3-270m config.json (text-only 270M): hidden_size 640, num_hidden_layers 18,
    # intermediate_size 2048, 4 heads / 1 KV head, head_dim 256, sliding_window 512 (5 local : 1
    # global), max_position_embeddings 32768, rope_theta 1e6, rms_norm_eps 1e-6, vocab 262144 (no
    # image tokens, unlike the 12B's 262208). Cross-checked against the real Q4_K_M file measured in
    # /work/shared/reference/peers.md (18 layers, 1 KV head, head_dim 256, SWA 512, 262,144 tokens).
    _model(
        "gemma-3-270m", "google/gemma-3-270m", "gemma3", "Q4_K_M",
        {"model": "llama", "pre": "default", "n_tokens": 262144,
         "special": {"bos": 2, "eos": 1, "unknown": 3, "padding": 0}, "add_bos_token": True, "add_eos_token": False},
        {
            "context_length": u32(32768), "embedding_length": u32(640), "block_count": u32(18),
            "feed_forward_length": u32(2048), "attention.head_count": u32(4),
            "attention.layer_norm_rms_epsilon": f32(1e-6), "attention.key_length": u32(256),
            "attention.value_length": u32(256), "rope.freq_base": f32(1000000.0),
            "attention.sliding_window": u32(512), "attention.head_count_kv": u32(1),
        },
        "the peers.md reference model: SWA 512, 5 local : 1 global, 1 KV head; 262144-token vocab on a "
        "640-wide model (logits dominate compute); rows of 640 are not a multiple of 256, so Q4_K_M falls back",
    ),
    # zai-org/GLM-4.7-Flash config.json (Glm4MoeLiteForCausalLM, converted as deepseek2 by
    # conversion/glm.py Glm4MoeLiteModel): hidden 2048, 47 layers, intermediate 10240 (first layer
    # dense), moe_intermediate 1536, 64 routed + 1 shared experts, 4 active, 20 heads, q_lora_rank 768,
    # kv_lora_rank 512, qk_nope 192 + qk_rope 64, v_head_dim 256, vocab 154880, max_position_embeddings
    # 202752, rope_theta 1e6, rms_norm_eps 1e-5, routed_scaling_factor 1.8, norm_topk_prob, n_group 1,
    # topk_group 1, topk_method noaux_tc (score-correction bias -> exp_probs_b), eos/pad 154820.
    # Source: the config as quoted in vLLM's glm4_moe_lite config test; corroborated by llama.cpp's own
    # benches (benches/dgx-spark, mac-m2-ultra: "deepseek2 30B.A3B Q8_0 29.65 GiB 29.94 B" for
    # ggml-org/GLM-4.7-Flash-GGUF): these values give 29.94 B parameters without the MTP block, and
    # src/models/deepseek2.cpp recognises the model by n_layer 47/48 + n_vocab 154880. The published
    # GGUFs (unsloth, ggml-org) predate MTP export, so no nextn block here (b11434's converter would add
    # one unless --no-mtp). DeepseekV2Model.set_gguf_parameters writes head_count_kv 1 (MLA as MQA),
    # key_length 512+64, value_length 512, key/value_length_mla 256/256.
    _model(
        "glm-4.7-flash", "zai-org/GLM-4.7-Flash", "deepseek2", "Q4_K_M",
        {"model": "gpt2", "pre": "glm4", "n_tokens": 154880, "special": {"eos": 154820, "padding": 154820}},
        {
            "block_count": u32(47), "context_length": u32(202752), "embedding_length": u32(2048),
            "feed_forward_length": u32(10240), "attention.head_count": u32(20), "attention.head_count_kv": u32(1),
            "rope.freq_base": f32(1000000.0), "attention.layer_norm_rms_epsilon": f32(1e-5),
            "expert_count": u32(64), "expert_used_count": u32(4),
            "expert_group_count": u32(1), "expert_group_used_count": u32(1),
            "leading_dense_block_count": u32(1), "vocab_size": u32(154880),
            "attention.q_lora_rank": u32(768), "attention.kv_lora_rank": u32(512),
            "attention.key_length": u32(576), "attention.value_length": u32(512),
            "attention.key_length_mla": u32(256), "attention.value_length_mla": u32(256),
            "expert_feed_forward_length": u32(1536), "expert_shared_count": u32(1),
            "expert_weights_scale": f32(1.8), "expert_weights_norm": b(True), "rope.dimension_count": u32(64),
        },
        "MLA with a q LoRA (q_lora_rank 768, kv_lora_rank 512 + 64 rope dims, latent cache), 20 heads of "
        "256 + 64 dims, 64 routed + 1 shared experts, first layer dense; converted without the MTP block",
        layout={"exp_probs_b": True},
    ),
    # ibm-granite/granite-4.0-h-tiny config.json (GraniteMoeHybridForCausalLM -> granitehybrid,
    # conversion/granite.py GraniteHybridModel): hidden 1536, 40 layers, layer_types attention at 5, 15,
    # 25, 35 (Mamba2 elsewhere), 12 heads / 4 KV heads, intermediate_size 512 (experts), 64 experts, 6
    # active, shared_intermediate_size 1024, mamba_d_state 128, mamba_n_groups 1, mamba_n_heads 48,
    # mamba_d_head 64, mamba_expand 2, mamba_d_conv 4, vocab 100352, tied embeddings, NoPE, rms 1e-5.
    # Source: the published config as quoted by several public test suites (identical values; e.g. an
    # mlx-lm parameter-count test "using granite-4.0-h-tiny's real field values"). The converter writes
    # ssm.inner_size = expand * hidden = 3072, ssm.time_step_rank = mamba_n_heads, a per-layer
    # head_count_kv array (0 = Mamba2), rope.scaling.finetuned false and, because the hybrid has no
    # RoPE, context_length 2**20. Optional scales (attention/embedding/residual/logit) are left out: they
    # do not change memory and llama.cpp treats them as optional. The pre-tokenizer name is not the
    # real one (memory depends on the token count only).
    _model(
        "granite-4.0-h-tiny", "ibm-granite/granite-4.0-h-tiny", "granitehybrid", "Q4_K_M",
        {"model": "gpt2", "pre": "default", "n_tokens": 100352, "special": {"eos": 100257}},
        {
            "block_count": u32(40), "context_length": u32(1 << 20), "embedding_length": u32(1536),
            "feed_forward_length": u32(512), "attention.head_count": u32(12),
            "attention.head_count_kv": i32s([4 if i in (5, 15, 25, 35) else 0 for i in range(40)]),
            "attention.layer_norm_rms_epsilon": f32(1e-5), "expert_count": u32(64), "expert_used_count": u32(6),
            "expert_shared_feed_forward_length": u32(1024),
            "ssm.conv_kernel": u32(4), "ssm.state_size": u32(128), "ssm.group_count": u32(1),
            "ssm.inner_size": u32(3072), "ssm.time_step_rank": u32(48), "rope.scaling.finetuned": b(False),
        },
        "hybrid: 36 Mamba2 layers (recurrent conv + SSM state) + 4 attention layers (NoPE), 64 experts "
        "(6 active) + shared expert on every layer; tied embeddings",
    ),
    # openai/gpt-oss-120b config.json: as gpt-oss-20b (hidden 2880, 64 heads / 8 KV heads of 64, SWA
    # 128 on every other layer, experts of 2880, 4 active, yarn x32 from 4096, rope_theta 150000, vocab
    # 201088, 131072 context) but 36 layers and 128 experts.
    _model(
        "gpt-oss-120b", "openai/gpt-oss-120b", "gpt-oss", "MXFP4_MOE",
        {"model": "gpt2", "pre": "gpt-4o", "n_tokens": 201088,
         "special": {"bos": 199998, "eos": 200002, "padding": 199999}},
        {
            "block_count": u32(36), "context_length": u32(131072), "embedding_length": u32(2880),
            "feed_forward_length": u32(2880), "attention.head_count": u32(64), "attention.head_count_kv": u32(8),
            "rope.freq_base": f32(150000.0), "attention.layer_norm_rms_epsilon": f32(1e-5),
            "expert_count": u32(128), "expert_used_count": u32(4),
            "attention.key_length": u32(64), "attention.value_length": u32(64),
            "rope.scaling.type": s("yarn"), "rope.scaling.factor": f32(32.0),
            "rope.scaling.original_context_length": u32(4096),
            "attention.sliding_window": u32(128), "expert_feed_forward_length": u32(2880),
        },
        "SWA 128 on 18 of 36 layers + 128 MXFP4 experts (4 active); the 60 GiB class",
    ),
    # meta-llama/Llama-3.3-70B-Instruct config.json: hidden 8192, 80 layers, intermediate 28672, 64
    # heads / 8 KV heads (head_dim 128), vocab 128256, rope_theta 500000 with llama3 scaling (shipped as
    # rope_freqs.weight, as for 3.1), rms_norm_eps 1e-5, max_position_embeddings 131072.
    _model(
        "llama-3.3-70b", "meta-llama/Llama-3.3-70B-Instruct", "llama", "Q4_K_M",
        {"model": "gpt2", "pre": "llama-bpe", "n_tokens": 128256, "special": {"bos": 128000, "eos": 128009}},
        {
            "block_count": u32(80), "context_length": u32(131072), "embedding_length": u32(8192),
            "feed_forward_length": u32(28672), "attention.head_count": u32(64), "attention.head_count_kv": u32(8),
            "rope.freq_base": f32(500000.0), "attention.layer_norm_rms_epsilon": f32(1e-5),
            "attention.key_length": u32(128), "attention.value_length": u32(128),
            "vocab_size": u32(128256), "rope.dimension_count": u32(128),
        },
        "dense, 80 layers, 8192 wide; the big-dense case (40 GiB at Q4_K_M, 320 KiB of KV per token)",
    ),
]

BY_NAME = {m["name"]: m for m in MODELS}
