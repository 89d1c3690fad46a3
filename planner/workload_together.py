"""`--together`: models loaded at the same time (one llama-server per model, or an app that keeps
several loaded) are one sum in the same pools.

On each candidate setting every model offers the quants (and KV types) the single-model search
places fully on the GPU there. A combination is placed by the fit solver as one breakdown: the
models' buffers added per device, one driver overhead per process (each server has its own
context), the estimate margins of each, one --fit-target for the GPU; loading stages only the
largest model's weights at a time (servers start one after another). The same checks decide (GPU
memory, OS reserve, Windows load path, largest allocation), the same GPU-limit raise rule applies
(Search.place_raising), and the same order ranks: fast memory first, then the requested KV type
(q8_0 only to stay fast), then the most bits per weight over the models, the smallest carve-out,
no limit change. When no
setting holds them all fully on the GPU, they must take turns (the one-at-a-time plan stands).
Speeds are each model's own with the other idle (two decoding at once share the bandwidth).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Literal

from .device_schema import DeviceProfile
from .estimate_types import Breakdown, DeviceUsage, LayerUsage
from .fit import FitResult, place
from .plan import Planner, cap_change, tier_label
from .search import DeviceSetup, Evaluation, largest_gpu_weight_bytes, placement
from .units import GIB, fmt_bytes
from .workload_rank import both, quality_class
from .workload_run import DeviceRun, WorkItem, request_for
from .workload_settings import SettingSpec, make_setting
from .workload_types import ModelAtSetting, ModelRun, Setting, TogetherPlan, TogetherRow

MAX_COMBOS = 20_000  # combinations weighed per setting (the lowest-quality options go first beyond it)
MAX_PLACEMENTS = 400  # combinations placed by the fit solver per setting (the rest fail the additive check)
_COMPONENTS = ("weights", "kv", "recurrent", "compute", "output", "mmproj")
_TOTALS = ("weights_bytes", "kv_bytes", "recurrent_bytes", "compute_bytes", "output_bytes", "mmproj_bytes",
           "total_bytes", "overhead_bytes")
Part = tuple[Breakdown, FitResult]  # one model's breakdown with its placement alone
RowResult = tuple[TogetherRow, "Combo | None", FitResult | None, list[Planner]]


@dataclass
class Option:
    """One quant with one KV type of one model, fully on the GPU on this setting when alone."""

    ev: Evaluation
    r: FitResult
    quality: tuple[float, int]
    requested_kv: bool


@dataclass
class Combo:
    options: tuple[Option, ...]
    result: FitResult | None = None

    def key(self) -> tuple:
        """Best first: the most models with the requested KV type (the single-model policy quantizes
        it only to stay fast), then the most bits per weight, then the larger files."""
        return (sum(o.requested_kv for o in self.options),
                round(sum(max(0.0, o.quality[0]) for o in self.options), 2),
                sum(o.ev.variant.size_bytes for o in self.options))


def _component(b: Breakdown, side: Literal["gpu", "host"], comp: str) -> int:
    return int(getattr(b.device(side), f"{comp}_bytes", 0))


def _summed_side(parts: list[Part], side: Literal["gpu", "host"], overhead: int) -> DeviceUsage:
    return DeviceUsage(device=side, overhead_bytes=overhead,
                       **{f"{c}_bytes": sum(_component(b, side, c) for b, _ in parts) for c in _COMPONENTS})


def _summed_rate(parts: list[Part], comp: str) -> float:
    """One margin rate for a component of the sum: the models' rates weighted by their GPU bytes of
    it, so the GPU side's margin is the sum of each model's."""
    def weight(b: Breakdown, r: FitResult) -> int:
        return r.overhead_bytes if comp == "overhead" else _component(b, "gpu", comp)

    den = sum(weight(b, r) for b, r in parts)
    num = sum(b.estimated.get(comp, 0.0) * weight(b, r) for b, r in parts)
    return num / den if den else max(b.estimated.get(comp, 0.0) for b, _ in parts)


def _summed(parts: list[Part], field: str) -> int:
    return sum(getattr(b, field) for b, _ in parts)


def _rates(parts: list[Part]) -> dict[str, float]:
    return {comp: _summed_rate(parts, comp) for comp in sorted({k for b, _ in parts for k in b.estimated})}


def _layers(parts: list[Part]) -> list[LayerUsage]:
    return [layer for b, _ in parts for layer in b.layers]


def _warnings(parts: list[Part]) -> list[str]:
    return [w for b, _ in parts for w in b.warnings]


def sum_breakdown(parts: list[Part]) -> Breakdown:
    """Several servers' buffers as one breakdown for the fit solver: components added per device,
    each server's driver overhead (as placed alone), margins weighted so the GPU side's margin is the
    sum of each model's."""
    gpu = _summed_side(parts, "gpu", sum(r.overhead_bytes for _, r in parts))
    host = _summed_side(parts, "host", sum(b.device("host").overhead_bytes for b, _ in parts))
    first = parts[0][0]
    breakdowns = [b for b, _ in parts]
    return Breakdown.model_construct(  # summed from validated breakdowns: skip re-validation
        **{f: _summed(parts, f) for f in _TOTALS}, layers=_layers(parts), warnings=_warnings(parts),
        devices=[gpu, host], nonrepeating_weights={},
        n_ctx=max(b.n_ctx for b in breakdowns), kv_cells=max(b.kv_cells for b in breakdowns),
        flash_attn=all(b.flash_attn for b in breakdowns), output_on_gpu=True,
        settings=first.settings.model_copy(update={"n_gpu_layers": -1, "n_cpu_moe": 0}),
        exact=list(first.exact), estimated=_rates(parts),
    )


