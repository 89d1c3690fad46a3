"""One machine setting for a whole workload: every model planned on every candidate setting with the
single-model rules, and the setting that serves the set best.

A BIOS carve-out (and on Linux the GTT limit) changes only with a reboot, so a machine is set once
for the models its owner runs. Candidates per device: each BIOS carve-out option (or the one fixed
with --carveout); on a unified device with a raisable wired limit, the default limit and the raise
the models need; elsewhere the one configuration there is. On each candidate every model is
planned by planner.plan.Planner with that setting fixed (PlanRequest.carveout_bytes / gpu_cap_bytes,
via Search.for_setting): the same memory classes, load path, OS reserve and fast-memory-first
policy as `plan MODEL`. The candidates are then ranked for the set (CRITERIA, first decides):

1. runs: the most models that run (and meet the speed filters);
2. order: among equal counts, the models listed first keep running (the list is a priority);
3. fast: the most models with every GPU byte in fast memory (the policy's first rule);
4. kv: the most models with the requested KV cache type (the policy quantizes it only to stay fast);
5. usable: the most models that, where they spill or offload, keep at least half the speed of their
   fastest option (the single-model policy's PARTIAL_MIN_SPEED_SHARE for slow options);
6. best_quality: the most models at the best quant they reach on any candidate;
7. quality: the most bits per weight summed over the models (Q8_0 and up count as 8);
8. gpu: the most models fully on the GPU (no layers on the CPU): a tie-break, as in the single-model
   policy, which weighs spilling and partial offload alike;
9. speed: the fastest at the requested context, counted for models that spill or offload;
10. os: the smallest carve-out (the OS keeps the most RAM);
11. cap: no GPU-limit raise.

Rules 1-2 make adding a model never drop an earlier model's fit when a setting keeps them all
(tests/test_workload_properties.py). Each model's own best (`plan MODEL` alone) is the yardstick for
what it gives up on a setting; switching settings costs what KNOB_SWITCH says (reboots).
`--together` (planner/workload_together.py) sums the models in the same pools instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .device_schema import DeviceProfile
from .plan import Planner
from .plan_types import CapChange, DevicePlan, PlanModel, PlanRequest
from .policy import NEAR_LOSSLESS_BPW, PARTIAL_MIN_SPEED_SHARE
from .search import DeviceSetup, Search
from .units import GIB, fmt_bios_size, fmt_ctx
from .variants import quality_key
from .workload import Workload, WorkloadEntry
from .workload_types import (AloneBest, DeviceWorkload, Difference, MatrixCell, ModelAtSetting, ModelRun, Setting,
                             SettingRow, Switch, WorkloadModelInfo, WorkloadPlan)

PLACEMENT_ORDER = {"fast": 0, "spill": 1, "partial": 2, "none": 3}
SPEED_LOSS = 0.10  # a model "gives up speed" on a setting when it decodes this much slower than alone
DIFFERENCE_SHARE = 0.10  # devices "differ" in speed or first-token time by at least this share

# What changing a setting means, per knob: (words, needs a reboot).
KNOB_SWITCH: dict[str, tuple[str, bool]] = {
    "carveout": ("the BIOS carve-out (UMA frame buffer)", True),
    "ttm.pages_limit": ("the GTT limit (kernel command line)", True),
    "amdttm.pages_limit": ("the GTT limit (kernel command line)", True),
    "iogpu.wired_limit_mb": ("the wired limit (one sysctl; it resets at reboot)", False),
    "shared_gpu_memory_override": ("Intel's Shared GPU Memory Override", True),
}


@dataclass
class WorkItem:
    """One model of the workload, resolved."""

    entry: WorkloadEntry
    model: PlanModel


@dataclass(frozen=True)
class SettingSpec:
    """A candidate setting before planning: a carve-out and/or a fixed GPU cap (None = the rule)."""

    carveout_bytes: int | None
    gpu_cap_bytes: int | None
    kind: str  # carveout | cap_default | cap_raise | as_is


@dataclass
class Outcome:
    """One model's plan on one setting, reduced to what the ranking compares."""

    plan: DevicePlan
    fits: bool  # runs and meets the speed filters (the plan's `fits`)
    runs: bool  # runs at all (below the speed filters, too)
    placement: str
    quality: tuple[float, int]  # quality class (8 bpw and up: one near-lossless class)
    tps: float  # decode at the requested context (0 when unknown)

    @property
    def quant(self) -> str | None:
        return self.plan.recommendation.quant if self.runs else None

    @property
    def kv(self) -> str:
        return self.plan.recommendation.cache_type_k

    def goodness(self) -> tuple[bool, int, tuple[float, int]]:
        """The single-model preference order: runs, then faster memory, then quality."""
        return (self.fits, -PLACEMENT_ORDER[self.placement], self.quality if self.fits else (-1.0, 0))


