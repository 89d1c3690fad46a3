"""Turn probe facts into a DeviceProfile: recognise a shipped profile and lay the live
configuration (carve-out, GTT / shared / wired limit, RAM the OS sees) over it, or build a
generic one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..device_schema import MIB, OS, OSES, DeviceProfile, GpuCap, LiveConfig, ProbeMatch, Source
from ..device_overrides import apply_overrides
from ..profile_catalog import Catalog, ProfileEntry, load_catalog
from ..errors import DeviceError
from ..units import fmt_auto
from .facts import GpuFacts, MachineFacts
from .generic import generic_profile, reserve_note, scale_reserves
from .known import installed_ram_from_visible

DEFAULT_GTT_TOLERANCE = 0.03  # GTT within 3 % of half the visible RAM = the kernel default


@dataclass
class Recognition:
    entry: ProfileEntry | None
    exact_ram: bool = False
    why: str = ""


def _gpu_hit(m: ProbeMatch, facts: MachineFacts) -> bool:
    return (any(g.pci_id and g.pci_id in m.pci_ids for g in facts.gpus)
            or any(re.search(p, g.name, re.IGNORECASE) for p in m.gpu_patterns for g in facts.gpus if g.name))


def _cpu_hit(m: ProbeMatch, facts: MachineFacts) -> bool:
    return bool(facts.cpu_name) and any(re.search(p, facts.cpu_name, re.IGNORECASE) for p in m.cpu_patterns)


def _matches(m: ProbeMatch, facts: MachineFacts) -> bool:
    """Family-level hit: a PCI id, the CPU name or a GPU name."""
    return _gpu_hit(m, facts) or _cpu_hit(m, facts)


def _model_hit(m: ProbeMatch, facts: MachineFacts) -> bool:
    text = f"{facts.model_name} {facts.vendor_name}"
    return any(re.search(p, text, re.IGNORECASE) for p in m.model_patterns)


Score = tuple[bool, bool, int, int, str]  # same RAM, model name hit, priority, RAM nearness, id


def _score(prof: DeviceProfile, facts: MachineFacts, ram: int) -> Score | None:
    """How well a profile fits this machine; None when it is another machine (other silicon, an OS
    it does not describe, other RAM where the RAM makes the product)."""
    m = prof.match
    if m is None or not _matches(m, facts) or not _runs_this_os(prof, facts):
        return None
    exact = prof.memory_architecture == "discrete" or prof.ram_bytes == ram  # a card's host RAM is the user's
    if not exact and m.ram_must_match:
        return None
    return (exact, _model_hit(m, facts), m.priority, -abs(prof.ram_bytes - ram), prof.id)


def _runs_this_os(prof: DeviceProfile, facts: MachineFacts) -> bool:
    """The profile describes the OS the probe found (any, when the OS was not recognised)."""
    return facts.system not in OSES or facts.system in prof.os


def recognise(facts: MachineFacts, catalog: Catalog, ram: int) -> Recognition:
    """The shipped profile for this machine: same silicon, then same RAM, then same model name."""
    scored = [(score, entry) for entry in catalog.entries.values()
              if (score := _score(entry.profile, facts, ram)) is not None]
    if not scored:
        return Recognition(None, why="no shipped profile matches this CPU/GPU")
    best, entry = max(scored, key=lambda t: t[0])
    why = f"matched {entry.profile.id}" + ("" if best[0] else f" (its RAM differs; using the {fmt_auto(ram)} found here)")
    return Recognition(entry, exact_ram=best[0], why=why)


def installed_ram(facts: MachineFacts) -> int | None:
    """DRAM fitted: what the OS sees plus an APU carve-out, rounded to a size machines are sold with."""
    if facts.ram_installed_bytes:
        return facts.ram_installed_bytes
    if not facts.ram_visible_bytes:
        return None
    apu = facts.integrated_amd()
    carve = apu.vram_total_bytes if apu is not None and apu.vram_total_bytes else 0
    return installed_ram_from_visible(facts.ram_visible_bytes + carve)


def _is_default_gtt(facts: MachineFacts, gtt: int) -> bool:
    """Judged by the value in effect, not by the settings: a ttm.* option the amdttm module ignores
    leaves the default in place."""
    visible = facts.ram_visible_bytes or 0
    return visible > 0 and abs(gtt - visible / 2) <= DEFAULT_GTT_TOLERANCE * visible


_OSES: dict[str, OS] = {o: o for o in OSES}


def _live(facts: MachineFacts) -> LiveConfig:
    return LiveConfig(os=_OSES.get(facts.system, "linux"),
                      os_visible_ram_bytes=facts.ram_visible_bytes, mem_available_bytes=facts.mem_available_bytes,
                      swap_free_bytes=facts.swap_free_bytes, kernel=facts.kernel, probed=list(facts.probed))


def _measured(p: DeviceProfile, field: str) -> None:
    if field in p.estimated:
        p.estimated.remove(field)


def _firmware_reserved(p: DeviceProfile, facts: MachineFacts, ram: int, carve: int = 0) -> None:
    """RAM no OS sees: installed, less the carve-out, less what the OS sees."""
    if facts.ram_visible_bytes:
        p.firmware_reserved_bytes = max(0, ram - carve - facts.ram_visible_bytes)


def _carveout_in_effect(p: DeviceProfile, apu: GpuFacts | None, live: LiveConfig) -> None:
    """The firmware's carve-out options as amdgpu lists them, and the carve-out in effect."""
    carveout = p.carveout
    assert carveout is not None
    if apu is not None and apu.carveout_options_bytes:
        carveout.options_bytes = sorted(set(apu.carveout_options_bytes))
        carveout.options_note = "read from this machine's amdgpu uma/carveout_options"
        carveout.default_bytes = carveout.options_bytes[0]
        _measured(p, "carveout.options_bytes")
    carve = apu.vram_total_bytes if apu is not None else None
    live.carveout_bytes = carve
    if not carve:  # unknown, or 0 (BIOS "Auto": doctor says so)
        return
    if carve not in carveout.options_bytes:
        carveout.options_bytes = sorted(set(carveout.options_bytes) | {carve})
        p.notes.append(f"the carve-out in effect ({fmt_auto(carve)}) is not in the firmware list this profile knows")
    carveout.default_bytes = carve
    _measured(p, "carveout.default_bytes")


