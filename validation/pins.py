"""The cases the accuracy pins replay (tests/test_accuracy_pins.py) and validation/compare_builds.py
re-measures with other builds: a representative subset of the CPU harness grid
(validation/run_llamacpp.py), the same subset for both so the builds compare on the pinned cases."""

from __future__ import annotations


def _axis_key(case: dict) -> tuple:
    s = case["settings"]
    return (s["flash_attn"], s["cache_type_k"], s["cache_type_v"], s["n_ubatch"], s["n_parallel"], s["kv_unified"],
            s["swa_full"], s["repack"])


def representative(cases: list[dict]) -> list[dict]:
    """Every distinct combination of the non-context axes once, plus every context at the base
    settings (flash attention on and off): about a dozen to twenty cases per model."""
    chosen, seen_axes, seen_ctx = [], set(), set()
    for c in cases:
        if "error" in c["llama"] or c["settings"].get("set") == "holdout":
            continue
        s = c["settings"]
        ctx_key = (s["n_ctx"], s["flash_attn"])
        base = _axis_key(c)[1:] == ("f16", "f16", 512, 1, False, False, False)
        if _axis_key(c) not in seen_axes or (base and ctx_key not in seen_ctx):
            seen_axes.add(_axis_key(c))
            if base:
                seen_ctx.add(ctx_key)
            chosen.append(c)
    return chosen
