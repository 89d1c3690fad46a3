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

RunSettings.llama_build selects the rules of another llama.cpp build where they differ from b11434
(planner/data/runtimes.toml, planner/runtimes.py): per-slot output reservation (#23861, b9464),
-fa auto (#15434), per-sequence KV streams (#14363), the trimmed SWA cache (#13194/#13833), the
V-less MLA cache (#19067), the F16 SWA part (#21277, reverted by #21332), the mixed token/embedding
inputs (b11401).
"""

from __future__ import annotations

from dataclasses import dataclass


from ..errors import EstimateError
from ..ggml_types import GGML_QUANT_SIZES, GGMLQuantizationType
from ..estimate_types import RunSettings
from ..model_facts import ModelFacts
from ..runtimes import applies, fa_supported

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
    llama_build: int | None = None  # None = b11434's rules
    mla_v_cache: bool = False  # builds before the V-less MLA cache (#19067): MLA layers also keep V
    swa_type_k: int = -1  # cache types of SWA layers (-1 = type_k/type_v; F16 in the #21277 window)
    swa_type_v: int = -1
    mixed_embd: bool = True  # b11401+: mixed token/embedding inputs in the graph (compute.py)
    swa_full: bool = False  # --swa-full, or a build before the trimmed SWA cache


def resolve(facts: ModelFacts, s: RunSettings) -> RunContext:
    backend = BACKENDS[s.backend]
    notes: list[str] = []
    n_ctx_req = s.n_ctx or facts.n_ctx_train
    if n_ctx_req <= 0:
        raise EstimateError("the model has no training context length and no -c was given",
                            hint="pass a context size, e.g. -c 8192")
    causal = facts.causal
    build = s.llama_build
    n_batch = min(n_ctx_req, s.n_batch) if causal else s.n_batch
    n_ubatch = min(n_batch, s.n_ubatch)
    n_seq = max(1, s.n_parallel)
    # KV cells are padded to 256 since ggml-org/llama.cpp#17046; #16812 had removed the padding for a
    # few builds; before it: 256 with flash attention (auto counts: the larger), 32 without (#7257)
    if applies("kv_pad_256", build):
        cell_pad = 256
    elif applies("kv_size_unpadded", build):
        cell_pad = 1
    else:
        cell_pad = 32 if s.flash_attn == "off" else 256
    n_ctx = pad(n_ctx_req, cell_pad)
    kv_unified = s.kv_unified
    if not kv_unified and n_seq > 1 and not applies("kv_streams_per_sequence", build):
        kv_unified = True  # before #14363 every sequence shared one KV cache of n_ctx cells
        notes.append(f"llama.cpp b{build} predates per-sequence KV streams: one cache of n_ctx cells for all sequences")
    swa_full = s.swa_full or (facts.swa_enabled and not applies("swa_cache_trimmed", build))
    if kv_unified:
        n_ctx_seq = n_ctx
    else:
        n_ctx_seq = pad(n_ctx // n_seq, cell_pad)
        n_ctx = n_ctx_seq * n_seq
    n_stream = 1 if kv_unified else n_seq

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
    # auto: llama.cpp's probe (llama_context::resolve_fused_ops) keeps FA on when each layer's
    # FLASH_ATTN_EXT runs on the layer's device: always on the CPU backend; on a GPU backend when
    # its supports_op takes the head sizes and cache types (runtimes.toml [fa_support]). Builds
    # before #15434 have no auto mode: FA is off unless asked for.
    if fa_mode == "auto":
        if not applies("fa_auto_default", build):
            fa_mode = "off"
            notes.append(f"llama.cpp b{build} has no -fa auto (ggml-org/llama.cpp#15434): flash attention off by default")
        elif backend.is_gpu and not _fa_on_gpu(facts, s, backend.name):
            fa_mode = "off"
            notes.append(f"-fa auto resolves to off on {backend.name}: its flash-attention kernels do not take this "
                         f"model's head sizes ({facts.head_k_full}/{facts.head_v_full}) or cache types")
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
    if swa_full:
        swa_cells = n_ctx_seq
    else:
        swa_cells = pad(min(n_ctx_seq, facts.n_swa * (n_seq if kv_unified else 1) + n_ubatch), cell_pad)
    swa_f16 = applies("swa_part_f16", build)
    swa_type_k = int(GGML_TYPE_OF["f16"]) if swa_f16 and s.cache_type_k in QUANTIZED_CACHE else type_k
    swa_type_v = int(GGML_TYPE_OF["f16"]) if swa_f16 and s.cache_type_v in QUANTIZED_CACHE else type_v

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
    # n_outputs_max (ggml-org/llama.cpp#23861, b9464): before it the reserve graph always had
    # logits for the whole ubatch
    n_outputs_max = s.n_outputs_max if (s.n_outputs_max and applies("server_output_per_slot", build)) else n_batch
    return RunContext(
        backend=backend, n_ctx=n_ctx, n_ctx_seq=n_ctx_seq, n_stream=n_stream, n_seq=n_seq,
        n_batch=n_batch, n_ubatch=n_ubatch, n_tokens=n_tokens, n_outputs=min(n_tokens, n_outputs_max),
        flash_attn=flash_attn, type_k=type_k, type_v=type_v, kv_unified=kv_unified,
        swa_cells=swa_cells, layer_on_gpu=layer_on_gpu, output_on_gpu=output_on_gpu,
        experts_on_gpu=experts_on_gpu, kv_on_gpu=backend.is_gpu and not s.no_kv_offload,
        notes=tuple(notes), llama_build=build,
        mla_v_cache=facts.is_mla and not applies("mla_v_less_cache", build),
        swa_type_k=swa_type_k, swa_type_v=swa_type_v,
        mixed_embd=applies("mixed_embd_inputs", build), swa_full=swa_full,
    )


def _fa_on_gpu(facts: ModelFacts, s: RunSettings, backend: str) -> bool:
    """Every attention layer's FLASH_ATTN_EXT supported by the GPU backend (b11434 supports_op)."""
    pairs = set()
    for layer in facts.layers:
        if not layer.has_attn_kv:
            continue
        hk = facts.head_k_swa if (layer.is_swa and facts.swa_enabled) else facts.head_k_full
        hv = facts.head_v_swa if (layer.is_swa and facts.swa_enabled) else facts.head_v_full
        gqa = max(1, layer.n_head // max(1, layer.n_head_kv))
        pairs.add((hk, hv, gqa))
    return all(fa_supported(backend, hk, hv, s.cache_type_k, s.cache_type_v, gqa) for hk, hv, gqa in pairs)
