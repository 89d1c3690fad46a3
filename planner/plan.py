"""The planner: one model, one or more devices -> a structured decision and its renderings.

Steps (one module each; nothing here prints):
1. planner.search: every quant x every device configuration (BIOS carve-out, GPU cap) x KV type
   at the requested context, placed by the fit solver (planner.fit) with its memory per class,
   decode/prefill speed (planner.speed) and largest context;
2. planner.policy: picks one option (fast memory first, --prefer, --min-tps...) and states the
   facts behind the choice as codes with numbers;
3. planner.explain: words the facts; this module assembles the DevicePlan the reports render
   (recommendation, quant table, carve-out table, memory bars, every candidate for JSON).
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable

from .device_schema import DeviceProfile
from .errors import EstimateError
from .explain import ctx_words, render
from .fit import TIER_LABEL, FitConfig, FitResult
from .launch import build_commands
from .shells import default_shell
from .plan_types import (BarSegment, CapChange, CarveoutOption, Candidate, CtxChart, DevicePlan, DeviceSummary, Fact,
                         MemoryBar, MemoryByClass, ModelSummary, MultiPlan, PlanModel, PlanProjector, PlanRequest,
                         PlanVariant, Prefer, Recommendation, VariantPlan, WholeLayerSplit)
from .policy import PARTIAL_MIN_SPEED_SHARE, Choice, Policy, quality_class, quality_label, tps0
from .search import (CTX_STEP, DEFAULT_CTX_CAP, DeviceSetup, Evaluation, Search, cap_raised, largest_gpu_weight_bytes,
                     no_decode_reason, placement)
from .units import GIB, fmt_bios_size, fmt_bytes, fmt_ctx
from .variants import quant_bpw

__all__ = ["Planner", "plan_devices", "PlanModel", "PlanProjector", "PlanRequest", "PlanVariant", "MultiPlan",
           "DevicePlan", "largest_gpu_weight_bytes", "memory_bars", "assumptions", "no_decode_reason",
           "CTX_STEP", "DEFAULT_CTX_CAP"]

# tier wording per memory architecture: unified memory has no "dedicated" pool (JSON keeps `tier`)
_TIER_WORDS: dict[str, dict[str, str]] = {
    "unified": {"dedicated": "fits in the GPU's share of unified memory"},
    "discrete": {"dedicated": "fits in VRAM"},
}


def tier_label(tier: str, arch: str) -> str:
    return _TIER_WORDS.get(arch, {}).get(tier, TIER_LABEL[tier])  # type: ignore[index]


class Planner(Search):
    """Plans one model on any number of devices; estimates are cached across devices."""

    def plan(self, profile: DeviceProfile) -> DevicePlan:
        t0 = time.perf_counter()
        dev = self.setup(profile)
        evals, alts, ctx, defaulted = self.evaluate_device(dev)
        policy = Policy(self.req, self, dev)
        choice = policy.choose(evals, alts)
        chosen = choice.chosen
        rec = self._recommendation(choice, evals, alts, dev, ctx, policy)
        candidates = self._candidates(evals + alts, dev, chosen)
        plan = DevicePlan(
            device=self._device_summary(profile, dev.base),
            model=self._model_summary(evals),
            ctx=ctx, ctx_defaulted=defaulted, cache_type_k=self.req.cache_type_k, cache_type_v=self.req.cache_type_v,
            prefer=self.req.prefer, min_tps=self.req.min_tps,
            recommendation=rec,
            variants=[self._variant_plan(ev, dev) for ev in evals],
            candidates=candidates,
            carveout_options=self._carveout_table(chosen, dev) if chosen else [],
            bars=memory_bars(chosen.best, profile) if chosen else [],
            fit=chosen.best if chosen else None,
            warnings=self._warnings(evals, ctx),
            fits=rec.tier != "no_fit" and choice.meets,
            allow_spill=self.req.allow_spill,
            runtime=self.runtime.id, runtime_statement=self.runtime.statement,
            ctx_chart=self._ctx_chart(chosen, evals, rec, dev) if self.req.ctx_chart else None,
        )
        plan.elapsed_ms = round((time.perf_counter() - t0) * 1000, 1)
        return plan

    # ---------------------------------------------------------------- recommendation

    def _recommendation(self, choice: Choice, evals: list[Evaluation], alts: list[Evaluation], dev: DeviceSetup,
                        ctx: int, policy: Policy) -> Recommendation:
        chosen = choice.chosen
        if chosen is None:
            return self._no_fit(evals, dev, ctx)
        r = chosen.best
        bd = chosen.best_bd
        cap_change = self._cap_change(r, dev.profile)
        no_mmap = r.suggest_no_mmap or self.req.mmap is False
        facts = policy.facts(choice, evals, alts, ctx)
        if chosen.placement == "partial":
            facts = [facts[0]] + self._partial_facts(chosen, evals, alts, dev, ctx) + facts[1:]
        if self.no_decode is not None and not self.req.min_tps:
            facts.append(Fact(code="no_decode", text=f"no t/s estimate: {self.no_decode}"))
        if cap_change:
            facts.append(Fact(code="cap_change", values={"from_bytes": cap_change.default_bytes, "to_bytes": cap_change.cap_bytes,
                                                          "setting": cap_change.setting},
                              text=(f"raise the GPU cap from {fmt_bytes(cap_change.default_bytes)} to "
                                    f"{fmt_bytes(cap_change.cap_bytes)} once for this machine (its safe maximum): "
                                    f"{cap_change.setting}" if dev.profile.memory_architecture == "carveout" else
                                    f"raise the GPU cap from {fmt_bytes(cap_change.default_bytes)} to "
                                    f"{fmt_bytes(cap_change.cap_bytes)}: {cap_change.setting}")))
        current = self._current_setup_note(chosen, dev.profile)
        if current:
            facts.append(Fact(code="current_setup", text=current))
        if no_mmap and r.suggest_no_mmap:
            msg = next((c.message for c in r.checks if c.name == "page_cache"), "")
            facts.append(Fact(code="no_mmap", text=msg or "--no-mmap: the file would otherwise pass through a page "
                                                          "cache the OS side cannot hold"))
        keep_ok = self._keep_in_memory_ok(chosen, dev)
        if keep_ok is False:
            facts.append(Fact(code="keep_in_memory_off", values={"copy_bytes": bd.weights_bytes},
                              text=(f"in LM Studio turn Keep Model in Memory off: it locks a second {fmt_bytes(bd.weights_bytes)} "
                                    f"copy of the weights in RAM (--mlock), which would push the OS under its reserve")))
        facts = render(facts)
        mem = _memory_by_class(r)
        rec = Recommendation(
            quant=chosen.quant, tier=r.tier, tier_label=tier_label(r.tier, r.memory_architecture),
            carveout_bytes=r.carveout_bytes, os_keeps_bytes=r.os_visible_bytes if r.carveout_bytes is not None else None,
            gpu_cap_bytes=r.gpu_cap_bytes, cap_change=cap_change,
            total_bytes=r.gpu_need_bytes + r.host_need_bytes, gpu_bytes=r.gpu_need_bytes, host_bytes=r.host_need_bytes,
            ctx=ctx, cache_type_k=bd.settings.cache_type_k, cache_type_v=bd.settings.cache_type_v,
            flash_attn=bd.flash_attn, n_parallel=self.req.n_parallel,
            n_gpu_layers=r.n_gpu_layers, n_cpu_moe=r.n_cpu_moe, n_layer=len(bd.layers), no_mmap=no_mmap,
            mmproj=self.model.projector.name if (self.model.projector and self.req.use_mmproj) else None,
            mmproj_bytes=r.gpu.mmproj_bytes + r.host.mmproj_bytes,
            est_tps=chosen.speed0.tps if chosen.speed0 else None,
            est_tps_at_ctx=chosen.speed_ctx.tps if chosen.speed_ctx else None,
            est_prefill_tps=chosen.prefill.tps if chosen.prefill else None,
            est_ttft_s=chosen.prefill.seconds if chosen.prefill else None,
            speed_calibrated=bool(chosen.speed0.calibrated) if chosen.speed0 else True,
            placement=chosen.placement, memory=mem, fast_spare_bytes=policy._spare(chosen),
            keep_in_memory_ok=keep_ok, meets_min_tps=choice.meets, facts=facts,
            rope_flags=self.context_plan().rope_flags,
            whole_layer_split=self._whole_layer_split(chosen, dev, ctx) if r.n_cpu_moe else None,
        )
        rec.reasons = [f.text for f in facts]
        page_cache = [c.message for c in r.checks if c.name == "page_cache"] if no_mmap else []
        rec.warnings = [w for w in dict.fromkeys(r.warnings + bd.warnings) if w not in page_cache]
        rec.commands = build_commands(self.model, chosen.variant, rec, dev.profile, dev.base.os,
                                      self.req.shell or default_shell(dev.base.os), self._llama_line_build())
        return rec

    def _ctx_chart(self, chosen: Evaluation | None, evals: list[Evaluation], rec: Recommendation,
                   dev: DeviceSetup) -> CtxChart:
        """Memory against context on the recommendation's configuration (with nothing that fits:
        the one the no-fit reasons speak of, the smallest quant's best)."""
        basis = chosen.best if chosen else next(e.best for e in evals if e.quant == rec.quant)
        from .ctx_chart import ctx_chart  # only for --format html

        return ctx_chart(self, dev, basis, ctx=rec.ctx, ctk=rec.cache_type_k, ctv=rec.cache_type_v,
                         recommended=rec.quant if rec.tier != "no_fit" else None)

    def _whole_layer_split(self, chosen: Evaluation, dev: DeviceSetup, ctx: int) -> WholeLayerSplit:
        ngl, speed = self.whole_layer_split(chosen.variant, dev, chosen.best, chosen.best_bd, ctx)
        return WholeLayerSplit(n_gpu_layers=ngl, est_tps=speed.tps if speed else None)

    def _llama_line_build(self) -> int | None:
        """The llama.cpp build the llama-server line is written for: the one asked for (--runtime
        llama.cpp@N / --llama-build), else the newest memfit knows (a llama.cpp the user installs
        now; the apps' bundled builds matter for their own lines, not this one)."""
        return self.runtime.llama_build if self.runtime.app == "llama.cpp" else None

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

    def _cap_change(self, r: FitResult, profile: DeviceProfile) -> CapChange | None:
        if not cap_raised(r) or r.gpu_cap_bytes is None:
            return None
        info = profile.os_info(r.config.os).gpu_cap
        setting = profile.cap_setting(r.config.os, r.gpu_cap_bytes)
        if info is None or setting is None:
            return None
        return CapChange(knob=info.knob or "", cap_bytes=r.gpu_cap_bytes, default_bytes=r.gpu_cap_default_bytes or 0,
                         setting=setting, how=_how_besides(info.how_to_change))

    def _no_fit(self, evals: list[Evaluation], dev: DeviceSetup, ctx: int) -> Recommendation:
        smallest = min(evals, key=lambda e: e.best.gpu_need_bytes + e.best.host_need_bytes)
        r = smallest.best
        facts = [Fact(code="nothing_fits", quant=smallest.quant, values={"ctx": ctx, "needs_bytes": r.gpu_need_bytes + r.host_need_bytes},
                      text=(f"{dev.profile.id}: nothing fits at {fmt_ctx(ctx)} context: the smallest quant, "
                            f"{smallest.quant}, needs {fmt_bytes(r.gpu_need_bytes + r.host_need_bytes)}"))]
        facts += self._no_fit_blockers(smallest, dev, ctx)
        best_ctx = max(((e.max_ctx.get(self.req.cache_type_k) or 0, e) for e in evals), key=lambda t: (t[0], t[1].quality))
        if best_ctx[0]:
            n = best_ctx[0]
            try_ctx = fmt_ctx(n // 1024 * 1024) if n >= 1024 else str(n)
            where = "runs fully on the GPU" if best_ctx[1].max_ctx_mode == "gpu" else "runs"
            facts.append(Fact(code="shorter_ctx_fits", quant=best_ctx[1].quant, values={"max_ctx": n},
                              text=f"{best_ctx[1].quant} {where} up to {ctx_words(n)} context: try --ctx {try_ctx}"))
        if self.req.cache_type_k == "f16":
            facts += self._q8_hint(evals, ctx, best_ctx[0])
        return Recommendation(
            quant=smallest.quant, tier="no_fit", tier_label=TIER_LABEL["no_fit"],
            carveout_bytes=r.carveout_bytes, os_keeps_bytes=r.os_visible_bytes if r.carveout_bytes is not None else None,
            gpu_cap_bytes=r.gpu_cap_bytes, total_bytes=r.gpu_need_bytes + r.host_need_bytes,
            gpu_bytes=r.gpu_need_bytes, host_bytes=r.host_need_bytes, ctx=ctx,
            cache_type_k=self.req.cache_type_k, cache_type_v=self.req.cache_type_v,
            flash_attn=smallest.full.flash_attn, n_parallel=self.req.n_parallel, n_gpu_layers=-1, n_cpu_moe=0,
            n_layer=len(smallest.full.layers), no_mmap=False, mmproj=None, est_tps=None, est_tps_at_ctx=None,
            meets_min_tps=False, facts=facts, reasons=[f.text for f in facts],
        )

    def _no_fit_blockers(self, smallest: Evaluation, dev: DeviceSetup, ctx: int) -> list[Fact]:
        """Why the smallest quant does not run, naming what really blocks. With a discrete GPU the
        full-offload failure is the GPU, but partial offload moves the model into host RAM: when even
        every layer on the CPU does not fit there, host RAM is the blocker, not the GPU."""
        r = smallest.best
        facts = [Fact(code=f"blocked_{c.name}", quant=smallest.quant, values={"margin_bytes": c.margin_bytes}, text=c.message)
                 for c in r.blocking_failures]
        if dev.profile.memory_architecture != "discrete" or dev.est_backend == "cpu":
            return facts
        kv = smallest.kv
        on_cpu = self.breakdown(smallest.variant, ctx=ctx, backend=dev.est_backend, ctk=kv, ctv=kv, ngl=0,
                                mmap=dev.base.mmap)
        least_gpu = self.place(on_cpu, smallest.variant, dev, dev.base)
        host = next((c for c in least_gpu.blocking_failures if c.name == "os_reserve"), None)
        if host is None:
            return facts
        return [Fact(code="blocked_host_ram", quant=smallest.quant, values={"margin_bytes": host.margin_bytes},
                     text=(f"host RAM is what blocks: even with every layer on the CPU, {host.message}"))]

    def _q8_hint(self, evals: list[Evaluation], ctx: int, f16_max: int) -> list[Fact]:
        """What --kv q8_0 buys: the best quant that then runs at the requested context, else the
        longest context any quant reaches with it (never just the smallest quant's number)."""
        at_ctx = [e for e in evals if (e.max_ctx.get("q8_0") or 0) >= ctx]
        if at_ctx:
            best = max(at_ctx, key=lambda e: e.quality)
            return [Fact(code="kv_q8_longer_ctx", quant=best.quant, values={"max_ctx": best.max_ctx.get("q8_0") or 0},
                         text=f"with a q8_0 KV cache (--kv q8_0) {best.quant} runs at {fmt_ctx(ctx)} context")]
        n, longest = max(((e.max_ctx.get("q8_0") or 0, e) for e in evals), key=lambda t: (t[0], t[1].quality))
        if n <= f16_max:
            return []
        return [Fact(code="kv_q8_longer_ctx", quant=longest.quant, values={"max_ctx": n},
                     text=f"with a q8_0 KV cache (--kv q8_0) {longest.quant} runs up to {ctx_words(n)} context")]

    def _partial_facts(self, chosen: Evaluation, evals: list[Evaluation], alts: list[Evaluation], dev: DeviceSetup,
                       ctx: int) -> list[Fact]:
        """Nothing runs fully on the GPU: say so, why this quant (quality against speed), what the
        best quality would cost, and what would put a model fully on the GPU (a shorter context, a
        q8_0 KV cache)."""
        n_layer = len(chosen.best_bd.layers)
        split = _split_text(chosen.best, n_layer)
        out = [Fact(code="partial_nothing_fast", values={"ctx": ctx},
                    text=(f"no quant runs fully on the GPU at {fmt_ctx(ctx)} context: each step up in quality moves "
                          f"more of the model to the CPU and costs speed"))]
        partial = [e for e in evals if e.placement == "partial" and e.speed0]
        fastest = max(partial, key=tps0, default=None)
        r = chosen.best
        room = (f"{fmt_bytes(r.gpu_headroom_bytes - r.safety_bytes)} to spare on the GPU beyond a "
                f"{fmt_bytes(r.safety_bytes)} safety margin")
        if self.req.prefer == "speed" or fastest is None or fastest.quant == chosen.quant or not fastest.speed0:
            out.append(Fact(code="partial_split", quant=chosen.quant, values={"n_gpu_layers": r.n_gpu_layers, "n_cpu_moe": r.n_cpu_moe},
                            text=f"{chosen.quant} runs with {split}: {room}"))
        else:
            out.append(Fact(code="partial_split", quant=chosen.quant, values={
                "n_gpu_layers": r.n_gpu_layers, "n_cpu_moe": r.n_cpu_moe, "fastest": fastest.quant, "fastest_tps": tps0(fastest)},
                text=(f"{chosen.quant} is the best quality that keeps at least {PARTIAL_MIN_SPEED_SHARE:.0%} of the speed of "
                      f"the fastest option ({fastest.quant}, {tps0(fastest):.1f} t/s est.): {split}, {room}")))
        best_q = max(partial, key=lambda e: e.quality, default=None)
        if best_q is not None and best_q.quant != chosen.quant and best_q.speed0 and chosen.speed0:
            out.append(Fact(code="partial_best_quality_cost", quant=best_q.quant, values={"est_tps": tps0(best_q)},
                            text=(f"{best_q.quant} would run at {tps0(best_q):.1f} t/s (est.) with "
                                  f"{_split_text(best_q.best, n_layer)}, against {tps0(chosen):.1f} t/s for {chosen.quant}")))
        kv = self.req.cache_type_k
        enough = max(4096, ctx // 4)
        shorter = [e for e in evals if (e.max_ctx.get(kv) or 0) >= enough]
        if shorter:
            e = max(shorter, key=lambda e: e.quality)
            n = e.max_ctx.get(kv) or 0
            out.append(Fact(code="shorter_ctx_fits", quant=e.quant, values={"max_ctx": n},
                            text=f"{e.quant} runs fully on the GPU up to {ctx_words(n)} context (--ctx {fmt_ctx(n // 1024 * 1024)})"))
        return out

    @staticmethod
    def _current_setup_note(chosen: Evaluation, profile: DeviceProfile) -> str | None:
        """With --device auto: whether the carve-out in effect now already runs the chosen quant
        in the same class of memory without raising the cap (no BIOS change, no reboot)."""
        live = profile.live
        r = chosen.best
        if live is None or live.carveout_bytes is None or r.carveout_bytes is None or r.carveout_bytes == live.carveout_bytes:
            return None
        now = next((o for o in chosen.options if o.carveout_bytes == live.carveout_bytes), None)
        if now is None or placement(now) != chosen.placement or cap_raised(now):
            return None
        gain = r.os_visible_bytes - now.os_visible_bytes
        more = f"; the recommended split gives the OS {fmt_bytes(gain)} more RAM" if gain > 0 else ""
        return (f"the UMA frame buffer in effect now ({fmt_bios_size(live.carveout_bytes)}) already runs "
                f"{chosen.quant} fully on the GPU without a reboot{more}")

    # ---------------------------------------------------------------- tables

    def _variant_plan(self, ev: Evaluation, dev: DeviceSetup) -> VariantPlan:
        r = ev.best
        bd = ev.best_bd if r.fits else ev.full
        why = tier_label(r.tier, r.memory_architecture)
        if not r.fits and r.blocking_failures:
            why = r.blocking_failures[0].message
        elif r.tier == "partial_offload":
            why = (f"--n-cpu-moe {r.n_cpu_moe}" if r.n_cpu_moe and r.n_gpu_layers < 0
                   else f"-ngl {r.n_gpu_layers} of {len(bd.layers)}")
        elif ev.placement == "spill":
            why = f"{fmt_bytes(max(r.shared_used_bytes, -r.fast_spare_bytes))} spills into {r.spill_label or 'shared memory'}"
        elif r.tier == "shared" and r.shared_used_bytes:
            why = f"{fmt_bytes(r.shared_used_bytes)} in shared memory"
        gpu, host = bd.device("gpu"), bd.device("host")
        kv = self.req.cache_type_k
        return VariantPlan(
            quant=ev.quant, files=ev.variant.files, size_bytes=ev.variant.size_bytes,
            bpw=quant_bpw(ev.quant),
            total_bytes=r.gpu_need_bytes + r.host_need_bytes, gpu_bytes=r.gpu_need_bytes, host_bytes=r.host_need_bytes,
            weights_bytes=bd.weights_bytes, kv_bytes=bd.kv_bytes + bd.recurrent_bytes,
            compute_bytes=gpu.compute_bytes + host.compute_bytes, mmproj_bytes=gpu.mmproj_bytes + host.mmproj_bytes,
            tier=r.tier, carveout_bytes=r.carveout_bytes, gpu_cap_bytes=r.gpu_cap_bytes, cap_raised=cap_raised(r),
            n_gpu_layers=r.n_gpu_layers, n_cpu_moe=r.n_cpu_moe, gpu_headroom_bytes=r.gpu_headroom_bytes,
            max_ctx=ev.max_ctx.get(kv) or 0,
            max_ctx_f16=ev.max_ctx.get("f16"), max_ctx_q8_0=ev.max_ctx.get("q8_0"),
            max_ctx_fast=ev.max_ctx_fast.get(kv), max_ctx_fast_q8_0=ev.max_ctx_fast.get("q8_0"),
            max_ctx_mode=ev.max_ctx_mode,  # type: ignore[arg-type]
            est_tps=ev.speed0.tps if ev.speed0 else None,
            est_tps_at_ctx=ev.speed_ctx.tps if ev.speed_ctx else None,
            est_prefill_tps=ev.prefill.tps if ev.prefill else None,
            est_ttft_s=ev.prefill.seconds if ev.prefill else None,
            placement=ev.placement, spill_bytes=max(r.shared_used_bytes, -r.fast_spare_bytes) if ev.placement == "spill" else 0,
            fast_spare_bytes=r.fast_spare_bytes if r.fits else None,
            speed_calibrated=bool(ev.speed0.calibrated) if ev.speed0 else True,
            why=why,
        )

    def _candidates(self, evals: list[Evaluation], dev: DeviceSetup, chosen: Evaluation | None) -> list[Candidate]:
        """Every option weighed: each quant x KV type on every configuration it was placed on."""
        out = []
        for ev in evals:
            rows = [(r, ev.full) for r in ev.options] + list(ev.partials)
            for r, bd in rows:
                pl = placement(r)
                s0 = sc = pf = None
                if r.fits and self.no_decode is None:
                    s0 = self.speed(bd, r, dev, 0, ev.variant)
                    sc = self.speed(bd, r, dev, bd.n_ctx, ev.variant)
                    pf = self.prefill(bd, r, dev, ev.variant)
                cid = f"{ev.quant}|kv={ev.kv}|" + (f"uma={r.carveout_bytes / GIB:g}g" if r.carveout_bytes is not None else "gpu")
                if cap_raised(r) and r.gpu_cap_bytes:
                    cid += f"|cap={r.gpu_cap_bytes / GIB:g}g"
                if pl == "partial":
                    cid += f"|ngl={r.n_gpu_layers}|ncmoe={r.n_cpu_moe}"
                bpw = quant_bpw(ev.quant)
                out.append(Candidate(
                    id=cid, quant=ev.quant, cache_type_k=ev.kv, cache_type_v=ev.kv if ev.kv != self.req.cache_type_k else self.req.cache_type_v,
                    tier=r.tier, placement=pl, carveout_bytes=r.carveout_bytes, gpu_cap_bytes=r.gpu_cap_bytes,
                    cap_raised=cap_raised(r), n_gpu_layers=r.n_gpu_layers, n_cpu_moe=r.n_cpu_moe,
                    total_bytes=r.gpu_need_bytes + r.host_need_bytes, memory=_memory_by_class(r),
                    fast_spare_bytes=r.fast_spare_bytes, os_free_bytes=r.os_free_bytes,
                    quality_bpw=bpw, quality_class=quality_label(bpw if bpw is not None else None),
                    est_tps=s0.tps if s0 else None, est_tps_at_ctx=sc.tps if sc else None,
                    est_prefill_tps=pf.tps if pf else None, est_ttft_s=pf.seconds if pf else None,
                    speed_calibrated=bool(s0.calibrated) if s0 else True,
                    checks=[{"name": c.name, "ok": c.ok, "blocking": c.blocking, "margin_bytes": c.margin_bytes}
                            for c in r.checks],
                    chosen=bool(chosen is not None and ev.quant == chosen.quant and ev.kv == chosen.kv
                                and r.carveout_bytes == chosen.best.carveout_bytes
                                and r.gpu_cap_bytes == chosen.best.gpu_cap_bytes
                                and r.n_gpu_layers == chosen.best.n_gpu_layers and r.n_cpu_moe == chosen.best.n_cpu_moe),
                ))
        return out

    def _carveout_table(self, chosen: Evaluation, dev: DeviceSetup) -> list[CarveoutOption]:
        profile = dev.profile
        if profile.memory_architecture == "discrete":
            return []
        live_carve = profile.live.carveout_bytes if profile.live is not None else None
        rows = []
        for r in chosen.options:
            fails = r.blocking_failures
            note = (fails[0].short or fails[0].message) if fails else ""
            pl = placement(r)
            if r.fits:
                notes = []
                if pl == "spill":
                    notes.append(f"{fmt_bytes(max(r.shared_used_bytes, -r.fast_spare_bytes), digits=1)} spills")
                elif r.shared_used_bytes:
                    notes.append(f"{fmt_bytes(r.shared_used_bytes, digits=1)} shared")
                if cap_raised(r) and r.gpu_cap_bytes and r.carveout_bytes is not None:  # unified: the row is the cap
                    notes.append(f"{_cap_knob_label(r.config.os)} {r.gpu_cap_bytes / GIB:.0f} GiB")
                if r.suggest_no_mmap:
                    notes.append("--no-mmap")
                note = ", ".join(notes)
            if live_carve is not None and r.carveout_bytes == live_carve:
                note = ("in effect now; " + note) if note else "in effect now"
            gpu_check = next((c for c in r.checks if c.name == "gpu_memory"), None)
            speed = self.speed(chosen.full, r, dev, 0, chosen.variant).tps if r.fits and self.no_decode is None else None
            rows.append(CarveoutOption(
                carveout_bytes=r.carveout_bytes, os_keeps_bytes=r.os_visible_bytes, gpu_may_use_bytes=r.gpu_capacity_bytes,
                gpu_cap_bytes=r.gpu_cap_bytes, cap_raised=cap_raised(r), tier=r.tier,
                gpu_headroom_bytes=r.gpu_headroom_bytes,
                gpu_spare_bytes=gpu_check.margin_bytes if gpu_check else r.gpu_headroom_bytes - r.safety_bytes,
                os_free_bytes=r.os_free_bytes, est_tps=speed, note=note,
                recommended=(r.carveout_bytes == chosen.best.carveout_bytes and r.gpu_cap_bytes == chosen.best.gpu_cap_bytes
                             and chosen.best.full_offload),
                fast_spare_bytes=r.fast_spare_bytes, spill_bytes=r.shared_used_bytes if pl == "spill" else 0,
            ))
        return rows

    def _device_summary(self, profile: DeviceProfile, base: FitConfig) -> DeviceSummary:
        live = None
        if profile.live is not None:
            live = {k: v for k, v in profile.live.model_dump().items() if v not in (None, "", [])}
        return DeviceSummary(
            id=profile.id, name=profile.name, memory_architecture=profile.memory_architecture, os=base.os, use=base.use,
            backend=base.backend, ram_bytes=profile.ram_bytes, vram_bytes=profile.vram_bytes,
            bandwidth_gbps=profile.bandwidth_gbps, reserve_bytes=profile.reserve(base.os, base.use),
            carveout_options_bytes=profile.carveout_options(), overrides=dict(profile.overrides),
            estimated=list(profile.estimated), based_on=profile.based_on, live=live,
            assumptions=assumptions(profile, base),
        )

    def _model_summary(self, evals: list[Evaluation]) -> ModelSummary:
        first = evals[0].full
        return ModelSummary(
            name=self.model.name, repo=self.model.repo, revision=self.model.revision,
            architecture=self.model.variants[0].headers.architecture, n_params=self.n_params,
            n_layer=len(first.layers), moe=self.ratio < 1.0, expert_ratio=round(self.ratio, 4),
            n_ctx_train=self.n_ctx_train,
            mmproj=self.model.projector.name if (self.model.projector and self.req.use_mmproj) else None,
            decodes=self.no_decode is None,
        )

    def _warnings(self, evals: list[Evaluation], ctx: int) -> list[str]:
        out = list(dict.fromkeys(self.model.notes))
        cp = self.context_plan()
        if cp.note:
            out.append(f"--ctx {fmt_ctx(cp.requested)} is beyond the model's training context of "
                       f"{ctx_words(self.n_ctx_train)} tokens: {cp.note}")
        if self.no_decode is not None and self.req.min_tps:
            out.append(f"--min-tps {self.req.min_tps:g} ignored: {self.no_decode}")
        for e in evals:
            for w in e.full.warnings:
                if w not in out:
                    out.append(w)
        return out


def _how_besides(how: str) -> str:
    """A profile's how-to text without its generic command template ("sudo sysctl
    iogpu.wired_limit_mb=<MiB> (...)"): the plan prints the command with the number filled in."""
    m = re.match(r"^[^(;]*<[^>]+>[^(;]*(?:\(([^)]*)\))?[;,]?\s*(.*)$", how)
    if not m:
        return how
    return "; ".join(part for part in (m.group(1), m.group(2)) if part)


def _memory_by_class(r: FitResult) -> MemoryByClass:
    spill = r.shared_used_bytes if (r.memory_architecture == "carveout" and r.shared_slowdown > 1.0) else 0
    return MemoryByClass(fast_label=r.fast_label or "GPU", fast_bytes=r.gpu_need_bytes - spill,
                         spill_label=r.spill_label if spill else "", spill_bytes=spill,
                         spill_slowdown=r.shared_slowdown if spill else 1.0, host_bytes=r.host_need_bytes,
                         desktop_gpu_bytes=r.gpu_reserve_bytes)


def _split_text(r: FitResult, n_layer: int) -> str:
    """How a partial offload splits the model, in words."""
    if r.n_cpu_moe and r.n_gpu_layers < 0:
        return f"the experts of {r.n_cpu_moe} of {n_layer} layers on the CPU (--n-cpu-moe {r.n_cpu_moe})"
    if r.n_gpu_layers >= 0:
        moe = f", all experts on the CPU (--n-cpu-moe {r.n_cpu_moe})" if r.n_cpu_moe else ""
        return f"{r.n_gpu_layers} of {n_layer} layers on the GPU (-ngl {r.n_gpu_layers}){moe}"
    return "all layers on the GPU"


def _cap_knob_label(os_: str) -> str:
    return {"linux": "GTT", "macos": "wired limit"}.get(os_, "GPU cap")


# Profile fields marked `estimated` that change a plan, and how to replace the assumption.
_ESTIMATED_TEXT: dict[str, Callable[[DeviceProfile], str]] = {
    "ram_bytes": lambda p: f"RAM {fmt_bytes(p.ram_bytes, digits=0)} (a setting of this profile: --ram SIZE for yours)",
    "host_bandwidth_gbps": lambda p: (f"system RAM bandwidth {p.host_bandwidth_gbps:g} GB/s (speed of layers on "
                                      f"the CPU)") if p.host_bandwidth_gbps else "system RAM bandwidth",
    "decode_efficiency": lambda p: f"decode efficiency {p.decode_efficiency:g} of peak bandwidth (speed estimates)",
    "bandwidth_gbps": lambda p: f"memory bandwidth {p.bandwidth_gbps:g} GB/s (speed estimates)",
    "firmware_reserved_bytes": lambda p: f"{fmt_bytes(p.firmware_reserved_bytes)} of RAM reserved by the firmware",
    "vram_bytes": lambda p: f"VRAM {fmt_bytes(p.vram_bytes or 0, digits=0)} (--vram SIZE)",
    "gpu_tflops_fp16": lambda p: f"GPU FP16 peak {p.gpu_tflops_fp16:g} TFLOPS (prefill estimates)",
}
# estimated fields that do not change a plan: every carve-out option is planned, power is not used
_ESTIMATED_UNUSED = {"carveout.default_bytes", "power_w"}
_LIVE_TEXT: dict[str, Callable[[Any], str]] = {
    "carveout_bytes": lambda v: f"UMA frame buffer {fmt_bios_size(v)}",
    "gpu_cap_bytes": lambda v: f"GPU cap {fmt_bytes(v)}",
    "os_visible_ram_bytes": lambda v: f"OS sees {fmt_bytes(v)}",
    "mem_available_bytes": lambda v: f"{fmt_bytes(v)} available",
    "vram_used_bytes": lambda v: f"{fmt_bytes(v)} of VRAM in use",
}


def assumptions(profile: DeviceProfile, base: FitConfig) -> list[str]:
    """The numbers a plan takes as given, in words: the OS reserve (the biggest lever a user
    controls), profile values marked as estimates, command-line overrides, and what --device auto
    read from the machine."""
    out = [f"the OS and your apps keep {fmt_bytes(profile.reserve(base.os, base.use))} of RAM "
           f"({base.os}, {base.use} use; change with --use or --os)"]
    est = [_ESTIMATED_TEXT[f](profile) if f in _ESTIMATED_TEXT else f"{f} (estimate)"
           for f in profile.estimated if f not in _ESTIMATED_UNUSED]
    if est:
        out.append("profile estimates, not measurements: " + "; ".join(est))
    if profile.overrides:
        out.append("set on the command line: " + ", ".join(f"{k} {v}" for k, v in profile.overrides.items()))
        out.extend(profile.override_notes)
    mac_cap = profile.os.get("macos")
    if (base.os == "macos" and mac_cap is not None and mac_cap.gpu_cap is not None
            and mac_cap.gpu_cap.knob == "iogpu.wired_limit_mb" and not (profile.live and profile.live.gpu_cap_bytes)
            and "gpu_cap" not in profile.overrides):
        from .memory_classes import macos_wired_default

        d = macos_wired_default(profile.ram_bytes)
        out.append(f"GPU wired limit: planned with the default before macOS 26, {d.before_26:.0%} of RAM "
                   f"({fmt_bytes(int(d.before_26 * profile.os_visible_ram()), digits=0)}); macOS 26 gives about "
                   f"{d.from_26:.0%} ({fmt_bytes(int(d.from_26 * profile.os_visible_ram()), digits=0)}); "
                   f"--device auto reads yours")
    if profile.live is not None:
        live = profile.live
        seen = [fn(getattr(live, k)) for k, fn in _LIVE_TEXT.items() if getattr(live, k, None) is not None]
        if live.gpu_cap_is_default is not None and live.gpu_cap_bytes is not None:
            seen = [x + (" (default)" if live.gpu_cap_is_default and x.startswith("GPU cap") else "") for x in seen]
        if seen:
            out.append("read from this machine (--device auto): " + ", ".join(seen))
    return out


# --------------------------------------------------------------------------- memory bars


def memory_bars(r: FitResult, profile: DeviceProfile) -> list[MemoryBar]:
    """What the memory looks like with the model loaded: one bar per physical memory. The safety
    margins the plan keeps free are drawn as their own segment, so "free" is what is left beyond
    them and beyond the OS reserve: the same number as the plan's OS spare (and GPU spare)."""
    gpu = r.gpu
    g_weights = gpu.weights_bytes
    g_mmproj = gpu.mmproj_bytes
    g_kv = gpu.kv_bytes + gpu.recurrent_bytes
    g_compute = gpu.compute_bytes + gpu.output_bytes + r.overhead_bytes
    h_total = r.host_need_bytes  # CPU-side buffers + host runtime overhead
    gpu_segs = [
        BarSegment(kind="weights", label="weights", bytes=g_weights),
        BarSegment(kind="mmproj", label="mmproj", bytes=g_mmproj),
        BarSegment(kind="kv", label="KV", bytes=g_kv),
        BarSegment(kind="compute", label="compute", bytes=g_compute),
    ]
    if r.memory_architecture == "discrete":
        vram = int(profile.vram_bytes or 0)
        room = max(0, r.gpu_capacity_bytes - r.gpu_need_bytes)
        vram_bar = MemoryBar(title=f"VRAM {fmt_bytes(vram)}", total_bytes=vram, segments=[
            BarSegment(kind="reserve", label="desktop", bytes=max(0, vram - r.gpu_capacity_bytes)),
            *gpu_segs,
            BarSegment(kind="safety", label="safety", bytes=min(room, r.safety_bytes)),
            BarSegment(kind="free", label="free", bytes=max(0, room - r.safety_bytes)),
        ])
        h_room = max(0, r.ram_bytes - r.reserve_bytes - h_total)
        ram_bar = MemoryBar(title=f"RAM {fmt_bytes(r.ram_bytes)}", total_bytes=r.ram_bytes, segments=[
            BarSegment(kind="reserve", label="OS reserve", bytes=r.reserve_bytes),
            BarSegment(kind="host", label="CPU side", bytes=h_total),
            BarSegment(kind="safety", label="safety", bytes=min(h_room, r.host_safety_bytes)),
            BarSegment(kind="free", label="free", bytes=max(0, h_room - r.host_safety_bytes)),
        ])
        return [vram_bar, ram_bar]
    total = r.ram_bytes
    # what firmware holds back (DGX Spark: ~8.3 GiB CUDA and Linux never see) is drawn, not "free"
    firmware = max(0, total - (r.carveout_bytes or 0) - r.os_visible_bytes)
    segs = gpu_segs + [BarSegment(kind="safety", label="safety", bytes=r.safety_bytes)]
    marker = None
    if r.memory_architecture == "carveout" and r.carveout_bytes:
        unused = max(0, r.carveout_bytes - r.gpu_need_bytes - r.safety_bytes)
        segs.append(BarSegment(kind="carveout_free", label="carve-out unused", bytes=unused))
        marker = r.carveout_bytes
    segs.append(BarSegment(kind="host", label="CPU side", bytes=h_total))
    segs.append(BarSegment(kind="safety", label="safety", bytes=r.host_safety_bytes))
    segs.append(BarSegment(kind="reserve", label="OS reserve", bytes=r.reserve_bytes))
    if firmware:
        segs.append(BarSegment(kind="firmware", label="firmware", bytes=firmware))
    used = sum(s.bytes for s in segs)
    if used > total:  # cannot happen for a plan that fits; keep the bar drawable anyway
        segs = [s.model_copy(update={"bytes": 0}) if s.kind == "safety" else s for s in segs]
        used = sum(s.bytes for s in segs)
    free = max(0, total - used)
    live = profile.live
    if r.memory_architecture == "unified" and live is not None and live.mem_available_bytes is not None:
        # a probed machine: other programs hold memory now, and the plan counts only what is available
        busy = max(0, free - max(0, r.os_free_bytes))
        if busy:
            segs.append(BarSegment(kind="reserve", label="in use now", bytes=busy))
            free -= busy
    segs.append(BarSegment(kind="free", label="free", bytes=free))
    title = f"RAM {fmt_bytes(total)}"
    if r.memory_architecture == "carveout" and r.carveout_bytes:
        title += f" (carve-out {fmt_bios_size(r.carveout_bytes)} | OS {fmt_bios_size(r.os_visible_bytes)})"
    # order: the carve-out part first (GPU data fills it), then the OS side
    return [MemoryBar(title=title, total_bytes=total, segments=segs, marker_bytes=marker,
                      marker_label="end of carve-out" if marker else "")]




def plan_devices(model: PlanModel, request: PlanRequest, profiles: list[DeviceProfile],
                 **hooks: Unpack[SearchHooks]) -> MultiPlan:
    planner = Planner(model, request, **hooks)
    return MultiPlan(plans=[planner.plan(p) for p in profiles])
