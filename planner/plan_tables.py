"""The tables of a device plan: every quant at the requested context (VariantPlan), every option
weighed (Candidate, for JSON), the machine settings of the recommended quant (CarveoutOption), and
the memory of one placement per class. Nothing here decides; the search and the policy have."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .fit_types import TIER_LABEL, FitResult, Tier
from .memory_classes import knob
from .memory_kinds import kind_named
from .plan_types import Candidate, CarveoutOption, MemoryByClass, VariantPlan
from .policy import quality_label
from .search import DeviceSetup, Evaluation, Search, cap_raised, placement, speed_fields
from .units import GIB, fmt_bytes
from .variants import quant_bpw

if TYPE_CHECKING:
    from .device_schema import OS, DeviceProfile
    from .estimate_types import Breakdown


def tier_label(tier: Tier, arch: str) -> str:
    """The tier in words for this memory architecture (unified memory has no "dedicated" pool)."""
    return kind_named(arch).tier_label(tier, TIER_LABEL[tier])


def memory_by_class(r: FitResult) -> MemoryByClass:
    spill = r.spill_bytes
    return MemoryByClass(fast_label=r.fast_label or "GPU", fast_bytes=r.gpu_need_bytes - spill,
                         spill_label=r.spill_label if spill else "", spill_bytes=spill,
                         spill_slowdown=r.shared_slowdown if spill else 1.0, host_bytes=r.host_need_bytes,
                         desktop_gpu_bytes=r.gpu_reserve_bytes)


def split_text(r: FitResult, n_layer: int) -> str:
    """How a partial offload splits the model, in words."""
    if r.n_cpu_moe and r.n_gpu_layers < 0:
        return f"the experts of {r.n_cpu_moe} of {n_layer} layers on the CPU (--n-cpu-moe {r.n_cpu_moe})"
    if r.n_gpu_layers >= 0:
        moe = f", all experts on the CPU (--n-cpu-moe {r.n_cpu_moe})" if r.n_cpu_moe else ""
        return f"{r.n_gpu_layers} of {n_layer} layers on the GPU (-ngl {r.n_gpu_layers}){moe}"
    return "all layers on the GPU"


# --------------------------------------------------------------------------- quants


def _why(ev: Evaluation, r: FitResult, bd: Breakdown) -> str:
    """The quant's cell: what stops it, how it splits, or where its bytes go."""
    if r.first_blocker is not None:
        return r.first_blocker.message
    if r.tier == "partial_offload":
        return (f"--n-cpu-moe {r.n_cpu_moe}" if r.n_cpu_moe and r.n_gpu_layers < 0
                else f"-ngl {r.n_gpu_layers} of {len(bd.layers)}")
    if ev.placement == "spill":
        return f"{fmt_bytes(r.spill_risk_bytes)} spills into {r.spill_label or 'shared memory'}"
    if r.tier == "shared" and r.shared_used_bytes:
        return f"{fmt_bytes(r.shared_used_bytes)} in shared memory"
    return tier_label(r.tier, r.memory_architecture)


