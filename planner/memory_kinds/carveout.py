"""An APU with a BIOS carve-out (Strix Halo, Strix Point, Phoenix...): the carve-out is dedicated
GPU memory lost to the OS; beyond it the GPU maps a capped window of the RAM the OS sees (Windows
shared GPU memory, Linux GTT). The desktop's GPU memory fills the carve-out first."""

from __future__ import annotations

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


class CarveoutMemory(MemoryKind):
    name = "carveout"
    setting = "carveout"
    has_shared_window = True
    cap_raise_words = " once for this machine (its safe maximum)"  # one GTT limit for every model

    def pools(self, profile: DeviceProfile, config: FitConfig, need: int, safety: int) -> Pools:
        os_ = config.os
        carve = profile.current_carveout() if config.carveout_bytes is None else config.carveout_bytes
        cap = profile.gpu_cap_bytes(os_, carve, config.gpu_cap_bytes) or 0
        desk = gpu_reserve(profile, config)
        in_carve = max(0, carve - desk)
        in_window = max(0, cap - max(0, desk - carve))
        dedicated_used = min(need, in_carve)
        shared_used = need - dedicated_used
        slowdown, cost, window = _slowdown_and_cost(profile, config)
        slow = slowdown > 1.0
        return Pools(
            visible=profile.os_visible_ram(carve), capacity=in_carve + in_window,
            fast_capacity=in_carve if slow else in_carve + in_window, dedicated_capacity=in_carve,
            gpu_reserve=desk, carve=carve, cap=cap, cap_default=profile.gpu_cap_bytes(os_, carve) or 0,
            cap_max=profile.max_gpu_cap_bytes(os_, carve) or 0, dedicated_used=dedicated_used,
            shared_used=shared_used, os_gpu_bytes=max(0, need + safety - in_carve), ram_gpu_used=shared_used,
            slowdown=slowdown, spill_label=window, shared_cost=cost,
            fast_label="carve-out" if slow else f"carve-out + {window}",
            pools=[PoolUse(name="dedicated", label="carve-out (dedicated)", capacity_bytes=in_carve,
                           used_bytes=dedicated_used),
                   PoolUse(name="shared", label=self.on(os_).pool_label, capacity_bytes=in_window,
                           used_bytes=shared_used)],
        )

    def carveouts(self, profile: DeviceProfile, fixed: int | None) -> list[int | None]:
        """Every firmware option, or the one the user fixed (--carveout)."""
        return [fixed] if fixed is not None else list(profile.carveout_options())

    def raised_cap(self, profile: DeviceProfile, os: OS, carve: int | None, r: FitResult) -> int | None:
        """The machine's safe maximum: one GTT setting for every model (it needs a reboot)."""
        cap = self.machine_cap(profile, os, carve)
        return cap if cap and cap > (r.gpu_cap_default_bytes or 0) else None
