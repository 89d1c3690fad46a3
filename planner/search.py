"""The planner's search: every quant x every device configuration x KV type at the requested
context, placed by the fit solver, with its speed and its largest context. Nothing here chooses
(planner/policy.py) or words anything (planner/explain.py).

Configurations per device:
- carve-out APUs: every BIOS carve-out option (or the one the user fixed). On an OS whose GPU cap
  can be raised (Linux GTT) the cap is the machine's safe maximum, one setting for every model,
  when the default does not hold the model; Windows' shared window is fixed.
- unified devices: the default working-set limit, else the smallest raise that holds the model
  (macOS wired limit, no reboot).
- discrete cards: the one configuration, with partial offload when the card is too small.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal, Self, TypedDict, Unpack

from .archs import rule_for
from .context_ext import ContextPlan, plan_context
from .device_schema import OS, BackendInfo, DeviceProfile
from .errors import DeviceError, EstimateError, InputError
from .estimate_types import Breakdown, FlashAttn, RunSettings
from .fit import FitConfig, FitResult, largest_kv_tensor_bytes, last_fitting, place, place_slack
from .header import GGUFHeader, ModelHeaders
from .memory_kinds import MemoryKind, kind_of
from .model_compute import ModelCompute, model_compute
from .plan_types import PlanModel, PlanRequest, PlanVariant
from .runtime.base import Engine, RunShape
from .speed import PrefillEstimate, SpeedEstimate, estimate_prefill, estimate_speed, moe_ratio
from .units import GIB
from .variants import quality_key
from .vocab import QUANTIZED_KV, estimator_backend, v_cache_needs_flash_attn

if TYPE_CHECKING:
    from .model_facts import ModelFacts

CTX_STEP = 256  # llama.cpp pads the KV cache to 256 cells
DEFAULT_CTX_CAP = 32768  # without --ctx: the training context, capped here
Placement = Literal["fast", "spill", "partial", "none"]
EstimateFn = Callable[["ModelFacts", RunSettings, "ModelHeaders | GGUFHeader | None"], Breakdown]  # Engine.estimate
FactsFn = Callable[[ModelHeaders], "ModelFacts"]


class SearchHooks(TypedDict, total=False):
    """Stand-ins for the estimator and the model facts (tests, bench): a search without them runs
    the engine's estimator (llama.cpp's: planner.estimator) on planner.model_facts."""

    estimate_fn: EstimateFn
    facts_fn: FactsFn


def placement(r: FitResult) -> Placement:
    """fast: every GPU byte at device speed; spill: part of it in a slower shared window (or at risk
    of it: the estimate margins cross into it); partial: layers or experts on the CPU."""
    if not r.fits:
        return "none"
    if r.tier == "partial_offload":
        return "partial"
    if r.tier == "shared" and r.shared_slowdown > 1.0:
        return "spill"
    return "fast"


def fast_slack(r: FitResult) -> int:
    """Signed room for a context search that must stay in fast memory."""
    return min(r.slack_bytes, r.fast_spare_bytes) if r.spills_slowly else r.slack_bytes


def cap_raised(r: FitResult) -> bool:
    return (r.config.gpu_cap_bytes is not None and r.gpu_cap_default_bytes is not None
            and r.gpu_cap_bytes is not None and r.gpu_cap_bytes > r.gpu_cap_default_bytes)


@dataclass(frozen=True)
class DeviceSetup:
    """How one device is planned: its OS and use, the backend, and the configurations to weigh."""

    profile: DeviceProfile
    base: FitConfig
    est_backend: str  # the estimator's backend name
    prefer_fast: bool  # spill-free (dedicated) placements rank first on this OS
    lever: str  # one line: what the user changes on this OS and why
    kind: MemoryKind  # the device's memory architecture (planner.memory_kinds)

    @property
    def os(self) -> OS:
        return self.base.os


class SpeedFields(TypedDict):
    """The speed columns every report row carries (None where unknown)."""

    est_tps: float | None
    est_tps_at_ctx: float | None
    est_prefill_tps: float | None
    est_ttft_s: float | None
    speed_calibrated: bool


def speed_fields(at_zero: SpeedEstimate | None, at_ctx: SpeedEstimate | None,
                 prefill: PrefillEstimate | None) -> SpeedFields:
    return SpeedFields(est_tps=at_zero.tps if at_zero else None, est_tps_at_ctx=at_ctx.tps if at_ctx else None,
                       est_prefill_tps=prefill.tps if prefill else None,
                       est_ttft_s=prefill.seconds if prefill else None,
                       speed_calibrated=bool(at_zero.calibrated) if at_zero else True)


@dataclass
class Evaluation:
    """One quant with one KV type on one device at the requested context."""

    variant: PlanVariant
    kv: str
    full: Breakdown  # full offload at the requested ctx
    best: FitResult
    best_bd: Breakdown
    options: list[FitResult]  # full-offload result per configuration
    partials: list[tuple[FitResult, Breakdown]] = field(default_factory=list)
    speed0: SpeedEstimate | None = None
    speed_ctx: SpeedEstimate | None = None
    prefill: PrefillEstimate | None = None
    max_ctx: dict[str, int | None] = field(default_factory=dict)  # any placement on the GPU
    max_ctx_fast: dict[str, int | None] = field(default_factory=dict)  # in fast memory
    max_ctx_mode: Literal["gpu", "partial", "none"] = "gpu"
    quality: tuple[float, int] = (0.0, 0)

    @property
    def placement(self) -> Placement:
        return placement(self.best)

    @property
    def quant(self) -> str:
        return self.variant.quant

    def longest(self, kv: str) -> int:
        """The longest context fully on the GPU with this KV type (0: none, or not searched)."""
        return self.max_ctx.get(kv) or 0

    def speeds(self) -> SpeedFields:
        return speed_fields(self.speed0, self.speed_ctx, self.prefill)


def _default_facts(headers: ModelHeaders) -> ModelFacts:
    from .model_facts import ModelFacts

    return ModelFacts.from_headers(headers)


def largest_gpu_weight_bytes(headers: ModelHeaders) -> int:
    """The largest weight tensor that goes to a GPU buffer. token_embd stays on the CPU unless it is
    also the output head (tied embeddings: llama.cpp duplicates it for the output layer)."""
    tied = not any(t.name == "output.weight" for t in headers.tensors)
    return max((t.nbytes for t in headers.tensors if tied or t.name != "token_embd.weight"), default=0)


def ctx_train(headers: ModelHeaders) -> int | None:
    arch = headers.metadata.get("general.architecture")
    v = headers.metadata.get(f"{arch}.context_length")
    try:
        return int(v) if v else None
    except (TypeError, ValueError):
        return None


def no_decode_reason(headers: ModelHeaders) -> str | None:
    """Why a model has no decode speed, or None when it generates tokens. Embedding and encoder
    models (planner/archs.py marks them `no_output_head`) read each input in one pass."""
    arch = headers.architecture
    if rule_for(arch).no_output_head:
        return (f"{arch} is an embedding (encoder) model, which reads each input in one pass and generates "
                "no tokens, so decode speed does not apply")
    return None


_PLACEMENT_RANK = {"fast": 0, "spill": 1, "partial": 2, "none": 3}
_PLACEMENT_RANK_SPILL_OK = {**_PLACEMENT_RANK, "spill": 0}  # an OS where spilling costs no speed


class Search:
    """Estimates, placements and speeds for one model; estimates are cached across devices."""

    def __init__(self, model: PlanModel, request: PlanRequest, **hooks: Unpack[SearchHooks]) -> None:
        if not model.variants:
            raise InputError(f"{model.name}: no GGUF variants to plan")
        self.model = model
        self.req = request
        from .runtime.registry import engine_for

        self.engine: Engine = engine_for(request.runtime, request.llama_build)
        self._estimate = hooks.get("estimate_fn") or self.engine.estimate
        self._facts_fn = hooks.get("facts_fn") or _default_facts
        self._facts: dict[str, ModelFacts] = {}
        self._compute: dict[str, ModelCompute | None] = {}
        self._cache: dict[tuple, Breakdown] = {}  # keeps every breakdown alive, so id() keys below are stable
        self._kv_max: dict[int, int] = {}
        self._slacks: dict[tuple, tuple[int, int]] = {}
        self._ctx_configs: dict[int, tuple[DeviceSetup, list[FitConfig]]] = {}
        self._setting: tuple[int | None, int | None] | None = None  # see for_setting
        self.n_estimates = 0
        first = model.variants[0].headers
        self.n_params = sum(t.n_elements for t in first.tensors)
        self.ratio = moe_ratio(first.metadata)
        self.n_ctx_train = ctx_train(first)
        self.no_decode = no_decode_reason(first)
        self._largest = {v.quant: largest_gpu_weight_bytes(v.headers) for v in model.variants}

    def for_setting(self, carveout_bytes: int | None, gpu_cap_bytes: int | None, *,
                    search_max_ctx: bool | None = None) -> Self:
        """The same search with the machine setting fixed (None: left to the planner), sharing this
        one's estimates: breakdowns do not depend on the setting, only placements do. A workload
        (planner/workload_plan.py) plans every model on every candidate setting this way; what the
        user fixed stays in the request (user_fixed_cap)."""
        clone = copy.copy(self)
        clone._setting = (carveout_bytes, gpu_cap_bytes)
        if search_max_ctx is not None:
            clone.req = self.req.model_copy(update={"search_max_ctx": search_max_ctx})
        return clone

    def fixed_setting(self, profile: DeviceProfile) -> tuple[int | None, int | None]:
        """(carve-out, GPU cap) this search may not change, None where it may: the setting a
        workload weighs (for_setting), else what the user fixed (PlanRequest.carveout_bytes /
        gpu_cap_bytes, which --carveout / --gpu-cap set). A cap above the RAM the OS sees is taken
        at that RAM, as --gpu-cap is (planner.device_overrides)."""
        if self._setting is not None:
            return self._setting
        carve, cap = self.req.carveout_bytes, self.req.gpu_cap_bytes
        return carve, (min(cap, profile.os_visible_ram(carve)) if cap is not None else None)

    @property
    def user_fixed_cap(self) -> bool:
        """The user fixed the GPU cap (--gpu-cap): plans say so and never suggest another."""
        return self.req.gpu_cap_bytes is not None

    # ---------------------------------------------------------------- estimates

    def facts(self, v: PlanVariant) -> ModelFacts:
        if v.quant not in self._facts:
            self._facts[v.quant] = self._facts_fn(v.headers)
        return self._facts[v.quant]

    def compute(self, v: PlanVariant) -> ModelCompute | None:
        """The model's FLOPs and layer kinds (None for test doubles without real facts)."""
        if v.quant not in self._compute:
            try:
                self._compute[v.quant] = model_compute(self.facts(v))
            except (AttributeError, TypeError):
                self._compute[v.quant] = None
        return self._compute[v.quant]

    def breakdown(self, v: PlanVariant, *, ctx: int, backend: str, ctk: str | None = None, ctv: str | None = None,
                  ngl: int = -1, ncm: int = 0, mmap: bool = True) -> Breakdown:
        ctk = ctk or self.req.cache_type_k
        ctv = ctv or self.req.cache_type_v
        with_proj = bool(self.req.use_mmproj and self.model.projector)
        key = (v.quant, ctx, backend, ctk, ctv, ngl, ncm, mmap, with_proj)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        settings = self.engine.settings(RunShape(
            ctx=ctx, backend=backend, cache_type_k=ctk, cache_type_v=ctv, flash_attn=self.fa_for(ctk, ctv),
            n_parallel=self.req.n_parallel, n_batch=self.req.n_batch, n_ubatch=self.req.n_ubatch, mmap=mmap,
            with_mmproj=with_proj, gpu_layers=ngl, cpu_expert_layers=ncm))
        proj = self.model.projector.headers if with_proj and self.model.projector else None
        bd = self._estimate(self.facts(v), settings, proj)
        self.n_estimates += 1
        self._cache[key] = bd
        return bd

    def fa_for(self, ctk: str, ctv: str) -> FlashAttn:
        """A quantized V cache needs flash attention; asking for it turns FA on unless the user said off."""
        if v_cache_needs_flash_attn(ctv) and self.req.flash_attn == "auto":
            return "on"
        return self.req.flash_attn

    def place(self, bd: Breakdown, v: PlanVariant, dev: DeviceSetup, cfg: FitConfig) -> FitResult:
        return place(bd, dev.profile, cfg, largest_weight_bytes=self._largest[v.quant],
                     largest_kv_bytes=self._kv_max_of(bd))

    def _kv_max_of(self, bd: Breakdown) -> int:
        kv_max = self._kv_max.get(id(bd))
        if kv_max is None:
            kv_max = self._kv_max[id(bd)] = largest_kv_tensor_bytes(bd)
        return kv_max

    # ---------------------------------------------------------------- device setup

    def setup(self, profile: DeviceProfile) -> DeviceSetup:
        os_ = self.req.os or profile.default_os
        if os_ not in profile.os:
            raise DeviceError(f"{profile.id} has no profile for {os_}",
                              hint=f"this device is described for: {', '.join(profile.os)}")
        info = self._requested_backend(profile, os_) if self.req.backend else self._default_backend(profile, os_)
        carve, cap = self.fixed_setting(profile)
        base = FitConfig(os=os_, use=self.req.use or profile.default_use, backend=info.label,
                         carveout_bytes=carve, gpu_cap_bytes=cap, mmap=self.req.mmap is not False,
                         keep_in_memory=self.req.keep_in_memory)
        kind = kind_of(profile)
        here = kind.on(os_)
        return DeviceSetup(profile=profile, base=base, est_backend=estimator_backend(info.name),
                           prefer_fast=here.prefer_fast, lever=here.lever, kind=kind)

    def _requested_backend(self, profile: DeviceProfile, os_: OS) -> BackendInfo:
        """The backend the user asked for (--backend), as this device lists it on this OS; the CPU
        backend on any machine."""
        asked = self.req.backend or ""
        info = profile.backend(asked, os_)
        if info is None and asked.strip().lower() == "cpu":
            info = BackendInfo(name="cpu", reports_as="host_ram")  # every machine has its CPU
        if info is None:
            names = sorted({b.label for b in profile.backends(os_)})
            raise InputError(f"{profile.id}: backend {asked!r} is not listed for it on {os_}",
                             hint=f"choose one of: {', '.join(names)}")
        return info

    @staticmethod
    def _default_backend(profile: DeviceProfile, os_: OS) -> BackendInfo:
        """The profile's first GPU backend; a CPU-only machine is planned on its CPU backend
        (system RAM, RAM bandwidth)."""
        backends = profile.backends(os_)
        info = next((b for b in backends if b.name != "cpu"), backends[0] if backends else None)
        if info is None:
            raise DeviceError(f"{profile.id} lists no backend on {os_}",
                              hint="add a [[os.<name>.backends]] entry to the profile (docs/devices.md)")
        return info

    def carveouts(self, profile: DeviceProfile) -> list[int | None]:
        """The BIOS splits to plan: every firmware option, or the one the user fixed (--carveout,
        PlanRequest.carveout_bytes); [None] on memory without a carve-out."""
        return kind_of(profile).carveouts(profile, self.fixed_setting(profile)[0])

    def tunable(self, dev: DeviceSetup) -> bool:
        """Whether the planner may suggest a higher GPU cap (not when the cap is fixed: --gpu-cap,
        or the setting a workload weighs)."""
        return dev.base.gpu_cap_bytes is None and dev.kind.tunable(dev.profile, dev.os)

    def machine_cap(self, dev: DeviceSetup, carve: int | None) -> int | None:
        """The one GPU cap to advise for the machine on this carve-out: its safe maximum in whole GiB
        (Linux GTT: set once for every model), or None when it cannot be raised."""
        return dev.kind.machine_cap(dev.profile, dev.os, carve) if dev.base.gpu_cap_bytes is None else None

    def _with_machine_cap(self, dev: DeviceSetup, carve: int | None) -> FitConfig:
        """The configuration at this carve-out with the GPU cap at the machine's safe maximum (where
        it can be raised): what partial offload and the longest contexts are searched on."""
        cfg = dev.base.model_copy(update={"carveout_bytes": carve})
        cap = self.machine_cap(dev, carve)
        return cfg.model_copy(update={"gpu_cap_bytes": cap}) if cap else cfg

    # ---------------------------------------------------------------- placement of one breakdown

    def place_options(self, bd: Breakdown, v: PlanVariant, dev: DeviceSetup) -> list[FitResult]:
        """Full-offload placement on every configuration. Where the GPU cap can be raised and the
        default does not hold the model: carve-out devices take the machine's safe maximum (one
        setting for every model); unified devices the smallest whole-GiB raise (no reboot there)."""
        return [self.place_raising(lambda cfg: self.place(bd, v, dev, cfg), dev, carve)
                for carve in self.carveouts(dev.profile)]

    def place_raising(self, place_at: Callable[[FitConfig], FitResult], dev: DeviceSetup,
                      carve: int | None) -> FitResult:
        """One carve-out's full-offload placement (`place_at` places on a configuration), with the
        GPU cap raised by the memory kind's rule when the default does not hold it. Also used to
        place several models' sum (planner/workload_together.py) under the same rule."""
        cfg = dev.base.model_copy(update={"carveout_bytes": carve})
        r = place_at(cfg)
        cap = dev.kind.raised_cap(dev.profile, dev.os, carve, r) if self._may_raise(dev, r) else None
        return place_at(cfg.model_copy(update={"gpu_cap_bytes": cap})) if cap else r

    def _may_raise(self, dev: DeviceSetup, r: FitResult) -> bool:
        """A placement the GPU cap stops, on a cap the planner may raise."""
        gpu_short = any(c.name == "gpu_memory" for c in r.blocking_failures)
        return (not r.fits and gpu_short and bool(r.gpu_cap_max_bytes) and r.gpu_cap_default_bytes is not None
                and self.tunable(dev))

    def partials(self, v: PlanVariant, dev: DeviceSetup, ctx: int, kv: str) -> list[tuple[FitResult, Breakdown]]:
        """Partial offload on every configuration (GPU cap at its maximum where it can be raised)."""
        n_layer = len(self.breakdown(v, ctx=ctx, backend=dev.est_backend, ctk=kv, ctv=kv, mmap=dev.base.mmap).layers)
        is_moe = self.ratio < 1.0
        out = []
        for carve in self.carveouts(dev.profile):
            cfg = self._with_machine_cap(dev, carve)

            def at(ngl: int, ncm: int) -> Breakdown:
                return self.breakdown(v, ctx=ctx, backend=dev.est_backend, ctk=kv, ctv=kv, ngl=ngl, ncm=ncm,
                                      mmap=dev.base.mmap)

            r = self.engine.offload(at, dev.profile, cfg, n_layer=n_layer, is_moe=is_moe,
                                    largest_weight_bytes=self._largest[v.quant])
            if r.fits and r.tier == "partial_offload":
                out.append((r, at(r.n_gpu_layers, r.n_cpu_moe)))
        return out

    def whole_layer_split(self, v: PlanVariant, dev: DeviceSetup, r: FitResult, bd: Breakdown,
                          depth: int) -> tuple[int, SpeedEstimate | None]:
        """For a plan that offloads experts (--n-cpu-moe): the largest -ngl whose whole layers fit on
        the same machine setting, with its speed at `depth` -- what an app without per-expert
        offload (Ollama's num_gpu) can do instead. (0, None) when no whole-layer split fits."""
        s = bd.settings
        cfg = dev.base.model_copy(update={"carveout_bytes": r.carveout_bytes, "gpu_cap_bytes": r.gpu_cap_bytes})

        def at(ngl: int, ncm: int) -> Breakdown:
            return self.breakdown(v, ctx=s.n_ctx, backend=dev.est_backend, ctk=s.cache_type_k, ctv=s.cache_type_v,
                                  ngl=ngl, ncm=ncm, mmap=dev.base.mmap)

        whole = self.engine.offload(at, dev.profile, cfg, n_layer=len(bd.layers), is_moe=False,
                                    largest_weight_bytes=self._largest[v.quant])
        if not whole.fits or whole.n_gpu_layers <= 0:
            return 0, None
        ngl = len(bd.layers) if whole.tier != "partial_offload" else whole.n_gpu_layers
        return ngl, self.speed(at(whole.n_gpu_layers, 0), whole, dev, depth, v)

    # ---------------------------------------------------------------- speeds

    def speed(self, bd: Breakdown, r: FitResult, dev: DeviceSetup, depth: int, v: PlanVariant) -> SpeedEstimate:
        return estimate_speed(bd, r, dev.profile, ratio=self.ratio, depth=depth, compute=self.compute(v),
                              app=self.engine.app)

    def prefill(self, bd: Breakdown, r: FitResult, dev: DeviceSetup, v: PlanVariant) -> PrefillEstimate | None:
        comp = self.compute(v)
        if comp is None or self.no_decode is not None or dev.est_backend == "cpu":
            return None  # no CPU compute figure in the profiles: no prompt-speed estimate on the CPU
        return estimate_prefill(bd, r, dev.profile, comp, tokens=bd.n_ctx, depth=0)

    # ---------------------------------------------------------------- one quant, one KV type

    def rank(self, r: FitResult, speed: float, dev: DeviceSetup) -> tuple:
        """Configurations of one quant, best first: fits; fast before spill before partial (on an OS
        that prefers it); the faster where speed differs; the least spill; the smallest carve-out (the
        OS keeps the most); no cap change; the most OS headroom."""
        if not r.fits:  # the closest miss first, so its reason is the one worth showing
            return (1, 0, r.shortfall_bytes, r.carveout_bytes or 0)
        order = (_PLACEMENT_RANK if dev.prefer_fast else _PLACEMENT_RANK_SPILL_OK)[placement(r)]
        spill_gib = round(r.shared_used_bytes / GIB) if dev.prefer_fast and r.tier == "shared" else 0
        return (0, order, -round(speed, 1) if order > 0 else 0.0, spill_gib, r.carveout_bytes or 0,
                int(cap_raised(r)), -r.os_free_bytes)

    def evaluate(self, v: PlanVariant, dev: DeviceSetup, ctx: int, kv: str) -> Evaluation:
        full = self.breakdown(v, ctx=ctx, backend=dev.est_backend, ctk=kv, ctv=kv, mmap=dev.base.mmap)
        options = self.place_options(full, v, dev)
        partials = [] if any(r.fits for r in options) else self.partials(v, dev, ctx, kv)
        best, best_bd = self._best_placed([(r, full) for r in options] + partials, dev, v)
        ev = Evaluation(variant=v, kv=kv, full=full, best=best, best_bd=best_bd, options=options, partials=partials,
                        quality=quality_key(v.quant, v.size_bytes))
        self._fill_speeds(ev, dev)
        return ev

    def _best_placed(self, placed: list[tuple[FitResult, Breakdown]], dev: DeviceSetup,
                     v: PlanVariant) -> tuple[FitResult, Breakdown]:
        """The best of the placements by rank (the first of equals: full offload before partial)."""
        return min(placed, key=lambda rb: self.rank(rb[0], self.speed(rb[1], rb[0], dev, 0, v).tps, dev))

    def _fill_speeds(self, ev: Evaluation, dev: DeviceSetup) -> None:
        """Decode at an empty and a full context and prefill, for a best option that runs."""
        r, bd, v = ev.best, ev.best_bd, ev.variant
        if r.fits and self.no_decode is None:
            ev.speed0 = self.speed(bd, r, dev, 0, v)
            ev.speed_ctx = self.speed(bd, r, dev, bd.n_ctx, v)
            ev.prefill = self.prefill(bd, r, dev, v)

    def best_of(self, ev: Evaluation, dev: DeviceSetup, allowed: set[str]) -> tuple[FitResult, Breakdown] | None:
        """The best configuration of this evaluation whose placement is in `allowed`."""
        pool = [(r, b) for r, b in [(r, ev.full) for r in ev.options] + ev.partials if placement(r) in allowed]
        return self._best_placed(pool, dev, ev.variant) if pool else None

    def refocus(self, ev: Evaluation, dev: DeviceSetup, allowed: set[str]) -> Evaluation:
        """The same evaluation with its best configuration taken among `allowed` placements."""
        pick = self.best_of(ev, dev, allowed)
        if pick is None or pick[0] is ev.best:
            return ev
        r, b = pick
        out = Evaluation(variant=ev.variant, kv=ev.kv, full=ev.full, best=r, best_bd=b, options=ev.options,
                         partials=ev.partials, max_ctx=ev.max_ctx, max_ctx_fast=ev.max_ctx_fast,
                         max_ctx_mode=ev.max_ctx_mode, quality=ev.quality)
        self._fill_speeds(out, dev)
        return out

    # ---------------------------------------------------------------- context search

    def _max_ctx_configs(self, dev: DeviceSetup) -> list[FitConfig]:
        """Every configuration a max-context search weighs (GPU caps at the machine's setting),
        built once per device."""
        key = id(dev)
        if key not in self._ctx_configs:
            out = [self._with_machine_cap(dev, carve) for carve in self.carveouts(dev.profile)]
            self._ctx_configs[key] = (dev, out)  # dev kept alive so its id stays unique
        return self._ctx_configs[key][1]

    def _slack_at(self, v: PlanVariant, dev: DeviceSetup, ctx: int, kv: str, fast: bool) -> int:
        """Best signed slack over every configuration with full offload; `fast`: the GPU side must
        stay in fast memory too. Both answers come from one set of placements, kept for the other."""
        key = (v.quant, id(dev), ctx, kv)
        hit = self._slacks.get(key)
        if hit is None:
            bd = self.breakdown(v, ctx=ctx, backend=dev.est_backend, ctk=kv, ctv=kv, mmap=dev.base.mmap)
            largest, kv_max = self._largest[v.quant], self._kv_max_of(bd)
            slacks = [place_slack(bd, dev.profile, cfg, largest_weight_bytes=largest, largest_kv_bytes=kv_max)
                      for cfg in self._max_ctx_configs(dev)]  # (r.slack_bytes, fast_slack(r)) of each placement
            hit = (max((a for a, _ in slacks), default=-1), max((b for _, b in slacks), default=-1))
            self._slacks[key] = hit
        return hit[1] if fast else hit[0]

    def fits_full_with(self, v: PlanVariant, dev: DeviceSetup, ctx: int, kv: str, fast: bool = False) -> bool:
        try:
            return self._slack_at(v, dev, ctx, kv, fast) >= 0
        except EstimateError:
            return False

    def _max_ctx(self, slack: Callable[[int], int], upper: int | None = None) -> int:
        """Largest multiple of 256 tokens (up to the training context x sequences, or `upper`) that
        fits; 0 if none."""
        if upper is None:
            upper = (self.n_ctx_train or 131072) * self.req.n_parallel
        hi = max(CTX_STEP, upper // CTX_STEP * CTX_STEP)
        return last_fitting(slack, CTX_STEP, hi, CTX_STEP) or 0

    def fill_max_ctx(self, ev: Evaluation, dev: DeviceSetup) -> None:
        """The largest context at which the quant still runs fully on the GPU (any configuration) and
        the largest that stays in fast memory, per KV type. "How short a context would put it all on
        the GPU" for a quant that needs partial offload at the requested context (0 = none would)."""
        stay_fast = dev.kind.has_shared_window and dev.prefer_fast
        for kv in sorted({"f16", QUANTIZED_KV, self.req.cache_type_k}):
            ev.max_ctx[kv], ev.max_ctx_fast[kv] = self._max_ctx_pair(ev.variant, dev, kv, stay_fast)
        if ev.max_ctx.get(self.req.cache_type_k):
            ev.max_ctx_mode = "gpu"
        else:
            ev.max_ctx_mode = "partial" if ev.best.tier == "partial_offload" else "none"

    def _max_ctx_pair(self, v: PlanVariant, dev: DeviceSetup, kv: str, stay_fast: bool) -> tuple[int | None, int | None]:
        """(longest context on the GPU, longest in fast memory) with one KV type; None where
        llama.cpp refuses the type (a quantized V cache without flash attention, a head size)."""
        if v_cache_needs_flash_attn(kv) and self.req.flash_attn == "off":
            return None, None
        try:
            on_gpu = self._max_ctx(lambda c: self._slack_at(v, dev, c, kv, False))
            if not stay_fast:
                return on_gpu, on_gpu
            # fast memory is part of all the GPU may use: its limit is at most the one above
            return on_gpu, (self._max_ctx(lambda c: self._slack_at(v, dev, c, kv, True), on_gpu) if on_gpu else 0)
        except EstimateError:  # e.g. llama.cpp refuses this KV type for the model's head size
            if kv == self.req.cache_type_k:
                raise
            return None, None

    # ---------------------------------------------------------------- the request

    def context_plan(self) -> ContextPlan:
        """The requested context as it will run: within the trained length, extended the way the
        model's makers document (YaRN flags), or capped at the trained length (planner.context_ext)."""
        if self.req.ctx:
            return plan_context(self.model.variants[0].headers, self.req.ctx, self.n_ctx_train, self.req.n_parallel)
        train = self.n_ctx_train or DEFAULT_CTX_CAP
        if self.req.ctx == 0:  # --ctx max: the whole training context for every sequence
            return ContextPlan(ctx=train * self.req.n_parallel, requested=0, trained=self.n_ctx_train)
        return ContextPlan(ctx=min(train, DEFAULT_CTX_CAP), requested=0, trained=self.n_ctx_train)

    def ctx(self) -> tuple[int, bool]:
        """(context to plan, whether it was defaulted)."""
        return self.context_plan().ctx, self.req.ctx is None

    def kv_alternative(self) -> str | None:
        """The quantized KV type to weigh beside the requested one, or None when the user fixed the
        KV type, flash attention is off (a quantized V cache needs it) or the request is already it."""
        if self.req.kv_fixed or self.req.flash_attn == "off" or self.req.cache_type_k == QUANTIZED_KV:
            return None
        return QUANTIZED_KV

    def evaluate_device(self, dev: DeviceSetup) -> tuple[list[Evaluation], list[Evaluation], int, bool]:
        """Every quant with the requested KV type, and (where it can change the answer) with the
        quantized alternative: (requested, alternatives, ctx, ctx defaulted)."""
        ctx, defaulted = self.ctx()
        req_kv = self.req.cache_type_k
        evals = [self.evaluate(v, dev, ctx, req_kv) for v in self.model.variants]
        if self.req.search_max_ctx:
            for ev in evals:
                self.fill_max_ctx(ev, dev)
        slow = [ev for ev in evals if ev.placement != "fast"]
        alts = [alt for ev in slow if (alt := self.alternative(ev, dev, ctx)) is not None]
        return evals, alts, ctx, defaulted

    def alternative(self, ev: Evaluation, dev: DeviceSetup, ctx: int) -> Evaluation | None:
        """The same quant with the quantized KV alternative (its longest contexts are the requested
        type's); None when there is no alternative or llama.cpp refuses it for this head size."""
        alt_kv = self.kv_alternative()
        if alt_kv is None:
            return None
        try:
            alt = self.evaluate(ev.variant, dev, ctx, alt_kv)
        except EstimateError:
            return None
        alt.max_ctx, alt.max_ctx_fast, alt.max_ctx_mode = ev.max_ctx, ev.max_ctx_fast, ev.max_ctx_mode
        return alt
