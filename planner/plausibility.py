"""Plausibility of the header values memfit computes with: one table, each bound with its reason.

A GGUF header is parsed faithfully by planner/reader.py, but a parse says nothing about whether
the numbers in it can describe a real model. A head count of -8, a key length of 2^31 or a
training context stored as a float infinity parse fine and then make the estimator print
"KV cache 0.00 GiB" or millions of GiB. Every metadata value the estimator, the planner or
`inspect` reads is checked here first, against bounds that real models do not come near:
each bound is the largest value in a released model times a generous headroom (or a hard limit
of llama.cpp b11434 itself), so no real file is refused and no absurd number gets through.

An implausible value is a `GGUFError` of one line naming the key and the value. The checks are
total: whatever Python value the reader produced (float, string, bool, list, nested list,
SkippedArray), the outcome is "plausible" or that one-line error, never another exception.

Where the checks run: `check_metadata()` on every model and projector the resolver loads (so
`inspect`, `estimate` and `plan` all see checked headers) and again in
`ModelFacts.from_headers`; the relations that need an architecture's rules (a K/V head count of
0 is legal only where the architecture marks recurrent layers that way) and the derived sizes
(`check_derived`) are applied by planner/model_facts.py with the bounds below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .archs import is_known_architecture, rule_for
from .errors import GGUFError
from .header import Metadata, MetaValue, SkippedArray
from .units import one_line

# llama.cpp b11434, src/llama-hparams.h
LLAMA_MAX_LAYERS = 512
LLAMA_MAX_EXPERTS = 1024

_HINT = ("the file is damaged or was written by a broken converter: download it again or convert "
         "the model with a current llama.cpp (convert_hf_to_gguf.py)")


@dataclass(frozen=True)
class Bound:
    """`{arch}.{key}` (or the full key for `clip.*`) must be an integer in [lo, hi].

    per_layer: llama.cpp reads the key with get_key_or_arr, so it may also be an array of
    exactly block_count integers (each in [lo, hi]).
    bool_array: a per-layer array may hold booleans (flags), as llama.cpp accepts for these keys.
    exact_length: the array must have exactly block_count entries (llama.cpp's get_key_or_arr);
    False for keys llama.cpp reads with get_arr (any length up to LLAMA_MAX_LAYERS).
    """

    key: str
    lo: int
    hi: int
    reason: str
    per_layer: bool = False
    bool_array: bool = False
    exact_length: bool = True


_CTX_MAX = 1 << 27  # 134,217,728 tokens

# The table. Keys are relative to the architecture (`llama.context_length` -> "context_length")
# except the vision projector's `clip.*` keys, which are written out in full.
BOUNDS: tuple[Bound, ...] = (
    # --- shape of the transformer ---------------------------------------------------------------
    Bound("block_count", 1, LLAMA_MAX_LAYERS,
          "llama.cpp's own limit LLAMA_MAX_LAYERS (it asserts 0 < block_count <= 512); the deepest "
          "released models have 126 layers (Llama-3.1-405B)"),
    Bound("context_length", 1, _CTX_MAX,
          "the longest trained context of a released model is 10,485,760 tokens (Llama 4 Scout); "
          "12.8x headroom"),
    Bound("embedding_length", 1, 1 << 17,
          "the widest released model has 16,384 (Llama-3.1-405B); 8x headroom"),
    Bound("embedding_length_out", 0, 1 << 17, "as embedding_length"),
    Bound("feed_forward_length", 0, 1 << 20,
          "the largest FFN width is 53,248 (Llama-3.1-405B); ~20x headroom; 0 = a layer without "
          "an FFN (hybrid models)", per_layer=True),
    Bound("vocab_size", 0, 1 << 23,
          "the largest vocabularies have about 262k tokens (Gemma 3); 32x headroom"),
    # --- attention ------------------------------------------------------------------------------
    Bound("attention.head_count", 0, 1024,
          "the most query heads in a released model is 128 (DeepSeek-V3, Llama-3.1-405B); 8x "
          "headroom; 0 = a layer without attention (recurrent)", per_layer=True),
    Bound("attention.head_count_kv", 0, 1024,
          "never more than attention.head_count (at most 1024); 0 only on layers without "
          "attention", per_layer=True),
    Bound("attention.key_length", 1, 4096,
          "the widest K head is 576 (DeepSeek MLA: 512 latent + 64 RoPE); ~7x headroom"),
    Bound("attention.value_length", 1, 4096, "as attention.key_length (widest V head: 512)"),
    Bound("attention.key_length_swa", 1, 4096, "as attention.key_length"),
    Bound("attention.value_length_swa", 1, 4096, "as attention.value_length"),
    Bound("attention.key_length_mla", 1, 4096, "DeepSeek's MLA K head is 192 (128 + 64 RoPE); 21x headroom"),
    Bound("attention.value_length_mla", 1, 4096, "DeepSeek's MLA V head is 128; 32x headroom"),
    Bound("attention.kv_lora_rank", 0, 1 << 16, "DeepSeek-V3's latent KV rank is 512; 128x headroom"),
    Bound("attention.q_lora_rank", 0, 1 << 16, "DeepSeek-V3's query rank is 1,536; 42x headroom"),
    Bound("attention.indexer.key_length", 0, 4096, "DeepSeek-V3.2's lightning indexer uses 128; 32x headroom"),
    Bound("attention.sliding_window", 0, _CTX_MAX,
          "a window is never longer than the longest context (as context_length); 0 = no window"),
    Bound("attention.sliding_window_pattern", 0, LLAMA_MAX_LAYERS,
          "a period of layers (Gemma 3: 6) or one flag per layer; at most LLAMA_MAX_LAYERS",
          per_layer=True, bool_array=True, exact_length=False),
    Bound("attention.shared_kv_layers", 0, LLAMA_MAX_LAYERS, "layers reusing earlier KV: at most block_count"),
    Bound("full_attention_interval", 0, LLAMA_MAX_LAYERS, "every n-th layer is attention (Qwen3-Next: 4); at most block_count"),
    Bound("nextn_predict_layers", 0, LLAMA_MAX_LAYERS, "MTP layers are part of block_count (llama.cpp asserts <=)"),
    Bound("n_deepstack_layers", 0, LLAMA_MAX_LAYERS, "Qwen3-VL feeds 3 vision layers; at most block_count"),
    # --- experts --------------------------------------------------------------------------------
    Bound("expert_count", 0, LLAMA_MAX_EXPERTS,
          "llama.cpp's own limit LLAMA_MAX_EXPERTS = 1024 (it asserts expert_count <= 1024)"),
    Bound("expert_used_count", 0, LLAMA_MAX_EXPERTS,
          "at most expert_count (llama.cpp asserts it)", per_layer=True),
    Bound("expert_shared_count", 0, LLAMA_MAX_EXPERTS, "shared experts: DeepSeek-V3 has 1, Qwen2-MoE 1-4"),
    Bound("expert_feed_forward_length", 0, 1 << 20, "as feed_forward_length", per_layer=True),
    # --- recurrent state ------------------------------------------------------------------------
    Bound("ssm.conv_kernel", 0, 1024, "Mamba's causal convolution is 4 wide; 256x headroom"),
    Bound("ssm.inner_size", 0, 1 << 18,
          "released SSMs use inner sizes of 2x the embedding, at most about 16,384; 16x headroom"),
    Bound("ssm.state_size", 0, 4096, "released SSMs use states of 16 (Mamba) to 256 (Mamba-2 hybrids); 16x headroom"),
    Bound("ssm.group_count", 0, 1024, "Mamba-2 models use 1-8 groups; 128x headroom"),
    Bound("ssm.time_step_rank", 0, 1 << 17, "Mamba uses embedding_length / 16 (at most a few hundred)"),
    Bound("wkv.head_size", 0, 4096, "RWKV's WKV heads are 64 wide; 64x headroom"),
    Bound("token_shift_count", 0, 64, "RWKV shifts 1-2 tokens"),
    Bound("shortconv.l_cache", 0, 1024, "LFM2's short convolution caches 3 tokens"),
    Bound("kda.head_dim", 0, 4096, "Kimi Linear's delta-attention heads are 128 wide; 32x headroom"),
    # --- vision projector (mmproj): the keys the projector estimate reads ----------------------
    Bound("clip.vision.embedding_length", 0, 1 << 15, "the widest vision encoder is 3,200 (InternViT-6B); 10x headroom"),
    Bound("clip.vision.feed_forward_length", 0, 1 << 17, "InternViT-6B's FFN is 12,800; 10x headroom"),
    Bound("clip.vision.attention.head_count", 0, 1024, "vision encoders use 12-32 heads (InternViT-6B: 25)"),
    Bound("clip.vision.block_count", 0, LLAMA_MAX_LAYERS, "vision encoders have 24-48 layers"),
    Bound("clip.vision.patch_size", 0, 1024, "patches are 14-16 pixels; 0 = the projector default"),
    Bound("clip.vision.image_size", 0, 1 << 15, "projectors take inputs of 224 to about 1,500 pixels a side; ~20x headroom"),
    Bound("clip.vision.spatial_merge_size", 0, 64, "projectors merge 2x2 or 4x4 patches"),
    Bound("clip.vision.projector.scale_factor", 0, 64, "projectors merge 2x2 or 4x4 patches"),
)

# Derived sizes (checked by planner/model_facts.py once per-layer geometry is known).
MAX_KV_WIDTH = 1 << 17
MAX_KV_WIDTH_REASON = ("a layer's K or V row per token (key_length x head_count_kv) is at most 16,384 "
                       "in released models (full multi-head attention, 128 x 128); 8x headroom")
MAX_STATE_WIDTH = 1 << 26
MAX_STATE_WIDTH_REASON = ("a recurrent layer's state per sequence is at most about 4 million floats "
                          "(Mamba-2 class: inner 16,384 x state 256); 16x headroom")
MAX_VOCAB = 1 << 23
MAX_VOCAB_REASON = "the largest vocabularies have about 262k tokens (Gemma 3); 32x headroom"
MAX_PATCHES_PER_SIDE = 1024
MAX_PATCHES_REASON = ("image_size / patch_size is about 100 patches per side at most in released "
                      "projectors; 10x headroom")

# Relations between keys (also checked here or in model_facts, each with its reason).
RELATIONS: tuple[tuple[str, str], ...] = (
    ("per-layer arrays have exactly block_count entries",
     "llama.cpp refuses any other length ('wrong array length')"),
    ("head_count_kv <= head_count on every layer with attention",
     "grouped-query attention shares each K/V head among query heads; no model has more K/V heads"),
    ("head_count_kv > 0 on layers with attention, unless the architecture marks recurrent layers "
     "by head_count_kv = 0 (Jamba, LFM2, Granite-H, Nemotron-H...)",
     "an attention layer without K/V heads would price its KV cache at 0 bytes"),
    ("expert_used_count <= expert_count; > 0 when expert_count > 0; 0 when there are no experts",
     "llama.cpp asserts all three"),
    ("nextn_predict_layers <= block_count", "llama.cpp asserts it"),
    ("K/V width per layer <= 131,072", MAX_KV_WIDTH_REASON),
    ("recurrent state width <= 67,108,864 floats", MAX_STATE_WIDTH_REASON),
    ("vocabulary <= 8,388,608 tokens", MAX_VOCAB_REASON),
    ("image_size / patch_size <= 1024", MAX_PATCHES_REASON),
)


# ---------------------------------------------------------------------------------- devices
# Bounds of device profiles (profiles/*.toml, --device-file, the user's config dir, --device auto),
# applied by planner/device_schema.py as field constraints. Every number must also be finite: the
# schema refuses inf and nan outright (a bandwidth of inf once printed `Infinity` in --json).


@dataclass(frozen=True)
class DeviceBound:
    field: str
    lo: float  # exclusive when `gt`, else inclusive
    hi: float
    reason: str
    gt: bool = False


DEVICE_BOUNDS: dict[str, DeviceBound] = {b.field: b for b in (
    DeviceBound("ram_bytes", 1 << 30, 1 << 46,
                "at least 1 GiB (the --ram minimum); at most 64 TiB: the largest single-system-image servers "
                "hold 32-48 TB, memfit's largest profile has 256 GB"),
    DeviceBound("vram_bytes", 256 << 20, 1 << 42,
                "at least 256 MiB (the --vram minimum); at most 4 TiB: the largest accelerator holds 288 GB "
                "(B300, MI355X), 15x headroom"),
    DeviceBound("bytes", 0, 1 << 46,
                "any other size in a profile (reserves, caps, carve-outs, live values): never more than RAM "
                "can be (as ram_bytes)"),
    DeviceBound("bandwidth_gbps", 0, 100_000,
                "the fastest memory on one device is ~8,000 GB/s (B200 HBM3e); 12x headroom (the --bandwidth "
                "limit too)", gt=True),
    DeviceBound("gpu_tflops_fp16", 0, 100_000, "the fastest accelerators reach ~2,500 dense FP16 TFLOPS; 40x",
                gt=True),
    DeviceBound("shared_slowdown", 1, 100,
                "measured shared-memory decode slowdowns are below 2x; a factor of 100 is no longer a slowdown"),
)}


# ---------------------------------------------------------------------------------- messages


def show(value: object, limit: int = 60) -> str:
    """A value as it appears in an error line: numbers as numbers, long lists cut short,
    strings from the file made safe for a terminal."""
    if isinstance(value, SkippedArray):
        return f"an array of {value.count} values"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)  # inf, -inf, nan
    if isinstance(value, (list, tuple)):
        return _show_list(value)
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes"
    text = repr(value) if isinstance(value, str) else str(value)
    return one_line(text, limit)


def _show_list(value: list | tuple) -> str:
    inner = ", ".join(show(v, 20) for v in value[:8])
    if len(value) > 8:
        return f"[{inner}, ...] ({len(value)} values)"
    return f"[{inner}]"


def implausible(key: str, value: object, why: str) -> GGUFError:
    """The one-line error for an implausible header value."""
    return GGUFError(f"implausible header value {one_line(key, 80)} = {show(value)}: {why}", hint=_HINT)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bound_text(b: Bound) -> str:
    return f"outside {b.lo:,}..{b.hi:,}: {b.reason}"


# ---------------------------------------------------------------------------------- checks


def _full_key(b: Bound, arch: str | None) -> str | None:
    if b.key.startswith("clip."):
        return b.key
    return f"{arch}.{b.key}" if arch else None


def check_metadata(meta: Metadata, arch: str | None = None) -> None:
    """Raise a one-line GGUFError for the first value in `meta` outside the table (or of the wrong
    type, or a per-layer array of the wrong length). Keys that are absent are not checked: the
    estimator's own defaults apply to them."""
    if arch is None:
        a = meta.get("general.architecture")
        arch = a if isinstance(a, str) and a else None
    n_layer: int | None = None
    for b in BOUNDS:
        key = _full_key(b, arch)
        if key is not None and key in meta:
            n_layer = _check_value(key, meta[key], b, n_layer)
    _check_relations(meta, arch, n_layer)


def _check_value(key: str, value: MetaValue, b: Bound, n_layer: int | None) -> int | None:
    """One key against its bound; returns block_count once it has been read (per-layer arrays
    are checked against it)."""
    if _is_int(value):
        return _check_int(key, value, b, n_layer)
    if b.per_layer and isinstance(value, (list, SkippedArray)):
        _check_array(key, value, b, n_layer)
        return n_layer
    if isinstance(value, bool) and b.bool_array:
        return n_layer  # a single flag where a period is usual: harmless
    raise implausible(key, value, f"{_kind(value)} where llama.cpp expects an integer"
                      + (" or one integer per layer" if b.per_layer else ""))


def _check_int(key: str, value: int, b: Bound, n_layer: int | None) -> int | None:
    if not b.lo <= value <= b.hi:
        raise implausible(key, value, _bound_text(b))
    return value if b.key == "block_count" else n_layer


_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"), (str, "a string"), ((list, SkippedArray), "an array"),
)


