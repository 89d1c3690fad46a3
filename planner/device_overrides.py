"""Command-line overrides of a device profile (--os, --use, --bandwidth, --host-bandwidth, --ram,
--carveout, --vram, --gpu-cap): one function per flag, applied in table order (OVERRIDES).

Each function checks its value against the profile, sets it, and returns the words the reports
show for it (`profile.overrides[flag]`, display only); what the value implies goes to the notes.
A carve-out the firmware list does not contain is accepted with a note (the lists are incomplete
and users know their BIOS); one that leaves the OS no RAM, or a carve-out on a device without one,
is rejected. The planner learns which setting the user fixed from its request
(PlanRequest.carveout_bytes / gpu_cap_bytes), not from these display strings.
"""

from __future__ import annotations

from typing import Callable

from pydantic import ValidationError

from .device_schema import GIB, OS, OSES, USES, DeviceProfile, Use
from .errors import DeviceError, DeviceFlagError, InputError
from .profile_parse import validation_line
from .units import fmt_auto, parse_size

# Firmware never offers a carve-out above this share of RAM (AMD VGM: 75 %; 96 of 128 GB).
MAX_CARVEOUT_SHARE = 0.75
OS_ROOM_BYTES = 2 * GIB  # a carve-out must leave the OS at least this much of the RAM
MIN_VRAM_BYTES = 256 * 1024**2
_OS_WORDS: dict[str, OS] = {"mac": "macos", "darwin": "macos", "osx": "macos", "win": "windows",
                            **{o: o for o in OSES}}

Value = int | float | str
Override = Callable[[DeviceProfile, Value, list[str]], str]  # (profile, value, notes) -> display words


def _size(value: Value, flag: str) -> int:
    return parse_size(value if isinstance(value, int) else str(value), what=flag)


def _apple_default_fraction(ram_bytes: int) -> float:
    """Older macOS default wired limit: 2/3 of RAM below 36 GB, 3/4 at 36 GB and above."""
    return 2 / 3 if ram_bytes < 36 * GIB else 0.75


def _gbps(value: Value, flag: str) -> float:
    try:
        bw = float(str(value).lower().replace("gb/s", "").strip())
    except ValueError:
        raise InputError(f"invalid {flag} {value!r}: give GB/s, e.g. 256") from None
    if not 0 < bw < 100_000:
        raise InputError(f"invalid {flag} {value!r}: must be a positive GB/s figure below 100000")
    return bw


def _measured(p: DeviceProfile, field: str) -> None:
    """A value the user gave is no longer one of the profile's estimates."""
    if field in p.estimated:
        p.estimated.remove(field)


# --------------------------------------------------------------------------- one function per flag


def set_os(p: DeviceProfile, value: Value, notes: list[str]) -> str:
    word = str(value).strip().lower()
    key = _OS_WORDS.get(word)
    if key is None:
        raise InputError(f"invalid --os {value!r}: use linux, windows or macos")
    if key not in p.os:
        raise DeviceFlagError(f"{p.id} has no {key} entry (it runs {', '.join(p.os)})",
                              hint=f"use --os {' or --os '.join(p.os)}, or write a profile with a [os.{key}] table")
    p.default_os = key
    return key


def set_use(p: DeviceProfile, value: Value, notes: list[str]) -> str:
    key = str(value).strip().lower()
    use: Use | None = next((u for u in USES if u == key), None)
    if use is None:
        raise InputError(f"invalid --use {value!r}: use one of {', '.join(USES)}")
    p.default_use = use
    return use


def set_bandwidth(p: DeviceProfile, value: Value, notes: list[str]) -> str:
    p.bandwidth_gbps = _gbps(value, "--bandwidth")
    _measured(p, "bandwidth_gbps")
    return f"{p.bandwidth_gbps:g} GB/s"


def set_host_bandwidth(p: DeviceProfile, value: Value, notes: list[str]) -> str:
    """System RAM for layers and experts kept on the CPU: DDR4-3200 dual channel is 51.2 GB/s,
    DDR5-5600 89.6; it decides --n-cpu-moe speed on a discrete card."""
    p.host_bandwidth_gbps = _gbps(value, "--host-bandwidth")
    _measured(p, "host_bandwidth_gbps")
    return f"{p.host_bandwidth_gbps:g} GB/s"


