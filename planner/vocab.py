"""memfit's vocabulary, once: KV cache types, flash-attention modes, backends (and the one fallback table for backends the
estimator sizes like another), the MoE expert-tensor pattern, and each rule that ties two flags
together. Click choices, pydantic Literals and launch spellings derive from here; nothing else
spells them out (gguf-py's constants.py is the model: one table per concept)."""

from __future__ import annotations

import re
from typing import Literal, get_args

# --------------------------------------------------------------------------- KV cache types

# llama.cpp common/arg.cpp kv_cache_types (b11434): the types -ctk/-ctv accept
CacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]
CACHE_TYPES: tuple[str, ...] = get_args(CacheType)
FULL_PRECISION_CACHE = frozenset({"f32", "f16", "bf16"})
QUANTIZED_CACHE = frozenset(CACHE_TYPES) - FULL_PRECISION_CACHE
QUANTIZED_KV: CacheType = "q8_0"  # the quantized cache the planner weighs when f16 does not fit
# LM Studio's spelling of the same types in its K/V Cache Quantization Type settings
LMSTUDIO_CACHE_NAMES: dict[str, str] = {t: t.upper() for t in CACHE_TYPES}


# llama.cpp's -fa/--flash-attn values (common/arg.cpp): auto lets llama_context probe the device
FlashAttn = Literal["on", "off", "auto"]
FLASH_ATTN_MODES: tuple[str, ...] = get_args(FlashAttn)


def is_quantized_cache(cache_type: str) -> bool:
    return cache_type in QUANTIZED_CACHE


def v_cache_needs_flash_attn(cache_type_v: str) -> bool:
    """llama.cpp refuses a quantized V cache without flash attention (llama-context.cpp:
    "V cache quantization requires flash_attn")."""
    return cache_type_v not in FULL_PRECISION_CACHE


def v_cache_conflict(cache_type_v: str, flash_attn: str) -> str | None:
    """The one-line reason a V cache type and a flash-attention setting cannot go together, or None."""
    if v_cache_needs_flash_attn(cache_type_v) and flash_attn == "off":
        return f"a {cache_type_v} V cache needs flash attention: drop -fa off or use -ctv f16"
    return None


# --------------------------------------------------------------------------- backends

Backend = Literal["cpu", "cuda", "rocm", "vulkan", "metal", "sycl"]  # what a device profile may list
BACKENDS: tuple[str, ...] = get_args(Backend)
EstimatorBackend = Literal["cpu", "cuda", "rocm", "vulkan", "metal"]  # what the estimator sizes
ESTIMATOR_BACKENDS: tuple[str, ...] = get_args(EstimatorBackend)
# backends whose buffers the estimator sizes like another's: SYCL (Intel) allocates as Vulkan does
BACKEND_FALLBACK: dict[str, str] = {"sycl": "vulkan"}


def estimator_backend(name: str) -> str:
    """The backend whose buffer rules size `name` ('vulkan (amdvlk)' -> 'vulkan', sycl -> vulkan)."""
    base = name.split(" ", 1)[0].strip().lower()
    base = BACKEND_FALLBACK.get(base, base)
    return base if base in ESTIMATOR_BACKENDS else "vulkan"


# --------------------------------------------------------------------------- tensors

# routed MoE expert tensors (ffn_up_exps, ffn_gate_up_exps, ffn_down_chexps...), not the shared
# expert (*_shexp, always active): llama.cpp's --n-cpu-moe pattern (common/common.cpp
# "\.ffn_(up|down|gate|gate_up)_(ch|)exps")
EXPERT_TENSOR_PATTERN = r"\.ffn_(up|down|gate|gate_up)_(ch|)exps"
EXPERT_TENSOR_RE = re.compile(EXPERT_TENSOR_PATTERN)


def is_expert_tensor(name: str) -> bool:
    return EXPERT_TENSOR_RE.search(name) is not None
