"""Parsed headers -> the facts the estimator needs, computed once per model.

`ModelFacts.from_headers(h)` reads the hyperparameters through the generic `{arch}.*` keys the way
llama.cpp b11434 does in `llama_model_base::load_hparams` (src/llama-model.cpp) plus the per-arch
rules of planner/archs.py, and sums tensor bytes per repeating layer, per expert share and for the
non-repeating tensors. Everything that does not depend on the run settings is precomputed here, so
that `estimate()` is a cheap loop over the layers (the planner calls it thousands of times).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from .archs import (
    INPUT_TENSORS,
    LAYER0_TENSORS,
    PER_DEVICE_TENSORS,
    ArchRule,
    is_known_architecture,
    rule_for,
)
from .errors import EstimateError
from .ggml_types import GGML_QUANT_SIZES
from .header import ModelHeaders, SkippedArray, TensorInfo
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

_BLK_RE = re.compile(r"^blk\.(\d+)\.(.+)$")
_EXPERT_RE = re.compile(r"\.ffn_(up|down|gate|gate_up)_(ch|)exps")

LLAMA_MAX_LAYERS = 512
_SIZES: dict[int, tuple[int, int]] = {int(t): bs for t, bs in GGML_QUANT_SIZES.items()}


def _is_quantized(ggml_type: int) -> bool:
    sizes = _SIZES.get(ggml_type)
    return sizes is not None and sizes[0] > 1


def row_size(ggml_type: int, n: int) -> int:
    """ggml_row_size: bytes of a row of n elements of this type (type_size * n / block, in that
    order, as ggml computes it; also for CUDA's partial-block row padding)."""
    block, type_size = _SIZES[ggml_type]
    return type_size * n // block


@dataclass(frozen=True, slots=True)
class TensorBytes:
    """One tensor as the allocators see it: its bytes and what a backend's padding depends on."""

    name: str
    nbytes: int
    ne0: int
    ne1: int
    ggml_type: int
    is_expert: bool


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
        if self.is_recurrent and not self.has_attn_kv:
            return "recurrent"
        if not self.has_attn_kv:
            return "none"
        if self.v_width == 0:
            return "mla"
        return "swa" if self.is_swa else "attention"


@dataclass(slots=True)
class ModelFacts:
    arch: str
    rule: ArchRule
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
    _align_cache: dict[tuple[int, int], Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_headers(cls, h: ModelHeaders) -> "ModelFacts":
        return _build(h)

    # ------------------------------------------------------------------ derived, cached
    def padded_sums(self, alignment: int, row_pad: int) -> "PaddedSums":
        """Per-layer / non-repeating tensor bytes as a backend allocates them: every tensor padded
        to the buffer alignment, plus (CUDA/HIP) one extra row segment for quantized rows whose
        length is not a multiple of row_pad (ggml_backend_cuda_buffer_type_get_alloc_size)."""
        key = (alignment, row_pad)
        hit = self._align_cache.get(key)
        if hit is None:
            hit = _padded_sums(self, alignment, row_pad)
            self._align_cache[key] = hit
        return hit

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
    if row_pad and _is_quantized(t.ggml_type) and t.ne0 % row_pad:
        size += row_size(t.ggml_type, row_pad - t.ne0 % row_pad)
    return -(-size // alignment) * alignment


def _padded_sums(f: ModelFacts, alignment: int, row_pad: int) -> PaddedSums:
    per_layer: list[int] = []
    per_expert: list[int] = []
    for layer in f.layers:
        total = 0
        experts = 0
        if layer.loaded:
            for t in layer.tensors:
                s = tensor_alloc_size(t, alignment, row_pad)
                total += s
                if t.is_expert:
                    experts += s
        per_layer.append(total)
        per_expert.append(experts)
    nonrep = {name: tensor_alloc_size(t, alignment, row_pad) for name, t in f.nonrepeating.items()}
    return PaddedSums(tuple(per_layer), tuple(per_expert), nonrep)


# ---------------------------------------------------------------------- metadata helpers
class _Meta:
    """`{arch}.key` lookups with llama.cpp's scalar-or-array semantics (get_key_or_arr)."""

    def __init__(self, meta: dict[str, Any], arch: str, warnings: list[str]):
        self.meta = meta
        self.arch = arch
        self.warnings = warnings

    def raw(self, key: str) -> Any:
        return self.meta.get(f"{self.arch}.{key}")

    def has(self, key: str) -> bool:
        return f"{self.arch}.{key}" in self.meta

    def int(self, key: str, default: int = 0) -> int:
        v = self.raw(key)
        if v is None or isinstance(v, (list, SkippedArray)):
            return default
        try:
            return int(v)
        except (TypeError, ValueError):
            return default

    def per_layer(self, key: str, n: int, default: Sequence[int] | int) -> list[int]:
        v = self.raw(key)
        if isinstance(v, SkippedArray):
            self.warnings.append(f"{self.arch}.{key} is an array too large to read; using the default")
            v = None
        if isinstance(v, list):
            vals = [int(x) for x in v]
            if len(vals) < n:
                vals += [0] * (n - len(vals))
            return vals[:n]
        if v is not None:
            try:
                return [int(v)] * n
            except (TypeError, ValueError):
                pass
        if isinstance(default, int):
            return [default] * n
        return list(default)


def _vocab_size(h: ModelHeaders, by_name: dict[str, TensorInfo]) -> int:
    tokens = h.metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, (SkippedArray, list)) and len(tokens) > 0:
        return len(tokens)
    t = by_name.get("token_embd.weight") or by_name.get("output.weight")
    if t is not None and len(t.shape) >= 2:
        return int(t.shape[1])
    return 0


def _blocks_in_tensors(h: ModelHeaders) -> int:
    """1 + the highest blk.N index among the tensors (0 when there are none)."""
    top = -1
    for t in h.tensors:
        mb = _BLK_RE.match(t.name)
        if mb:
            top = max(top, int(mb.group(1)))
    return top + 1


def _embedding_width(h: ModelHeaders) -> int:
    t = next((t for t in h.tensors if t.name == "token_embd.weight"), None)
    return int(t.shape[0]) if t is not None and t.shape else 0


def _build(h: ModelHeaders) -> ModelFacts:
    meta = h.metadata
    arch = h.architecture
    if not arch:
        raise EstimateError("the GGUF has no general.architecture key", hint="is this a llama.cpp model file?")
    warnings: list[str] = []
    rule = rule_for(arch)
    m = _Meta(meta, arch, warnings)
    known = is_known_architecture(arch)
    approximate = False
    if not known:
        warnings.append(
            f"architecture '{arch}' is unknown to memfit: KV cache sized conservatively "
            "(every layer, K and V at least n_embd wide, no sliding window)")
        approximate = True
    if rule.approximate:
        warnings.append(f"'{arch}': {rule.approximate}; KV cache is an approximation")
        approximate = True
    if rule.no_kv and rule.no_output_head:
        warnings.append(f"'{arch}' is an encoder (embedding) model: it does not generate text; "
                        "llama-server serves it with --embeddings")
    if arch == "clip":
        raise EstimateError("this GGUF is a vision projector (mmproj), not a language model",
                            hint="pass it with --mmproj next to the model")
    # every value used below is an integer within planner/plausibility.py's bounds from here on
    check_metadata(meta, arch)

    n_layer_all = m.int("block_count")
    if not known and n_layer_all <= 0:
        # an architecture nobody documents its keys for: size it from the tensors it has
        n_layer_all = _blocks_in_tensors(h)
        if n_layer_all > 0:
            warnings.append(f"'{arch}.block_count' is missing: {n_layer_all} layers counted from the blk.N tensors")
    if n_layer_all <= 0 or n_layer_all > LLAMA_MAX_LAYERS:
        raise EstimateError(f"'{arch}.block_count' is missing or invalid ({m.raw('block_count')!r})",
                            hint="the header is incomplete or not a llama.cpp model")
    n_nextn = m.int("nextn_predict_layers")
    n_nextn = n_nextn if 0 <= n_nextn <= n_layer_all else 0
    n_layer = n_layer_all - n_nextn
    n_embd = m.int("embedding_length")
    if not known and n_embd <= 0:
        n_embd = _embedding_width(h)
        if n_embd > 0:
            warnings.append(f"'{arch}.embedding_length' is missing: {n_embd} taken from token_embd.weight")
    if known and n_embd <= 0:
        raise EstimateError(f"'{arch}.embedding_length' is missing (llama.cpp requires it)",
                            hint="the header is incomplete or not a llama.cpp model")
    n_embd_out = m.int("embedding_length_out") or n_embd
    n_ctx_train = m.int("context_length")

    n_head = m.per_layer("attention.head_count", n_layer_all, 0)
    n_head_kv = m.per_layer("attention.head_count_kv", n_layer_all, n_head) if m.has(
        "attention.head_count_kv") else list(n_head)
    n_ff = m.per_layer("feed_forward_length", n_layer_all, 0)
    n_head0 = n_head[0] if n_head else 0

    if n_head0 > 0:
        head_k_full = m.int("attention.key_length", n_embd // n_head0)
        head_v_full = m.int("attention.value_length", n_embd // n_head0)
    else:
        head_k_full = head_v_full = 0
    head_k_swa = m.int("attention.key_length_swa", head_k_full)
    head_v_swa = m.int("attention.value_length_swa", head_v_full)

    is_mla = rule.mla and m.int("attention.key_length_mla") > 0 and m.int("attention.value_length_mla") > 0

    # --- recurrent layers (llama-hparams is_recr_impl)
    is_recr = _recurrent_layers(rule, m, n_layer_all, n_layer, n_head_kv, n_ff)

    # --- sliding window (llama-hparams is_swa_impl)
    n_swa, swa_enabled, is_swa = _swa_layers(rule, m, n_layer_all, n_layer, is_recr, warnings)

    # --- which layers own KV (create_memory filters + has_kv)
    kv_from_start = rule.kv_from_start(meta, n_layer_all) if rule.kv_from_start else -1
    attn_kv = _attention_kv_layers(rule, n_layer_all, n_layer, n_nextn, is_recr, n_ff, kv_from_start)

    indexer_head_size = m.int("attention.indexer.key_length")
    indexer_layers = [False] * n_layer_all
    if rule.dsa_indexer and indexer_head_size > 0:
        types = m.raw("attention.indexer.types")
        if isinstance(types, list) and arch == "glm-dsa":
            full = [bool(x) for x in types] + [False] * n_layer_all
        else:
            if arch == "glm-dsa" and n_ctx_train >= 1048576:
                warnings.append("glm-dsa >= 1M context without attention.indexer.types: "
                                "indexer layers assumed on every layer (upper bound)")
            full = [True] * n_layer_all
        indexer_layers = [il < n_layer and full[il] for il in range(n_layer_all)]

    # --- recurrent state widths (llama-hparams n_embd_r / n_embd_s)
    n_embd_r, n_embd_s = _recurrent_widths(m, n_embd, n_head0, head_k_full)

    # --- tensors
    by_name = {t.name: t for t in h.tensors}
    n_vocab = _vocab_size(h, by_name)
    layers = [LayerFacts(index=i) for i in range(n_layer_all)]
    nonrep: dict[str, TensorBytes] = {}
    input_names: list[str] = []
    output_names: list[str] = []
    layer0_names: list[str] = []
    per_device_names: list[str] = []
    skipped = 0
    stray_blocks = 0
    for t in h.tensors:
        tb = TensorBytes(t.name, t.nbytes, int(t.shape[0]) if t.shape else 1,
                         int(t.shape[1]) if len(t.shape) > 1 else 1, t.ggml_type,
                         bool(_EXPERT_RE.search(t.name)))
        mb = _BLK_RE.match(t.name)
        if mb:
            il = int(mb.group(1))
            if il >= n_layer_all:
                # "blocks that are not model layers go with the output" (llama-model.cpp create_tensor)
                stray_blocks += 1
                nonrep[t.name] = tb
                output_names.append(t.name)
                continue
            layers[il].tensors.append(tb)
            continue
        nonrep[t.name] = tb
        base = t.name.rsplit(".", 1)[0] if t.name.endswith((".weight", ".bias")) else t.name
        if base in INPUT_TENSORS:
            input_names.append(t.name)
        elif base in PER_DEVICE_TENSORS:
            per_device_names.append(t.name)
        elif base in LAYER0_TENSORS and not (base == "token_embd_norm" and rule.token_embd_norm_is_output):
            layer0_names.append(t.name)
        else:
            output_names.append(t.name)
    if stray_blocks:
        warnings.append(f"{stray_blocks} tensors belong to blocks beyond block_count; counted with the output layer")

    for layer in layers:
        il = layer.index
        layer.n_head = n_head[il]
        layer.n_head_kv = n_head_kv[il]
        layer.n_ff = n_ff[il]
        layer.is_swa = is_swa[il]
        layer.is_recurrent = is_recr[il]
        layer.has_attn_kv = attn_kv[il]
        layer.has_indexer_kv = indexer_layers[il]
        layer.loaded = il < n_layer or rule.mtp_loaded
        hk = head_k_swa if layer.is_swa else head_k_full
        hv = head_v_swa if layer.is_swa else head_v_full
        layer.k_width = hk * layer.n_head_kv
        layer.v_width = 0 if is_mla else hv * layer.n_head_kv
        if not known:
            # conservative: every layer holds K and V at least n_embd wide
            layer.has_attn_kv = not is_recr[il] or rule.recurrent == "none"
            layer.k_width = max(layer.k_width, n_embd)
            layer.v_width = max(layer.v_width, n_embd)
            layer.is_swa = False
        layer.weights_bytes = sum(t.nbytes for t in layer.tensors) if layer.loaded else 0
        layer.expert_bytes = sum(t.nbytes for t in layer.tensors if t.is_expert) if layer.loaded else 0
        if not layer.loaded:
            skipped += sum(t.nbytes for t in layer.tensors)

    _check_geometry(arch, layers, n_embd_r, n_embd_s, n_vocab, n_embd, n_head0, is_mla)

    if not h.tensors:
        warnings.append("the header lists no tensors: weights are 0")
    elif not any(layer.tensors for layer in layers):
        warnings.append("no blk.N tensors found: per-layer placement cannot be computed")
    if "token_embd.weight" not in by_name and not rule.no_kv:
        warnings.append("no token_embd.weight tensor: unusual tensor layout, check the numbers")
    if n_head0 == 0 and rule.recurrent == "none" and not rule.no_kv and known:
        warnings.append(f"'{arch}.attention.head_count' missing: no KV cache computed")
    if n_vocab == 0:
        warnings.append("vocabulary size unknown (no tokenizer.ggml.tokens, no token_embd): output buffer is 0")

    tied = ("output.weight" not in by_name and "token_embd.weight" in by_name and not rule.no_output_head)

    return ModelFacts(
        arch=arch, rule=rule, name=str(meta.get("general.name") or ""),
        n_layer_all=n_layer_all, n_layer=n_layer, n_embd=n_embd, n_embd_out=n_embd_out,
        n_vocab=n_vocab, n_ctx_train=n_ctx_train, n_head0=n_head0,
        head_k_full=head_k_full, head_v_full=head_v_full, head_k_swa=head_k_swa, head_v_swa=head_v_swa,
        is_mla=is_mla, n_swa=n_swa, swa_enabled=swa_enabled and known,
        n_expert=m.int("expert_count"), n_expert_used=max(m.per_layer("expert_used_count", n_layer_all, 0) or [0]),
        n_embd_r=n_embd_r, n_embd_s=n_embd_s, indexer_head_size=indexer_head_size,
        ssm_d_inner=m.int("ssm.inner_size"), n_deepstack=m.int("n_deepstack_layers"),
        causal=bool(meta.get(f"{arch}.attention.causal", True)), known_graph=known,
        layers=layers, nonrepeating=nonrep, input_names=input_names, output_names=output_names,
        layer0_names=layer0_names, per_device_names=per_device_names, tied_output=tied,
        total_file_tensor_bytes=h.tensor_bytes, skipped_bytes=skipped,
        warnings=warnings, approximate=approximate,
    )


def _check_geometry(arch: str, layers: list[LayerFacts], n_embd_r: int, n_embd_s: int, n_vocab: int,
                    n_embd: int, n_head0: int, is_mla: bool) -> None:
    """The derived sizes within planner/plausibility.py's MAX_* bounds (each key was checked on
    its own by check_metadata; a product of plausible values can still be absurd), and no
    attention layer whose K (or V) head has 0 dimensions (a KV cache of 0 bytes)."""
    for layer in layers:
        if layer.has_attn_kv and layer.n_head_kv > 0 and (layer.k_width == 0 or (layer.v_width == 0 and not is_mla)):
            which = "key_length" if layer.k_width == 0 else "value_length"
            if n_head0 > 0 and n_embd // n_head0 == 0:
                raise implausible(f"{arch}.embedding_length", n_embd,
                                  f"with {n_head0} query heads and no {arch}.attention.{which}, a head of "
                                  f"{n_embd // n_head0} dimensions: layer {layer.index} would hold no KV cache")
            raise implausible(f"{arch}.attention.{which}", f"absent (layer {layer.index})",
                              "a K/V head of 0 dimensions: an attention layer would hold no KV cache")
    for layer in layers:
        check_width(f"layer {layer.index} K width (key_length x head_count_kv)", layer.k_width,
                    MAX_KV_WIDTH, MAX_KV_WIDTH_REASON)
        check_width(f"layer {layer.index} V width (value_length x head_count_kv)", layer.v_width,
                    MAX_KV_WIDTH, MAX_KV_WIDTH_REASON)
    check_width(f"{arch} recurrent conv/shift state width", n_embd_r, MAX_STATE_WIDTH, MAX_STATE_WIDTH_REASON)
    check_width(f"{arch} recurrent SSM/WKV state width", n_embd_s, MAX_STATE_WIDTH, MAX_STATE_WIDTH_REASON)
    check_width("vocabulary size (tokenizer.ggml.tokens / token_embd.weight)", n_vocab, MAX_VOCAB, MAX_VOCAB_REASON)


def _recurrent_layers(rule: ArchRule, m: _Meta, n_all: int, n_layer: int,
                      n_head_kv: list[int], n_ff: list[int]) -> list[bool]:
    r = rule.recurrent
    if r == "none":
        return [False] * n_all
    if r in ("all", "all_and_attn"):
        return [True] * n_all  # the recurrent memory only walks the trunk layers (il < n_layer)
    if r == "head_kv_zero":
        return [il < n_layer and n_head_kv[il] == 0 for il in range(n_all)]
    if r == "head_kv_ff_zero":
        return [il < n_layer and n_head_kv[il] == 0 and n_ff[il] == 0 for il in range(n_all)]
    # "interval": attention.recurrent_layers (scalar or per-layer array), else full_attention_interval
    explicit = m.raw("attention.recurrent_layers")
    if isinstance(explicit, list):
        vals = [bool(x) for x in explicit] + [False] * n_all
        return vals[:n_all]
    if explicit is not None and not isinstance(explicit, SkippedArray):
        return [bool(explicit)] * n_all
    interval = m.int("full_attention_interval", rule.recurrent_interval_default) or rule.recurrent_interval_default
    return [il < n_layer and (il + 1) % interval != 0 for il in range(n_all)]


def _swa_layers(rule: ArchRule, m: _Meta, n_all: int, n_layer: int, is_recr: list[bool],
                warnings: list[str]) -> tuple[int, bool, list[bool]]:
    none = (0, False, [False] * n_all)
    s = rule.swa
    if s is None:
        return none
    window_present = m.has("attention.sliding_window")
    window = m.int("attention.sliding_window", s.default_window or 0)
    gate = s.gate
    if gate == "never":
        return none
    if gate == "window>0" and not (window_present and window > 0):
        return none
    if gate == "not-window-0" and window_present and window == 0:
        return none
    if gate == "n_layer==64" and n_layer != 64:
        return none
    if s.forced_window is not None:
        window = s.forced_window
    if s.swa_is_not_recurrent:
        flags = [il < n_layer and not is_recr[il] for il in range(n_all)]
        return window, True, flags
    pattern_val = m.raw("attention.sliding_window_pattern")
    if isinstance(pattern_val, list):
        flags = [bool(x) for x in pattern_val] + [False] * n_all
        return window, True, flags[:n_all]
    if s.pattern is None:
        warnings.append(f"'{m.arch}.attention.sliding_window_pattern' (per-layer array) is missing: "
                        "all layers treated as full attention")
        return 0, False, [False] * n_all
    n_pattern = s.pattern
    if pattern_val is not None and not isinstance(pattern_val, SkippedArray):
        try:
            n_pattern = int(pattern_val)
        except (TypeError, ValueError):
            pass
    flags = []
    for il in range(n_all):
        if il >= n_layer:
            flags.append(False)
        elif n_pattern == 0:
            flags.append(True)
        elif s.dense_first:
            flags.append(il % n_pattern != 0)
        else:
            flags.append(il % n_pattern < n_pattern - 1)
    return window, True, flags


def _attention_kv_layers(rule: ArchRule, n_all: int, n_layer: int, n_nextn: int, is_recr: list[bool],
                         n_ff: list[int], kv_from_start: int) -> list[bool]:
    if rule.no_kv or rule.recurrent == "all":
        return [False] * n_all
    out = []
    for il in range(n_all):
        ok = True
        if kv_from_start >= 0 and il >= kv_from_start:
            ok = False  # reuses an earlier layer's KV (llama-hparams has_kv)
        if rule.recurrent != "none":
            if rule.attn_filter == "all":
                pass
            elif rule.attn_filter == "not_recurrent_no_ff":
                ok = ok and not is_recr[il] and n_ff[il] == 0
            else:
                ok = ok and not is_recr[il]
            if rule.recurrent == "interval":
                ok = ok and il < n_layer
        if n_nextn > 0 and n_layer > 0 and il >= n_layer:
            ok = False  # the trunk context never attends the nextn (MTP) layers
        out.append(ok)
    return out


def _recurrent_widths(m: _Meta, n_embd: int, n_head0: int, head_k_full: int) -> tuple[int, int]:
    wkv = m.int("wkv.head_size")
    l_cache = m.int("shortconv.l_cache")
    kda = m.int("kda.head_dim")
    d_conv = m.int("ssm.conv_kernel")
    d_inner = m.int("ssm.inner_size")
    d_state = m.int("ssm.state_size")
    n_group = m.int("ssm.group_count")
    # n_embd_r
    if wkv:
        r = m.int("token_shift_count", 2) * n_embd
    elif l_cache:
        r = n_embd * (l_cache - 1)
    elif kda:
        r = 3 * (d_conv - 1 if d_conv > 0 else 3) * n_head0 * kda
    else:
        r = (d_conv - 1 if d_conv > 0 else 0) * (d_inner + 2 * n_group * d_state)
    # n_embd_s
    la = head_k_full if m.arch == "minimax-01" else 0
    if wkv:
        s = n_embd * wkv
    elif kda:
        s = kda * kda * n_head0
    elif la:
        s = la * la * n_head0
    else:
        s = d_state * d_inner
    return r, s