def _kind(value: object) -> str:
    if isinstance(value, float):
        return "a float" if math.isfinite(value) else "a non-finite float"
    return next((name for types, name in _KINDS if isinstance(value, types)), f"a {type(value).__name__}")


def _check_array(key: str, value: list | SkippedArray, b: Bound, n_layer: int | None) -> None:
    count = value.count if isinstance(value, SkippedArray) else len(value)
    if b.exact_length and n_layer is not None and count != n_layer:
        raise implausible(key, value, f"an array of {count} values for a per-layer key; llama.cpp wants "
                                      f"exactly block_count = {n_layer}")
    if count > LLAMA_MAX_LAYERS or isinstance(value, SkippedArray):
        raise implausible(key, value, f"a per-layer array longer than LLAMA_MAX_LAYERS ({LLAMA_MAX_LAYERS})")
    for i, x in enumerate(value):
        _check_array_item(f"{key}[{i}]", x, b)


def _check_array_item(key: str, x: MetaValue, b: Bound) -> None:
    if isinstance(x, bool):
        return  # llama.cpp reads a bool array as 0/1 flags
    if not _is_int(x):
        raise implausible(key, x, f"{_kind(x)} where llama.cpp expects an integer")
    if not b.lo <= int(x) <= b.hi:
        raise implausible(key, x, _bound_text(b))


