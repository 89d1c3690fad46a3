"""Real-architecture GGUF headers for the estimator tests (tests/test_estimator_*.py).

Each builder writes a sparse GGUF with planner/testing/ggufgen.py (real metadata keys and tensor names as
llama.cpp's converter writes them, real hyperparameters of the named model) and reads it back with
memfit's own reader, so the tests exercise the whole header -> facts -> estimate path. Vocabularies
are small unless a test needs the real size (the output buffer depends on it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

from .ggufgen import tokenizer_metadata, typed, write_gguf
from ..header import ModelHeaders
from ..model_facts import ModelFacts
from ..reader import parse_file

Tensor = tuple[str, tuple[int, ...], Q]


def _u32(x: int) -> typed:
    return typed(int(x), V.UINT32)


def _f32(x: float) -> typed:
    return typed(float(x), V.FLOAT32)


def _meta(arch: str, keys: dict[str, Any], n_vocab: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"general.architecture": arch, "general.name": f"test-{arch}"}
    for k, v in keys.items():
        meta[f"{arch}.{k}"] = v if isinstance(v, typed) else (_u32(v) if isinstance(v, int) and not isinstance(v, bool) else v)
    meta.update(tokenizer_metadata(n_vocab, merges=False))
    return meta


def _attn(i: int, E: int, q: int, k: int, v: int, wt: Q = Q.Q4_K, vt: Q = Q.Q6_K) -> list[Tensor]:
    p = f"blk.{i}."
    return [(p + "attn_norm.weight", (E,), Q.F32), (p + "attn_q.weight", (E, q), wt),
            (p + "attn_k.weight", (E, k), wt), (p + "attn_v.weight", (E, v), vt),
            (p + "attn_output.weight", (q, E), wt)]


def _ffn(i: int, E: int, ff: int, wt: Q = Q.Q4_K, dt: Q = Q.Q6_K) -> list[Tensor]:
    p = f"blk.{i}."
    return [(p + "ffn_norm.weight", (E,), Q.F32), (p + "ffn_gate.weight", (E, ff), wt),
            (p + "ffn_up.weight", (E, ff), wt), (p + "ffn_down.weight", (ff, E), dt)]


def _moe(i: int, E: int, ff_exp: int, n_exp: int, wt: Q = Q.Q4_K, dt: Q = Q.Q6_K) -> list[Tensor]:
    p = f"blk.{i}."
    return [(p + "ffn_norm.weight", (E,), Q.F32), (p + "ffn_gate_inp.weight", (E, n_exp), Q.F32),
            (p + "ffn_gate_exps.weight", (E, ff_exp, n_exp), wt), (p + "ffn_up_exps.weight", (E, ff_exp, n_exp), wt),
            (p + "ffn_down_exps.weight", (ff_exp, E, n_exp), dt)]


def _io(E: int, n_vocab: int, tied: bool = False, embd_t: Q = Q.Q4_K, out_t: Q = Q.Q6_K) -> list[Tensor]:
    t = [("token_embd.weight", (E, n_vocab), embd_t), ("output_norm.weight", (E,), Q.F32)]
    if not tied:
        t.append(("output.weight", (E, n_vocab), out_t))
    return t


def load(path: Path) -> ModelFacts:
    """A one-file model's facts, read back by memfit's own reader (the header -> facts path)."""
    return ModelFacts.from_headers(ModelHeaders.merge([parse_file(path)]))


def write(path: Path, arch: str, keys: dict[str, Any], tensors: list[Tensor], n_vocab: int) -> ModelFacts:
    write_gguf(path, _meta(arch, keys, n_vocab), tensors)
    return load(path)


# --- models ------------------------------------------------------------------------------------

def _stacked(path: Path, arch: str, keys: dict[str, Any], n_vocab: int, first: list[Tensor],
             layer: Callable[[int], list[Tensor]]) -> ModelFacts:
    """Write `first` (embeddings, output...) then `layer(i)` for each of the keys' block_count layers."""
    t = list(first)
    for i in range(keys["block_count"]):
        t += layer(i)
    return write(path, arch, keys, t, n_vocab)