def _carveouts_for_ram(p: DeviceProfile, ram: int, notes: list[str]) -> None:
    """Firmware offers no carve-out above MAX_CARVEOUT_SHARE of the RAM: drop those options (a
    carve-out read on the machine that the new RAM could not hold goes too)."""
    if p.carveout is None:
        return
    c = p.carveout
    kept = [o for o in c.options_bytes if o <= MAX_CARVEOUT_SHARE * ram] or [min(c.options_bytes)]
    if len(kept) < len(c.options_bytes):
        notes.append(f"carve-out options above {MAX_CARVEOUT_SHARE:.0%} of {fmt_auto(ram)} dropped")
    c.options_bytes = kept
    c.default_bytes = c.default_bytes if c.default_bytes in kept else max(kept)  # every kept option is below it
    _forget_live_carveout(p, ram)


def _forget_live_carveout(p: DeviceProfile, ram: int) -> None:
    """A carve-out read on the machine that the new RAM could not hold is no longer in effect."""
    if p.live is not None and (p.live.carveout_bytes or 0) >= ram:
        p.live.carveout_bytes = None


def _mac_wired_default_for_ram(p: DeviceProfile, ram: int) -> None:
    mac = p.os.get("macos")
    cap = mac.gpu_cap if mac is not None else None
    if cap is None or cap.knob != "iogpu.wired_limit_mb":
        return
    cap.default_fraction = _apple_default_fraction(ram)
    if cap.max_fraction is not None and cap.max_fraction < cap.default_fraction:
        cap.max_fraction = cap.default_fraction


def set_ram(p: DeviceProfile, value: Value, notes: list[str]) -> str:
    ram = _size(value, "--ram")
    if ram < 1 * GIB:
        raise InputError(f"invalid --ram {value!r}: at least 1 GiB")
    p.ram_bytes = ram
    _measured(p, "ram_bytes")
    if p.live is not None:
        p.live.os_visible_ram_bytes = None
    if p.firmware_reserved_bytes >= ram // 2:
        p.firmware_reserved_bytes = 0
    _carveouts_for_ram(p, ram, notes)
    _mac_wired_default_for_ram(p, ram)
    notes.append("OS reserves are the profile's absolute figures; check them for the new RAM size")
    return fmt_auto(ram)


def _check_carveout(p: DeviceProfile, carve: int) -> None:
    if p.carveout is None:
        alt = "--vram" if p.memory_architecture == "discrete" else "--gpu-cap"
        raise DeviceFlagError(f"{p.id} has no BIOS carve-out ({p.memory_architecture} memory)",
                              hint=f"use {alt} to change its GPU memory")
    if carve <= 0:
        raise InputError("invalid --carveout 0: the smallest real carve-out is 512 MB "
                         "(BIOS 'Auto' can make runtimes see 0 VRAM)", hint="use --carveout 512m")
    room = p.ram_bytes - p.firmware_reserved_bytes - OS_ROOM_BYTES  # the most a carve-out may take
    if carve >= room:
        fitting = max((o for o in p.carveout.options_bytes if o < room), default=None)
        hint = (f"largest option that leaves the OS 2 GiB: {fmt_auto(fitting)}" if fitting is not None
                else "no carve-out option leaves the OS 2 GiB of this RAM; check --ram")
        raise DeviceFlagError(f"--carveout {fmt_auto(carve)} leaves the OS less than 2 GiB of {fmt_auto(p.ram_bytes)}",
                              hint=hint)


def set_carveout(p: DeviceProfile, value: Value, notes: list[str]) -> str:
    carve = _size(value, "--carveout")
    _check_carveout(p, carve)
    assert p.carveout is not None  # _check_carveout refuses a device without one
    if carve not in p.carveout.options_bytes:
        known = ", ".join(fmt_auto(o) for o in p.carveout.options_bytes)
        notes.append(f"carve-out {fmt_auto(carve)} is not among the firmware options this profile knows "
                     f"({known}); planning with it as given")
        if carve > MAX_CARVEOUT_SHARE * p.ram_bytes:
            notes.append(f"no known firmware offers more than {MAX_CARVEOUT_SHARE:.0%} of RAM as carve-out")
        p.carveout.options_bytes = sorted(set(p.carveout.options_bytes) | {carve})
    p.carveout.default_bytes = carve
    if p.live is not None:
        p.live.carveout_bytes = carve
    _measured(p, "carveout.default_bytes")
    return fmt_auto(carve)


