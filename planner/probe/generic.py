"""Profiles for machines no shipped profile matches, built from the probe's facts.

Numbers that could not be read are filled with stated assumptions and listed in
`profile.estimated` so that reports can say so (e.g. bandwidth: pass --bandwidth).
The reserve rules are the ones the shipped profiles use (docs/devices.md, "OS reserve").
"""

from __future__ import annotations

from typing import Any, Callable

from ..device_schema import GIB, DeviceProfile
from ..memory_classes import macos_wired_default
from .facts import GpuFacts, MachineFacts
from .known import AMD_APUS, apple_bandwidth

UNKNOWN_BANDWIDTH = {"cpu": 50.0, "apu": 89.6, "discrete": 300.0, "unified": 100.0}


def fixed_reserve_table(os: str, ram: int) -> dict[str, int]:
    """The shipped profiles' reserve rules (sources in every profile's [[sources]]), measured on
    machines of 32 GiB and more."""
    if os == "linux":
        return {"headless": 4 * GIB, "desktop": 8 * GIB, "daily": max(12 * GIB, int(0.2 * ram))}
    if os == "windows":
        return {"headless": 8 * GIB, "desktop": 10 * GIB, "daily": max(16 * GIB, int(0.25 * ram))}
    return {"headless": 6 * GIB, "desktop": 8 * GIB, "daily": 16 * GIB}