def llama31_8b(path: Path, n_vocab: int = 1024, rope_freqs: bool = True) -> ModelFacts:
    """Llama-3.1-8B: 32 layers, 4096 wide, 32 query / 8 KV heads of 128, FFN 14336."""
    E, L = 4096, 32
    keys = {"block_count": L, "context_length": 131072, "embedding_length": E, "feed_forward_length": 14336,
            "attention.head_count": 32, "attention.head_count_kv": 8, "rope.dimension_count": 128,
            "rope.freq_base": _f32(500000.0), "attention.layer_norm_rms_epsilon": _f32(1e-5)}
    first = _io(E, n_vocab) + ([("rope_freqs.weight", (64,), Q.F32)] if rope_freqs else [])
    return _stacked(path, "llama", keys, n_vocab, first, lambda i: _attn(i, E, 4096, 1024, 1024) + _ffn(i, E, 14336))


def qwen3_32b(path: Path, n_vocab: int = 1024) -> ModelFacts:
    """Qwen3-32B: 64 layers, 5120 wide, 64 query / 8 KV heads of head_dim 128 (not 5120/64)."""
    E, L = 5120, 64
    keys = {"block_count": L, "context_length": 40960, "embedding_length": E, "feed_forward_length": 25600,
            "attention.head_count": 64, "attention.head_count_kv": 8, "attention.key_length": 128,
            "attention.value_length": 128, "rope.freq_base": _f32(1e6), "attention.layer_norm_rms_epsilon": _f32(1e-6)}
    return _stacked(path, "qwen3", keys, n_vocab, _io(E, n_vocab), lambda i: (
        _attn(i, E, 8192, 1024, 1024) + _ffn(i, E, 25600)
        + [(f"blk.{i}.attn_q_norm.weight", (128,), Q.F32), (f"blk.{i}.attn_k_norm.weight", (128,), Q.F32)]))


def gemma3_270m(path: Path, n_vocab: int = 1024) -> ModelFacts:
    """Gemma-3-270m: 18 layers, 640 wide, 4 query / 1 KV head of 256, SWA window 512 on 5 of
    every 6 layers (llama.cpp's default pattern), tied embeddings."""
    E, L = 640, 18
    keys = {"block_count": L, "context_length": 32768, "embedding_length": E, "feed_forward_length": 2048,
            "attention.head_count": 4, "attention.head_count_kv": 1, "attention.key_length": 256,
            "attention.value_length": 256, "attention.sliding_window": 512,
            "rope.freq_base": _f32(1e6), "attention.layer_norm_rms_epsilon": _f32(1e-6)}
    return _stacked(path, "gemma3", keys, n_vocab, _io(E, n_vocab, tied=True, embd_t=Q.Q8_0),
                    lambda i: _attn(i, E, 1024, 256, 256, Q.Q8_0, Q.Q8_0) + _ffn(i, E, 2048, Q.Q8_0, Q.Q8_0))


def deepseek_v2_lite(path: Path, n_vocab: int = 1024) -> ModelFacts:
    """DeepSeek-V2-Lite: 27 layers, MLA with kv_lora_rank 512 + 64 rope dims (the cache holds a
    576-wide latent K per token and layer, no V), 64 routed experts, first layer dense."""
    E, L = 2048, 27
    keys = {"block_count": L, "context_length": 163840, "embedding_length": E, "feed_forward_length": 10944,
            "attention.head_count": 16, "attention.head_count_kv": 1, "attention.kv_lora_rank": 512,
            "attention.key_length": 576, "attention.value_length": 512, "attention.key_length_mla": 192,
            "attention.value_length_mla": 128, "rope.dimension_count": 64, "leading_dense_block_count": 1,
            "expert_count": 64, "expert_used_count": 6, "expert_shared_count": 2, "expert_feed_forward_length": 1408,
            "rope.freq_base": _f32(10000.0), "attention.layer_norm_rms_epsilon": _f32(1e-6)}
    t = _io(E, n_vocab)
    for i in range(L):
        p = f"blk.{i}."
        t += [(p + "attn_norm.weight", (E,), Q.F32), (p + "attn_kv_a_norm.weight", (512,), Q.F32),
              (p + "attn_q.weight", (E, 3072), Q.Q4_K), (p + "attn_kv_a_mqa.weight", (E, 576), Q.Q4_K),
              (p + "attn_k_b.weight", (128, 512, 16), Q.Q8_0), (p + "attn_v_b.weight", (512, 128, 16), Q.Q4_K),
              (p + "attn_output.weight", (E, E), Q.Q4_K)]
        if i == 0:
            t += _ffn(i, E, 10944, dt=Q.Q8_0)  # 10944 and 1408 are not multiples of 256: no K-quant rows
        else:
            t += _moe(i, E, 1408, 64, dt=Q.Q8_0) + [(p + "ffn_gate_shexp.weight", (E, 2816), Q.Q4_K),
                                          (p + "ffn_up_shexp.weight", (E, 2816), Q.Q4_K),
                                          (p + "ffn_down_shexp.weight", (2816, E), Q.Q6_K)]
    return write(path, "deepseek2", keys, t, n_vocab)