def _options(planner: Planner, profile: DeviceProfile) -> list[Option]:
    """Every quant with the requested KV type and, unless the user fixed it, with a q8_0 KV cache
    (the single-model rule weighs it before spilling or offloading; a sum needs it more often)."""
    dev = planner.setup(profile)
    evals, alts, ctx, _ = planner.evaluate_device(dev)
    have = {a.quant for a in alts}
    alts += [alt for ev in evals if ev.quant not in have and (alt := planner.alternative(ev, dev, ctx)) is not None]
    req_kv = planner.req.cache_type_k
    out = [Option(ev=ev, r=ev.options[0], quality=quality_class(ev.quant, ev.variant.size_bytes),
                  requested_kv=ev.kv == req_kv) for ev in evals + alts if _alone_on_gpu(ev)]
    out.sort(key=lambda o: (o.quality, o.requested_kv), reverse=True)
    return out


def _alone_on_gpu(ev: Evaluation) -> bool:
    """Fully on the GPU on this setting when alone (the setting's one full-offload placement)."""
    return bool(ev.options) and ev.options[0].fits and ev.options[0].full_offload


def _trim(lists: list[list[Option]]) -> list[list[Option]]:
    """At most MAX_COMBOS combinations: drop the lowest-quality option of the longest list first."""
    lists = [list(x) for x in lists]
    while len(lists) and _product(lists) > MAX_COMBOS:
        longest = max(range(len(lists)), key=lambda i: len(lists[i]))
        if len(lists[longest]) <= 1:
            break
        lists[longest].pop()
    return lists


def _product(lists: list[list[Option]]) -> int:
    n = 1
    for x in lists:
        n *= len(x)
    return n


def place_combo(combo: Combo, planner: Planner, profile: DeviceProfile, carve: int | None) -> FitResult:
    parts = [(o.ev.full, o.r) for o in combo.options]
    bd = sum_breakdown(parts)
    largest = max(largest_gpu_weight_bytes(o.ev.variant.headers) for o in combo.options)
    staged = max(b.device("gpu").weights_bytes + b.device("gpu").mmproj_bytes for b, _ in parts)
    dev = planner.setup(profile)
    return planner.place_raising(
        lambda cfg: place(bd, profile, cfg, largest_weight_bytes=largest, staged_weights_bytes=staged), dev, carve)


def _plausible(lists: list[list[Option]]) -> list[tuple[bool, Combo]]:
    """The combinations whose summed GPU need (with margins and one fit target) passes the largest
    capacity any option saw, each with whether it may stay in fast memory; best first."""
    cap, fast_cap, fit_target = _capacities([o.r for x in lists for o in x])
    needs = [(_summed_need(c), c) for c in itertools.product(*lists)]
    combos = [(need <= fast_cap, Combo(options=c)) for need, c in needs if need + fit_target <= cap]
    combos.sort(key=lambda t: (t[0], t[1].key()), reverse=True)
    return combos


