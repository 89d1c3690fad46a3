"""A model's hyperparameters as llama.cpp b11434 reads them (llama_model_base::load_hparams,
src/llama-model.cpp): the generic `{arch}.*` keys, scalar or per-layer, with llama.cpp's defaults.

One reader (`ArchKeys`) serves every derivation in planner/model_facts.py, so a key is read the
same way wherever it is used; `read_hparams` turns the keys into the layer counts and widths the
rest of the model facts are computed from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .errors import EstimateError
from .header import Metadata, MetaValue, ModelHeaders, SkippedArray
from .plausibility import LLAMA_MAX_LAYERS
from .tensor_layout import block_index


def _as_int(v: MetaValue | None) -> int | None:
    """A scalar key's integer value; None when absent, an array, or not a number."""
    if v is None or isinstance(v, (list, SkippedArray)):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _fit_length(values: list[int], n: int) -> list[int]:
    """A per-layer array cut or padded with 0 to n layers."""
    return (values + [0] * (n - len(values)))[:n]


class ArchKeys:
    """`{arch}.key` lookups with llama.cpp's scalar-or-array semantics (get_key_or_arr). Arrays
    too large to read are a warning, not an error: the default applies."""

    __slots__ = ("meta", "arch", "warnings")

    def __init__(self, meta: Metadata, arch: str, warnings: list[str]) -> None:
        self.meta = meta
        self.arch = arch
        self.warnings = warnings

    def raw(self, key: str) -> MetaValue | None:
        return self.meta.get(f"{self.arch}.{key}")

    def has(self, key: str) -> bool:
        return f"{self.arch}.{key}" in self.meta

    def int(self, key: str, default: int = 0) -> int:
        value = _as_int(self.raw(key))
        return default if value is None else value

    def per_layer(self, key: str, n: int, default: Sequence[int] | int) -> list[int]:
        v = self.raw(key)
        if isinstance(v, SkippedArray):
            self.warnings.append(f"{self.arch}.{key} is an array too large to read; using the default")
            v = None
        if isinstance(v, list):
            return _fit_length([int(x) for x in v], n)
        scalar = _as_int(v)
        if scalar is not None:
            return [scalar] * n
        return [default] * n if isinstance(default, int) else list(default)


@dataclass(frozen=True)
class Hparams:
    """Layer counts and widths: what every later derivation (layer kinds, tensors, KV widths) needs."""

    n_layer_all: int  # block_count (includes nextn/MTP blocks)
    n_nextn: int  # nextn_predict_layers: MTP blocks at the end, outside the trunk
    n_embd: int
    n_embd_out: int
    n_ctx_train: int
    n_head: list[int]  # per layer
    n_head_kv: list[int]
    n_ff: list[int]
    head_k_full: int
    head_v_full: int
    head_k_swa: int
    head_v_swa: int

    @property
    def n_layer(self) -> int:
        """Trunk layers: the blocks the main model runs (n_layer_all - nextn_predict_layers)."""
        return self.n_layer_all - self.n_nextn

    @property
    def n_head0(self) -> int:
        return self.n_head[0] if self.n_head else 0


def read_hparams(h: ModelHeaders, keys: ArchKeys, known: bool) -> Hparams:
    """The hyperparameters, in the order llama.cpp reads them (the warnings keep that order)."""
    n_all = _layer_count(h, keys, known)
    n_embd = _embedding_length(h, keys, known)
    n_head = keys.per_layer("attention.head_count", n_all, 0)
    n_head_kv = (keys.per_layer("attention.head_count_kv", n_all, n_head)
                 if keys.has("attention.head_count_kv") else list(n_head))
    n_ff = keys.per_layer("feed_forward_length", n_all, 0)
    head_k, head_v = _head_widths(keys, n_embd, n_head[0] if n_head else 0)
    return Hparams(
        n_layer_all=n_all, n_nextn=_nextn_layers(keys, n_all), n_embd=n_embd,
        n_embd_out=keys.int("embedding_length_out") or n_embd, n_ctx_train=keys.int("context_length"),
        n_head=n_head, n_head_kv=n_head_kv, n_ff=n_ff, head_k_full=head_k, head_v_full=head_v,
        head_k_swa=keys.int("attention.key_length_swa", head_k),
        head_v_swa=keys.int("attention.value_length_swa", head_v),
    )


