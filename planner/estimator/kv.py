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

from ..ggml_types import is_block_quantized, row_size
from ..model_facts import ModelFacts
from .context import RunContext, pad



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


def kv_cache(facts: ModelFacts, ctx: RunContext, swa_full: bool) -> KVResult:
    v_trans = not ctx.flash_attn
    v_max = 0
    variable_v = False
    mla_v = ctx.mla_v_cache
    if v_trans and not facts.is_mla:
        widths = [layer.v_width for layer in facts.layers]
        v_max = max(widths) if widths else 0
        variable_v = any(w != widths[0] for w in widths)
    per_layer: list[KVLayer | None] = []
    total = gpu = host = 0
    for il, layer in enumerate(facts.layers):
        if not layer.has_attn_kv and not layer.has_indexer_kv:
            per_layer.append(None)
            continue
        on_gpu = ctx.kv_on_gpu and ctx.layer_on_gpu[il]
        align, row_pad = (ctx.backend.alignment, ctx.backend.row_pad) if on_gpu else (32, 0)
        k = v = 0
        cells = ctx.n_ctx_seq
        if layer.has_attn_kv:
            swa = layer.is_swa and facts.swa_enabled
            cells = ctx.swa_cells if (swa and not swa_full) else ctx.n_ctx_seq
            tk = ctx.swa_type_k if (swa and ctx.swa_type_k >= 0) else ctx.type_k
            tv = ctx.swa_type_v if (swa and ctx.swa_type_v >= 0) else ctx.type_v
            k = _tensor_bytes(tk, layer.k_width, cells, ctx.n_stream, align, row_pad)
            if layer.v_width:
                width = v_max if variable_v else layer.v_width
                v = _tensor_bytes(tv, width, cells, ctx.n_stream, align, row_pad)
            elif mla_v:  # before #19067: the MLA cache kept a V of value_length per KV head
                hv = facts.head_v_swa if swa else facts.head_v_full
                v = _tensor_bytes(tv, hv * layer.n_head_kv, cells, ctx.n_stream, align, row_pad)
        if layer.has_indexer_kv:
            k += _tensor_bytes(ctx.type_k, facts.indexer_head_size, ctx.n_ctx_seq, ctx.n_stream, align, row_pad)
        per_layer.append(KVLayer(k, v, cells))
        size = k + v
        total += size
        if on_gpu:
            gpu += size
        else:
            host += size
    return KVResult(per_layer, total, gpu, host, ctx.n_ctx_seq,
                    ctx.swa_cells if (facts.swa_enabled and not swa_full) else ctx.n_ctx_seq)
