"""Attention KV cache, sized as llama.cpp b11434 allocates it.

- src/llama-kv-cache.cpp (llama_kv_cache ctor): per layer that has KV, K is a
  [n_embd_k_gqa(il), kv_size, n_stream] tensor of type_k and V a [n_embd_v_gqa(il), kv_size,
  n_stream] tensor of type_v; MLA models (is_mla) have no V tensor. Without flash attention the V
  cache is stored transposed and, when V widths differ between layers, every layer is padded to
  the widest (TAG_V_CACHE_VARIABLE). Layers without KV (has_kv: gemma3n/gemma4 shared-KV layers)
  and filtered layers (recurrent layers of hybrids, nextn/MTP layers) get nothing.
- src/llama-kv-cache-iswa.cpp: SWA layers get pad256(min(kv_size, n_swa * (unified ? n_seq : 1)
  + n_ubatch)) cells per stream, or kv_size with --swa-full.
- src/llama-kv-cache-dsa.cpp: DeepSeek sparse attention adds a K-only indexer cache of
  indexer.key_length per (indexer) layer.
- Buffer sizes: each tensor padded to the backend alignment (ggml-alloc), K/V on the device of
  their layer unless --no-kv-offload.
- Older builds (RunContext from RunSettings.llama_build, planner/data/runtimes.toml): before the
  V-less cache (ggml-org/llama.cpp#19067) MLA layers also held a V of value_length x n_head_kv per
  cell; in the #21277..#21332 window the SWA part stayed F16 with a quantized cache type.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..ggml_types import is_block_quantized, row_size
from ..model_facts import LayerFacts, ModelFacts
from .context import HOST_ALIGNMENT, RunContext, pad



@lru_cache(maxsize=4096)  # a model's layers repeat a few shapes; the planner asks thousands of times
def _tensor_bytes(ggml_type: int, width: int, cells: int, n_stream: int, alignment: int, row_pad: int) -> int:
    if width <= 0 or cells <= 0:
        return 0
    nbytes = row_size(ggml_type, width) * cells * n_stream
    if row_pad and width % row_pad and is_block_quantized(ggml_type):
        nbytes += row_size(ggml_type, row_pad - width % row_pad)
    return pad(nbytes, alignment)


@dataclass
class KVLayer:
    k_bytes: int
    v_bytes: int
    cells: int  # per stream


@dataclass
class KVResult:
    per_layer: list[KVLayer | None]
    total: int
    gpu: int
    host: int
    full_cells: int  # per stream, full-attention layers
    swa_cells: int


@dataclass(frozen=True)
class LayerCache:
    """The cells and K/V types of one attention layer's cache."""

    cells: int  # per stream
    type_k: int
    type_v: int


def layer_caches(ctx: RunContext) -> dict[bool, LayerCache]:
    """By whether a layer slides: SWA layers hold their window's cells (unless --swa-full) and, in
    the #21277..#21332 window, F16 types; the others hold the whole context."""
    return {
        False: LayerCache(ctx.n_ctx_seq, ctx.type_k, ctx.type_v),
        True: LayerCache(cells=ctx.n_ctx_seq if ctx.swa_full else ctx.swa_cells,
                         type_k=ctx.swa_type_k if ctx.swa_type_k >= 0 else ctx.type_k,
                         type_v=ctx.swa_type_v if ctx.swa_type_v >= 0 else ctx.type_v),
    }


@dataclass(frozen=True)
class _Shared:
    """What every layer's K/V tensors share at these settings."""

    caches: dict[bool, LayerCache]
    v_pad_width: int  # without FA, V widths that differ are all padded to the widest (0: no padding)
    buffers: dict[bool, tuple[int, int]]  # on the GPU? -> (alignment, row padding)


def kv_cache(facts: ModelFacts, ctx: RunContext) -> KVResult:
    shared = _Shared(layer_caches(ctx), _padded_v_width(facts, ctx),
                     {True: (ctx.backend.alignment, ctx.backend.row_pad), False: (HOST_ALIGNMENT, 0)})
    per_layer: list[KVLayer | None] = []
    same: dict[tuple, KVLayer | None] = {}  # layers alike in all _layer_kv reads share one (read-only) answer
    on_gpu = ctx.state_on_gpu
    for il, layer in enumerate(facts.layers):
        key = (layer.has_attn_kv, layer.has_indexer_kv, layer.is_swa, layer.k_width, layer.v_width, layer.n_head_kv,
               on_gpu[il])
        if key not in same:
            same[key] = _layer_kv(facts, ctx, shared, il, layer)
        per_layer.append(same[key])
    gpu, host = ctx.state_by_device([kv.k_bytes + kv.v_bytes if kv else 0 for kv in per_layer])
    return KVResult(per_layer, gpu + host, gpu, host, ctx.n_ctx_seq,
                    ctx.swa_cells if (facts.swa_enabled and not ctx.swa_full) else ctx.n_ctx_seq)


def _padded_v_width(facts: ModelFacts, ctx: RunContext) -> int:
    """TAG_V_CACHE_VARIABLE: without flash attention the V cache is stored transposed, and when V
    widths differ between layers every layer is padded to the widest (0: no padding)."""
    if ctx.flash_attn or facts.is_mla or not facts.layers:
        return 0
    widths = [layer.v_width for layer in facts.layers]
    return max(widths) if len(set(widths)) > 1 else 0


def _layer_kv(facts: ModelFacts, ctx: RunContext, shared: _Shared, il: int, layer: LayerFacts) -> KVLayer | None:
    """K and V of one layer (None for a layer without KV), in its device's buffer type; a DSA
    indexer adds a K-only row of indexer.key_length."""
    if not (layer.has_attn_kv or layer.has_indexer_kv):
        return None
    align, row_pad = shared.buffers[ctx.state_on_gpu[il]]
    kv = _attention_kv(facts, ctx, shared, layer, align, row_pad) if layer.has_attn_kv else KVLayer(0, 0, ctx.n_ctx_seq)
    if layer.has_indexer_kv:
        kv.k_bytes += _tensor_bytes(ctx.type_k, facts.indexer_head_size, ctx.n_ctx_seq, ctx.n_stream, align, row_pad)
    return kv


def _attention_kv(facts: ModelFacts, ctx: RunContext, shared: _Shared, layer: LayerFacts, align: int,
                  row_pad: int) -> KVLayer:
    """The K and V tensors of an attention layer, in its cache (full or sliding window)."""
    cache = shared.caches[layer.is_swa and facts.swa_enabled]
    v_width = (shared.v_pad_width or layer.v_width) if layer.v_width else _mla_v_width(facts, ctx, layer)
    return KVLayer(_tensor_bytes(cache.type_k, layer.k_width, cache.cells, ctx.n_stream, align, row_pad),
                   _tensor_bytes(cache.type_v, v_width, cache.cells, ctx.n_stream, align, row_pad), cache.cells)


def _mla_v_width(facts: ModelFacts, ctx: RunContext, layer: LayerFacts) -> int:
    """The V row of a layer without one of its own (MLA): none, except in builds before the V-less
    cache (#19067), which kept a V of value_length per KV head."""
    if not ctx.mla_v_cache:
        return 0
    swa = layer.is_swa and facts.swa_enabled
    return (facts.head_v_swa if swa else facts.head_v_full) * layer.n_head_kv