@dataclass
class Candidate:
    spec: SettingSpec
    outcomes: list[Outcome]
    setting: Setting
    score: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- candidates


def candidate_specs(search: Search, dev: DeviceSetup) -> list[SettingSpec]:
    """The settings to weigh on this device (see the module docstring)."""
    profile = dev.profile
    if profile.memory_architecture == "carveout":
        return [SettingSpec(c, None, "carveout") for c in search.carveouts(profile)]
    if profile.memory_architecture == "unified" and search.tunable(dev):
        default = profile.gpu_cap_bytes(dev.base.os)  # type: ignore[arg-type]
        return [SettingSpec(None, default, "cap_default"), SettingSpec(None, None, "cap_raise")]
    return [SettingSpec(None, None, "as_is")]


def quality_class(quant: str, size_bytes: int) -> tuple[float, int]:
    bpw, size = quality_key(quant, size_bytes)
    return (NEAR_LOSSLESS_BPW, 0) if bpw >= NEAR_LOSSLESS_BPW else (bpw, size)


def outcome(plan: DevicePlan) -> Outcome:
    r = plan.recommendation
    runs = r.tier != "no_fit"
    size = next((v.size_bytes for v in plan.variants if v.quant == r.quant), 0)
    return Outcome(plan=plan, fits=plan.fits and runs, runs=runs, placement=r.placement if runs else "none",
                   quality=quality_class(r.quant or "", size) if runs else (-1.0, 0),
                   tps=(r.est_tps_at_ctx or r.est_tps or 0.0) if runs else 0.0)


def cap_knob(profile: DeviceProfile, os_: str) -> str | None:
    info = profile.os_info(os_).gpu_cap  # type: ignore[arg-type]
    return info.knob if info is not None else None


def bios_line(profile: DeviceProfile, carve: int | None) -> str | None:
    if carve is None or profile.carveout is None:
        return None
    return (f"UMA frame buffer {fmt_bios_size(carve)}, OS keeps {fmt_bios_size(profile.os_visible_ram(carve))}\n"
            f"{profile.carveout.how_to_change}")


def make_setting(spec: SettingSpec, profile: DeviceProfile, os_: str, cap_change: CapChange | None,
                 cap_bytes: int | None) -> Setting:
    """The setting as the user applies it: the carve-out (what the OS keeps) and the GPU limit."""
    parts: list[str] = []
    carve = spec.carveout_bytes
    if carve is not None:
        parts.append(f"{fmt_bios_size(carve)} / OS {fmt_bios_size(profile.os_visible_ram(carve))}")
    knob = cap_knob(profile, os_)
    label = {"ttm.pages_limit": "GTT", "amdttm.pages_limit": "GTT", "iogpu.wired_limit_mb": "wired limit"}.get(
        knob or "", "GPU limit")
    if cap_change is not None:
        parts.append(f"{label} {cap_change.cap_bytes / GIB:.0f} GiB")
    elif spec.kind == "cap_default" and cap_bytes:
        parts.append(f"{label} default ({cap_bytes / GIB:.0f} GiB)")
    elif "gpu_cap" in profile.overrides and cap_bytes:
        parts.append(f"{label} {cap_bytes / GIB:.0f} GiB (--gpu-cap)")
    ident = ([f"uma={carve // (1 << 20)}m"] if carve is not None else []) + (
        [f"cap={cap_change.cap_bytes // (1 << 20)}m"] if cap_change else (["cap=default"] if spec.kind == "cap_default" else []))
    return Setting(id=",".join(ident) or "as-is", label=", ".join(parts) or "as it is (nothing to set)",
                   carveout_bytes=carve, os_keeps_bytes=profile.os_visible_ram(carve) if carve is not None else None,
                   gpu_cap_bytes=cap_bytes, cap_change=cap_change, bios=bios_line(profile, carve))


