"""What a user wants to know about a model before planning, straight from its GGUF headers.

Independent of the estimator on purpose: `inspect` reports what the files declare (hyper-
parameters, parameter counts, quant mixes); how llama.cpp turns that into memory is the
estimator's job. The result is a pydantic model so `--json` and the tables share one source.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from typing import TYPE_CHECKING, Callable

from pydantic import BaseModel

from .ggml_types import type_name
from .header import Metadata, MetaValue, ModelHeaders, SkippedArray
from .resolver import ProjectorFile, ResolvedModel, Variant
from .vocab import is_expert_tensor

if TYPE_CHECKING:  # pragma: no cover - built on demand: inspect reports what the files declare
    from .model_facts import ModelFacts

FactsOf = Callable[[], "ModelFacts | None"]


class PerLayer(BaseModel):
    """A hyperparameter that may vary per layer: `value` when uniform, else `per_layer`."""

    value: int | None = None
    per_layer: list[int] | None = None

    @property
    def text(self) -> str:
        if self.per_layer is None:
            return "-" if self.value is None else str(self.value)
        counts = Counter(self.per_layer)
        parts = [f"{v} on {n} layer{'s' if n > 1 else ''}" for v, n in sorted(counts.items(), reverse=True)]
        return ", ".join(parts)

    @property
    def declared(self) -> bool:
        return self.value is not None or self.per_layer is not None


class Attention(BaseModel):
    head_count: PerLayer
    head_count_kv: PerLayer
    key_length: int | None  # per-head K dimension
    value_length: int | None
    sliding_window: int | None = None
    swa_layers: int | None = None  # how many layers use the sliding window
    swa_pattern: str | None = None  # as declared (period or per-layer flags), for the record
    kv_lora_rank: int | None = None  # MLA
    q_lora_rank: int | None = None
    key_length_mla: int | None = None
    value_length_mla: int | None = None


class Recurrent(BaseModel):
    """State-space / recurrent blocks (Mamba, RWKV, hybrid models): what sizes their state, which
    replaces (pure recurrent) or complements (hybrid) the KV cache."""

    kind: str = "ssm"  # "ssm" (Mamba-style ssm.* keys), "rwkv" (wkv.head_size), "shortconv" (LFM2)
    conv_kernel: int | None = None  # ssm d_conv
    state_size: int | None = None  # ssm d_state
    inner_size: int | None = None  # ssm d_inner
    group_count: int | None = None
    time_step_rank: int | None = None
    wkv_head_size: int | None = None  # RWKV: the WKV state is head_size x n_embd per layer
    wkv_heads: int | None = None  # n_embd / head_size
    token_shift_count: int | None = None
    conv_cache: int | None = None  # LFM2 shortconv.l_cache
    layers: int | None = None  # recurrent layers (llama.cpp's rules for the architecture)
    state_bytes_per_sequence: int | None = None  # f32 conv/shift + SSM/WKV state of one sequence


class TensorTypeCount(BaseModel):
    type: str
    tensors: int
    bytes: int


class VariantSummary(BaseModel):
    quant: str
    files: list[str]
    size_bytes: int
    bits_per_weight: float | None
    hf_tag: str | None
    tensor_types: list[TensorTypeCount]


class ProjectorSummary(BaseModel):
    name: str
    size_bytes: int
    projector_type: str | None
    parameters: int | None
    tensor_types: list[TensorTypeCount]


class ModelSummary(BaseModel):
    ref: str
    source: str
    repo: str | None
    revision: str | None
    name: str | None
    architecture: str | None
    total_parameters: int | None
    active_parameters: int | None  # None for dense models
    expert_count: int | None
    expert_used_count: int | None
    expert_shared_count: int | None
    layers: int | None
    embedding_length: int | None
    feed_forward_length: int | None
    context_length: int | None
    vocab_size: int | None
    attention: Attention | None  # None also for attention-free (pure recurrent) models
    attention_free: bool = False  # pure recurrent (Mamba, RWKV): no attention, no KV cache
    recurrent: Recurrent | None
    variants: list[VariantSummary]
    projectors: list[ProjectorSummary]
    problems: list[str]


# --- helpers ---------------------------------------------------------------------------------------


def _int(v: MetaValue | None) -> int | None:
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None


def _int_list(v: MetaValue | None) -> list[int] | None:
    if isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return [int(x) for x in v]
    return None


def _per_layer(v: MetaValue | None) -> PerLayer:
    values = _int_list(v)
    if values is None:
        return PerLayer(value=_int(v))
    return PerLayer(value=values[0]) if len(set(values)) == 1 else PerLayer(per_layer=values)


def _type_name(t: int) -> str:
    return type_name(t) or f"type{t}"


def type_histogram(h: ModelHeaders | None) -> list[TensorTypeCount]:
    """Tensors and bytes per ggml type, largest share first."""
    count: Counter[int] = Counter()
    size: Counter[int] = Counter()
    for t in h.tensors if h is not None else []:
        count[t.ggml_type] += 1
        size[t.ggml_type] += t.nbytes
    return [TensorTypeCount(type=_type_name(k), tensors=count[k], bytes=size[k])
            for k in sorted(count, key=lambda k: (-size[k], _type_name(k)))]


def parameter_counts(h: ModelHeaders, expert_count: int | None,
                     expert_used: int | None) -> tuple[int, int | None]:
    """(total, active): active counts only `expert_used` of `expert_count` routed experts (the
    tensors of planner/vocab.py's expert pattern; shared experts are always active)."""
    total = sum(t.n_elements for t in h.tensors)
    if not expert_count or not expert_used:
        return total, None
    routed = sum(t.n_elements for t in h.tensors if is_expert_tensor(t.name))
    if routed == 0:
        return total, None
    return total, total - routed + routed * expert_used // expert_count


def _vocab_size(meta: Metadata, arch: str, h: ModelHeaders) -> int | None:
    tokens = meta.get("tokenizer.ggml.tokens")
    if isinstance(tokens, SkippedArray):
        return tokens.count
    if isinstance(tokens, list):
        return len(tokens)
    return _int(meta.get(f"{arch}.vocab_size")) or _embedding_rows(h)


def _embedding_rows(h: ModelHeaders) -> int | None:
    t = next((t for t in h.tensors if t.name == "token_embd.weight" and len(t.shape) >= 2), None)
    return t.shape[1] if t is not None else None


def _swa(meta: Metadata, arch: str, layers: int | None) -> tuple[int | None, str | None]:
    """(layers using the sliding window, pattern as declared)."""
    pattern = meta.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, list) and pattern:
        flags = [bool(x) for x in pattern]
        return sum(flags), "".join("S" if f else "F" for f in flags)
    return _swa_by_period(_int(pattern), layers)


