"""One RAM for the CPU and the GPU (Apple Silicon, GB10, Jetson, Lunar Lake, a CPU-only machine):
the GPU may wire up to its working-set limit, and what it holds is RAM the OS does not have."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fit_types import FitConfig, FitResult, PoolUse
from ..memory_classes import macos_wired_default
from .base import MemoryKind, Pools, gpu_reserve, whole_gib

if TYPE_CHECKING:
    from ..device_schema import OS, DeviceProfile

UNIFIED_RAISE_ROOM = 2 * 1024**3  # a raised wired limit keeps this much room beyond the model's need


def _ceil_gib(n: int) -> int:
    return -(-int(n) // 1024**3) * 1024**3


class UnifiedMemory(MemoryKind):
    name = "unified"
    setting = "gpu_cap"
    one_pool = True
    tier_words = {"dedicated": "fits in the GPU's share of unified memory"}

    def pools(self, profile: DeviceProfile, config: FitConfig, need: int, safety: int) -> Pools:
        os_ = config.os
        visible = profile.os_visible_ram()
        cap = profile.gpu_cap_bytes(os_, None, config.gpu_cap_bytes)
        cap_default = profile.gpu_cap_bytes(os_)
        cap_max = profile.max_gpu_cap_bytes(os_)
        if cap is None:  # no working-set limit known: the GPU may use all RAM the OS sees
            cap = cap_default = cap_max = visible
        desk = gpu_reserve(profile, config)
        capacity = max(0, cap - desk)
        label = self.on(os_).pool_label
        return Pools(
            visible=visible, capacity=capacity, fast_capacity=capacity, dedicated_capacity=capacity,
            gpu_reserve=desk, cap=cap, cap_default=cap_default, cap_max=cap_max, dedicated_used=need,
            fast_label=label, os_gpu_bytes=need + safety, ram_gpu_used=need,
            pools=[PoolUse(name="gpu", label=label, capacity_bytes=capacity, used_bytes=need)],
        )

    def raised_cap(self, profile: DeviceProfile, os: OS, carve: int | None, r: FitResult) -> int | None:
        """The smallest whole-GiB raise that holds the model (no reboot here), within the safe maximum."""
        want = self.wired_raise(profile, os, r.needed_cap_bytes)
        return want if want is not None and (r.gpu_cap_default_bytes or 0) < want <= (r.gpu_cap_max_bytes or 0) else None

    def wired_raise(self, profile: DeviceProfile, os: OS, needed: int) -> int | None:
        """The limit to suggest: what the model needs plus UNIFIED_RAISE_ROOM, in whole GiB, and
        never below the newest macOS default (a sysctl for less than macOS 26's own ~84 % would
        lower the limit on a machine that runs it). None when over the safe maximum."""
        cap_max = profile.max_gpu_cap_bytes(os) or 0
        want = _ceil_gib(needed + UNIFIED_RAISE_ROOM)
        if os == "macos":
            floor = macos_wired_default(profile.ram_bytes).from_26 * profile.os_visible_ram()
            want = max(want, _ceil_gib(int(floor)))
        return min(want, whole_gib(cap_max)) if _ceil_gib(needed) <= cap_max else None

    def spare_bytes(self, r: FitResult, fast_only: bool) -> int:
        """One pool: the GPU's room is also the OS's room."""
        return min(r.gpu_headroom_bytes - r.safety_bytes, r.os_free_bytes)