def setting_of(spec: SettingSpec, plans: list[DevicePlan], profile: DeviceProfile, os_: str) -> Setting:
    """One setting for every model on this candidate: the largest GPU-limit raise any of them needs
    (a raise is a ceiling, not a reservation: the others still fit under it)."""
    changes = [p.recommendation.cap_change for p in plans
               if p.recommendation.cap_change is not None and p.recommendation.tier != "no_fit"]
    change = max(changes, key=lambda c: c.cap_bytes) if changes else None
    cap = change.cap_bytes if change else (spec.gpu_cap_bytes if spec.gpu_cap_bytes is not None else
                                           profile.gpu_cap_bytes(os_, spec.carveout_bytes))  # type: ignore[arg-type]
    return make_setting(spec, profile, os_, change, cap)


# --------------------------------------------------------------------------- ranking


@dataclass(frozen=True)
class Criterion:
    key: str
    words: str  # "it {words}": what the chosen setting does on this criterion ({v} = its value)
    counted: bool = True  # say how many settings do the same


CRITERIA: tuple[Criterion, ...] = (
    Criterion("runs", "runs {v} models"),
    Criterion("order", "keeps the models listed first running (the list order is the priority)"),
    Criterion("fast", "runs {v} models with every GPU byte in fast memory ({fast_label})"),
    Criterion("kv", "keeps the requested KV cache type for {v} models"),
    Criterion("usable", "keeps {v} models at least half as fast as their fastest option where they spill or offload"),
    Criterion("best_quality", "gives {v} models the best quant they reach on any setting"),
    Criterion("quality", "gives the most bits per weight over all models"),
    # the single-model policy weighs a spilling and a partly offloaded option alike (by speed and
    # quality), so "fully on the GPU" only breaks ties
    Criterion("gpu", "runs {v} models fully on the GPU (no layers on the CPU)"),
    Criterion("speed", "is the fastest where a model spills or offloads"),
    Criterion("os", "leaves the OS the most RAM (the smallest carve-out)", counted=False),
    Criterion("cap", "needs no GPU memory limit change", counted=False),
)


def score(c: Candidate, best_quality: list[tuple[float, int]], best_tps: list[float], allow_spill: bool,
          fastest: list[float] | None = None) -> dict[str, Any]:
    """The ranking keys of one candidate (higher is better), in CRITERIA order."""
    outs = c.outcomes
    ok_places = {"fast", "spill"} if allow_spill else {"fast"}
    slow_speed = sum(o.tps / best_tps[i] for i, o in enumerate(outs)
                     if o.runs and o.placement != "fast" and best_tps[i] > 0)
    # runs/order count models that meet the speed filters; the rest also weigh models that run too
    # slowly for them (as the single-model policy shows the fastest option when none meets them)
    return {
        "runs": sum(o.fits for o in outs),
        "order": tuple(o.fits for o in outs),
        "fast": sum(o.runs and o.placement in ok_places for o in outs),
        "gpu": sum(o.runs and o.placement in ("fast", "spill") for o in outs),
        "kv": sum(o.runs and o.kv == o.plan.cache_type_k for o in outs),
        "usable": sum(o.runs and (o.placement in ok_places or (o.plan.recommendation.est_tps or 0.0) >= PARTIAL_MIN_SPEED_SHARE
                                  * (fastest[i] if fastest else best_tps[i])) for i, o in enumerate(outs)),
        "best_quality": sum(o.runs and o.quality >= best_quality[i] for i, o in enumerate(outs)),
        "quality": round(sum(max(0.0, o.quality[0]) for o in outs if o.runs), 2),
        "speed": round(slow_speed, 2),
        "os": -(c.spec.carveout_bytes or 0),
        "cap": 0 if c.setting.cap_change is not None else 1,
    }


def rank_key(c: Candidate) -> tuple:
    return tuple(c.score[k.key] for k in CRITERIA)


