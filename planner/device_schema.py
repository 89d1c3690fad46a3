"""The device memory model: what a machine's memory looks like to llama.cpp, not one number.

A profile (profiles/*.toml, validated by DeviceProfile) says how memory is split:
- `carveout`: an APU with a BIOS UMA frame buffer (dedicated, lost to the OS, reboot to change)
  plus a capped window of shared system RAM the GPU may map (Windows shared GPU memory, Linux GTT);
- `unified`: one pool with a GPU wired/working-set limit (Apple Silicon, GB10, Jetson, Intel
  Lunar Lake; a machine with no usable GPU is `unified` without a gpu_cap and only the CPU backend);
- `discrete`: VRAM on a card plus system RAM for offloaded layers.
Every number carries a source (`sources`). The fit solver (planner.fit) consumes this; the
machine probe (planner.probe) builds one from the running system.

Arithmetic lives in the methods below so every consumer splits memory the same way:

    visible = profile.os_visible_ram(carveout)          # RAM the OS sees
    shared  = profile.gpu_cap_bytes("linux", carveout)  # GTT / shared window / GPU working set
    total   = profile.gpu_total_bytes("linux", carveout)  # carve-out + shared (APU), cap (unified), VRAM
    keep    = profile.reserve("windows", "daily")        # RAM the OS and apps keep
    knob    = profile.cap_setting("linux", 120 * GIB)    # "ttm.pages_limit=31457280"
"""


import math
import re
from dataclasses import dataclass
from typing import Annotated, Callable, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from .plausibility import DEVICE_BOUNDS
from .units import fmt_auto, parse_size
from .vocab import Backend

# planner/plausibility.py holds every bound with its reason (DEVICE_BOUNDS)
_MAX_BYTES = int(DEVICE_BOUNDS["bytes"].hi)
_MIN_RAM, _MAX_RAM = int(DEVICE_BOUNDS["ram_bytes"].lo), int(DEVICE_BOUNDS["ram_bytes"].hi)
_MIN_VRAM, _MAX_VRAM = int(DEVICE_BOUNDS["vram_bytes"].lo), int(DEVICE_BOUNDS["vram_bytes"].hi)
_MAX_BW = DEVICE_BOUNDS["bandwidth_gbps"].hi
_MAX_TFLOPS = DEVICE_BOUNDS["gpu_tflops_fp16"].hi
_MAX_SLOWDOWN = DEVICE_BOUNDS["shared_slowdown"].hi

OS = Literal["linux", "windows", "macos"]
MemoryArchitecture = Literal["carveout", "unified", "discrete"]
Use = Literal["headless", "desktop", "daily"]  # headless server / light desktop / daily-driver laptop
USES: tuple[Use, ...] = ("headless", "desktop", "daily")
OSES: tuple[OS, ...] = ("linux", "windows", "macos")

# How a backend turns the pools into the "total memory" llama.cpp prints and plans with.
ReportsAs = Literal[
    "carveout_plus_cap",  # carve-out + shared window (llama.cpp Vulkan sums every heap of an iGPU)
    "max_carveout_cap",   # the larger of carve-out and GTT (ROCm/KFD on an APU)
    "carveout",           # the carve-out only (drivers that ignore shared memory)
    "cap",                # the shared/working-set cap only (Metal: recommendedMaxWorkingSetSize)
    "mem_available",      # /proc/meminfo MemAvailable (CUDA on integrated GPUs: GB10, Jetson)
    "vram",               # a discrete card's VRAM
    "host_ram",           # the CPU backend: RAM the OS sees
]
# The user-facing knob that raises the GPU cap, if any.
CapKnob = Literal["ttm.pages_limit", "iogpu.wired_limit_mb", "shared_gpu_memory_override",
                  "amdttm.pages_limit"]  # amdttm: the TTM module of amdgpu-dkms (ROCm's packaged driver)

GIB = 1024**3
MIB = 1024**2
PAGE = 4096  # TTM pages are 4 KiB: ttm.pages_limit = GiB x 262144


