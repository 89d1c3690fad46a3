"""Memory against context for every quant on the recommended configuration: the data behind the
HTML report's chart (planner/report/html.py draws it and computes nothing).

Why a separate pass: the search sizes each quant at the requested context only, and its longest
contexts over every configuration. Choosing a BIOS split is reading, for one split, where each
quant's memory crosses the carve-out, the shared window and the OS reserve as the context grows.
So each quant is estimated again at a few contexts up to the training context, fully on the GPU
with the recommended KV type, and placed on that one configuration by the same fit solver. The
contexts where a quant leaves fast memory or stops loading are found with the solver's own search
(planner.fit.last_fitting) and sampled on both sides, so the line changes style exactly there.
A text or JSON plan never runs this (PlanRequest.ctx_chart).
"""

from __future__ import annotations

from typing import Callable

from .errors import EstimateError
from .fit import FitConfig, FitResult, last_fitting
from .plan_types import ChartLimit, CtxChart, CtxCurve, CtxPoint, PlanVariant
from .search import CTX_STEP, DeviceSetup, Search, fast_slack, placement
from .units import fmt_bios_size, fmt_bytes

GRID_POINTS = 10  # evenly spaced contexts up to the upper end, besides the exact transitions
UNKNOWN_TRAIN_CTX = 131072  # the upper end when the model does not state its training context (as Search)
MIN_SPAN = 32768  # the chart runs at least this far (or to the training context)
SPAN_STEP = 4096