def reason(chosen: Candidate, cands: list[Candidate], n: int, fast_label: str) -> str:
    """Why this setting, as the criteria that narrowed the candidates down to it, each with how many
    settings still tied: "it runs 2 of 2 models (9 of 10 settings do); of those, it runs 2 of 2
    models with every GPU byte in fast memory (carve-out) (the only one)"."""
    if len(cands) == 1:
        return "the only setting to weigh on this device"
    pool = list(cands)
    clauses: list[str] = []
    for k in CRITERIA:
        left = [c for c in pool if c.score[k.key] == chosen.score[k.key]]
        if len(left) == len(pool):
            continue
        v = chosen.score[k.key]
        text = k.words.format(v=of_n(v, n) if isinstance(v, int) else v, fast_label=fast_label or "fast memory")
        count = "" if not k.counted else (" (the only one)" if len(left) == 1 else
                                          f" ({len(left)} of {len(pool)} settings do)")
        clauses.append(("it " if not clauses else "of those, it ") + text + count)
        pool = left
    if not clauses:
        return "every setting weighed gives the same result; this is the first of them"
    return "; ".join(clauses)


def dominated(rows: list[Candidate]) -> list[bool]:
    """A candidate is dominated when another is at least as good for every model (the single-model
    order: runs, memory class, quality) and better for one, or equal for all and ranked higher."""
    order = sorted(range(len(rows)), key=lambda i: rank_key(rows[i]), reverse=True)
    position = {i: k for k, i in enumerate(order)}
    out = []
    for i, a in enumerate(rows):
        ga = [o.goodness() for o in a.outcomes]
        dom = False
        for j, b in enumerate(rows):
            if i == j:
                continue
            gb = [o.goodness() for o in b.outcomes]
            if all(y >= x for x, y in zip(ga, gb)) and (gb != ga or position[j] < position[i]):
                dom = True
                break
        out.append(dom)
    return out


# --------------------------------------------------------------------------- losses and switches


def loss(o: Outcome, best: Outcome) -> tuple[list[str], str]:
    """What a model gives up on a setting against its own best (codes, words)."""
    if not o.runs:
        return ["no_fit"], "does not run" if best.runs else "does not run (on no setting)"
    if not o.fits and best.fits:
        return ["speed"], f"{o.quant} at {o.tps:.1f} t/s misses the speed filters"
    if not best.fits:
        return [], ""
    codes: list[str] = []
    words: list[str] = []
    if PLACEMENT_ORDER[o.placement] > PLACEMENT_ORDER[best.placement]:
        codes.append("placement")
        words.append({"spill": "spills into slower shared memory", "partial": "runs partly on the CPU"}.get(
            o.placement, o.placement))
    if o.quality < best.quality:
        codes.append("quality")
        words.append(f"{o.quant} instead of {best.quant}")
    if o.kv != best.kv:
        codes.append("kv")
        words.append(f"a {o.kv} KV cache")
    if best.tps > 0 and o.tps < (1 - SPEED_LOSS) * best.tps:
        codes.append("speed")
        words.append(f"{o.tps:.1f} t/s instead of {best.tps:.1f}")
    return codes, ", ".join(words)


def blocker(plan: DevicePlan) -> str:
    facts = plan.recommendation.facts
    found = next((f for f in facts if f.code.startswith("blocked_")), None)
    return found.text if found else ""


def changes_between(a: Setting, b: Setting, profile: DeviceProfile, os_: str) -> list[tuple[str, bool]]:
    """What differs between two settings: (words, reboot) per knob. A GPU limit that follows the
    carve-out by itself (Windows' shared window, a default GTT) is no separate change."""
    out = []
    if a.carveout_bytes != b.carveout_bytes:
        out.append(KNOB_SWITCH["carveout"])
    knob = cap_knob(profile, os_)
    if knob is not None and _cap_set(a) != _cap_set(b):
        out.append(KNOB_SWITCH.get(knob, (f"the GPU memory limit ({knob})", True)))
    return out


def _cap_set(s: Setting) -> int | None:
    """The GPU limit a user sets for this setting (None: the OS default)."""
    return s.cap_change.cap_bytes if s.cap_change is not None else None


def switch_words(changes: list[tuple[str, bool]]) -> tuple[str, bool]:
    reboot = any(r for _, r in changes)
    what = " and ".join(w for w, _ in changes)
    return (f"changing {what}: a reboot each way" if reboot else f"changing {what}: no reboot"), reboot


# --------------------------------------------------------------------------- one device


@dataclass
class DeviceRun:
    """Everything computed for one device (the together planner reuses the planners and alone plans)."""

    planners: list[Planner]
    dev: DeviceSetup
    candidates: list[Candidate]
    alone: list[Outcome]
    alone_settings: list[Setting]
    chosen: Candidate | None
    report: DeviceWorkload
    planner_kw: dict[str, Any] = field(default_factory=dict)  # test doubles for the estimator