def _window_in_effect(cap: GpuCap | None, apu: GpuFacts | None, facts: MachineFacts, live: LiveConfig) -> None:
    """The GTT limit (Linux) or the shared window (Windows) in effect; a raised GTT is the setting."""
    if apu is None:
        return
    if live.os == "linux" and apu.gtt_total_bytes:
        _gtt_in_effect(cap, apu.gtt_total_bytes, facts, live)
    elif live.os == "windows" and apu.shared_bytes:
        live.gpu_cap_bytes = apu.shared_bytes
        live.gpu_cap_is_default = True


def _gtt_in_effect(cap: GpuCap | None, gtt: int, facts: MachineFacts, live: LiveConfig) -> None:
    """Linux: the GTT size is the GPU cap in effect; a raised one is the cap's setting too."""
    live.gpu_cap_bytes = gtt
    live.gpu_cap_is_default = _is_default_gtt(facts, gtt)
    if cap is not None and not live.gpu_cap_is_default:
        cap.setting_bytes = gtt


def _amdttm_knob(cap: GpuCap | None, facts: MachineFacts, os: str) -> None:
    """amdgpu-dkms loads its own TTM module, which reads amdttm.* and ignores ttm.* options."""
    if os == "linux" and cap is not None and cap.knob == "ttm.pages_limit" and facts.amdttm_loaded:
        cap.knob = "amdttm.pages_limit"
        cap.how_to_change = ("amdttm.pages_limit=<GiB x 262144> on the kernel command line (this machine runs "
                             "amdgpu-dkms, whose amdttm module ignores ttm.pages_limit); reboot")


def _cap_on(p: DeviceProfile, os: OS) -> GpuCap | None:
    info = p.os.get(os)
    return info.gpu_cap if info is not None else None