def variant_plan(ev: Evaluation, kv: str) -> VariantPlan:
    """One quant at the requested context (kv: the requested KV type)."""
    r = ev.best
    bd = ev.best_bd if r.fits else ev.full
    gpu, host = bd.device("gpu"), bd.device("host")
    return VariantPlan(
        quant=ev.quant, files=ev.variant.files, size_bytes=ev.variant.size_bytes, bpw=quant_bpw(ev.quant),
        total_bytes=r.total_need_bytes, gpu_bytes=r.gpu_need_bytes, host_bytes=r.host_need_bytes,
        weights_bytes=bd.weights_bytes, kv_bytes=bd.kv_bytes + bd.recurrent_bytes,
        compute_bytes=gpu.compute_bytes + host.compute_bytes, mmproj_bytes=gpu.mmproj_bytes + host.mmproj_bytes,
        tier=r.tier, carveout_bytes=r.carveout_bytes, gpu_cap_bytes=r.gpu_cap_bytes, cap_raised=cap_raised(r),
        n_gpu_layers=r.n_gpu_layers, n_cpu_moe=r.n_cpu_moe, gpu_headroom_bytes=r.gpu_headroom_bytes,
        max_ctx=ev.longest(kv), max_ctx_f16=ev.max_ctx.get("f16"), max_ctx_q8_0=ev.max_ctx.get("q8_0"),
        max_ctx_fast=ev.max_ctx_fast.get(kv), max_ctx_fast_q8_0=ev.max_ctx_fast.get("q8_0"),
        max_ctx_mode=ev.max_ctx_mode, **ev.speeds(), placement=ev.placement,
        spill_bytes=r.spill_risk_bytes if ev.placement == "spill" else 0,
        fast_spare_bytes=r.fast_spare_bytes if r.fits else None, why=_why(ev, r, bd),
    )


# --------------------------------------------------------------------------- every option


def _candidate_id(ev: Evaluation, r: FitResult) -> str:
    """Stable within a plan: "Q5_K_M|kv=f16|uma=32g", "...|cap=108g", "...|ngl=30|ncmoe=0"."""
    cid = f"{ev.quant}|kv={ev.kv}|" + (f"uma={r.carveout_bytes / GIB:g}g" if r.carveout_bytes is not None else "gpu")
    if cap_raised(r) and r.gpu_cap_bytes:
        cid += f"|cap={r.gpu_cap_bytes / GIB:g}g"
    if placement(r) == "partial":
        cid += f"|ngl={r.n_gpu_layers}|ncmoe={r.n_cpu_moe}"
    return cid


def _same_option(ev: Evaluation, r: FitResult, chosen: Evaluation | None) -> bool:
    if chosen is None or (ev.quant, ev.kv) != (chosen.quant, chosen.kv):
        return False
    c = chosen.best
    return ((r.carveout_bytes, r.gpu_cap_bytes, r.n_gpu_layers, r.n_cpu_moe)
            == (c.carveout_bytes, c.gpu_cap_bytes, c.n_gpu_layers, c.n_cpu_moe))


def _candidate(search: Search, ev: Evaluation, r: FitResult, bd: Breakdown, dev: DeviceSetup,
               chosen: Evaluation | None) -> Candidate:
    s0 = sc = pf = None
    if r.fits and search.no_decode is None:
        s0 = search.speed(bd, r, dev, 0, ev.variant)
        sc = search.speed(bd, r, dev, bd.n_ctx, ev.variant)
        pf = search.prefill(bd, r, dev, ev.variant)
    req = search.req
    bpw = quant_bpw(ev.quant)
    return Candidate(
        id=_candidate_id(ev, r), quant=ev.quant, cache_type_k=ev.kv,
        cache_type_v=ev.kv if ev.kv != req.cache_type_k else req.cache_type_v,
        tier=r.tier, placement=placement(r), carveout_bytes=r.carveout_bytes, gpu_cap_bytes=r.gpu_cap_bytes,
        cap_raised=cap_raised(r), n_gpu_layers=r.n_gpu_layers, n_cpu_moe=r.n_cpu_moe,
        total_bytes=r.total_need_bytes, memory=memory_by_class(r),
        fast_spare_bytes=r.fast_spare_bytes, os_free_bytes=r.os_free_bytes,
        quality_bpw=bpw, quality_class=quality_label(bpw), **speed_fields(s0, sc, pf),
        checks=[{"name": c.name, "ok": c.ok, "blocking": c.blocking, "margin_bytes": c.margin_bytes} for c in r.checks],
        chosen=_same_option(ev, r, chosen),
    )


