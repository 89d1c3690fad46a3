"""Load, validate and override device profiles.

Where profiles come from (planner.profile_files): shipped ones, then the user's config directory
($MEMFIT_CONFIG_DIR/profiles/*.toml, else ~/.config/memfit/profiles), later ones overriding
earlier ones with the same id; `--device-file FILE` (load_profile(path)) and
`load_profile("auto")`, which reads the running machine (planner.probe).

A profile is validated by the pydantic schema (DeviceProfile) whenever it is loaded here, i.e.
whenever it is used; finding it by id or alias only reads the TOML (planner.profile_files).

Unknown ids are answered with profiles of the same chip family first (planner/data/
device_families.toml maps the words people use to a family): `--device strix-halo` lists the Strix
Halo profiles, never a slower chip whose id happens to look alike.

Override policy (apply_overrides): values are checked against the profile. A carve-out the
firmware list does not contain is accepted with a note (the lists are incomplete and users know
their BIOS); one that leaves the OS no RAM, or a carve-out on a device without one, is rejected.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from pydantic import ValidationError

from .device_schema import GIB, OSES, USES, DeviceProfile
from .errors import DeviceError, DeviceFlagError, InputError
from .profile_files import (  # noqa: F401 - re-exported: where profiles live
    PROFILE_HINT,
    Listing,
    ProfileSummary,
    checkout_profiles_dir,
    list_profiles,
    parse_toml,
    shipped_profile_files,
    user_config_dir,
    user_profile_files,
    user_profiles_dir,
)
from .units import fmt_auto, parse_size

AUTO = "auto"
# Firmware never offers a carve-out above this share of RAM (AMD VGM: 75 %; 96 of 128 GB).
MAX_CARVEOUT_SHARE = 0.75


@dataclass(frozen=True)
class ProfileEntry:
    profile: DeviceProfile
    origin: str  # "shipped" | "user" | "file" | "probe"
    path: str


@dataclass
class Catalog:
    entries: dict[str, ProfileEntry] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # user files that failed to load (one line each)

    def ids(self) -> list[str]:
        return sorted(self.entries)

    def find(self, ref: str) -> ProfileEntry | None:
        key = ref.strip().lower()
        if key in self.entries:
            return self.entries[key]
        for entry in self.entries.values():
            if key in (a.lower() for a in entry.profile.aliases):
                return entry
        return None

    def names(self) -> list[str]:
        out = list(self.entries)
        for entry in self.entries.values():
            out.extend(a.lower() for a in entry.profile.aliases)
        return out


# --------------------------------------------------------------------------- parsing

def _loc(loc: Iterable[object]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


def _validation_line(where: str, err: ValidationError) -> str:
    errors = err.errors()
    first = errors[0]
    msg = first.get("msg", "invalid")
    if first.get("type") == "extra_forbidden":
        msg = "unknown field (check the spelling against docs/devices.md)"
    elif first.get("type") == "missing":
        msg = "required field is missing"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{where}: {_loc(first.get('loc', ()))}: {msg}{more}"


def parse_profile(content: bytes | str, where: str) -> DeviceProfile:
    """Parse and validate one profile; every failure is a one-line DeviceError naming file and field."""
    data = parse_toml(content, where)
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as e:
        raise DeviceError(_validation_line(where, e),
                          hint="see docs/devices.md 'Adding a device profile' for the fields") from None


def load_file(path: str | Path) -> DeviceProfile:
    p = Path(path).expanduser()
    try:
        content = p.read_bytes()
    except FileNotFoundError:
        raise DeviceError(f"device file not found: {p}") from None
    except OSError as e:
        raise DeviceError(f"cannot read device file {p}: {e.strerror or e}") from None
    return parse_profile(content, str(p))


# --------------------------------------------------------------------------- catalog

def load_catalog(*, include_user: bool = True) -> Catalog:
    """Shipped profiles, then the user's (a user profile replaces a shipped one with the same id),
    every one validated.

    A broken shipped profile is a bug and raises; a broken user file is reported in `problems`
    so that one typo does not hide every other profile.
    """
    cat = Catalog()
    for where, content in shipped_profile_files():
        prof = parse_profile(content, where)
        if prof.id in cat.entries:
            raise DeviceError(f"{where}: id {prof.id!r} is also used by {cat.entries[prof.id].path}")
        cat.entries[prof.id] = ProfileEntry(prof, "shipped", where)
    if include_user:
        for where, content in user_profile_files():
            if isinstance(content, OSError):
                cat.problems.append(f"cannot read device file {where}: {content.strerror or content}")
                continue
            try:
                prof = parse_profile(content, where)
            except DeviceError as e:
                cat.problems.append(e.message)
                continue
            cat.entries[prof.id] = ProfileEntry(prof, "user", where)
    return cat


def _looks_like_path(ref: str) -> bool:
    import os

    return ref.lower().endswith(".toml") or os.sep in ref or "/" in ref or ref.startswith("~")


# --------------------------------------------------------------------------- suggestions

_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")
_RAM_TOKEN = re.compile(r"^(\d+)(g|gb|gib)?$")
# bare numbers read as RAM sizes (GiB) in a device reference; chip numbers (395, 370, 4090) are not
_RAM_SIZES_GIB = frozenset({16, 24, 32, 36, 48, 64, 96, 128, 192, 256, 512})


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN_SPLIT.split(text.lower()) if t]


@dataclass(frozen=True)
class ChipWords:
    """One row of planner/data/device_families.toml: the words that name a chip (or a family)."""

    family: str
    chip: str  # substring of the profiles' `chip` field; "" = the whole family
    words: tuple[tuple[str, ...], ...]  # each word as its tokens

    def covers(self, p: ProfileSummary) -> bool:
        return p.family == self.family and self.chip.lower() in p.chip.lower()


@lru_cache(maxsize=1)
def chip_words() -> tuple[ChipWords, ...]:
    from .data import read

    raw = read("device_families.toml")
    data = parse_toml(raw, "planner/data/device_families.toml")
    return tuple(ChipWords(str(c["family"]), str(c.get("chip", "")), tuple(tuple(_tokens(w)) for w in c["words"]))
                 for c in data.get("chips", []))


def _has_run(tokens: list[str], run: tuple[str, ...]) -> bool:
    n = len(run)
    return n > 0 and any(tuple(tokens[i:i + n]) == run for i in range(len(tokens) - n + 1))


def chips_named(ref: str) -> list[ChipWords]:
    """The chips a device reference names: the entries whose longest word appears in it as whole
    words (`strix-halo`, `ai-max-395`, `m4-max`, `4090`); failing that, the entries with the most
    tokens of 3+ letters that begin one of their words (`strix` -> Strix Halo and Strix Point,
    `rtx-409` -> RTX 40)."""
    tokens = _tokens(ref)
    best, hits = 0, []
    for c in chip_words():
        length = max((len(w) for w in c.words if _has_run(tokens, w)), default=0)
        if length > best:
            best, hits = length, [c]
        elif length and length == best:
            hits.append(c)
    if hits or not tokens:
        return hits
    scores = [(sum(any(len(t) >= 3 and w[0].startswith(t) for w in c.words) for t in tokens), c) for c in chip_words()]
    top = max((score for score, _ in scores), default=0)
    return [c for score, c in scores if top and score == top]


def _ram_wanted(ref: str) -> int | None:
    """A RAM size in the reference (`strix-halo-64g`, `m4-max-128`) in bytes, if any."""
    for t in _tokens(ref):
        m = _RAM_TOKEN.match(t)
        if m and (m.group(2) or int(m.group(1)) in _RAM_SIZES_GIB):
            return int(m.group(1)) * GIB
    return None


def suggest_devices(ref: str, profiles: Iterable[ProfileSummary], n: int = 4) -> tuple[list[str], list[ChipWords]]:
    """Profile ids to offer for an unknown reference, and the chips it names.

    A reference that names a chip gets only that chip's profiles (up to 8; only
    those with the RAM it mentions, when there are any); one that names no chip gets the closest ids by spelling, those of the best
    match's chip family first. A chip without a shipped profile gets no suggestions at all."""
    profs = list(profiles)
    chips = chips_named(ref)
    key = ref.strip().lower()
    ram = _ram_wanted(ref)

    def closeness(p: ProfileSummary) -> float:
        return max(difflib.SequenceMatcher(None, key, name).ratio() for name in p.names())

    if chips:  # that chip's profiles, all of them (a family has a handful), the RAM asked for first
        pool = [p for p in profs if any(c.covers(p) for c in chips)]
        if ram is not None and any(p.ram_bytes == ram for p in pool):
            pool = [p for p in pool if p.ram_bytes == ram]
        pool.sort(key=lambda p: (ram is not None and p.ram_bytes != ram, p.family, p.ram_bytes, -closeness(p), p.id))
        return [p.id for p in pool[:max(n, 8)]], chips
    scored = sorted(((closeness(p), p) for p in profs), key=lambda x: (-x[0], x[1].id))
    close = [p for score, p in scored if score >= 0.5]
    if not close:  # "395 64" -> ai-max-395-64g: token overlap before giving up
        tokens = _tokens(ref)
        close = [p for p in profs if tokens and all(t in p.id for t in tokens)]
    if not close:
        return [], []
    first = close[0].family
    ordered = [p for p in close if p.family == first] + [p for p in close if p.family != first]
    return [p.id for p in ordered[:n]], []


