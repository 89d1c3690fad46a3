"""What a model's speed depends on, from its own shapes: parameters per layer (dense and routed
experts), attention widths and windows, and the mix of quant types its weights are read in.

Kept apart from planner/speed.py (which needs a device profile and a placement) so that the planner
and the calibration read it from ModelFacts alone; docs/speed.md describes the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ggml_types import quant_size, type_name
from .model_facts import LayerFacts, ModelFacts, TensorBytes

SHARE_FLOOR = 0.001  # quant types below this share of the bytes (or parameters) are left out


@dataclass(frozen=True)
class LayerCompute:
    kind: str  # attention | swa | mla | recurrent | none
    moe: bool
    dense_params: int  # elements of the non-expert tensors
    expert_params: int  # elements of all experts together
    attn_width: int  # n_head x (head_k + head_v): attention FLOPs / 2 per token and context position
    window: int  # context positions attention reaches (0 = all)


@dataclass(frozen=True)
class ModelCompute:
    """What prefill FLOPs and decode dispatch depend on, from the model's own shapes."""

    layers: tuple[LayerCompute, ...]
    expert_ratio: float  # expert_used_count / expert_count (1.0 for dense models)
    head_params: int
    family: str  # dense | moe | mla | hybrid
    n_expert: int = 0
    type_bytes: tuple[tuple[str, float], ...] = ()  # share of the weight bytes read per token, per ggml type
    type_params: tuple[tuple[str, float], ...] = ()  # share of the matmul parameters, per ggml type

    def type_factor(self, factors: dict[str, float], by: str = "bytes") -> float:
        """Time multiplier for the quant types' kernels: sum of share / efficiency (1.0 = q4_K-like)."""
        shares = self.type_bytes if by == "bytes" else self.type_params
        if not shares or not factors:
            return 1.0
        return sum(share / factors.get(t, 1.0) for t, share in shares)

    def active_params_per_token(self) -> float:
        return sum(l.dense_params + l.expert_params * self.expert_ratio for l in self.layers)


def model_compute(facts: ModelFacts) -> ModelCompute:
    """Per-layer parameter counts and attention widths from the model's tensors and geometry."""
    loaded = [layer for layer in facts.layers if layer.loaded]
    layers = tuple(_layer_compute(facts, layer) for layer in loaded)
    ratio = _expert_ratio(facts)
    any_moe = any(l.moe for l in layers)
    by_bytes, by_params = _type_weights(loaded, ratio)
    return ModelCompute(layers=layers, expert_ratio=min(1.0, ratio), head_params=_head_params(facts),
                        family=_family(facts, layers), n_expert=facts.n_expert if any_moe else 0,
                        type_bytes=_shares(by_bytes), type_params=_shares(by_params))


def _elements(nbytes: int, ggml_type: int) -> int:
    qs = quant_size(ggml_type)
    if not qs:
        return nbytes
    block, size = qs
    return nbytes // size * block


def _expert_ratio(facts: ModelFacts) -> float:
    return (facts.n_expert_used / facts.n_expert) if (facts.n_expert and facts.n_expert_used) else 1.0


def _layer_compute(facts: ModelFacts, layer: LayerFacts) -> LayerCompute:
    dense, expert = _params(layer)
    return LayerCompute(kind=layer.kind, moe=expert > 0, dense_params=dense, expert_params=expert,
                        attn_width=_attention_width(facts, layer), window=_window(facts, layer))


def _params(layer: LayerFacts) -> tuple[int, int]:
    """(dense, expert) weight elements of a layer."""
    split = [0, 0]
    for t in layer.tensors:
        split[t.is_expert] += _elements(t.nbytes, t.ggml_type)
    return split[0], split[1]


def _window(facts: ModelFacts, layer: LayerFacts) -> int:
    """The sliding window a layer attends (0: the whole context)."""
    return facts.n_swa if (layer.is_swa and facts.swa_enabled and facts.n_swa) else 0


def _attention_width(facts: ModelFacts, layer: LayerFacts) -> int:
    """n_head x (head_k + head_v) of a layer with a KV cache (MLA: the model's value_length)."""
    if not (layer.has_attn_kv and layer.n_head_kv):
        return 0
    kv_heads = max(1, layer.n_head_kv)
    head_v = (layer.v_width // kv_heads) if layer.v_width else facts.head_v_full
    return layer.n_head * (layer.k_width // kv_heads + head_v)


def _family(facts: ModelFacts, layers: tuple[LayerCompute, ...]) -> str:
    if any(l.kind == "recurrent" for l in layers):
        return "hybrid"
    if facts.is_mla:
        return "mla"
    return "moe" if any(l.moe for l in layers) else "dense"


def _head_params(facts: ModelFacts) -> int:
    """Elements of the output head (token_embd when it doubles as the head)."""
    heads = [facts.nonrepeating[name] for name in facts.output_names or ["output.weight"] if name in facts.nonrepeating]
    head = sum(_elements(t.nbytes, t.ggml_type) for t in heads)
    embd = facts.nonrepeating.get("token_embd.weight")
    if not head and embd is not None:
        return _elements(embd.nbytes, embd.ggml_type)
    return head


def _type_weights(layers: list[LayerFacts], ratio: float) -> tuple[dict[str, float], dict[str, float]]:
    """Bytes read per token and matmul parameters per ggml type (experts at used / count)."""
    by_bytes: dict[str, float] = {}
    by_params: dict[str, float] = {}
    for t in (t for layer in layers for t in layer.tensors):
        _add_tensor(by_bytes, by_params, t, ratio if t.is_expert else 1.0)
    return by_bytes, by_params


def _add_tensor(by_bytes: dict[str, float], by_params: dict[str, float], t: TensorBytes, read: float) -> None:
    name = (type_name(t.ggml_type) or str(t.ggml_type)).lower()
    by_bytes[name] = by_bytes.get(name, 0.0) + t.nbytes * read
    if t.ne1 > 1:  # matrices (norms and biases are vectors)
        by_params[name] = by_params.get(name, 0.0) + _elements(t.nbytes, t.ggml_type) * read


def _shares(weights: dict[str, float]) -> tuple[tuple[str, float], ...]:
    total = sum(weights.values()) or 1.0
    return tuple(sorted((k, v / total) for k, v in weights.items() if v / total > SHARE_FLOOR))
