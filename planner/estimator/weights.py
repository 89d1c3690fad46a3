"""Model weights per device, exactly as llama.cpp places and sizes them.

Rules (llama.cpp b11434):
- src/llama-model.cpp load_tensors: the input layer (token_embd, position_embd, token_types,
  per_layer_token_embd) always stays on the CPU; repeating layer il goes to the GPU when
  il >= n_layer + 1 - n_gpu_layers; the output layer counts as layer n_layer (so -ngl 1 offloads
  only the output head). Tensors of non-layer blocks go with the output.
- src/llama-model-loader.cpp create_tensor: without output.weight, token_embd is created again
  as the output (TENSOR_DUPLICATED); the copy costs memory whenever the output lands in a
  different buffer type than the input (a GPU; or CPU_REPACK for repackable types on the CPU
  backend). rope_freqs/rope_factors_* are created per layer as duplicates: one copy per device.
  Tensors matching `blk.N.ffn_(up|down|gate|gate_up)_(ch|)exps` of the first N layers move to the
  CPU with --n-cpu-moe N (common/arg.cpp llm_add_n_cpu_ffn_overrides).
- nextn/MTP blocks (blk.N, N >= block_count - nextn_predict_layers) are TENSOR_SKIP'ed unless MTP
  is requested: they are in the file but not allocated.
- ggml-alloc ggml_backend_alloc_ctx_tensors_from_buft_size: each tensor is padded to the buffer
  alignment (CPU 32 B, CUDA 128 B + quantized row padding to 512 elements).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..estimate_types import RunSettings
from ..ggml_types import GGMLQuantizationType
from ..model_facts import ModelFacts, tensor_alloc_size
from .context import RunContext

Q = GGMLQuantizationType
# ggml-cpu/repack.cpp ggml_repack_get_optimal_repack_type on x86-64 with AVX2 (Q2_K needs AVX-512):
# the types whose MUL_MAT lands in the CPU_REPACK buffer when rows (ne[1]) are a multiple of 8.
CPU_REPACK_TYPES = frozenset({int(Q.Q4_0), int(Q.Q4_K), int(Q.IQ4_NL), int(Q.MXFP4), int(Q.Q2_K)})


@dataclass
class WeightsResult:
    gpu: int
    host: int
    per_layer: list[int]
    per_layer_expert: list[int]
    nonrepeating: dict[str, int]
    tied_duplicate: int  # bytes of the duplicated token_embd used as the output head (0 if none)

    @property
    def total(self) -> int:
        return self.gpu + self.host


def weights(facts: ModelFacts, ctx: RunContext, s: RunSettings) -> WeightsResult:
    be = ctx.backend
    sums = facts.padded_sums(be.alignment, be.row_pad)
    host_sums = sums if not be.is_gpu else facts.padded_sums(32, 0)
    gpu = host = 0
    per_layer: list[int] = []
    per_expert: list[int] = []

    for il, layer in enumerate(facts.layers):
        if not layer.loaded:
            per_layer.append(0)
            per_expert.append(0)
            continue
        if ctx.layer_on_gpu[il]:
            if ctx.experts_on_gpu[il]:
                g, h, e = sums.layer[il], 0, sums.layer_expert[il]
            else:
                g = sums.layer[il] - sums.layer_expert[il]
                h = e = host_sums.layer_expert[il]
        else:
            g, h, e = 0, host_sums.layer[il], host_sums.layer_expert[il]
        gpu += g
        host += h
        per_layer.append(g + h)
        per_expert.append(e)

    for name in facts.input_names:
        host += host_sums.nonrepeating[name]
    for name in facts.output_names:
        if ctx.output_on_gpu:
            gpu += sums.nonrepeating[name]
        else:
            host += host_sums.nonrepeating[name]
    layer0_gpu = bool(ctx.layer_on_gpu and ctx.layer_on_gpu[0])
    for name in facts.layer0_names:
        if layer0_gpu:
            gpu += sums.nonrepeating[name]
        else:
            host += host_sums.nonrepeating[name]
    any_gpu = any(ctx.layer_on_gpu)
    any_host = not all(ctx.layer_on_gpu) if ctx.layer_on_gpu else True
    for name in facts.per_device_names:
        if any_gpu:
            gpu += sums.nonrepeating[name]
        if any_host:
            host += host_sums.nonrepeating[name]

    dup = 0
    if facts.tied_output:
        te = facts.nonrepeating["token_embd.weight"]
        if ctx.output_on_gpu:
            dup = tensor_alloc_size(te, be.alignment, be.row_pad)
            gpu += dup
        elif not be.is_gpu and s.repack and te.ggml_type in CPU_REPACK_TYPES and facts.n_vocab % 8 == 0:
            dup = tensor_alloc_size(te, 32, 0)
            host += dup

    return WeightsResult(
        gpu=gpu, host=host,
        per_layer=per_layer, per_layer_expert=per_expert,
        nonrepeating=dict(sums.nonrepeating) if be.is_gpu and ctx.output_on_gpu else dict(host_sums.nonrepeating),
        tied_duplicate=dup,
    )
