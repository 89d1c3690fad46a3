"""The planner: one model, one or more devices -> a structured decision and its renderings.

Steps (one module each; nothing here prints):
1. planner.search: every quant x every device configuration (BIOS carve-out, GPU cap) x KV type
   at the requested context, placed by the fit solver (planner.fit) with its memory per class,
   decode/prefill speed (planner.speed) and largest context;
2. planner.policy: picks one option (fast memory first, --prefer, --min-tps...) and states the
   facts behind the choice as codes with numbers; planner.plan_facts adds the plan's own;
3. planner.explain: words the facts; this module assembles the DevicePlan the reports render
   (recommendation, quant table, settings table, memory bars, every candidate for JSON:
   planner.plan_tables, planner.memory_bars, planner.device_summary).
"""

from __future__ import annotations

import re
import time
from typing import TypedDict, Unpack

from .device_schema import DeviceProfile
from .device_summary import assumptions, device_summary
from .explain import ctx_words, render
from .fit_types import TIER_LABEL, FitResult
from .memory_bars import memory_bars
from .plan_facts import (cap_change_fact, current_setup_fact, keep_in_memory_fact, no_fit_facts, no_mmap_fact,
                         partial_facts)
from .plan_tables import candidates, memory_by_class, settings_table, tier_label, variant_plan
from .plan_types import (CapChange, CarveoutOption, CtxChart, DevicePlan, Fact, MemoryBar, ModelSummary, MultiPlan,
                         PlanModel, PlanProjector, PlanRequest, PlanVariant, Recommendation, WholeLayerSplit)
from .policy import Choice, Policy
from .search import (CTX_STEP, DEFAULT_CTX_CAP, DeviceSetup, Evaluation, Search, SearchHooks, cap_raised,
                     largest_gpu_weight_bytes, no_decode_reason)
from .shells import default_shell
from .units import fmt_bios_size, fmt_ctx

__all__ = ["Planner", "plan_devices", "PlanModel", "PlanProjector", "PlanRequest", "PlanVariant", "MultiPlan",
           "DevicePlan", "largest_gpu_weight_bytes", "memory_bars", "assumptions", "no_decode_reason",
           "CTX_STEP", "DEFAULT_CTX_CAP", "cap_change", "tier_label"]


def _how_besides(how: str) -> str:
    """A profile's how-to text without its generic command template ("sudo sysctl
    iogpu.wired_limit_mb=<MiB> (...)"): the plan prints the command with the number filled in."""
    m = re.match(r"^[^(;]*<[^>]+>[^(;]*(?:\(([^)]*)\))?[;,]?\s*(.*)$", how)
    if not m:
        return how
    return "; ".join(part for part in (m.group(1), m.group(2)) if part)


def cap_change(r: FitResult, profile: DeviceProfile) -> CapChange | None:
    """The GPU cap raise a placement needs: the exact setting and how to apply it (None: no raise)."""
    if not cap_raised(r) or r.gpu_cap_bytes is None:
        return None
    info = profile.os_info(r.config.os).gpu_cap
    setting = profile.cap_setting(r.config.os, r.gpu_cap_bytes)
    if info is None or setting is None:
        return None
    return CapChange(knob=info.knob or "", cap_bytes=r.gpu_cap_bytes, default_bytes=r.gpu_cap_default_bytes or 0,
                     setting=setting, how=_how_besides(info.how_to_change))


class PlacedFields(TypedDict):
    """What a recommendation says of its placement (the chosen one, or the closest miss)."""

    carveout_bytes: int | None
    os_keeps_bytes: int | None
    gpu_cap_bytes: int | None
    total_bytes: int
    gpu_bytes: int
    host_bytes: int


def placed_fields(r: FitResult) -> PlacedFields:
    return PlacedFields(carveout_bytes=r.carveout_bytes,
                        os_keeps_bytes=r.os_visible_bytes if r.carveout_bytes is not None else None,
                        gpu_cap_bytes=r.gpu_cap_bytes, total_bytes=r.total_need_bytes,
                        gpu_bytes=r.gpu_need_bytes, host_bytes=r.host_need_bytes)


class ChosenFields(TypedDict):
    """What a device plan shows of the chosen option."""

    carveout_options: list[CarveoutOption]
    bars: list[MemoryBar]
    fit: FitResult | None