def _swa_by_period(period: int | None, layers: int | None) -> tuple[int | None, str | None]:
    """Period n: every n-th layer uses full attention, the rest the window (llama.cpp's convention)."""
    if period and period > 0 and layers:
        return sum(1 for i in range(layers) if (i + 1) % period != 0), f"every {period}th layer full"
    return None, None


def _facts(h: ModelHeaders) -> ModelFacts | None:
    """planner.model_facts' view of the model (which layers slide, recurrent layers), or None
    for architectures it cannot read; inspect then reports only what the file declares."""
    from .errors import MemfitError
    from .model_facts import ModelFacts

    try:
        return ModelFacts.from_headers(h)
    except (MemfitError, KeyError, ValueError, TypeError, IndexError):
        return None


def _sliding_window(meta: Metadata, arch: str, layers: int | None,
                    facts: ModelFacts | None) -> tuple[int | None, int | None, str | None]:
    """(window, SWA layers, declared pattern): as llama.cpp's per-architecture rules (default
    patterns, gates) apply them when memfit can read the model, else as declared."""
    window = _int(meta.get(f"{arch}.attention.sliding_window"))
    swa_layers, pattern = _swa(meta, arch, layers) if window else (None, None)
    if facts is None:
        return window, swa_layers, pattern
    if not facts.swa_enabled:
        return None, None, None
    return facts.n_swa or window, _sliding_layers(facts) or None, pattern


