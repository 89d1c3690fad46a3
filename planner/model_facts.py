"""Parsed headers -> the facts the estimator needs, computed once per model.

`ModelFacts.from_headers(h)` reads the hyperparameters through the generic `{arch}.*` keys the way
llama.cpp b11434 does in `llama_model_base::load_hparams` (src/llama-model.cpp; planner/hparams.py)
plus the per-arch rules of planner/archs.py (planner/layer_kinds.py), and sums tensor bytes per
repeating layer, per expert share and for the non-repeating tensors (planner/tensor_layout.py).
Everything that does not depend on the run settings is precomputed here, so that `estimate()` is a
cheap loop over the layers (the planner calls it thousands of times).

Downstream modules read ModelFacts only: what they need of the architecture's rules is a field
here (`no_output_head`, `flash_attn_forced_off`, the per-layer kinds), not the ArchRule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable, TypeVar, cast

from .archs import ArchRule, is_known_architecture, rule_for
from .errors import EstimateError, GGUFError
from .ggml_types import is_block_quantized, row_size
from .header import ModelHeaders, SkippedArray
from .hparams import ArchKeys, Hparams, read_hparams, recurrent_state_widths
from .layer_kinds import LayerKinds, layer_kinds
from .plausibility import (
    MAX_KV_WIDTH,
    MAX_KV_WIDTH_REASON,
    MAX_STATE_WIDTH,
    MAX_STATE_WIDTH_REASON,
    MAX_VOCAB,
    MAX_VOCAB_REASON,
    check_metadata,
    check_width,
    implausible,
)
from .tensor_layout import TensorBytes, TensorLayout, layout_tensors

__all__ = ["LayerFacts", "ModelFacts", "PaddedSums", "TensorBytes", "tensor_alloc_size"]

T = TypeVar("T")


@dataclass(slots=True)
class LayerFacts:
    """One repeating block blk.N: its tensors and its attention / recurrent geometry."""

    index: int
    tensors: list[TensorBytes] = field(default_factory=list)
    weights_bytes: int = 0  # raw bytes (file) of the tensors llama.cpp loads for this layer
    expert_bytes: int = 0
    loaded: bool = True  # False for nextn/MTP blocks llama.cpp skips by default
    n_head: int = 0
    n_head_kv: int = 0
    is_swa: bool = False
    is_recurrent: bool = False
    has_attn_kv: bool = False  # owns K (and V unless MLA) in the attention cache
    has_indexer_kv: bool = False  # owns a DSA lightning-indexer K row
    n_ff: int = 0
    k_width: int = 0  # n_embd_k_gqa(il)
    v_width: int = 0  # n_embd_v_gqa(il) (0 for MLA: no V cache)

    @property
    def kind(self) -> str:
        if not self.has_attn_kv:
            return "recurrent" if self.is_recurrent else "none"
        if self.v_width == 0:
            return "mla"
        return "swa" if self.is_swa else "attention"


@dataclass(slots=True)
class ModelFacts:
    arch: str
    rule: ArchRule  # read here only; downstream reads the flags below (kept for callers not yet switched)
    name: str
    n_layer_all: int  # block_count (includes nextn/MTP blocks)
    n_layer: int  # trunk layers: n_layer_all - nextn_predict_layers
    n_embd: int
    n_embd_out: int
    n_vocab: int
    n_ctx_train: int
    n_head0: int
    head_k_full: int
    head_v_full: int
    head_k_swa: int
    head_v_swa: int
    is_mla: bool
    n_swa: int
    swa_enabled: bool
    n_expert: int
    n_expert_used: int
    n_embd_r: int  # recurrent conv/shift state width per sequence (f32)
    n_embd_s: int  # recurrent SSM/WKV state width per sequence (f32)
    indexer_head_size: int
    ssm_d_inner: int  # recurrent inner width (compute-buffer model)
    n_deepstack: int  # Qwen3-VL deepstack input layers (compute-buffer model)
    causal: bool
    known_graph: bool  # architecture known to memfit (the compute model was fitted on its family)
    no_output_head: bool  # an encoder (embedding) model: no output matrix, no tied duplicate
    flash_attn_forced_off: bool  # llama.cpp turns flash attention off for this architecture (grok)
    layers: list[LayerFacts]
    nonrepeating: dict[str, TensorBytes]  # full tensor name -> bytes (token_embd.weight, output...)
    input_names: list[str]
    output_names: list[str]
    layer0_names: list[str]
    per_device_names: list[str]
    tied_output: bool  # output.weight absent: llama.cpp duplicates token_embd as the output head
    total_file_tensor_bytes: int
    skipped_bytes: int  # MTP tensors llama.cpp does not load
    warnings: list[str] = field(default_factory=list)
    approximate: bool = False
    _derived: dict[Hashable, object] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_headers(cls, h: ModelHeaders) -> "ModelFacts":
        return _build(h)

    # ------------------------------------------------------------------ derived, cached
    def derived(self, key: Hashable, compute: Callable[["ModelFacts"], T]) -> T:
        """A value computed from the facts once and kept with them: they never change, and the
        planner estimates the same model thousands of times."""
        hit = self._derived.get(key)
        if hit is None:
            hit = self._derived[key] = compute(self)
        return cast(T, hit)

    def padded_sums(self, alignment: int, row_pad: int) -> "PaddedSums":
        """Per-layer / non-repeating tensor bytes as a backend allocates them: every tensor padded
        to the buffer alignment, plus (CUDA/HIP) one extra row segment for quantized rows whose
        length is not a multiple of row_pad (ggml_backend_cuda_buffer_type_get_alloc_size)."""
        return self.derived(("padded", alignment, row_pad), lambda f: _padded_sums(f, alignment, row_pad))

    @property
    def n_kv_layers(self) -> int:
        return sum(1 for layer in self.layers if layer.has_attn_kv)

    @property
    def n_recurrent_layers(self) -> int:
        return sum(1 for layer in self.layers if layer.is_recurrent)

    @property
    def is_moe(self) -> bool:
        return any(layer.expert_bytes for layer in self.layers)


@dataclass(frozen=True, slots=True)
class PaddedSums:
    layer: tuple[int, ...]  # loaded bytes per layer (0 for skipped MTP layers)
    layer_expert: tuple[int, ...]
    nonrepeating: dict[str, int]


def tensor_alloc_size(t: TensorBytes, alignment: int, row_pad: int) -> int:
    size = t.nbytes
    if row_pad and t.ne0 % row_pad and is_block_quantized(t.ggml_type):
        size += row_size(t.ggml_type, row_pad - t.ne0 % row_pad)
    return -(-size // alignment) * alignment


def _padded_sums(f: ModelFacts, alignment: int, row_pad: int) -> PaddedSums:
    per_layer: list[int] = []
    per_expert: list[int] = []
    for layer in f.layers:
        sizes = _alloc_sizes(layer, alignment, row_pad)
        per_layer.append(sum(s for s, _ in sizes))
        per_expert.append(sum(s for s, expert in sizes if expert))
    nonrep = {name: tensor_alloc_size(t, alignment, row_pad) for name, t in f.nonrepeating.items()}
    return PaddedSums(tuple(per_layer), tuple(per_expert), nonrep)


def _alloc_sizes(layer: LayerFacts, alignment: int, row_pad: int) -> list[tuple[int, bool]]:
    """A loaded layer's tensors as allocated (padded), each with whether it is an expert's."""
    if not layer.loaded:
        return []
    return [(tensor_alloc_size(t, alignment, row_pad), t.is_expert) for t in layer.tensors]


# ---------------------------------------------------------------------- construction


def _build(h: ModelHeaders) -> ModelFacts:
    arch = _language_model_architecture(h)
    rule = rule_for(arch)
    known = is_known_architecture(arch)
    warnings: list[str] = []
    approximate = _architecture_warnings(arch, rule, known, warnings)
    check_metadata(h.metadata, arch)  # every value used below is an integer within its bounds from here on

    keys = ArchKeys(h.metadata, arch, warnings)
    hp = read_hparams(h, keys, known)
    is_mla = _is_mla(rule, keys)
    indexer_head_size = keys.int("attention.indexer.key_length")
    kinds = layer_kinds(rule, keys, hp, indexer_head_size)
    n_embd_r, n_embd_s = recurrent_state_widths(keys, hp, rule.lightning_attention)

    layout = layout_tensors(h.tensors, hp.n_layer_all, rule.token_embd_norm_is_output)
    warnings += _stray_warning(layout)
    layers = [_layer(il, tensors, hp, kinds, rule, known, is_mla) for il, tensors in enumerate(layout.per_layer)]
    n_vocab = _vocab_size(h)
    _check_geometry(arch, layers, (n_embd_r, n_embd_s), n_vocab, hp, is_mla)
    warnings += _layout_warnings(h, arch, rule, known, layout, hp, n_vocab)

    return ModelFacts(
        arch=arch, rule=rule, name=str(h.metadata.get("general.name") or ""),
        n_layer_all=hp.n_layer_all, n_layer=hp.n_layer, n_embd=hp.n_embd, n_embd_out=hp.n_embd_out,
        n_vocab=n_vocab, n_ctx_train=hp.n_ctx_train, n_head0=hp.n_head0,
        head_k_full=hp.head_k_full, head_v_full=hp.head_v_full, head_k_swa=hp.head_k_swa, head_v_swa=hp.head_v_swa,
        is_mla=is_mla, n_swa=kinds.n_swa, swa_enabled=kinds.swa_enabled and known,
        n_expert=keys.int("expert_count"),
        n_expert_used=max(keys.per_layer("expert_used_count", hp.n_layer_all, 0) or [0]),
        n_embd_r=n_embd_r, n_embd_s=n_embd_s, indexer_head_size=indexer_head_size,
        ssm_d_inner=keys.int("ssm.inner_size"), n_deepstack=keys.int("n_deepstack_layers"),
        causal=bool(h.metadata.get(f"{arch}.attention.causal", True)), known_graph=known,
        no_output_head=rule.no_output_head, flash_attn_forced_off=rule.flash_attn_forced_off,
        layers=layers, nonrepeating=layout.nonrepeating, input_names=layout.names["input"],
        output_names=layout.names["output"], layer0_names=layout.names["layer0"],
        per_device_names=layout.names["per_device"],
        tied_output=_tied_output(layout, rule),
        total_file_tensor_bytes=h.tensor_bytes,
        skipped_bytes=_skipped_bytes(layers),
        warnings=warnings, approximate=approximate,
    )


def _is_mla(rule: ArchRule, keys: ArchKeys) -> bool:
    """Multi-head latent attention: the architecture has it and the file gives both MLA widths."""
    return rule.mla and keys.int("attention.key_length_mla") > 0 and keys.int("attention.value_length_mla") > 0


def _stray_warning(layout: TensorLayout) -> list[str]:
    if not layout.stray_blocks:
        return []
    return [f"{layout.stray_blocks} tensors belong to blocks beyond block_count; counted with the output layer"]


def _skipped_bytes(layers: list[LayerFacts]) -> int:
    """The bytes of the layers llama.cpp does not load (an MTP block)."""
    return sum(t.nbytes for layer in layers if not layer.loaded for t in layer.tensors)


def _language_model_architecture(h: ModelHeaders) -> str:
    arch = h.architecture
    if not arch:
        raise EstimateError("the GGUF has no general.architecture key", hint="is this a llama.cpp model file?")
    if arch == "clip":
        raise EstimateError("this GGUF is a vision projector (mmproj), not a language model",
                            hint="pass it with --mmproj next to the model")
    return arch


def _architecture_warnings(arch: str, rule: ArchRule, known: bool, warnings: list[str]) -> bool:
    """What memfit does not know exactly about this architecture, said once; True when its KV
    cache is an approximation."""
    if not known:
        warnings.append(f"architecture '{arch}' is unknown to memfit: KV cache sized conservatively "
                        "(every layer, K and V at least n_embd wide, no sliding window)")
    if rule.approximate:
        warnings.append(f"'{arch}': {rule.approximate}; KV cache is an approximation")
    if rule.no_kv and rule.no_output_head:
        warnings.append(f"'{arch}' is an encoder (embedding) model: it does not generate text; "
                        "llama-server serves it with --embeddings")
    return not known or bool(rule.approximate)


def _layer(il: int, tensors: list[TensorBytes], hp: Hparams, kinds: LayerKinds, rule: ArchRule,
           known: bool, is_mla: bool) -> LayerFacts:
    """One block's facts: its kind, its K/V widths (n_embd_k_gqa / n_embd_v_gqa) and its bytes."""
    swa = kinds.swa[il]
    n_head_kv = hp.n_head_kv[il]
    loaded = il < hp.n_layer or rule.mtp_loaded
    k_width, v_width = _kv_widths(hp, swa, is_mla)
    weights_bytes, expert_bytes = _layer_bytes(tensors) if loaded else (0, 0)
    layer = LayerFacts(
        index=il, tensors=tensors, loaded=loaded, n_head=hp.n_head[il], n_head_kv=n_head_kv, n_ff=hp.n_ff[il],
        is_swa=swa, is_recurrent=kinds.recurrent[il], has_attn_kv=kinds.attn_kv[il],
        has_indexer_kv=kinds.indexer_kv[il], k_width=k_width * n_head_kv, v_width=v_width * n_head_kv,
        weights_bytes=weights_bytes, expert_bytes=expert_bytes,
    )
    if not known:
        _assume_full_attention(layer, hp.n_embd, rule)
    return layer


