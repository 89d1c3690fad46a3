"""The device memory model: what a machine's memory looks like to llama.cpp, not one number.

A profile (profiles/*.toml, validated by DeviceProfile) says how memory is split:
- `carveout`: an APU with a BIOS UMA frame buffer (dedicated, lost to the OS, reboot to change)
  plus a capped window of shared system RAM the GPU may map (Windows shared GPU memory, Linux GTT);
- `unified`: one pool with a GPU wired/working-set limit (Apple Silicon, GB10, Jetson);
- `discrete`: VRAM on a card plus system RAM for offloaded layers.
Every number carries a source (`sources`). The fit solver (planner.fit) consumes this; the
machine probe (issue 5) builds one from the running system.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

OS = Literal["linux", "windows", "macos"]
Backend = Literal["cpu", "cuda", "rocm", "vulkan", "metal"]
MemoryArchitecture = Literal["carveout", "unified", "discrete"]
Use = Literal["headless", "desktop", "daily"]  # headless server / light desktop / daily-driver laptop


class Source(BaseModel):
    """Where a number comes from: `field` names the profile field, `ref` a URL or owner/repo#N."""

    field: str
    ref: str
    note: str = ""


class Carveout(BaseModel):
    """BIOS UMA frame buffer choices (bytes). Changing it needs a reboot on every known APU."""

    options_bytes: list[int] = Field(min_length=1)
    default_bytes: int
    reboot_required: bool = True
    how_to_change: str = "BIOS: UMA Frame Buffer Size"

    @model_validator(mode="after")
    def _sorted(self) -> "Carveout":
        self.options_bytes = sorted(set(self.options_bytes))
        return self


class GpuCap(BaseModel):
    """How much memory beyond the carve-out the GPU may address on one OS.

    cap = min(fraction * os_visible_ram, fixed_bytes) when set; `max_fraction` is how far a user
    can raise it (Linux ttm.pages_limit, macOS iogpu.wired_limit_mb); None = not tunable (Windows).
    For `unified` devices the cap is the whole GPU budget (Apple working set); for `carveout`
    devices it is the shared/GTT window on top of the carve-out.
    """

    default_fraction: float = Field(gt=0, le=1)
    max_fraction: float | None = Field(None, gt=0, le=1)
    fixed_bytes: int | None = None  # an absolute cap where a driver imposes one
    how_to_change: str = ""
    shared_slowdown: float = Field(1.0, ge=1.0, description="decode slows by this factor for weights in shared memory on this OS/driver")
    note: str = ""


class BackendInfo(BaseModel):
    """What one backend on one OS sees and allows."""

    name: Backend
    reports: str = ""  # e.g. "sums all Vulkan heaps: carve-out + GTT"
    max_alloc_bytes: int | None = None  # largest single buffer (AMDVLK: 2 GiB), None = no known limit
    overhead_bytes: int = 0  # driver/runtime context outside llama.cpp's buffers


class OSInfo(BaseModel):
    """Per-OS facts: reserve the OS and apps need, GPU cap, backends in order of preference."""

    reserve_bytes: dict[Use, int]  # RAM the OS + apps keep, per use
    gpu_cap: GpuCap | None = None
    backends: list[BackendInfo] = Field(min_length=1)


class DeviceProfile(BaseModel):
    id: str
    name: str
    vendor: str
    family: str  # e.g. "strix-halo", "apple-m4", "gb10", "rtx-40"
    form_factor: Literal["laptop", "mini-pc", "desktop", "workstation", "devkit", "tablet"]
    memory_architecture: MemoryArchitecture
    ram_bytes: int = Field(gt=0, description="installed system RAM (DRAM) in bytes")
    vram_bytes: int | None = Field(None, description="discrete GPU VRAM; None for APUs/unified")
    carveout: Carveout | None = None
    os: dict[OS, OSInfo]
    default_os: OS
    default_use: Use = "desktop"
    bandwidth_gbps: float = Field(gt=0, description="peak memory bandwidth of the memory the GPU reads (GB/s)")
    decode_efficiency: float = Field(0.8, gt=0, le=1, description="measured decode BW / peak (roofline eta)")
    host_bandwidth_gbps: float | None = None  # system RAM bandwidth for offloaded parts (discrete)
    gpu_name: str = ""
    gpu_tflops_fp16: float | None = None
    power_w: str = ""
    sources: list[Source] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "DeviceProfile":
        if self.default_os not in self.os:
            raise ValueError(f"default_os {self.default_os!r} has no entry in [os]")
        if self.memory_architecture == "carveout" and self.carveout is None:
            raise ValueError("a carveout device needs a [carveout] table")
        if self.memory_architecture == "discrete" and not self.vram_bytes:
            raise ValueError("a discrete device needs vram_bytes")
        return self