def plan_device(items: list[WorkItem], planners: list[Planner], profile: DeviceProfile,
                allow_spill: bool, **planner_kw: Any) -> DeviceRun:
    t0 = time.perf_counter()
    first = planners[0]
    dev = first.setup(profile)
    os_ = dev.base.os
    specs = candidate_specs(first, dev)
    alone_plans = [p.for_setting(p.req.carveout_bytes, p.req.gpu_cap_bytes, search_max_ctx=False).plan(profile)
                   for p in planners]
    alone = [outcome(p) for p in alone_plans]
    alone_settings = [_setting_of_plan(p, profile, os_) for p in alone_plans]
    cands: list[Candidate] = []
    for spec in specs:
        plans = [p.for_setting(spec.carveout_bytes, spec.gpu_cap_bytes, search_max_ctx=False).plan(profile)
                 for p in planners]
        cands.append(Candidate(spec=spec, outcomes=[outcome(p) for p in plans],
                               setting=setting_of(spec, plans, profile, os_)))
    if any(c.spec.kind == "cap_raise" for c in cands):  # no model needs a raise: the same as the default row
        cands = [c for c in cands if c.spec.kind != "cap_raise" or c.setting.cap_change is not None]
    n = len(items)
    best_quality = [max((c.outcomes[i].quality for c in cands if c.outcomes[i].runs), default=(-1.0, 0))
                    for i in range(n)]
    best_tps = [max((c.outcomes[i].tps for c in cands), default=0.0) for i in range(n)]
    # the fastest option each model has at all (what the single-model policy measures slow options by)
    fastest = [max((v.est_tps or 0.0 for v in p.variants if v.tier != "no_fit"), default=0.0) for p in alone_plans]
    for c in cands:
        c.score = score(c, best_quality, best_tps, allow_spill, fastest)
    chosen = max(cands, key=rank_key)
    doms = dominated(cands)
    fast_label = next((o.plan.recommendation.memory.fast_label for o in chosen.outcomes
                       if o.runs and o.plan.recommendation.memory), "")

    rows: list[SettingRow] = []
    for c, dom in zip(cands, doms):
        models = [_model_at(items[i].entry, o, alone[i]) for i, o in enumerate(c.outcomes)]
        rows.append(SettingRow(setting=c.setting, models=models, runs=c.score["runs"], fast=c.score["fast"],
                               at_best=sum(not m.losses for m in models), chosen=c is chosen, dominated=dom))
    chosen_row = rows[cands.index(chosen)]
    serves_all = chosen_row.runs == n
    all_at_best = serves_all and chosen_row.at_best == n
    losses: list[str] = []
    if not all_at_best:
        for row, c in zip(rows, cands):
            if row.dominated and not row.chosen:
                continue
            lost = [f"{m.label} {m.loss}" for m in row.models if m.loss]
            mark = " (chosen)" if row.chosen else ""
            losses.append(f"{row.setting.label}{mark}: " + ("; ".join(lost) if lost else "every model at its best"))
    switches = _switches(items, chosen, chosen_row, alone, alone_settings, profile, os_)
    final = [p.for_setting(chosen.spec.carveout_bytes, chosen.spec.gpu_cap_bytes, search_max_ctx=True).plan(profile)
             for p in planners]
    runs = [ModelRun(label=items[i].entry.label, ctx=final[i].ctx, recommendation=final[i].recommendation,
                     warnings=list(final[i].warnings),
                     alone=AloneBest(label=items[i].entry.label, quant=alone[i].quant, placement=alone[i].placement,  # type: ignore[arg-type]
                                     fits=alone[i].fits, est_tps_at_ctx=alone[i].tps or None,
                                     setting=alone_settings[i]))
            for i in range(n)]
    report = DeviceWorkload(
        device=final[0].device, mode="one_at_a_time", rows=rows, chosen=chosen.setting,
        reason=reason(chosen, cands, n, fast_label), serves_all=serves_all, all_at_best=all_at_best,
        losses=losses, switches=switches, switch_cost=_switch_cost(cands, profile, os_), runs=runs,
        fits=serves_all,
    )
    report.elapsed_ms = round((time.perf_counter() - t0) * 1000, 1)
    return DeviceRun(planners=planners, dev=dev, candidates=cands, alone=alone, alone_settings=alone_settings,
                     chosen=chosen, report=report, planner_kw=planner_kw)