def set_vram(p: DeviceProfile, value: Value, notes: list[str]) -> str:
    vram = _size(value, "--vram")
    if p.memory_architecture != "discrete":
        alt = "--carveout" if p.memory_architecture == "carveout" else "--gpu-cap"
        raise DeviceFlagError(f"{p.id} has no discrete VRAM ({p.memory_architecture} memory)",
                              hint=f"use {alt} instead")
    if vram < MIN_VRAM_BYTES:
        raise InputError(f"invalid --vram {value!r}: at least 256m")
    p.vram_bytes = vram
    return fmt_auto(vram)


def _cap_notes(p: DeviceProfile, cap: int, visible: int, notes: list[str]) -> None:
    """What a cap the OS does not let users set, or one above the safe maximum, implies."""
    info = p.os_info().gpu_cap
    assert info is not None
    if info.knob is None:
        notes.append(f"{p.default_os} does not let users change this cap; planning with {fmt_auto(cap)} anyway")
    elif info.max_fraction is not None and cap > info.max_fraction * visible:
        safe = int(info.max_fraction * visible)
        notes.append(f"--gpu-cap {fmt_auto(cap)} is above this profile's safe maximum of {fmt_auto(safe)} "
                     f"({info.max_fraction:.0%} of what the OS sees): planning with it as given, but the "
                     f"OS may stall or kill processes under memory pressure")


def set_gpu_cap(p: DeviceProfile, value: Value, notes: list[str]) -> str:
    cap = _size(value, "--gpu-cap")
    info = p.os_info().gpu_cap
    if info is None:
        raise DeviceFlagError(f"{p.id} on {p.default_os} has no shared-memory cap to set",
                              hint="--gpu-cap applies to APUs (GTT / shared memory) and unified machines (wired limit)")
    if cap <= 0:
        raise InputError(f"invalid --gpu-cap {value!r}: must be more than 0", hint="e.g. --gpu-cap 96g")
    visible = p.os_visible_ram()
    if cap > visible:
        notes.append(f"--gpu-cap {fmt_auto(cap)} is more than the {fmt_auto(visible)} the OS sees; clipped")
        cap = visible
    _cap_notes(p, cap, visible, notes)
    info.setting_bytes = cap
    if p.live is not None:
        p.live.gpu_cap_bytes = cap
        p.live.gpu_cap_is_default = False
    return fmt_auto(cap)


# In the order they apply: --os first (--gpu-cap is per OS), --ram before what depends on the RAM.
OVERRIDES: dict[str, Override] = {
    "os": set_os,
    "use": set_use,
    "bandwidth": set_bandwidth,
    "host_bandwidth": set_host_bandwidth,
    "ram": set_ram,
    "carveout": set_carveout,
    "vram": set_vram,
    "gpu_cap": set_gpu_cap,
}


def apply_overrides(profile: DeviceProfile, *, ram: int | str | None = None, carveout: int | str | None = None,
                    os: str | None = None, vram: int | str | None = None, gpu_cap: int | str | None = None,
                    use: str | None = None, bandwidth: float | str | None = None,
                    host_bandwidth: float | str | None = None) -> DeviceProfile:
    """A copy of `profile` with command-line overrides applied and recorded in `overrides`/`notes`."""
    given: dict[str, Value | None] = {"os": os, "use": use, "bandwidth": bandwidth, "host_bandwidth": host_bandwidth,
                                      "ram": ram, "carveout": carveout, "vram": vram, "gpu_cap": gpu_cap}
    p = profile.model_copy(deep=True)
    if p.based_on is None and any(v is not None for v in given.values()):
        p.based_on = profile.id
    notes: list[str] = []
    for flag, apply in OVERRIDES.items():
        value = given[flag]
        if value is not None:
            p.overrides[flag] = apply(p, value, notes)
    return _revalidated(p, notes)


def _revalidated(p: DeviceProfile, notes: list[str]) -> DeviceProfile:
    """Overrides must leave a consistent profile: validated again, with the notes added."""
    try:
        p = DeviceProfile.model_validate(p.model_dump())
    except ValidationError as e:
        raise DeviceError(validation_line(f"{p.id} after overrides", e)) from None
    p.notes.extend(n for n in notes if n not in p.notes)
    p.override_notes.extend(n for n in notes if n not in p.override_notes)
    return p
