"""Load, validate and override device profiles.

Where profiles come from, later ones overriding earlier ones with the same id:
1. shipped: the repo's profiles/ directory when running from a checkout, else the installed
   package data `planner.profiles`;
2. the user's config directory: $MEMFIT_CONFIG_DIR/profiles/*.toml, else
   $XDG_CONFIG_HOME/memfit/profiles/*.toml (~/.config/memfit/profiles/*.toml);
3. `--device-file FILE` (load_profile(path)).
`load_profile("auto")` reads the running machine (planner.probe).

Override policy (apply_overrides): values are checked against the profile. A carve-out the
firmware list does not contain is accepted with a note (the lists are incomplete and users know
their BIOS); one that leaves the OS no RAM, or a carve-out on a device without one, is rejected.
"""

from __future__ import annotations

import difflib
import os as _os
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable

from pydantic import ValidationError

from .device_schema import GIB, OSES, USES, DeviceProfile
from .errors import DeviceError, DeviceFlagError, InputError
from .units import fmt_auto, parse_size

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the tomli backport
    try:
        import tomli as tomllib
    except ImportError:  # pragma: no cover
        tomllib = None  # type: ignore[assignment]

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


# --------------------------------------------------------------------------- locations

def _checkout_profiles_dir() -> Path | None:
    """profiles/ next to planner/ in a source checkout (pyproject.toml marks the checkout)."""
    root = Path(__file__).resolve().parent.parent
    d = root / "profiles"
    if (root / "pyproject.toml").is_file() and d.is_dir() and any(d.glob("*.toml")):
        return d
    return None


def shipped_profile_files() -> list[tuple[str, bytes]]:
    """(path-for-messages, content) of every shipped profile."""
    d = _checkout_profiles_dir()
    if d is not None:
        return [(str(p), p.read_bytes()) for p in sorted(d.glob("*.toml"))]
    try:
        base = resources.files("planner.profiles")
    except (ModuleNotFoundError, TypeError):
        return []
    return [(f"planner.profiles/{p.name}", p.read_bytes())
            for p in sorted(base.iterdir(), key=lambda p: p.name) if p.name.endswith(".toml")]


def user_config_dir() -> Path:
    """$MEMFIT_CONFIG_DIR, else $XDG_CONFIG_HOME/memfit, else ~/.config/memfit."""
    env = _os.environ.get("MEMFIT_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    xdg = _os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".config") / "memfit"


def user_profiles_dir() -> Path:
    return user_config_dir() / "profiles"


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
    if tomllib is None:  # pragma: no cover
        raise DeviceError("reading device profiles needs Python >= 3.11 (or the 'tomli' package)",
                          hint="pip install tomli")
    text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DeviceError(f"{where}: TOML syntax error: {e}",
                          hint="see docs/devices.md 'Adding a device profile' for a commented example") from None
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
    """Shipped profiles, then the user's (a user profile replaces a shipped one with the same id).

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
        d = user_profiles_dir()
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                try:
                    prof = load_file(p)
                except DeviceError as e:
                    cat.problems.append(e.message)
                    continue
                cat.entries[prof.id] = ProfileEntry(prof, "user", str(p))
    return cat


def _looks_like_path(ref: str) -> bool:
    return ref.lower().endswith(".toml") or _os.sep in ref or "/" in ref or ref.startswith("~")


def unknown_device_error(ref: str, cat: Catalog) -> DeviceError:
    close = difflib.get_close_matches(ref.lower(), cat.names(), n=4, cutoff=0.5)
    if not close:  # "395 64" -> ai-max-395-64g: try token overlap before giving up
        tokens = [t for t in ref.lower().replace("_", "-").replace(" ", "-").split("-") if t]
        close = [i for i in cat.ids() if tokens and all(t in i for t in tokens)][:4]
    hint = (f"did you mean {', '.join(close)}? " if close else "") + \
        "run `memfit devices` for the list, or pass --device-file FILE / --device auto"
    if cat.problems:
        hint += f" ({len(cat.problems)} user profile(s) failed to load: {cat.problems[0]})"
    return DeviceError(f"unknown device {ref!r}", hint=hint)


def load_profile(ref: str, *, probe_root: str | Path | None = None) -> DeviceProfile:
    """A profile by id or alias, a TOML file path, or "auto" (read this machine)."""
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
    cat = load_catalog()
    entry = cat.find(ref)
    if entry is None:
        raise unknown_device_error(ref, cat)
    return entry.profile.model_copy(deep=True)


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


def apply_overrides(profile: DeviceProfile, *, ram: int | str | None = None, carveout: int | str | None = None,
                    os: str | None = None, vram: int | str | None = None, gpu_cap: int | str | None = None,
                    use: str | None = None, bandwidth: float | str | None = None) -> DeviceProfile:
    """A copy of `profile` with command-line overrides applied and recorded in `overrides`/`notes`."""
    p = profile.model_copy(deep=True)
    if p.based_on is None and (any(v is not None for v in (ram, carveout, os, vram, gpu_cap, use, bandwidth))):
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
        try:
            bw = float(str(bandwidth).lower().replace("gb/s", "").strip())
        except ValueError:
            raise InputError(f"invalid --bandwidth {bandwidth!r}: give GB/s, e.g. 256") from None
        if not 0 < bw < 100_000:
            raise InputError(f"invalid --bandwidth {bandwidth!r}: must be a positive GB/s figure")
        p.bandwidth_gbps = bw
        p.overrides["bandwidth"] = f"{bw:g} GB/s"
        if "bandwidth_gbps" in p.estimated:
            p.estimated.remove("bandwidth_gbps")

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