def _sliding_layers(facts: ModelFacts) -> int:
    """The layers with a KV cache that slide."""
    return sum(1 for layer in facts.layers if layer.is_swa and layer.has_attn_kv)


def _attention(h: ModelHeaders, arch: str, n_embd: int | None, layers: int | None, facts: FactsOf) -> Attention | None:
    meta = h.metadata
    a = f"{arch}.attention."
    heads = _per_layer(meta.get(a + "head_count"))
    if not heads.declared:
        return None
    kv = _per_layer(meta.get(a + "head_count_kv"))
    default_dim = _default_head_dim(n_embd, heads)
    window, swa_layers, pattern = _sliding_window(meta, arch, layers, facts())
    return Attention(
        head_count=heads, head_count_kv=kv if kv.declared else heads,
        key_length=_int(meta.get(a + "key_length")) or default_dim,
        value_length=_int(meta.get(a + "value_length")) or default_dim,
        sliding_window=window, swa_layers=swa_layers, swa_pattern=pattern,
        kv_lora_rank=_int(meta.get(a + "kv_lora_rank")), q_lora_rank=_int(meta.get(a + "q_lora_rank")),
        key_length_mla=_int(meta.get(a + "key_length_mla")),
        value_length_mla=_int(meta.get(a + "value_length_mla")),
    )


def _default_head_dim(n_embd: int | None, heads: PerLayer) -> int | None:
    """The per-head dimension when the file does not declare it: the embedding over the heads
    (the most heads of any layer when they vary)."""
    n_head = heads.value or (max(heads.per_layer) if heads.per_layer else None)
    return n_embd // n_head if n_embd and n_head else None


def _attention_free(h: ModelHeaders, arch: str) -> bool:
    """Pure recurrent models (Mamba, RWKV) have no attention: their converters still write
    head_count 0 because llama.cpp's loader wants the key."""
    from .archs import is_recurrent_only

    if is_recurrent_only(arch):
        return True
    heads = _per_layer(h.metadata.get(f"{arch}.attention.head_count"))
    values = heads.per_layer if heads.per_layer is not None else [heads.value]
    return bool(values) and all(v == 0 for v in values) and (
        _int(h.metadata.get(f"{arch}.wkv.head_size")) is not None
        or _int(h.metadata.get(f"{arch}.ssm.state_size")) is not None)


def _recurrent_kind(r: Recurrent) -> str:
    if r.wkv_head_size:
        return "rwkv"
    return "shortconv" if r.conv_cache and r.state_size is None else "ssm"


def _recurrent(h: ModelHeaders, arch: str, n_embd: int | None, facts: FactsOf) -> Recurrent | None:
    meta = h.metadata
    s = f"{arch}.ssm."
    wkv = _int(meta.get(f"{arch}.wkv.head_size"))
    r = Recurrent(conv_kernel=_int(meta.get(s + "conv_kernel")), state_size=_int(meta.get(s + "state_size")),
                  inner_size=_int(meta.get(s + "inner_size")), group_count=_int(meta.get(s + "group_count")),
                  time_step_rank=_int(meta.get(s + "time_step_rank")), wkv_head_size=wkv,
                  wkv_heads=n_embd // wkv if wkv and n_embd else None,
                  token_shift_count=_int(meta.get(f"{arch}.token_shift_count")) if wkv else None,
                  conv_cache=_int(meta.get(f"{arch}.shortconv.l_cache")))
    if all(v is None for v in r.model_dump(exclude={"kind"}).values()):
        return None
    r.kind = _recurrent_kind(r)
    f = facts()
    if f is not None and f.n_recurrent_layers:
        r.layers = f.n_recurrent_layers
        r.state_bytes_per_sequence = (f.n_embd_r + f.n_embd_s) * 4 * f.n_recurrent_layers
    return r


