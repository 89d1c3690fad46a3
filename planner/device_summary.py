"""The device as a plan states it: its summary, and the numbers the plan takes as given, in words
(the OS reserve, profile values marked as estimates, command-line overrides, the macOS wired-limit
default, and what --device auto read from the machine)."""

from __future__ import annotations

from typing import Callable

from .device_schema import DeviceProfile, LiveConfig
from .fit_types import FitConfig
from .memory_classes import macos_wired_default
from .plan_types import DeviceSummary
from .units import fmt_bios_size, fmt_bytes

# Profile fields marked `estimated` that change a plan, and how to replace the assumption.
_ESTIMATED_TEXT: dict[str, Callable[[DeviceProfile], str]] = {
    "ram_bytes": lambda p: f"RAM {fmt_bytes(p.ram_bytes, digits=0)} (a setting of this profile: --ram SIZE for yours)",
    "host_bandwidth_gbps": lambda p: (f"system RAM bandwidth {p.host_bandwidth_gbps:g} GB/s (speed of layers on "
                                      f"the CPU)") if p.host_bandwidth_gbps else "system RAM bandwidth",
    "decode_efficiency": lambda p: f"decode efficiency {p.decode_efficiency:g} of peak bandwidth (speed estimates)",
    "bandwidth_gbps": lambda p: f"memory bandwidth {p.bandwidth_gbps:g} GB/s (speed estimates)",
    "firmware_reserved_bytes": lambda p: f"{fmt_bytes(p.firmware_reserved_bytes)} of RAM reserved by the firmware",
    "vram_bytes": lambda p: f"VRAM {fmt_bytes(p.vram_bytes or 0, digits=0)} (--vram SIZE)",
    "gpu_tflops_fp16": lambda p: f"GPU FP16 peak {p.gpu_tflops_fp16:g} TFLOPS (prefill estimates)",
}
# estimated fields that do not change a plan: every carve-out option is planned, power is not used
_ESTIMATED_UNUSED = {"carveout.default_bytes", "power_w"}
_LIVE_TEXT: dict[str, Callable[[int], str]] = {
    "carveout_bytes": lambda v: f"UMA frame buffer {fmt_bios_size(v)}",
    "gpu_cap_bytes": lambda v: f"GPU cap {fmt_bytes(v)}",
    "os_visible_ram_bytes": lambda v: f"OS sees {fmt_bytes(v)}",
    "mem_available_bytes": lambda v: f"{fmt_bytes(v)} available",
    "vram_used_bytes": lambda v: f"{fmt_bytes(v)} of VRAM in use",
}


def _estimates(profile: DeviceProfile) -> list[str]:
    est = [_ESTIMATED_TEXT[f](profile) if f in _ESTIMATED_TEXT else f"{f} (estimate)"
           for f in profile.estimated if f not in _ESTIMATED_UNUSED]
    return ["profile estimates, not measurements: " + "; ".join(est)] if est else []


def _overrides(profile: DeviceProfile) -> list[str]:
    if not profile.overrides:
        return []
    return ["set on the command line: " + ", ".join(f"{k} {v}" for k, v in profile.overrides.items()),
            *profile.override_notes]


def _planned_at_mac_default(profile: DeviceProfile, os: str, cap_fixed: bool) -> bool:
    """A Mac planned at the default wired limit: no reading of this machine's, no cap the user fixed."""
    mac = profile.os.get("macos")
    cap = mac.gpu_cap if mac is not None else None
    read = profile.live is not None and bool(profile.live.gpu_cap_bytes)
    return os == "macos" and cap is not None and cap.knob == "iogpu.wired_limit_mb" and not read and not cap_fixed


def _mac_wired_default(profile: DeviceProfile, os: str, cap_fixed: bool) -> list[str]:
    if not _planned_at_mac_default(profile, os, cap_fixed):
        return []
    d = macos_wired_default(profile.ram_bytes)
    visible = profile.os_visible_ram()
    return [f"GPU wired limit: planned with the default before macOS 26, {d.before_26:.0%} of RAM "
            f"({fmt_bytes(int(d.before_26 * visible), digits=0)}); macOS 26 gives about "
            f"{d.from_26:.0%} ({fmt_bytes(int(d.from_26 * visible), digits=0)}); --device auto reads yours"]


def _live(live: LiveConfig | None) -> list[str]:
    if live is None:
        return []
    seen = [_live_words(live, key, words, value) for key, words in _LIVE_TEXT.items()
            if (value := getattr(live, key, None)) is not None]
    return ["read from this machine (--device auto): " + ", ".join(seen)] if seen else []


def _live_words(live: LiveConfig, key: str, words: Callable[[int], str], value: int) -> str:
    """One value read from the machine (the GPU cap marked when it is the default)."""
    default = key == "gpu_cap_bytes" and bool(live.gpu_cap_is_default)
    return words(value) + (" (default)" if default else "")


def assumptions(profile: DeviceProfile, base: FitConfig, cap_fixed: bool = False) -> list[str]:
    """The numbers a plan takes as given, in words: the OS reserve (the biggest lever a user
    controls), profile values marked as estimates, command-line overrides, and what --device auto
    read from the machine. cap_fixed: the user fixed the GPU cap (--gpu-cap)."""
    reserve = [f"the OS and your apps keep {fmt_bytes(profile.reserve(base.os, base.use))} of RAM "
               f"({base.os}, {base.use} use; change with --use or --os)"]
    return (reserve + _estimates(profile) + _overrides(profile) + _mac_wired_default(profile, base.os, cap_fixed)
            + _live(profile.live))


def device_summary(profile: DeviceProfile, base: FitConfig, cap_fixed: bool = False) -> DeviceSummary:
    live = None
    if profile.live is not None:
        live = {k: v for k, v in profile.live.model_dump().items() if v not in (None, "", [])}
    return DeviceSummary(
        id=profile.id, name=profile.name, memory_architecture=profile.memory_architecture, os=base.os, use=base.use,
        backend=base.backend, ram_bytes=profile.ram_bytes, vram_bytes=profile.vram_bytes,
        bandwidth_gbps=profile.bandwidth_gbps, reserve_bytes=profile.reserve(base.os, base.use),
        carveout_options_bytes=profile.carveout_options(), overrides=dict(profile.overrides),
        estimated=list(profile.estimated), based_on=profile.based_on, live=live,
        assumptions=assumptions(profile, base, cap_fixed),
    )
