"""KV cache and recurrent state, byte-exact, derived by hand from llama.cpp b11434's rules
(src/llama-kv-cache.cpp, llama-kv-cache-iswa.cpp, llama-memory-recurrent.cpp, llama-context.cpp).
The same numbers were confirmed with llama.cpp's no_alloc dry run (validation/results)."""

from __future__ import annotations

import pytest

from planner.testing import estimator_models as em
from planner.errors import EstimateError
from planner.estimate_types import RunSettings
from planner.estimator import estimate

MIB = 1 << 20


def cpu(**kw) -> RunSettings:
    return RunSettings(backend="cpu", **kw)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return em.write_models(tmp_path_factory.mktemp("kv"),
                           ["llama", "qwen3", "gemma", "deepseek", "lfm2", "next", "mamba2", "gemma3n"])


def test_llama31_8b_24k_f16_is_3072_mib(models):
    # 32 layers x (8 KV heads x 128) for K and for V x 24576 cells x 2 bytes
    b = estimate(models["llama"], cpu(n_ctx=24576))
    assert b.kv_bytes == 32 * 2 * 1024 * 24576 * 2 == 3072 * MIB
    assert b.kv_cells == 24576
    assert {layer.kind for layer in b.layers} == {"attention"}


def test_qwen3_32b_uses_key_length_not_embd_over_heads(models):
    # head_dim 128 (attention.key_length), not 5120 / 64 = 80
    b = estimate(models["qwen3"], cpu(n_ctx=24576))
    assert b.kv_bytes == 64 * 2 * 8 * 128 * 24576 * 2 == 6144 * MIB


def test_gemma3_270m_sliding_window(models):
    # layers 5, 11, 17 are global (pattern 6): 72 MiB; 15 SWA layers hold
    # pad256(min(24576, 512 + 512)) = 1024 cells: 15 MiB
    b = estimate(models["gemma"], cpu(n_ctx=24576))
    assert b.kv_bytes == 3 * 512 * 24576 * 2 + 15 * 512 * 1024 * 2 == 87 * MIB
    kinds = [layer.kind for layer in b.layers]
    assert [i for i, k in enumerate(kinds) if k == "attention"] == [5, 11, 17]
    assert {layer.kv_cells for layer in b.layers if layer.kind == "swa"} == {1024}


def test_gemma3_270m_swa_full(models):
    b = estimate(models["gemma"], cpu(n_ctx=24576, swa_full=True))
    assert b.kv_bytes == 18 * 512 * 24576 * 2 == 432 * MIB


def test_swa_cells_grow_with_ubatch(models):
    # pad256(512 + 2048) = 2560 cells on SWA layers with -ub 2048
    b = estimate(models["gemma"], cpu(n_ctx=24576, n_ubatch=2048))
    assert b.kv_bytes == 3 * 512 * 24576 * 2 + 15 * 512 * 2560 * 2