def _kv_widths(hp: Hparams, swa: bool, is_mla: bool) -> tuple[int, int]:
    """Per-head K and V widths of a layer (sliding-window heads may differ; MLA caches no V)."""
    k = hp.head_k_swa if swa else hp.head_k_full
    return k, 0 if is_mla else (hp.head_v_swa if swa else hp.head_v_full)


def _layer_bytes(tensors: list[TensorBytes]) -> tuple[int, int]:
    """A loaded layer's weight bytes, and the experts' share of them."""
    return sum(t.nbytes for t in tensors), sum(t.nbytes for t in tensors if t.is_expert)


def _assume_full_attention(layer: LayerFacts, n_embd: int, rule: ArchRule) -> None:
    """An unknown architecture, sized conservatively: every layer holds K and V at least n_embd
    wide, none slides."""
    layer.has_attn_kv = not layer.is_recurrent or rule.recurrent == "none"
    layer.k_width = max(layer.k_width, n_embd)
    layer.v_width = max(layer.v_width, n_embd)
    layer.is_swa = False


def _vocab_size(h: ModelHeaders) -> int:
    """The tokenizer's token count, else the rows of the embedding (or output) matrix."""
    tokens = h.metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, (SkippedArray, list)) and len(tokens) > 0:
        return len(tokens)
    return _embedding_rows(h)


