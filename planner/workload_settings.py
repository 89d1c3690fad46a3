"""The machine settings a workload weighs on one device, how each is worded, and what moving
between two of them costs.

A BIOS carve-out (and on Linux the GTT limit) changes only with a reboot, so a machine is set once
for the models its owner runs. Candidates per device, by what its memory kind lets a user set
(planner.memory_kinds): each BIOS carve-out option (or the one fixed with --carveout); on a unified
device with a raisable wired limit, the default limit and the raise the models need; elsewhere the
one configuration there is. What the user fixed (--gpu-cap) stays fixed on every candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

from .memory_classes import knob
from .units import GIB, fmt_bios_size
from .workload_types import Setting

if TYPE_CHECKING:
    from .device_schema import OS, DeviceProfile
    from .plan_types import CapChange, DevicePlan
    from .search import DeviceSetup, Search

MIB = 1 << 20
SpecKind = Literal["carveout", "cap_default", "cap_raise", "as_is"]
CARVEOUT_CHANGE = ("the BIOS carve-out (UMA frame buffer)", True)  # (words, needs a reboot)


@dataclass(frozen=True)
class SettingSpec:
    """A candidate setting before planning: a carve-out and/or a fixed GPU cap (None = the rule)."""

    carveout_bytes: int | None
    gpu_cap_bytes: int | None
    kind: SpecKind
    user_cap: bool = False  # the cap is the one the user fixed (--gpu-cap)


# --------------------------------------------------------------------------- candidates


def _carveout_specs(search: Search, dev: DeviceSetup, cap: int | None, user: bool) -> list[SettingSpec]:
    return [SettingSpec(c, cap, "carveout", user) for c in search.carveouts(dev.profile)]


def _cap_specs(search: Search, dev: DeviceSetup, cap: int | None, user: bool) -> list[SettingSpec]:
    if not search.tunable(dev):
        return _as_is(search, dev, cap, user)
    default = dev.profile.gpu_cap_bytes(dev.os)
    return [SettingSpec(None, default, "cap_default"), SettingSpec(None, None, "cap_raise")]


def _as_is(search: Search, dev: DeviceSetup, cap: int | None, user: bool) -> list[SettingSpec]:
    return [SettingSpec(None, cap, "as_is", user)]


# by what a user sets on the device's memory kind (MemoryKind.setting)
SPECS: dict[str, Callable[[Search, DeviceSetup, int | None, bool], list[SettingSpec]]] = {
    "carveout": _carveout_specs,
    "gpu_cap": _cap_specs,
    "none": _as_is,
}


def candidate_specs(search: Search, dev: DeviceSetup) -> list[SettingSpec]:
    """The settings to weigh on this device (see the module docstring)."""
    _, cap = search.fixed_setting(dev.profile)
    return SPECS[dev.kind.setting](search, dev, cap, search.user_fixed_cap)


# --------------------------------------------------------------------------- words


def cap_knob(profile: DeviceProfile, os_: OS) -> str | None:
    info = profile.os_info(os_).gpu_cap
    return info.knob if info is not None else None


def bios_line(profile: DeviceProfile, carve: int | None) -> str | None:
    if carve is None or profile.carveout is None:
        return None
    return (f"UMA frame buffer {fmt_bios_size(carve)}, OS keeps {fmt_bios_size(profile.os_visible_ram(carve))}\n"
            f"{profile.carveout.how_to_change}")


def _cap_words(spec: SettingSpec, label: str, cap_change: CapChange | None, cap_bytes: int | None) -> str | None:
    if cap_change is not None:
        return f"{label} {cap_change.cap_bytes / GIB:.0f} GiB"
    if spec.kind == "cap_default" and cap_bytes:
        return f"{label} default ({cap_bytes / GIB:.0f} GiB)"
    if spec.user_cap and cap_bytes:
        return f"{label} {cap_bytes / GIB:.0f} GiB (--gpu-cap)"
    return None


def _setting_id(spec: SettingSpec, cap_change: CapChange | None) -> str:
    """Stable within a plan: "uma=32768m", "cap=49152m", "cap=default", "as-is"."""
    ident = [f"uma={spec.carveout_bytes // MIB}m"] if spec.carveout_bytes is not None else []
    if cap_change is not None:
        ident.append(f"cap={cap_change.cap_bytes // MIB}m")
    elif spec.kind == "cap_default":
        ident.append("cap=default")
    return ",".join(ident) or "as-is"


def make_setting(spec: SettingSpec, profile: DeviceProfile, os_: OS, cap_change: CapChange | None,
                 cap_bytes: int | None) -> Setting:
    """The setting as the user applies it: the carve-out (what the OS keeps) and the GPU limit."""
    carve = spec.carveout_bytes
    keeps = profile.os_visible_ram(carve) if carve is not None else None
    parts = [f"{fmt_bios_size(carve)} / OS {fmt_bios_size(profile.os_visible_ram(carve))}" if carve is not None else None,
             _cap_words(spec, knob(cap_knob(profile, os_) or "").label, cap_change, cap_bytes)]
    return Setting(id=_setting_id(spec, cap_change), label=", ".join(p for p in parts if p) or "as it is (nothing to set)",
                   carveout_bytes=carve, os_keeps_bytes=keeps, gpu_cap_bytes=cap_bytes, cap_change=cap_change,
                   bios=bios_line(profile, carve))


def setting_of(spec: SettingSpec, plans: list[DevicePlan], profile: DeviceProfile, os_: OS) -> Setting:
    """One setting for every model on this candidate: the largest GPU-limit raise any of them needs
    (a raise is a ceiling, not a reservation: the others still fit under it)."""
    changes = [p.recommendation.cap_change for p in plans
               if p.recommendation.cap_change is not None and p.recommendation.tier != "no_fit"]
    change = max(changes, key=lambda c: c.cap_bytes) if changes else None
    # a cap the candidate fixes holds as far as the RAM the OS sees at its carve-out (as placed)
    cap = change.cap_bytes if change else profile.gpu_cap_bytes(os_, spec.carveout_bytes, spec.gpu_cap_bytes)
    return make_setting(spec, profile, os_, change, cap)


# --------------------------------------------------------------------------- switching


def _cap_set(s: Setting) -> int | None:
    """The GPU limit a user sets for this setting (None: the OS default)."""
    return s.cap_change.cap_bytes if s.cap_change is not None else None


def changes_between(a: Setting, b: Setting, profile: DeviceProfile, os_: OS) -> list[tuple[str, bool]]:
    """What differs between two settings: (words, reboot) per knob. A GPU limit that follows the
    carve-out by itself (Windows' shared window, a default GTT) is no separate change."""
    out = []
    if a.carveout_bytes != b.carveout_bytes:
        out.append(CARVEOUT_CHANGE)
    name = cap_knob(profile, os_)
    if name is not None and _cap_set(a) != _cap_set(b):
        k = knob(name)
        out.append((k.change, k.reboot))
    return out


def switch_words(changes: list[tuple[str, bool]]) -> tuple[str, bool]:
    reboot = any(r for _, r in changes)
    what = " and ".join(w for w, _ in changes)
    return (f"changing {what}: a reboot each way" if reboot else f"changing {what}: no reboot"), reboot
