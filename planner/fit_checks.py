"""The load-failure checks of one placement, one function each (CHECKS, in the order a placement
lists them), and the load paths they use (LOAD_PATHS, chosen per memory architecture and OS in
planner/data/memory.toml).

Every check reads one Placing: what the fit solver worked out for a breakdown on a configuration
before judging it (the needs of each side, the pools, what the OS side has left).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .device_schema import USES, BackendInfo, DeviceProfile, Use
from .fit_types import Check, FitConfig
from .memory_classes import windows_carveout_load
from .units import fmt_bytes

if TYPE_CHECKING:
    from .estimate_types import DeviceUsage
    from .memory_kinds import MemoryKind, Pools


@dataclass(slots=True)
class Placing:
    """One breakdown on one configuration, before the checks (a plain dataclass: a plan places
    about 1300 times)."""

    profile: DeviceProfile
    config: FitConfig
    kind: MemoryKind
    backend: BackendInfo
    gpu: DeviceUsage
    gpu_need: int  # GPU buffers + driver overhead
    safety: int  # fit target + estimate margins on the GPU side
    reserve: int  # RAM the OS keeps
    keep_copy: int  # LM Studio Keep Model in Memory: the weights in RAM as well
    pools: Pools
    os_free: int  # RAM beyond the reserve once the model is in
    live_bound: bool  # os_free is what this machine has available now (--device auto)
    largest: int  # the largest single GPU tensor (weights or one KV buffer)
    largest_weight: int  # the largest weight tensor bound for the GPU (the staging buffer)
    staged_weights: int | None  # GPU weights one load stages; None = all of the breakdown's
    reported: int | None = None  # what the backend tells llama.cpp the GPU has (see reported_bytes)

    @property
    def gpu_ok(self) -> bool:
        return self.gpu_need + self.safety <= self.pools.capacity

    @property
    def os_ok(self) -> bool:
        return self.os_free >= 0


# --------------------------------------------------------------------------- load paths


_USES: dict[str, Use] = {u: u for u in USES}


@dataclass(slots=True)
class Load:
    """The load path's verdict: its check (None when nothing is staged or the OS side already
    fails), the bytes staged in host RAM, and host RAM at the worst moment (reserve included)."""

    check: Check | None
    staging: int
    peak: int


def staged_through_os(x: Placing, need_weights: int) -> Load:
    """Windows with a carve-out: the CPU cannot address the carve-out, so the weights bound for it
    are staged through RAM Windows sees (memory.toml `load.windows_carveout`: a share of them
    resident at the peak, bracketed by loads that worked and failed) while Windows keeps at least
    its headless working set."""
    p = x.pools
    rule = windows_carveout_load()
    staging = int(rule.staging_share * min(need_weights, max(0, (p.carve or 0) - p.gpu_reserve)))
    floor = x.profile.reserve(x.config.os, _USES[rule.floor_use])
    steady_used = p.visible - x.reserve - x.os_free  # RAM the model side holds
    load_free = p.visible - floor - steady_used - staging
    visible = p.visible
    check = Check(
        name="load_peak", ok=load_free >= 0, blocking=True,
        message=lambda: (
            f"loading stages about {fmt_bytes(staging)} of the weights bound for the carve-out through the "
            f"{fmt_bytes(visible)} Windows sees (the CPU cannot address the carve-out), "
            + (f"leaving Windows {fmt_bytes(load_free)} above its {fmt_bytes(floor)} minimum" if load_free >= 0 else
               f"{fmt_bytes(-load_free)} more than Windows can give while keeping its {fmt_bytes(floor)} minimum: "
               "the load fails or Windows stalls (a smaller carve-out gives Windows that RAM)")),
        short=lambda: f"load needs {fmt_bytes(-load_free, digits=1)} more OS RAM", margin_bytes=load_free)
    return Load(check, staging, steady_used + staging + floor)


def largest_tensor(x: Placing, need_weights: int) -> Load:
    """Elsewhere: the largest weight tensor passes through a host buffer on its way to the GPU."""
    held = x.pools.visible - x.os_free
    staging = x.largest_weight
    if not staging:
        return Load(None, 0, held)
    if not x.os_ok:  # the OS side is short already (its own check says by how much): one shortage, one number
        return Load(None, staging, held + staging)
    load_free = x.os_free - staging
    check = Check(
        name="load_peak", ok=load_free >= 0, blocking=True,
        message=lambda: (f"loading stages up to {fmt_bytes(staging)} in host RAM; "
                         + ("the OS side holds it" if load_free >= 0 else
                            f"that pushes the OS side {fmt_bytes(-load_free)} under its reserve")),
        short=lambda: f"load peak {fmt_bytes(-load_free, digits=1)} under OS reserve", margin_bytes=load_free)
    return Load(check, staging, held + staging)


LOAD_PATHS: dict[str, Callable[[Placing, int], Load]] = {
    "largest_tensor": largest_tensor,
    "staged_through_os": staged_through_os,
}


def load(x: Placing) -> Load:
    """The load path of this memory architecture on this OS, for the weights one load stages."""
    gpu = x.gpu
    need_weights = gpu.weights_bytes + gpu.mmproj_bytes if x.staged_weights is None else x.staged_weights
    if not need_weights and not gpu.total_bytes:
        return Load(None, 0, x.pools.visible - x.os_free)
    return LOAD_PATHS[x.kind.on(x.config.os).load_path](x, need_weights)


# --------------------------------------------------------------------------- checks


def gpu_memory(x: Placing) -> Check | None:
    if not x.gpu_need:
        return None
    need, safety, capacity, ok, held = x.gpu_need, x.safety, x.pools.capacity, x.gpu_ok, x.pools.gpu_reserve

    def message() -> str:
        desk = f" after the {fmt_bytes(held)} the desktop holds" if held else ""
        return (f"GPU side needs {fmt_bytes(need)} + {fmt_bytes(safety)} safety of "
                f"{fmt_bytes(capacity)} the GPU may use{desk}" if ok else
                f"GPU side needs {fmt_bytes(need)} + {fmt_bytes(safety)} safety but the GPU may use "
                f"only {fmt_bytes(capacity)} here{desk}")

    return Check(
        name="gpu_memory", ok=ok, blocking=True, message=message,
        short=lambda: f"GPU short {fmt_bytes(need + safety - capacity, digits=1)}",
        margin_bytes=capacity - need - safety)


def _reserve_note(x: Placing) -> str:
    """What else the OS side's number stands on: a second copy of the weights, a live reading."""
    note = f" (Keep Model in Memory holds a {fmt_bytes(x.keep_copy)} copy of the weights)" if x.keep_copy else ""
    live = x.profile.live
    if x.live_bound and live is not None and live.mem_available_bytes is not None:
        floor = x.profile.reserve(x.config.os, "headless")
        note += (f"; this machine has {fmt_bytes(live.mem_available_bytes)} available now and keeps "
                 f"{fmt_bytes(floor)} of it free (read by --device auto)")
    return note


