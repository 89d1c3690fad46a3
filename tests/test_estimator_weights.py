"""Weights: exact per tensor, and placed where llama.cpp b11434 puts them (src/llama-model.cpp
load_tensors, src/llama-model-loader.cpp create_tensor)."""

from __future__ import annotations

import pytest
from gguf import GGMLQuantizationType as Q

from planner.testing import estimator_models as em
from planner.testing.ggufgen import write_gguf
from planner.estimate_types import RunSettings
from planner.estimator import estimate
from planner.model_facts import tensor_alloc_size


def pad(x: int, n: int) -> int:
    return -(-x // n) * n


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("w")
    return {**em.write_models(root, ["llama", "gemma", "moe", "deepseek"]), "root": root}


def _tensor_sum(facts, names=None, align=32, row_pad=0):
    total = 0
    for layer in facts.layers:
        for t in layer.tensors:
            total += tensor_alloc_size(t, align, row_pad)
    for name, t in facts.nonrepeating.items():
        if names is None or name in names:
            total += tensor_alloc_size(t, align, row_pad)
    return total


def test_cpu_weights_are_the_file_tensors(models):
    f = models["llama"]
    b = estimate(f, RunSettings(backend="cpu", n_ctx=4096))
    assert b.weights_bytes == f.total_file_tensor_bytes  # every tensor is a multiple of 32 bytes
    assert b.device("host").weights_bytes == b.weights_bytes
    assert sum(layer.weights_bytes for layer in b.layers) + sum(b.nonrepeating_weights.values()) == b.weights_bytes


def test_full_offload_keeps_the_input_embedding_on_the_host(models):
    f = models["llama"]
    b = estimate(f, RunSettings(backend="cuda", n_ctx=4096))
    te = f.nonrepeating["token_embd.weight"]
    assert b.device("host").weights_bytes == pad(te.nbytes, 32)
    # the output head and rope_freqs go to the GPU, every tensor padded to CUDA's 128 bytes
    assert b.device("gpu").weights_bytes == _tensor_sum(f, align=128, row_pad=512) - tensor_alloc_size(te, 128, 512)
    assert all(layer.on_gpu for layer in b.layers)


def test_ngl_counts_the_output_layer(models):
    f = models["llama"]
    per = {t.name: t for t in f.nonrepeating.values()}
    out = tensor_alloc_size(per["output.weight"], 128, 512) + tensor_alloc_size(per["output_norm.weight"], 128, 512)
    b0 = estimate(f, RunSettings(backend="cuda", n_ctx=4096, n_gpu_layers=0))
    assert b0.device("gpu").weights_bytes == 0 and not any(layer.on_gpu for layer in b0.layers)
    b1 = estimate(f, RunSettings(backend="cuda", n_ctx=4096, n_gpu_layers=1))
    assert b1.device("gpu").weights_bytes == out  # -ngl 1 = only the output layer
    b10 = estimate(f, RunSettings(backend="cuda", n_ctx=4096, n_gpu_layers=10))
    on = [layer.index for layer in b10.layers if layer.on_gpu]
    assert on == list(range(23, 32))  # the last 9 repeating layers + the output layer
    layer_gpu = sum(tensor_alloc_size(t, 128, 512) for i in on for t in f.layers[i].tensors)
    rope = tensor_alloc_size(per["rope_freqs.weight"], 128, 512)  # one copy per device holding layers
    assert b10.device("gpu").weights_bytes == layer_gpu + out + rope
    host_layers = sum(tensor_alloc_size(t, 32, 0) for i in range(23) for t in f.layers[i].tensors)
    assert b10.device("host").weights_bytes == host_layers + pad(per["token_embd.weight"].nbytes, 32) + \
        tensor_alloc_size(per["rope_freqs.weight"], 32, 0)
    # -ngl above the layer count is "all"
    b99 = estimate(f, RunSettings(backend="cuda", n_ctx=4096, n_gpu_layers=99))
    ball = estimate(f, RunSettings(backend="cuda", n_ctx=4096))
    assert b99.device("gpu").weights_bytes == ball.device("gpu").weights_bytes


def test_tied_embeddings_are_duplicated_as_the_gpu_output(models):
    f = models["gemma"]
    assert f.tied_output
    te = f.nonrepeating["token_embd.weight"]
    b = estimate(f, RunSettings(backend="cuda", n_ctx=4096))
    assert b.device("host").weights_bytes == pad(te.nbytes, 32)
    assert b.weights_bytes == _tensor_sum(f, align=128, row_pad=512) - tensor_alloc_size(te, 128, 512) \
        + pad(te.nbytes, 32) + tensor_alloc_size(te, 128, 512)
    # on the CPU backend the copy only exists when the type is repacked (Q8_0 is not on x86)
    cpu = estimate(f, RunSettings(backend="cpu", n_ctx=4096))
    assert cpu.weights_bytes == f.total_file_tensor_bytes


def test_tied_q4_0_embedding_is_repacked_copy_on_cpu(models):
    root = models["root"]
    meta = {"general.architecture": "gemma3", "gemma3.block_count": 1, "gemma3.context_length": 4096,
            "gemma3.embedding_length": 256, "gemma3.feed_forward_length": 512, "gemma3.attention.head_count": 4,
            "gemma3.attention.head_count_kv": 1}
    meta.update(em.tokenizer_metadata(1024, merges=False))
    tensors = [("token_embd.weight", (256, 1024), Q.Q4_0), ("output_norm.weight", (256,), Q.F32),
               ("blk.0.attn_q.weight", (256, 256), Q.Q4_0)]
    f = em.load(write_gguf(root / "tied.gguf", meta, tensors))
    te = 256 * 1024 // 32 * 18
    with_repack = estimate(f, RunSettings(backend="cpu", n_ctx=4096))
    without = estimate(f, RunSettings(backend="cpu", n_ctx=4096, repack=False))
    assert with_repack.weights_bytes - without.weights_bytes == te


def test_n_cpu_moe_moves_experts_of_the_first_layers(models):
    f = models["moe"]
    full = estimate(f, RunSettings(backend="cuda", n_ctx=4096))
    part = estimate(f, RunSettings(backend="cuda", n_ctx=4096, n_cpu_moe=10))
    experts_gpu = sum(tensor_alloc_size(t, 128, 512) for i in range(10) for t in f.layers[i].tensors if t.is_expert)
    experts_host = sum(tensor_alloc_size(t, 32, 0) for i in range(10) for t in f.layers[i].tensors if t.is_expert)
    assert full.device("gpu").weights_bytes - part.device("gpu").weights_bytes == experts_gpu
    assert part.device("host").weights_bytes - full.device("host").weights_bytes == experts_host
    assert [layer.experts_on_gpu for layer in part.layers] == [False] * 10 + [True] * 38
    assert all(layer.on_gpu for layer in part.layers)
    # expert share per layer: gate/up/down exps, nothing else
    layer = part.layers[5]
    assert layer.expert_bytes == sum(t.nbytes for t in f.layers[5].tensors if "_exps" in t.name)
    assert 0 < layer.expert_bytes < layer.weights_bytes


def test_dense_first_layer_of_deepseek_has_no_experts(models):
    b = estimate(models["deepseek"], RunSettings(backend="cpu", n_ctx=4096))
    assert b.layers[0].expert_bytes == 0 and b.layers[1].expert_bytes > 0


def test_mtp_layers_are_not_loaded(models):
    root = models["root"]
    E = 512
    meta = {"general.architecture": "glm4moe", "glm4moe.block_count": 3, "glm4moe.nextn_predict_layers": 1,
            "glm4moe.context_length": 4096, "glm4moe.embedding_length": E, "glm4moe.feed_forward_length": 1024,
            "glm4moe.attention.head_count": 8, "glm4moe.attention.head_count_kv": 2,
            "glm4moe.attention.key_length": 64, "glm4moe.attention.value_length": 64}
    meta.update(em.tokenizer_metadata(1024, merges=False))
    tensors = em._io(E, 1024)
    for i in range(3):
        tensors += em._attn(i, E, 512, 128, 128) + em._ffn(i, E, 1024)
    tensors.append(("blk.2.nextn.eh_proj.weight", (2 * E, E), Q.Q8_0))
    f = em.load(write_gguf(root / "mtp.gguf", meta, tensors))
    b = estimate(f, RunSettings(backend="cpu", n_ctx=4096))
    mtp = sum(t.nbytes for t in f.layers[2].tensors)
    assert b.weights_bytes == f.total_file_tensor_bytes - mtp
    assert b.layers[2].weights_bytes == 0 and b.layers[2].kind == "none"
    assert b.kv_bytes == 2 * 2 * 128 * 4096 * 2  # only the 2 trunk layers have KV


def test_unknown_architecture_warns_and_is_conservative(models):
    f = em.unknown_arch(models["root"] / "unk.gguf")
    b = estimate(f, RunSettings(backend="cpu", n_ctx=4096))
    assert any("unknown" in w for w in b.warnings)
    # GQA metadata says 2 KV heads of 64 (128 wide); the conservative estimate uses n_embd = 1024
    assert b.kv_bytes == 4 * 2 * 1024 * 4096 * 2
    assert "kv" in b.estimated and "kv" not in b.exact