def _parsed(value: str) -> int:
    try:
        return parse_size(value.replace(" ", ""))
    except Exception:
        raise ValueError(f"invalid size {value!r}: use bytes or a size such as 64g, 512m, 0.5GiB") from None


def _in_range(value: int | float) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"invalid size {value!r}: sizes are finite numbers of bytes")
    if value < 0:
        raise ValueError(f"invalid size {value!r}: sizes cannot be negative")
    if value > _MAX_BYTES:
        raise ValueError(f"invalid size {value!r}: more than {fmt_auto(_MAX_BYTES)}, which no machine has "
                         f"({DEVICE_BOUNDS['bytes'].reason})")


def _to_bytes(value: object) -> object:
    """Profiles may write sizes as text ("64 GiB", "512m", "0.5g"); binary units, like planner.units.
    Every size is finite, not negative and within DEVICE_BOUNDS["bytes"] (planner/plausibility.py)."""
    if isinstance(value, str):
        value = _parsed(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _in_range(value)
    return value


Bytes = Annotated[int, BeforeValidator(_to_bytes)]


class _Strict(BaseModel):
    # allow_inf_nan=False: every float of a profile is a finite number (no inf, no nan)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Source(_Strict):
    """Where a number comes from: `field` names the profile field, `ref` a URL or owner/repo#N.

    `ref = "derived"` marks our own arithmetic; `note` then gives the formula.
    """

    field: str
    ref: str
    note: str = ""


class Carveout(_Strict):
    """BIOS UMA frame buffer choices (bytes). Changing it needs a reboot on every known APU."""

    options_bytes: list[Bytes] = Field(min_length=1)
    default_bytes: Bytes
    reboot_required: bool = True
    how_to_change: str = "BIOS: UMA Frame Buffer Size"
    options_note: str = ""  # how sure we are of the list (seen on a device, or a suggested grid)

    @model_validator(mode="after")
    def _sorted(self) -> "Carveout":
        self.options_bytes = sorted(set(self.options_bytes))
        if any(o <= 0 for o in self.options_bytes):
            raise ValueError("carve-out options must be positive byte counts (the smallest real option is 512 MB)")
        if self.default_bytes not in self.options_bytes:
            raise ValueError(f"default_bytes {self.default_bytes} is not one of options_bytes")
        return self


class GpuCap(_Strict):
    """How much memory beyond the carve-out the GPU may address on one OS.

    cap = min(fraction * os_visible_ram, fixed_bytes) when set; `max_fraction` is how far a user
    can raise it (Linux ttm.pages_limit, macOS iogpu.wired_limit_mb); None = not tunable (Windows).
    For `unified` devices the cap is the whole GPU budget (Apple working set); for `carveout`
    devices it is the shared/GTT window on top of the carve-out.
    `setting_bytes` is an absolute cap the user configured (or the probe read on this machine);
    when set it replaces the default formula (clipped to the RAM the OS sees).
    """

    default_fraction: float = Field(gt=0, le=1)
    max_fraction: float | None = Field(None, gt=0, le=1)
    fixed_bytes: Bytes | None = None  # an absolute cap where a driver imposes one
    setting_bytes: Bytes | None = Field(None, gt=0)
    knob: CapKnob | None = None
    how_to_change: str = ""
    shared_slowdown: float | None = Field(None, ge=1.0, le=_MAX_SLOWDOWN, description=(
        "decode slows by this factor for bytes in shared memory on this OS/driver; None = the measured "
        "table per OS and backend (planner/data/memory.toml)"))
    note: str = ""

    @model_validator(mode="after")
    def _max_not_below_default(self) -> "GpuCap":
        if self.max_fraction is not None and self.max_fraction < self.default_fraction:
            raise ValueError("max_fraction is below default_fraction")
        return self


class BackendInfo(_Strict):
    """What one backend on one OS sees and allows."""

    name: Backend
    driver: str = ""  # e.g. "radv", "amdvlk", "amdgpu-pro"; empty = the usual one
    reports: str = ""  # e.g. "sums all Vulkan heaps: carve-out + GTT"
    reports_as: ReportsAs | None = None  # the same in a form code can compute with
    max_alloc_bytes: Bytes | None = None  # largest single buffer (AMDVLK: 2 GiB), None = no known limit
    overhead_bytes: Bytes = 0  # driver/runtime context outside llama.cpp's buffers

    @property
    def label(self) -> str:
        return f"{self.name} ({self.driver})" if self.driver else self.name


class OSInfo(_Strict):
    """Per-OS facts: reserve the OS and apps need, GPU cap, backends in order of preference."""

    reserve_bytes: dict[Use, Bytes]  # RAM the OS + apps keep, per use
    # GPU memory the desktop, its apps and the driver already hold (discrete: VRAM; APU: comes off the
    # carve-out first). Missing = the table default per OS and use (planner/data/memory.toml).
    gpu_reserve_bytes: dict[Use, Bytes] = Field(default_factory=dict,
                                                validation_alias=AliasChoices("gpu_reserve_bytes", "vram_reserve_bytes"))
    gpu_cap: GpuCap | None = None
    backends: list[BackendInfo] = Field(min_length=1)
    notes: list[str] = Field(default_factory=list)

    @field_validator("reserve_bytes")
    @classmethod
    def _all_uses(cls, v: dict[Use, int]) -> dict[Use, int]:
        missing = [u for u in USES if u not in v]
        if missing:
            raise ValueError(f"reserve_bytes needs every use ({', '.join(USES)}); missing {', '.join(missing)}")
        if any(x < 0 for x in v.values()):
            raise ValueError("reserve_bytes must not be negative")
        return v


class ProbeMatch(_Strict):
    """How the machine probe recognises this device (all patterns are case-insensitive regexes).

    A probe result matches when the family is recognised (a PCI id, or a CPU/GPU name pattern);
    installed RAM equal to ram_bytes ranks first (a profile of the same silicon with other RAM is
    used with the RAM overridden, unless `ram_must_match`); `model_patterns` (DMI product name,
    device-tree model, Mac model) break ties between form factors, then `priority` (higher wins).
    """

    pci_ids: list[str] = Field(default_factory=list)  # "1002:1586"
    cpu_patterns: list[str] = Field(default_factory=list)
    gpu_patterns: list[str] = Field(default_factory=list)
    model_patterns: list[str] = Field(default_factory=list)
    priority: int = 0
    ram_must_match: bool = False  # True: a machine with other RAM is a different product (Orin NX vs AGX)

    @field_validator("cpu_patterns", "gpu_patterns", "model_patterns")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"bad pattern {p!r}: {e}") from None
        return v

    @field_validator("pci_ids")
    @classmethod
    def _pci(cls, v: list[str]) -> list[str]:
        out = []
        for p in v:
            if not re.fullmatch(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{4}", p):
                raise ValueError(f"bad PCI id {p!r}: use vendor:device in hex, e.g. 1002:1586")
            out.append(p.lower())
        return out


class LiveConfig(_Strict):
    """The configuration read from the running machine (`--device auto`): what is in effect now."""

    os: OS
    os_visible_ram_bytes: int | None = Field(None, ge=0, le=_MAX_BYTES)  # MemTotal / hw.memsize / TotalPhysicalMemory
    mem_available_bytes: int | None = Field(None, ge=0, le=_MAX_BYTES)
    swap_free_bytes: int | None = Field(None, ge=0, le=_MAX_BYTES)
    carveout_bytes: int | None = Field(None, ge=0, le=_MAX_BYTES)  # BIOS UMA frame buffer in effect (APU)
    gpu_cap_bytes: int | None = Field(None, ge=0, le=_MAX_BYTES)  # GTT / shared / wired limit in effect
    gpu_cap_is_default: bool | None = None  # True when nobody raised it
    vram_used_bytes: int | None = Field(None, ge=0, le=_MAX_BYTES)  # what is already taken on the GPU (desktop, other apps)
    kernel: str = ""
    probed: list[str] = Field(default_factory=list)  # where each value was read


class DeviceProfile(_Strict):
    id: str
    name: str
    vendor: str
    family: str  # e.g. "strix-halo", "apple-m4", "gb10", "rtx-40"
    form_factor: Literal["laptop", "mini-pc", "desktop", "workstation", "devkit", "tablet"]
    memory_architecture: MemoryArchitecture
    ram_bytes: Bytes = Field(ge=_MIN_RAM, le=_MAX_RAM, description="installed system RAM (DRAM) in bytes")
    vram_bytes: Bytes | None = Field(None, ge=_MIN_VRAM, le=_MAX_VRAM, description="discrete GPU VRAM; None for APUs/unified")
    carveout: Carveout | None = None
    os: dict[OS, OSInfo]
    default_os: OS
    default_use: Use = "desktop"
    bandwidth_gbps: float = Field(gt=0, le=_MAX_BW, description="peak memory bandwidth of the memory the GPU reads (GB/s)")
    decode_efficiency: float = Field(0.8, gt=0, le=1, description="measured decode BW / peak (roofline eta)")
    host_bandwidth_gbps: float | None = Field(None, gt=0, le=_MAX_BW)  # system RAM bandwidth for offloaded parts (discrete)
    gpu_name: str = ""
    gpu_tflops_fp16: float | None = Field(None, gt=0, le=_MAX_TFLOPS)
    power_w: str = ""
    sources: list[Source] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    # --- additive fields (issue 4/5) ---
    chip: str = ""  # e.g. "Ryzen AI Max+ 395"
    aliases: list[str] = Field(default_factory=list)  # other ids that load this profile
    firmware_reserved_bytes: Bytes = Field(0, ge=0, description="RAM no OS sees even with the smallest carve-out")
    match: ProbeMatch | None = None
    estimated: list[str] = Field(default_factory=list)  # fields that are assumptions, not measured/sourced
    live: LiveConfig | None = None  # set by the probe (`--device auto`)
    based_on: str | None = None  # the shipped profile a probed/overridden profile came from
    overrides: dict[str, str] = Field(default_factory=dict)  # command-line overrides applied
    override_notes: list[str] = Field(default_factory=list)  # what the overrides imply (also in notes)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", v):
            raise ValueError(f"id {v!r}: use lower-case letters, digits, '.', '_' and '-'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "DeviceProfile":
        problem = next((why(self) for broken, why in _CONSISTENCY if broken(self)), None)
        if problem is not None:
            raise ValueError(problem)
        return self

    def carveouts_too_big(self) -> list[int]:
        """Carve-out options that would leave the OS no RAM."""
        if self.carveout is None:
            return []
        return [o for o in self.carveout.options_bytes if o >= self.ram_bytes - self.firmware_reserved_bytes]

    # ----------------------------------------------------------------- lookups

    def os_info(self, os: OS | None = None) -> OSInfo:
        key = os or self.default_os
        if key not in self.os:
            raise KeyError(f"{self.id} has no {key} entry (has: {', '.join(self.os)})")
        return self.os[key]

    def reserve(self, os: OS | None = None, use: Use | None = None) -> int:
        """RAM the OS and its apps keep for themselves (never planned for the model)."""
        return self.os_info(os).reserve_bytes[use or self.default_use]

    def gpu_reserve(self, os: OS | None = None, use: Use | None = None) -> int:
        """GPU memory the desktop, its apps and the driver already hold: the profile's figure, else
        (APUs with a carve-out) the measured table default per OS and use; 0 otherwise (on unified
        memory the OS reserve covers the desktop; a discrete card without a figure)."""
        u = use or self.default_use
        own = self.os_info(os).gpu_reserve_bytes
        if u in own:
            return own[u]
        if self.memory_architecture != "carveout":  # unified: the OS reserve covers it; discrete: no figure
            return 0
        from .memory_classes import default_gpu_reserve

        return default_gpu_reserve(os or self.default_os, u)

    def vram_reserve(self, os: OS | None = None, use: Use | None = None) -> int:
        """Discrete cards: VRAM the desktop/compositor already holds (kept for older callers)."""
        return self.gpu_reserve(os, use)

    def backends(self, os: OS | None = None) -> list[BackendInfo]:
        return list(self.os_info(os).backends)

    def backend(self, name: str, os: OS | None = None) -> BackendInfo | None:
        """The first backend entry with this name (or `name (driver)` label) on this OS."""
        for b in self.os_info(os).backends:
            if name in (b.name, b.label, b.driver):
                return b
        return None

    def cpu_only(self, os: OS | None = None) -> bool:
        """No GPU to plan for on this OS: only the CPU backend (a CPU-only machine, or one whose GPU
        memory could not be read), one pool the OS manages, no gpu_cap."""
        return all(b.name == "cpu" for b in self.os_info(os).backends)

    def carveout_options(self) -> list[int]:
        """Carve-out sizes the firmware offers ([] for devices without a carve-out)."""
        return list(self.carveout.options_bytes) if self.carveout else []

    def current_carveout(self) -> int:
        """The carve-out in effect: probed, else the factory default; 0 without a carve-out."""
        if self.carveout is None:
            return 0
        if self.live is not None and self.live.carveout_bytes is not None:
            return self.live.carveout_bytes
        return self.carveout.default_bytes

    # ----------------------------------------------------------------- arithmetic

    def os_visible_ram(self, carveout_bytes: int | None = None) -> int:
        """RAM the OS sees: installed RAM minus firmware reservations minus the carve-out.

        carveout_bytes=None means the current carve-out; ignored for devices without one.
        """
        carve = 0
        if self.carveout is not None:
            carve = self.current_carveout() if carveout_bytes is None else carveout_bytes
        return max(0, self.ram_bytes - self.firmware_reserved_bytes - carve)

    def gpu_cap_bytes(self, os: OS | None = None, carveout_bytes: int | None = None,
                      setting_bytes: int | None = None) -> int | None:
        """The GPU-addressable window beyond the carve-out (APU) or the whole GPU budget (unified).

        None when the OS has no such window (discrete cards, CPU-only machines).
        setting_bytes: an explicit cap (e.g. a ttm.pages_limit being evaluated); else the profile's
        `setting_bytes`, else the OS default formula (fraction of the RAM the OS sees).
        """
        cap = self.os_info(os).gpu_cap
        if cap is None:
            return None
        visible = self.os_visible_ram(carveout_bytes)
        setting = setting_bytes if setting_bytes is not None else cap.setting_bytes
        if setting is not None:
            return min(int(setting), visible)
        value = int(cap.default_fraction * visible)
        if cap.fixed_bytes is not None:
            value = min(value, cap.fixed_bytes)
        return value

    def max_gpu_cap_bytes(self, os: OS | None = None, carveout_bytes: int | None = None) -> int | None:
        """How far a user can raise the cap (safe maximum); the default when it is not tunable."""
        cap = self.os_info(os).gpu_cap
        if cap is None:
            return None
        if cap.max_fraction is None:
            return self.gpu_cap_bytes(os, carveout_bytes)
        return int(cap.max_fraction * self.os_visible_ram(carveout_bytes))

    def gpu_total_bytes(self, os: OS | None = None, carveout_bytes: int | None = None,
                        setting_bytes: int | None = None) -> int:
        """All memory the GPU may hold: carve-out + shared window (APU), the cap (unified), VRAM (discrete)."""
        if self.memory_architecture == "discrete":
            return int(self.vram_bytes or 0)
        shared = self.gpu_cap_bytes(os, carveout_bytes, setting_bytes) or 0
        if self.memory_architecture == "carveout":
            carve = self.current_carveout() if carveout_bytes is None else carveout_bytes
            return carve + shared
        return shared

    def reported_bytes(self, backend: BackendInfo, os: OS | None = None, carveout_bytes: int | None = None,
                       setting_bytes: int | None = None) -> int | None:
        """The total memory this backend will report to llama.cpp, or None when unknown."""
        seen = Seen(carve=self.current_carveout() if carveout_bytes is None else carveout_bytes,
                    cap=self.gpu_cap_bytes(os, carveout_bytes, setting_bytes) or 0,
                    visible=self.os_visible_ram(carveout_bytes), os=os, carveout_given=carveout_bytes is not None)
        how = _REPORTS.get(backend.reports_as or "")
        return how(self, seen) if how is not None else None

    def mem_available(self, seen: "Seen") -> int:
        """MemAvailable: read on this machine at the split in effect, else the RAM the OS sees less
        its headless reserve."""
        live = self.live
        if live is not None and live.mem_available_bytes is not None and not seen.carveout_given:
            return live.mem_available_bytes
        return max(0, seen.visible - self.reserve(seen.os, "headless"))

    def cap_setting(self, os: OS | None, cap_bytes: int) -> str | None:
        """The setting a user writes to get this GPU cap on this OS, or None when not tunable."""
        cap = self.os_info(os).gpu_cap
        if cap is None or cap.knob is None:
            return None
        if cap.knob in ("ttm.pages_limit", "amdttm.pages_limit"):
            return f"{cap.knob}={gtt_pages(cap_bytes)}"
        if cap.knob == "iogpu.wired_limit_mb":
            return f"sudo sysctl iogpu.wired_limit_mb={cap_bytes // MIB}"
        visible = self.os_visible_ram()
        pct = min(100, -(-cap_bytes * 100 // max(1, visible)))
        return f"Intel Graphics Software > Shared GPU Memory Override: {pct} %"

    def sources_for(self, field: str) -> list[Source]:
        """Sources whose `field` is this field or a prefix of it (e.g. 'os.linux' covers 'os.linux.gpu_cap')."""
        return [s for s in self.sources if field == s.field or field.startswith(s.field + ".")
                or s.field.startswith(field + ".")]


@dataclass(frozen=True, slots=True)
class Seen:
    """The pools a backend's report is made of, at one carve-out and cap."""

    carve: int
    cap: int
    visible: int
    os: OS | None
    carveout_given: bool  # a carve-out being planned, not the one in effect


# How each backend turns the pools into the total it reports (BackendInfo.reports_as)
_REPORTS: dict[str, Callable[[DeviceProfile, Seen], int | None]] = {
    "carveout_plus_cap": lambda p, s: s.carve + s.cap,
    "max_carveout_cap": lambda p, s: max(s.carve, s.cap),
    "carveout": lambda p, s: s.carve,
    "cap": lambda p, s: s.cap,
    "mem_available": lambda p, s: p.mem_available(s),
    "vram": lambda p, s: p.vram_bytes,
    "host_ram": lambda p, s: s.visible,
}

# A profile's consistency rules: (broken, why) in the order they are checked
_CONSISTENCY: tuple[tuple[Callable[[DeviceProfile], bool], Callable[[DeviceProfile], str]], ...] = (
    (lambda p: p.default_os not in p.os, lambda p: f"default_os {p.default_os!r} has no entry in [os]"),
    (lambda p: p.memory_architecture == "carveout" and p.carveout is None,
     lambda p: "a carveout device needs a [carveout] table"),
    (lambda p: p.memory_architecture != "carveout" and p.carveout is not None,
     lambda p: f"a {p.memory_architecture} device has no [carveout] table"),
    (lambda p: p.memory_architecture == "discrete" and not p.vram_bytes, lambda p: "a discrete device needs vram_bytes"),
    (lambda p: p.memory_architecture != "discrete" and bool(p.vram_bytes),
     lambda p: "vram_bytes is for discrete cards; an APU's dedicated memory is its [carveout]"),
    (lambda p: bool(p.carveouts_too_big()),
     lambda p: f"carve-out option {p.carveouts_too_big()[0]} leaves the OS no RAM (ram_bytes {p.ram_bytes})"),
)


def gtt_pages(cap_bytes: int) -> int:
    """ttm.pages_limit for a GTT cap: 4 KiB pages (GiB x 262144)."""
    return int(cap_bytes) // PAGE