def _per_layer_values(v: MetaValue | None, n: int) -> list[int] | None:
    """A checked per-layer value as one int per layer (None when absent)."""
    if v is None:
        return None
    if isinstance(v, list):
        return [int(x) for x in v]
    return [int(v)] * n


def _check_relations(meta: Metadata, arch: str | None, n_layer: int | None) -> None:
    if not arch:
        return
    _check_kv_heads(meta, arch, n_layer or 1)
    _check_experts(meta, arch, n_layer or 1)
    _check_layer_counts(meta, arch, n_layer)
    _check_patches(meta)


def _check_kv_heads(meta: Metadata, arch: str, n: int) -> None:
    """head_count_kv <= head_count, and > 0 where the layer has attention unless the architecture
    marks its recurrent layers by head_count_kv = 0 (or has no KV cache, or is unknown to memfit)."""
    p = f"{arch}."
    heads = _per_layer_values(meta.get(p + "attention.head_count"), n)
    kv = _per_layer_values(meta.get(p + "attention.head_count_kv"), n)
    if heads is None or kv is None:
        return
    kv_needed = is_known_architecture(arch) and rule_for(arch).requires_kv_heads
    per_layer = isinstance(meta[p + "attention.head_count_kv"], list)
    for il, (h, k) in enumerate(zip(heads, kv)):
        key = p + "attention.head_count_kv" + (f"[{il}]" if per_layer else "")
        _check_layer_kv_heads(key, arch, il, h, k, kv_needed)


