"""The fit solver: place what llama.cpp allocates (a Breakdown) into a device's memory pools.

Pools, per memory architecture (all sizes from the DeviceProfile arithmetic, so every consumer
splits memory the same way):

- carveout (APU): `dedicated` = the BIOS UMA frame buffer; `shared` = the capped window of system
  RAM the GPU may map (Windows shared GPU memory, Linux GTT); `host` = CPU-resident buffers. Shared
  and host allocations and the OS reserve all come out of the RAM the OS sees (total - carve-out).
- unified (Apple, GB10, Jetson): `gpu` = the working-set / wired limit; GPU and host allocations
  and the OS reserve share the one RAM.
- discrete: `vram` = the card (minus what the desktop holds); `host` = system RAM.

The GPU side is planned with a safety headroom: llama.cpp's own `--fit-target` (1024 MiB per
device) plus, for every component the estimator marks as an estimate, its relative margin times
its bytes. The OS side must keep its reserve after shared + host allocations (the safety spill
counts there too). See docs/plan.md for the rules and a worked example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from pydantic import BaseModel, Field

from .device_schema import OS, BackendInfo, DeviceProfile, Use
from .estimate_types import Breakdown, DeviceUsage
from .units import GIB, fmt_bytes

Tier = Literal["dedicated", "shared", "partial_offload", "no_fit", "cpu_only"]
TIERS: tuple[Tier, ...] = ("dedicated", "shared", "partial_offload", "no_fit")
TIER_LABEL: dict[Tier, str] = {
    "dedicated": "fits in dedicated GPU memory",
    "shared": "fits on the GPU using shared memory",
    "partial_offload": "fits only with part of the model on the CPU",
    "no_fit": "does not fit",
    "cpu_only": "runs on the CPU from system RAM (no GPU in use)",
}

FIT_TARGET_BYTES = 1024 * 1024 * 1024  # llama.cpp common.h: fit_params_target default, 1024 MiB per device

# Breakdown.estimated keys -> the per-device component they scale ("overhead" is the driver residual).
_MARGIN_COMPONENTS = ("weights", "kv", "recurrent", "compute", "output", "mmproj")


class FitConfig(BaseModel):
    """One configuration of a device: what the user sets in the BIOS, kernel or OS, and the backend."""

    os: OS
    use: Use
    backend: str = Field(description="backend name or label as the profile lists it: 'vulkan', 'rocm', 'vulkan (amdvlk)'")
    carveout_bytes: int | None = Field(None, description="BIOS UMA frame buffer; None = the device's current/default (ignored without a carve-out)")
    gpu_cap_bytes: int | None = Field(None, description="GTT / shared window / wired limit setting; None = the OS default")
    reserve_bytes: int | None = Field(None, description="RAM the OS and apps keep; None = the profile's value for os + use")
    mmap: bool = True
    keep_in_memory: bool = Field(False, description="LM Studio 'Keep Model in Memory': the weights file stays in RAM too")
    gpu_reserve_bytes: int | None = Field(None, description="GPU memory the desktop holds; None = the profile's for os + use")
    fit_target_bytes: int = FIT_TARGET_BYTES


@dataclass(slots=True)
class Check:
    """One load-failure check. `blocking` checks make a configuration not fit. A plain dataclass:
    every placement makes several and a plan makes over a thousand placements (pydantic serialises
    it inside FitResult all the same)."""

    name: Literal["gpu_memory", "os_reserve", "load_peak", "max_alloc", "page_cache", "backend_report"]
    ok: bool
    blocking: bool
    message: str
    short: str = ""  # a table-cell version of a failure: "GPU short 3.5 GiB"
    margin_bytes: int = 0  # signed: room left when it passes, minus what is missing when it fails

    def __post_init__(self) -> None:
        if self.ok:
            self.short = ""  # a passing check has no shortage to put in a table cell

    @property
    def deficit_bytes(self) -> int:
        return max(0, -self.margin_bytes)


@dataclass(slots=True)
class PoolUse:
    name: Literal["dedicated", "shared", "gpu", "vram", "host"]
    label: str
    capacity_bytes: int
    used_bytes: int

    @property
    def headroom_bytes(self) -> int:
        return self.capacity_bytes - self.used_bytes


class FitResult(BaseModel):
    """Where a breakdown lands on a device configuration, and whether it loads."""

    device_id: str
    memory_architecture: Literal["carveout", "unified", "discrete"]
    config: FitConfig
    tier: Tier
    n_gpu_layers: int  # as in the breakdown's settings (-1 = all)
    n_cpu_moe: int
    full_offload: bool

    ram_bytes: int
    carveout_bytes: int | None  # None without a carve-out
    os_visible_bytes: int
    reserve_bytes: int
    gpu_cap_bytes: int | None  # shared window (APU) / working set (unified) in effect; None for discrete
    gpu_cap_default_bytes: int | None
    gpu_cap_max_bytes: int | None  # how far it can be raised (== default when not tunable)
    gpu_capacity_bytes: int  # all memory the model's GPU side may use here (what the desktop holds taken off)
    gpu_reserve_bytes: int = 0  # GPU memory the desktop, its apps and the driver hold

    gpu_need_bytes: int  # GPU buffers + driver overhead
    overhead_bytes: int
    safety_bytes: int  # fit target + estimate margins on the GPU side
    margin_bytes: int = 0  # the estimate margins alone (the part of the safety that is about our error)
    host_need_bytes: int  # CPU-resident buffers
    host_safety_bytes: int
    keep_copy_bytes: int = 0  # LM Studio Keep Model in Memory: the weights held in RAM as well
    dedicated_used_bytes: int  # carve-out / working set / VRAM actually used
    shared_used_bytes: int  # spilled beyond the carve-out into the shared window (carveout only)
    fast_capacity_bytes: int = 0  # memory at device speed for the model (Windows APU: the carve-out)
    fast_spare_bytes: int = 0  # room left there after the model and the estimate margins (< 0: spills)
    fast_label: str = ""  # "carve-out", "carve-out + GTT", "VRAM", "GPU working set"
    spill_bytes: int = 0  # GPU-side bytes in a slower memory class (Windows shared memory on Vulkan)
    spill_label: str = ""
    os_free_bytes: int  # visible - reserve - shared (with safety) - host: what is left beyond the reserve
    load_peak_bytes: int  # host RAM at the worst moment of loading (staging), reserve included
    staging_bytes: int
    largest_tensor_bytes: int
    reported_bytes: int | None  # what the backend will tell llama.cpp the GPU has

    pools: list[PoolUse]
    checks: list[Check]
    shared_slowdown: float = 1.0  # decode factor for the part of the GPU bytes in shared memory
    shared_fraction: float = 0.0  # part of the GPU bytes living in the shared window
    shared_cost: str = ""  # what using shared memory costs on this OS/driver
    suggest_no_mmap: bool = False

    gpu: DeviceUsage
    host: DeviceUsage

    @property
    def fits(self) -> bool:
        return self.tier != "no_fit"

    @property
    def gpu_headroom_bytes(self) -> int:
        """GPU memory left after the model and the driver overhead (before the safety margin)."""
        return self.gpu_capacity_bytes - self.gpu_need_bytes

    @property
    def blocking_failures(self) -> list[Check]:
        return [c for c in self.checks if c.blocking and not c.ok]

    @property
    def warnings(self) -> list[str]:
        return [c.message for c in self.checks if not c.ok and not c.blocking]

    @property
    def shortfall_bytes(self) -> int:
        """How far from fitting: the sum of what the failing checks miss (0 when it fits)."""
        return sum(c.deficit_bytes for c in self.blocking_failures)

    @property
    def slack_bytes(self) -> int:
        """The tightest blocking check's signed margin: >= 0 when this configuration fits."""
        return min((c.margin_bytes for c in self.checks if c.blocking), default=0)

    @property
    def short_reason(self) -> str:
        fails = self.blocking_failures
        return "; ".join(c.short or c.message for c in fails) if fails else TIER_LABEL[self.tier]

    @property
    def needed_cap_bytes(self) -> int:
        """The shared/working-set cap that would hold the GPU side with its safety (beyond the carve-out)."""
        carve = self.carveout_bytes or 0
        return max(0, self.gpu_need_bytes + self.safety_bytes - carve)


