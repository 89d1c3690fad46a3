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
from typing import Callable

from .estimate_types import Breakdown
from .fit_types import Check, FitResult
from .memory_kinds import kind_named
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
# (lower bound, label) from the top: the quality class a bits-per-weight figure falls in
_QUALITY_LABELS = ((NEAR_LOSSLESS_BPW, "near-lossless"), (6.5, "high"), (4.5, "good"))


def quality_class(e: Evaluation) -> tuple[float, int]:
    """Quality for ranking: the quality key with every quant of 8 bpw or more in one class."""
    bpw, size = e.quality
    return (NEAR_LOSSLESS_BPW, 0) if bpw >= NEAR_LOSSLESS_BPW else (bpw, size)


def quality_label(bpw: float | None) -> str:
    if bpw is None:
        return "unknown"
    return next((label for floor, label in _QUALITY_LABELS if bpw >= floor), "small")


def tps0(e: Evaluation) -> float:
    return e.speed0.tps if e.speed0 else 0.0


def tps_ctx(e: Evaluation) -> float:
    return e.speed_ctx.tps if e.speed_ctx else tps0(e)


def _bpw(e: Evaluation) -> float:
    return quant_bpw(e.quant) or e.quality[0]


@dataclass
class Choice:
    chosen: Evaluation | None
    pool: str  # "fast" | "fast+spill" | "fast-kv" | "slow" | "filters" | "none"
    meets: bool = True
    facts: list[Fact] = field(default_factory=list)


# what blocks first when several checks fail: RAM the OS must keep cannot be raised by any
# setting, a load path only by a smaller carve-out, the GPU cap by a sysctl or a BIOS split
_BLOCKER_ORDER = {"os_reserve": 0, "load_peak": 1, "gpu_memory": 2, "max_alloc": 3}


def real_blocker(e: Evaluation) -> tuple[FitResult, Check | None]:
    """The setting and check that really stop a quant. Where the settings weighed are GPU caps (unified
    memory), on the most generous one tried (the highest cap, the raised one where the plan raises
    it), the failure no setting can fix first (OS reserve before the GPU cap), so a reason never
    blames a cap the plan would raise; a BIOS split names its own failure (the settings table)."""
    if kind_named(e.best.memory_architecture).setting != "gpu_cap":
        return e.best, e.best.first_blocker
    r = _most_generous(e)
    fails = sorted(r.blocking_failures, key=lambda c: _BLOCKER_ORDER.get(c.name, 9))
    return r, (fails[0] if fails else None)


def _most_generous(e: Evaluation) -> FitResult:
    """Of the settings that fail (the best one when none does), the one with the highest cap."""
    opts = [o for o in e.options if o.blocking_failures] or [e.best]
    return max(opts, key=lambda o: (o.gpu_cap_bytes or 0, o.gpu_capacity_bytes))


def _prefill_of(e: Evaluation) -> tuple[float, float]:
    """(prefill t/s, seconds to the first token); none known: (0, infinity)."""
    return (e.prefill.tps, e.prefill.seconds) if e.prefill else (0.0, float("inf"))


def _passes(r: PlanRequest, tps: float, prefill_tps: float, ttft: float) -> bool:
    """The speed filters the request gives (one not given passes)."""
    return (tps >= (r.min_tps or 0) and prefill_tps >= (r.min_prefill_tps or 0)
            and ttft <= (r.max_ttft_s or float("inf")))