def unknown_device_error(ref: str, profiles: Iterable[ProfileSummary], problems: list[str] | None = None) -> DeviceError:
    ids, chips = suggest_devices(ref, profiles)
    tokens = tuple(_tokens(ref))
    family = next((c.family for c in chips if tokens in c.words), None)
    if ids and family is not None:
        message = f"'{ref}' names a chip, not one device: pick the profile with your RAM and form factor"
        hint = f"{', '.join(ids)} (see `memfit devices`), or --device auto on the machine itself"
    elif chips and not ids:
        names = " / ".join(sorted({c.family for c in chips}))
        message = f"unknown device {ref!r}: no shipped profile for the {names} family"
        hint = "run --device auto on that machine, or describe it with --device-file FILE (docs/devices.md)"
    else:
        message = f"unknown device {ref!r}"
        hint = (f"did you mean {', '.join(ids)}? " if ids else "") + \
            "run `memfit devices` for the list, or pass --device-file FILE / --device auto"
    if problems:
        hint += f" ({len(problems)} user profile(s) failed to load: {problems[0]})"
    return DeviceError(message, hint=hint)


def load_profile(ref: str, *, probe_root: str | Path | None = None) -> DeviceProfile:
    """A profile by id or alias, a TOML file path, or "auto" (read this machine); validated."""
    ref = (ref or "").strip()
    if not ref:
        raise InputError("empty device id", hint="run `memfit devices` for the list")
    if ref.lower() == AUTO:
        from .probe import auto_profile

        try:
            return auto_profile(root=probe_root)
        except ValidationError as e:  # a probed value outside the schema's bounds (a broken /proc, driver)
            raise DeviceError(_validation_line("this machine (--device auto)", e),
                              hint="pass a profile with --device ID (see `memfit devices`) or --device-file FILE") from None
    if _looks_like_path(ref):
        return load_file(ref)
    listing = list_profiles(validate_user=False)
    found = listing.find(ref)
    if found is None:
        raise unknown_device_error(ref, listing.profiles.values(), listing.problems)
    return parse_profile(found.content, found.path)