# --------------------------------------------------------------------------- helpers


def _component(d: DeviceUsage, name: str) -> int:
    return int(getattr(d, f"{name}_bytes", 0))


def margin_bytes(breakdown: Breakdown, device: DeviceUsage, *, overhead: int = 0) -> int:
    """Sum of relative margin x bytes for the components the estimator marks as estimates."""
    total = 0.0
    for name, rate in breakdown.estimated.items():
        if name in _MARGIN_COMPONENTS:
            total += rate * _component(device, name)
        elif name == "overhead":
            total += rate * overhead
    return int(round(total))


def largest_kv_tensor_bytes(breakdown: Breakdown) -> int:
    """The largest single KV tensor on the GPU: one layer's K (or V) buffer; MLA layers store one."""
    best = 0
    for layer in breakdown.layers:
        if not layer.on_gpu or not layer.kv_bytes:
            continue
        best = max(best, layer.kv_bytes if layer.kind == "mla" else layer.kv_bytes // 2)
    return best


def _overheads(b: Breakdown, gpu: DeviceUsage, host: DeviceUsage, backend: BackendInfo) -> tuple[int, int]:
    """Runtime overhead outside llama.cpp's buffers, per side. The estimator gives it per device
    (older breakdowns: one total, taken as the GPU's); the profile's per-backend figure is a floor
    for the GPU side (a measured driver context beats a generic estimate)."""
    g = getattr(gpu, "overhead_bytes", 0) or 0
    h = getattr(host, "overhead_bytes", 0) or 0
    if not g and not h:
        g = b.overhead_bytes
    if not gpu.total_bytes:  # no GPU in use: whatever overhead there is lives on the host
        return 0, h
    return max(g, backend.overhead_bytes), h


def _backend(profile: DeviceProfile, config: FitConfig) -> BackendInfo:
    found = profile.backend(config.backend, config.os)
    return found if found is not None else BackendInfo(name=config.backend)


def _full_offload(b: Breakdown) -> bool:
    s = b.settings
    n_layer = len(b.layers)
    return (s.n_gpu_layers < 0 or s.n_gpu_layers > n_layer) and s.n_cpu_moe == 0 and s.backend != "cpu"


# --------------------------------------------------------------------------- placement


class _Pools(BaseModel):
    """What one memory architecture makes of a configuration: capacities, where the GPU side lands,
    and what the OS side has left. Built by one function per architecture (POOL_MODELS)."""

    visible: int
    capacity: int  # all memory the model's GPU side may use here (after what the desktop holds)
    fast_capacity: int  # the part that runs at device speed (APU: the carve-out minus the desktop)
    gpu_reserve: int
    carve: int | None = None
    cap: int | None = None
    cap_default: int | None = None
    cap_max: int | None = None
    dedicated_used: int
    shared_used: int = 0
    shared_with_safety: int = 0  # RAM the GPU side may take from the OS side (with its safety)
    slowdown: float = 1.0
    spill_label: str = ""
    shared_cost: str = ""
    fast_label: str
    pools: list[PoolUse]
    os_gpu_bytes: int = 0  # GPU-side bytes that are RAM the OS would otherwise have (unified, shared)


def _carveout_pools(profile: DeviceProfile, config: FitConfig, need: int, safety: int, margins: int) -> _Pools:
    """APU: the carve-out (dedicated, lost to the OS) first, then the shared window of RAM the OS
    sees (Windows shared GPU memory, Linux GTT). The desktop's GPU memory fills the carve-out first."""
    from .memory_classes import shared_window

    os_ = config.os
    carve = profile.current_carveout() if config.carveout_bytes is None else config.carveout_bytes
    visible = profile.os_visible_ram(carve)
    cap = profile.gpu_cap_bytes(os_, carve, config.gpu_cap_bytes) or 0
    reserve_gpu = _gpu_reserve(profile, config)
    ded_avail = max(0, carve - reserve_gpu)
    shared_avail = max(0, cap - max(0, reserve_gpu - carve))
    dedicated_used = min(need, ded_avail)
    shared_used = need - dedicated_used
    window = shared_window(os_, config.backend)
    cap_info = profile.os_info(os_).gpu_cap
    slowdown = cap_info.shared_slowdown if (cap_info and cap_info.shared_slowdown) else window.slowdown
    cost = window.cost_text() if not (cap_info and cap_info.shared_slowdown) else (
        f"bytes in {window.label} decode about {slowdown:.1f}x slower on this device (profile)")
    shared_with_safety = max(0, need + safety - ded_avail)
    return _Pools(
        visible=visible, capacity=ded_avail + shared_avail, fast_capacity=ded_avail if slowdown > 1.0 else ded_avail + shared_avail,
        gpu_reserve=reserve_gpu, carve=carve, cap=cap, cap_default=profile.gpu_cap_bytes(os_, carve) or 0,
        cap_max=profile.max_gpu_cap_bytes(os_, carve) or 0, dedicated_used=dedicated_used, shared_used=shared_used,
        shared_with_safety=shared_with_safety, slowdown=slowdown, spill_label=window.label, shared_cost=cost,
        fast_label="carve-out" if slowdown > 1.0 else f"carve-out + {window.label}",
        pools=[PoolUse(name="dedicated", label="carve-out (dedicated)", capacity_bytes=ded_avail, used_bytes=dedicated_used),
               PoolUse(name="shared", label=_shared_label(os_), capacity_bytes=shared_avail, used_bytes=shared_used)],
        os_gpu_bytes=shared_with_safety,
    )


def _unified_pools(profile: DeviceProfile, config: FitConfig, need: int, safety: int, margins: int) -> _Pools:
    """One RAM: the GPU may wire up to its working-set limit; GPU data is RAM the OS does not have."""
    os_ = config.os
    visible = profile.os_visible_ram()
    cap = profile.gpu_cap_bytes(os_, None, config.gpu_cap_bytes)
    cap_default = profile.gpu_cap_bytes(os_)
    cap_max = profile.max_gpu_cap_bytes(os_)
    if cap is None:  # no working-set limit known: the GPU may use all RAM the OS sees
        cap = cap_default = cap_max = visible
    reserve_gpu = _gpu_reserve(profile, config)
    capacity = max(0, cap - reserve_gpu)
    return _Pools(
        visible=visible, capacity=capacity, fast_capacity=capacity, gpu_reserve=reserve_gpu, cap=cap,
        cap_default=cap_default, cap_max=cap_max, dedicated_used=need, fast_label=_unified_label(os_),
        pools=[PoolUse(name="gpu", label=_unified_label(os_), capacity_bytes=capacity, used_bytes=need)],
        os_gpu_bytes=need + safety,
    )


def _discrete_pools(profile: DeviceProfile, config: FitConfig, need: int, safety: int, margins: int) -> _Pools:
    """A card: VRAM minus what the desktop holds; system RAM is only the CPU side's."""
    reserve_gpu = _gpu_reserve(profile, config)
    capacity = max(0, int(profile.vram_bytes or 0) - reserve_gpu)
    return _Pools(
        visible=profile.os_visible_ram(), capacity=capacity, fast_capacity=capacity, gpu_reserve=reserve_gpu,
        dedicated_used=need, fast_label="VRAM",
        pools=[PoolUse(name="vram", label="VRAM", capacity_bytes=capacity, used_bytes=need)],
    )


POOL_MODELS: dict[str, Callable[[DeviceProfile, FitConfig, int, int, int], _Pools]] = {
    "carveout": _carveout_pools,
    "unified": _unified_pools,
    "discrete": _discrete_pools,
}


def _gpu_reserve(profile: DeviceProfile, config: FitConfig) -> int:
    if config.gpu_reserve_bytes is not None:
        return config.gpu_reserve_bytes
    return profile.gpu_reserve(config.os, config.use)


def _load_check(arch: str, os_: str, profile: DeviceProfile, config: FitConfig, p: _Pools, gpu: DeviceUsage,
                os_free: int, os_ok: bool, largest_weight_bytes: int,
                staged_weights_bytes: int | None = None) -> tuple[Check | None, int, int]:
    """The load-path check for this OS and memory architecture: (check, staging bytes, load peak).

    Windows with a carve-out: the CPU cannot address the carve-out, so the weights bound for it are
    staged through RAM Windows sees (planner/data/memory.toml `load.windows_carveout`: a share of
    them resident at the peak, bracketed by loads that worked and failed) while Windows keeps at
    least its headless working set. Elsewhere: the largest tensor passes through a host buffer."""
    need_weights = gpu.weights_bytes + gpu.mmproj_bytes if staged_weights_bytes is None else staged_weights_bytes
    if not need_weights and not gpu.total_bytes:
        return None, 0, p.visible - os_free
    if arch == "carveout" and os_ == "windows":
        from .memory_classes import windows_carveout_load

        rule = windows_carveout_load()
        in_carve = min(need_weights, max(0, (p.carve or 0) - p.gpu_reserve))
        staging = int(rule.staging_share * in_carve)
        floor = profile.reserve(os_, rule.floor_use)  # type: ignore[arg-type]
        steady_used = p.visible - config_reserve(profile, config) - os_free  # RAM the model side holds
        load_free = p.visible - floor - steady_used - staging
        check = Check(
            name="load_peak", ok=load_free >= 0, blocking=True,
            message=(f"loading stages about {fmt_bytes(staging)} of the weights bound for the carve-out through the "
                     f"{fmt_bytes(p.visible)} Windows sees (the CPU cannot address the carve-out), "
                     + (f"leaving Windows {fmt_bytes(load_free)} above its {fmt_bytes(floor)} minimum" if load_free >= 0 else
                        f"{fmt_bytes(-load_free)} more than Windows can give while keeping its {fmt_bytes(floor)} minimum: "
                        "the load fails or Windows stalls (a smaller carve-out gives Windows that RAM)")),
            short=f"load needs {fmt_bytes(-load_free, digits=1)} more OS RAM", margin_bytes=load_free)
        return check, staging, steady_used + staging + floor
    staging = largest_weight_bytes
    if not staging:
        return None, 0, p.visible - os_free
    load_free = os_free - staging
    peak = (p.visible - os_free) + staging
    if not os_ok:  # the OS side is short already (its own check says by how much): one shortage, one number
        return None, staging, peak
    check = Check(
        name="load_peak", ok=load_free >= 0, blocking=True,
        message=(f"loading stages up to {fmt_bytes(staging)} in host RAM; "
                 + ("the OS side holds it" if load_free >= 0 else
                    f"that pushes the OS side {fmt_bytes(-load_free)} under its reserve")),
        short=f"load peak {fmt_bytes(-load_free, digits=1)} under OS reserve", margin_bytes=load_free)
    return check, staging, peak


def _live_os_free(profile: DeviceProfile, config: FitConfig, p: _Pools, host_side: int) -> int | None:
    """On a probed machine (--device auto) with one pool of RAM: what is available now (MemAvailable,
    which already leaves out the OS, the desktop and other programs) minus the floor the OS must
    keep (its headless reserve: DGX Spark's watchdog stops at 8 GiB available) minus what the model
    takes. None without a live reading or on memory the model does not share with the OS."""
    live = profile.live
    if live is None or live.mem_available_bytes is None or config.carveout_bytes is not None:
        return None
    if profile.memory_architecture == "discrete":
        return None
    floor = profile.reserve(config.os, "headless")
    return live.mem_available_bytes - floor - p.os_gpu_bytes - host_side


def config_reserve(profile: DeviceProfile, config: FitConfig) -> int:
    return config.reserve_bytes if config.reserve_bytes is not None else profile.reserve(config.os, config.use)


def place(breakdown: Breakdown, profile: DeviceProfile, config: FitConfig, *,
          largest_weight_bytes: int = 0, largest_kv_bytes: int | None = None,
          staged_weights_bytes: int | None = None) -> FitResult:
    """Place one breakdown on one configuration; return the tier, pools, headroom and checks.

    largest_weight_bytes: the largest weight tensor that goes to the GPU (from the headers); it is
    the staging buffer while loading and must fit the backend's largest single allocation.
    largest_kv_bytes: largest_kv_tensor_bytes(breakdown) when the caller has it already (the
    planner places one breakdown on many configurations).
    staged_weights_bytes: the GPU weights one load stages (Windows carve-out rule); None = all of
    the breakdown's. Several servers load one after another, so their sum stages only the largest
    one's (planner/workload_together.py).
    """
    arch = profile.memory_architecture
    os_ = config.os
    reserve = config_reserve(profile, config)
    backend = _backend(profile, config)
    gpu = breakdown.device("gpu")
    host = breakdown.device("host")
    if config.backend == "cpu":  # everything on the host; there is no GPU to plan
        host = DeviceUsage(device="host", **{f"{c}_bytes": _component(gpu, c) + _component(host, c)
                                             for c in _MARGIN_COMPONENTS})
        gpu = DeviceUsage(device="gpu")

    overhead, host_overhead = _overheads(breakdown, gpu, host, backend)
    gpu_need = gpu.total_bytes + overhead
    margins = margin_bytes(breakdown, gpu, overhead=overhead) if gpu_need else 0
    safety = (config.fit_target_bytes + margins) if gpu_need else 0
    host_need = host.total_bytes + host_overhead
    host_safety = margin_bytes(breakdown, host, overhead=host_overhead)
    keep_copy = breakdown.weights_bytes if config.keep_in_memory else 0  # LM Studio: the file stays in RAM
    full = _full_offload(breakdown)

    p = POOL_MODELS[arch](profile, config, gpu_need, safety, margins)
    visible = p.visible
    os_free = visible - reserve - p.os_gpu_bytes - host_need - host_safety - keep_copy
    live_free = _live_os_free(profile, config, p, host_need + host_safety + keep_copy)
    live_bound = live_free is not None and live_free < os_free
    if live_bound:
        os_free = live_free  # type: ignore[assignment]
    pools = list(p.pools)
    pools.append(PoolUse(name="host", label="system RAM (CPU side)", capacity_bytes=max(0, visible - reserve),
                         used_bytes=host_need + keep_copy + (p.shared_used if arch == "carveout" else 0)
                         + (gpu_need if arch == "unified" else 0)))
    capacity = p.capacity

    # -- checks ---------------------------------------------------------------------------------
    checks: list[Check] = []
    gpu_ok = gpu_need + safety <= capacity
    desk = f" after the {fmt_bytes(p.gpu_reserve)} the desktop holds" if p.gpu_reserve else ""
    if gpu_need:
        checks.append(Check(
            name="gpu_memory", ok=gpu_ok, blocking=True,
            message=(f"GPU side needs {fmt_bytes(gpu_need)} + {fmt_bytes(safety)} safety of "
                     f"{fmt_bytes(capacity)} the GPU may use{desk}" if gpu_ok else
                     f"GPU side needs {fmt_bytes(gpu_need)} + {fmt_bytes(safety)} safety but the GPU may use "
                     f"only {fmt_bytes(capacity)} here{desk}"),
            short=f"GPU short {fmt_bytes(gpu_need + safety - capacity, digits=1)}",
            margin_bytes=capacity - gpu_need - safety))
    os_ok = os_free >= 0
    kept = reserve + os_free  # RAM the OS side would have left for itself
    keep_note = f" (Keep Model in Memory holds a {fmt_bytes(keep_copy)} copy of the weights)" if keep_copy else ""
    if live_bound and profile.live is not None and profile.live.mem_available_bytes is not None:
        floor = profile.reserve(os_, "headless")
        keep_note += (f"; this machine has {fmt_bytes(profile.live.mem_available_bytes)} available now and keeps "
                      f"{fmt_bytes(floor)} of it free (read by --device auto)")
    checks.append(Check(
        name="os_reserve", ok=os_ok, blocking=True,
        message=(f"the OS keeps its {fmt_bytes(reserve)} reserve with {fmt_bytes(os_free)} to spare{keep_note}" if os_ok else
                 f"the OS would keep only {fmt_bytes(kept)} of RAM, under its {fmt_bytes(reserve)} reserve "
                 f"({config.os}, {config.use} use){keep_note}" if kept >= 0 else
                 f"the OS side is {fmt_bytes(-kept)} short of RAM even before its {fmt_bytes(reserve)} reserve "
                 f"({config.os}, {config.use} use){keep_note}"),
        short=f"OS {fmt_bytes(-os_free, digits=1)} under its reserve", margin_bytes=os_free))

    kv_max = largest_kv_tensor_bytes(breakdown) if largest_kv_bytes is None else largest_kv_bytes
    largest = max(largest_weight_bytes, kv_max) if gpu_need else 0
    load, staging, load_peak = _load_check(arch, os_, profile, config, p, gpu, os_free, os_ok, largest_weight_bytes,
                                           staged_weights_bytes)
    if load is not None:
        checks.append(load)
    suggest_no_mmap = False
    zero_copy = backend.name == "metal"  # Metal wraps the mapped file as a GPU buffer: no second copy
    if config.mmap and not zero_copy and gpu.weights_bytes and os_free - gpu.weights_bytes < 0:
        # With mmap the whole file passes through the page cache on its way to the GPU buffers.
        suggest_no_mmap = True
        where = ("and on Windows the CPU cannot address the carve-out, so loading leans on the RAM the OS sees"
                 if arch == "carveout" and os_ == "windows" else "so the kernel evicts it while loading (slow loads)")
        checks.append(Check(
            name="page_cache", ok=False, blocking=False,
            message=(f"with mmap the {fmt_bytes(gpu.weights_bytes)} of GPU weights pass through the page cache, "
                     f"more than the {fmt_bytes(max(0, os_free))} the OS side has free, {where}: use --no-mmap")))
    max_alloc = backend.max_alloc_bytes
    if max_alloc and largest:
        ok = largest <= max_alloc
        checks.append(Check(
            name="max_alloc", ok=ok, blocking=True,
            message=(f"largest single tensor {fmt_bytes(largest)} is within the {backend.label} limit of "
                     f"{fmt_bytes(max_alloc)} per allocation" if ok else
                     f"a single tensor of {fmt_bytes(largest)} exceeds the {backend.label} limit of "
                     f"{fmt_bytes(max_alloc)} per allocation: use another backend or driver"),
            short=f"tensor over {backend.label} max allocation", margin_bytes=max_alloc - largest))

    reported = None
    if gpu_need and arch != "discrete":
        reported = profile.reported_bytes(backend, os_, p.carve, config.gpu_cap_bytes)
        if reported is not None and gpu_ok and reported < gpu_need + config.fit_target_bytes:
            checks.append(Check(
                name="backend_report", ok=False, blocking=False,
                message=(f"{backend.label} will report only {fmt_bytes(reported)} to llama.cpp; its --fit may "
                         f"move layers to the CPU unless -ngl is given explicitly")))

    blocked = any(c.blocking and not c.ok for c in checks)
    fast_spare = p.fast_capacity - gpu_need - margins
    if config.backend == "cpu" and not blocked:
        tier: Tier = "cpu_only"
        fast_spare = os_free  # the CPU's memory is the OS's: its room is the room
    elif blocked or not gpu_need:
        tier = "no_fit"
    elif not full:
        tier = "partial_offload"
    elif arch == "carveout" and gpu_need + margins > max(0, (p.carve or 0) - p.gpu_reserve):
        tier = "shared"
    else:
        tier = "dedicated"
    spill = p.shared_used if (arch == "carveout" and p.slowdown > 1.0) else 0

    return FitResult(
        device_id=profile.id, memory_architecture=arch, config=config, tier=tier,
        n_gpu_layers=breakdown.settings.n_gpu_layers, n_cpu_moe=breakdown.settings.n_cpu_moe, full_offload=full,
        ram_bytes=profile.ram_bytes, carveout_bytes=p.carve, os_visible_bytes=visible, reserve_bytes=reserve,
        gpu_cap_bytes=p.cap, gpu_cap_default_bytes=p.cap_default, gpu_cap_max_bytes=p.cap_max,
        gpu_capacity_bytes=capacity, gpu_reserve_bytes=p.gpu_reserve,
        gpu_need_bytes=gpu_need, overhead_bytes=overhead, safety_bytes=safety, margin_bytes=margins,
        host_need_bytes=host_need, host_safety_bytes=host_safety, keep_copy_bytes=keep_copy,
        dedicated_used_bytes=p.dedicated_used, shared_used_bytes=p.shared_used,
        fast_capacity_bytes=p.fast_capacity, fast_spare_bytes=fast_spare, fast_label=p.fast_label,
        spill_bytes=spill, spill_label=p.spill_label if (arch == "carveout" and p.slowdown > 1.0) else "",
        os_free_bytes=os_free, load_peak_bytes=load_peak, staging_bytes=staging, largest_tensor_bytes=largest,
        reported_bytes=reported, pools=pools, checks=checks, shared_slowdown=p.slowdown,
        shared_fraction=(p.shared_used / gpu_need) if gpu_need else 0.0,
        shared_cost=p.shared_cost if p.shared_used else "",
        suggest_no_mmap=suggest_no_mmap, gpu=gpu, host=host,
    )


def _shared_label(os_: str) -> str:
    return {"windows": "shared GPU memory", "linux": "GTT (shared)"}.get(os_, "shared memory")


def _unified_label(os_: str) -> str:
    return {"macos": "GPU working set (wired limit)"}.get(os_, "GPU-usable unified memory")


# --------------------------------------------------------------------------- partial offload search

EstimateAt = Callable[[int, int], Breakdown]  # (n_gpu_layers, n_cpu_moe) -> Breakdown; -1 = all layers


def gpu_slack(r: FitResult) -> int:
    """Signed room on the GPU side (memory and largest allocation): the partial-offload search key."""
    return min((c.margin_bytes for c in r.checks if c.blocking and c.name in ("gpu_memory", "max_alloc")), default=0)


def last_fitting(slack: Callable[[int], float], lo: int, hi: int, step: int = 1) -> int | None:
    """Largest x in lo, lo+step, ..., hi with slack(x) >= 0, for a slack that falls as x grows
    (memory grows with context and with layers on the GPU). None when even lo does not fit.

    Memory is close to linear in both, so the search interpolates (regula falsi) and checks the
    neighbour of each guess; a guess that does not halve the interval makes the next one a bisection.
    A handful of estimates instead of a dozen.
    """
    s_hi = slack(hi)
    if s_hi >= 0:
        return hi
    s_lo = slack(lo)
    if s_lo < 0:
        return None
    bisect = False
    while hi - lo > step:
        width = hi - lo
        if bisect:
            x = lo + (width // 2) // step * step
        else:
            guess = lo + width * (s_lo / (s_lo - s_hi))
            x = lo + int((guess - lo) // step) * step
        x = min(max(x, lo + step), hi - step)
        s = slack(x)
        if s >= 0:
            lo, s_lo = x, s
            if x + step < hi:  # the boundary is usually right there
                s2 = slack(x + step)
                if s2 < 0:
                    hi, s_hi = x + step, s2
                else:
                    lo, s_lo = x + step, s2
        else:
            hi, s_hi = x, s
        bisect = (hi - lo) > width // 2
    return lo


def solve(estimate_at: EstimateAt, profile: DeviceProfile, config: FitConfig, *, n_layer: int, is_moe: bool,
          largest_weight_bytes: int = 0) -> FitResult:
    """Full offload if it fits; else the most GPU-resident partial offload that fits.

    MoE models first keep attention and shared tensors on the GPU and move the experts of the
    first N layers to the CPU (the smallest --n-cpu-moe that fits); if even all experts on the CPU
    do not fit, or the model is dense, whole layers go (the largest -ngl that fits). GPU usage
    grows with -ngl and shrinks with --n-cpu-moe; both are searched with last_fitting, each probe
    re-running the estimator. The host side is checked on the result (fewer GPU layers only add
    host memory, so a host failure there means no split fits).
    """
    results: dict[tuple[int, int], FitResult] = {}

    def at(ngl: int, ncm: int) -> FitResult:
        if (ngl, ncm) not in results:
            results[(ngl, ncm)] = place(estimate_at(ngl, ncm), profile, config, largest_weight_bytes=largest_weight_bytes)
        return results[(ngl, ncm)]

    full = at(-1, 0)
    if full.fits or config.backend == "cpu" or n_layer <= 0:
        return full

    if is_moe:
        # x = layers whose experts stay on the GPU; n_cpu_moe = n_layer - x
        x = last_fitting(lambda k: gpu_slack(at(-1, n_layer - k)), 0, n_layer)
        if x is not None:
            best = at(-1, n_layer - x)
            return best if best.fits else full
    moe_cpu = n_layer if is_moe else 0
    ngl = last_fitting(lambda k: gpu_slack(at(k, moe_cpu)), 1, n_layer)
    if ngl is None:
        return full
    best = at(ngl, moe_cpu)
    return best if best.fits else full


def ceil_gib(n: int) -> int:
    """Round a byte count up to whole GiB (caps are set in whole GiB)."""
    return -(-int(n) // GIB) * GIB
