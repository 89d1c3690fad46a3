"""A discrete card: VRAM minus what the desktop holds; system RAM is the CPU side's alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fit_types import FitConfig, PoolUse
from .base import MemoryKind, Pools, gpu_reserve

if TYPE_CHECKING:
    from ..device_schema import OS, DeviceProfile


class DiscreteMemory(MemoryKind):
    name = "discrete"
    setting = "none"
    shares_ram_with_os = False
    reports_to_llama = False  # the card's VRAM: the GPU check already says it all
    host_ram_apart = True
    settings_table = False
    tier_words = {"dedicated": "fits in VRAM"}

    def pools(self, profile: DeviceProfile, config: FitConfig, need: int, safety: int) -> Pools:
        desk = gpu_reserve(profile, config)
        capacity = max(0, int(profile.vram_bytes or 0) - desk)
        return Pools(
            visible=profile.os_visible_ram(), capacity=capacity, fast_capacity=capacity,
            dedicated_capacity=capacity, gpu_reserve=desk, dedicated_used=need, fast_label="VRAM",
            pools=[PoolUse(name="vram", label="VRAM", capacity_bytes=capacity, used_bytes=need)],
        )

    def tunable(self, profile: DeviceProfile, os: OS) -> bool:
        return False  # a card's VRAM is what it is
