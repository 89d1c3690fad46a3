"""Real configs for rows of gguf-parser-go's measured CUDA compute-buffer sweep
(validation/cuda_sweep.py) whose architecture validation/layouts.py knows but whose model is not in
validation/model_configs.py. Values are the models' Hugging Face config.json as
convert_hf_to_gguf.py (b11434) writes them into GGUF metadata; each entry names its config. Specs
are generated the way validation/ generates its own (modelgen.generate: BF16 conversion ->
`llama-quantize --dry-run` for the quant the sweep's file carries) into validation/models-sweep/.

    python -m validation.sweep_configs --llama-bin /work/llamacpp/build/bin
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

from validation.model_configs import QWEN_VOCAB, _model, f32, i32s, u32

SPM_GEMMA = {"model": "llama", "pre": "default", "n_tokens": 256000,
             "special": {"bos": 2, "eos": 1, "unknown": 3, "padding": 0}, "add_bos_token": True, "add_eos_token": False}

SPECS_DIR = HERE / "models-sweep"

SWEEP_MODELS: list[dict] = [
    # Qwen/Qwen3-4B config.json: hidden 2560, intermediate 9728, 36 layers, 32 heads, 8 KV heads,
    # head_dim 128, max_position_embeddings 40960, rope_theta 1e6, rms_norm_eps 1e-6, vocab 151936,
    # tie_word_embeddings true. The sweep's row is a fine-tune (AnkitAI/Parable-Qwen3-4B-...), same shape.
    _model(
        "qwen3-4b", "Qwen/Qwen3-4B", "qwen3", "Q4_K_M", QWEN_VOCAB,
        {
            "block_count": u32(36), "context_length": u32(40960), "embedding_length": u32(2560),
            "feed_forward_length": u32(9728), "attention.head_count": u32(32), "attention.head_count_kv": u32(8),
            "rope.freq_base": f32(1000000.0), "attention.layer_norm_rms_epsilon": f32(1e-6),
            "attention.key_length": u32(128), "attention.value_length": u32(128),
        },
        "dense, tied embeddings", layout={"tied": True},
    ),
    # google/gemma-3-1b-it config.json: hidden 1152, intermediate 6912, 26 layers, 4 heads, 1 KV head,
    # head_dim 256, sliding_window 512 (5 local : 1 global), rope_theta 1e6 (local 1e4),
    # max_position_embeddings 32768, vocab 262144, rms_norm_eps 1e-6, tied embeddings.
    _model(
        "gemma-3-1b", "google/gemma-3-1b-it", "gemma3", "Q4_K_M",
        {"model": "llama", "pre": "default", "n_tokens": 262144,
         "special": {"bos": 2, "eos": 1, "unknown": 3, "padding": 0}, "add_bos_token": True, "add_eos_token": False},
        {
            "context_length": u32(32768), "embedding_length": u32(1152), "block_count": u32(26),
            "feed_forward_length": u32(6912), "attention.head_count": u32(4),
            "attention.layer_norm_rms_epsilon": f32(1e-6), "attention.key_length": u32(256),
            "attention.value_length": u32(256), "rope.freq_base": f32(1000000.0),
            "attention.sliding_window": u32(512), "attention.head_count_kv": u32(1),
        },
        "SWA 512, 1 KV head, 262144-token vocab",
    ),
    # Qwen/Qwen3-VL-8B-Instruct config.json text_config: hidden 4096, intermediate 12288, 36 layers,
    # 32 heads, 8 KV heads, head_dim 128, rope_theta 5e6, mrope_section [24, 20, 20], max_position
    # 262144, vocab 151936, untied; vision_config deepstack_visual_indexes [8, 16, 24] (3 layers).
    # The sweep's row is an abliterated copy (mradermacher/Qwen3-VL-8B-Instruct-abliterated-GGUF).
    _model(
        "qwen3-vl-8b", "Qwen/Qwen3-VL-8B-Instruct", "qwen3vl", "Q4_K_M", QWEN_VOCAB,
        {
            "block_count": u32(36), "context_length": u32(262144), "embedding_length": u32(4096),
            "feed_forward_length": u32(12288), "attention.head_count": u32(32), "attention.head_count_kv": u32(8),
            "rope.freq_base": f32(5000000.0), "attention.layer_norm_rms_epsilon": f32(1e-6),
            "attention.key_length": u32(128), "attention.value_length": u32(128),
            "rope.dimension_sections": i32s([24, 20, 20, 0]), "n_deepstack_layers": u32(3),
        },
        "text model of the VL release, deepstack 3",
    ),
    # Qwen/Qwen2.5-3B-Instruct config.json: hidden 2048, intermediate 11008, 36 layers, 16 heads,
    # 2 KV heads, max_position_embeddings 32768, rope_theta 1e6, rms_norm_eps 1e-6, vocab 151936,
    # tie_word_embeddings true; Q/K/V biases (Qwen2).
    _model(
        "qwen2.5-3b", "Qwen/Qwen2.5-3B-Instruct", "qwen2", "Q4_K_M", QWEN_VOCAB,
        {
            "block_count": u32(36), "context_length": u32(32768), "embedding_length": u32(2048),
            "feed_forward_length": u32(11008), "attention.head_count": u32(16), "attention.head_count_kv": u32(2),
            "rope.freq_base": f32(1000000.0), "attention.layer_norm_rms_epsilon": f32(1e-6),
        },
        "dense GQA with Q/K/V biases, tied embeddings", layout={"tied": True},
    ),
    # google/gemma-2-2b-it config.json: hidden 2304, intermediate 9216, 26 layers, 8 heads, 4 KV heads,
    # head_dim 256, sliding_window 4096 (every other layer), attn/final logit softcapping 50/30,
    # max_position_embeddings 8192, vocab 256000, rms_norm_eps 1e-6, tied.
    _model(
        "gemma-2-2b", "google/gemma-2-2b-it", "gemma2", "Q4_K_M", SPM_GEMMA,
        {
            "context_length": u32(8192), "embedding_length": u32(2304), "block_count": u32(26),
            "feed_forward_length": u32(9216), "attention.head_count": u32(8), "attention.head_count_kv": u32(4),
            "attention.layer_norm_rms_epsilon": f32(1e-6), "attention.key_length": u32(256),
            "attention.value_length": u32(256), "attention.sliding_window": u32(4096),
            "attn_logit_softcapping": f32(50.0), "final_logit_softcapping": f32(30.0),
        },
        "SWA 4096 on every other layer, softcapping",
    ),
    # allenai/OLMoE-1B-7B-0924-Instruct config.json: hidden 2048, intermediate 1024 (per expert),
    # 16 layers, 16 heads (16 KV), 64 experts, 8 active, max_position_embeddings 4096, rope_theta 1e4,
    # rms_norm_eps 1e-5, vocab 50304 (tokenizer 50280 + padding), untied; q/k norms over the full width.
    _model(
        "olmoe-1b-7b", "allenai/OLMoE-1B-7B-0924-Instruct", "olmoe", "Q4_K_M",
        {"model": "gpt2", "pre": "olmo", "n_tokens": 50304, "special": {"bos": 50279, "eos": 50279, "padding": 1}},
        {
            "context_length": u32(4096), "embedding_length": u32(2048), "block_count": u32(16),
            "feed_forward_length": u32(1024), "attention.head_count": u32(16), "attention.head_count_kv": u32(16),
            "rope.freq_base": f32(10000.0), "attention.layer_norm_rms_epsilon": f32(1e-5),
            "expert_count": u32(64), "expert_used_count": u32(8),
        },
        "MoE, 64 experts (8 active), no shared expert",
    ),
    # microsoft/Phi-3.5-mini-instruct config.json: hidden 3072, intermediate 8192, 32 layers, 32 heads
    # (32 KV), max_position_embeddings 131072 (original 4096, LongRoPE), rope_theta 1e4, rms_norm_eps
    # 1e-5, vocab 32064, untied; fused qkv and gate_up projections.
    _model(
        "phi-3.5-mini", "microsoft/Phi-3.5-mini-instruct", "phi3", "Q4_K_M",
        # special ids as validation/vocab.py's SentencePiece layout places them (token ids do not
        # change any buffer; the vocabulary size does)
        {"model": "llama", "pre": "default", "n_tokens": 32064,
         "special": {"bos": 2, "eos": 1, "unknown": 3, "padding": 0}, "add_bos_token": False},
        {
            "context_length": u32(131072), "embedding_length": u32(3072), "block_count": u32(32),
            "feed_forward_length": u32(8192), "attention.head_count": u32(32), "attention.head_count_kv": u32(32),
            "rope.dimension_count": u32(96), "rope.freq_base": f32(10000.0),
            "attention.layer_norm_rms_epsilon": f32(1e-5), "rope.scaling.original_context_length": u32(4096),
            "rope.scaling.attn_factor": f32(1.1902380714238083),
        },
        "dense MHA, fused QKV and gate+up, LongRoPE factors",
    ),
]
# llama-vocab.cpp sets token attributes by text for a general.name containing "phi-3"/"phi3" and
# needs "<|endoftext|>" then; the generated vocabulary has no such text, so the name avoids the match
# (the name changes no buffer).
SWEEP_MODELS[-1]["metadata"]["general.name"] = ("Phi 3.5 mini instruct",) + SWEEP_MODELS[-1]["metadata"]["general.name"][1:]


def main(argv: list[str] | None = None) -> int:
    from validation import modelgen

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bin", type=Path, required=True, help="directory with llama-quantize")
    ap.add_argument("--work", type=Path, default=HERE / "cache" / "work")
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args(argv)
    ap_only = set(a.only or [c["name"] for c in SWEEP_MODELS])
    for cfg in SWEEP_MODELS:
        if cfg["name"] not in ap_only:
            continue
        spec = modelgen.generate(cfg, a.llama_bin, a.work)
        print(f"{cfg['name']}: {len(spec['tensors'])} tensors -> {modelgen.save_spec(spec, SPECS_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
