"""Turn probe facts into a DeviceProfile: recognise a shipped profile and lay the live
configuration (carve-out, GTT / shared / wired limit, RAM the OS sees) over it, or build a
generic one."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..device_schema import MIB, DeviceProfile, LiveConfig, ProbeMatch, Source
from ..device_overrides import apply_overrides
from ..profile_catalog import Catalog, ProfileEntry, load_catalog
from ..errors import DeviceError
from ..units import fmt_auto
from .facts import MachineFacts
from .generic import generic_profile, reserve_note, scale_reserves
from .known import installed_ram_from_visible

DEFAULT_GTT_TOLERANCE = 0.03  # GTT within 3 % of half the visible RAM = the kernel default


@dataclass
class Recognition:
    entry: ProfileEntry | None
    exact_ram: bool = False
    why: str = ""


def _matches(m: ProbeMatch, facts: MachineFacts) -> bool:
    """Family-level hit: a PCI id, the CPU name or a GPU name."""
    if any(g.pci_id and g.pci_id in m.pci_ids for g in facts.gpus):
        return True
    if facts.cpu_name and any(re.search(p, facts.cpu_name, re.IGNORECASE) for p in m.cpu_patterns):
        return True
    return any(re.search(p, g.name, re.IGNORECASE) for p in m.gpu_patterns for g in facts.gpus if g.name)


def _model_hit(m: ProbeMatch, facts: MachineFacts) -> bool:
    text = f"{facts.model_name} {facts.vendor_name}"
    return any(re.search(p, text, re.IGNORECASE) for p in m.model_patterns)


def recognise(facts: MachineFacts, catalog: Catalog, ram: int) -> Recognition:
    """The shipped profile for this machine: same silicon, then same RAM, then same model name."""
    best: tuple | None = None
    best_entry: ProfileEntry | None = None
    for entry in catalog.entries.values():
        prof = entry.profile
        if prof.match is None or not _matches(prof.match, facts):
            continue
        if facts.system in ("linux", "windows", "macos") and facts.system not in prof.os:
            continue
        discrete = prof.memory_architecture == "discrete"
        exact = discrete or prof.ram_bytes == ram
        if not exact and prof.match.ram_must_match:
            continue
        score = (exact, _model_hit(prof.match, facts), prof.match.priority, -abs(prof.ram_bytes - ram), prof.id)
        if best is None or score > best:
            best, best_entry = score, entry
    if best_entry is None:
        return Recognition(None, why="no shipped profile matches this CPU/GPU")
    why = f"matched {best_entry.profile.id}" + ("" if best[0] else f" (its RAM differs; using the {fmt_auto(ram)} found here)")
    return Recognition(best_entry, exact_ram=bool(best[0]), why=why)


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


def _live(facts: MachineFacts) -> LiveConfig:
    return LiveConfig(os=facts.system if facts.system in ("linux", "windows", "macos") else "linux",  # type: ignore[arg-type]
                      os_visible_ram_bytes=facts.ram_visible_bytes, mem_available_bytes=facts.mem_available_bytes,
                      swap_free_bytes=facts.swap_free_bytes, kernel=facts.kernel, probed=list(facts.probed))


def apply_live(p: DeviceProfile, facts: MachineFacts, ram: int) -> DeviceProfile:
    """Lay what the probe read over a profile: the configuration in effect now."""
    live = _live(facts)
    os = live.os
    if os in p.os:
        p.default_os = os
    g = facts.gpu()
    if p.memory_architecture == "carveout" and p.carveout is not None:
        apu = facts.integrated_amd() or g
        carve = apu.vram_total_bytes if apu is not None else None
        if apu is not None and apu.carveout_options_bytes:
            p.carveout.options_bytes = sorted(set(apu.carveout_options_bytes))
            p.carveout.options_note = "read from this machine's amdgpu uma/carveout_options"
            p.carveout.default_bytes = p.carveout.options_bytes[0]
            if "carveout.options_bytes" in p.estimated:
                p.estimated.remove("carveout.options_bytes")
        if carve is not None:
            live.carveout_bytes = carve
            if carve > 0:
                if carve not in p.carveout.options_bytes:
                    p.carveout.options_bytes = sorted(set(p.carveout.options_bytes) | {carve})
                    p.notes.append(f"the carve-out in effect ({fmt_auto(carve)}) is not in the firmware list this profile knows")
                p.carveout.default_bytes = carve
                if "carveout.default_bytes" in p.estimated:
                    p.estimated.remove("carveout.default_bytes")
            if facts.ram_visible_bytes:
                p.firmware_reserved_bytes = max(0, ram - carve - facts.ram_visible_bytes)
        cap = p.os.get(os).gpu_cap if os in p.os else None  # type: ignore[union-attr]
        if os == "linux" and cap is not None and cap.knob == "ttm.pages_limit" and facts.amdttm_loaded:
            # amdgpu-dkms loads its own TTM module, which reads amdttm.* and ignores ttm.* options
            cap.knob = "amdttm.pages_limit"
            cap.how_to_change = ("amdttm.pages_limit=<GiB x 262144> on the kernel command line (this machine runs "
                                 "amdgpu-dkms, whose amdttm module ignores ttm.pages_limit); reboot")
        if os == "linux" and apu is not None and apu.gtt_total_bytes:
            live.gpu_cap_bytes = apu.gtt_total_bytes
            live.gpu_cap_is_default = _is_default_gtt(facts, apu.gtt_total_bytes)
            if cap is not None and not live.gpu_cap_is_default:
                cap.setting_bytes = apu.gtt_total_bytes
        elif os == "windows" and apu is not None and apu.shared_bytes:
            live.gpu_cap_bytes = apu.shared_bytes
            live.gpu_cap_is_default = True
    elif p.memory_architecture == "unified":
        if facts.ram_visible_bytes:
            p.firmware_reserved_bytes = max(0, ram - facts.ram_visible_bytes)
        cap = p.os[os].gpu_cap if os in p.os else None
        if os == "macos" and cap is not None:
            if facts.wired_limit_mb:
                cap.setting_bytes = facts.wired_limit_mb * MIB
                live.gpu_cap_is_default = False
            else:
                live.gpu_cap_is_default = facts.wired_limit_mb == 0 or None
        if cap is not None:
            live.gpu_cap_bytes = p.gpu_cap_bytes(os)
    elif p.memory_architecture == "discrete" and g is not None and g.kind == "discrete":
        if facts.ram_visible_bytes:
            p.firmware_reserved_bytes = max(0, ram - facts.ram_visible_bytes)
        if g.vram_total_bytes:
            p.vram_bytes = g.vram_total_bytes
        live.vram_used_bytes = g.vram_used_bytes
        if "ram_bytes" in p.estimated:
            p.estimated.remove("ram_bytes")
    p.live = live
    return p


def build_profile(facts: MachineFacts, catalog: Catalog | None = None) -> tuple[DeviceProfile, Recognition]:
    ram = installed_ram(facts)
    if ram is None:
        raise DeviceError("could not read this machine's RAM, so --device auto has nothing to plan with",
                          hint="pass a profile with --device ID (see `memfit devices`) or --device-file FILE")
    cat = catalog if catalog is not None else load_catalog()
    rec = recognise(facts, cat, ram)
    if rec.entry is None:
        prof = generic_profile(facts, ram)
    else:
        base = rec.entry.profile
        prof = base.model_copy(deep=True)
        if prof.ram_bytes != ram:
            prof = apply_overrides(prof, ram=ram)
            prof.overrides.pop("ram", None)
            prof.override_notes.clear()  # measured, not a command-line override (the notes stay in notes)
            if ram < base.ram_bytes and scale_reserves(prof, ram):  # a smaller machine of a known family
                prof.notes.append(reserve_note(ram))
        prof.based_on = base.id
        prof.name = f"this machine: {base.name}"
    prof = apply_live(prof, facts, ram)
    prof.id = "auto"
    if not any(src.field == "live" for src in prof.sources):
        prof.sources.append(_probe_source(facts))
    return DeviceProfile.model_validate(prof.model_dump()), rec


def _probe_source(facts: MachineFacts) -> Source:
    return Source(field="live", ref="probe (this machine)", note="; ".join(facts.probed) or "nothing readable")