def _capacities(rs: list[FitResult]) -> tuple[int, int, int]:
    """The largest GPU capacity, fast capacity and fit target any option saw."""
    return (max(r.gpu_capacity_bytes for r in rs), max(r.fast_capacity_bytes for r in rs),
            max(r.safety_bytes - r.margin_bytes for r in rs))


def _summed_need(options: tuple[Option, ...]) -> int:
    """A combination's GPU need with each model's margin."""
    return sum(o.r.gpu_need_bytes + o.r.margin_bytes for o in options)


def _closer(r: FitResult, closest: FitResult | None) -> FitResult | None:
    """The nearer miss of two (None: r fits, so it is no miss)."""
    if r.fits:
        return closest
    return r if closest is None or r.shortfall_bytes < closest.shortfall_bytes else closest


def _first_placed(combos: list[tuple[bool, Combo]], planner: Planner, profile: DeviceProfile,
                  carve: int | None) -> tuple[tuple[Combo, FitResult] | None, FitResult | None]:
    """Place the combinations best first (up to MAX_PLACEMENTS): the first all in fast memory, else
    the first that fits at all; and the closest miss."""
    first_fit: tuple[Combo, FitResult] | None = None
    closest: FitResult | None = None
    for maybe_fast, combo in combos[:MAX_PLACEMENTS]:
        if first_fit is not None and not maybe_fast:
            break
        r = place_combo(combo, planner, profile, carve)
        if r.fits and placement(r) == "fast":
            return (combo, r), closest
        if r.fits and first_fit is None:
            first_fit = (combo, r)
        closest = _closer(r, closest)
    return first_fit, closest


def best_combo(per_model: list[list[Option]], planner: Planner, profile: DeviceProfile,
               carve: int | None) -> tuple[Combo | None, FitResult | None]:
    """The best combination on this setting: fast memory first, then quality (Combo.key). Returns
    (combo, its placement), or (None, the closest miss) when nothing fits."""
    lists = _trim(per_model)
    if not all(lists):
        return None, None
    found, closest = _first_placed(_plausible(lists), planner, profile, carve)
    if found is not None:
        return found
    if closest is None:  # nothing passed the additive check: place the smallest combination for its reason
        smallest = Combo(options=tuple(min(x, key=lambda o: o.r.gpu_need_bytes) for x in lists))
        closest = place_combo(smallest, planner, profile, carve)
    return None, closest


def _model_at(item: WorkItem, o: Option, combined: FitResult, planner: Planner, profile: DeviceProfile) -> ModelAtSetting:
    """One model in a combination, with its speed when the sum spills (its bytes spill in proportion)."""
    dev = planner.setup(profile)
    r = o.r.model_copy(update={"shared_fraction": combined.shared_fraction, "shared_slowdown": combined.shared_slowdown})
    return ModelAtSetting(
        label=item.entry.label, quant=o.ev.quant, tier=combined.tier, placement=placement(combined),
        fits=True, cache_type_k=o.ev.kv, cache_type_v=_ctv(planner, o), gpu_bytes=o.r.gpu_need_bytes,
        total_bytes=o.r.total_need_bytes, **_speeds(planner, o, r, dev))


def _speeds(planner: Planner, o: Option, r: FitResult, dev: DeviceSetup) -> dict[str, float | None]:
    """Decode speed at an empty and a full context (unless decode speeds are off) and prefill."""
    bd, v = o.ev.full, o.ev.variant
    decodes = planner.no_decode is None
    s0 = planner.speed(bd, r, dev, 0, v) if decodes else None
    sc = planner.speed(bd, r, dev, bd.n_ctx, v) if decodes else None
    pf = planner.prefill(bd, r, dev, v)
    return {"est_tps": s0.tps if s0 else None, "est_tps_at_ctx": sc.tps if sc else None,
            "est_prefill_tps": pf.tps if pf else None, "est_ttft_s": pf.seconds if pf else None}


