"""The widths of a model's compute graph that the compute-buffer model scales (planner/estimator/
compute.py): per-token sizes of the big intermediates, read once from the tensors and kept with the
ModelFacts (they do not depend on the run settings)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..model_facts import LayerFacts, ModelFacts
from ..tensor_layout import TensorBytes

_DENSE_FFN_INPUT = re.compile(r"^blk\.\d+\.ffn_(up|gate)\.weight$")
# the routed experts' input projections (a subset of planner/vocab.py's expert tensors, without the
# chunk experts): their rows give the width of one expert's FFN
_EXPERT_FFN_INPUT = re.compile(r"^blk\.\d+\.ffn_(up|gate|gate_up)_exps\.weight$")


@dataclass(frozen=True)
class GraphShape:
    """Per-token widths of the graph's big intermediates."""

    E: int  # n_embd
    Q: int  # n_head x head_k
    K: int  # n_head_kv x head_k
    V: int  # n_head_kv x head_v
    ff_dense: int  # widest dense FFN
    ff_gated: bool  # a dense FFN has a gate (ffn_gate, or ffn_up fused at 2 x n_ff)
    moe_u: int  # n_used * ff_exp
    n_used: int
    d_inner: int
    n_deepstack: int
    max_weight_by_layer: tuple[int, ...]  # largest single tensor of each layer (op_offload copy)
    output_weight: int  # largest output-layer tensor (the tied token_embd included)
    full_attention: bool  # some KV layer attends the whole context
    sliding_attention: bool  # some KV layer attends a sliding window
    attention_heads: int  # most query heads of a KV layer (the KQ matrix without FA)


def graph_shape(f: ModelFacts) -> GraphShape:
    return f.derived("compute-graph-shape", _measure)


def _measure(f: ModelFacts) -> GraphShape:
    loaded = [layer for layer in f.layers if layer.loaded]
    kv_layers = [layer for layer in f.layers if layer.has_attn_kv]
    slides = [layer.is_swa and f.swa_enabled for layer in kv_layers]
    return GraphShape(
        **_attention_widths(f), ff_dense=_widest(_dense_ffn_width, loaded),
        ff_gated=any(_dense_ffn_gated(layer) for layer in loaded),
        moe_u=f.n_expert_used * _widest(_expert_ffn_width, loaded), n_used=f.n_expert_used, d_inner=f.ssm_d_inner,
        n_deepstack=f.n_deepstack, max_weight_by_layer=tuple(map(_largest_tensor, f.layers)),
        output_weight=_output_weight(f), full_attention=not all(slides), sliding_attention=any(slides),
        attention_heads=_widest(lambda layer: layer.n_head, kv_layers),
    )


def _widest(width: Callable[[LayerFacts], int], layers: list[LayerFacts]) -> int:
    """The largest `width` over the layers (0 without any)."""
    return max(map(width, layers), default=0)


def _attention_widths(f: ModelFacts) -> dict[str, int]:
    """E, Q, K, V: the embedding and the widest query, key and value rows of any layer."""
    hk = max(f.head_k_full, f.head_k_swa)
    hv = max(f.head_v_full, f.head_v_swa)
    n_head = _widest(lambda layer: layer.n_head, f.layers)
    n_kv = _widest(lambda layer: layer.n_head_kv, f.layers)
    return {"E": f.n_embd, "Q": n_head * hk, "K": n_kv * hk, "V": n_kv * hv}


def _largest_tensor(layer: LayerFacts) -> int:
    """The largest single tensor of a loaded layer (what op_offload copies), 0 for one not loaded."""
    return max((t.nbytes for t in layer.tensors), default=0) if layer.loaded else 0


def _dense_ffn_width(layer: LayerFacts) -> int:
    """The widest dense FFN activation of a layer (rows of ffn_up / ffn_gate). A fused gate+up
    (phi3 and others: ffn_up of 2 x n_ff, no ffn_gate) feeds the same n_ff-wide activation as
    separate gate and up tensors (ggml_swiglu splits it)."""
    names = {t.name.rsplit(".", 2)[-2] for t in layer.tensors}
    fused = "ffn_up" in names and "ffn_gate" not in names and "ffn_down" in names
    widths = [_fused_up_width(layer, t) if fused and t.name.endswith("ffn_up.weight") else t.ne1
              for t in layer.tensors if _DENSE_FFN_INPUT.match(t.name)]
    return max(widths, default=0)


def _dense_ffn_gated(layer: LayerFacts) -> bool:
    """A gated dense FFN: an ffn_gate tensor, or an ffn_up fused with the gate (2 x n_ff rows)."""
    names = {t.name.rsplit(".", 2)[-2] for t in layer.tensors}
    if "ffn_gate" in names:
        return True
    up = next((t for t in layer.tensors if t.name.endswith("ffn_up.weight")), None)
    return up is not None and "ffn_down" in names and _fused_up_width(layer, up) != up.ne1


def _fused_up_width(layer: LayerFacts, up: TensorBytes) -> int:
    down = next((d for d in layer.tensors if d.name.endswith("ffn_down.weight")), None)
    return down.ne0 if down is not None and up.ne1 == 2 * down.ne0 else up.ne1


def _expert_ffn_width(layer: LayerFacts) -> int:
    widths = [t.ne1 // 2 if "gate_up" in t.name else t.ne1 for t in layer.tensors if _EXPERT_FFN_INPUT.match(t.name)]
    return max(widths, default=0)


def _output_weight(f: ModelFacts) -> int:
    names = list(f.output_names) + (["token_embd.weight"] if f.tied_output else [])
    return max((f.nonrepeating[name].nbytes for name in names), default=0)