def _check_layer_kv_heads(key: str, arch: str, il: int, h: int, k: int, kv_needed: bool) -> None:
    """One layer's K/V heads against its query heads."""
    if h > 0 and k > h:
        raise implausible(key, k, f"more K/V heads than query heads ({h}): " + RELATIONS[1][1])
    if h > 0 and k == 0 and kv_needed:
        raise implausible(key, k, f"layer {il} has {h} query heads and no K/V head in a '{arch}' "
                                  f"model: {RELATIONS[2][1]}")


def _check_experts(meta: Metadata, arch: str, n: int) -> None:
    key = f"{arch}.expert_used_count"
    used = _per_layer_values(meta.get(key), n)
    if used is None:
        return
    top = max(used) if used else 0
    n_expert = meta.get(f"{arch}.expert_count")
    experts = n_expert if _is_int(n_expert) else 0
    if top > experts:
        raise implausible(key, meta[key], f"more experts used per token than the model has (expert_count = "
                                          f"{experts}); llama.cpp refuses it")
    if experts > 0 and top == 0:
        raise implausible(key, meta[key], f"0 experts per token in a model with {experts} experts; llama.cpp "
                                          "refuses it")


# keys that count layers (at most block_count) and what the error says about them
_LAYER_COUNTS: tuple[tuple[str, str], ...] = (
    ("nextn_predict_layers", "more MTP layers than block_count ({n})"),
    ("attention.shared_kv_layers", "more than block_count ({n})"),
    ("n_deepstack_layers", "more than block_count ({n})"),
)


