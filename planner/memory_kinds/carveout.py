"""An APU with a BIOS carve-out (Strix Halo, Strix Point, Phoenix...): the carve-out is dedicated
GPU memory lost to the OS; beyond it the GPU maps a capped window of the RAM the OS sees (Windows
shared GPU memory, Linux GTT). The desktop's GPU memory fills the carve-out first."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from ..fit_types import FitConfig, FitResult, PoolUse
from ..memory_classes import shared_window
from .base import MemoryKind, Pools, gpu_reserve

if TYPE_CHECKING:
    from ..device_schema import OS, DeviceProfile


def _slowdown_and_cost(profile: DeviceProfile, config: FitConfig) -> tuple[float, str, str]:
    """(decode slowdown, its cost in words, the window's label): the profile's measured figure for
    this device when it has one, else the table's per OS and backend."""
    cap_info = profile.os_info(config.os).gpu_cap
    measured = cap_info.shared_slowdown if cap_info is not None else None
    return _window_cost(config.os, config.backend, measured or None)


@lru_cache(maxsize=64)  # asked on every placement; a function of these three values only
def _window_cost(os: str, backend: str, measured: float | None) -> tuple[float, str, str]:
    window = shared_window(os, backend)
    if measured:
        return measured, f"bytes in {window.label} decode about {measured:.1f}x slower on this device (profile)", window.label
    return window.slowdown, window.cost_text(), window.label


@dataclass(frozen=True, slots=True)
class _Fixed:
    carve: int
    cap: int
    desk: int
    in_carve: int
    in_window: int
    visible: int
    fast_capacity: int
    cap_default: int
    cap_max: int
    slowdown: float
    cost: str
    window: str
    fast_label: str
    pool_label: str


_FIXED: dict[tuple, tuple] = {}


class CarveoutMemory(MemoryKind):
    name = "carveout"
    setting = "carveout"
    has_shared_window = True
    cap_raise_words = " once for this machine (its safe maximum)"  # one GTT limit for every model

    def pools(self, profile: DeviceProfile, config: FitConfig, need: int, safety: int) -> Pools:
        f = self._fixed(profile, config)
        in_carve = f.in_carve
        dedicated_used = min(need, in_carve)
        shared_used = need - dedicated_used
        return Pools(
            visible=f.visible, capacity=in_carve + f.in_window, fast_capacity=f.fast_capacity,
            dedicated_capacity=in_carve, gpu_reserve=f.desk, carve=f.carve, cap=f.cap, cap_default=f.cap_default,
            cap_max=f.cap_max, dedicated_used=dedicated_used,
            shared_used=shared_used, os_gpu_bytes=max(0, need + safety - in_carve), ram_gpu_used=shared_used,
            slowdown=f.slowdown, spill_label=f.window, shared_cost=f.cost, fast_label=f.fast_label,
            pools=[PoolUse(name="dedicated", label="carve-out (dedicated)", capacity_bytes=in_carve,
                           used_bytes=dedicated_used),
                   PoolUse(name="shared", label=f.pool_label, capacity_bytes=f.in_window, used_bytes=shared_used)],
        )

    def _fixed(self, profile: DeviceProfile, config: FitConfig) -> _Fixed:
        """What the pools take from the configuration alone, worked out once per (profile,
        configuration): a plan places on the same few configurations about a thousand times."""
        key = (id(profile), id(config), config.os, config.use, config.backend, config.carveout_bytes,
               config.gpu_cap_bytes, config.gpu_reserve_bytes)
        hit = _FIXED.get(key)
        if hit is not None and hit[0] is profile and hit[1] is config:
            return hit[2]
        os_ = config.os
        carve = profile.current_carveout() if config.carveout_bytes is None else config.carveout_bytes
        cap = profile.gpu_cap_bytes(os_, carve, config.gpu_cap_bytes) or 0
        desk = gpu_reserve(profile, config)
        in_carve = max(0, carve - desk)
        in_window = max(0, cap - max(0, desk - carve))
        slowdown, cost, window = _slowdown_and_cost(profile, config)
        slow = slowdown > 1.0
        fixed = _Fixed(
            carve=carve, cap=cap, desk=desk, in_carve=in_carve, in_window=in_window,
            visible=profile.os_visible_ram(carve), fast_capacity=in_carve if slow else in_carve + in_window,
            cap_default=profile.gpu_cap_bytes(os_, carve) or 0, cap_max=profile.max_gpu_cap_bytes(os_, carve) or 0,
            slowdown=slowdown, cost=cost, window=window, fast_label="carve-out" if slow else f"carve-out + {window}",
            pool_label=self.on(os_).pool_label)
        if len(_FIXED) >= 256:
            _FIXED.clear()
        _FIXED[key] = (profile, config, fixed)  # the objects kept, so their ids stay theirs
        return fixed

    def carveouts(self, profile: DeviceProfile, fixed: int | None) -> list[int | None]:
        """Every firmware option, or the one the user fixed (--carveout)."""
        return [fixed] if fixed is not None else list(profile.carveout_options())

    def raised_cap(self, profile: DeviceProfile, os: OS, carve: int | None, r: FitResult) -> int | None:
        """The machine's safe maximum: one GTT setting for every model (it needs a reboot)."""
        cap = self.machine_cap(profile, os, carve)
        return cap if cap and cap > (r.gpu_cap_default_bytes or 0) else None