def _embedding_rows(h: ModelHeaders) -> int:
    """The rows of the embedding (or output) matrix; 0 when neither is there."""
    by_name = {t.name: t for t in h.tensors}
    t = by_name.get("token_embd.weight") or by_name.get("output.weight")
    return int(t.shape[1]) if t is not None and len(t.shape) >= 2 else 0


def _tied_output(layout: TensorLayout, rule: ArchRule) -> bool:
    """output.weight absent: llama.cpp duplicates token_embd as the output head (not for encoders)."""
    names = layout.nonrepeating
    return "output.weight" not in names and "token_embd.weight" in names and not rule.no_output_head


def _layout_warnings(h: ModelHeaders, arch: str, rule: ArchRule, known: bool, layout: TensorLayout,
                     hp: Hparams, n_vocab: int) -> list[str]:
    """Tensor layouts memfit can size only partly, each said once."""
    out = _tensor_warnings(h, rule, layout)
    if hp.n_head0 == 0 and rule.recurrent == "none" and not rule.no_kv and known:
        out.append(f"'{arch}.attention.head_count' missing: no KV cache computed")
    if n_vocab == 0:
        out.append("vocabulary size unknown (no tokenizer.ggml.tokens, no token_embd): output buffer is 0")
    return out


def _tensor_warnings(h: ModelHeaders, rule: ArchRule, layout: TensorLayout) -> list[str]:
    """No tensors, no blocks, no token embedding."""
    out: list[str] = []
    if not h.tensors:
        out.append("the header lists no tensors: weights are 0")
    elif not any(layout.per_layer):
        out.append("no blk.N tensors found: per-layer placement cannot be computed")
    if "token_embd.weight" not in layout.nonrepeating and not rule.no_kv:
        out.append("no token_embd.weight tensor: unusual tensor layout, check the numbers")
    return out


