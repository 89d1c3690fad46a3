"""What a probe found on a machine: raw facts, each optional ("unknown" = None), plus notes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

GpuKind = Literal["integrated", "discrete", "unknown"]
Vendor = Literal["amd", "nvidia", "intel", "apple", "unknown"]


class GpuFacts(BaseModel):
    name: str = ""
    vendor: Vendor = "unknown"
    pci_id: str | None = None  # "1002:1586"
    kind: GpuKind = "unknown"
    driver: str = ""
    family: str | None = None  # recognised silicon family ("strix-halo", "gb10", ...)
    vram_total_bytes: int | None = None  # APU: the carve-out; discrete: VRAM
    vram_used_bytes: int | None = None
    gtt_total_bytes: int | None = None
    gtt_used_bytes: int | None = None
    carveout_options_bytes: list[int] = Field(default_factory=list)  # amdgpu uma/carveout_options
    carveout_index: int | None = None
    shared_bytes: int | None = None  # Windows shared GPU memory (derived from the WDDM rule)
    memory_not_reported: bool = False  # nvidia-smi "Not Supported"/[N/A] (unified memory)
    source: str = ""


class MemoryModule(BaseModel):
    """One populated RAM module (SMBIOS type 17: dmidecode, Win32_PhysicalMemory)."""

    size_bytes: int
    speed_mts: int | None = None  # configured transfers per second (MT/s; older tools say MHz)
    data_width_bits: int | None = None
    locator: str = ""
    bank_locator: str = ""
    type: str = ""  # DDR5, LPDDR5...


class MachineFacts(BaseModel):
    system: Literal["linux", "macos", "windows", "unknown"] = "unknown"
    cpu_name: str = ""
    model_name: str = ""  # DMI product name, device-tree model, Mac model, Win32_ComputerSystem.Model
    vendor_name: str = ""
    kernel: str = ""
    os_version: str = ""
    ram_installed_bytes: int | None = None  # DRAM fitted (best estimate)
    ram_visible_bytes: int | None = None  # what the OS sees (MemTotal, TotalPhysicalMemory, hw.memsize)
    mem_available_bytes: int | None = None
    mem_free_bytes: int | None = None
    swap_free_bytes: int | None = None
    gpus: list[GpuFacts] = Field(default_factory=list)
    # Linux TTM / amdgpu
    ttm_module: str | None = None  # "ttm" or "amdttm" (amdgpu-dkms)
    ttm_pages_limit: int | None = None  # the limit in effect (4 KiB pages)
    amdttm_loaded: bool = False
    cmdline: dict[str, str] = Field(default_factory=dict)  # the memory-related kernel parameters
    amdgpu_gttsize_mib: int | None = None  # module parameter in effect (-1 = auto)
    amdgpu_no_system_mem_limit: bool | None = None
    modprobe_pages_limit: int | None = None  # from /etc/modprobe.d/*.conf
    # macOS
    wired_limit_mb: int | None = None  # iogpu.wired_limit_mb, 0 = default policy
    # RAM modules (planner.probe.dmi): the RAM bandwidth of CPU-only machines and offloaded layers
    memory_modules: list[MemoryModule] = Field(default_factory=list)
    memory_modules_source: str = ""
    # bookkeeping
    probed: list[str] = Field(default_factory=list)  # "RAM: /proc/meminfo MemTotal"
    notes: list[str] = Field(default_factory=list)  # what could not be read and what that means

    def gpu(self) -> GpuFacts | None:
        """The GPU that matters for planning: a recognised one first, then discrete, then any."""
        if not self.gpus:
            return None
        ranked = sorted(self.gpus, key=lambda g: (g.family is None, g.kind != "discrete", g.kind == "unknown"))
        return ranked[0]

    def integrated_amd(self) -> GpuFacts | None:
        for g in self.gpus:
            if g.vendor == "amd" and g.kind == "integrated":
                return g
        return None
