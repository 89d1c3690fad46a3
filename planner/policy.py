"""The policy: which of the weighed options to recommend, and the facts behind the choice.

Rules, in order (each is a function below; the facts are codes with numbers, worded by
planner/explain.py):
1. Fast memory first. Candidates whose every GPU byte runs at device speed (the carve-out on
   Windows; carve-out + GTT on Linux; unified memory; VRAM) with the requested KV type. A quant that
   would spill into slower shared memory (Windows shared GPU memory on Vulkan: 2.48x slower, field
   A1/A2) is an alternative with its speed cost, recommended only with --allow-spill or when nothing
   else runs on the GPU.
2. When nothing runs in fast memory with the requested KV type and the user did not fix it, the
   same with a q8_0 KV cache (half the KV memory, a small quality cost), before spilling or
   offloading layers to the CPU.
3. Otherwise the slow options (spill, partial offload): among those within half of the fastest
   one's speed, by --prefer.
4. --min-tps (at the requested context), --min-prefill-tps and --max-ttft filter; when nothing in
   the pool meets them every fitting option is tried; when none does, the fastest is shown and
   the plan says so (exit 3).
5. --prefer quality (default): the best quality class, Q8_0/F16/BF16 counted as one near-lossless
   class of which the fastest wins; balanced: up to Q6_K class; speed: the fastest >= 4-bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .fit import Check, FitResult
from .plan_types import Fact, PlanRequest, Prefer
from .search import DeviceSetup, Evaluation, Search, cap_raised, placement
from .units import GIB
from .variants import quant_bpw

BALANCED_MAX_BPW = 6.6  # Q6_K class: above it quality gains are within noise, decode cost is not
SPEED_MIN_BPW = 4.0  # --prefer speed never drops below 4-bit class when a 4-bit quant fits
# When nothing runs fully on the GPU, every step up in quality costs speed steeply (BF16 of a 32B
# model on a 24 GB card: 1 t/s). Quality then only counts among options at least this share as fast
# as the fastest one.
PARTIAL_MIN_SPEED_SHARE = 0.5
FASTER_ALTERNATIVE_RATIO = 1.5  # name a faster quant in the facts when it decodes this much faster
# Above 8 bits per weight quality is within measurement noise: llama.cpp's quantize table
# (tools/quantize/quantize.cpp, b11434) gives Q8_0 +0.0026 ppl at Llama-3-8B and F16 +0.0020 /
# BF16 -0.0050 ppl at Mistral-7B, against Q6_K's +0.0217.
NEAR_LOSSLESS_BPW = 8.0


def quality_class(e: Evaluation) -> tuple[float, int]:
    """Quality for ranking: the quality key with every quant of 8 bpw or more in one class."""
    bpw, size = e.quality
    return (NEAR_LOSSLESS_BPW, 0) if bpw >= NEAR_LOSSLESS_BPW else (bpw, size)


def quality_label(bpw: float | None) -> str:
    if bpw is None:
        return "unknown"
    if bpw >= NEAR_LOSSLESS_BPW:
        return "near-lossless"
    if bpw >= 6.5:
        return "high"
    if bpw >= 4.5:
        return "good"
    return "small"


def tps0(e: Evaluation) -> float:
    return e.speed0.tps if e.speed0 else 0.0


def tps_ctx(e: Evaluation) -> float:
    return e.speed_ctx.tps if e.speed_ctx else tps0(e)


@dataclass
class Choice:
    chosen: Evaluation | None
    pool: str  # "fast" | "fast+spill" | "fast-kv" | "slow" | "none"
    meets: bool = True
    facts: list[Fact] = field(default_factory=list)


# what blocks first when several checks fail: RAM the OS must keep cannot be raised by any
# setting, a load path only by a smaller carve-out, the GPU cap by a sysctl or a BIOS split
_BLOCKER_ORDER = {"os_reserve": 0, "load_peak": 1, "gpu_memory": 2, "max_alloc": 3}


def real_blocker(e: Evaluation) -> tuple[FitResult, Check | None]:
    """The setting and check that really stop a quant: on the most generous configuration tried
    (the highest GPU cap, the raised one where the plan raises it), the failure no setting can fix
    first (OS reserve before the GPU cap), so a reason never blames a cap the plan would raise."""
    if e.best.memory_architecture != "unified":  # a carve-out row names its own failure (the BIOS table)
        fails = e.best.blocking_failures
        return e.best, (fails[0] if fails else None)
    opts = [o for o in e.options if o.blocking_failures] or [e.best]
    r = max(opts, key=lambda o: (o.gpu_cap_bytes or 0, o.gpu_capacity_bytes))
    fails = sorted(r.blocking_failures, key=lambda c: _BLOCKER_ORDER.get(c.name, 9))
    return r, (fails[0] if fails else None)


class Policy:
    def __init__(self, req: PlanRequest, search: Search, dev: DeviceSetup) -> None:
        self.req = req
        self.search = search
        self.dev = dev

    # ---------------------------------------------------------------- pools

    def _in(self, evals: list[Evaluation], allowed: set[str]) -> list[Evaluation]:
        out = []
        for e in evals:
            if self.search.best_of(e, self.dev, allowed) is None:
                continue
            out.append(self.search.refocus(e, self.dev, allowed))
        return out

    def _meets(self, e: Evaluation) -> bool:
        r = self.req
        if self.search.no_decode is not None:
            return True
        if r.min_tps and tps_ctx(e) < r.min_tps:
            return False
        if r.min_prefill_tps and (e.prefill is None or e.prefill.tps < r.min_prefill_tps):
            return False
        if r.max_ttft_s and (e.prefill is None or e.prefill.seconds > r.max_ttft_s):
            return False
        return True

    def _filters_on(self) -> bool:
        r = self.req
        return self.search.no_decode is None and bool(r.min_tps or r.min_prefill_tps or r.max_ttft_s)

    def choose(self, evals: list[Evaluation], alts: list[Evaluation]) -> Choice:
        fitting = [e for e in evals if e.best.fits] + [a for a in alts if a.best.fits]
        if not fitting:
            return Choice(None, "none", meets=False)
        fast = self._in(evals, {"fast", "spill"} if self.req.allow_spill else {"fast"})
        pool_name = "fast+spill" if self.req.allow_spill else "fast"
        pool = fast
        if not pool:
            pool = self._in(alts, {"fast"})
            pool_name = "fast-kv"
        if not pool:
            pool = [e for e in fitting if e.kv == self.req.cache_type_k] or fitting
            pool_name = "slow"
        meets = True
        if self._filters_on():
            ok = [e for e in pool if self._meets(e)]
            if not ok:
                widened = self._in(evals + alts, {"fast", "spill", "partial"})
                ok = [e for e in widened if self._meets(e)]
                if ok:
                    pool_name = "filters"
            if ok:
                pool = ok
            else:
                best = max(pool, key=tps_ctx)
                return Choice(best, pool_name, meets=False)
        if pool_name == "slow" and self.req.prefer != "speed":
            pool = self.usable_slow(pool)
        return Choice(self.by_policy(pool), pool_name, meets=meets)

    @staticmethod
    def usable_slow(pool: list[Evaluation]) -> list[Evaluation]:
        """Slow options (spill, partial offload) within PARTIAL_MIN_SPEED_SHARE of the fastest one."""
        fastest = max((tps0(e) for e in pool), default=0.0)
        return [e for e in pool if e.speed0 and tps0(e) >= PARTIAL_MIN_SPEED_SHARE * fastest] or pool

    def by_policy(self, pool: list[Evaluation], prefer: Prefer | None = None) -> Evaluation:
        prefer = prefer or self.req.prefer
        req_kv = self.req.cache_type_k

        def best_quality(items: list[Evaluation]) -> Evaluation:
            return max(items, key=lambda e: (quality_class(e), e.kv == req_kv, tps0(e), e.quality))

        if prefer == "balanced":
            capped = [e for e in pool if (quant_bpw(e.quant) or e.quality[0]) <= BALANCED_MAX_BPW]
            return best_quality(capped or pool)
        if prefer == "speed":
            floor = [e for e in pool if (quant_bpw(e.quant) or e.quality[0]) >= SPEED_MIN_BPW]
            return max(floor or pool, key=lambda e: (round(tps0(e), 1), e.kv == req_kv, e.quality))
        return best_quality(pool)

    # ---------------------------------------------------------------- facts

    def facts(self, choice: Choice, evals: list[Evaluation], alts: list[Evaluation], ctx: int) -> list[Fact]:
        """Why this option: the facts the reports word, each a code with its numbers."""
        c = choice.chosen
        if c is None:
            return []
        out: list[Fact] = []
        r = c.best
        out.append(Fact(code="chosen", quant=c.quant, values={
            "placement": c.placement, "pool": choice.pool, "prefer": self.req.prefer, "ctx": ctx,
            "kv": c.kv, "fast_label": r.fast_label, "spare_bytes": self._spare(c),
            "safety_bytes": r.safety_bytes if c.placement != "fast" or r.shared_slowdown <= 1.0 else r.margin_bytes,
            "tier": r.tier, "memory_architecture": r.memory_architecture}))
        if choice.pool == "fast-kv":
            out.append(Fact(code="kv_quantized_to_stay_fast", quant=c.quant, values={"kv": c.kv, "requested": self.req.cache_type_k}))
        out += self._next_quality(c, evals, choice)
        out += self._kv_alternative(c, evals, alts)
        faster = self._faster_alternative(c, evals)
        if faster:
            out.append(faster)
        out += self._split_facts(c, evals)
        if not choice.meets and self._filters_on():
            out.append(Fact(code="filters_unmet", values={"min_tps": self.req.min_tps,
                                                          "min_prefill_tps": self.req.min_prefill_tps,
                                                          "max_ttft_s": self.req.max_ttft_s}))
        if c.speed0 is not None and not c.speed0.calibrated:
            out.append(Fact(code="speed_uncalibrated", values={"backend": r.config.backend,
                                                               "family": self.search.compute(c.variant).family
                                                               if self.search.compute(c.variant) else "unknown"}))
        return out

    def _spare(self, c: Evaluation) -> int:
        r = c.best
        if c.placement == "fast" and r.memory_architecture == "carveout" and r.shared_slowdown > 1.0:
            return r.fast_spare_bytes
        if r.memory_architecture == "unified":  # one pool: the GPU's room is also the OS's room
            return min(r.gpu_headroom_bytes - r.safety_bytes, r.os_free_bytes)
        return r.gpu_headroom_bytes - r.safety_bytes

    def _next_quality(self, c: Evaluation, evals: list[Evaluation], choice: Choice) -> list[Fact]:
        better = [e for e in evals if e.quality > c.quality and e is not c and e.kv == self.req.cache_type_k
                  and e.quant != c.quant]
        if not better or c.placement == "partial":
            return []
        nxt = min(better, key=lambda e: e.quality)
        spill = self.search.best_of(nxt, self.dev, {"spill"})
        if spill is not None and not self.req.allow_spill:
            r, b = spill
            sp = self.search.speed(b, r, self.dev, 0, nxt.variant)
            fast_equiv = self.search.speed(b, r.model_copy(update={"shared_fraction": 0.0}), self.dev, 0, nxt.variant)
            return [Fact(code="next_quality_spills", quant=nxt.quant, values={
                "spill_bytes": max(r.shared_used_bytes, -r.fast_spare_bytes), "spill_label": r.spill_label or "shared memory",
                "est_tps": sp.tps if self.search.no_decode is None else None,
                "est_tps_if_fast": fast_equiv.tps if self.search.no_decode is None else None,
                "chosen_tps": tps0(c) if c.speed0 else None, "slowdown": r.shared_slowdown,
                "carveout_bytes": r.carveout_bytes})]
        if not nxt.best.fits:
            r, blocker = real_blocker(nxt)
            return [Fact(code="next_quality_blocked", quant=nxt.quant, values={
                "check": blocker.name if blocker else "", "message": blocker.message if blocker else "does not fit",
                "carveout_bytes": r.carveout_bytes, "gpu_cap_bytes": r.gpu_cap_bytes if cap_raised(r) else None})]
        if nxt.placement == "partial":
            return [Fact(code="next_quality_partial", quant=nxt.quant, values={"est_tps": tps0(nxt) or None})]
        if self.req.prefer == "quality" and quality_class(nxt) == quality_class(c):
            return [Fact(code="next_quality_same_class", quant=nxt.quant, values={
                "est_tps": tps0(nxt) or None, "chosen_tps": tps0(c) or None})]
        if self.req.min_tps and nxt.speed_ctx and nxt.speed_ctx.tps < self.req.min_tps:
            return [Fact(code="next_quality_too_slow", quant=nxt.quant, values={
                "est_tps_at_ctx": nxt.speed_ctx.tps, "min_tps": self.req.min_tps})]
        return []

    def _kv_alternative(self, c: Evaluation, evals: list[Evaluation], alts: list[Evaluation]) -> list[Fact]:
        """The best quant above the chosen one that would run in fast memory with a q8_0 KV cache."""
        if c.kv != self.req.cache_type_k:
            return []
        better = sorted((a for a in alts if a.quality > c.quality), key=lambda a: a.quality, reverse=True)
        for a in better:
            pick = self.search.best_of(a, self.dev, {"fast"})
            if pick is not None:
                return [Fact(code="kv_q8_unlocks", quant=a.quant, values={
                    "kv": a.kv, "carveout_bytes": pick[0].carveout_bytes, "placement": "fast"})]
        return []

    def _faster_alternative(self, c: Evaluation, evals: list[Evaluation]) -> Fact | None:
        """A much faster quant of nearly the same quality (what --prefer balanced would pick)."""
        if self.req.prefer != "quality" or c.placement not in ("fast", "spill") or not c.speed0:
            return None
        on_gpu = [e for e in self._in(evals, {c.placement}) if e.speed0]
        if not on_gpu:
            return None
        alt = self.by_policy(on_gpu, "balanced")
        if alt.quant == c.quant or not alt.speed0:
            return None
        ratio = tps0(alt) / max(tps0(c), 1e-9)
        if ratio < FASTER_ALTERNATIVE_RATIO:
            return None
        return Fact(code="faster_alternative", quant=alt.quant, values={
            "ratio": round(ratio, 2), "est_tps": tps0(alt), "chosen_tps": tps0(c)})

    def _split_facts(self, c: Evaluation, evals: list[Evaluation]) -> list[Fact]:
        """The machine setting: the split and what the OS keeps, the OS's lever, what larger splits
        would cost (the load path), spill cost, the cap change."""
        r = c.best
        out: list[Fact] = []
        if r.carveout_bytes is not None:
            out.append(Fact(code="split", values={
                "carveout_bytes": r.carveout_bytes, "os_keeps_bytes": r.os_visible_bytes, "os_free_bytes": r.os_free_bytes,
                "reserve_bytes": r.reserve_bytes, "os": r.config.os, "use": r.config.use,
                "desktop_gpu_bytes": r.gpu_reserve_bytes}))
            if self.dev.lever:
                out.append(Fact(code="os_lever", values={"os": r.config.os, "text": self.dev.lever}))
            bigger = [o for o in c.options if (o.carveout_bytes or 0) > (r.carveout_bytes or 0)]
            blocked = [o for o in bigger if not o.fits and any(x.name in ("load_peak", "os_reserve") for x in o.blocking_failures)]
            if blocked:
                o = min(blocked, key=lambda o: o.carveout_bytes or 0)
                why = min((x for x in o.blocking_failures if x.name in ("load_peak", "os_reserve")),
                          key=lambda x: x.name != "load_peak")  # loading fails whatever the use
                out.append(Fact(code="larger_split_blocked", values={
                    "carveout_bytes": o.carveout_bytes, "check": why.name, "message": why.message}))
        elif r.memory_architecture == "unified":
            out.append(Fact(code="unified_reserve", values={
                "os_free_bytes": r.os_free_bytes, "reserve_bytes": r.reserve_bytes, "os": r.config.os, "use": r.config.use}))
        if c.placement == "spill":
            out.append(Fact(code="spill_cost", values={
                "spill_bytes": r.shared_used_bytes, "label": r.spill_label or "shared memory",
                "slowdown": r.shared_slowdown, "text": r.shared_cost}))
        elif r.tier == "shared" and r.shared_used_bytes:
            out.append(Fact(code="shared_no_cost", values={"shared_bytes": r.shared_used_bytes, "text": r.shared_cost}))
        return out


def gib(n: int) -> float:
    return round(n / GIB, 2)


__all__ = ["Policy", "Choice", "quality_class", "quality_label", "placement", "tps0", "tps_ctx",
           "PARTIAL_MIN_SPEED_SHARE", "NEAR_LOSSLESS_BPW"]