def _layer_count(h: ModelHeaders, keys: ArchKeys, known: bool) -> int:
    """block_count; for an architecture nobody documents its keys for, counted from the tensors."""
    n = keys.int("block_count")
    if not known and n <= 0:
        n = blocks_in_tensors(h)
        if n > 0:
            keys.warnings.append(f"'{keys.arch}.block_count' is missing: {n} layers counted from the blk.N tensors")
    if n <= 0 or n > LLAMA_MAX_LAYERS:
        raise EstimateError(f"'{keys.arch}.block_count' is missing or invalid ({keys.raw('block_count')!r})",
                            hint="the header is incomplete or not a llama.cpp model")
    return n


def _nextn_layers(keys: ArchKeys, n_all: int) -> int:
    n = keys.int("nextn_predict_layers")
    return n if 0 <= n <= n_all else 0


def _embedding_length(h: ModelHeaders, keys: ArchKeys, known: bool) -> int:
    """embedding_length, which llama.cpp requires; for an unknown architecture taken from
    token_embd.weight when the key is missing."""
    n = keys.int("embedding_length")
    if n > 0:
        return n
    if known:
        raise EstimateError(f"'{keys.arch}.embedding_length' is missing (llama.cpp requires it)",
                            hint="the header is incomplete or not a llama.cpp model")
    n = _embedding_width(h)
    if n > 0:
        keys.warnings.append(f"'{keys.arch}.embedding_length' is missing: {n} taken from token_embd.weight")
    return n


def _head_widths(keys: ArchKeys, n_embd: int, n_head0: int) -> tuple[int, int]:
    """(key_length, value_length) of the full-attention layers: n_embd / n_head unless declared."""
    if n_head0 <= 0:
        return 0, 0
    return (keys.int("attention.key_length", n_embd // n_head0),
            keys.int("attention.value_length", n_embd // n_head0))


def blocks_in_tensors(h: ModelHeaders) -> int:
    """1 + the highest blk.N index among the tensors (0 when there are none)."""
    indices = (block_index(t.name) for t in h.tensors)
    return max((i for i in indices if i is not None), default=-1) + 1


def _embedding_width(h: ModelHeaders) -> int:
    t = next((t for t in h.tensors if t.name == "token_embd.weight"), None)
    return int(t.shape[0]) if t is not None and t.shape else 0


def recurrent_state_widths(keys: ArchKeys, hp: Hparams, lightning_attention: bool) -> tuple[int, int]:
    """(n_embd_r, n_embd_s): the f32 conv/shift state and the SSM/WKV state of one sequence per
    recurrent layer (llama-hparams.cpp n_embd_r / n_embd_s)."""
    return _conv_state_width(keys, hp), _ssm_state_width(keys, hp, lightning_attention)


def _conv_state_width(keys: ArchKeys, hp: Hparams) -> int:
    wkv, l_cache, kda = keys.int("wkv.head_size"), keys.int("shortconv.l_cache"), keys.int("kda.head_dim")
    d_conv = keys.int("ssm.conv_kernel")
    if wkv:  # RWKV: token shift
        return keys.int("token_shift_count", 2) * hp.n_embd
    if l_cache:  # LFM2 short convolution
        return hp.n_embd * (l_cache - 1)
    if kda:  # Kimi delta attention: q, k and v convolutions
        return 3 * (d_conv - 1 if d_conv > 0 else 3) * hp.n_head0 * kda
    d_inner, d_state, n_group = keys.int("ssm.inner_size"), keys.int("ssm.state_size"), keys.int("ssm.group_count")
    return (d_conv - 1 if d_conv > 0 else 0) * (d_inner + 2 * n_group * d_state)


def _ssm_state_width(keys: ArchKeys, hp: Hparams, lightning_attention: bool) -> int:
    wkv, kda = keys.int("wkv.head_size"), keys.int("kda.head_dim")
    if wkv:
        return hp.n_embd * wkv
    if kda:
        return kda * kda * hp.n_head0
    if lightning_attention and hp.head_k_full:  # MiniMax-01: a head_k x head_k state per head
        return hp.head_k_full * hp.head_k_full * hp.n_head0
    return keys.int("ssm.state_size") * keys.int("ssm.inner_size")