def qwen3_30b_a3b(path: Path, n_vocab: int = 1024) -> ModelFacts:
    """Qwen3-30B-A3B: 48 MoE layers, 128 experts (8 used) of FFN 768, 32 / 4 heads of 128."""
    E, L = 2048, 48
    keys = {"block_count": L, "context_length": 262144, "embedding_length": E, "feed_forward_length": 6144,
            "attention.head_count": 32, "attention.head_count_kv": 4, "attention.key_length": 128,
            "attention.value_length": 128, "expert_count": 128, "expert_used_count": 8,
            "expert_feed_forward_length": 768, "rope.freq_base": _f32(1e7), "attention.layer_norm_rms_epsilon": _f32(1e-6)}
    return _stacked(path, "qwen3moe", keys, n_vocab, _io(E, n_vocab),
                    lambda i: _attn(i, E, 4096, 512, 512) + _moe(i, E, 768, 128))


LFM2_KV_HEADS = [0, 0, 8, 0, 0, 8, 0, 0, 8, 0, 8, 0, 8, 0, 8, 0]


def lfm2_1_2b(path: Path, n_vocab: int = 1024) -> ModelFacts:
    """LFM2-1.2B: 16 layers, 10 short-convolution layers (head_count_kv 0, recurrent conv state
    n_embd * (l_cache - 1)) and 6 attention layers with 8 KV heads of 64."""
    E, L = 2048, 16
    keys = {"block_count": L, "context_length": 128000, "embedding_length": E, "feed_forward_length": 8192,
            "attention.head_count": 32, "attention.head_count_kv": typed(LFM2_KV_HEADS, V.ARRAY, V.INT32),
            "shortconv.l_cache": 3, "rope.freq_base": _f32(1e6), "attention.layer_norm_rms_epsilon": _f32(1e-5)}
    t = [("token_embd.weight", (E, n_vocab), Q.Q6_K), ("token_embd_norm.weight", (E,), Q.F32)]
    for i in range(L):
        p = f"blk.{i}."
        if LFM2_KV_HEADS[i]:
            t += _attn(i, E, 2048, 512, 512)
        else:
            t += [(p + "attn_norm.weight", (E,), Q.F32), (p + "shortconv.conv.weight", (3, E), Q.F32),
                  (p + "shortconv.in_proj.weight", (E, 3 * E), Q.Q4_K), (p + "shortconv.out_proj.weight", (E, E), Q.Q4_K)]
        t += _ffn(i, E, 8192)
    return write(path, "lfm2", keys, t, n_vocab)


