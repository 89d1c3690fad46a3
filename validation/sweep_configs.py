"""Real configs for rows of gguf-parser-go's measured CUDA compute-buffer sweep
(validation/cuda_sweep.py) whose architecture validation/layouts.py knows but whose model is not in
validation/model_configs.py. Values are the models' Hugging Face config.json as
convert_hf_to_gguf.py (b11434) writes them into GGUF metadata; each entry names its config. Specs
are generated the way validation/ generates its own (modelgen.generate: BF16 conversion ->
`llama-quantize --dry-run` for the quant the sweep's file carries) into validation/models-sweep/.

    python validation/sweep_configs.py --llama-bin /work/llamacpp/build/bin
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from validation.model_configs import QWEN_VOCAB, _model, f32, i32s, u32  # noqa: E402

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
]


def main(argv: list[str] | None = None) -> int:
    from validation import modelgen

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bin", type=Path, required=True, help="directory with llama-quantize")
    ap.add_argument("--work", type=Path, default=HERE / "cache" / "work")
    a = ap.parse_args(argv)
    for cfg in SWEEP_MODELS:
        spec = modelgen.generate(cfg, a.llama_bin, a.work)
        print(f"{cfg['name']}: {len(spec['tensors'])} tensors -> {modelgen.save_spec(spec, SPECS_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