def _setting_of_plan(plan: DevicePlan, profile: DeviceProfile, os_: str) -> Setting:
    """The setting a model's own plan recommends (its best alone)."""
    r = plan.recommendation
    kind = "carveout" if r.carveout_bytes is not None else "as_is"
    cap = r.gpu_cap_bytes if r.cap_change is not None else profile.gpu_cap_bytes(os_, r.carveout_bytes)  # type: ignore[arg-type]
    return make_setting(SettingSpec(r.carveout_bytes, None, kind), profile, os_, r.cap_change, cap)


def _model_at(entry: WorkloadEntry, o: Outcome, best: Outcome) -> ModelAtSetting:
    r = o.plan.recommendation
    codes, words = loss(o, best)
    ran = o.runs
    return ModelAtSetting(
        label=entry.label, quant=o.quant, tier=r.tier, placement=o.placement, fits=o.fits,  # type: ignore[arg-type]
        meets_filters=r.meets_min_tps, cache_type_k=r.cache_type_k, cache_type_v=r.cache_type_v,
        n_cpu_moe=r.n_cpu_moe, n_gpu_layers=r.n_gpu_layers,
        gpu_bytes=r.gpu_bytes if ran else 0, total_bytes=r.total_bytes if ran else 0,
        est_tps=r.est_tps if ran else None, est_tps_at_ctx=r.est_tps_at_ctx if ran else None,
        est_prefill_tps=r.est_prefill_tps if ran else None, est_ttft_s=r.est_ttft_s if ran else None,
        losses=codes, loss=words, blocker="" if ran else blocker(o.plan),
        blocked_by=[] if ran else [f.code.removeprefix("blocked_") for f in r.facts if f.code.startswith("blocked_")],
    )


def _switches(items: list[WorkItem], chosen: Candidate, row: SettingRow, alone: list[Outcome],
              alone_settings: list[Setting], profile: DeviceProfile, os_: str) -> list[Switch]:
    """For each model that gives something up on the chosen setting: its own best setting and what
    switching there (and back) costs."""
    out = []
    for i, m in enumerate(row.models):
        if not m.losses or not alone[i].fits:
            continue
        to = alone_settings[i]
        changes = changes_between(chosen.setting, to, profile, os_)
        if not changes:
            continue
        words, reboot = switch_words(changes)
        tps = f" at {alone[i].tps:.1f} t/s" if alone[i].tps else ""
        out.append(Switch(model=m.label, to=to, quant=alone[i].quant, est_tps_at_ctx=alone[i].tps or None,
                          changes=[w for w, _ in changes], reboot=reboot,
                          text=(f"{m.label} alone runs {alone[i].quant}{tps} on {to.label}; "
                                f"switching to it from {chosen.setting.label}: {words}")))
    return out


def _switch_cost(cands: list[Candidate], profile: DeviceProfile, os_: str) -> str:
    """What moving between the candidate settings costs on this device, in one line."""
    if len(cands) < 2:
        return "nothing to switch: this device has one setting"
    changes: dict[str, bool] = {}
    for c in cands[1:]:
        for w, r in changes_between(cands[0].setting, c.setting, profile, os_):
            changes[w] = r
    if not changes:
        return "nothing to switch"
    return "; ".join(f"{w}: {'a reboot each way' if r else 'no reboot'}" for w, r in changes.items())


# --------------------------------------------------------------------------- several devices


def matrix_cells(devices: list[DeviceWorkload]) -> list[MatrixCell]:
    cells = []
    for d in devices:
        setting = d.chosen.label if d.chosen else "-"
        for run in d.runs:
            r = run.recommendation
            ok = r.tier != "no_fit"
            cells.append(MatrixCell(
                device=d.device.id, model=run.label, setting=setting, quant=r.quant if ok else None, tier=r.tier,
                placement=r.placement if ok else "none", est_tps=r.est_tps, est_tps_at_ctx=r.est_tps_at_ctx,
                est_prefill_tps=r.est_prefill_tps, est_ttft_s=r.est_ttft_s))
    return cells


def _differs(values: list[float | None]) -> bool:
    known = [v for v in values if v]
    if len(known) != len(values):
        return len(set(v is None for v in values)) > 1
    return max(known) > (1 + DIFFERENCE_SHARE) * min(known)


