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

from typing import Callable, Literal

from pydantic import BaseModel, Field

from .device_schema import OS, BackendInfo, DeviceProfile, Use
from .estimate_types import Breakdown, DeviceUsage
from .units import GIB, fmt_bytes

Tier = Literal["dedicated", "shared", "partial_offload", "no_fit"]
TIERS: tuple[Tier, ...] = ("dedicated", "shared", "partial_offload", "no_fit")
TIER_LABEL: dict[Tier, str] = {
    "dedicated": "fits in dedicated GPU memory",
    "shared": "fits on the GPU using shared memory",
    "partial_offload": "fits only with part of the model on the CPU",
    "no_fit": "does not fit",
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
    fit_target_bytes: int = FIT_TARGET_BYTES


class Check(BaseModel):
    """One load-failure check. `blocking` checks make a configuration not fit."""

    name: Literal["gpu_memory", "os_reserve", "load_peak", "max_alloc", "page_cache", "backend_report"]
    ok: bool
    blocking: bool
    message: str
    short: str = ""  # a table-cell version of a failure: "GPU short 3.5 GiB"
    margin_bytes: int = 0  # signed: room left when it passes, minus what is missing when it fails

    @property
    def deficit_bytes(self) -> int:
        return max(0, -self.margin_bytes)


class PoolUse(BaseModel):
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
    gpu_capacity_bytes: int  # all memory the GPU may hold in this configuration

    gpu_need_bytes: int  # GPU buffers + driver overhead
    overhead_bytes: int
    safety_bytes: int  # fit target + estimate margins on the GPU side
    host_need_bytes: int  # CPU-resident buffers
    host_safety_bytes: int
    dedicated_used_bytes: int  # carve-out / working set / VRAM actually used
    shared_used_bytes: int  # spilled beyond the carve-out into the shared window (carveout only)
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


def place(breakdown: Breakdown, profile: DeviceProfile, config: FitConfig, *,
          largest_weight_bytes: int = 0, largest_kv_bytes: int | None = None) -> FitResult:
    """Place one breakdown on one configuration; return the tier, pools, headroom and checks.

    largest_weight_bytes: the largest weight tensor that goes to the GPU (from the headers); it is
    the staging buffer while loading and must fit the backend's largest single allocation.
    largest_kv_bytes: largest_kv_tensor_bytes(breakdown) when the caller has it already (the
    planner places one breakdown on many configurations).
    """
    arch = profile.memory_architecture
    os_ = config.os
    reserve = config.reserve_bytes if config.reserve_bytes is not None else profile.reserve(os_, config.use)
    backend = _backend(profile, config)
    gpu = breakdown.device("gpu")
    host = breakdown.device("host")
    if config.backend == "cpu":  # everything on the host; there is no GPU to plan
        host = DeviceUsage(device="host", **{f"{c}_bytes": _component(gpu, c) + _component(host, c)
                                             for c in _MARGIN_COMPONENTS})
        gpu = DeviceUsage(device="gpu")

    overhead, host_overhead = _overheads(breakdown, gpu, host, backend)
    gpu_need = gpu.total_bytes + overhead
    safety = (config.fit_target_bytes + margin_bytes(breakdown, gpu, overhead=overhead)) if gpu_need else 0
    host_need = host.total_bytes + host_overhead
    host_safety = margin_bytes(breakdown, host, overhead=host_overhead)
    full = _full_offload(breakdown)

    cap_info = profile.os_info(os_).gpu_cap
    checks: list[Check] = []
    pools: list[PoolUse] = []
    carve: int | None = None
    cap = cap_default = cap_max = None
    shared_used = 0
    shared_with_safety = 0
    slowdown = 1.0
    shared_cost = ""

    if arch == "carveout":
        carve = profile.current_carveout() if config.carveout_bytes is None else config.carveout_bytes
        visible = profile.os_visible_ram(carve)
        cap = profile.gpu_cap_bytes(os_, carve, config.gpu_cap_bytes) or 0
        cap_default = profile.gpu_cap_bytes(os_, carve) or 0
        cap_max = profile.max_gpu_cap_bytes(os_, carve) or 0
        capacity = carve + cap
        dedicated_used = min(gpu_need, carve)
        shared_used = max(0, gpu_need - carve)
        shared_with_safety = max(0, gpu_need + safety - carve)
        os_free = visible - reserve - shared_with_safety - host_need - host_safety
        pools += [PoolUse(name="dedicated", label="carve-out (dedicated)", capacity_bytes=carve, used_bytes=dedicated_used),
                  PoolUse(name="shared", label=_shared_label(os_), capacity_bytes=cap, used_bytes=shared_used)]
        if cap_info is not None:
            slowdown = cap_info.shared_slowdown
            shared_cost = _shared_cost_text(os_, cap_info.shared_slowdown)
    elif arch == "unified":
        visible = profile.os_visible_ram()
        cap = profile.gpu_cap_bytes(os_, None, config.gpu_cap_bytes)
        cap_default = profile.gpu_cap_bytes(os_)
        cap_max = profile.max_gpu_cap_bytes(os_)
        if cap is None:  # no working-set limit known: the GPU may use all RAM the OS sees
            cap = cap_default = cap_max = visible
        capacity = cap
        dedicated_used = gpu_need
        os_free = visible - reserve - (gpu_need + safety) - host_need - host_safety
        pools.append(PoolUse(name="gpu", label=_unified_label(os_), capacity_bytes=cap, used_bytes=gpu_need))
    else:  # discrete
        visible = profile.os_visible_ram()
        capacity = int(profile.vram_bytes or 0) - profile.vram_reserve(os_, config.use)
        dedicated_used = gpu_need
        os_free = visible - reserve - host_need - host_safety
        pools.append(PoolUse(name="vram", label="VRAM", capacity_bytes=capacity, used_bytes=gpu_need))
    pools.append(PoolUse(name="host", label="system RAM (CPU side)", capacity_bytes=max(0, visible - reserve),
                         used_bytes=host_need + (shared_used if arch == "carveout" else 0)
                         + (gpu_need if arch == "unified" else 0)))

    # -- checks ---------------------------------------------------------------------------------
    gpu_ok = gpu_need + safety <= capacity
    if gpu_need:
        checks.append(Check(
            name="gpu_memory", ok=gpu_ok, blocking=True,
            message=(f"GPU side needs {fmt_bytes(gpu_need)} + {fmt_bytes(safety)} safety of "
                     f"{fmt_bytes(capacity)} the GPU may use" if gpu_ok else
                     f"GPU side needs {fmt_bytes(gpu_need)} + {fmt_bytes(safety)} safety but the GPU may use "
                     f"only {fmt_bytes(capacity)} here"),
            short=f"GPU short {fmt_bytes(gpu_need + safety - capacity, digits=1)}",
            margin_bytes=capacity - gpu_need - safety))
    os_ok = os_free >= 0
    kept = reserve + os_free  # RAM the OS side would have left for itself
    checks.append(Check(
        name="os_reserve", ok=os_ok, blocking=True,
        message=(f"the OS keeps its {fmt_bytes(reserve)} reserve with {fmt_bytes(os_free)} to spare" if os_ok else
                 f"the OS would keep only {fmt_bytes(kept)} of RAM, under its {fmt_bytes(reserve)} reserve "
                 f"({config.os}, {config.use} use)" if kept >= 0 else
                 f"the OS side is {fmt_bytes(-kept)} short of RAM even before its {fmt_bytes(reserve)} reserve "
                 f"({config.os}, {config.use} use)"),
        short=f"OS {fmt_bytes(-os_free, digits=1)} under its reserve", margin_bytes=os_free))

    kv_max = largest_kv_tensor_bytes(breakdown) if largest_kv_bytes is None else largest_kv_bytes
    largest = max(largest_weight_bytes, kv_max) if gpu_need else 0
    # Staging while loading: without mmap llama.cpp reads each GPU tensor into a host buffer the
    # size of the tensor; with mmap the backend copies from the mapping, and a device-local heap the
    # CPU cannot address (a carve-out on Windows) is still filled through a host staging buffer.
    staging = largest_weight_bytes if gpu_need else 0
    load_free = os_free - staging
    load_peak = (visible - os_free) + staging
    if staging:
        checks.append(Check(
            name="load_peak", ok=load_free >= 0 or not os_ok, blocking=True,
            message=(f"loading stages up to {fmt_bytes(staging)} in host RAM; "
                     + ("the OS side holds it" if load_free >= 0 else
                        f"that pushes the OS side {fmt_bytes(-load_free)} under its reserve")),
            short=f"load peak {fmt_bytes(-load_free, digits=1)} under OS reserve",
            margin_bytes=load_free if os_ok else 0))
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
        reported = profile.reported_bytes(backend, os_, carve, config.gpu_cap_bytes)
        if reported is not None and gpu_ok and reported < gpu_need + config.fit_target_bytes:
            checks.append(Check(
                name="backend_report", ok=False, blocking=False,
                message=(f"{backend.label} will report only {fmt_bytes(reported)} to llama.cpp; its --fit may "
                         f"move layers to the CPU unless -ngl is given explicitly")))

    blocked = any(c.blocking and not c.ok for c in checks)
    if blocked or not gpu_need:
        tier: Tier = "no_fit"
    elif not full:
        tier = "partial_offload"
    elif arch == "carveout" and shared_with_safety > 0:
        tier = "shared"
    else:
        tier = "dedicated"

    return FitResult(
        device_id=profile.id, memory_architecture=arch, config=config, tier=tier,
        n_gpu_layers=breakdown.settings.n_gpu_layers, n_cpu_moe=breakdown.settings.n_cpu_moe, full_offload=full,
        ram_bytes=profile.ram_bytes, carveout_bytes=carve, os_visible_bytes=visible, reserve_bytes=reserve,
        gpu_cap_bytes=cap, gpu_cap_default_bytes=cap_default, gpu_cap_max_bytes=cap_max, gpu_capacity_bytes=capacity,
        gpu_need_bytes=gpu_need, overhead_bytes=overhead, safety_bytes=safety, host_need_bytes=host_need,
        host_safety_bytes=host_safety, dedicated_used_bytes=dedicated_used, shared_used_bytes=shared_used,
        os_free_bytes=os_free, load_peak_bytes=load_peak, staging_bytes=staging, largest_tensor_bytes=largest,
        reported_bytes=reported, pools=pools, checks=checks, shared_slowdown=slowdown,
        shared_fraction=(shared_used / gpu_need) if gpu_need else 0.0, shared_cost=shared_cost if shared_used else "",
        suggest_no_mmap=suggest_no_mmap, gpu=gpu, host=host,
    )


def _shared_label(os_: str) -> str:
    return {"windows": "shared GPU memory", "linux": "GTT (shared)"}.get(os_, "shared memory")


def _unified_label(os_: str) -> str:
    return {"macos": "GPU working set (wired limit)"}.get(os_, "GPU-usable unified memory")


# What weights in the shared window cost, per OS (the profile's shared_slowdown adds a number).
_SHARED_COST: dict[str, str] = {
    "linux": ("no speed cost on Linux: GTT and the carve-out are the same DRAM (AMD ROCm docs; Strix Halo "
              "runs at a 512 MB carve-out reach 83-91 % of peak bandwidth)"),
    "windows": ("same DRAM, but Windows manages shared GPU memory itself (WDDM may page it) and AMD drivers "
                "before 26.2.2 ran Vulkan up to 2.5x slower from it (ddadaal.me, lilting.ch)"),
}


def _shared_cost_text(os_: str, slowdown: float) -> str:
    text = _SHARED_COST.get(os_, "shared memory is system RAM the GPU maps")
    if slowdown > 1.0:
        text = f"weights there decode about {slowdown:.1f}x slower on this driver; " + text
    return text


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
