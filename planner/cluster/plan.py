"""The cluster decision: the best quant whose split fits every member (prefer quality, as the
single-device plan does), the best member alone for comparison (the normal planner on its
profile), and the verdict: no cluster when one member runs as good a quant; a cluster that is
slower than a smaller quant on one box is said so. The launch lines: each member's BIOS / GPU cap
line, then the runtime's (`Engine.multi_device.launch`)."""

from __future__ import annotations

from ..device_schema import DeviceProfile
from ..fit import FitResult
from ..plan import Planner, cap_change
from ..plan_types import PlanModel, PlanRequest, PlanVariant
from ..units import fmt_bios_size, fmt_bytes, fmt_ctx
from ..variants import quality_key
from .links import Link
from .search import ClusterSearch, MemberFit, SplitResult
from .speed import assumptions, prefill_seconds
from .types import ClusterOption, ClusterPlan, MemberPlan, PipelineSpeed, SingleBox


def _single(planner: Planner, profiles: list[DeviceProfile]) -> SingleBox:
    """The best one member does alone: the highest quality that fits, the faster of equals."""
    plans = {p.id: planner.plan(p) for p in profiles}
    best = max(plans.values(), key=lambda d: (d.fits, _quality(planner, d.recommendation.quant) if d.fits else (0, 0),
                                              d.recommendation.est_tps or 0.0))
    rec = best.recommendation
    return SingleBox(device_id=best.device.id, fits=best.fits, quant=rec.quant if best.fits else None,
                     ctx=rec.ctx, decode_tps=rec.est_tps if best.fits else None,
                     placement=rec.placement if best.fits else "none")


def _quality(planner: Planner, quant: str | None) -> tuple[float, int]:
    v = next((v for v in planner.model.variants if v.quant == quant), None)
    return quality_key(v.quant, v.size_bytes) if v else (-1.0, 0)


ROLES = {("local", True): "card", ("local", False): "card", ("rpc", True): "head", ("rpc", False): "worker"}


def _bios(r: FitResult, profile: DeviceProfile) -> str | None:
    if r.carveout_bytes is None or profile.carveout is None:
        return None
    return f"UMA frame buffer {fmt_bios_size(r.carveout_bytes)} ({profile.carveout.how_to_change})"


def _fit_fields(r: FitResult | None, profile: DeviceProfile, head: bool) -> dict:
    """What a member's placement says (an idle member: nothing to place)."""
    if r is None:
        return dict(need_bytes=0, capacity_bytes=0, spare_bytes=0, fits=True, tier="idle")
    change = cap_change(r, profile)
    return dict(need_bytes=r.gpu_need_bytes, capacity_bytes=r.gpu_capacity_bytes, spare_bytes=r.fast_spare_bytes,
                fits=r.fits, tier=r.tier, carveout_bytes=r.carveout_bytes, gpu_cap_bytes=r.gpu_cap_bytes,
                cap_setting=change.setting if change else None, bios=_bios(r, profile),
                failures=[c.message for c in r.blocking_failures], host_bytes=r.host_need_bytes if head else 0)


def _member_plan(i: int, m: MemberFit, ts: float, kind: str, llama_device: int, ms: float) -> MemberPlan:
    buf, profile = m.buffers, m.setup.profile
    role = ROLES[(kind, i == 0)]
    return MemberPlan(
        index=i, device_id=profile.id, role=role, llama_device=llama_device, ts=ts, layers=buf.layers,
        holds_output=buf.holds_output, weights_bytes=buf.weights_bytes, kv_bytes=buf.kv_bytes + buf.recurrent_bytes,
        compute_bytes=buf.compute_bytes, rpc_cache_bytes=buf.weights_bytes if role == "worker" else 0,
        decode_ms=round(ms * 1e3, 2), **_fit_fields(m.fit, profile, i == 0))