class Policy:
    def __init__(self, req: PlanRequest, search: Search, dev: DeviceSetup) -> None:
        self.req = req
        self.search = search
        self.dev = dev

    # ---------------------------------------------------------------- pools

    def _in(self, evals: list[Evaluation], allowed: set[str]) -> list[Evaluation]:
        """The evaluations with a configuration in `allowed` placements, refocused on it."""
        return [self.search.refocus(e, self.dev, allowed) for e in evals
                if self.search.best_of(e, self.dev, allowed) is not None]

    def _meets(self, e: Evaluation) -> bool:
        """The speed filters (--min-tps at the requested context, --min-prefill-tps, --max-ttft); a
        filter not given passes, and so does a model that generates no tokens."""
        if self.search.no_decode is not None:
            return True
        return _passes(self.req, tps_ctx(e), *_prefill_of(e))

    def _filters_on(self) -> bool:
        r = self.req
        return self.search.no_decode is None and bool(r.min_tps or r.min_prefill_tps or r.max_ttft_s)

    def _first_pool(self, evals: list[Evaluation], alts: list[Evaluation],
                    fitting: list[Evaluation]) -> tuple[list[Evaluation], str]:
        """Fast memory with the requested KV type (and shared memory with --allow-spill); else fast
        memory with a quantized KV cache; else every slow option."""
        spill = self.req.allow_spill
        pools: list[tuple[str, Callable[[], list[Evaluation]]]] = [
            ("fast+spill" if spill else "fast", lambda: self._in(evals, {"fast", "spill"} if spill else {"fast"})),
            ("fast-kv", lambda: self._in(alts, {"fast"})),
            ("slow", lambda: [e for e in fitting if e.kv == self.req.cache_type_k] or fitting),
        ]
        for name, pool in pools:
            found = pool()
            if found:
                return found, name
        return fitting, "slow"

    def _meeting(self, pool: list[Evaluation], name: str, everything: list[Evaluation]) -> tuple[list[Evaluation], str]:
        """The pool's options that meet the speed filters; when none does, every fitting option
        that does (pool "filters"); [] when nothing meets them."""
        ok = [e for e in pool if self._meets(e)]
        if ok:
            return ok, name
        widened = [e for e in self._in(everything, {"fast", "spill", "partial"}) if self._meets(e)]
        return widened, ("filters" if widened else name)

    def choose(self, evals: list[Evaluation], alts: list[Evaluation]) -> Choice:
        fitting = [e for e in evals + alts if e.best.fits]
        if not fitting:
            return Choice(None, "none", meets=False)
        pool, name = self._first_pool(evals, alts, fitting)
        if self._filters_on():
            ok, name = self._meeting(pool, name, evals + alts)
            if not ok:  # nothing meets them: the fastest is shown and the plan says so
                return Choice(max(pool, key=tps_ctx), name, meets=False)
            pool = ok
        if name == "slow" and self.req.prefer != "speed":
            pool = self.usable_slow(pool)
        return Choice(self.by_policy(pool), name, meets=True)

    @staticmethod
    def usable_slow(pool: list[Evaluation]) -> list[Evaluation]:
        """Slow options (spill, partial offload) within PARTIAL_MIN_SPEED_SHARE of the fastest one."""
        fastest = max((tps0(e) for e in pool), default=0.0)
        return [e for e in pool if e.speed0 and tps0(e) >= PARTIAL_MIN_SPEED_SHARE * fastest] or pool

    def _best_quality(self, items: list[Evaluation]) -> Evaluation:
        req_kv = self.req.cache_type_k
        return max(items, key=lambda e: (quality_class(e), e.kv == req_kv, tps0(e), e.quality))

    def _balanced(self, pool: list[Evaluation]) -> Evaluation:
        return self._best_quality([e for e in pool if _bpw(e) <= BALANCED_MAX_BPW] or pool)

    def _fastest(self, pool: list[Evaluation]) -> Evaluation:
        req_kv = self.req.cache_type_k
        floor = [e for e in pool if _bpw(e) >= SPEED_MIN_BPW]
        return max(floor or pool, key=lambda e: (round(tps0(e), 1), e.kv == req_kv, e.quality))

    def by_policy(self, pool: list[Evaluation], prefer: Prefer | None = None) -> Evaluation:
        """--prefer quality: the best quality class (near-lossless counted as one, the fastest of it);
        balanced: up to Q6_K class; speed: the fastest 4-bit or better."""
        rules: dict[str, Callable[[list[Evaluation]], Evaluation]] = {
            "quality": self._best_quality, "balanced": self._balanced, "speed": self._fastest}
        return rules[prefer or self.req.prefer](pool)

    # ---------------------------------------------------------------- facts

    def facts(self, choice: Choice, evals: list[Evaluation], alts: list[Evaluation], ctx: int) -> list[Fact]:
        """Why this option: the facts the reports word, each a code with its numbers."""
        c = choice.chosen
        if c is None:
            return []
        kv_fact = ([Fact(code="kv_quantized_to_stay_fast", quant=c.quant, values={"kv": c.kv, "requested": self.req.cache_type_k})]
                   if choice.pool == "fast-kv" else [])
        faster = self._faster_alternative(c, evals)
        return [self._chosen_fact(c, choice, ctx), *kv_fact, *self._next_quality(c, evals),
                *self._kv_alternative(c, alts), *([faster] if faster else []), *self._split_facts(c),
                *self._filters_fact(choice), *self._uncalibrated_fact(c)]

    def _chosen_fact(self, c: Evaluation, choice: Choice, ctx: int) -> Fact:
        r = c.best
        fast_margin = c.placement == "fast" and r.spills_slowly  # in fast memory: only the estimate margins
        return Fact(code="chosen", quant=c.quant, values={
            "placement": c.placement, "pool": choice.pool, "prefer": self.req.prefer, "ctx": ctx,
            "kv": c.kv, "fast_label": r.fast_label, "spare_bytes": self.spare(c),
            "safety_bytes": r.margin_bytes if fast_margin else r.safety_bytes,
            "tier": r.tier, "memory_architecture": r.memory_architecture})

    def _filters_fact(self, choice: Choice) -> list[Fact]:
        if choice.meets or not self._filters_on():
            return []
        return [Fact(code="filters_unmet", values={"min_tps": self.req.min_tps, "min_prefill_tps": self.req.min_prefill_tps,
                                                   "max_ttft_s": self.req.max_ttft_s})]

    def _uncalibrated_fact(self, c: Evaluation) -> list[Fact]:
        if c.speed0 is None or c.speed0.calibrated:
            return []
        comp = self.search.compute(c.variant)
        return [Fact(code="speed_uncalibrated", values={"backend": c.best.config.backend,
                                                        "family": comp.family if comp else "unknown"})]

    def spare(self, c: Evaluation) -> int:
        """Room left for the chosen option: in fast memory where it must stay there (a Windows
        carve-out), GPU room that is also OS room on unified memory, else GPU room beyond the safety."""
        return self.dev.kind.spare_bytes(c.best, fast_only=c.placement == "fast")

    # ---------------------------------------------------------------- the next quant up

    def _next_spills(self, c: Evaluation, nxt: Evaluation) -> Fact | None:
        spill = self.search.best_of(nxt, self.dev, {"spill"})
        if spill is None or self.req.allow_spill:
            return None
        r, b = spill
        est_tps, if_fast = self._spilled_speeds(nxt, r, b)
        return Fact(code="next_quality_spills", quant=nxt.quant, values={
            "spill_bytes": r.spill_risk_bytes, "spill_label": r.spill_label or "shared memory",
            "est_tps": est_tps, "est_tps_if_fast": if_fast,
            "chosen_tps": tps0(c) if c.speed0 else None, "slowdown": r.shared_slowdown,
            "carveout_bytes": r.carveout_bytes})

    def _spilled_speeds(self, nxt: Evaluation, r: FitResult, b: Breakdown) -> tuple[float | None, float | None]:
        """A spilling quant's decode speed, and what it would be all in fast memory (None, None
        when decode speeds are off)."""
        sp = self.search.speed(b, r, self.dev, 0, nxt.variant)
        fast_equiv = self.search.speed(b, r.model_copy(update={"shared_fraction": 0.0}), self.dev, 0, nxt.variant)
        if self.search.no_decode is not None:
            return None, None
        return sp.tps, fast_equiv.tps

    @staticmethod
    def _next_blocked(c: Evaluation, nxt: Evaluation) -> Fact | None:
        if nxt.best.fits:
            return None
        r, blocker = real_blocker(nxt)
        return Fact(code="next_quality_blocked", quant=nxt.quant, values={
            "check": blocker.name if blocker else "", "message": blocker.message if blocker else "does not fit",
            "carveout_bytes": r.carveout_bytes, "gpu_cap_bytes": r.gpu_cap_bytes if cap_raised(r) else None})

    @staticmethod
    def _next_partial(c: Evaluation, nxt: Evaluation) -> Fact | None:
        if nxt.placement != "partial":
            return None
        return Fact(code="next_quality_partial", quant=nxt.quant, values={"est_tps": tps0(nxt) or None})

    def _next_same_class(self, c: Evaluation, nxt: Evaluation) -> Fact | None:
        if self.req.prefer != "quality" or quality_class(nxt) != quality_class(c):
            return None
        return Fact(code="next_quality_same_class", quant=nxt.quant, values={
            "est_tps": tps0(nxt) or None, "chosen_tps": tps0(c) or None})

    def _next_too_slow(self, c: Evaluation, nxt: Evaluation) -> Fact | None:
        min_tps = self.req.min_tps
        if not (min_tps and nxt.speed_ctx and nxt.speed_ctx.tps < min_tps):
            return None
        return Fact(code="next_quality_too_slow", quant=nxt.quant, values={
            "est_tps_at_ctx": nxt.speed_ctx.tps, "min_tps": min_tps})

    def _next_up(self, c: Evaluation, evals: list[Evaluation]) -> Evaluation | None:
        """The next quant up in quality with the requested KV type (None: the choice is the best)."""
        req_kv = self.req.cache_type_k
        better = [e for e in evals if e.quality > c.quality and e.kv == req_kv and e.quant != c.quant]
        return min(better, key=lambda e: e.quality, default=None)

    def _next_quality(self, c: Evaluation, evals: list[Evaluation]) -> list[Fact]:
        """Why not the next quant up in quality: the first of its reasons that applies."""
        nxt = self._next_up(c, evals) if c.placement != "partial" else None
        if nxt is None:
            return []
        rules = (self._next_spills, self._next_blocked, self._next_partial, self._next_same_class, self._next_too_slow)
        found = next((f for f in (rule(c, nxt) for rule in rules) if f is not None), None)
        return [found] if found else []

    def _kv_alternative(self, c: Evaluation, alts: list[Evaluation]) -> list[Fact]:
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

    def _balanced_pick(self, c: Evaluation, evals: list[Evaluation]) -> Evaluation | None:
        """What --prefer balanced would pick in the chosen option's memory class (None: the same)."""
        if not self._may_balance(c):
            return None
        on_gpu = [e for e in self._in(evals, {c.placement}) if e.speed0]
        alt = self.by_policy(on_gpu, "balanced") if on_gpu else None
        return alt if alt is not None and alt.quant != c.quant and alt.speed0 else None

    def _may_balance(self, c: Evaluation) -> bool:
        """Whether a faster quant is worth naming: --prefer quality, on the GPU, with a speed."""
        return self.req.prefer == "quality" and c.placement in ("fast", "spill") and bool(c.speed0)

    def _faster_alternative(self, c: Evaluation, evals: list[Evaluation]) -> Fact | None:
        """A much faster quant of nearly the same quality (what --prefer balanced would pick)."""
        alt = self._balanced_pick(c, evals)
        if alt is None:
            return None
        ratio = tps0(alt) / max(tps0(c), 1e-9)
        if ratio < FASTER_ALTERNATIVE_RATIO:
            return None
        return Fact(code="faster_alternative", quant=alt.quant, values={
            "ratio": round(ratio, 2), "est_tps": tps0(alt), "chosen_tps": tps0(c)})

    # ---------------------------------------------------------------- the machine setting

    def _split_facts(self, c: Evaluation) -> list[Fact]:
        """The machine setting: the split and what the OS keeps, the OS's lever, what larger splits
        would cost (the load path); on unified memory what the OS keeps; then the spill cost."""
        r = c.best
        if r.carveout_bytes is not None:
            setting = self._carveout_facts(c, r)
        else:
            setting = _unified_facts(r) if self.dev.kind.one_pool else []
        return setting + self._shared_facts(c, r)

    def _carveout_facts(self, c: Evaluation, r: FitResult) -> list[Fact]:
        out = [Fact(code="split", values={
            "carveout_bytes": r.carveout_bytes, "os_keeps_bytes": r.os_visible_bytes, "os_free_bytes": r.os_free_bytes,
            "reserve_bytes": r.reserve_bytes, "os": r.config.os, "use": r.config.use,
            "desktop_gpu_bytes": r.gpu_reserve_bytes})]
        if self.dev.lever:
            out.append(Fact(code="os_lever", values={"os": r.config.os, "text": self.dev.lever}))
        return out + _larger_split_blocked(c, r)

    @staticmethod
    def _shared_facts(c: Evaluation, r: FitResult) -> list[Fact]:
        if c.placement == "spill":
            return [Fact(code="spill_cost", values={
                "spill_bytes": r.shared_used_bytes, "label": r.spill_label or "shared memory",
                "slowdown": r.shared_slowdown, "text": r.shared_cost})]
        if r.tier == "shared" and r.shared_used_bytes:
            return [Fact(code="shared_no_cost", values={"shared_bytes": r.shared_used_bytes, "text": r.shared_cost})]
        return []