class Planner(Search):
    """Plans one model on any number of devices; estimates are cached across devices."""

    def plan(self, profile: DeviceProfile) -> DevicePlan:
        t0 = time.perf_counter()
        dev = self.setup(profile)
        evals, alts, ctx, defaulted = self.evaluate_device(dev)
        policy = Policy(self.req, self, dev)
        choice = policy.choose(evals, alts)
        chosen = choice.chosen
        rec = self._recommendation(choice, evals, alts, dev, ctx, policy) if chosen else self._no_fit(evals, dev, ctx)
        plan = DevicePlan(
            device=device_summary(profile, dev.base, self.user_fixed_cap), model=self._model_summary(evals),
            ctx=ctx, ctx_defaulted=defaulted, cache_type_k=self.req.cache_type_k, cache_type_v=self.req.cache_type_v,
            prefer=self.req.prefer, min_tps=self.req.min_tps, recommendation=rec,
            variants=[variant_plan(ev, self.req.cache_type_k) for ev in evals],
            candidates=candidates(self, evals + alts, dev, chosen), **self._chosen_fields(chosen, dev),
            warnings=self._warnings(evals), fits=rec.tier != "no_fit" and choice.meets,
            allow_spill=self.req.allow_spill, runtime=self.engine.id, runtime_statement=self.engine.statement,
            ctx_chart=self._ctx_chart(chosen, evals, rec, dev) if self.req.ctx_chart else None,
        )
        plan.elapsed_ms = round((time.perf_counter() - t0) * 1000, 1)
        return plan

    def _chosen_fields(self, chosen: Evaluation | None, dev: DeviceSetup) -> ChosenFields:
        """The chosen option's settings table, memory bars and placement (empty without one)."""
        if chosen is None:
            return ChosenFields(carveout_options=[], bars=[], fit=None)
        return ChosenFields(carveout_options=settings_table(self, chosen, dev),
                            bars=memory_bars(chosen.best, dev.profile), fit=chosen.best)

    # ---------------------------------------------------------------- recommendation

    def _stated_facts(self, choice: Choice, evals: list[Evaluation], alts: list[Evaluation], dev: DeviceSetup,
               ctx: int, policy: Policy, change: CapChange | None, keep_ok: bool | None) -> list[Fact]:
        """The policy's facts (a partial offload's right after the choice), then the plan's own."""
        chosen = choice.chosen
        assert chosen is not None
        facts = policy.facts(choice, evals, alts, ctx)
        if chosen.placement == "partial":
            facts = [facts[0]] + partial_facts(self, chosen, evals, ctx) + facts[1:]
        extra = [
            self._no_decode_fact(),
            cap_change_fact(change, dev) if change else None,
            current_setup_fact(chosen, dev.profile),
            no_mmap_fact(chosen.best),
            keep_in_memory_fact(chosen.best_bd.weights_bytes) if keep_ok is False else None,
        ]
        return facts + [f for f in extra if f is not None]

    def _no_decode_fact(self) -> Fact | None:
        """A model that generates no tokens has no t/s (said in the warnings instead under --min-tps)."""
        if self.no_decode is None or self.req.min_tps:
            return None
        return Fact(code="no_decode", text=f"no t/s estimate: {self.no_decode}")

    def _recommendation(self, choice: Choice, evals: list[Evaluation], alts: list[Evaluation], dev: DeviceSetup,
                        ctx: int, policy: Policy) -> Recommendation:
        chosen = choice.chosen
        assert chosen is not None
        r, bd = chosen.best, chosen.best_bd
        change = cap_change(r, dev.profile)
        no_mmap = r.suggest_no_mmap or self.req.mmap is False
        keep_ok = self._keep_in_memory_ok(chosen, dev)
        facts = render(self._stated_facts(choice, evals, alts, dev, ctx, policy, change, keep_ok))
        rec = Recommendation(
            quant=chosen.quant, tier=r.tier, tier_label=tier_label(r.tier, r.memory_architecture),
            **placed_fields(r), cap_change=change, ctx=ctx, cache_type_k=bd.settings.cache_type_k, cache_type_v=bd.settings.cache_type_v,
            flash_attn=bd.flash_attn, n_parallel=self.req.n_parallel,
            n_gpu_layers=r.n_gpu_layers, n_cpu_moe=r.n_cpu_moe, n_layer=len(bd.layers), no_mmap=no_mmap,
            mmproj=self._mmproj_name(), mmproj_bytes=r.gpu.mmproj_bytes + r.host.mmproj_bytes, **chosen.speeds(),
            placement=chosen.placement, memory=memory_by_class(r), fast_spare_bytes=policy.spare(chosen),
            keep_in_memory_ok=keep_ok, meets_min_tps=choice.meets, facts=facts, reasons=[f.text for f in facts],
            rope_flags=self.context_plan().rope_flags, whole_layer_split=self._whole_layer_split(chosen, dev, ctx),
        )
        rec.warnings = _warnings(r, bd.warnings, no_mmap)
        commands = self.engine.launch(self.model, chosen.variant, rec, dev.os, self.req.shell or default_shell(dev.os))
        rec.commands = commands.model_copy(update=machine_lines(rec, dev.profile))
        return rec

    def _no_fit(self, evals: list[Evaluation], dev: DeviceSetup, ctx: int) -> Recommendation:
        smallest = min(evals, key=lambda e: e.best.total_need_bytes)
        r = smallest.best
        facts = no_fit_facts(self, smallest, evals, dev, ctx)
        return Recommendation(
            quant=smallest.quant, tier="no_fit", tier_label=TIER_LABEL["no_fit"], **placed_fields(r), ctx=ctx,
            cache_type_k=self.req.cache_type_k, cache_type_v=self.req.cache_type_v,
            flash_attn=smallest.full.flash_attn, n_parallel=self.req.n_parallel, n_gpu_layers=-1, n_cpu_moe=0,
            n_layer=len(smallest.full.layers), no_mmap=False, mmproj=None, est_tps=None, est_tps_at_ctx=None,
            meets_min_tps=False, facts=facts, reasons=[f.text for f in facts],
        )

    def _mmproj_name(self) -> str | None:
        return self.model.projector.name if (self.model.projector and self.req.use_mmproj) else None

    def _ctx_chart(self, chosen: Evaluation | None, evals: list[Evaluation], rec: Recommendation,
                   dev: DeviceSetup) -> CtxChart:
        """Memory against context on the recommendation's configuration (with nothing that fits:
        the one the no-fit reasons speak of, the smallest quant's best)."""
        basis = chosen.best if chosen else next(e.best for e in evals if e.quant == rec.quant)
        from .ctx_chart import ctx_chart  # only for --format html

        return ctx_chart(self, dev, basis, ctx=rec.ctx, ctk=rec.cache_type_k, ctv=rec.cache_type_v,
                         recommended=rec.quant if rec.tier != "no_fit" else None)

    def _whole_layer_split(self, chosen: Evaluation, dev: DeviceSetup, ctx: int) -> WholeLayerSplit | None:
        """For a plan that offloads experts: the best split in whole layers (apps without --n-cpu-moe)."""
        if not chosen.best.n_cpu_moe:
            return None
        ngl, speed = self.whole_layer_split(chosen.variant, dev, chosen.best, chosen.best_bd, ctx)
        return WholeLayerSplit(n_gpu_layers=ngl, est_tps=speed.tps if speed else None)

    def _keep_in_memory_ok(self, chosen: Evaluation, dev: DeviceSetup) -> bool | None:
        """Whether LM Studio's Keep Model in Memory (a second copy of the weights in RAM) still
        leaves the OS its reserve in the chosen configuration."""
        if self.req.keep_in_memory:
            return True
        r = chosen.best
        if r.tier == "cpu_only":
            return None  # the weights live in RAM anyway: locking them there adds no copy
        again = self.place(chosen.best_bd, chosen.variant, dev, r.config.model_copy(update={"keep_in_memory": True}))
        return again.fits

    # ---------------------------------------------------------------- summaries

    def _model_summary(self, evals: list[Evaluation]) -> ModelSummary:
        first = evals[0].full
        return ModelSummary(
            name=self.model.name, repo=self.model.repo, revision=self.model.revision,
            architecture=self.model.variants[0].headers.architecture, n_params=self.n_params,
            n_layer=len(first.layers), moe=self.ratio < 1.0, expert_ratio=round(self.ratio, 4),
            n_ctx_train=self.n_ctx_train, mmproj=self._mmproj_name(), decodes=self.no_decode is None,
        )

    def _warnings(self, evals: list[Evaluation]) -> list[str]:
        out = list(dict.fromkeys(self.model.notes))
        cp = self.context_plan()
        if cp.note:
            out.append(f"--ctx {fmt_ctx(cp.requested)} is beyond the model's training context of "
                       f"{ctx_words(self.n_ctx_train)} tokens: {cp.note}")
        if self.no_decode is not None and self.req.min_tps:
            out.append(f"--min-tps {self.req.min_tps:g} ignored: {self.no_decode}")
        out += [w for e in evals for w in e.full.warnings]
        return list(dict.fromkeys(out))