def _check_geometry(arch: str, layers: list[LayerFacts], state_widths: tuple[int, int], n_vocab: int,
                    hp: Hparams, is_mla: bool) -> None:
    """The derived sizes within planner/plausibility.py's MAX_* bounds (each key was checked on
    its own by check_metadata; a product of plausible values can still be absurd), and no
    attention layer whose K (or V) head has 0 dimensions (a KV cache of 0 bytes)."""
    for layer in layers:
        _check_kv_heads(arch, layer, hp, is_mla)
    for layer in layers:
        check_width(f"layer {layer.index} K width (key_length x head_count_kv)", layer.k_width,
                    MAX_KV_WIDTH, MAX_KV_WIDTH_REASON)
        check_width(f"layer {layer.index} V width (value_length x head_count_kv)", layer.v_width,
                    MAX_KV_WIDTH, MAX_KV_WIDTH_REASON)
    n_embd_r, n_embd_s = state_widths
    check_width(f"{arch} recurrent conv/shift state width", n_embd_r, MAX_STATE_WIDTH, MAX_STATE_WIDTH_REASON)
    check_width(f"{arch} recurrent SSM/WKV state width", n_embd_s, MAX_STATE_WIDTH, MAX_STATE_WIDTH_REASON)
    check_width("vocabulary size (tokenizer.ggml.tokens / token_embd.weight)", n_vocab, MAX_VOCAB, MAX_VOCAB_REASON)


def _check_kv_heads(arch: str, layer: LayerFacts, hp: Hparams, is_mla: bool) -> None:
    """An attention layer with K/V heads of 0 dimensions would hold no KV cache."""
    if not (layer.has_attn_kv and layer.n_head_kv > 0):
        return
    if layer.k_width and (layer.v_width or is_mla):
        return
    raise _zero_head(arch, layer, hp)


def _zero_head(arch: str, layer: LayerFacts, hp: Hparams) -> GGUFError:
    """The key a K/V head of 0 dimensions comes from: an embedding too small for the heads, or
    an absent head width."""
    which = "key_length" if layer.k_width == 0 else "value_length"
    if hp.n_head0 > 0 and hp.n_embd // hp.n_head0 == 0:
        return implausible(f"{arch}.embedding_length", hp.n_embd,
                           f"with {hp.n_head0} query heads and no {arch}.attention.{which}, a head of "
                           f"{hp.n_embd // hp.n_head0} dimensions: layer {layer.index} would hold no KV cache")
    return implausible(f"{arch}.attention.{which}", f"absent (layer {layer.index})",
                       "a K/V head of 0 dimensions: an attention layer would hold no KV cache")