def _live_carveout(p: DeviceProfile, facts: MachineFacts, ram: int, live: LiveConfig) -> None:
    if p.carveout is None:
        return
    apu = facts.integrated_amd() or facts.gpu()
    _carveout_in_effect(p, apu, live)
    if apu is not None and apu.vram_total_bytes is not None:
        _firmware_reserved(p, facts, ram, apu.vram_total_bytes)
    cap = _cap_on(p, live.os)
    _amdttm_knob(cap, facts, live.os)
    _window_in_effect(cap, apu, facts, live)


def _live_unified(p: DeviceProfile, facts: MachineFacts, ram: int, live: LiveConfig) -> None:
    """The wired limit a Mac runs with (0: the default policy); the working set it gives."""
    _firmware_reserved(p, facts, ram)
    cap = _cap_on(p, live.os)
    if live.os == "macos" and cap is not None:
        if facts.wired_limit_mb:
            cap.setting_bytes = facts.wired_limit_mb * MIB
            live.gpu_cap_is_default = False
        else:
            live.gpu_cap_is_default = facts.wired_limit_mb == 0 or None
    if cap is not None:
        live.gpu_cap_bytes = p.gpu_cap_bytes(live.os)


def _live_discrete(p: DeviceProfile, facts: MachineFacts, ram: int, live: LiveConfig) -> None:
    """The card's VRAM as the driver reports it, and what is in use on it now."""
    g = facts.gpu()
    if g is None or g.kind != "discrete":
        return
    _firmware_reserved(p, facts, ram)
    if g.vram_total_bytes:
        p.vram_bytes = g.vram_total_bytes
    live.vram_used_bytes = g.vram_used_bytes
    _measured(p, "ram_bytes")


# per memory architecture: what of the configuration in effect the probe lays over a profile
LIVE: dict[str, Callable[[DeviceProfile, MachineFacts, int, LiveConfig], None]] = {
    "carveout": _live_carveout,
    "unified": _live_unified,
    "discrete": _live_discrete,
}


def apply_live(p: DeviceProfile, facts: MachineFacts, ram: int) -> DeviceProfile:
    """Lay what the probe read over a profile: the configuration in effect now."""
    live = _live(facts)
    if live.os in p.os:
        p.default_os = live.os
    LIVE[p.memory_architecture](p, facts, ram, live)
    p.live = live
    return p


def build_profile(facts: MachineFacts, catalog: Catalog | None = None) -> tuple[DeviceProfile, Recognition]:
    ram = installed_ram(facts)
    if ram is None:
        raise DeviceError("could not read this machine's RAM, so --device auto has nothing to plan with",
                          hint="pass a profile with --device ID (see `memfit devices`) or --device-file FILE")
    rec = recognise(facts, catalog if catalog is not None else load_catalog(), ram)
    prof = generic_profile(facts, ram) if rec.entry is None else _from_shipped(rec.entry.profile, ram)
    prof = apply_live(prof, facts, ram)
    prof.id = "auto"
    if not any(src.field == "live" for src in prof.sources):
        prof.sources.append(_probe_source(facts))
    return DeviceProfile.model_validate(prof.model_dump()), rec


def _from_shipped(base: DeviceProfile, ram: int) -> DeviceProfile:
    """The recognised profile for this machine's RAM: measured, not a command-line override (the
    notes stay in notes); a smaller machine of a known family gets scaled reserves."""
    prof = base.model_copy(deep=True)
    if prof.ram_bytes != ram:
        prof = apply_overrides(prof, ram=ram)
        prof.overrides.pop("ram", None)
        prof.override_notes.clear()
        if ram < base.ram_bytes and scale_reserves(prof, ram):
            prof.notes.append(reserve_note(ram))
    prof.based_on = base.id
    prof.name = f"this machine: {base.name}"
    return prof


def _probe_source(facts: MachineFacts) -> Source:
    return Source(field="live", ref="probe (this machine)", note="; ".join(facts.probed) or "nothing readable")

