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
from operator import add

from ..estimate_types import RunSettings
from ..ggml_types import GGMLQuantizationType
from ..model_facts import ModelFacts, PaddedSums, tensor_alloc_size
from .context import HOST_ALIGNMENT, RunContext

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
    host_sums = sums if not be.is_gpu else facts.padded_sums(HOST_ALIGNMENT, 0)
    # padded sums are 0 for the layers llama.cpp does not load (nextn/MTP)
    layer_gpu, layer_host, layer_experts = zip(*map(_layer_split, sums.layer, sums.layer_expert, host_sums.layer,
                                                    host_sums.layer_expert, ctx.layer_on_gpu, ctx.experts_on_gpu)) \
        or ((), (), ())
    nonrep_gpu, nonrep_host = _nonrepeating(facts, ctx, sums, host_sums)
    dup_gpu, dup_host = _tied_duplicate(facts, ctx, s)
    return WeightsResult(
        gpu=sum(layer_gpu) + nonrep_gpu + dup_gpu,
        host=sum(layer_host) + nonrep_host + dup_host,
        per_layer=list(map(add, layer_gpu, layer_host)), per_layer_expert=list(layer_experts),
        nonrepeating=dict(sums.nonrepeating) if be.is_gpu and ctx.output_on_gpu else dict(host_sums.nonrepeating),
        tied_duplicate=dup_gpu + dup_host,
    )


def _layer_split(gpu_bytes: int, gpu_experts: int, host_bytes: int, host_experts: int, on_gpu: bool,
                 experts_on_gpu: bool) -> tuple[int, int, int]:
    """(GPU bytes, host bytes, expert bytes) of one layer, from its padded sizes in the GPU's and the
    host's buffer types: a GPU layer keeps its experts on the CPU with --n-cpu-moe."""
    if not on_gpu:
        return 0, host_bytes, host_experts
    if experts_on_gpu:
        return gpu_bytes, 0, gpu_experts
    return gpu_bytes - gpu_experts, host_experts, host_experts


def _nonrepeating(facts: ModelFacts, ctx: RunContext, sums: PaddedSums, host_sums: PaddedSums) -> tuple[int, int]:
    """(GPU bytes, host bytes) of the tensors outside the blocks: the input layer on the CPU, the
    output layer where -ngl puts it, layer-0 tensors with layer 0, per-device tensors once on every
    device that holds layers."""
    on_gpu = ctx.layer_on_gpu
    layer0_gpu = bool(on_gpu and on_gpu[0])
    # names, on the GPU, on the host
    groups = (
        (facts.input_names, False, True),
        (facts.output_names, ctx.output_on_gpu, not ctx.output_on_gpu),
        (facts.layer0_names, layer0_gpu, not layer0_gpu),
        (facts.per_device_names, any(on_gpu), not all(on_gpu) if on_gpu else True),
    )
    gpu = sum(sums.nonrepeating[name] for names, g, _ in groups if g for name in names)
    host = sum(host_sums.nonrepeating[name] for names, _, h in groups if h for name in names)
    return gpu, host


def _tied_duplicate(facts: ModelFacts, ctx: RunContext, s: RunSettings) -> tuple[int, int]:
    """(GPU bytes, host bytes) of token_embd created again as the output head: it costs memory when
    the output lands in another buffer type than the input (a GPU; or CPU_REPACK for repackable
    types on the CPU backend)."""
    if not facts.tied_output:
        return 0, 0
    te = facts.nonrepeating["token_embd.weight"]
    be = ctx.backend
    if ctx.output_on_gpu:
        return tensor_alloc_size(te, be.alignment, be.row_pad), 0
    if not be.is_gpu and s.repack and te.ggml_type in CPU_REPACK_TYPES and facts.n_vocab % 8 == 0:
        return 0, tensor_alloc_size(te, HOST_ALIGNMENT, 0)
    return 0, 0
