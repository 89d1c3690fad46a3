"""Contexts past a model's trained length: extend them the way the model's makers document (YaRN
for Qwen), or cap them at the trained length and say why (planner/data/rope_scaling.toml)."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

from . import data as _data
from .header import ModelHeaders


@dataclass(frozen=True)
class ContextPlan:
    ctx: int  # the context to plan (capped when it cannot be extended)
    requested: int
    trained: int | None
    rope_flags: str = ""  # llama.cpp flags that extend the context ("" = none needed)
    factor: float = 0.0
    note: str = ""  # what the plan says about it ("" = within the trained length)
    capped: bool = False


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, Any]]:
    return tomllib.loads(_data.read("rope_scaling.toml").decode("utf-8"))


def _meta_scaling(headers: ModelHeaders) -> tuple[str, float, int] | None:
    arch = headers.architecture
    md = headers.metadata
    kind = md.get(f"{arch}.rope.scaling.type")
    if not kind or str(kind) in ("none", "linear") and not md.get(f"{arch}.rope.scaling.factor"):
        return None
    numbers = _scaling_numbers(md, arch)
    if numbers is None:
        return None
    factor, orig = numbers
    return (str(kind), factor, orig) if factor > 1 else None


def _scaling_numbers(md: Mapping[str, Any], arch: str) -> tuple[float, int] | None:
    """(factor, original context) as declared; None when they are not numbers."""
    try:
        factor = float(md.get(f"{arch}.rope.scaling.factor") or 0)
        orig = int(md.get(f"{arch}.rope.scaling.original_context_length") or 0)
    except (TypeError, ValueError):
        return None
    return factor, orig


def _from_gguf(headers: ModelHeaders, requested: int, trained: int, per_seq: int) -> ContextPlan | None:
    """The GGUF's own rope scaling, when it reaches the request (llama.cpp applies it by itself)."""
    meta = _meta_scaling(headers)
    if meta is None:
        return None
    kind, factor, orig = meta
    if per_seq > (orig or trained) * factor:
        return None
    return ContextPlan(ctx=requested, requested=requested, trained=trained, factor=factor,
                      note=(f"the GGUF carries its own {kind} rope scaling (x{factor:g} over "
                            f"{orig or trained} tokens), which llama.cpp applies by itself"))


def _documented(rule: dict[str, Any], requested: int, trained: int, per_seq: int) -> ContextPlan | None:
    """The scaling the model's makers document (rope_scaling.toml), when it reaches the request."""
    # the documented base length, but never past the GGUF's own (a model trained shorter scales from there)
    orig = min(int(rule.get("orig_ctx", trained)), trained)
    max_factor = float(rule["max_factor"])
    if per_seq > orig * max_factor:
        return None
    factor = float(max(2, math.ceil(per_seq / orig)))
    flags = f"--rope-scaling {rule['method']} --rope-scale {factor:g} --yarn-orig-ctx {orig}"
    return ContextPlan(ctx=requested, requested=requested, trained=trained, rope_flags=flags, factor=factor,
                       note=(f"the launch line adds {rule['method'].upper()} x{factor:g} as the model's makers "
                             f"document ({flags}); they vouch for up to {_words(int(orig * max_factor))}, "
                             f"and short prompts lose a little quality with it on"))


def _capped(rule: dict[str, Any] | None, requested: int, trained: int, n_parallel: int) -> ContextPlan:
    cap = trained * n_parallel
    why = ("the model's makers document no rope scaling for it" if rule is None else
           f"even {rule['method'].upper()} stops at x{float(rule['max_factor']):g}")
    return ContextPlan(ctx=cap, requested=requested, trained=trained, capped=True,
                       note=(f"planned at {_words(cap)} instead: {why}, and answers degrade past the trained "
                             f"length (choose a model trained for longer)"))


def plan_context(headers: ModelHeaders, requested: int, trained: int | None, n_parallel: int) -> ContextPlan:
    """What a request for `requested` tokens (over `n_parallel` sequences) becomes for this model.
    `note` completes the sentence "--ctx N is beyond the model's training context of M tokens: "."""
    if not trained or requested <= trained * n_parallel:
        return ContextPlan(ctx=requested, requested=requested, trained=trained)
    per_seq = -(-requested // n_parallel)
    rule = _table().get(headers.architecture or "")
    extended = _from_gguf(headers, requested, trained, per_seq) or (
        _documented(rule, requested, trained, per_seq) if rule is not None else None)
    return extended or _capped(rule, requested, trained, n_parallel)


def _words(n: int) -> str:
    return f"{n // 1024}k" if n % 1024 == 0 else f"{n:,}"