def sample_contexts(ctx: int, upper: int, n: int = GRID_POINTS) -> list[int]:
    """The smallest context (one KV step), n evenly spaced contexts up to `upper`, and the
    requested one; multiples of the KV step (llama.cpp pads the cache to it), ascending."""
    upper = max(CTX_STEP, upper // CTX_STEP * CTX_STEP)
    grid = {CTX_STEP, upper, ctx}
    grid |= {max(CTX_STEP, round(upper * i / n / CTX_STEP) * CTX_STEP) for i in range(1, n)}
    return sorted(grid)


def _point(fit: FitResult, ctx: int) -> CtxPoint:
    pl = placement(fit)
    return CtxPoint(ctx=ctx, gpu_bytes=fit.gpu_need_bytes, host_bytes=fit.host_need_bytes,
                    safety_bytes=fit.safety_bytes, placement="none" if pl in ("none", "partial") else pl)


def _slower_class(fit: FitResult) -> bool:
    """Whether part of the GPU's memory is slower (Windows shared GPU memory beyond the carve-out)."""
    return fit.spills_slowly


Edges = tuple[int | None, int | None]  # (longest context that loads, longest in fast memory)


class _Quant:
    """One quant fully on the GPU on one configuration, at any context (estimates cached by Search)."""

    def __init__(self, search: Search, dev: DeviceSetup, v: PlanVariant, cfg: FitConfig, ctk: str, ctv: str) -> None:
        self.search, self.dev, self.v, self.cfg, self.ctk, self.ctv = search, dev, v, cfg, ctk, ctv

    def fit_at(self, c: int) -> FitResult:
        bd = self.search.breakdown(self.v, ctx=c, backend=self.dev.est_backend, ctk=self.ctk, ctv=self.ctv,
                                   mmap=self.dev.base.mmap)
        return self.search.place(bd, self.v, self.dev, self.cfg)

    def edges(self, top: int) -> Edges:
        """Where it stops loading and where it leaves fast memory, found as the search finds a
        quant's longest context (planner.fit.last_fitting over the same slack)."""
        fits = last_fitting(lambda c: self.fit_at(c).slack_bytes, CTX_STEP, top, CTX_STEP)
        fast = fits
        if fits and _slower_class(self.fit_at(CTX_STEP)):
            fast = last_fitting(lambda c: fast_slack(self.fit_at(c)), CTX_STEP, fits, CTX_STEP)
        return fits, fast

    def curve(self, ctx: int, upper: int, edges: Edges) -> CtxCurve:
        """The grid contexts, and both sides of each edge, so the line changes style exactly there."""
        contexts = set(sample_contexts(ctx, upper))
        top = max(contexts)
        for edge in edges:
            if edge:
                contexts |= {edge, min(top, edge + CTX_STEP)}
        points = [_point(self.fit_at(c), c) for c in sorted(contexts)]
        return CtxCurve(quant=self.v.quant, points=points, fits_until_ctx=edges[0], fast_until_ctx=edges[1],
                        stop=self._stop(points))

    def _stop(self, points: list[CtxPoint]) -> str | None:
        """The check that gives first past the last context that loads: not always a line of the
        chart (Windows' load staging)."""
        past = next((p.ctx for p in points if p.placement == "none"), None)
        if past is None:
            return None
        blocker = self.fit_at(past).first_blocker
        return blocker.name if blocker else None


def chart_upper(ctx: int, full: int, longest: int) -> int:
    """The context the chart runs to: the training context, or a quarter past the longest context
    any quant loads at (at least twice the requested context and 32k), whichever is shorter. A
    model trained for 10M tokens would otherwise squeeze every decision into the first pixels."""
    want = max(2 * ctx, MIN_SPAN, longest + longest // 4)
    want = -(-want // SPAN_STEP) * SPAN_STEP
    return max(ctx, min(full, want))


def _desk(r: FitResult) -> str:
    return f", after the {fmt_bytes(r.gpu_reserve_bytes, digits=1)} the desktop holds" if r.gpu_reserve_bytes else ""


def _os_reserve(r: FitResult, os_line: int) -> ChartLimit:
    return ChartLimit(kind="os_reserve", label=f"OS under its {fmt_bytes(r.reserve_bytes, digits=0)} reserve",
                      bytes=os_line)


def _carveout_limits(r: FitResult) -> list[ChartLimit]:
    """The end of the carve-out where a slower window follows it, all the GPU may use, and the OS
    reserve (the GPU side fills the carve-out before it takes RAM from the OS)."""
    dedicated = next((p.capacity_bytes for p in r.pools if p.name == "dedicated"), 0)
    shared = next((p.label for p in r.pools if p.name == "shared"), "shared memory")
    carve = fmt_bios_size(r.carveout_bytes)
    if _slower_class(r):
        out = [ChartLimit(kind="fast", label=f"carve-out {carve}: full speed{_desk(r)}", bytes=r.fast_capacity_bytes),
               ChartLimit(kind="gpu", label=f"GPU max: carve-out + {r.spill_label or shared} "
                                            f"({r.shared_slowdown:.1f}x slower)", bytes=r.gpu_capacity_bytes)]
    else:
        out = [ChartLimit(kind="gpu", label=f"GPU max: carve-out {carve} + {shared}{_desk(r)}", bytes=r.gpu_capacity_bytes)]
    return out + [_os_reserve(r, max(r.gpu_need_bytes + r.safety_bytes, dedicated) + r.os_free_bytes)]


def _unified_limits(r: FitResult) -> list[ChartLimit]:
    return [ChartLimit(kind="gpu", label=f"{r.fast_label or 'GPU limit'}{_desk(r)}", bytes=r.gpu_capacity_bytes),
            _os_reserve(r, r.gpu_need_bytes + r.safety_bytes + r.os_free_bytes)]


def _card_limits(r: FitResult) -> list[ChartLimit]:
    """A card: system RAM holds only the CPU side, so the OS reserve is no line on this chart."""
    return [ChartLimit(kind="gpu", label=f"VRAM{_desk(r)}", bytes=r.gpu_capacity_bytes)]


LIMITS: dict[str, Callable[[FitResult], list[ChartLimit]]] = {
    "carveout": _carveout_limits,
    "unified": _unified_limits,
    "discrete": _card_limits,
}


def limits(search: Search, dev: DeviceSetup, v: PlanVariant, cfg: FitConfig, *, ctx: int, ctk: str,
           ctv: str) -> list[ChartLimit]:
    """The lines the GPU side (with its safety) meets on this configuration: the end of fast memory
    where a slower class follows it, all the GPU may use, and, where the GPU's memory is RAM the OS
    would otherwise have, the point where the OS falls under its reserve (with the CPU side of the
    recommended quant at the requested context)."""
    bd = search.breakdown(v, ctx=ctx, backend=dev.est_backend, ctk=ctk, ctv=ctv, mmap=dev.base.mmap)
    r = search.place(bd, v, dev, cfg)
    return LIMITS[r.memory_architecture](r)


def _charted(q: _Quant, full: int) -> tuple[_Quant, Edges] | None:
    """A quant with its edges, or None for a KV type its heads refuse (no line rather than no report)."""
    try:
        return q, q.edges(full)
    except EstimateError:
        return None


def ctx_chart(search: Search, dev: DeviceSetup, basis: FitResult, *, ctx: int, ctk: str, ctv: str,
              recommended: str | None) -> CtxChart:
    """Every quant on the configuration of `basis` (the recommendation's split and GPU cap)."""
    cfg = basis.config
    full = max(ctx, (search.n_ctx_train or UNKNOWN_TRAIN_CTX) * search.req.n_parallel)
    full = -(-full // CTX_STEP) * CTX_STEP
    quants = [q for v in search.model.variants if (q := _charted(_Quant(search, dev, v, cfg, ctk, ctv), full))]
    upper = chart_upper(ctx, full, max((e[0] or 0 for _, e in quants), default=0))
    curves = [q.curve(ctx, upper, e).model_copy(update={"recommended": q.v.quant == recommended}) for q, e in quants]
    ref = next((v for v in search.model.variants if v.quant == recommended), search.model.variants[0])
    return CtxChart(carveout_bytes=basis.carveout_bytes, gpu_cap_bytes=basis.gpu_cap_bytes, cache_type_k=ctk,
                    cache_type_v=ctv, ctx=ctx, ctx_train=search.n_ctx_train,
                    limits=limits(search, dev, ref, cfg, ctx=ctx, ctk=ctk, ctv=ctv), curves=curves)