def _ctv(planner: Planner, o: Option) -> str:
    return planner.req.cache_type_v if o.ev.kv == planner.req.cache_type_k else o.ev.kv


def _blocked_row(setting: Setting, items: list[WorkItem], per_model: list[list[Option]],
                 r: FitResult | None) -> TogetherRow:
    """A setting that does not hold the models at once: the ones that do not fit even alone, else
    the closest combination's first blocking check."""
    missing = [item.entry.label for item, options in zip(items, per_model) if not options]
    why, short = _not_alone_words(missing) if missing else _blocker_words(r)
    return TogetherRow(setting=setting, fits=False, placement="none", models=[], blocker=why, blocker_short=short)


def _not_alone_words(missing: list[str]) -> tuple[str, str]:
    """(why, short) for models that do not run fully on the GPU even alone."""
    why = f"{', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not run fully on the GPU here even alone"
    return why, "not on the GPU even alone: " + ", ".join(missing)


def _blocker_words(r: FitResult | None) -> tuple[str, str]:
    """(why, short) from the closest combination's first blocking check."""
    blocker = r.first_blocker if r is not None else None
    why = blocker.message if blocker else "does not fit"
    return why, (r.blocker_short if r is not None else "") or "does not fit"


def _row(spec: SettingSpec, items: list[WorkItem], run: DeviceRun, profile: DeviceProfile) -> RowResult:
    planners = [p.for_setting(spec.carveout_bytes, spec.gpu_cap_bytes, search_max_ctx=False) for p in run.planners]
    per_model = [_options(p, profile) for p in planners]
    combo, r = best_combo(per_model, planners[0], profile, spec.carveout_bytes)
    setting = _row_setting(spec, profile, run, combo, r)
    if combo is None or r is None:
        return _blocked_row(setting, items, per_model, r), None, r, planners
    models = [_model_at(items[i], o, r, planners[i], profile) for i, o in enumerate(combo.options)]
    return (TogetherRow(setting=setting, fits=True, placement=placement(r), models=models,
                        gpu_bytes=r.gpu_need_bytes, total_bytes=r.total_need_bytes,
                        fast_spare_bytes=r.fast_spare_bytes, os_free_bytes=r.os_free_bytes),
            combo, r, planners)


def _row_setting(spec: SettingSpec, profile: DeviceProfile, run: DeviceRun, combo: Combo | None,
                 r: FitResult | None) -> Setting:
    """The setting as the best combination found it (the GPU limit it raised, if any)."""
    change = cap_change(r, profile) if r is not None and combo is not None else None
    cap = r.gpu_cap_bytes if r is not None else spec.gpu_cap_bytes
    return make_setting(spec, profile, run.dev.os, change, cap)


def _rank(t: RowResult) -> tuple[bool, bool, int, float, int, int]:
    """Best first: fits, in fast memory, the requested KV type, quality, the smallest carve-out, no limit change."""
    row, combo, _, _ = t
    kv, bits, _ = combo.key() if combo else (0, 0.0, 0)
    return (row.fits, row.placement == "fast", kv, bits, -(row.setting.carveout_bytes or 0),
            0 if row.setting.cap_change else 1)


def _take_turns(rows: list[RowResult], run: DeviceRun, n: int) -> TogetherPlan:
    """No setting holds them all at once: they take turns (the one-at-a-time plan stands)."""
    report = run.report
    where = _closest_words(rows)
    one = f"; one at a time they share {report.chosen.label}" if report.chosen and report.serves_all else ""
    return TogetherPlan(fits=False, rows=[t[0] for t in rows], statement=(
        f"they must take turns: no setting holds {both(n)} models at once fully on the GPU{where}{one}"))


def _closest_words(rows: list[RowResult]) -> str:
    """` (closest: SETTING: why)`: the setting that missed by the least."""
    misses = [(r.shortfall_bytes, row) for row, _, r, _ in rows if r is not None]
    closest = min(misses, key=lambda t: t[0], default=None)
    return f" (closest: {closest[1].setting.label}: {closest[1].blocker})" if closest else ""