class ClusterPlanner:
    """Plans one model over the members (profiles in the user's order; the first is the head)."""

    def __init__(self, model: PlanModel, request: PlanRequest, profiles: list[DeviceProfile], kind: str,
                 link: Link) -> None:
        self.planner = Planner(model, request)
        self.profiles = profiles
        self.kind = kind
        self.link = link
        self.cs = ClusterSearch(self.planner, profiles, kind, link)

    def plan(self) -> ClusterPlan:
        ctx, _ = self.planner.ctx()
        variants = sorted(self.planner.model.variants, key=lambda v: quality_key(v.quant, v.size_bytes), reverse=True)
        best = {v.quant: self.cs.best(v, ctx) for v in variants}
        single = _single(self.planner, _distinct(self.profiles))
        base = dict(model=self.planner.model.name, kind=self.kind, link=self.link.id, link_label=self.link.label,
                    ctx=ctx, cache_type_k=self.planner.req.cache_type_k, cache_type_v=self.planner.req.cache_type_v,
                    single=single, options=[_option(q, r) for q, r in best.items()])
        chosen = next((v for v in variants if best[v.quant].fits), None)
        if chosen is None:
            smallest = min(best.values(), key=lambda r: r.shortfall)
            return ClusterPlan(**base, verdict="single" if single.fits else "no_fit", quant=None,
                               members=self._members(smallest), fits=single.fits,
                               reasons=self._no_fit_reasons(best, single, ctx))
        return self._chosen(base, chosen, best[chosen.quant], single, ctx)

    def _chosen(self, base: dict, v: PlanVariant, r: SplitResult, single: SingleBox, ctx: int) -> ClusterPlan:
        as_good = single.placement == "fast" and _quality(self.planner, single.quant) >= _quality(self.planner, v.quant)
        plan = ClusterPlan(**base, verdict="single" if as_good else "cluster", quant=v.quant, ts=r.ts,
                           llama_ts=r.split.ts, flash_attn=self.cs.full(v, ctx).flash_attn,
                           max_ctx=self.cs.max_ctx(v, r.ts, ctx, self.planner.n_ctx_train or ctx),
                           members=self._members(r), speed=self._speed(v, r), fits=True)
        plan.reasons = self._reasons(plan, r, single)
        plan.warnings = self.cs.devices.warnings(self.kind)
        plan.commands = _setting_lines(plan) + self.cs.devices.launch(self.planner.model, v, plan)
        return plan

    def _members(self, r: SplitResult) -> list[MemberPlan]:
        return [_member_plan(i, m, r.ts[i], self.kind, self.cs.order[i], r.member_s[i])
                for i, m in enumerate(r.members)]

    def _speed(self, v: PlanVariant, r: SplitResult) -> PipelineSpeed:
        return PipelineSpeed(decode_tps=r.tps, prefill_tps=self._prefill(v, r),
                             member_ms=[round(s * 1e3, 2) for s in r.member_s], link_ms=round(r.link_s * 1e3, 2),
                             assumptions=assumptions(self.link))

    def _prefill(self, v: PlanVariant, r: SplitResult) -> float | None:
        """Each member's prompt time for its share of the layers, one after another, plus the link."""
        placed = [m for m in r.members if m.breakdown is not None]
        total_w = sum(_layer_weights(m) for m in placed) or 1
        times = [self._member_prefill_s(v, m, total_w) for m in placed]
        if not placed or None in times:
            return None
        tokens = placed[0].breakdown.n_ctx  # type: ignore[union-attr]
        n_ub = self.planner.req.n_ubatch
        secs = prefill_seconds(times, self.link, self.planner.facts(v).n_embd * 4,  # type: ignore[arg-type]
                               -(-tokens // n_ub), n_ub, len(r.members))
        return round(tokens / secs, 1) if secs > 0 else None

    def _member_prefill_s(self, v: PlanVariant, m: MemberFit, total_w: int) -> float | None:
        """The single-device prefill model on the member's profile, times its share of the layers."""
        p = self.planner.prefill(m.breakdown, m.fit, m.setup, v)  # type: ignore[arg-type]
        return p.seconds * _layer_weights(m) / total_w if p else None

    def _reasons(self, plan: ClusterPlan, r: SplitResult, single: SingleBox) -> list[str]:
        names = " + ".join(m.device_id for m in plan.members)
        held = f"; the split holds up to {fmt_ctx(plan.max_ctx)} of context" if plan.max_ctx else ""
        out = [f"{plan.quant} at {fmt_ctx(plan.ctx)} fits {names} with -ts "
               f"{','.join(f'{t:g}' for t in plan.ts)}: the tightest member keeps {r.headroom:.0%} of its GPU "
               f"memory{held}"]
        if plan.verdict == "single":
            return [f"no cluster needed: one {single.device_id} runs {single.quant} at {fmt_ctx(single.ctx)} "
                    f"({single.decode_tps or 0:.1f} t/s est.) on its own"] + out
        if not single.fits:
            ids = " or ".join(sorted({p.id for p in self.profiles}))
            return out + [f"no single {ids} fits any quant planned at {fmt_ctx(plan.ctx)}"]
        return out + self._against_single(plan, single)

    def _against_single(self, plan: ClusterPlan, single: SingleBox) -> list[str]:
        """What one member alone does instead, and whether it is faster (the link's cost said)."""
        how = {"partial": " with layers or experts on the CPU", "spill": " spilling into slower memory"}
        out = [f"one {single.device_id} alone runs only {single.quant}{how.get(single.placement, '')} "
               f"({single.decode_tps or 0:.1f} t/s est.)"]
        if single.decode_tps and plan.speed and single.decode_tps > plan.speed.decode_tps:
            out.append(f"split over {self.link.label} it decodes slower ({plan.speed.decode_tps:.1f} t/s est.) "
                       f"than {single.quant} on one {single.device_id}: the split buys quality, not speed")
        return out

    def _no_fit_reasons(self, best: dict[str, SplitResult], single: SingleBox, ctx: int) -> list[str]:
        q, r = min(best.items(), key=lambda kv: kv[1].shortfall)
        out = [f"no quant fits the cluster at {fmt_ctx(ctx)}: the closest, {q}, misses by {fmt_bytes(r.shortfall)}"]
        if single.fits:
            out.append(f"one {single.device_id} runs {single.quant} on its own: plan it with --device "
                       f"{single.device_id}")
        return out


def _setting_lines(plan: ClusterPlan) -> list[str]:
    """Each member's BIOS and GPU cap line, before the runtime's lines."""
    out = []
    for m in plan.members:
        who = f"# {m.role} {m.index} ({m.device_id})"
        if m.bios:
            out.append(f"{who}: BIOS {m.bios}")
        if m.cap_setting:
            out.append(f"{who}: {m.cap_setting}")
    return out


def _layer_weights(m: MemberFit) -> int:
    return sum(l.weights_bytes for l in m.breakdown.layers) if m.breakdown else 0


def _option(quant: str, r: SplitResult) -> ClusterOption:
    return ClusterOption(quant=quant, fits=r.fits, ts=r.ts, decode_tps=r.tps if r.fits else None,
                         total_bytes=sum(m.buffers.total_bytes for m in r.members) + r.split.host.total_bytes)


def _distinct(profiles: list[DeviceProfile]) -> list[DeviceProfile]:
    seen: dict[str, DeviceProfile] = {}
    for p in profiles:
        seen.setdefault(p.id, p)
    return list(seen.values())
