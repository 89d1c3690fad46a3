"""One machine setting for a whole workload: every model planned on every candidate setting with the
single-model rules, and the setting that serves the set best.

A BIOS carve-out (and on Linux the GTT limit) changes only with a reboot, so a machine is set once
for the models its owner runs. Candidates per device: each BIOS carve-out option (or the one fixed
with --carveout); on a unified device with a raisable wired limit, the default limit and the raise
the models need; elsewhere the one configuration there is. On each candidate every model is
planned by planner.plan.Planner with that setting fixed (Search.for_setting): the same memory
classes, load path, OS reserve and fast-memory-first policy as `plan MODEL`. The candidates
(planner/workload_settings.py) are then ranked for the set (planner/workload_rank.py, CRITERIA,
first decides): the most models that run, the models listed first, the most in fast memory, the
requested KV type, usable speed, quality, fully on the GPU, speed, the smallest carve-out, no
limit change.

Rules 1-2 make adding a model never drop an earlier model's fit when a setting keeps them all
(tests/test_workload_properties.py). Each model's own best (`plan MODEL` alone) is the yardstick for
what it gives up on a setting; switching settings costs what planner/data/memory.toml's [knob.*]
says (reboots). `--together` (planner/workload_together.py) sums the models in the same pools
instead; several devices make the buyer's matrix (planner/workload_matrix.py).
"""

from __future__ import annotations

import time
from typing import Unpack

from .device_schema import OS, DeviceProfile
from .plan import Planner
from .plan_types import DevicePlan, PlanRequest, Recommendation
from .search import SearchHooks
from .workload import Workload, WorkloadEntry
from .workload_matrix import differences, duration_words, matrix_cells  # noqa: F401 - duration_words: reports
from .workload_rank import (CRITERIA, Candidate, Outcome, Yardsticks, both, dominated, loss, outcome,  # noqa: F401
                            rank_key, reason, score)
from .workload_run import DeviceRun, WorkItem, request_for
from .workload_settings import SettingSpec, candidate_specs, changes_between, make_setting, setting_of, switch_words
from .workload_types import (AloneBest, DeviceWorkload, Difference, MatrixCell, ModelAtSetting, ModelRun, Setting,
                             SettingRow, Switch, WorkloadModelInfo, WorkloadPlan)


# --------------------------------------------------------------------------- one device


def _candidates(specs: list[SettingSpec], planners: list[Planner], profile: DeviceProfile, os_: OS) -> list[Candidate]:
    """Every model planned on every candidate setting. A raise no model needs is the default row again."""
    cands = []
    for spec in specs:
        plans = _plans_at(spec, planners, profile)
        cands.append(Candidate(spec=spec, outcomes=[outcome(p) for p in plans],
                               setting=setting_of(spec, plans, profile, os_)))
    return [c for c in cands if c.spec.kind != "cap_raise" or c.setting.cap_change is not None]


def _plans_at(spec: SettingSpec, planners: list[Planner], profile: DeviceProfile) -> list[DevicePlan]:
    """Every model planned on one candidate setting (without the longest-context search)."""
    return [p.for_setting(spec.carveout_bytes, spec.gpu_cap_bytes, search_max_ctx=False).plan(profile)
            for p in planners]


def _best_quality(outs: list[Outcome]) -> tuple[float, int]:
    return max((o.quality for o in outs if o.runs), default=(-1.0, 0))


def _fastest_option(plan: DevicePlan) -> float:
    """The fastest option a model has at all (what the single-model policy measures slow options by)."""
    return max((v.est_tps or 0.0 for v in plan.variants if v.tier != "no_fit"), default=0.0)


def _yardsticks(cands: list[Candidate], alone_plans: list[DevicePlan], allow_spill: bool) -> Yardsticks:
    per_model = [[c.outcomes[i] for c in cands] for i in range(len(alone_plans))]  # each model over the candidates
    return Yardsticks(best_quality=[_best_quality(outs) for outs in per_model],
                      best_tps=[max((o.tps for o in outs), default=0.0) for outs in per_model],
                      fastest=[_fastest_option(p) for p in alone_plans], allow_spill=allow_spill)


def _rows(items: list[WorkItem], cands: list[Candidate], chosen: Candidate, alone: list[Outcome]) -> list[SettingRow]:
    rows = []
    for c, dom in zip(cands, dominated(cands)):
        models = [_model_at(items[i].entry, o, alone[i]) for i, o in enumerate(c.outcomes)]
        rows.append(SettingRow(setting=c.setting, models=models, runs=c.count("runs"), fast=c.count("fast"),
                               at_best=sum(not m.losses for m in models), chosen=c is chosen, dominated=dom))
    return rows