def _together_statement(row: TogetherRow, r: FitResult, n: int) -> str:
    spare = (f", {fmt_bytes(r.fast_spare_bytes, digits=1)} to spare in {r.fast_label}" if row.placement == "fast"
             else f", part of it in {r.spill_label or 'slower shared memory'} (those bytes decode about "
                  f"{r.shared_slowdown:.1f}x slower)")
    return (f"they run together on {row.setting.label}: {n} servers (one per model, each on its own --port) "
            f"hold {r.gpu_need_bytes / GIB:.1f} GiB on the GPU{spare}")


def plan_together(items: list[WorkItem], run: DeviceRun, profile: DeviceProfile) -> None:
    """Weigh the models loaded at once on every candidate setting; fill run.report.together and,
    when they fit, make the together setting the device's answer."""
    rows = [_row(c.spec, items, run, profile) for c in run.candidates]
    ranked = sorted(rows, key=_rank, reverse=True)
    row, combo, r, _ = ranked[0]
    report = run.report
    n = len(items)
    if combo is None or r is None:
        report.together = _take_turns(rows, run, n)
        report.fits = False
        return
    row.chosen = True
    report.together = TogetherPlan(fits=True, rows=[t[0] for t in rows], statement=_together_statement(row, r, n))
    report.mode = "together"
    report.reason = _reason(_rank(ranked[0]), _rank(ranked[1]) if len(ranked) > 1 else None, n, r.fast_label)
    report.chosen = row.setting
    report.fits = True
    report.runs = _runs(items, run, combo, row, r, profile)


# Why the together setting wins, per position of the rank tuple in plan_together (first that differs).
TOGETHER_REASONS = (
    "it holds {all} models at once; no other setting does",
    "it holds {all} models at once with every GPU byte in fast memory ({fast_label})",
    "it keeps the requested KV cache type for the most models with {all} loaded",
    "it gives the best quants with {all} models loaded",
    "larger settings give the same quants; this one leaves the OS the most RAM",
    "it needs no GPU memory limit change",
)


def _reason(best: tuple[bool, bool, int, float, int, int], runner_up: tuple[bool, bool, int, float, int, int] | None,
            n: int, fast_label: str) -> str:
    if runner_up is None:
        return "the only setting to weigh on this device"
    k = next((i for i, (a, b) in enumerate(zip(best, runner_up)) if a != b), None)
    if k is None:
        return "every setting weighed gives the same result; this is the first of them"
    return TOGETHER_REASONS[k].format(all=both(n), fast_label=fast_label or "fast memory")


def _runs(items: list[WorkItem], run: DeviceRun, combo: Combo, row: TogetherRow, r: FitResult,
          profile: DeviceProfile) -> list[ModelRun]:
    """Each model's launch lines at the together setting: its single-model plan with the quant and
    KV type of the combination fixed (and --no-mmap when the sum leaves the page cache no room);
    tier, placement and speeds are the sum's."""
    out = []
    for i, (item, o) in enumerate(zip(items, combo.options)):
        base = run.planners[i].req
        one = replace(item.model, variants=[o.ev.variant])
        req = request_for(item.entry, base, item.model).model_copy(update={
            "carveout_bytes": row.setting.carveout_bytes,
            "gpu_cap_bytes": row.setting.gpu_cap_bytes if row.setting.cap_change else base.gpu_cap_bytes,
            "cache_type_k": o.ev.kv, "cache_type_v": _ctv(run.planners[i], o), "kv_fixed": True,
            "mmap": False if r.suggest_no_mmap else base.mmap, "search_max_ctx": False})
        plan = Planner(one, req, **run.planner_kw).plan(profile)
        m = row.models[i]
        rec = plan.recommendation.model_copy(update={
            "tier": m.tier, "tier_label": tier_label(m.tier, profile.memory_architecture), "placement": m.placement,
            "est_tps": m.est_tps, "est_tps_at_ctx": m.est_tps_at_ctx, "est_prefill_tps": m.est_prefill_tps,
            "est_ttft_s": m.est_ttft_s})
        prev = run.report.runs[i]
        out.append(ModelRun(label=item.entry.label, ctx=plan.ctx, recommendation=rec, alone=prev.alone,
                            warnings=list(plan.warnings)))
    return out


__all__ = ["plan_together", "sum_breakdown", "best_combo", "Setting"]