def load_profiles(refs: Iterable[str], device_files: Iterable[str] = ()) -> list[DeviceProfile]:
    out = [load_profile(r) for r in refs]
    out += [load_file(f) for f in device_files]
    return out


# --------------------------------------------------------------------------- overrides

def _size(value: int | str | None, what: str) -> int | None:
    return None if value is None else parse_size(value, what=what)


def _apple_default_fraction(ram_bytes: int) -> float:
    """Older macOS default wired limit: 2/3 of RAM below 36 GB, 3/4 at 36 GB and above."""
    return 2 / 3 if ram_bytes < 36 * GIB else 0.75


def _gbps(value: float | str, flag: str) -> float:
    try:
        bw = float(str(value).lower().replace("gb/s", "").strip())
    except ValueError:
        raise InputError(f"invalid {flag} {value!r}: give GB/s, e.g. 256") from None
    if not 0 < bw < 100_000:
        raise InputError(f"invalid {flag} {value!r}: must be a positive GB/s figure below 100000")
    return bw


def apply_overrides(profile: DeviceProfile, *, ram: int | str | None = None, carveout: int | str | None = None,
                    os: str | None = None, vram: int | str | None = None, gpu_cap: int | str | None = None,
                    use: str | None = None, bandwidth: float | str | None = None,
                    host_bandwidth: float | str | None = None) -> DeviceProfile:
    """A copy of `profile` with command-line overrides applied and recorded in `overrides`/`notes`."""
    p = profile.model_copy(deep=True)
    given = (ram, carveout, os, vram, gpu_cap, use, bandwidth, host_bandwidth)
    if p.based_on is None and any(v is not None for v in given):
        p.based_on = profile.id
    notes: list[str] = []

    if os is not None:
        key = os.strip().lower()
        key = {"mac": "macos", "darwin": "macos", "osx": "macos", "win": "windows"}.get(key, key)
        if key not in OSES:
            raise InputError(f"invalid --os {os!r}: use linux, windows or macos")
        if key not in p.os:
            raise DeviceFlagError(f"{p.id} has no {key} entry (it runs {', '.join(p.os)})",
                              hint=f"use --os {' or --os '.join(p.os)}, or write a profile with a [os.{key}] table")
        p.default_os = key  # type: ignore[assignment]
        p.overrides["os"] = key

    if use is not None:
        key = use.strip().lower()
        if key not in USES:
            raise InputError(f"invalid --use {use!r}: use one of {', '.join(USES)}")
        p.default_use = key  # type: ignore[assignment]
        p.overrides["use"] = key

    if bandwidth is not None:
        p.bandwidth_gbps = _gbps(bandwidth, "--bandwidth")
        p.overrides["bandwidth"] = f"{p.bandwidth_gbps:g} GB/s"
        if "bandwidth_gbps" in p.estimated:
            p.estimated.remove("bandwidth_gbps")
    if host_bandwidth is not None:
        # system RAM for layers and experts kept on the CPU: DDR4-3200 dual channel is 51.2 GB/s,
        # DDR5-5600 89.6; it decides --n-cpu-moe speed on a discrete card
        p.host_bandwidth_gbps = _gbps(host_bandwidth, "--host-bandwidth")
        p.overrides["host_bandwidth"] = f"{p.host_bandwidth_gbps:g} GB/s"
        if "host_bandwidth_gbps" in p.estimated:
            p.estimated.remove("host_bandwidth_gbps")

    ram_b = _size(ram, "--ram")
    if ram_b is not None:
        if ram_b < 1 * GIB:
            raise InputError(f"invalid --ram {ram!r}: at least 1 GiB")
        p.ram_bytes = ram_b
        p.overrides["ram"] = fmt_auto(ram_b)
        if "ram_bytes" in p.estimated:
            p.estimated.remove("ram_bytes")
        if p.live is not None:
            p.live.os_visible_ram_bytes = None
        if p.firmware_reserved_bytes >= ram_b // 2:
            p.firmware_reserved_bytes = 0
        if p.carveout is not None:
            limit = MAX_CARVEOUT_SHARE * ram_b
            kept = [o for o in p.carveout.options_bytes if o <= limit] or [min(p.carveout.options_bytes)]
            if len(kept) < len(p.carveout.options_bytes):
                notes.append(f"carve-out options above {MAX_CARVEOUT_SHARE:.0%} of {fmt_auto(ram_b)} dropped")
            p.carveout.options_bytes = kept
            if p.carveout.default_bytes not in kept:
                p.carveout.default_bytes = max(kept)  # every kept option is below the dropped default
            if p.live is not None and p.live.carveout_bytes is not None and p.live.carveout_bytes >= ram_b:
                p.live.carveout_bytes = None
        mac = p.os.get("macos")
        if mac is not None and mac.gpu_cap is not None and mac.gpu_cap.knob == "iogpu.wired_limit_mb":
            mac.gpu_cap.default_fraction = _apple_default_fraction(ram_b)
            if mac.gpu_cap.max_fraction is not None and mac.gpu_cap.max_fraction < mac.gpu_cap.default_fraction:
                mac.gpu_cap.max_fraction = mac.gpu_cap.default_fraction
        notes.append("OS reserves are the profile's absolute figures; check them for the new RAM size")

    carve_b = _size(carveout, "--carveout")
    if carve_b is not None:
        if p.carveout is None:
            alt = "--vram" if p.memory_architecture == "discrete" else "--gpu-cap"
            raise DeviceFlagError(f"{p.id} has no BIOS carve-out ({p.memory_architecture} memory)",
                              hint=f"use {alt} to change its GPU memory")
        if carve_b <= 0:
            raise InputError("invalid --carveout 0: the smallest real carve-out is 512 MB "
                             "(BIOS 'Auto' can make runtimes see 0 VRAM)", hint="use --carveout 512m")
        usable = p.ram_bytes - p.firmware_reserved_bytes
        if carve_b >= usable - 2 * GIB:
            fitting = [o for o in p.carveout.options_bytes if o < usable - 2 * GIB]
            hint = (f"largest option that leaves the OS 2 GiB: {fmt_auto(max(fitting))}" if fitting
                    else "no carve-out option leaves the OS 2 GiB of this RAM; check --ram")
            raise DeviceFlagError(f"--carveout {fmt_auto(carve_b)} leaves the OS less than 2 GiB of {fmt_auto(p.ram_bytes)}",
                                  hint=hint)
        if carve_b not in p.carveout.options_bytes:
            known = ", ".join(fmt_auto(o) for o in p.carveout.options_bytes)
            notes.append(f"carve-out {fmt_auto(carve_b)} is not among the firmware options this profile knows "
                         f"({known}); planning with it as given")
            if carve_b > MAX_CARVEOUT_SHARE * p.ram_bytes:
                notes.append(f"no known firmware offers more than {MAX_CARVEOUT_SHARE:.0%} of RAM as carve-out")
            p.carveout.options_bytes = sorted(set(p.carveout.options_bytes) | {carve_b})
        p.carveout.default_bytes = carve_b
        if p.live is not None:
            p.live.carveout_bytes = carve_b
        if "carveout.default_bytes" in p.estimated:
            p.estimated.remove("carveout.default_bytes")
        p.overrides["carveout"] = fmt_auto(carve_b)

    vram_b = _size(vram, "--vram")
    if vram_b is not None:
        if p.memory_architecture != "discrete":
            alt = "--carveout" if p.memory_architecture == "carveout" else "--gpu-cap"
            raise DeviceFlagError(f"{p.id} has no discrete VRAM ({p.memory_architecture} memory)",
                              hint=f"use {alt} instead")
        if vram_b < 256 * 1024**2:
            raise InputError(f"invalid --vram {vram!r}: at least 256m")
        p.vram_bytes = vram_b
        p.overrides["vram"] = fmt_auto(vram_b)

    cap_b = _size(gpu_cap, "--gpu-cap")
    if cap_b is not None:
        info = p.os_info()
        if info.gpu_cap is None:
            raise DeviceFlagError(f"{p.id} on {p.default_os} has no shared-memory cap to set",
                              hint="--gpu-cap applies to APUs (GTT / shared memory) and unified machines (wired limit)")
        if cap_b <= 0:
            raise InputError(f"invalid --gpu-cap {gpu_cap!r}: must be more than 0", hint="e.g. --gpu-cap 96g")
        visible = p.os_visible_ram()
        if cap_b > visible:
            notes.append(f"--gpu-cap {fmt_auto(cap_b)} is more than the {fmt_auto(visible)} the OS sees; clipped")
            cap_b = visible
        if info.gpu_cap.knob is None:
            notes.append(f"{p.default_os} does not let users change this cap; planning with {fmt_auto(cap_b)} anyway")
        elif info.gpu_cap.max_fraction is not None and cap_b > info.gpu_cap.max_fraction * visible:
            safe = int(info.gpu_cap.max_fraction * visible)
            notes.append(f"--gpu-cap {fmt_auto(cap_b)} is above this profile's safe maximum of {fmt_auto(safe)} "
                         f"({info.gpu_cap.max_fraction:.0%} of what the OS sees): planning with it as given, but the "
                         f"OS may stall or kill processes under memory pressure")
        info.gpu_cap.setting_bytes = cap_b
        if p.live is not None:
            p.live.gpu_cap_bytes = cap_b
            p.live.gpu_cap_is_default = False
        p.overrides["gpu_cap"] = fmt_auto(cap_b)

    # Re-validate: overrides must leave a consistent profile.
    try:
        p = DeviceProfile.model_validate(p.model_dump())
    except ValidationError as e:
        raise DeviceError(_validation_line(f"{p.id} after overrides", e)) from None
    p.notes.extend(n for n in notes if n not in p.notes)
    p.override_notes.extend(n for n in notes if n not in p.override_notes)
    return p
