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
(planner/data/runtimes.toml, planner/runtime/llamacpp/apps.py): per-slot output reservation (#23861, b9464),
-fa auto (#15434), per-sequence KV streams (#14363), the trimmed SWA cache (#13194/#13833), the
V-less MLA cache (#19067), the F16 SWA part (#21277, reverted by #21332), the mixed token/embedding
inputs (b11401).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import compress

from ..errors import EstimateError
from ..estimate_types import RunSettings
from ..ggml_types import GGMLQuantizationType, quant_size
from ..model_facts import LayerFacts, ModelFacts
from ..runtime.llamacpp.apps import applies, fa_supported
from ..vocab import CACHE_TYPES, QUANTIZED_CACHE, v_cache_needs_flash_attn

__all__ = ["BACKENDS", "GGML_TYPE_OF", "HOST_ALIGNMENT", "QUANTIZED_CACHE", "Backend", "RunContext", "pad", "resolve"]

# -ctk/-ctv names -> ggml types (planner/vocab.py's names are ggml's, lower case)
GGML_TYPE_OF: dict[str, GGMLQuantizationType] = {t: GGMLQuantizationType[t.upper()] for t in CACHE_TYPES}
_F16 = int(GGMLQuantizationType.F16)


@dataclass(frozen=True)
class Backend:
    """Buffer rules of one ggml backend family (ggml/src/ggml-<backend>/)."""

    name: str
    is_gpu: bool
    alignment: int  # buffer type get_alignment
    row_pad: int  # CUDA/HIP pad quantized rows to a multiple of this (MATRIX_ROW_PADDING), 0 = none
    host_buffer_extra: int = 0  # bytes the backend's pinned host buffer type adds to each allocation


# one row per planner/vocab.py ESTIMATOR_BACKENDS name
BACKENDS: dict[str, Backend] = {
    "cpu": Backend("cpu", False, 32, 0),  # TENSOR_ALIGNMENT (ggml-impl.h)
    "cuda": Backend("cuda", True, 128, 512),  # ggml-cuda.cu get_alignment / get_alloc_size
    "rocm": Backend("rocm", True, 128, 512),  # HIP builds compile ggml-cuda
    # minStorageBufferOffsetAlignment (device: 4..256); the host buffer type adds 32 B per allocation
    # ("behave like the CPU buffer type", ggml-vulkan.cpp ggml_backend_vk_host_buffer_type_alloc_buffer)
    "vulkan": Backend("vulkan", True, 64, 0, host_buffer_extra=32),
    "metal": Backend("metal", True, 32, 0),  # ggml-metal.cpp get_alignment
}


# tensors kept on the host (CPU layers, --no-kv-offload) sit in the CPU buffer type
HOST_ALIGNMENT = BACKENDS["cpu"].alignment


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

    @cached_property
    def state_on_gpu(self) -> tuple[bool, ...]:
        """Per layer, whether its KV cache and recurrent state live on the GPU (offload_kqv)."""
        return self.layer_on_gpu if self.kv_on_gpu else (False,) * len(self.layer_on_gpu)

    def state_by_device(self, per_layer: list[int]) -> tuple[int, int]:
        """(GPU bytes, host bytes) of per-layer cache or state sizes."""
        gpu = sum(compress(per_layer, self.state_on_gpu))
        return gpu, sum(per_layer) - gpu


@dataclass(frozen=True)
class _Cells:
    """The KV cells llama.cpp allocates: padded context, streams and cells per stream."""

    n_ctx: int
    n_ctx_seq: int
    n_stream: int
    kv_unified: bool
    pad: int


@dataclass(frozen=True)
class _Placement:
    """llama-model.cpp load_tensors: which layers, experts and output head live on the GPU."""

    layer_on_gpu: tuple[bool, ...]
    output_on_gpu: bool
    experts_on_gpu: tuple[bool, ...]


def resolve(facts: ModelFacts, s: RunSettings) -> RunContext:
    """The numbers llama.cpp runs with for these settings (errors where llama.cpp refuses them)."""
    backend = BACKENDS[s.backend]
    notes: list[str] = []
    n_ctx_req = _requested_context(facts, s)
    build = s.llama_build
    n_batch = min(n_ctx_req, s.n_batch) if facts.causal else s.n_batch
    n_ubatch = min(n_batch, s.n_ubatch)
    n_seq = max(1, s.n_parallel)
    cells = _cells(n_ctx_req, n_seq, s, notes)
    swa_full = s.swa_full or (facts.swa_enabled and not applies("swa_cache_trimmed", build))
    flash_attn = _flash_attention(facts, s, backend, notes)
    if flash_attn:
        _check_cache_blocks(facts, s)
    placement = _placement(facts, s, backend)
    n_tokens = min(cells.n_ctx, n_ubatch)
    swa_type_k, swa_type_v = _swa_cache_types(s)
    return RunContext(
        backend=backend, n_ctx=cells.n_ctx, n_ctx_seq=cells.n_ctx_seq, n_stream=cells.n_stream, n_seq=n_seq,
        n_batch=n_batch, n_ubatch=n_ubatch, n_tokens=n_tokens, n_outputs=min(n_tokens, _outputs_max(s, n_batch)),
        flash_attn=flash_attn, type_k=int(GGML_TYPE_OF[s.cache_type_k]), type_v=int(GGML_TYPE_OF[s.cache_type_v]),
        kv_unified=cells.kv_unified, swa_cells=_swa_cells(facts, cells, n_seq, n_ubatch, swa_full),
        layer_on_gpu=placement.layer_on_gpu, output_on_gpu=placement.output_on_gpu,
        experts_on_gpu=placement.experts_on_gpu, kv_on_gpu=backend.is_gpu and not s.no_kv_offload,
        notes=tuple(notes), llama_build=build,
        mla_v_cache=facts.is_mla and not applies("mla_v_less_cache", build),
        swa_type_k=swa_type_k, swa_type_v=swa_type_v,
        mixed_embd=applies("mixed_embd_inputs", build), swa_full=swa_full,
    )


def _requested_context(facts: ModelFacts, s: RunSettings) -> int:
    n_ctx = s.n_ctx or facts.n_ctx_train
    if n_ctx <= 0:
        raise EstimateError("the model has no training context length and no -c was given",
                            hint="pass a context size, e.g. -c 8192")
    return n_ctx


def _cell_padding(s: RunSettings) -> int:
    """KV cells are padded to 256 since ggml-org/llama.cpp#17046; #16812 had removed the padding for
    a few builds; before it: 256 with flash attention (auto counts: the larger), 32 without (#7257)."""
    if applies("kv_pad_256", s.llama_build):
        return 256
    if applies("kv_size_unpadded", s.llama_build):
        return 1
    return 32 if s.flash_attn == "off" else 256


def _cells(n_ctx_req: int, n_seq: int, s: RunSettings, notes: list[str]) -> _Cells:
    """Without --kv-unified every sequence gets its own stream of pad(n_ctx / n_seq) cells."""
    cell_pad = _cell_padding(s)
    n_ctx = pad(n_ctx_req, cell_pad)
    kv_unified = s.kv_unified
    if not kv_unified and n_seq > 1 and not applies("kv_streams_per_sequence", s.llama_build):
        kv_unified = True  # before #14363 every sequence shared one KV cache of n_ctx cells
        notes.append(f"llama.cpp b{s.llama_build} predates per-sequence KV streams: one cache of n_ctx cells "
                     "for all sequences")
    if kv_unified:
        return _Cells(n_ctx=n_ctx, n_ctx_seq=n_ctx, n_stream=1, kv_unified=True, pad=cell_pad)
    n_ctx_seq = pad(n_ctx // n_seq, cell_pad)
    return _Cells(n_ctx=n_ctx_seq * n_seq, n_ctx_seq=n_ctx_seq, n_stream=n_seq, kv_unified=False, pad=cell_pad)


def _swa_cells(facts: ModelFacts, cells: _Cells, n_seq: int, n_ubatch: int, swa_full: bool) -> int:
    """llama-kv-cache-iswa.cpp: the window (per sequence when unified) plus a ubatch, padded."""
    if swa_full:
        return cells.n_ctx_seq
    window = facts.n_swa * (n_seq if cells.kv_unified else 1) + n_ubatch
    return pad(min(cells.n_ctx_seq, window), cells.pad)


def _swa_cache_types(s: RunSettings) -> tuple[int, int]:
    """The SWA part's K/V types: F16 for a quantized cache in the #21277..#21332 window, else -1
    (the same types as the full-attention layers)."""
    swa_f16 = applies("swa_part_f16", s.llama_build)
    k = _F16 if swa_f16 and s.cache_type_k in QUANTIZED_CACHE else int(GGML_TYPE_OF[s.cache_type_k])
    v = _F16 if swa_f16 and s.cache_type_v in QUANTIZED_CACHE else int(GGML_TYPE_OF[s.cache_type_v])
    return k, v


def _outputs_max(s: RunSettings, n_batch: int) -> int:
    """n_outputs_max (ggml-org/llama.cpp#23861, b9464): before it the reserve graph always had
    logits for the whole ubatch."""
    return s.n_outputs_max if (s.n_outputs_max and applies("server_output_per_slot", s.llama_build)) else n_batch


# --------------------------------------------------------------------------- flash attention


def _flash_attention(facts: ModelFacts, s: RunSettings, backend: Backend, notes: list[str]) -> bool:
    """llama_init_from_model's resolution of -fa, with its refusals, in llama.cpp's order."""
    fa_mode = _fa_mode(facts, s, notes)
    if facts.is_mla and s.cache_type_k != s.cache_type_v:
        raise EstimateError(
            f"llama.cpp refuses different K ({s.cache_type_k}) and V ({s.cache_type_v}) cache types for MLA models",
            hint="use the same type for -ctk and -ctv")
    if fa_mode == "auto":
        return _auto_flash_attention(facts, s, backend, notes)
    return fa_mode != "off"


def _fa_mode(facts: ModelFacts, s: RunSettings, notes: list[str]) -> str:
    """-fa after the architecture's override (grok: off) and the quantized V cache's need (on; an
    error with -fa off)."""
    fa_mode = s.flash_attn
    if facts.flash_attn_forced_off and fa_mode != "off":
        fa_mode = "off"
        notes.append("flash attention forced off for this architecture (llama.cpp: grok)")
    if not v_cache_needs_flash_attn(s.cache_type_v) or fa_mode == "on":
        return fa_mode
    if fa_mode == "off":
        raise EstimateError(f"llama.cpp refuses a quantized V cache ({s.cache_type_v}) with flash attention off",
                            hint="use -fa on (or auto), or -ctv f16")
    return "on"


def _auto_flash_attention(facts: ModelFacts, s: RunSettings, backend: Backend, notes: list[str]) -> bool:
    """-fa auto: llama.cpp's probe (llama_context::resolve_fused_ops) keeps FA on when each layer's
    FLASH_ATTN_EXT runs on the layer's device: always on the CPU backend; on a GPU backend when its
    supports_op takes the head sizes and cache types (runtimes.toml [fa_support]). Builds before
    #15434 have no auto mode: FA is off unless asked for."""
    if not applies("fa_auto_default", s.llama_build):
        notes.append(f"llama.cpp b{s.llama_build} has no -fa auto (ggml-org/llama.cpp#15434): flash attention "
                     "off by default")
        return False
    if backend.is_gpu and not _fa_on_gpu(facts, s, backend.name):
        notes.append(f"-fa auto resolves to off on {backend.name}: its flash-attention kernels do not take this "
                     f"model's head sizes ({facts.head_k_full}/{facts.head_v_full}) or cache types")
        return False
    return True


def _check_cache_blocks(facts: ModelFacts, s: RunSettings) -> None:
    """With flash attention a quantized K/V cache needs head sizes its block size divides."""
    heads = {"k": {facts.head_k_full, facts.head_k_swa}, "v": {facts.head_v_full, facts.head_v_swa}}
    for which, cache_type in (("k", s.cache_type_k), ("v", s.cache_type_v)):
        if cache_type not in QUANTIZED_CACHE:
            continue
        block = quant_size(GGML_TYPE_OF[cache_type])[0]
        for head in heads[which]:
            if head and head % block:
                raise EstimateError(
                    f"llama.cpp refuses {which.upper()} cache type {cache_type}: block size {block} does not divide "
                    f"the head size {head}", hint=f"use -ct{which} f16 or q8_0 with a compatible head size")


def _fa_on_gpu(facts: ModelFacts, s: RunSettings, backend: str) -> bool:
    """Every attention layer's FLASH_ATTN_EXT supported by the GPU backend (b11434 supports_op)."""
    return all(fa_supported(backend, hk, hv, s.cache_type_k, s.cache_type_v, gqa)
               for hk, hv, gqa in facts.derived("attention-head-shapes", _attention_head_shapes))


def _attention_head_shapes(facts: ModelFacts) -> frozenset[tuple[int, int, int]]:
    """(head_k, head_v, query heads per K/V head) of the model's attention layers."""
    return frozenset(_attention_heads(facts, layer) for layer in facts.layers if layer.has_attn_kv)


def _attention_heads(facts: ModelFacts, layer: LayerFacts) -> tuple[int, int, int]:
    swa = layer.is_swa and facts.swa_enabled
    hk = facts.head_k_swa if swa else facts.head_k_full
    hv = facts.head_v_swa if swa else facts.head_v_full
    return hk, hv, max(1, layer.n_head // max(1, layer.n_head_kv))


# --------------------------------------------------------------------------- placement


def _placement(facts: ModelFacts, s: RunSettings, backend: Backend) -> _Placement:
    """-ngl N puts the last N-1 repeating layers and the output layer on the GPU (i_gpu_start =
    n_layer + 1 - N; -1 means all); --n-cpu-moe N keeps the experts of the first N layers on the CPU."""
    n_all = facts.n_layer_all
    if backend.is_gpu:
        ngl = s.n_gpu_layers if s.n_gpu_layers >= 0 else n_all + 1
        i_gpu_start = max(n_all + 1 - ngl, 0)
        on_gpu = tuple(il >= i_gpu_start for il in range(n_all))
        output_on_gpu = n_all >= i_gpu_start
    else:
        on_gpu = tuple(False for _ in range(n_all))
        output_on_gpu = False
    experts = tuple(on and il >= s.n_cpu_moe for il, on in enumerate(on_gpu))
    return _Placement(layer_on_gpu=on_gpu, output_on_gpu=output_on_gpu, experts_on_gpu=experts)
