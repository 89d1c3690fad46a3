"""Every architecture gguf knows goes through the estimator: generic keys for the ordinary ones,
planner/archs.py rules for the special ones, a warning (never a silent number) otherwise."""

from __future__ import annotations

import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as Q
from gguf.constants import MODEL_ARCH_NAMES

from planner.archs import ARCH_RULES, known_architectures, rule_for
from planner.estimate_types import RunSettings
from planner.estimator import estimate
from planner.header import GGUFHeader, ModelHeaders, SkippedArray, TensorInfo
from planner.model_facts import ModelFacts

E, L, VOCAB = 512, 4, 1000


def _tensor(name: str, shape: tuple[int, ...], q: Q = Q.F16) -> TensorInfo:
    block, size = GGML_QUANT_SIZES[q]
    n = 1
    for d in shape:
        n *= d
    return TensorInfo(name=name, shape=shape, ggml_type=int(q), offset=0, nbytes=n // block * size)


def headers(arch: str, extra: dict | None = None) -> ModelHeaders:
    meta = {"general.architecture": arch, f"{arch}.block_count": L, f"{arch}.context_length": 8192,
            f"{arch}.embedding_length": E, f"{arch}.feed_forward_length": 1024,
            f"{arch}.attention.head_count": 8, f"{arch}.attention.head_count_kv": 2,
            "tokenizer.ggml.tokens": SkippedArray(8, VOCAB)}
    meta.update(extra or {})
    tensors = [_tensor("token_embd.weight", (E, VOCAB)), _tensor("output_norm.weight", (E,), Q.F32),
               _tensor("output.weight", (E, VOCAB))]
    for i in range(L):
        tensors += [_tensor(f"blk.{i}.attn_q.weight", (E, E)), _tensor(f"blk.{i}.attn_k.weight", (E, 128)),
                    _tensor(f"blk.{i}.attn_v.weight", (E, 128)), _tensor(f"blk.{i}.ffn_up.weight", (E, 1024))]
    h = GGUFHeader(version=3, metadata=meta, tensors=tensors, alignment=32, data_offset=0)
    return ModelHeaders.merge([h])


GGUF_ARCHS = sorted(set(MODEL_ARCH_NAMES.values()) - {"clip"})


@pytest.mark.parametrize("arch", GGUF_ARCHS)
def test_every_gguf_architecture_is_estimated(arch):
    facts = ModelFacts.from_headers(headers(arch))
    b = estimate(facts, RunSettings(backend="cpu", n_ctx=4096))
    assert b.weights_bytes == sum(t.nbytes for t in headers(arch).tensors)
    assert b.total_bytes > b.weights_bytes
    assert not any("unknown to memfit" in w for w in b.warnings)
    rule = rule_for(arch)
    if rule.no_kv or rule.recurrent == "all":
        assert b.kv_bytes == 0
    elif rule is rule_for("llama") and not rule.approximate:
        # the generic path: K and V of 2 heads x (512 / 8) per layer, 4096 cells, f16
        assert b.kv_bytes == L * 2 * 2 * 64 * 4096 * 2


def test_registry_names_are_known_architectures():
    names = known_architectures()
    assert set(ARCH_RULES) <= names
    assert set(GGUF_ARCHS) <= names


def test_swa_pattern_key_overrides_the_default():
    # an explicit per-layer array wins over gemma3's default period of 6
    flags = [True, False, True, False]
    f = ModelFacts.from_headers(headers("gemma3", {"gemma3.attention.sliding_window": 256,
                                                   "gemma3.attention.sliding_window_pattern": flags}))
    assert [layer.is_swa for layer in f.layers] == flags
    # an integer changes the period: 2 -> every second layer is global
    f = ModelFacts.from_headers(headers("gemma3", {"gemma3.attention.sliding_window": 256,
                                                   "gemma3.attention.sliding_window_pattern": 2}))
    assert [layer.is_swa for layer in f.layers] == [True, False, True, False]


def test_gemma3_without_window_key_has_no_swa():
    f = ModelFacts.from_headers(headers("gemma3"))
    assert not f.swa_enabled and not any(layer.is_swa for layer in f.layers)


def test_gpt_oss_alternates_swa_and_dense_layers():
    f = ModelFacts.from_headers(headers("gpt-oss", {"gpt-oss.attention.sliding_window": 128}))
    assert [layer.is_swa for layer in f.layers] == [True, False, True, False]
    b = estimate(f, RunSettings(backend="cpu", n_ctx=8192))
    # 2 SWA layers with pad256(128 + 512) = 768 cells, 2 full layers with 8192
    assert b.kv_bytes == 2 * 256 * 2 * 768 + 2 * 256 * 2 * 8192


def test_llama4_chunked_attention_uses_8192_window():
    f = ModelFacts.from_headers(headers("llama4"))
    assert f.swa_enabled and f.n_swa == 8192
    assert [layer.is_swa for layer in f.layers] == [True, True, True, False]
    off = ModelFacts.from_headers(headers("llama4", {"llama4.attention.sliding_window": 0}))
    assert not off.swa_enabled


def test_phi3_sliding_window_is_disabled_like_llamacpp():
    f = ModelFacts.from_headers(headers("phi3", {"phi3.attention.sliding_window": 2048}))
    assert not f.swa_enabled


def test_head_count_kv_array_is_read_per_layer():
    f = ModelFacts.from_headers(headers("llama", {"llama.attention.head_count_kv": [2, 4, 2, 8]}))
    assert [layer.k_width for layer in f.layers] == [128, 256, 128, 512]


def test_approximate_architecture_warns():
    f = ModelFacts.from_headers(headers("deepseek4"))
    b = estimate(f, RunSettings(backend="cpu", n_ctx=4096))
    assert any("approximation" in w for w in b.warnings)
    assert "kv" in b.estimated


def test_embedding_models_have_no_kv():
    f = ModelFacts.from_headers(headers("bert"))
    b = estimate(f, RunSettings(backend="cpu", n_ctx=512))
    assert b.kv_bytes == 0


def test_grok_forces_flash_attention_off():
    f = ModelFacts.from_headers(headers("grok"))
    b = estimate(f, RunSettings(backend="cpu", n_ctx=4096, flash_attn="on"))
    assert b.flash_attn is False