def _loss_lines(rows: list[SettingRow]) -> list[str]:
    """What each model gives up on each setting worth naming (the chosen one and those not dominated)."""
    return [_loss_line(row) for row in rows if row.chosen or not row.dominated]


def _loss_line(row: SettingRow) -> str:
    lost = "; ".join(f"{m.label} {m.loss}" for m in row.models if m.loss)
    return f"{row.setting.label}{' (chosen)' if row.chosen else ''}: " + (lost or "every model at its best")


def _final_runs(items: list[WorkItem], planners: list[Planner], profile: DeviceProfile, chosen: Candidate,
                alone: list[Outcome], alone_settings: list[Setting]) -> tuple[list[ModelRun], DevicePlan]:
    """Each model's plan on the chosen setting (with its longest contexts), beside its best alone."""
    final = [p.for_setting(chosen.spec.carveout_bytes, chosen.spec.gpu_cap_bytes, search_max_ctx=True).plan(profile)
             for p in planners]
    runs = [ModelRun(label=item.entry.label, ctx=plan.ctx, recommendation=plan.recommendation,
                     warnings=list(plan.warnings),
                     alone=AloneBest(label=item.entry.label, quant=a.quant, placement=a.placement, fits=a.fits,
                                     est_tps_at_ctx=a.tps or None, setting=setting))
            for item, plan, a, setting in zip(items, final, alone, alone_settings)]
    return runs, final[0]


def plan_device(items: list[WorkItem], planners: list[Planner], profile: DeviceProfile,
                allow_spill: bool, **hooks: Unpack[SearchHooks]) -> DeviceRun:
    t0 = time.perf_counter()
    first = planners[0]
    dev = first.setup(profile)
    os_ = dev.os
    alone_plans = [p.for_setting(*p.fixed_setting(profile), search_max_ctx=False).plan(profile) for p in planners]
    alone = [outcome(p) for p in alone_plans]
    alone_settings = [_setting_of_plan(p, first, profile, os_) for p in alone_plans]
    cands = _candidates(candidate_specs(first, dev), planners, profile, os_)
    y = _yardsticks(cands, alone_plans, allow_spill)
    for c in cands:
        c.score = score(c, y)
    chosen = max(cands, key=rank_key)
    rows = _rows(items, cands, chosen, alone)
    chosen_row = rows[cands.index(chosen)]
    n = len(items)
    serves_all = chosen_row.runs == n
    all_at_best = serves_all and chosen_row.at_best == n
    runs, first_final = _final_runs(items, planners, profile, chosen, alone, alone_settings)
    report = DeviceWorkload(
        device=first_final.device, mode="one_at_a_time", rows=rows, chosen=chosen.setting,
        reason=reason(chosen, cands, n, _fast_label(chosen)), serves_all=serves_all, all_at_best=all_at_best,
        losses=[] if all_at_best else _loss_lines(rows),
        switches=_switches(chosen, chosen_row, alone, alone_settings, profile, os_),
        switch_cost=_switch_cost(cands, profile, os_), runs=runs, fits=serves_all,
    )
    report.elapsed_ms = round((time.perf_counter() - t0) * 1000, 1)
    return DeviceRun(planners=planners, dev=dev, candidates=cands, alone=alone, alone_settings=alone_settings,
                     chosen=chosen, report=report, planner_kw=hooks)


def _fast_label(chosen: Candidate) -> str:
    """The fast memory's name on the chosen setting ("carve-out", "VRAM"...), from a model that runs."""
    return next((o.plan.recommendation.memory.fast_label for o in chosen.outcomes
                 if o.runs and o.plan.recommendation.memory), "")


def _setting_of_plan(plan: DevicePlan, search: Planner, profile: DeviceProfile, os_: OS) -> Setting:
    """The setting a model's own plan recommends (its best alone)."""
    r = plan.recommendation
    spec = SettingSpec(r.carveout_bytes, None, "carveout" if r.carveout_bytes is not None else "as_is",
                       user_cap=search.user_fixed_cap)
    cap = r.gpu_cap_bytes if r.cap_change is not None else profile.gpu_cap_bytes(os_, r.carveout_bytes)
    return make_setting(spec, profile, os_, r.cap_change, cap)


def _measured(r: Recommendation) -> dict[str, int | float | None]:
    """The memory and speeds of a model that runs (a model that does not has none)."""
    return {"gpu_bytes": r.gpu_bytes, "total_bytes": r.total_bytes, "est_tps": r.est_tps,
            "est_tps_at_ctx": r.est_tps_at_ctx, "est_prefill_tps": r.est_prefill_tps, "est_ttft_s": r.est_ttft_s}


