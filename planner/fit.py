"""The fit solver: place what llama.cpp allocates (a Breakdown) into a device's memory pools.

Pools, per memory architecture (planner.memory_kinds, one module each; all sizes from the
DeviceProfile arithmetic, so every consumer splits memory the same way):

- carveout (APU): `dedicated` = the BIOS UMA frame buffer; `shared` = the capped window of system
  RAM the GPU may map (Windows shared GPU memory, Linux GTT); `host` = CPU-resident buffers. Shared
  and host allocations and the OS reserve all come out of the RAM the OS sees (total - carve-out).
- unified (Apple, GB10, Jetson): `gpu` = the working-set / wired limit; GPU and host allocations
  and the OS reserve share the one RAM.
- discrete: `vram` = the card (minus what the desktop holds); `host` = system RAM.

The GPU side is planned with a safety headroom: llama.cpp's own `--fit-target` (1024 MiB per
device) plus, for every component the estimator marks as an estimate, its relative margin times
its bytes. The OS side must keep its reserve after shared + host allocations (the safety spill
counts there too). The checks are planner.fit_checks. See docs/plan.md for the rules and a worked
example.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .device_schema import BackendInfo, DeviceProfile
from .estimate_types import Breakdown, DeviceUsage
from .fit_checks import Load, Placing, checks, load, needs_no_mmap, reported_bytes
from .fit_types import (FIT_TARGET_BYTES, TIER_LABEL, TIERS, Check, FitConfig, FitResult,  # noqa: F401 - the contract
                        PoolUse, Tier)
from .memory_kinds import MemoryKind, Pools, kind_of
from .units import GIB

__all__ = ["place", "place_slack", "last_fitting", "gpu_slack", "margin_bytes", "largest_kv_tensor_bytes", "config_reserve",
           "ceil_gib", "FIT_TARGET_BYTES", "TIER_LABEL", "TIERS", "Check", "FitConfig", "FitResult",
           "PoolUse", "Tier"]

# Breakdown.estimated keys -> the per-device component they scale ("overhead" is the driver residual).
_MARGIN_COMPONENTS = ("weights", "kv", "recurrent", "compute", "output", "mmproj")


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
    return max((layer.kv_bytes if layer.kind == "mla" else layer.kv_bytes // 2
                for layer in breakdown.layers if layer.on_gpu and layer.kv_bytes), default=0)


def _overheads(b: Breakdown, gpu: DeviceUsage, host: DeviceUsage, backend: BackendInfo) -> tuple[int, int]:
    """Runtime overhead outside llama.cpp's buffers, per side. The estimator gives it per device
    (older breakdowns: one total, taken as the GPU's); the profile's per-backend figure is a floor
    for the GPU side (a measured driver context beats a generic estimate)."""
    g, h = gpu.overhead_bytes, host.overhead_bytes
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


def config_reserve(profile: DeviceProfile, config: FitConfig) -> int:
    return config.reserve_bytes if config.reserve_bytes is not None else profile.reserve(config.os, config.use)


# --------------------------------------------------------------------------- placement


@dataclass(slots=True)
class _Sides:
    """What each side of a breakdown needs on this backend, with its safety."""

    gpu: DeviceUsage
    host: DeviceUsage
    overhead: int
    host_overhead: int
    gpu_need: int
    margins: int  # the estimate margins on the GPU side
    safety: int  # fit target + margins (0 without a GPU side)
    host_need: int
    host_safety: int
    keep_copy: int


def _on_cpu(gpu: DeviceUsage, host: DeviceUsage) -> tuple[DeviceUsage, DeviceUsage]:
    """The CPU backend: everything on the host; there is no GPU to plan."""
    merged = DeviceUsage(device="host", **{f"{c}_bytes": _component(gpu, c) + _component(host, c)
                                           for c in _MARGIN_COMPONENTS})
    return DeviceUsage(device="gpu"), merged


def _sides(breakdown: Breakdown, config: FitConfig, backend: BackendInfo) -> _Sides:
    gpu, host = breakdown.device("gpu"), breakdown.device("host")
    if config.backend == "cpu":
        gpu, host = _on_cpu(gpu, host)
    overhead, host_overhead = _overheads(breakdown, gpu, host, backend)
    gpu_need = gpu.total_bytes + overhead
    margins = margin_bytes(breakdown, gpu, overhead=overhead) if gpu_need else 0
    host_need = host.total_bytes + host_overhead
    return _Sides(gpu=gpu, host=host, overhead=overhead, host_overhead=host_overhead, gpu_need=gpu_need,
                  margins=margins, safety=(config.fit_target_bytes + margins) if gpu_need else 0,
                  host_need=host_need, host_safety=margin_bytes(breakdown, host, overhead=host_overhead),
                  keep_copy=breakdown.weights_bytes if config.keep_in_memory else 0)


def _live_os_free(kind: MemoryKind, profile: DeviceProfile, config: FitConfig, p: Pools, host_side: int) -> int | None:
    """On a probed machine (--device auto) with one pool of RAM: what is available now (MemAvailable,
    which already leaves out the OS, the desktop and other programs) minus the floor the OS must
    keep (its headless reserve: DGX Spark's watchdog stops at 8 GiB available) minus what the model
    takes. None without a live reading or on memory the model does not share with the OS."""
    live = profile.live
    if live is None or live.mem_available_bytes is None or config.carveout_bytes is not None:
        return None
    if not kind.shares_ram_with_os:
        return None
    floor = profile.reserve(config.os, "headless")
    return live.mem_available_bytes - floor - p.os_gpu_bytes - host_side


def _os_free(kind: MemoryKind, profile: DeviceProfile, config: FitConfig, p: Pools, s: _Sides,
             reserve: int) -> tuple[int, bool]:
    """RAM the OS side has beyond its reserve with the model in, and whether a live reading of this
    machine (tighter than the arithmetic) is what bounds it."""
    host_side = s.host_need + s.host_safety + s.keep_copy
    os_free = p.visible - reserve - p.os_gpu_bytes - host_side
    live_free = _live_os_free(kind, profile, config, p, host_side)
    if live_free is not None and live_free < os_free:
        return live_free, True
    return os_free, False


def _tier(config: FitConfig, s: _Sides, p: Pools, blocked: bool, full: bool) -> Tier:
    """The tier of a placement (the order of the rules is the order of the tiers)."""
    if config.backend == "cpu" and not blocked:
        return "cpu_only"
    if blocked or not s.gpu_need:
        return "no_fit"
    if not full:
        return "partial_offload"
    return "shared" if s.gpu_need + s.margins > p.dedicated_capacity else "dedicated"


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
    x, s, loaded, found = _placing(breakdown, profile, config, largest_weight_bytes, largest_kv_bytes,
                                   staged_weights_bytes)
    return _result(breakdown, x, s, loaded, found)


def place_slack(breakdown: Breakdown, profile: DeviceProfile, config: FitConfig, *,
                largest_weight_bytes: int = 0, largest_kv_bytes: int | None = None) -> tuple[int, int]:
    """(r.slack_bytes, the room that stays in fast memory) of r = place(...), without building r:
    what a context search asks of each configuration at each context it tries."""
    x, s, _, found = _placing(breakdown, profile, config, largest_weight_bytes, largest_kv_bytes, None)
    slack = min((c.margin_bytes for c in found if c.blocking), default=0)
    p = x.pools
    if not p.slowdown > 1.0:
        return slack, slack
    blocked = any(c.blocking and not c.ok for c in found)
    tier = _tier(config, s, p, blocked, _full_offload(breakdown))
    fast_spare = x.os_free if tier == "cpu_only" else p.fast_capacity - s.gpu_need - s.margins
    return slack, min(slack, fast_spare)


def _placing(breakdown: Breakdown, profile: DeviceProfile, config: FitConfig, largest_weight_bytes: int,
             largest_kv_bytes: int | None, staged_weights_bytes: int | None) -> tuple[Placing, _Sides, Load, list[Check]]:
    """The placement before its result: what each side needs, the pools, the load path and the checks."""
    kind = kind_of(profile)
    backend = _backend(profile, config)
    s = _sides(breakdown, config, backend)
    p = kind.pools(profile, config, s.gpu_need, s.safety)
    reserve = config_reserve(profile, config)
    os_free, live_bound = _os_free(kind, profile, config, p, s, reserve)
    kv_max = largest_kv_tensor_bytes(breakdown) if largest_kv_bytes is None else largest_kv_bytes
    x = Placing(profile=profile, config=config, kind=kind, backend=backend, gpu=s.gpu, gpu_need=s.gpu_need,
                safety=s.safety, reserve=reserve, keep_copy=s.keep_copy, pools=p, os_free=os_free,
                live_bound=live_bound, largest=max(largest_weight_bytes, kv_max) if s.gpu_need else 0,
                largest_weight=largest_weight_bytes, staged_weights=staged_weights_bytes)
    x.reported = reported_bytes(x)
    loaded = load(x)
    found = checks(x, loaded.check)
    return x, s, loaded, found


def _result(breakdown: Breakdown, x: Placing, s: _Sides, loaded: Load, found: list[Check]) -> FitResult:
    profile, config, p = x.profile, x.config, x.pools
    full = _full_offload(breakdown)
    blocked = any(c.blocking and not c.ok for c in found)
    tier = _tier(config, s, p, blocked, full)
    slow = p.slowdown > 1.0
    host_pool = PoolUse(name="host", label="system RAM (CPU side)", capacity_bytes=max(0, p.visible - x.reserve),
                        used_bytes=s.host_need + s.keep_copy + p.ram_gpu_used)
    return FitResult(
        device_id=profile.id, memory_architecture=profile.memory_architecture, config=config, tier=tier,
        n_gpu_layers=breakdown.settings.n_gpu_layers, n_cpu_moe=breakdown.settings.n_cpu_moe, full_offload=full,
        ram_bytes=profile.ram_bytes, carveout_bytes=p.carve, os_visible_bytes=p.visible, reserve_bytes=x.reserve,
        gpu_cap_bytes=p.cap, gpu_cap_default_bytes=p.cap_default, gpu_cap_max_bytes=p.cap_max,
        gpu_capacity_bytes=p.capacity, gpu_reserve_bytes=p.gpu_reserve,
        gpu_need_bytes=s.gpu_need, overhead_bytes=s.overhead, safety_bytes=s.safety, margin_bytes=s.margins,
        host_need_bytes=s.host_need, host_safety_bytes=s.host_safety, keep_copy_bytes=s.keep_copy,
        dedicated_used_bytes=p.dedicated_used, shared_used_bytes=p.shared_used,
        fast_capacity_bytes=p.fast_capacity,
        # the CPU's memory is the OS's: its room is the room
        fast_spare_bytes=x.os_free if tier == "cpu_only" else p.fast_capacity - s.gpu_need - s.margins,
        fast_label=p.fast_label, spill_bytes=p.shared_used if slow else 0, spill_label=p.spill_label if slow else "",
        os_free_bytes=x.os_free, load_peak_bytes=loaded.peak, staging_bytes=loaded.staging,
        largest_tensor_bytes=x.largest, reported_bytes=x.reported, pools=[*p.pools, host_pool],
        checks=found, shared_slowdown=p.slowdown,
        shared_fraction=(p.shared_used / s.gpu_need) if s.gpu_need else 0.0,
        shared_cost=p.shared_cost if p.shared_used else "", suggest_no_mmap=needs_no_mmap(x), gpu=s.gpu, host=s.host,
    )


# --------------------------------------------------------------------------- search helpers

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


def ceil_gib(n: int) -> int:
    """Round a byte count up to whole GiB (caps are set in whole GiB)."""
    return -(-int(n) // GIB) * GIB
