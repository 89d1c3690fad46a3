"""The fit solver's contract: a configuration of a device (FitConfig) in, a placement (FitResult)
with its pools and load-failure checks out. Separate from planner.fit so that the memory kinds
(planner.memory_kinds), which the solver consults, can build pools and checks without importing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

from pydantic import BaseModel, Field

from .device_schema import OS, MemoryArchitecture, Use
from .estimate_types import DeviceUsage

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


class _CheckTexts:
    __slots__ = ("_message", "_short")


def _text(slot: str) -> property:
    """A check's text, given as a string or as a function that writes it: a plan places about a
    thousand times and reads the texts of a few placements, so they are written when first read."""

    def get(self: "Check") -> str:
        value = getattr(self, slot)
        if not isinstance(value, str):
            value = value()
            setattr(self, slot, value)
        return value

    def put(self: "Check", value: "str | Callable[[], str]") -> None:
        setattr(self, slot, value)

    return property(get, put)


@dataclass
class Check(_CheckTexts):
    """One load-failure check. `blocking` checks make a configuration not fit. A plain dataclass:
    every placement makes several and a plan makes over a thousand placements (pydantic serialises
    it inside FitResult all the same). `message` and `short` may be given as functions that write
    them (see _text)."""

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


Check.message = _text("_message")  # type: ignore[assignment, method-assign]
Check.short = _text("_short")  # type: ignore[assignment, method-assign]


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
    memory_architecture: MemoryArchitecture
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
    def spill_risk_bytes(self) -> int:
        """GPU-side bytes in the slower window, or at risk of landing there once the estimate
        margins are counted (what a "spills" note states)."""
        return max(self.shared_used_bytes, -self.fast_spare_bytes)

    @property
    def spills_slowly(self) -> bool:
        """Part of the GPU side may land in a window that reads slower than the fast memory
        (Windows shared GPU memory on Vulkan); only a carve-out APU has such a window."""
        return self.shared_slowdown > 1.0

    @property
    def total_need_bytes(self) -> int:
        """Both sides: GPU buffers + driver overhead, and the CPU-resident buffers."""
        return self.gpu_need_bytes + self.host_need_bytes

    @property
    def gpu_headroom_bytes(self) -> int:
        """GPU memory left after the model and the driver overhead (before the safety margin)."""
        return self.gpu_capacity_bytes - self.gpu_need_bytes

    @property
    def blocking_failures(self) -> list[Check]:
        return [c for c in self.checks if c.blocking and not c.ok]

    @property
    def first_blocker(self) -> Check | None:
        """The first blocking check that fails (None when it fits)."""
        return next((c for c in self.checks if c.blocking and not c.ok), None)

    @property
    def blocker_short(self) -> str:
        """The first failure in a table cell's words ("GPU short 3.5 GiB"); "" when it fits."""
        c = self.first_blocker
        return (c.short or c.message) if c is not None else ""

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
