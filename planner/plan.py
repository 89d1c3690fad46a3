"""The planner: every quant x every device configuration x contexts -> one recommendation.

For one model (all its quant variants), a context and a device it:
1. estimates each variant fully offloaded (planner.estimator; cached per settings);
2. places it on every configuration the device offers (planner.fit): each BIOS carve-out option,
   and where the OS lets the user raise the GPU cap (Linux GTT, macOS wired limit) the smallest
   raised cap that holds it; falls back to partial offload when nothing holds it fully;
3. picks each variant's best configuration by the OS strategy (STRATEGIES: Linux prefers a small
   carve-out + GTT, Windows a carve-out that holds the model, since shared memory is fixed there);
4. finds each variant's largest context (f16 and q8_0 KV) by binary search, and its decode speed
   (planner.speed, an estimate);
5. recommends one variant by policy (--prefer quality|speed|balanced, --min-tps) and explains why.
Nothing here prints: the reports render a DevicePlan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .archs import rule_for
from .device_schema import DeviceProfile
from .errors import DeviceError, EstimateError, InputError
from .estimate_types import Breakdown, FlashAttn, RunSettings
from .fit import TIER_LABEL, FitConfig, FitResult, ceil_gib, largest_kv_tensor_bytes, last_fitting, place, solve
from .header import ModelHeaders
from .launch import build_commands
from .plan_types import (BarSegment, CapChange, CarveoutOption, DevicePlan, DeviceSummary, MemoryBar,
                         ModelSummary, MultiPlan, PlanModel, PlanProjector, PlanRequest, PlanVariant, Prefer,
                         Recommendation, VariantPlan)
from .speed import SpeedEstimate, estimate_speed, moe_ratio
from .units import GIB, fmt_bios_size, fmt_bytes, fmt_ctx
from .variants import quality_key, quant_bpw

__all__ = ["Planner", "plan_devices", "PlanModel", "PlanProjector", "PlanRequest", "PlanVariant", "MultiPlan",
           "DevicePlan", "largest_gpu_weight_bytes", "memory_bars", "assumptions"]

CTX_STEP = 256  # llama.cpp pads the KV cache to 256 cells
DEFAULT_CTX_CAP = 32768  # without --ctx: the training context, capped here
BALANCED_MAX_BPW = 6.6  # Q6_K class: above it quality gains are within noise, decode cost is not
SPEED_MIN_BPW = 4.0  # --prefer speed never drops below 4-bit class when a 4-bit quant fits
# When no quant runs fully on the GPU, every step up in quality moves layers to the CPU and costs
# speed steeply (BF16 of a 32B model on a 24 GB card: 1 t/s). Quality then only counts among the
# quants at least this share as fast as the fastest partial offload.
PARTIAL_MIN_SPEED_SHARE = 0.5
FASTER_ALTERNATIVE_RATIO = 1.5  # name a faster quant in the reasons when it decodes this much faster
# Above 8 bits per weight quality is within measurement noise: llama.cpp's own quantize table
# (tools/quantize/quantize.cpp, b11434) gives Q8_0 +0.0026 ppl at Llama-3-8B and F16 +0.0020 /
# BF16 -0.0050 ppl at Mistral-7B, against Q6_K's +0.0217. So `quality` treats Q8_0, F16, BF16 and
# F32 as one class and takes the fastest of them: BF16 decodes at half Q8_0's speed for nothing.
NEAR_LOSSLESS_BPW = 8.0
_EST_BACKENDS = ("cpu", "cuda", "rocm", "vulkan", "metal")  # RunSettings.backend values


# --------------------------------------------------------------------------- strategy tables


@dataclass(frozen=True)
class Strategy:
    """How to rank configurations that all fit, per memory architecture and OS."""

    prefer_dedicated: bool  # dedicated beats shared even when shared costs no speed
    lever: str  # one line for the reasons: what the user changes on this OS and why


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("carveout", "linux"): Strategy(False, (
        "on Linux AMD recommends a small carve-out with a raised GTT limit: carve-out and GTT are the same "
        "DRAM at the same speed, and RAM in the carve-out is lost to the OS (ROCm Strix Halo guide; amd/skills)")),
    ("carveout", "windows"): Strategy(True, (
        "on Windows the carve-out is the only lever: WDDM fixes shared GPU memory at about half of the RAM "
        "Windows sees and it cannot be raised (Microsoft graphics-memory formula; amd/skills), and older "
        "drivers ran Vulkan up to 2.5x slower from shared memory")),
    ("unified", "macos"): Strategy(True, (
        "macOS lets the GPU wire a share of RAM (iogpu.wired_limit_mb); raising it needs no reboot but "
        "resets at reboot")),
}
_DEFAULT_STRATEGY = Strategy(True, "")


# --------------------------------------------------------------------------- internals


@dataclass
class _Eval:
    """A variant on one device at the requested context: its best configuration and the rest."""

    variant: PlanVariant
    full: Breakdown  # full offload at the requested ctx
    best: FitResult
    best_bd: Breakdown
    options: list[FitResult]  # full-offload result per carve-out option (cap raised where it helps)
    speed0: SpeedEstimate | None = None
    speed_ctx: SpeedEstimate | None = None
    max_ctx: dict[str, int | None] = field(default_factory=dict)
    max_ctx_mode: str = "gpu"
    quality: tuple[float, int] = (0.0, 0)


def _tier_rank(r: FitResult, strategy: Strategy) -> int:
    if r.tier == "dedicated":
        return 0
    if r.tier == "shared":
        return 1 if (strategy.prefer_dedicated or r.shared_slowdown > 1.0) else 0
    if r.tier == "partial_offload":
        return 2
    return 3


def _cap_raised(r: FitResult) -> bool:
    return (r.config.gpu_cap_bytes is not None and r.gpu_cap_default_bytes is not None
            and r.gpu_cap_bytes is not None and r.gpu_cap_bytes > r.gpu_cap_default_bytes)


def _n_params(headers: ModelHeaders) -> int:
    return sum(t.n_elements for t in headers.tensors)


def largest_gpu_weight_bytes(headers: ModelHeaders) -> int:
    """The largest weight tensor that goes to a GPU buffer. token_embd stays on the CPU unless it is
    also the output head (tied embeddings: llama.cpp duplicates it for the output layer)."""
    tied = not any(t.name == "output.weight" for t in headers.tensors)
    return max((t.nbytes for t in headers.tensors if tied or t.name != "token_embd.weight"), default=0)


def _ctx_train(headers: ModelHeaders) -> int | None:
    arch = headers.metadata.get("general.architecture")
    v = headers.metadata.get(f"{arch}.context_length")
    try:
        return int(v) if v else None
    except (TypeError, ValueError):
        return None


def no_decode_reason(headers: ModelHeaders) -> str | None:
    """Why a model has no decode speed, or None when it generates tokens. Embedding and encoder
    models (bert, nomic-bert, gemma-embedding...: planner/archs.py marks them `no_output_head`) read
    each input in one pass and produce a vector, so tokens/s of generation does not apply."""
    arch = headers.architecture
    if rule_for(arch).no_output_head:
        return (f"{arch} is an embedding (encoder) model, which reads each input in one pass and generates "
                "no tokens, so decode speed does not apply")
    return None


def _default_estimate(facts: Any, settings: RunSettings, mmproj: Any) -> Breakdown:
    from .estimator import estimate  # imported late: the planner is testable without it

    return estimate(facts, settings, mmproj=mmproj)


def _default_facts(headers: ModelHeaders) -> Any:
    from .model_facts import ModelFacts

    return ModelFacts.from_headers(headers)


class Planner:
    """Plans one model on any number of devices; estimates are cached across devices."""

    def __init__(self, model: PlanModel, request: PlanRequest, *,
                 estimate_fn: Callable[[Any, RunSettings, Any], Breakdown] | None = None,
                 facts_fn: Callable[[ModelHeaders], Any] | None = None) -> None:
        if not model.variants:
            raise InputError(f"{model.name}: no GGUF variants to plan")
        self.model = model
        self.req = request
        self._estimate = estimate_fn or _default_estimate
        self._facts_fn = facts_fn or _default_facts
        self._facts: dict[str, Any] = {}
        self._cache: dict[tuple, Breakdown] = {}  # keeps every breakdown alive, so id() keys below are stable
        self._kv_max: dict[int, int] = {}
        self.n_estimates = 0
        first = model.variants[0].headers
        self.n_params = _n_params(first)
        self.ratio = moe_ratio(first.metadata)
        self.n_ctx_train = _ctx_train(first)
        self.no_decode = no_decode_reason(first)  # None for models that generate tokens
        self._largest = {v.quant: largest_gpu_weight_bytes(v.headers) for v in model.variants}

    # ---------------------------------------------------------------- estimates

    def facts(self, v: PlanVariant) -> Any:
        if v.quant not in self._facts:
            self._facts[v.quant] = self._facts_fn(v.headers)
        return self._facts[v.quant]

    def breakdown(self, v: PlanVariant, *, ctx: int, backend: str, ctk: str | None = None, ctv: str | None = None,
                  ngl: int = -1, ncm: int = 0, mmap: bool = True) -> Breakdown:
        ctk = ctk or self.req.cache_type_k
        ctv = ctv or self.req.cache_type_v
        with_proj = bool(self.req.use_mmproj and self.model.projector)
        key = (v.quant, ctx, backend, ctk, ctv, ngl, ncm, mmap, with_proj)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        settings = RunSettings(
            n_ctx=ctx, n_batch=self.req.n_batch, n_ubatch=self.req.n_ubatch, n_parallel=self.req.n_parallel,
            **self._server_settings(),
            flash_attn=self._fa_for(ctk, ctv), cache_type_k=ctk, cache_type_v=ctv, n_gpu_layers=ngl,
            n_cpu_moe=ncm, use_mmap=mmap, backend=backend, with_mmproj=with_proj,  # type: ignore[arg-type]
        )
        proj = self.model.projector.headers if with_proj and self.model.projector else None
        bd = self._estimate(self.facts(v), settings, proj)
        self.n_estimates += 1
        self._cache[key] = bd
        return bd

    def _server_settings(self) -> dict:
        """Settings llama-server itself applies (the commands we emit run llama-server): it reserves
        logits for n_parallel rows per ubatch (n_outputs_max) where the estimator knows the field."""
        if "n_outputs_max" in RunSettings.model_fields:
            return {"n_outputs_max": self.req.n_parallel}
        return {}

    def _place(self, bd: Breakdown, v: PlanVariant, profile: DeviceProfile, cfg: FitConfig) -> FitResult:
        """place() with the per-breakdown and per-variant constants computed once."""
        kv_max = self._kv_max.get(id(bd))
        if kv_max is None:
            kv_max = self._kv_max[id(bd)] = largest_kv_tensor_bytes(bd)
        return place(bd, profile, cfg, largest_weight_bytes=self._largest[v.quant], largest_kv_bytes=kv_max)

    def _fa_for(self, ctk: str, ctv: str) -> FlashAttn:
        """A quantized V cache needs flash attention; asking for it turns FA on unless the user said off."""
        if ctv != "f16" and ctv != "f32" and ctv != "bf16" and self.req.flash_attn == "auto":
            return "on"
        return self.req.flash_attn

    # ---------------------------------------------------------------- device setup

    def _setup(self, profile: DeviceProfile) -> tuple[FitConfig, str, Strategy]:
        os_ = self.req.os or profile.default_os
        if os_ not in profile.os:
            raise DeviceError(f"{profile.id} has no profile for {os_}",
                              hint=f"this device is described for: {', '.join(profile.os)}")
        use = self.req.use or profile.default_use
        backends = profile.backends(os_)
        if self.req.backend and self.req.backend.strip().lower() == "cpu":
            raise InputError("plan places models on a GPU; --backend cpu has nothing to place",
                             hint="use `memfit estimate --backend cpu` for a CPU-only run")
        if self.req.backend:
            info = profile.backend(self.req.backend, os_)
            if info is None:
                names = sorted({b.label for b in backends})
                raise InputError(f"backend {self.req.backend!r} is not listed for {profile.id} on {os_}",
                                 hint=f"choose one of: {', '.join(names)}")
            backend_label = info.label
            backend_name = info.name
        else:
            gpu_backends = [b for b in backends if b.name != "cpu"]
            if not gpu_backends:
                raise DeviceError(f"{profile.id} has no GPU backend on {os_} (CPU only): nothing to place on a GPU",
                                  hint="plan for another machine with --device ID (see `memfit devices`)")
            backend_label = gpu_backends[0].label
            backend_name = gpu_backends[0].name
        # the estimator knows cpu/cuda/rocm/vulkan/metal; SYCL (Intel) buffers are sized like Vulkan's
        est_backend = backend_name if backend_name in _EST_BACKENDS else "vulkan"
        cfg = FitConfig(os=os_, use=use, backend=backend_label, carveout_bytes=self.req.carveout_bytes,
                        gpu_cap_bytes=self.req.gpu_cap_bytes, mmap=self.req.mmap is not False)
        strategy = STRATEGIES.get((profile.memory_architecture, os_), _DEFAULT_STRATEGY)
        return cfg, est_backend, strategy

    def _carveouts(self, profile: DeviceProfile) -> list[int | None]:
        """The BIOS splits to plan: every firmware option, or the one the user fixed (--carveout)."""
        if profile.memory_architecture != "carveout":
            return [None]
        if self.req.carveout_bytes is not None:
            return [self.req.carveout_bytes]
        if "carveout" in profile.overrides and profile.carveout is not None:
            return [profile.carveout.default_bytes]
        return list(profile.carveout_options())

    def _tunable(self, profile: DeviceProfile, os_: str) -> bool:
        """Whether the planner may suggest a higher GPU cap (not when the user fixed it with --gpu-cap)."""
        cap = profile.os_info(os_).gpu_cap  # type: ignore[arg-type]
        return (cap is not None and cap.max_fraction is not None and cap.knob is not None
                and self.req.gpu_cap_bytes is None and "gpu_cap" not in profile.overrides
                and profile.memory_architecture != "discrete")

    # ---------------------------------------------------------------- placement of one breakdown

    def _place_options(self, bd: Breakdown, v: PlanVariant, profile: DeviceProfile, base: FitConfig) -> list[FitResult]:
        """Full-offload placement on every carve-out option, raising the GPU cap where that makes it fit."""
        out = []
        tunable = self._tunable(profile, base.os)
        for carve in self._carveouts(profile):
            cfg = base.model_copy(update={"carveout_bytes": carve})
            r = self._place(bd, v, profile, cfg)
            if not r.fits and tunable and r.gpu_cap_max_bytes and r.gpu_cap_default_bytes is not None:
                gpu_blocked = any(c.name == "gpu_memory" for c in r.blocking_failures)
                need = ceil_gib(r.needed_cap_bytes)
                if gpu_blocked and r.gpu_cap_default_bytes < need <= r.gpu_cap_max_bytes:
                    r = self._place(bd, v, profile, cfg.model_copy(update={"gpu_cap_bytes": need}))
            out.append(r)
        return out

    def _rank(self, r: FitResult, speed: float, strategy: Strategy) -> tuple:
        """Sort key, lower is better: fits, tier (per strategy), speed where it differs, then the
        least shared memory (strategies that prefer dedicated memory), the smallest carve-out (the OS
        keeps the most), no cap change, most OS headroom."""
        if not r.fits:  # the closest miss first, so its reason is the one worth showing
            return (1, r.shortfall_bytes, r.carveout_bytes or 0)
        speed_matters = r.tier == "partial_offload" or r.shared_slowdown > 1.0
        shared_gib = round(r.shared_used_bytes / GIB) if strategy.prefer_dedicated and r.tier == "shared" else 0
        return (
            0 if r.fits else 1,
            _tier_rank(r, strategy),
            -round(speed, 1) if speed_matters else 0.0,
            shared_gib,
            r.carveout_bytes or 0,
            1 if _cap_raised(r) else 0,
            -r.os_free_bytes,
        )

    def _speed(self, bd: Breakdown, r: FitResult, profile: DeviceProfile, depth: int) -> SpeedEstimate:
        return estimate_speed(bd, r, profile, ratio=self.ratio, depth=depth)

    def _evaluate(self, v: PlanVariant, profile: DeviceProfile, base: FitConfig, est_backend: str,
                  strategy: Strategy, ctx: int) -> _Eval:
        mmap = base.mmap
        full = self.breakdown(v, ctx=ctx, backend=est_backend, mmap=mmap)
        options = self._place_options(full, v, profile, base)
        scored = [(self._rank(r, self._speed(full, r, profile, 0).tps, strategy), i, r, full)
                  for i, r in enumerate(options)]
        if not any(r.fits for _, _, r, _ in scored):
            scored += self._partial(v, profile, base, est_backend, strategy, ctx)
        scored.sort(key=lambda t: (t[0], t[1]))
        _, _, best, best_bd = scored[0]
        ev = _Eval(variant=v, full=full, best=best, best_bd=best_bd, options=options,
                   quality=quality_key(v.quant, v.size_bytes))
        if best.fits and self.no_decode is None:
            ev.speed0 = self._speed(best_bd, best, profile, 0)
            ev.speed_ctx = self._speed(best_bd, best, profile, best_bd.n_ctx)
        return ev

    def _partial(self, v: PlanVariant, profile: DeviceProfile, base: FitConfig, est_backend: str,
                 strategy: Strategy, ctx: int) -> list[tuple]:
        """Partial offload on every carve-out option (GPU cap at its maximum where it can be raised)."""
        n_layer = len(self.breakdown(v, ctx=ctx, backend=est_backend, mmap=base.mmap).layers)
        is_moe = self.ratio < 1.0
        tunable = self._tunable(profile, base.os)
        out = []
        for i, carve in enumerate(self._carveouts(profile)):
            cfg = base.model_copy(update={"carveout_bytes": carve})
            if tunable:
                cap_max = profile.max_gpu_cap_bytes(base.os, carve)  # type: ignore[arg-type]
                cap_def = profile.gpu_cap_bytes(base.os, carve)  # type: ignore[arg-type]
                if cap_max and cap_def is not None and cap_max // GIB * GIB > cap_def:
                    cfg = cfg.model_copy(update={"gpu_cap_bytes": cap_max // GIB * GIB})

            def at(ngl: int, ncm: int) -> Breakdown:
                return self.breakdown(v, ctx=ctx, backend=est_backend, ngl=ngl, ncm=ncm, mmap=base.mmap)

            r = solve(at, profile, cfg, n_layer=n_layer, is_moe=is_moe, largest_weight_bytes=self._largest[v.quant])
            if r.fits and r.tier == "partial_offload":
                bd = at(r.n_gpu_layers, r.n_cpu_moe)
                out.append((self._rank(r, self._speed(bd, r, profile, 0).tps, strategy), 1000 + i, r, bd))
        return out

    # ---------------------------------------------------------------- context search

    def _slack_full_at(self, v: PlanVariant, profile: DeviceProfile, base: FitConfig, est_backend: str,
                       ctx: int, kv: str) -> int:
        """Best signed slack over every configuration (GPU caps at their maximum) with full offload."""
        bd = self.breakdown(v, ctx=ctx, backend=est_backend, ctk=kv, ctv=kv, mmap=base.mmap)
        tunable = self._tunable(profile, base.os)
        best = None
        for carve in self._carveouts(profile):
            cfg = base.model_copy(update={"carveout_bytes": carve})
            if tunable:
                cap_max = profile.max_gpu_cap_bytes(base.os, carve)  # type: ignore[arg-type]
                cap_def = profile.gpu_cap_bytes(base.os, carve) or 0  # type: ignore[arg-type]
                if cap_max:
                    cfg = cfg.model_copy(update={"gpu_cap_bytes": max(cap_max // GIB * GIB, cap_def)})
            slack = self._place(bd, v, profile, cfg).slack_bytes
            best = slack if best is None else max(best, slack)
        return best if best is not None else -1

    def _fits_full_with_q8(self, e: _Eval, ctx: int) -> bool:
        profile, base, est_backend = self._device
        try:
            return self._slack_full_at(e.variant, profile, base, est_backend, ctx, "q8_0") >= 0
        except EstimateError:
            return False

    def _max_ctx(self, slack: Callable[[int], int]) -> int:
        """Largest multiple of 256 tokens (up to the training context x sequences) that fits; 0 if none."""
        upper = (self.n_ctx_train or 131072) * self.req.n_parallel
        hi = max(CTX_STEP, upper // CTX_STEP * CTX_STEP)
        return last_fitting(slack, CTX_STEP, hi, CTX_STEP) or 0

    def _fill_max_ctx(self, ev: _Eval, profile: DeviceProfile, base: FitConfig, est_backend: str) -> None:
        """The largest context at which the variant still runs fully on the GPU (any configuration),
        per KV type. For a quant that needs partial offload at the requested context this answers
        "how short a context would put it all on the GPU" (0 = none would)."""
        v = ev.variant
        kv_types = {"f16", "q8_0", self.req.cache_type_k}
        fa_off = self.req.flash_attn == "off"
        for kv in sorted(kv_types):
            if kv != "f16" and fa_off:
                ev.max_ctx[kv] = None  # a quantized V cache needs flash attention
                continue
            try:
                ev.max_ctx[kv] = self._max_ctx(lambda c: self._slack_full_at(v, profile, base, est_backend, c, kv))
            except EstimateError:  # e.g. llama.cpp refuses this KV type for the model's head size
                if kv == self.req.cache_type_k:
                    raise
                ev.max_ctx[kv] = None
        if ev.max_ctx.get(self.req.cache_type_k):
            ev.max_ctx_mode = "gpu"
        else:
            ev.max_ctx_mode = "partial" if ev.best.tier == "partial_offload" else "none"

    # ---------------------------------------------------------------- the plan

    def plan(self, profile: DeviceProfile) -> DevicePlan:
        t0 = time.perf_counter()
        base, est_backend, strategy = self._setup(profile)
        self._device = (profile, base, est_backend)
        ctx, defaulted = self._ctx()
        variants = self.model.variants
        evals = [self._evaluate(v, profile, base, est_backend, strategy, ctx) for v in variants]
        if self.req.search_max_ctx:
            for ev in evals:
                self._fill_max_ctx(ev, profile, base, est_backend)
        chosen, meets = self._choose(evals)
        rec = self._recommendation(chosen, evals, profile, base, strategy, ctx, meets)
        plan = DevicePlan(
            device=self._device_summary(profile, base),
            model=self._model_summary(evals),
            ctx=ctx, ctx_defaulted=defaulted, cache_type_k=self.req.cache_type_k, cache_type_v=self.req.cache_type_v,
            prefer=self.req.prefer, min_tps=self.req.min_tps,
            recommendation=rec,
            variants=[self._variant_plan(ev) for ev in evals],
            carveout_options=self._carveout_table(chosen, profile) if chosen else [],
            bars=memory_bars(chosen.best, profile) if chosen else [],
            fit=chosen.best if chosen else None,
            warnings=self._warnings(evals, chosen, ctx),
            fits=rec.tier != "no_fit" and meets,
        )
        plan.elapsed_ms = round((time.perf_counter() - t0) * 1000, 1)
        return plan

    def _ctx(self) -> tuple[int, bool]:
        if self.req.ctx:
            return self.req.ctx, False
        train = self.n_ctx_train or DEFAULT_CTX_CAP
        return min(train, DEFAULT_CTX_CAP), True

    # ---------------------------------------------------------------- policy

    def _choose(self, evals: list[_Eval]) -> tuple[_Eval | None, bool]:
        """Pick a variant by policy. Returns (choice, meets --min-tps)."""
        fitting = [e for e in evals if e.best.fits]
        if not fitting:
            return None, False
        on_gpu = [e for e in fitting if e.best.tier in ("dedicated", "shared")]
        pool = on_gpu or fitting
        min_tps = self.req.min_tps if self.no_decode is None else None  # no decode speed to filter on
        meets = True
        if min_tps:
            fast = [e for e in pool if e.speed0 and e.speed0.tps >= min_tps]
            if not fast and on_gpu:
                fast = [e for e in fitting if e.speed0 and e.speed0.tps >= min_tps]
            if fast:
                pool = fast
            else:
                meets = False
                return max(fitting, key=lambda e: e.speed0.tps if e.speed0 else 0.0), False
        if all(e.best.tier == "partial_offload" for e in pool) and self.req.prefer != "speed":
            pool = self._usable_partial(pool)
        return self._by_policy(pool), meets

    @staticmethod
    def _usable_partial(pool: list[_Eval]) -> list[_Eval]:
        """Partial-offload candidates within PARTIAL_MIN_SPEED_SHARE of the fastest one."""
        fastest = max((e.speed0.tps for e in pool if e.speed0), default=0.0)
        return [e for e in pool if e.speed0 and e.speed0.tps >= PARTIAL_MIN_SPEED_SHARE * fastest] or pool

    def _by_policy(self, pool: list[_Eval], prefer: Prefer | None = None) -> _Eval:
        prefer = prefer or self.req.prefer

        def best_quality(items: list[_Eval]) -> _Eval:
            return max(items, key=lambda e: (_quality_class(e), e.speed0.tps if e.speed0 else 0.0, e.quality))

        if prefer == "balanced":
            capped = [e for e in pool if (quant_bpw(e.variant.quant) or e.quality[0]) <= BALANCED_MAX_BPW]
            return best_quality(capped or pool)
        if prefer == "speed":
            floor = [e for e in pool if (quant_bpw(e.variant.quant) or e.quality[0]) >= SPEED_MIN_BPW]
            return max(floor or pool, key=lambda e: (round(e.speed0.tps if e.speed0 else 0.0, 1), e.quality))
        return best_quality(pool)

    # ---------------------------------------------------------------- recommendation

    def _recommendation(self, chosen: _Eval | None, evals: list[_Eval], profile: DeviceProfile, base: FitConfig,
                        strategy: Strategy, ctx: int, meets: bool) -> Recommendation:
        if chosen is None:
            return self._no_fit(evals, profile, base, ctx)
        r = chosen.best
        bd = chosen.best_bd
        cap_change = self._cap_change(r, profile)
        no_mmap = r.suggest_no_mmap or self.req.mmap is False
        rec = Recommendation(
            quant=chosen.variant.quant, tier=r.tier, tier_label=TIER_LABEL[r.tier],
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
            meets_min_tps=meets,
        )
        rec.reasons = self._reasons(chosen, evals, profile, strategy, rec)
        page_cache = [c.message for c in r.checks if c.name == "page_cache"] if no_mmap else []
        rec.warnings = [w for w in dict.fromkeys(r.warnings + bd.warnings) if w not in page_cache]
        rec.commands = build_commands(self.model, chosen.variant, rec, profile, base)
        return rec

    def _cap_change(self, r: FitResult, profile: DeviceProfile) -> CapChange | None:
        if not _cap_raised(r) or r.gpu_cap_bytes is None:
            return None
        info = profile.os_info(r.config.os).gpu_cap
        setting = profile.cap_setting(r.config.os, r.gpu_cap_bytes)
        if info is None or setting is None:
            return None
        return CapChange(knob=info.knob or "", cap_bytes=r.gpu_cap_bytes, default_bytes=r.gpu_cap_default_bytes or 0,
                         setting=setting, how=info.how_to_change)

    def _no_fit(self, evals: list[_Eval], profile: DeviceProfile, base: FitConfig, ctx: int) -> Recommendation:
        smallest = min(evals, key=lambda e: e.best.gpu_need_bytes + e.best.host_need_bytes)
        r = smallest.best
        reasons = [f"nothing fits at {fmt_ctx(ctx)} context: the smallest quant, {smallest.variant.quant}, needs "
                   f"{fmt_bytes(r.gpu_need_bytes + r.host_need_bytes)}"]
        reasons += [c.message for c in r.blocking_failures]
        best_ctx = max(((e.max_ctx.get(self.req.cache_type_k) or 0, e) for e in evals), key=lambda t: (t[0], t[1].quality))
        if best_ctx[0]:
            n = best_ctx[0]
            try_ctx = fmt_ctx(n // 1024 * 1024) if n >= 1024 else str(n)
            reasons.append(f"{best_ctx[1].variant.quant} fits at up to {_ctx_words(n)} context: try --ctx {try_ctx}")
        best_q8 = max(((e.max_ctx.get("q8_0") or 0, e) for e in evals), key=lambda t: (t[0], t[1].quality))
        if self.req.cache_type_k == "f16" and best_q8[0] > best_ctx[0]:
            reasons.append(f"with a q8_0 KV cache (--kv q8_0) {best_q8[1].variant.quant} fits up to "
                           f"{_ctx_words(best_q8[0])} context")
        return Recommendation(
            quant=smallest.variant.quant, tier="no_fit", tier_label=TIER_LABEL["no_fit"],
            carveout_bytes=r.carveout_bytes, os_keeps_bytes=r.os_visible_bytes if r.carveout_bytes is not None else None,
            gpu_cap_bytes=r.gpu_cap_bytes, total_bytes=r.gpu_need_bytes + r.host_need_bytes,
            gpu_bytes=r.gpu_need_bytes, host_bytes=r.host_need_bytes, ctx=ctx,
            cache_type_k=self.req.cache_type_k, cache_type_v=self.req.cache_type_v,
            flash_attn=smallest.full.flash_attn, n_parallel=self.req.n_parallel, n_gpu_layers=-1, n_cpu_moe=0,
            n_layer=len(smallest.full.layers), no_mmap=False, mmproj=None, est_tps=None, est_tps_at_ctx=None,
            meets_min_tps=False, reasons=reasons,
        )

    def _reasons(self, chosen: _Eval, evals: list[_Eval], profile: DeviceProfile, strategy: Strategy,
                 rec: Recommendation) -> list[str]:
        r = chosen.best
        q = chosen.variant.quant
        out: list[str] = []
        where = {"dedicated": "fully on the GPU in dedicated memory", "shared": "fully on the GPU",
                 "partial_offload": "with part of it on the CPU"}[r.tier]
        policy = {"quality": "the best-quality quant that runs", "balanced": "the best quant up to Q6_K class that runs",
                  "speed": "the fastest quant (4-bit class or better) that runs"}[self.req.prefer]
        spare = r.gpu_headroom_bytes - r.safety_bytes
        room = f"{fmt_bytes(spare)} to spare on the GPU beyond a {fmt_bytes(r.safety_bytes)} safety margin"
        better = [e for e in evals if e.quality > chosen.quality and e is not chosen]
        if r.tier == "partial_offload":
            out += self._partial_reasons(chosen, evals, rec, room)
        else:
            out.append(f"{q} is {policy} {where} at {fmt_ctx(rec.ctx)} context: {room}")
        if r.tier != "partial_offload" and better:
            nxt = min(better, key=lambda e: e.quality)
            if not nxt.best.fits:
                blocker = nxt.best.blocking_failures[0].message if nxt.best.blocking_failures else "does not fit"
                where = _setting_text(nxt.best)
                closest = f" (closest: {where})" if where else ""
                out.append(f"{nxt.variant.quant} (next in quality) does not fit{closest}: {blocker}")
            elif nxt.best.tier == "partial_offload":
                out.append(f"{nxt.variant.quant} (next in quality) would need part of the model on the CPU")
            elif (self.req.prefer == "quality" and nxt.best.tier in ("dedicated", "shared")
                  and _quality_class(nxt) == _quality_class(chosen)):
                slower = (f" and decodes at {nxt.speed0.tps:.1f} vs {chosen.speed0.tps:.1f} t/s est."
                          if nxt.speed0 and chosen.speed0 else "")
                out.append(f"{nxt.variant.quant} fits too, but above 8 bits per weight quality is within noise "
                           f"(llama.cpp's quantize table: Q8_0 +0.0026 ppl vs F16 +0.0020){slower}: "
                           f"--quant {nxt.variant.quant} to take it anyway")
            elif self.req.min_tps and nxt.speed0 and nxt.speed0.tps < self.req.min_tps:
                out.append(f"{nxt.variant.quant} (next in quality) is estimated at {nxt.speed0.tps:.1f} t/s, "
                           f"under --min-tps {self.req.min_tps:g}")
        if better and self.req.cache_type_k == "f16" and self.req.flash_attn != "off":
            for e in sorted(better, key=lambda e: e.quality, reverse=True):
                if e.best.tier in ("dedicated", "shared"):
                    break  # it runs on the GPU already; it was not chosen for another reason (policy, --min-tps)
                if self._fits_full_with_q8(e, rec.ctx):
                    out.append(f"{e.variant.quant} would fit fully on the GPU with a q8_0 KV cache (--kv q8_0: "
                               f"half the KV memory, a small quality cost)")
                    break
        faster = self._faster_alternative(chosen, evals)
        if faster:
            out.append(faster)
        if self.no_decode is not None and not self.req.min_tps:  # with --min-tps the warning says it
            out.append(f"no t/s estimate: {self.no_decode}")
        if r.carveout_bytes is not None:
            keeps = r.os_visible_bytes
            out.append(f"UMA frame buffer {fmt_bios_size(r.carveout_bytes)}: OS keeps {fmt_bios_size(keeps)}, "
                       f"{fmt_bytes(r.os_free_bytes)} above its {fmt_bytes(r.reserve_bytes)} reserve "
                       f"({r.config.os}, {r.config.use} use)")
            if strategy.lever:
                out.append(strategy.lever)
            if r.tier == "shared" and r.shared_cost:
                out.append(f"uses {fmt_bytes(r.shared_used_bytes)} of shared memory: {r.shared_cost}")
        elif profile.memory_architecture == "unified":
            out.append(f"the OS keeps {fmt_bytes(r.os_free_bytes)} above its {fmt_bytes(r.reserve_bytes)} reserve "
                       f"({r.config.os}, {r.config.use} use)")
        if rec.cap_change:
            c = rec.cap_change
            out.append(f"raise the GPU cap from {fmt_bytes(c.default_bytes)} to {fmt_bytes(c.cap_bytes)}: {c.setting}")
        current = self._current_setup_note(chosen, profile)
        if current:
            out.append(current)
        if rec.no_mmap and r.suggest_no_mmap:
            msg = next((c.message for c in r.checks if c.name == "page_cache"), "")
            out.append(msg or "--no-mmap: the file would otherwise pass through a page cache the OS side cannot hold")
        if not rec.meets_min_tps and self.req.min_tps:
            out.append(f"no quant reaches --min-tps {self.req.min_tps:g} (est.); this is the fastest that fits")
        return out

    @staticmethod
    def _current_setup_note(chosen: _Eval, profile: DeviceProfile) -> str | None:
        """With --device auto: whether the carve-out in effect now already runs the chosen quant
        fully on the GPU without raising the cap (no BIOS change, no reboot)."""
        live = profile.live
        r = chosen.best
        if live is None or live.carveout_bytes is None or r.carveout_bytes is None or r.carveout_bytes == live.carveout_bytes:
            return None
        now = next((o for o in chosen.options if o.carveout_bytes == live.carveout_bytes), None)
        if now is None or now.tier not in ("dedicated", "shared") or _cap_raised(now):
            return None
        gain = r.os_visible_bytes - now.os_visible_bytes
        more = f"; the recommended split gives the OS {fmt_bytes(gain)} more RAM" if gain > 0 else ""
        return (f"the UMA frame buffer in effect now ({fmt_bios_size(live.carveout_bytes)}) already runs "
                f"{chosen.variant.quant} fully on the GPU without a reboot{more}")

    def _partial_reasons(self, chosen: _Eval, evals: list[_Eval], rec: Recommendation, room: str) -> list[str]:
        """Nothing runs fully on the GPU: say so, why this quant (quality against speed), what the
        best quality would cost, and what would put a model fully on the GPU (a shorter context, a
        q8_0 KV cache)."""
        q = chosen.variant.quant
        split = _split_text(chosen.best, rec.n_layer)
        out = [f"no quant runs fully on the GPU at {fmt_ctx(rec.ctx)} context: each step up in quality moves "
               f"more of the model to the CPU and costs speed"]
        partial = [e for e in evals if e.best.tier == "partial_offload" and e.speed0]
        fastest = max(partial, key=lambda e: e.speed0.tps if e.speed0 else 0.0, default=None)
        if self.req.prefer == "speed" or fastest is None or fastest is chosen or not fastest.speed0:
            out.append(f"{q} runs with {split}: {room}")
        else:
            out.append(f"{q} is the best quality that keeps at least {PARTIAL_MIN_SPEED_SHARE:.0%} of the speed of "
                       f"the fastest option ({fastest.variant.quant}, {fastest.speed0.tps:.1f} t/s est.): {split}, "
                       f"{room}")
        best_q = max(partial, key=lambda e: e.quality, default=None)
        if best_q is not None and best_q is not chosen and best_q.speed0 and chosen.speed0:
            out.append(f"{best_q.variant.quant} would run at {best_q.speed0.tps:.1f} t/s (est.) with "
                       f"{_split_text(best_q.best, rec.n_layer)}, against {chosen.speed0.tps:.1f} t/s for {q}")
        kv = self.req.cache_type_k
        enough = max(4096, rec.ctx // 4)
        shorter = [e for e in evals if (e.max_ctx.get(kv) or 0) >= enough]
        if shorter:
            e = max(shorter, key=lambda e: e.quality)
            n = e.max_ctx.get(kv) or 0
            out.append(f"{e.variant.quant} runs fully on the GPU up to {_ctx_words(n)} context "
                       f"(--ctx {fmt_ctx(n // 1024 * 1024)})")
        if kv == "f16" and self.req.flash_attn != "off":
            for e in sorted(evals, key=lambda e: e.quality, reverse=True):
                if self._fits_full_with_q8(e, rec.ctx):
                    out.append(f"{e.variant.quant} would fit fully on the GPU with a q8_0 KV cache (--kv q8_0: "
                               f"half the KV memory, a small quality cost)")
                    break
        return out

    def _faster_alternative(self, chosen: _Eval, evals: list[_Eval]) -> str | None:
        """A much faster quant of nearly the same quality (what --prefer balanced would pick)."""
        if self.req.prefer != "quality" or chosen.best.tier not in ("dedicated", "shared") or not chosen.speed0:
            return None
        on_gpu = [e for e in evals if e.best.tier in ("dedicated", "shared") and e.speed0]
        alt = self._by_policy(on_gpu, "balanced") if on_gpu else None
        if alt is None or alt is chosen or not alt.speed0:
            return None
        ratio = alt.speed0.tps / max(chosen.speed0.tps, 1e-9)
        if ratio < FASTER_ALTERNATIVE_RATIO:
            return None
        return (f"{alt.variant.quant} decodes about {ratio:.1f}x faster ({alt.speed0.tps:.1f} vs "
                f"{chosen.speed0.tps:.1f} t/s est.) at a quality loss that is hard to notice: --prefer balanced")

    # ---------------------------------------------------------------- tables

    def _variant_plan(self, ev: _Eval) -> VariantPlan:
        r = ev.best
        bd = ev.best_bd if r.fits else ev.full
        why = TIER_LABEL[r.tier]
        if not r.fits and r.blocking_failures:
            why = r.blocking_failures[0].message
        elif r.tier == "partial_offload":
            why = (f"--n-cpu-moe {r.n_cpu_moe}" if r.n_cpu_moe and r.n_gpu_layers < 0
                   else f"-ngl {r.n_gpu_layers} of {len(bd.layers)}")
        elif r.tier == "shared" and r.shared_cost:
            why = f"{fmt_bytes(r.shared_used_bytes)} in shared memory"
        gpu, host = bd.device("gpu"), bd.device("host")
        return VariantPlan(
            quant=ev.variant.quant, files=ev.variant.files, size_bytes=ev.variant.size_bytes,
            bpw=quant_bpw(ev.variant.quant),
            total_bytes=r.gpu_need_bytes + r.host_need_bytes, gpu_bytes=r.gpu_need_bytes, host_bytes=r.host_need_bytes,
            weights_bytes=bd.weights_bytes, kv_bytes=bd.kv_bytes + bd.recurrent_bytes,
            compute_bytes=gpu.compute_bytes + host.compute_bytes, mmproj_bytes=gpu.mmproj_bytes + host.mmproj_bytes,
            tier=r.tier, carveout_bytes=r.carveout_bytes, gpu_cap_bytes=r.gpu_cap_bytes, cap_raised=_cap_raised(r),
            n_gpu_layers=r.n_gpu_layers, n_cpu_moe=r.n_cpu_moe, gpu_headroom_bytes=r.gpu_headroom_bytes,
            max_ctx=ev.max_ctx.get(self.req.cache_type_k) or 0,
            max_ctx_f16=ev.max_ctx.get("f16"), max_ctx_q8_0=ev.max_ctx.get("q8_0"),
            max_ctx_mode=ev.max_ctx_mode,  # type: ignore[arg-type]
            est_tps=ev.speed0.tps if ev.speed0 else None,
            est_tps_at_ctx=ev.speed_ctx.tps if ev.speed_ctx else None,
            why=why,
        )

    def _carveout_table(self, chosen: _Eval, profile: DeviceProfile) -> list[CarveoutOption]:
        if profile.memory_architecture == "discrete":
            return []
        live_carve = profile.live.carveout_bytes if profile.live is not None else None
        rows = []
        for r in chosen.options:
            note = r.short_reason
            if r.fits:
                notes = []
                if r.shared_used_bytes:
                    notes.append(f"{fmt_bytes(r.shared_used_bytes, digits=1)} shared")
                if _cap_raised(r) and r.gpu_cap_bytes and r.carveout_bytes is not None:  # unified: the row is the cap
                    notes.append(f"{_cap_knob_label(r.config.os)} {r.gpu_cap_bytes / GIB:.0f} GiB")
                if r.suggest_no_mmap:
                    notes.append("--no-mmap")
                note = ", ".join(notes)
            if live_carve is not None and r.carveout_bytes == live_carve:
                note = ("in effect now; " + note) if note else "in effect now"
            gpu_check = next((c for c in r.checks if c.name == "gpu_memory"), None)
            speed = self._speed(chosen.full, r, profile, 0).tps if r.fits and self.no_decode is None else None
            rows.append(CarveoutOption(
                carveout_bytes=r.carveout_bytes, os_keeps_bytes=r.os_visible_bytes, gpu_may_use_bytes=r.gpu_capacity_bytes,
                gpu_cap_bytes=r.gpu_cap_bytes, cap_raised=_cap_raised(r), tier=r.tier,
                gpu_headroom_bytes=r.gpu_headroom_bytes,
                gpu_spare_bytes=gpu_check.margin_bytes if gpu_check else r.gpu_headroom_bytes - r.safety_bytes,
                os_free_bytes=r.os_free_bytes, est_tps=speed, note=note,
                recommended=(r.carveout_bytes == chosen.best.carveout_bytes and r.gpu_cap_bytes == chosen.best.gpu_cap_bytes
                             and chosen.best.full_offload),
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

    def _model_summary(self, evals: list[_Eval]) -> ModelSummary:
        first = evals[0].full
        return ModelSummary(
            name=self.model.name, repo=self.model.repo, revision=self.model.revision,
            architecture=self.model.variants[0].headers.architecture, n_params=self.n_params,
            n_layer=len(first.layers), moe=self.ratio < 1.0, expert_ratio=round(self.ratio, 4),
            n_ctx_train=self.n_ctx_train,
            mmproj=self.model.projector.name if (self.model.projector and self.req.use_mmproj) else None,
            decodes=self.no_decode is None,
        )

    def _warnings(self, evals: list[_Eval], chosen: _Eval | None, ctx: int) -> list[str]:
        out = list(dict.fromkeys(self.model.notes))
        if self.n_ctx_train and ctx > self.n_ctx_train * self.req.n_parallel:
            out.append(f"--ctx {fmt_ctx(ctx)} is beyond the model's training context of {_ctx_words(self.n_ctx_train)} "
                       f"tokens: llama.cpp runs it, but answers degrade past the trained length (use --ctx "
                       f"{fmt_ctx(self.n_ctx_train * self.req.n_parallel)} or less, or a model trained for longer)")
        if self.no_decode is not None and self.req.min_tps:
            out.append(f"--min-tps {self.req.min_tps:g} ignored: {self.no_decode}")
        for e in evals:
            for w in e.full.warnings:
                if w not in out:
                    out.append(w)
        return out


def _setting_text(r: FitResult) -> str:
    """The configuration a FitResult describes, in the user's terms."""
    parts = []
    if r.carveout_bytes is not None:
        parts.append(f"UMA frame buffer {fmt_bios_size(r.carveout_bytes)}")
    if _cap_raised(r) and r.gpu_cap_bytes:
        parts.append(f"GPU cap raised to {fmt_bytes(r.gpu_cap_bytes, digits=0)}")
    return ", ".join(parts)


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
}
# estimated fields that do not change a plan: every carve-out option is planned, power is not used
_ESTIMATED_UNUSED = {"carveout.default_bytes", "power_w", "gpu_tflops_fp16"}
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
    if profile.live is not None:
        live = profile.live
        seen = [fn(getattr(live, k)) for k, fn in _LIVE_TEXT.items() if getattr(live, k, None) is not None]
        if live.gpu_cap_is_default is not None and live.gpu_cap_bytes is not None:
            seen = [x + (" (default)" if live.gpu_cap_is_default and x.startswith("GPU cap") else "") for x in seen]
        if seen:
            out.append("read from this machine (--device auto): " + ", ".join(seen))
    return out