def os_reserve(x: Placing) -> Check:
    reserve, os_free, ok = x.reserve, x.os_free, x.os_ok
    kept = reserve + os_free  # RAM the OS side would have left for itself

    def message() -> str:
        note = _reserve_note(x)
        who = f"({x.config.os}, {x.config.use} use){note}"
        return (f"the OS keeps its {fmt_bytes(reserve)} reserve with {fmt_bytes(os_free)} to spare{note}" if ok else
                f"the OS would keep only {fmt_bytes(kept)} of RAM, under its {fmt_bytes(reserve)} reserve {who}"
                if kept >= 0 else
                f"the OS side is {fmt_bytes(-kept)} short of RAM even before its {fmt_bytes(reserve)} reserve {who}")

    return Check(
        name="os_reserve", ok=ok, blocking=True, message=message,
        short=lambda: f"OS {fmt_bytes(-os_free, digits=1)} under its reserve", margin_bytes=os_free)


def needs_no_mmap(x: Placing) -> bool:
    """With mmap the whole file passes through the page cache on its way to the GPU buffers; Metal
    wraps the mapped file as a GPU buffer instead (no second copy)."""
    weights = x.gpu.weights_bytes
    return bool(x.config.mmap and x.backend.name != "metal" and weights and x.os_free - weights < 0)


def page_cache(x: Placing) -> Check | None:
    if not needs_no_mmap(x):
        return None
    where = x.kind.on(x.config.os).page_cache
    return Check(
        name="page_cache", ok=False, blocking=False,
        message=(f"with mmap the {fmt_bytes(x.gpu.weights_bytes)} of GPU weights pass through the page cache, "
                 f"more than the {fmt_bytes(max(0, x.os_free))} the OS side has free, {where}: use --no-mmap"))


def max_alloc(x: Placing) -> Check | None:
    limit, largest, label = x.backend.max_alloc_bytes, x.largest, x.backend.label
    if not (limit and largest):
        return None
    ok = largest <= limit
    return Check(
        name="max_alloc", ok=ok, blocking=True,
        message=lambda: (f"largest single tensor {fmt_bytes(largest)} is within the {label} limit of "
                         f"{fmt_bytes(limit)} per allocation" if ok else
                         f"a single tensor of {fmt_bytes(largest)} exceeds the {label} limit of "
                         f"{fmt_bytes(limit)} per allocation: use another backend or driver"),
        short=f"tensor over {label} max allocation", margin_bytes=limit - largest)


def reported_bytes(x: Placing) -> int | None:
    """What the backend will tell llama.cpp the GPU has (None: no GPU side, a card, or unknown)."""
    if not (x.gpu_need and x.kind.reports_to_llama):
        return None
    return x.profile.reported_bytes(x.backend, x.config.os, x.pools.carve, x.config.gpu_cap_bytes)


def backend_report(x: Placing) -> Check | None:
    reported = x.reported
    if reported is None or not x.gpu_ok or reported >= x.gpu_need + x.config.fit_target_bytes:
        return None
    return Check(
        name="backend_report", ok=False, blocking=False,
        message=(f"{x.backend.label} will report only {fmt_bytes(reported)} to llama.cpp; its --fit may "
                 f"move layers to the CPU unless -ngl is given explicitly"))


def checks(x: Placing, load_check: Check | None) -> list[Check]:
    """Every check that applies, in the order a placement lists them."""
    found = (gpu_memory(x), os_reserve(x), load_check, page_cache(x), max_alloc(x), backend_report(x))
    return [c for c in found if c is not None]
