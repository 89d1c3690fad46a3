"""llama.cpp's partial offload: when the whole model does not fit on the GPU, the split llama.cpp
can run that keeps the most on it. MoE models first move the experts of the first N layers to the
CPU (--n-cpu-moe N), then whole layers (-ngl N); each probe re-runs the estimator and places the
result with the fit solver (planner/fit.py)."""

from __future__ import annotations

from functools import cache
from typing import Callable

from ...device_schema import DeviceProfile
from ...fit import gpu_slack, last_fitting, place
from ...fit_types import FitConfig, FitResult
from ..base import ALL_LAYERS, EstimateAt


def solve(estimate_at: EstimateAt, profile: DeviceProfile, config: FitConfig, *, n_layer: int, is_moe: bool,
          largest_weight_bytes: int = 0) -> FitResult:
    """Full offload if it fits; else the most GPU-resident partial offload that fits.

    MoE models first keep attention and shared tensors on the GPU and move the experts of the
    first N layers to the CPU (the smallest --n-cpu-moe that fits); if even all experts on the CPU
    do not fit, or the model is dense, whole layers go (the largest -ngl that fits). GPU usage
    grows with -ngl and shrinks with --n-cpu-moe; both are searched with last_fitting, each probe
    re-running the estimator. The host side is checked on the result (fewer GPU layers only add
    host memory, so a host failure there means no split fits).
    """
    @cache
    def at(ngl: int, ncm: int) -> FitResult:  # each split placed once
        return place(estimate_at(ngl, ncm), profile, config, largest_weight_bytes=largest_weight_bytes)

    full = at(ALL_LAYERS, 0)
    if full.fits or config.backend == "cpu" or n_layer <= 0:
        return full
    split = _split(at, n_layer, is_moe)
    return split if split is not None and split.fits else full


def _split(at: Callable[[int, int], FitResult], n_layer: int, is_moe: bool) -> FitResult | None:
    """An MoE's experts first, then its whole layers with every expert on the CPU; a dense model's
    whole layers."""
    if not is_moe:
        return _layer_split(at, n_layer, 0)
    return _expert_split(at, n_layer) or _layer_split(at, n_layer, n_layer)


def _expert_split(at: Callable[[int, int], FitResult], n_layer: int) -> FitResult | None:
    """The fewest layers' experts on the CPU (--n-cpu-moe) that fit; None when even all of them on
    the CPU do not."""
    # x = layers whose experts stay on the GPU; n_cpu_moe = n_layer - x
    x = last_fitting(lambda k: gpu_slack(at(ALL_LAYERS, n_layer - k)), 0, n_layer)
    return at(ALL_LAYERS, n_layer - x) if x is not None else None


def _layer_split(at: Callable[[int, int], FitResult], n_layer: int, moe_cpu: int) -> FitResult | None:
    """The most whole layers on the GPU (-ngl) that fit (every expert on the CPU for an MoE)."""
    ngl = last_fitting(lambda k: gpu_slack(at(k, moe_cpu)), 1, n_layer)
    return at(ngl, moe_cpu) if ngl is not None else None