def candidates(search: Search, evals: list[Evaluation], dev: DeviceSetup, chosen: Evaluation | None) -> list[Candidate]:
    """Every option weighed: each quant x KV type on every configuration it was placed on."""
    return [_candidate(search, ev, r, bd, dev, chosen)
            for ev in evals for r, bd in [(r, ev.full) for r in ev.options] + list(ev.partials)]


# --------------------------------------------------------------------------- machine settings


def _fits_note(r: FitResult, profile: DeviceProfile) -> str:
    """A setting that runs the quant: what spills or is shared, the raised cap, --no-mmap."""
    notes = [_shared_note(r), _raised_cap_note(r, profile), "--no-mmap" if r.suggest_no_mmap else ""]
    return ", ".join(n for n in notes if n)


def _shared_note(r: FitResult) -> str:
    if placement(r) == "spill":
        return f"{fmt_bytes(r.spill_risk_bytes, digits=1)} spills"
    return f"{fmt_bytes(r.shared_used_bytes, digits=1)} shared" if r.shared_used_bytes else ""


def _raised_cap_note(r: FitResult, profile: DeviceProfile) -> str:
    """A raised cap on a carve-out row (a unified row is the cap itself)."""
    if not (cap_raised(r) and r.gpu_cap_bytes and r.carveout_bytes is not None):
        return ""
    return f"{_cap_label(profile, r.config.os)} {r.gpu_cap_bytes / GIB:.0f} GiB"


def _cap_label(profile: DeviceProfile, os: OS) -> str:
    """The raised cap's short name ("GTT" for a carve-out APU's kernel knob)."""
    cap = profile.os_info(os).gpu_cap
    return knob(cap.knob).label if cap is not None and cap.knob else "GPU cap"


def _note(r: FitResult, profile: DeviceProfile, live_carve: int | None) -> str:
    note = _fits_note(r, profile) if r.fits else r.blocker_short
    if live_carve is not None and r.carveout_bytes == live_carve:
        return ("in effect now; " + note) if note else "in effect now"
    return note


def _gpu_spare(r: FitResult) -> int:
    """Room on the GPU beyond the safety margin, as the GPU memory check counts it."""
    gpu_check = next((c for c in r.checks if c.name == "gpu_memory"), None)
    return gpu_check.margin_bytes if gpu_check else r.gpu_headroom_bytes - r.safety_bytes


def _is_recommended(r: FitResult, best: FitResult) -> bool:
    return r.carveout_bytes == best.carveout_bytes and r.gpu_cap_bytes == best.gpu_cap_bytes and best.full_offload


def _setting_row(search: Search, chosen: Evaluation, r: FitResult, dev: DeviceSetup, live_carve: int | None) -> CarveoutOption:
    speed = search.speed(chosen.full, r, dev, 0, chosen.variant).tps if r.fits and search.no_decode is None else None
    return CarveoutOption(
        carveout_bytes=r.carveout_bytes, os_keeps_bytes=r.os_visible_bytes, gpu_may_use_bytes=r.gpu_capacity_bytes,
        gpu_cap_bytes=r.gpu_cap_bytes, cap_raised=cap_raised(r), tier=r.tier, gpu_headroom_bytes=r.gpu_headroom_bytes,
        gpu_spare_bytes=_gpu_spare(r), os_free_bytes=r.os_free_bytes, est_tps=speed,
        note=_note(r, dev.profile, live_carve), recommended=_is_recommended(r, chosen.best),
        fast_spare_bytes=r.fast_spare_bytes, spill_bytes=r.shared_used_bytes if placement(r) == "spill" else 0,
    )


def settings_table(search: Search, chosen: Evaluation, dev: DeviceSetup) -> list[CarveoutOption]:
    """The recommended quant on every machine setting weighed (none for a card: it has one)."""
    if not dev.kind.settings_table:
        return []
    live = dev.profile.live
    live_carve = live.carveout_bytes if live is not None else None
    return [_setting_row(search, chosen, r, dev, live_carve) for r in chosen.options]