def differences(models: list[WorkloadModelInfo], cells: list[MatrixCell], devices: list[str]) -> list[Difference]:
    """Per model: where the devices differ (quant, memory class, speed, first-token time)."""
    out = []
    for info in models:
        row = [next(c for c in cells if c.model == info.label and c.device == d) for d in devices]
        fields = [f for f, vals in (("quant", [c.quant for c in row]), ("placement", [c.placement for c in row]))
                  if len(set(vals)) > 1]
        fields += [f for f in ("est_tps_at_ctx", "est_ttft_s") if _differs([getattr(c, f) for c in row])]
        title = f"{info.label} @{fmt_ctx(info.ctx)}"
        if not fields:
            text = f"{title}: the same on every device ({_cell_words(row[0], True)})"
        else:
            text = f"{title}: " + "; ".join(f"{c.device} {_cell_words(c, 'est_ttft_s' in fields)}" for c in row)
            if "est_ttft_s" not in fields and row[0].est_ttft_s:
                text += f" (first token after a full prompt in {duration_words(row[0].est_ttft_s)} on each)"
        out.append(Difference(model=info.label, fields=fields, text=text))
    return out


_PLACE_WORDS = {"fast": "fully on the GPU", "spill": "spilling into shared memory", "partial": "partly on the CPU"}


def _cell_words(c: MatrixCell, with_ttft: bool) -> str:
    if c.quant is None:
        return "does not run"
    speed = f" at {c.est_tps_at_ctx:.1f} t/s" if c.est_tps_at_ctx else ""
    ttft = f", first token after a full prompt in {duration_words(c.est_ttft_s)}" if c.est_ttft_s and with_ttft else ""
    return f"{c.quant} {_PLACE_WORDS.get(c.placement, c.placement)}{speed}{ttft}"


def of_n(v: int, n: int) -> str:
    """'both', 'all 3', '1 of 2' (models)."""
    return both(n) if v == n and n > 1 else f"{v} of {n}"


def both(n: int) -> str:
    """'both' for two, 'all 3' for more."""
    return "both" if n == 2 else f"all {n}"


def duration_words(s: float | None) -> str:
    """Seconds as people say them: 40 s, 3.9 min, 1.9 h."""
    if s is None:
        return "-"
    if s < 90:
        return f"{s:.0f} s"
    if s < 2 * 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


# --------------------------------------------------------------------------- entry point


def model_info(item: WorkItem, ctx: int) -> WorkloadModelInfo:
    m = item.model
    return WorkloadModelInfo(label=item.entry.label, ref=item.entry.ref, ctx=ctx, repo=m.repo, name=m.name,
                             mmproj=m.projector.name if (m.projector and item.entry.mmproj != "none") else None)


def request_for(entry: WorkloadEntry, base: PlanRequest, model: PlanModel) -> PlanRequest:
    """The single-model request for one entry: its own context, its projector choice."""
    ctx = entry.ctx if entry.ctx is not None else base.ctx
    return base.model_copy(update={"ctx": ctx, "use_mmproj": model.projector is not None and entry.mmproj != "none"})


def plan_workload(workload: Workload, items: list[WorkItem], base: PlanRequest, profiles: list[DeviceProfile],
                  **planner_kw: Any) -> WorkloadPlan:
    """Plan the workload on every device: one setting each, the trade-off table, the buyer's matrix."""
    t0 = time.perf_counter()
    planners = [Planner(it.model, request_for(it.entry, base, it.model), **planner_kw) for it in items]
    infos = [model_info(it, p.ctx()[0]) for it, p in zip(items, planners)]
    devices: list[DeviceWorkload] = []
    for profile in profiles:
        run = plan_device(items, planners, profile, base.allow_spill, **planner_kw)
        if workload.together:
            from .workload_together import plan_together

            plan_together(items, run, profile)
        devices.append(run.report)
    cells = matrix_cells(devices)
    diffs = differences(infos, cells, [d.device.id for d in devices]) if len(devices) > 1 else []
    out = WorkloadPlan(models=infos, together=workload.together, devices=devices, matrix=cells, differences=diffs,
                       fits=any(d.fits for d in devices))
    out.elapsed_ms = round((time.perf_counter() - t0) * 1000, 1)
    return out


__all__ = ["plan_workload", "WorkItem", "candidate_specs", "CRITERIA", "KNOB_SWITCH", "loss", "outcome"]
