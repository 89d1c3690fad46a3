"""Memory estimator: ModelFacts + RunSettings -> Breakdown, as llama.cpp b11434 allocates.

Pure functions, no I/O. Exact components (to the byte, validated against llama.cpp's no_alloc dry
run): weights, KV cache, recurrent state, output buffer. Estimated components carry a margin in
Breakdown.estimated: the compute buffers (a fitted model of ggml's graph allocator), the vision
projector's compute buffer, and the backend runtime overhead (reported apart, not in total_bytes).
docs/estimator.md describes every rule with its llama.cpp source.
"""

from __future__ import annotations

from ..estimate_types import Breakdown, DeviceUsage, LayerUsage, RunSettings
from ..header import ModelHeaders
from ..model_facts import ModelFacts
from .compute import ComputeResult, compute_buffers
from .context import BACKENDS, RunContext, resolve
from .kv import KVResult, kv_cache
from .mmproj import MmprojResult, mmproj_usage
from .output import output_buffer
from .overhead import Overhead, runtime_overhead
from .recurrent import RecurrentResult, recurrent_state
from .weights import WeightsResult, weights

__all__ = ["estimate", "resolve", "RunContext", "BACKENDS"]

EXACT = ("weights", "kv", "recurrent", "output")  # to the byte; the rest carries a margin
APPROXIMATE_KV_MARGIN = 0.5  # an architecture whose cache layout memfit sizes only approximately


def estimate(facts: ModelFacts, settings: RunSettings, mmproj: ModelHeaders | None = None) -> Breakdown:
    """What llama.cpp would allocate for this model and these settings, per component and device."""
    ctx = resolve(facts, settings)
    w = weights(facts, ctx, settings)
    kv = kv_cache(facts, ctx)
    rs = recurrent_state(facts, ctx)
    out = output_buffer(facts, ctx)
    comp = compute_buffers(facts, ctx)
    mm = mmproj_usage(mmproj, ctx) if mmproj is not None and settings.with_mmproj else None
    overhead = runtime_overhead(ctx.backend.name, any(ctx.layer_on_gpu) or ctx.output_on_gpu)
    mm_gpu, mm_host = (mm.gpu, mm.host) if mm else (0, 0)
    return Breakdown(
        weights_bytes=w.total,
        kv_bytes=kv.total,
        recurrent_bytes=rs.total,
        compute_bytes=comp.total,
        output_bytes=out,
        mmproj_bytes=mm_gpu + mm_host,
        total_bytes=w.total + kv.total + rs.total + comp.total + out + mm_gpu + mm_host,
        overhead_bytes=overhead.bytes,
        devices=_devices(ctx, w, kv, rs, comp, out, mm, overhead),
        layers=_layers(facts, ctx, w, kv, rs),
        nonrepeating_weights=w.nonrepeating,
        n_ctx=ctx.n_ctx,
        kv_cells=kv.full_cells,
        flash_attn=ctx.flash_attn,
        output_on_gpu=bool(ctx.output_on_gpu and ctx.backend.is_gpu),
        settings=settings,
        exact=list(EXACT) if not facts.approximate else ["weights", "output"],
        estimated=_estimated(facts, comp, mm, overhead),
        warnings=list(facts.warnings) + list(ctx.notes) + list(comp.notes) + (list(mm.notes) if mm else []),
    )


def _estimated(facts: ModelFacts, comp: ComputeResult, mm: MmprojResult | None, overhead: Overhead) -> dict[str, float]:
    """Each estimated component's margin (the cache of an architecture sized approximately too)."""
    estimated = {"compute": comp.margin, **({"mmproj": mm.margin} if mm else {}), "overhead": overhead.margin}
    if facts.approximate:
        estimated |= {"kv": APPROXIMATE_KV_MARGIN, "recurrent": APPROXIMATE_KV_MARGIN}
    return estimated


def _devices(ctx: RunContext, w: WeightsResult, kv: KVResult, rs: RecurrentResult, comp: ComputeResult,
             out: int, mm: MmprojResult | None, overhead: Overhead) -> list[DeviceUsage]:
    """The GPU row (GPU backends) and the host row; the output buffer is always the host's."""
    mm_gpu, mm_host = (mm.gpu, mm.host) if mm else (0, 0)
    host = DeviceUsage(device="host", weights_bytes=w.host, kv_bytes=kv.host, recurrent_bytes=rs.host,
                       compute_bytes=comp.host, output_bytes=out, mmproj_bytes=mm_host,
                       overhead_bytes=overhead.host_bytes + (0 if ctx.backend.is_gpu else overhead.device_bytes))
    if not ctx.backend.is_gpu:
        return [host]
    gpu = DeviceUsage(device="gpu", weights_bytes=w.gpu, kv_bytes=kv.gpu, recurrent_bytes=rs.gpu,
                      compute_bytes=comp.gpu, mmproj_bytes=mm_gpu, overhead_bytes=overhead.device_bytes)
    return [gpu, host]


def _layers(facts: ModelFacts, ctx: RunContext, w: WeightsResult, kv: KVResult, rs: RecurrentResult) -> list[LayerUsage]:
    # LayerUsage(index, weights, expert, kv, recurrent, kind, kv_cells, on_gpu, experts_on_gpu): a slots
    # dataclass built positionally, the hot path of every estimate
    return [LayerUsage(il, wb, eb, (kvl.k_bytes + kvl.v_bytes) if kvl else 0, rb, lf.kind if lf.loaded else "none",
                       kvl.cells if kvl else 0, g, eg)
            for il, (lf, wb, eb, kvl, rb, g, eg) in enumerate(zip(facts.layers, w.per_layer, w.per_layer_expert,
                                                                 kv.per_layer, rs.per_layer, ctx.layer_on_gpu,
                                                                 ctx.experts_on_gpu))]