def _arch_problems(arch: str | None) -> list[str]:
    """Say so when llama.cpp (as memfit knows it) has no such architecture: estimates for it are
    conservative guesses, and llama.cpp may refuse to load the file."""
    from .archs import is_known_architecture

    if arch is None:
        return ["the GGUF has no general.architecture key: llama.cpp cannot load it"]
    if not is_known_architecture(arch):
        return [f"architecture '{arch}' is unknown to memfit (and possibly to your llama.cpp): "
                "`estimate` and `plan` size it conservatively"]
    return []


# --- the summary ------------------------------------------------------------------------------------


def _variant_summary(model: ResolvedModel, v: Variant) -> VariantSummary:
    h = v.headers
    params = sum(t.n_elements for t in h.tensors) if h is not None else 0
    return VariantSummary(
        quant=v.quant, files=v.files, size_bytes=v.size_bytes,
        bits_per_weight=round(h.tensor_bytes * 8 / params, 2) if h is not None and params else None,
        hf_tag=model.hf_tag(v.quant), tensor_types=type_histogram(h),
    )


def _projector_summary(p: ProjectorFile) -> ProjectorSummary:
    h = p.headers
    proj = h.metadata.get("clip.projector_type") if h is not None else None
    return ProjectorSummary(
        name=p.name, size_bytes=p.size_bytes, projector_type=proj if isinstance(proj, str) else None,
        parameters=sum(t.n_elements for t in h.tensors) if h is not None else None,
        tensor_types=type_histogram(h),
    )


def _architecture_summary(h: ModelHeaders, arch: str, layers: int | None, n_embd: int | None) -> dict[str, object]:
    """attention, attention_free and recurrent: what the file declares, with llama.cpp's rules
    for the architecture where memfit can read the model (its facts are built once, on demand)."""
    facts: FactsOf = cache(lambda: _facts(h))
    free = _attention_free(h, arch)
    return {"attention": None if free else _attention(h, arch, n_embd, layers, facts), "attention_free": free,
            "recurrent": _recurrent(h, arch, n_embd, facts)}


_NO_ARCHITECTURE: dict[str, object] = {"attention": None, "attention_free": False, "recurrent": None}


def _first_headers(model: ResolvedModel) -> ModelHeaders | None:
    """The headers of the first variant that has them loaded."""
    return next((v.headers for v in model.variants if v.headers is not None), None)


def _architecture_of(first: ModelHeaders | None, arch: str | None, layers: int | None,
                     n_embd: int | None) -> dict[str, object]:
    if arch and first is not None:
        return _architecture_summary(first, arch, layers, n_embd)
    return _NO_ARCHITECTURE


def _meta_arch(first: ModelHeaders | None) -> tuple[Metadata, str | None]:
    """The first loaded variant's metadata and architecture (nothing when none loaded)."""
    if first is None:
        return {}, None
    return first.metadata, first.architecture


def summarize(model: ResolvedModel) -> ModelSummary:
    """Build the summary; the model must have been resolved with headers."""
    first = _first_headers(model)
    meta, arch = _meta_arch(first)
    key = (arch or "") + "."
    n_expert = _int(meta.get(key + "expert_count"))
    n_used = _int(meta.get(key + "expert_used_count"))
    layers = _int(meta.get(key + "block_count"))
    n_embd = _int(meta.get(key + "embedding_length"))
    total, active = parameter_counts(first, n_expert, n_used) if first is not None else (None, None)
    name = meta.get("general.name")
    architecture = _architecture_of(first, arch, layers, n_embd)
    return ModelSummary(
        ref=model.ref, source=model.source, repo=model.repo, revision=model.revision,
        name=name if isinstance(name, str) else None, architecture=arch,
        total_parameters=total, active_parameters=active,
        expert_count=n_expert, expert_used_count=n_used,
        expert_shared_count=_int(meta.get(key + "expert_shared_count")),
        layers=layers, embedding_length=n_embd,
        feed_forward_length=_int(meta.get(key + "feed_forward_length")),
        context_length=_int(meta.get(key + "context_length")),
        vocab_size=_vocab_size(meta, arch or "", first) if first is not None else None,
        variants=[_variant_summary(model, v) for v in model.variants],
        projectors=[_projector_summary(p) for p in model.mmproj],
        problems=model.problems + _arch_problems(arch),
        **architecture,
    )