def _unified_facts(r: FitResult) -> list[Fact]:
    """On unified memory: what the OS keeps."""
    return [Fact(code="unified_reserve", values={
        "os_free_bytes": r.os_free_bytes, "reserve_bytes": r.reserve_bytes, "os": r.config.os,
        "use": r.config.use})]


_OS_SIDE = ("load_peak", "os_reserve")  # failures a larger carve-out makes: the OS side's


def _os_side_failure(o: FitResult) -> Check | None:
    """The OS side's failure of a split (loading first: it fails whatever the use), if any."""
    fails = [x for x in o.blocking_failures if x.name in _OS_SIDE]
    return min(fails, key=lambda x: x.name != "load_peak") if fails else None


def _larger_split_blocked(c: Evaluation, r: FitResult) -> list[Fact]:
    """What the smallest larger split that fails on the OS side says."""
    blocked = _larger_failing_splits(c, r.carveout_bytes or 0)
    if not blocked:
        return []
    _, why, o = min(blocked, key=lambda t: t[0])
    return [Fact(code="larger_split_blocked", values={
        "carveout_bytes": o.carveout_bytes, "check": why.name, "message": why.message})]


def _larger_failing_splits(c: Evaluation, carve: int) -> list[tuple[int, Check, FitResult]]:
    """The splits larger than `carve` that fail on the OS side, with their failure."""
    return [(o.carveout_bytes or 0, why, o) for o in c.options
            if (o.carveout_bytes or 0) > carve and (why := _os_side_failure(o)) is not None]


def gib(n: int) -> float:
    return round(n / GIB, 2)


__all__ = ["Policy", "Choice", "quality_class", "quality_label", "placement", "tps0", "tps_ctx",
           "PARTIAL_MIN_SPEED_SHARE", "NEAR_LOSSLESS_BPW"]