def _check_layer_counts(meta: Metadata, arch: str, n_layer: int | None) -> None:
    if n_layer is None:
        return
    for what, why in _LAYER_COUNTS:
        v = meta.get(f"{arch}.{what}")
        if _is_int(v) and v > n_layer:
            raise implausible(f"{arch}.{what}", v, why.format(n=n_layer))


def _check_patches(meta: Metadata) -> None:
    image = meta.get("clip.vision.image_size")
    patch = meta.get("clip.vision.patch_size")
    if _is_int(image) and _is_int(patch) and patch > 0 and image // patch > MAX_PATCHES_PER_SIDE:
        raise implausible("clip.vision.image_size", image,
                          f"{image // patch} patches of {patch} pixels per side: {MAX_PATCHES_REASON}")


def check_width(key: str, value: int, limit: int, reason: str) -> None:
    """A derived size (K/V width, recurrent state width, vocabulary) within its bound."""
    if not 0 <= value <= limit:
        raise implausible(key, value, f"at most {limit:,} ({reason})")


def table_markdown() -> str:
    """Every bound as markdown (docs/cli.md carries this text; a test keeps the two equal)."""
    return "\n".join(_header_rows() + [""] + _relation_rows() + [""] + _device_rows())


def _header_rows() -> list[str]:
    rows = ["| header key | allowed | why |", "|---|---|---|"]
    for b in BOUNDS:
        key = b.key if b.key.startswith("clip.") else "{arch}." + b.key
        rows.append(f"| `{key}`{' (per layer)' if b.per_layer else ''} | {b.lo:,} .. {b.hi:,} | {b.reason} |")
    return rows


def _relation_rows() -> list[str]:
    return ["| relation | why |", "|---|---|"] + [f"| {what} | {why} |" for what, why in RELATIONS]


def _device_rows() -> list[str]:
    rows = ["| device profile field | allowed | why |", "|---|---|---|"]
    for d in DEVICE_BOUNDS.values():
        fmt = _size_text if d.field.endswith("bytes") else (lambda x: f"{x:,g}")
        lo = f"> {fmt(d.lo)}" if d.gt else fmt(d.lo)
        rows.append(f"| `{d.field}`{' (every size)' if d.field == 'bytes' else ''} | {lo} .. {fmt(d.hi)} | {d.reason} |")
    return rows


def _size_text(n: float) -> str:
    for unit, div in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= div:
            return f"{n / div:g} {unit}"
    return f"{n:g} B"
