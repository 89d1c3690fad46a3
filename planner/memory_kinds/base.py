"""What every memory architecture answers, and the answers most of them share.

A memory kind is a stateless object (one per architecture, planner.memory_kinds.KINDS): the fit
solver asks it for the pools of a configuration, the search for the settings to weigh and the GPU
cap to try, the policy and the plan for how to read a placement. Nothing here is pydantic: a plan
places about 1300 times, and each placement builds one Pools.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..fit_types import FitConfig, FitResult, PoolUse
from ..memory_classes import OsMemory, os_memory
from ..units import GIB

if TYPE_CHECKING:
    from ..device_schema import OS, DeviceProfile

# What a user sets on this kind of machine: the BIOS split, the GPU cap, or nothing.
MachineSetting = Literal["carveout", "gpu_cap", "none"]


@dataclass(slots=True)
class Pools:
    """What one memory architecture makes of a configuration: capacities, where the GPU side
    lands, and what of it the OS side gives up."""

    visible: int  # RAM the OS sees
    capacity: int  # all memory the model's GPU side may use (after what the desktop holds)
    fast_capacity: int  # the part at device speed (a Windows APU: the carve-out minus the desktop)
    dedicated_capacity: int  # the part a "dedicated" tier must stay in (the carve-out; else all of it)
    gpu_reserve: int  # GPU memory the desktop holds
    dedicated_used: int
    fast_label: str
    pools: list[PoolUse]
    carve: int | None = None
    cap: int | None = None
    cap_default: int | None = None
    cap_max: int | None = None
    shared_used: int = 0  # GPU-side bytes beyond the carve-out, in the shared window
    os_gpu_bytes: int = 0  # GPU-side bytes (with safety) that are RAM the OS would otherwise have
    ram_gpu_used: int = 0  # GPU-side bytes drawn in the system RAM pool
    slowdown: float = 1.0  # decode factor for bytes in the shared window
    spill_label: str = ""
    shared_cost: str = ""


def gpu_reserve(profile: DeviceProfile, config: FitConfig) -> int:
    """GPU memory the desktop holds: the configuration's figure, else the profile's for OS and use."""
    if config.gpu_reserve_bytes is not None:
        return config.gpu_reserve_bytes
    return profile.gpu_reserve(config.os, config.use)


def whole_gib(n: int) -> int:
    return n // GIB * GIB


class MemoryKind:
    """The questions the planner asks of a memory architecture, with the answers for memory that
    has no carve-out and no raisable cap (a discrete card); the other kinds override what differs."""

    name: str = ""
    setting: MachineSetting = "none"
    has_shared_window: bool = False  # a window beyond the fast memory that may read slower (an APU's)
    shares_ram_with_os: bool = True  # the GPU side's memory is RAM the OS manages (a live reading applies)
    reports_to_llama: bool = True  # the backend reports a total llama.cpp plans with (--fit)
    host_ram_apart: bool = False  # the CPU side has its own RAM (a card): no-fit reasons name it
    one_pool: bool = False  # GPU room is also OS room (unified memory)
    settings_table: bool = True  # the plan lists its configurations (BIOS splits, caps)
    tier_words: dict[str, str] = {}  # the plan's wording of a tier where it differs from TIER_LABEL
    cap_raise_words: str = ""  # what a raised cap is, in the plan's "raise the GPU cap" fact

    def pools(self, profile: DeviceProfile, config: FitConfig, need: int, safety: int) -> Pools:
        raise NotImplementedError

    def on(self, os: str) -> OsMemory:
        """This architecture on this OS (planner/data/memory.toml [[os_memory]])."""
        return os_memory(self.name, os)

    # ------------------------------------------------------------------ the settings to weigh

    def carveouts(self, profile: DeviceProfile, fixed: int | None) -> list[int | None]:
        """The BIOS splits to plan (None: the machine has none)."""
        return [None]

    def tunable(self, profile: DeviceProfile, os: OS) -> bool:
        """Whether the GPU cap can be raised here (a knob and a safe maximum)."""
        cap = profile.os_info(os).gpu_cap
        return cap is not None and cap.max_fraction is not None and cap.knob is not None

    def machine_cap(self, profile: DeviceProfile, os: OS, carve: int | None) -> int | None:
        """The one GPU cap to advise for the machine on this carve-out: its safe maximum in whole
        GiB (never below the default), or None when it cannot be raised."""
        if not self.tunable(profile, os):
            return None
        cap_max = profile.max_gpu_cap_bytes(os, carve)
        if not cap_max:
            return None
        return max(whole_gib(cap_max), profile.gpu_cap_bytes(os, carve) or 0)

    def raised_cap(self, profile: DeviceProfile, os: OS, carve: int | None, r: FitResult) -> int | None:
        """The GPU cap to place again with when the default cap does not hold the GPU side (the
        caller has checked that the cap is tunable and that the GPU memory check failed), or None."""
        return None

    # ------------------------------------------------------------------ reading a placement

    def spare_bytes(self, r: FitResult, fast_only: bool) -> int:
        """Room left for the model's growth: in fast memory when the placement must stay there and
        a slower window exists, else on the GPU beyond the safety margin."""
        if fast_only and r.spills_slowly:
            return r.fast_spare_bytes
        return r.gpu_headroom_bytes - r.safety_bytes

    def tier_label(self, tier: str, default: str) -> str:
        return self.tier_words.get(tier, default)
