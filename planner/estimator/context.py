"""RunSettings + ModelFacts -> the numbers llama.cpp actually runs with (context, batches, streams,
flash attention, per-layer placement). One place for llama.cpp's resolution rules:

- llama-context.cpp (llama_context ctor): n_ctx 0 -> training context; n_batch = min(n_ctx, n_batch)
  for causal models; n_ubatch = min(n_batch, n_ubatch); n_ctx padded to 256; without
  --kv-unified every sequence gets its own stream of n_ctx_seq = pad256(n_ctx / n_seq) cells.
- llama-context.cpp (llama_init_from_model): grok forces FA off; a quantized V cache turns FA
  `auto` into `on` and is an error with FA `off`; MLA needs the same K and V types; a quantized
  K/V cache with FA needs head sizes divisible by the type's block size.
- llama-model.cpp (load_tensors): -ngl N puts the last N-1 repeating layers and the output layer
  on the GPU (i_gpu_start = n_layer + 1 - N); -1 means all; the input layer stays on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass


from ..errors import EstimateError
from ..ggml_types import GGML_QUANT_SIZES, GGMLQuantizationType
from ..estimate_types import RunSettings
from ..model_facts import ModelFacts

GGML_TYPE_OF = {
    "f32": GGMLQuantizationType.F32, "f16": GGMLQuantizationType.F16, "bf16": GGMLQuantizationType.BF16,
    "q8_0": GGMLQuantizationType.Q8_0, "q4_0": GGMLQuantizationType.Q4_0, "q4_1": GGMLQuantizationType.Q4_1,
    "iq4_nl": GGMLQuantizationType.IQ4_NL, "q5_0": GGMLQuantizationType.Q5_0, "q5_1": GGMLQuantizationType.Q5_1,
}
QUANTIZED_CACHE = frozenset({"q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"})


@dataclass(frozen=True)
class Backend:
    """Buffer rules of one ggml backend family (ggml/src/ggml-<backend>/)."""

    name: str
    is_gpu: bool
    alignment: int  # buffer type get_alignment
    row_pad: int  # CUDA/HIP pad quantized rows to a multiple of this (MATRIX_ROW_PADDING), 0 = none
    host_buffer_extra: int = 0  # bytes the backend's pinned host buffer type adds to each allocation


BACKENDS: dict[str, Backend] = {
    "cpu": Backend("cpu", False, 32, 0),  # TENSOR_ALIGNMENT (ggml-impl.h)
    "cuda": Backend("cuda", True, 128, 512),  # ggml-cuda.cu get_alignment / get_alloc_size
    "rocm": Backend("rocm", True, 128, 512),  # HIP builds compile ggml-cuda
    # minStorageBufferOffsetAlignment (device: 4..256); the host buffer type adds 32 B per allocation
    # ("behave like the CPU buffer type", ggml-vulkan.cpp ggml_backend_vk_host_buffer_type_alloc_buffer)
    "vulkan": Backend("vulkan", True, 64, 0, host_buffer_extra=32),
    "metal": Backend("metal", True, 32, 0),  # ggml-metal.cpp get_alignment
}


def pad(x: int, n: int) -> int:
    return -(-x // n) * n


@dataclass(frozen=True)
class RunContext:
    backend: Backend
    n_ctx: int  # cparams.n_ctx after padding (all streams together)
    n_ctx_seq: int  # cells per stream (kv_size)
    n_stream: int
    n_seq: int
    n_batch: int
    n_ubatch: int
    n_tokens: int  # graph reserve: min(n_ctx, n_ubatch)
    n_outputs: int  # graph reserve outputs: min(n_tokens, n_outputs_max = n_batch)
    flash_attn: bool
    type_k: int
    type_v: int
    kv_unified: bool
    swa_cells: int  # per stream
    layer_on_gpu: tuple[bool, ...]
    output_on_gpu: bool
    experts_on_gpu: tuple[bool, ...]
    kv_on_gpu: bool  # offload_kqv
    notes: tuple[str, ...] = ()


def resolve(facts: ModelFacts, s: RunSettings) -> RunContext:
    backend = BACKENDS[s.backend]
    notes: list[str] = []
    n_ctx_req = s.n_ctx or facts.n_ctx_train
    if n_ctx_req <= 0:
        raise EstimateError("the model has no training context length and no -c was given",
                            hint="pass a context size, e.g. -c 8192")
    causal = facts.causal
    n_batch = min(n_ctx_req, s.n_batch) if causal else s.n_batch
    n_ubatch = min(n_batch, s.n_ubatch)
    n_seq = max(1, s.n_parallel)
    n_ctx = pad(n_ctx_req, 256)
    if s.kv_unified:
        n_ctx_seq = n_ctx
    else:
        n_ctx_seq = pad(n_ctx // n_seq, 256)
        n_ctx = n_ctx_seq * n_seq
    n_stream = 1 if s.kv_unified else n_seq

    # --- flash attention and cache types (llama_init_from_model)
    fa_mode = s.flash_attn
    if facts.rule.flash_attn_forced_off and fa_mode != "off":
        fa_mode = "off"
        notes.append("flash attention forced off for this architecture (llama.cpp: grok)")
    if s.cache_type_v in QUANTIZED_CACHE and fa_mode != "on":
        if fa_mode == "auto":
            fa_mode = "on"
        else:
            raise EstimateError(
                f"llama.cpp refuses a quantized V cache ({s.cache_type_v}) with flash attention off",
                hint="use -fa on (or auto), or -ctv f16")
    if facts.is_mla and s.cache_type_k != s.cache_type_v:
        raise EstimateError(
            f"llama.cpp refuses different K ({s.cache_type_k}) and V ({s.cache_type_v}) cache types for MLA models",
            hint="use the same type for -ctk and -ctv")
    # auto -> on: the CPU backend supports FA for every head size and llama.cpp's probe
    # (llama_context::resolve_fused_ops) keeps it on when each layer's FA op runs on the layer's
    # device; GPU backends are assumed to support the model's head sizes (documented).
    flash_attn = fa_mode != "off"
    type_k = int(GGML_TYPE_OF[s.cache_type_k])
    type_v = int(GGML_TYPE_OF[s.cache_type_v])
    if flash_attn:
        for name, t, width_attr in (("K", s.cache_type_k, "k"), ("V", s.cache_type_v, "v")):
            if t not in QUANTIZED_CACHE:
                continue
            block = GGML_QUANT_SIZES[GGML_TYPE_OF[t]][0]
            for head in {facts.head_k_full, facts.head_k_swa} if width_attr == "k" else {facts.head_v_full, facts.head_v_swa}:
                if head and head % block:
                    raise EstimateError(
                        f"llama.cpp refuses {name} cache type {t}: block size {block} does not divide the head size {head}",
                        hint=f"use -ct{width_attr} f16 or q8_0 with a compatible head size")

    # --- SWA cache cells (llama-kv-cache-iswa.cpp)
    if s.swa_full:
        swa_cells = n_ctx_seq
    else:
        swa_cells = pad(min(n_ctx_seq, facts.n_swa * (n_seq if s.kv_unified else 1) + n_ubatch), 256)

    # --- placement (llama-model.cpp load_tensors)
    n_all = facts.n_layer_all
    if backend.is_gpu:
        ngl = s.n_gpu_layers if s.n_gpu_layers >= 0 else n_all + 1
        i_gpu_start = max(n_all + 1 - ngl, 0)
        layer_on_gpu = tuple(il >= i_gpu_start for il in range(n_all))
        output_on_gpu = n_all >= i_gpu_start
    else:
        layer_on_gpu = tuple(False for _ in range(n_all))
        output_on_gpu = False
    experts_on_gpu = tuple(on and il >= s.n_cpu_moe for il, on in enumerate(layer_on_gpu))
    n_tokens = min(n_ctx, n_ubatch)
    n_outputs_max = s.n_outputs_max or n_batch
    return RunContext(
        backend=backend, n_ctx=n_ctx, n_ctx_seq=n_ctx_seq, n_stream=n_stream, n_seq=n_seq,
        n_batch=n_batch, n_ubatch=n_ubatch, n_tokens=n_tokens, n_outputs=min(n_tokens, n_outputs_max),
        flash_attn=flash_attn, type_k=type_k, type_v=type_v, kv_unified=s.kv_unified,
        swa_cells=swa_cells, layer_on_gpu=layer_on_gpu, output_on_gpu=output_on_gpu,
        experts_on_gpu=experts_on_gpu, kv_on_gpu=backend.is_gpu and not s.no_kv_offload,
        notes=tuple(notes),
    )