def _split_text(r: FitResult, n_layer: int) -> str:
    """How a partial offload splits the model, in words."""
    if r.n_cpu_moe and r.n_gpu_layers < 0:
        return f"the experts of {r.n_cpu_moe} of {n_layer} layers on the CPU (--n-cpu-moe {r.n_cpu_moe})"
    if r.n_gpu_layers >= 0:
        moe = f", all experts on the CPU (--n-cpu-moe {r.n_cpu_moe})" if r.n_cpu_moe else ""
        return f"{r.n_gpu_layers} of {n_layer} layers on the GPU (-ngl {r.n_gpu_layers}){moe}"
    return "all layers on the GPU"


def _ctx_words(n: int) -> str:
    """24576 -> '24k'; 113408 -> '110.8k (113408 tokens)'."""
    return fmt_ctx(n) if n % 1024 == 0 else f"{n / 1024:.1f}k ({n} tokens)"


def _quality_class(e: "_Eval") -> tuple[float, int]:
    """Quality for ranking: the quality key with every quant of 8 bpw or more in one class."""
    bpw, size = e.quality
    return (NEAR_LOSSLESS_BPW, 0) if bpw >= NEAR_LOSSLESS_BPW else (bpw, size)


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
    segs = gpu_segs + [BarSegment(kind="safety", label="safety", bytes=r.safety_bytes)]
    marker = None
    if r.memory_architecture == "carveout" and r.carveout_bytes:
        unused = max(0, r.carveout_bytes - r.gpu_need_bytes - r.safety_bytes)
        segs.append(BarSegment(kind="carveout_free", label="carve-out unused", bytes=unused))
        marker = r.carveout_bytes
    segs.append(BarSegment(kind="host", label="CPU side", bytes=h_total))
    segs.append(BarSegment(kind="safety", label="safety", bytes=r.host_safety_bytes))
    segs.append(BarSegment(kind="reserve", label="OS reserve", bytes=r.reserve_bytes))
    used = sum(s.bytes for s in segs)
    if used > total:  # cannot happen for a plan that fits; keep the bar drawable anyway
        segs = [s.model_copy(update={"bytes": 0}) if s.kind == "safety" else s for s in segs]
        used = sum(s.bytes for s in segs)
    segs.append(BarSegment(kind="free", label="free", bytes=max(0, total - used)))
    title = f"RAM {fmt_bytes(total)}"
    if r.memory_architecture == "carveout" and r.carveout_bytes:
        title += f" (carve-out {fmt_bios_size(r.carveout_bytes)} | OS {fmt_bios_size(r.os_visible_bytes)})"
    # order: the carve-out part first (GPU data fills it), then the OS side
    return [MemoryBar(title=title, total_bytes=total, segments=segs, marker_bytes=marker,
                      marker_label="end of carve-out" if marker else "")]


def plan_devices(model: PlanModel, request: PlanRequest, profiles: list[DeviceProfile], **kw: Any) -> MultiPlan:
    planner = Planner(model, request, **kw)
    return MultiPlan(plans=[planner.plan(p) for p in profiles])