def test_mla_latent_cache_has_no_v(models):
    # DeepSeek-V2-Lite: K = kv_lora_rank + rope dims = 576 per token and layer, V absent
    b = estimate(models["deepseek"], cpu(n_ctx=24576))
    assert b.kv_bytes == 27 * 576 * 24576 * 2
    assert {layer.kind for layer in b.layers} == {"mla"}
    q8 = estimate(models["deepseek"], cpu(n_ctx=24576, cache_type_k="q8_0", cache_type_v="q8_0"))
    assert q8.kv_bytes == 27 * (576 // 32 * 34) * 24576


def test_mla_needs_equal_k_and_v_types(models):
    with pytest.raises(EstimateError, match="different K"):
        estimate(models["deepseek"], cpu(n_ctx=4096, cache_type_k="q8_0", cache_type_v="f16"))


@pytest.mark.parametrize("ctype,row", [("q8_0", 1024 // 32 * 34), ("q4_0", 1024 // 32 * 18),
                                       ("q4_1", 1024 // 32 * 20), ("q5_0", 1024 // 32 * 22),
                                       ("q5_1", 1024 // 32 * 24), ("iq4_nl", 1024 // 32 * 18),
                                       ("bf16", 2048), ("f32", 4096), ("f16", 2048)])
def test_cache_types_row_sizes(models, ctype, row):
    b = estimate(models["llama"], cpu(n_ctx=24576, cache_type_k=ctype, cache_type_v=ctype))
    assert b.kv_bytes == 32 * 2 * row * 24576


def test_quantized_v_needs_flash_attention(models):
    with pytest.raises(EstimateError, match="flash attention off"):
        estimate(models["llama"], cpu(n_ctx=4096, cache_type_v="q8_0", flash_attn="off"))
    b = estimate(models["llama"], cpu(n_ctx=4096, cache_type_v="q8_0", flash_attn="auto"))
    assert b.flash_attn is True
    # a quantized K alone works without FA
    b = estimate(models["llama"], cpu(n_ctx=4096, cache_type_k="q8_0", flash_attn="off"))
    assert b.flash_attn is False


def test_context_is_padded_to_256(models):
    b = estimate(models["llama"], cpu(n_ctx=30000))
    assert b.n_ctx == 30208 and b.kv_cells == 30208
    assert b.kv_bytes == 32 * 2 * 1024 * 2 * 30208


def test_ctx_zero_means_training_context(models):
    b = estimate(models["qwen3"], cpu())
    assert b.n_ctx == 40960
    assert b.kv_bytes == 64 * 2 * 1024 * 2 * 40960


def test_parallel_unified_vs_per_sequence_streams(models):
    # unified: one stream of n_ctx cells; per sequence: pad256(30208 / 3) = 10240 cells x 3 streams
    uni = estimate(models["llama"], cpu(n_ctx=30000, n_parallel=3, kv_unified=True))
    per = estimate(models["llama"], cpu(n_ctx=30000, n_parallel=3))
    assert uni.kv_bytes == 32 * 2048 * 2 * 30208
    assert per.kv_bytes == 32 * 2048 * 2 * 10240 * 3
    assert per.n_ctx == 30720 and per.kv_cells == 10240


def test_parallel_swa_cells(models):
    # unified: the window is kept for every sequence: pad256(512 * 4 + 512) = 2560 cells
    uni = estimate(models["gemma"], cpu(n_ctx=24576, n_parallel=4, kv_unified=True))
    assert uni.kv_bytes == 3 * 1024 * 24576 + 15 * 1024 * 2560
    # per sequence: 4 streams of 6144 cells, SWA pad256(min(6144, 512 + 512)) = 1024 per stream
    per = estimate(models["gemma"], cpu(n_ctx=24576, n_parallel=4))
    assert per.kv_bytes == 3 * 1024 * 6144 * 4 + 15 * 1024 * 1024 * 4


def test_output_buffer_scales_with_sequences(models):
    b1 = estimate(models["llama"], cpu(n_ctx=4096))
    b4 = estimate(models["llama"], cpu(n_ctx=4096, n_parallel=4))
    assert b1.output_bytes == 1024 * 4  # n_vocab floats for one sequence
    assert b4.output_bytes == 4 * b1.output_bytes


def test_lfm2_hybrid(models):
    # 6 attention layers (8 KV heads of 64) in 2 streams of 4096 cells, V transposed without FA;
    # 10 conv layers with r = n_embd * (l_cache - 1) = 4096 floats per sequence, no s state
    b = estimate(models["lfm2"], cpu(n_ctx=8192, n_parallel=2, flash_attn="off"))
    assert b.kv_bytes == 6 * 1024 * 2 * 4096 * 2
    assert b.recurrent_bytes == 10 * 4096 * 4 * 2
    kinds = [layer.kind for layer in b.layers]
    assert kinds.count("recurrent") == 10 and kinds.count("attention") == 6


def test_qwen3_next_hybrid(models):
    # 12 full-attention layers; 36 gated-delta-net layers with r = 3 * (4096 + 2*16*128) and
    # s = 128 * 4096 f32 per sequence, independent of the context
    b = estimate(models["next"], cpu(n_ctx=8192, n_parallel=4))
    assert b.kv_bytes == 12 * 1024 * 2 * 8192
    per_seq = (3 * (4096 + 2 * 16 * 128) + 128 * 4096) * 4
    assert b.recurrent_bytes == 36 * per_seq * 4
    longer = estimate(models["next"], cpu(n_ctx=65536, n_parallel=4))
    assert longer.recurrent_bytes == b.recurrent_bytes


def test_mamba2_has_no_kv(models):
    b = estimate(models["mamba2"], cpu(n_ctx=32768))
    assert b.kv_bytes == 0
    assert b.recurrent_bytes == 64 * (3 * (5120 + 2 * 128) + 128 * 5120) * 4


def test_gemma3n_layers_without_kv(models):
    # only the first 20 of 30 layers own KV; among them layers 4, 9, 14, 19 are global
    b = estimate(models["gemma3n"], cpu(n_ctx=8192))
    assert b.kv_bytes == 4 * 1024 * 2 * 8192 + 16 * 1024 * 2 * 1024
    assert [layer.kind for layer in b.layers[20:]] == ["none"] * 10


def test_kv_follows_offloaded_layers(models):
    b = estimate(models["llama"], RunSettings(backend="cuda", n_ctx=8192, n_gpu_layers=9))
    per_layer = 2048 * 2 * 8192
    assert b.device("gpu").kv_bytes == 8 * per_layer  # -ngl 9 = output + the last 8 layers
    assert b.device("host").kv_bytes == 24 * per_layer
    nkvo = estimate(models["llama"], RunSettings(backend="cuda", n_ctx=8192, no_kv_offload=True))
    assert nkvo.device("gpu").kv_bytes == 0 and nkvo.device("host").kv_bytes == 32 * per_layer


def test_cuda_pads_quantized_rows_of_odd_width(models):
    # MLA latent rows of 576 q8_0 values are not a multiple of 512: CUDA adds one row segment of
    # 512 - 64 = 448 values (ggml_backend_cuda_buffer_type_get_alloc_size), then aligns to 128
    b = estimate(models["deepseek"], RunSettings(backend="cuda", n_ctx=4096, cache_type_k="q8_0", cache_type_v="q8_0"))
    tensor = 612 * 4096 + 448 // 32 * 34
    assert b.kv_bytes == 27 * (-(-tensor // 128) * 128)