def machine_lines(rec: Recommendation, profile: DeviceProfile) -> dict[str, str | None]:
    """The machine's own lines beside the runtime's (Commands fields): the BIOS setting of a
    carve-out and the GPU cap's kernel parameter / sysctl."""
    bios = None
    if rec.carveout_bytes is not None and profile.carveout is not None:
        bios = (f"UMA frame buffer {fmt_bios_size(rec.carveout_bytes)}, OS keeps {fmt_bios_size(rec.os_keeps_bytes)}\n"
                f"{profile.carveout.how_to_change}")
    return {"bios": bios, "cap": rec.cap_change.setting if rec.cap_change else None}


def _warnings(r: FitResult, estimate_warnings: list[str], no_mmap: bool) -> list[str]:
    """The placement's and the estimate's warnings, once each; with --no-mmap advised (or given),
    not the page-cache warning that says so."""
    page_cache = [c.message for c in r.checks if c.name == "page_cache"] if no_mmap else []
    return [w for w in dict.fromkeys(r.warnings + estimate_warnings) if w not in page_cache]


def plan_devices(model: PlanModel, request: PlanRequest, profiles: list[DeviceProfile],
                 **hooks: Unpack[SearchHooks]) -> MultiPlan:
    planner = Planner(model, request, **hooks)
    return MultiPlan(plans=[planner.plan(p) for p in profiles])