# Below RESERVE_SCALE_FROM the fixed reserves would take most or all of the RAM (8 GiB "desktop" on
# an 8 GB board leaves nothing), although an OS on a small machine also uses less. There they
# scale with the RAM, reserve x RAM / 32 GiB, but never below a floor: what the OS itself needs
# (a headless Linux ~0.5 GiB, a Linux desktop 1.5-2 GiB, Windows 11 idles at 2-4 GiB).
RESERVE_SCALE_FROM = 32 * GIB
RESERVE_FLOOR: dict[str, dict[str, int]] = {
    "linux": {"headless": GIB // 2, "desktop": 3 * GIB // 2, "daily": 2 * GIB},
    "windows": {"headless": 2 * GIB, "desktop": 3 * GIB, "daily": 4 * GIB},
    "macos": {"headless": 3 * GIB // 2, "desktop": 5 * GIB // 2, "daily": 3 * GIB},
}


def scaled_reserve(fixed: int, ram: int, floor: int) -> int:
    """A reserve for a machine of `ram` bytes: the fixed rule from RESERVE_SCALE_FROM up, scaled
    down with the RAM below it, at least `floor` (and never more than the fixed rule)."""
    if ram >= RESERVE_SCALE_FROM:
        return fixed
    scaled = fixed * ram // RESERVE_SCALE_FROM
    return min(fixed, max(floor, scaled // (64 * 1024**2) * (64 * 1024**2)))  # whole 64 MiB


def reserve_table(os: str, ram: int) -> dict[str, int]:
    """Reserves for a profile built from the probe: the shipped rules, scaled for small machines."""
    floors = RESERVE_FLOOR.get(os, RESERVE_FLOOR["linux"])
    return {use: scaled_reserve(v, ram, floors[use]) for use, v in fixed_reserve_table(os, ram).items()}


def scale_reserves(p: DeviceProfile, ram: int) -> bool:
    """Scale a matched shipped profile's reserves to a smaller machine of `ram` bytes (same rule as
    reserve_table); True when anything changed."""
    changed = False
    for os, info in p.os.items():
        floors = RESERVE_FLOOR.get(os, RESERVE_FLOOR["linux"])
        for use, v in list(info.reserve_bytes.items()):
            new = scaled_reserve(v, ram, floors[use])
            if new != v:
                info.reserve_bytes[use] = new
                changed = True
    return changed


def reserve_note(ram: int) -> str:
    return (f"OS reserve scaled to this machine's {ram / GIB:.0f} GiB of RAM: the fixed reserves x RAM / 32 GiB, "
            "with a floor (docs/devices.md, 'OS reserve')")


Draft = dict[str, Any]  # a profile's fields before validation (DeviceProfile.model_validate)


def _cpu() -> dict[str, str]:
    return {"name": "cpu", "reports_as": "host_ram", "reports": "RAM the OS sees"}


def _amd_os(os: str, ram: int) -> Draft:
    if os == "linux":
        cap = {"default_fraction": 0.5, "max_fraction": 0.9, "knob": "ttm.pages_limit",
               "how_to_change": "kernel command line ttm.pages_limit=<GiB x 262144> (amdttm.pages_limit with amdgpu-dkms); reboot"}
        backends = [{"name": "vulkan", "driver": "radv", "reports_as": "carveout_plus_cap",
                     "reports": "llama.cpp's Vulkan backend sums every heap of an integrated GPU"},
                    {"name": "rocm", "reports_as": "max_carveout_cap", "reports": "hipMemGetInfo tracks the GTT limit"},
                    _cpu()]
    else:
        cap = {"default_fraction": 0.5, "how_to_change": "not tunable: Windows gives the GPU half of the RAM it sees"}
        backends = [{"name": "vulkan", "reports_as": "carveout_plus_cap", "reports": "dedicated + shared"}, _cpu()]
    return {"reserve_bytes": reserve_table(os, ram), "gpu_cap": cap, "backends": backends}


def _oses(os: str, allowed: tuple[str, ...]) -> list[str]:
    """The OS read if this kind of machine runs it, else Linux."""
    return [os] if os in allowed else ["linux"]


# --------------------------------------------------------------------------- one builder per machine kind
# Each fills the draft for its kind of machine: the memory architecture, the OS tables, the
# bandwidth (what it could not read is listed in `estimated`).


def _apu_carveout(g: GpuFacts) -> Draft:
    """The firmware's carve-out options as amdgpu lists them, else the one in effect (512 MiB when
    even that is unknown)."""
    carve = g.vram_total_bytes or None
    options = list(g.carveout_options_bytes) or [carve or 512 * 1024**2]
    if carve and carve not in options:
        options.append(carve)
    return {"options_bytes": options, "default_bytes": carve or min(options), "options_note": _options_note(g)}


def _options_note(g: GpuFacts) -> str:
    if g.carveout_options_bytes:
        return "read from amdgpu uma/carveout_options"
    return "only the carve-out in effect is known"


def _amd_apu(facts: MachineFacts, g: GpuFacts, ram: int, os: str, base: Draft, label: str) -> None:
    apu = AMD_APUS.get(g.pci_id or "")
    base.update({
        "name": f"this machine: {label} ({g.name})", "family": apu.family if apu else "amd-apu",
        "memory_architecture": "carveout", "bandwidth_gbps": apu.bandwidth_gbps if apu else UNKNOWN_BANDWIDTH["apu"],
        "carveout": _apu_carveout(g), "os": {o: _amd_os(o, ram) for o in _oses(os, ("linux", "windows"))},
    })
    base["estimated"] += ["bandwidth_gbps", "decode_efficiency"] + ([] if g.carveout_options_bytes else ["carveout.options_bytes"])
    if apu:
        base["sources"].append({"field": "bandwidth_gbps", "ref": "derived", "note": "bus width x usual memory speed (docs/devices.md 1.1)"})


def _apple(facts: MachineFacts, g: GpuFacts, ram: int, os: str, base: Draft, label: str) -> None:
    bw = apple_bandwidth(facts.cpu_name)
    frac = macos_wired_default(ram).before_26  # the wired limit a Mac gives the GPU by default
    base.update({
        "name": f"this machine: {label}", "vendor": "Apple", "family": "apple", "form_factor": "laptop",
        "memory_architecture": "unified", "bandwidth_gbps": bw or UNKNOWN_BANDWIDTH["unified"],
        "os": {"macos": {"reserve_bytes": reserve_table("macos", ram), "gpu_cap": {
            "default_fraction": frac, "max_fraction": round(max(frac, (ram - 8 * GIB) / ram), 4),
            "knob": "iogpu.wired_limit_mb", "how_to_change": "sudo sysctl iogpu.wired_limit_mb=<MiB>; resets at reboot"},
            "backends": [{"name": "metal", "reports_as": "cap", "reports": "recommendedMaxWorkingSetSize"}, _cpu()]}},
        "default_os": "macos", "decode_efficiency": 0.6,
    })
    if bw:
        base["notes"].append(f"Bandwidth {bw:g} GB/s is the {facts.cpu_name}'s lower figure where GPU core "
                             "counts differ (docs/devices.md); pass --bandwidth if yours is the bigger bin")
        base["sources"].append({"field": "bandwidth_gbps", "ref": "docs/devices.md (Apple bandwidth table)"})
    base["estimated"] += ["decode_efficiency"] + ([] if bw else ["bandwidth_gbps"])


def _nvidia_unified(facts: MachineFacts, g: GpuFacts, ram: int, os: str, base: Draft, label: str) -> None:
    thor = g.family == "jetson-thor"
    base.update({
        "name": f"this machine: {label} ({g.name})", "vendor": "NVIDIA", "family": g.family or "nvidia-unified",
        "memory_architecture": "unified", "bandwidth_gbps": 273.0 if thor else UNKNOWN_BANDWIDTH["unified"],
        "os": {"linux": {"reserve_bytes": reserve_table("linux", ram), "gpu_cap": {
            "default_fraction": 1.0, "how_to_change": "no cap: free page cache and other processes"},
            "backends": [{"name": "cuda", "reports_as": "mem_available", "reports": "free = MemAvailable (integrated CUDA device)"}, _cpu()]}},
        "default_os": "linux", "form_factor": "devkit",
    })
    base["estimated"] += ["decode_efficiency"] + ([] if thor else ["bandwidth_gbps"])


def _discrete(facts: MachineFacts, g: GpuFacts, ram: int, os: str, base: Draft, label: str) -> None:
    backend = {"nvidia": "cuda", "amd": "rocm"}.get(g.vendor, "vulkan")
    oses = _oses(os, ("linux", "windows"))
    base.update({
        "name": f"this machine: {label} + {g.name}", "vendor": g.vendor, "family": g.family or f"{g.vendor}-discrete",
        "memory_architecture": "discrete", "vram_bytes": g.vram_total_bytes,
        "bandwidth_gbps": UNKNOWN_BANDWIDTH["discrete"], "host_bandwidth_gbps": UNKNOWN_BANDWIDTH["cpu"],
        "os": {o: {"reserve_bytes": reserve_table(o, ram),
                   "backends": [{"name": backend, "reports_as": "vram", "reports": "the card's VRAM"},
                                {"name": "vulkan", "reports_as": "vram", "reports": "device-local heaps"}, _cpu()]}
               for o in oses},
        "default_os": oses[0],
    })
    base["estimated"] += ["bandwidth_gbps", "decode_efficiency"]
    _ram_bandwidth(facts, base, "host_bandwidth_gbps")


def _cpu_only(facts: MachineFacts, g: GpuFacts | None, ram: int, os: str, base: Draft, label: str) -> None:
    """CPU only (or a GPU we cannot size): one pool the OS manages, no GPU window (no gpu_cap), the
    CPU backend only; decode runs at the RAM's bandwidth (from the DMI tables when readable)."""
    oses = _oses(os, ("linux", "windows", "macos"))
    base.update({
        "name": f"this machine: {label} (CPU only)", "memory_architecture": "unified",
        "bandwidth_gbps": UNKNOWN_BANDWIDTH["cpu"],
        "os": {o: {"reserve_bytes": reserve_table(o, ram), "backends": [_cpu()]} for o in oses},
        "default_os": oses[0],
    })
    base["estimated"] += ["decode_efficiency"]
    _ram_bandwidth(facts, base, "bandwidth_gbps")
    if g is not None:
        base["notes"].append(f"GPU {g.name} found but its memory could not be read: planning for the CPU only")


Builder = Callable[[MachineFacts, GpuFacts, int, str, Draft, str], None]
BUILDERS: dict[str, Builder] = {"amd_apu": _amd_apu, "apple": _apple, "nvidia_unified": _nvidia_unified,
                                "discrete": _discrete}


def machine_kind(g: GpuFacts | None) -> str:
    """Which builder describes a machine with this GPU ("cpu": none that can be sized)."""
    if g is None:
        return "cpu"
    kinds = {("amd", "integrated"): "amd_apu", ("nvidia", "integrated"): "nvidia_unified"}
    if g.vendor == "apple":
        return "apple"
    if (g.vendor, g.kind) in kinds:
        return kinds[(g.vendor, g.kind)]
    return "discrete" if g.kind == "discrete" and g.vram_total_bytes else "cpu"


def _draft(facts: MachineFacts, g: GpuFacts | None, ram: int, os: str) -> Draft:
    return {
        "id": "auto", "vendor": facts.vendor_name or "unknown", "family": "unknown", "form_factor": "desktop",
        "ram_bytes": ram, "default_os": os, "default_use": "desktop", "gpu_name": g.name if g else "",
        "chip": facts.cpu_name, "estimated": [], "notes": ["Built from what the probe read: no shipped profile matches this machine."],
        "sources": [{"field": "live", "ref": "probe", "note": "; ".join(facts.probed) or "nothing readable"}],
    }


def generic_profile(facts: MachineFacts, ram: int) -> DeviceProfile:
    """The best profile we can state for an unrecognised machine."""
    os = facts.system if facts.system in ("linux", "windows", "macos") else "linux"
    g = facts.gpu()
    base = _draft(facts, g, ram, os)
    label = facts.cpu_name or facts.model_name or "unknown machine"
    build = BUILDERS.get(machine_kind(g))
    if g is not None and build is not None:
        build(facts, g, ram, os, base, label)
    else:
        _cpu_only(facts, g, ram, os, base, label)
    _assumption_notes(base, ram)
    return DeviceProfile.model_validate(base)


def _assumption_notes(base: Draft, ram: int) -> None:
    """Say what the draft assumes: reserves scaled to a small machine, a bandwidth not read."""
    if ram < RESERVE_SCALE_FROM:
        base["notes"].append(reserve_note(ram))
        base["sources"].append({"field": "os", "ref": "derived", "note": reserve_note(ram)})
    if "bandwidth_gbps" in base["estimated"]:
        base["notes"].append(f"Memory bandwidth unknown: assumed {base['bandwidth_gbps']:g} GB/s; pass --bandwidth for speed estimates")


def _ram_bandwidth(facts: MachineFacts, base: Draft, key: str) -> None:
    """System RAM bandwidth into `key`: from the RAM modules the firmware lists (planner.probe.dmi),
    else the stated assumption (UNKNOWN_BANDWIDTH["cpu"]) marked as estimated."""
    from .dmi import ram_bandwidth

    found = ram_bandwidth(facts.memory_modules) if facts.memory_modules else None
    if found is None:
        base[key] = UNKNOWN_BANDWIDTH["cpu"]
        base["estimated"].append(key)
        if key == "host_bandwidth_gbps":
            base["notes"].append(f"System RAM bandwidth unknown: assumed {UNKNOWN_BANDWIDTH['cpu']:g} GB/s for "
                                 "layers kept on the CPU (RAM modules readable with root: dmidecode)")
        return
    gbps, how = found
    base[key] = gbps
    base["sources"].append({"field": key, "ref": "derived", "note": f"{facts.memory_modules_source}: {how}"})
    base["notes"].append(f"RAM bandwidth {gbps:g} GB/s peak from {facts.memory_modules_source}: {how}")