def qwen3_next(path: Path, n_vocab: int = 1024, n_layer: int = 48) -> ModelFacts:
    """Qwen3-Next-80B-A3B: 48 layers, every 4th full attention (2 KV heads of 256), the others
    gated delta net (conv kernel 4, 16 key groups of 128, 4096 inner): recurrent state
    r = 3 * (4096 + 2*16*128), s = 128 * 4096 floats per sequence."""
    E, L = 2048, n_layer
    keys = {"block_count": L, "context_length": 262144, "embedding_length": E, "feed_forward_length": 5120,
            "attention.head_count": 16, "attention.head_count_kv": 2, "attention.key_length": 256,
            "attention.value_length": 256, "expert_count": 512, "expert_used_count": 10,
            "expert_feed_forward_length": 512, "expert_shared_feed_forward_length": 512,
            "ssm.conv_kernel": 4, "ssm.state_size": 128, "ssm.group_count": 16, "ssm.time_step_rank": 32,
            "ssm.inner_size": 4096, "full_attention_interval": 4, "rope.dimension_count": 64,
            "rope.freq_base": _f32(1e7), "attention.layer_norm_rms_epsilon": _f32(1e-6)}
    t = _io(E, n_vocab)
    for i in range(L):
        p = f"blk.{i}."
        if (i + 1) % 4 == 0:
            t += _attn(i, E, 8192, 512, 512)
        else:
            t += [(p + "attn_norm.weight", (E,), Q.F32), (p + "attn_qkv.weight", (E, 8192), Q.Q6_K),
                  (p + "attn_gate.weight", (E, 4096), Q.Q4_K), (p + "ssm_conv1d.weight", (4, 8192), Q.F32),
                  (p + "ssm_out.weight", (4096, E), Q.Q4_K)]
        t += _moe(i, E, 512, 512)
    return write(path, "qwen3next", keys, t, n_vocab)


def mamba2_like(path: Path, n_vocab: int = 1024) -> ModelFacts:
    """A Mamba2 model (pure recurrent: no KV cache at all)."""
    E, L = 2560, 64
    keys = {"block_count": L, "context_length": 1048576, "embedding_length": E, "feed_forward_length": 0,
            "attention.head_count": 0, "ssm.conv_kernel": 4, "ssm.inner_size": 5120, "ssm.state_size": 128,
            "ssm.time_step_rank": 80, "ssm.group_count": 1, "attention.layer_norm_rms_epsilon": _f32(1e-5)}
    t = _io(E, n_vocab)
    for i in range(L):
        p = f"blk.{i}."
        t += [(p + "attn_norm.weight", (E,), Q.F32), (p + "ssm_in.weight", (E, 10576), Q.Q8_0),
              (p + "ssm_conv1d.weight", (4, 5376), Q.F32), (p + "ssm_out.weight", (5120, E), Q.Q8_0)]
    return write(path, "mamba2", keys, t, n_vocab)


def gemma3n_like(path: Path, n_vocab: int = 1024) -> ModelFacts:
    """Gemma-3n: 30 layers, SWA pattern 5 (every 5th global), only the first 20 layers own KV
    (n_layer_kv_from_start = 20; the rest reuse it)."""
    E, L = 2048, 30
    keys = {"block_count": L, "context_length": 32768, "embedding_length": E, "feed_forward_length": 8192,
            "attention.head_count": 8, "attention.head_count_kv": 2, "attention.key_length": 256,
            "attention.value_length": 256, "attention.sliding_window": 512,
            "rope.freq_base": _f32(1e6), "attention.layer_norm_rms_epsilon": _f32(1e-6)}
    return _stacked(path, "gemma3n", keys, n_vocab, _io(E, n_vocab, tied=True),
                    lambda i: _attn(i, E, 2048, 512, 512) + _ffn(i, E, 8192))


def unknown_arch(path: Path, n_vocab: int = 1024) -> ModelFacts:
    """An architecture memfit has never heard of, with GQA metadata."""
    E, L = 1024, 4
    keys = {"block_count": L, "context_length": 8192, "embedding_length": E, "feed_forward_length": 4096,
            "attention.head_count": 16, "attention.head_count_kv": 2}
    return _stacked(path, "frobnicator9", keys, n_vocab, _io(E, n_vocab),
                    lambda i: _attn(i, E, 1024, 128, 128) + _ffn(i, E, 4096))


# short name -> builder, for tests that want several of them in one folder (write_models)
BUILDERS: dict[str, Callable[[Path], ModelFacts]] = {
    "llama": llama31_8b, "qwen3": qwen3_32b, "gemma": gemma3_270m, "deepseek": deepseek_v2_lite,
    "moe": qwen3_30b_a3b, "lfm2": lfm2_1_2b, "next": qwen3_next, "mamba2": mamba2_like, "gemma3n": gemma3n_like,
}


def write_models(root: Path, names: list[str]) -> dict[str, ModelFacts]:
    """The named models (BUILDERS) written into `root` as <name>.gguf, read back."""
    return {name: BUILDERS[name](root / f"{name}.gguf") for name in names}
