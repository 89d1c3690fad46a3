"""Which layers are recurrent, which slide, which own a KV cache: llama.cpp b11434's per-layer
rules (llama-hparams.cpp is_recr_impl / is_swa_impl / has_kv, llama-model.cpp create_memory)
applied to one model through its architecture's ArchRule (planner/archs.py).

Each rule is its own small function, chosen from a table by the ArchRule's value, so that a new
architecture is a row in planner/archs.py, not a branch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .archs import ArchRule, AttnFilter, RecurrentRule, SwaGate, SwaRule
from .header import SkippedArray
from .hparams import ArchKeys, Hparams

# a DSA model of 1M+ context without attention.indexer.types is sized with an indexer on every layer
_INDEXER_TYPES_EXPECTED_FROM_CTX = 1048576


@dataclass(frozen=True)
class LayerKinds:
    """Per-layer flags (one entry per block, nextn/MTP blocks included) and the sliding window."""

    recurrent: list[bool]
    swa: list[bool]
    attn_kv: list[bool]  # owns K (and V unless MLA) in the attention cache
    indexer_kv: list[bool]  # owns a DSA lightning-indexer K row
    n_swa: int  # the window (0 without SWA)
    swa_enabled: bool


def layer_kinds(rule: ArchRule, keys: ArchKeys, hp: Hparams, indexer_head_size: int) -> LayerKinds:
    recurrent = recurrent_layers(rule, keys, hp)
    n_swa, swa_enabled, swa = swa_layers(rule, keys, hp, recurrent)
    return LayerKinds(recurrent=recurrent, swa=swa, attn_kv=attention_kv_layers(rule, keys, hp, recurrent),
                      indexer_kv=indexer_layers(rule, keys, hp, indexer_head_size),
                      n_swa=n_swa, swa_enabled=swa_enabled)


# --------------------------------------------------------------------------- recurrent layers


def _in_trunk(hp: Hparams) -> list[bool]:
    return [il < hp.n_layer for il in range(hp.n_layer_all)]


def _no_recurrent(keys: ArchKeys, hp: Hparams, interval: int) -> list[bool]:
    return [False] * hp.n_layer_all


def _all_recurrent(keys: ArchKeys, hp: Hparams, interval: int) -> list[bool]:
    return [True] * hp.n_layer_all  # the recurrent memory only walks the trunk layers (il < n_layer)


def _recurrent_where_no_kv_heads(keys: ArchKeys, hp: Hparams, interval: int) -> list[bool]:
    return [trunk and hp.n_head_kv[il] == 0 for il, trunk in enumerate(_in_trunk(hp))]


def _recurrent_where_no_kv_heads_nor_ffn(keys: ArchKeys, hp: Hparams, interval: int) -> list[bool]:
    return [trunk and hp.n_head_kv[il] == 0 and hp.n_ff[il] == 0 for il, trunk in enumerate(_in_trunk(hp))]


def _recurrent_by_interval(keys: ArchKeys, hp: Hparams, interval: int) -> list[bool]:
    """attention.recurrent_layers (scalar or per-layer array), else every full_attention_interval-th
    layer is attention and the others are recurrent."""
    n_all = hp.n_layer_all
    explicit = keys.raw("attention.recurrent_layers")
    if isinstance(explicit, list):
        return _padded_flags(explicit, n_all)
    if explicit is not None and not isinstance(explicit, SkippedArray):
        return [bool(explicit)] * n_all
    every = keys.int("full_attention_interval", interval) or interval
    return [trunk and (il + 1) % every != 0 for il, trunk in enumerate(_in_trunk(hp))]


def _padded_flags(values: list, n_all: int) -> list[bool]:
    """A declared per-layer array as n_all flags (missing layers False, extra entries dropped)."""
    return ([bool(x) for x in values] + [False] * n_all)[:n_all]


_RECURRENT_LAYERS: dict[RecurrentRule, Callable[[ArchKeys, Hparams, int], list[bool]]] = {
    "none": _no_recurrent,
    "all": _all_recurrent,
    "all_and_attn": _all_recurrent,
    "head_kv_zero": _recurrent_where_no_kv_heads,
    "head_kv_ff_zero": _recurrent_where_no_kv_heads_nor_ffn,
    "interval": _recurrent_by_interval,
}


def recurrent_layers(rule: ArchRule, keys: ArchKeys, hp: Hparams) -> list[bool]:
    return _RECURRENT_LAYERS[rule.recurrent](keys, hp, rule.recurrent_interval_default)


# --------------------------------------------------------------------------- sliding window

# when an architecture turns SWA on at all: (sliding_window key present, its value, trunk layers)
_SWA_GATES: dict[SwaGate, Callable[[bool, int, int], bool]] = {
    "always": lambda present, window, n_layer: True,
    "never": lambda present, window, n_layer: False,
    "window>0": lambda present, window, n_layer: present and window > 0,
    "not-window-0": lambda present, window, n_layer: not (present and window == 0),
    "n_layer==64": lambda present, window, n_layer: n_layer == 64,
}


def swa_layers(rule: ArchRule, keys: ArchKeys, hp: Hparams, recurrent: list[bool]) -> tuple[int, bool, list[bool]]:
    """(window, enabled, per-layer SWA flags)."""
    s = rule.swa
    off = (0, False, [False] * hp.n_layer_all)
    if s is None:
        return off
    window = keys.int("attention.sliding_window", s.default_window or 0)
    if not _SWA_GATES[s.gate](keys.has("attention.sliding_window"), window, hp.n_layer):
        return off
    flags = _swa_flags(s, keys, hp, recurrent)
    if flags is None:
        keys.warnings.append(f"'{keys.arch}.attention.sliding_window_pattern' (per-layer array) is missing: "
                             "all layers treated as full attention")
        return off
    return (s.forced_window if s.forced_window is not None else window), True, flags


def _swa_flags(s: SwaRule, keys: ArchKeys, hp: Hparams, recurrent: list[bool]) -> list[bool] | None:
    """Per-layer flags: every attention layer (lfm2), the declared array, or the period's pattern
    (set_swa_pattern); None when the architecture needs the array and the file has none."""
    n_all = hp.n_layer_all
    if s.swa_is_not_recurrent:
        return [trunk and not recurrent[il] for il, trunk in enumerate(_in_trunk(hp))]
    declared = keys.raw("attention.sliding_window_pattern")
    if isinstance(declared, list):
        return _padded_flags(declared, n_all)
    if s.pattern is None:
        return None
    period = keys.int("attention.sliding_window_pattern", s.pattern)
    return [trunk and _slides(il, period, s.dense_first) for il, trunk in enumerate(_in_trunk(hp))]


def _slides(il: int, period: int, dense_first: bool) -> bool:
    """llama-hparams.cpp set_swa_pattern: in each period of n layers one is full attention, the
    first (dense_first) or the last; a period of 0 makes every layer SWA."""
    if period == 0:
        return True
    return il % period != 0 if dense_first else il % period < period - 1


# --------------------------------------------------------------------------- KV-owning layers

# hybrid models: which layers the attention memory keeps (create_memory's filter)
_ATTN_FILTERS: dict[AttnFilter, Callable[[int, Hparams, list[bool]], bool]] = {
    "all": lambda il, hp, recurrent: True,
    "not_recurrent": lambda il, hp, recurrent: not recurrent[il],
    "not_recurrent_no_ff": lambda il, hp, recurrent: not recurrent[il] and hp.n_ff[il] == 0,
}


def attention_kv_layers(rule: ArchRule, keys: ArchKeys, hp: Hparams, recurrent: list[bool]) -> list[bool]:
    if rule.no_kv or rule.recurrent == "all":
        return [False] * hp.n_layer_all
    kv_from_start = rule.kv_from_start(keys.meta, hp.n_layer_all) if rule.kv_from_start else -1
    return [_owns_kv(il, rule, hp, recurrent, kv_from_start) for il in range(hp.n_layer_all)]


def _owns_kv(il: int, rule: ArchRule, hp: Hparams, recurrent: list[bool], kv_from_start: int) -> bool:
    if 0 <= kv_from_start <= il:
        return False  # reuses an earlier layer's KV (llama-hparams has_kv)
    if hp.n_nextn > 0 and hp.n_layer > 0 and il >= hp.n_layer:
        return False  # the trunk context never attends the nextn (MTP) layers
    if rule.recurrent == "none":
        return True
    if rule.recurrent == "interval" and il >= hp.n_layer:
        return False
    return _ATTN_FILTERS[rule.attn_filter](il, hp, recurrent)


def indexer_layers(rule: ArchRule, keys: ArchKeys, hp: Hparams, head_size: int) -> list[bool]:
    """DeepSeek sparse attention: the trunk layers that keep a lightning-indexer K cache."""
    if not (rule.dsa_indexer and head_size > 0):
        return [False] * hp.n_layer_all
    declared = _declared_indexer_layers(rule, keys, hp)
    return [trunk and declared[il] for il, trunk in enumerate(_in_trunk(hp))]


def _declared_indexer_layers(rule: ArchRule, keys: ArchKeys, hp: Hparams) -> list[bool]:
    n_all = hp.n_layer_all
    types = keys.raw("attention.indexer.types")
    if rule.indexer_types and isinstance(types, list):
        return [bool(x) for x in types] + [False] * n_all
    if rule.indexer_types and hp.n_ctx_train >= _INDEXER_TYPES_EXPECTED_FROM_CTX:
        keys.warnings.append(f"{keys.arch} >= 1M context without attention.indexer.types: "
                             "indexer layers assumed on every layer (upper bound)")
    return [True] * n_all