def _model_at(entry: WorkloadEntry, o: Outcome, best: Outcome) -> ModelAtSetting:
    r = o.plan.recommendation
    codes, words = loss(o, best)
    blocked = [] if o.runs else [f.code.removeprefix("blocked_") for f in r.facts if f.code.startswith("blocked_")]
    return ModelAtSetting.model_validate(dict(
        label=entry.label, quant=o.quant, tier=r.tier, placement=o.placement, fits=o.fits,
        meets_filters=r.meets_min_tps, cache_type_k=r.cache_type_k, cache_type_v=r.cache_type_v,
        n_cpu_moe=r.n_cpu_moe, n_gpu_layers=r.n_gpu_layers, **(_measured(r) if o.runs else {}),
        losses=codes, loss=words, blocker="" if o.runs else blocker_text(o), blocked_by=blocked,
    ))


def blocker_text(o: Outcome) -> str:
    found = next((f for f in o.plan.recommendation.facts if f.code.startswith("blocked_")), None)
    return found.text if found else ""


def _switches(chosen: Candidate, row: SettingRow, alone: list[Outcome], alone_settings: list[Setting],
              profile: DeviceProfile, os_: OS) -> list[Switch]:
    """For each model that gives something up on the chosen setting: its own best setting and what
    switching there (and back) costs."""
    out = []
    for m, a, to in zip(row.models, alone, alone_settings):
        changes = changes_between(chosen.setting, to, profile, os_) if m.losses and a.fits else []
        if changes:
            out.append(_switch(chosen.setting, m, a, to, changes))
    return out


def _switch(at: Setting, m: ModelAtSetting, a: Outcome, to: Setting, changes: list[tuple[str, bool]]) -> Switch:
    words, reboot = switch_words(changes)
    tps = f" at {a.tps:.1f} t/s" if a.tps else ""
    return Switch(model=m.label, to=to, quant=a.quant, est_tps_at_ctx=a.tps or None,
                  changes=[w for w, _ in changes], reboot=reboot,
                  text=f"{m.label} alone runs {a.quant}{tps} on {to.label}; switching to it from {at.label}: {words}")


def _switch_cost(cands: list[Candidate], profile: DeviceProfile, os_: OS) -> str:
    """What moving between the candidate settings costs on this device, in one line."""
    if len(cands) < 2:
        return "nothing to switch: this device has one setting"
    changes = {w: r for c in cands[1:] for w, r in changes_between(cands[0].setting, c.setting, profile, os_)}
    if not changes:
        return "nothing to switch"
    return "; ".join(f"{w}: {_reboot_words(r)}" for w, r in changes.items())


def _reboot_words(reboot: bool) -> str:
    return "a reboot each way" if reboot else "no reboot"


# --------------------------------------------------------------------------- entry point


def model_info(item: WorkItem, ctx: int) -> WorkloadModelInfo:
    m = item.model
    return WorkloadModelInfo(label=item.entry.label, ref=item.entry.ref, ctx=ctx, repo=m.repo, name=m.name,
                             mmproj=m.projector.name if (m.projector and item.entry.mmproj != "none") else None)


def _device_report(items: list[WorkItem], planners: list[Planner], profile: DeviceProfile, together: bool,
                   allow_spill: bool, hooks: SearchHooks) -> DeviceWorkload:
    """One device's answer: the one-at-a-time setting, or (--together) the models loaded at once."""
    from .workload_together import plan_together  # only for --together

    run = plan_device(items, planners, profile, allow_spill, **hooks)
    if together:
        plan_together(items, run, profile)
    return run.report


def plan_workload(workload: Workload, items: list[WorkItem], base: PlanRequest, profiles: list[DeviceProfile],
                  **hooks: Unpack[SearchHooks]) -> WorkloadPlan:
    """Plan the workload on every device: one setting each, the trade-off table, the buyer's matrix."""
    t0 = time.perf_counter()
    planners = [Planner(it.model, request_for(it.entry, base, it.model), **hooks) for it in items]
    infos = [model_info(it, p.ctx()[0]) for it, p in zip(items, planners)]
    devices = [_device_report(items, planners, profile, workload.together, base.allow_spill, hooks) for profile in profiles]
    cells = matrix_cells(devices)
    out = WorkloadPlan(models=infos, together=workload.together, devices=devices, matrix=cells,
                       differences=_differences(infos, cells, devices), fits=any(d.fits for d in devices))
    out.elapsed_ms = round((time.perf_counter() - t0) * 1000, 1)
    return out


def _differences(infos: list[WorkloadModelInfo], cells: list[MatrixCell],
                 devices: list[DeviceWorkload]) -> list[Difference]:
    """Where the devices differ, per model (nothing to compare on one device)."""
    if len(devices) < 2:
        return []
    return differences(infos, cells, [d.device.id for d in devices])


__all__ = ["plan_workload", "WorkItem", "DeviceRun", "candidate_specs", "CRITERIA", "loss", "outcome", "both",
           "duration_words", "request_for"]
