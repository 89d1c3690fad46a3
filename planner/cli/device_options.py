"""The device flags every command shares (`--device`, `--device-file`, `--ram`, `--carveout`, ...):
one table of flags, the options object they fill (`DeviceFlags`), and the profiles they name.

Usage in a command module:

    @click.command("estimate")
    @device_options(multiple=False, keys=ESTIMATE_DEVICE_KEYS)
    def estimate_command(**kw):
        flags = DeviceFlags.pop_from(kw)
        profiles = resolve_devices(flags)        # list[DeviceProfile], overrides applied to each

A command whose help words a flag its own way (or orders its flags between others, as `plan`
does) passes `help`/`metavar` tables and takes the flags in groups with `device_flags(...)`.
Override policy: see planner.devices.apply_overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable

import click

if TYPE_CHECKING:
    from ..device_schema import DeviceProfile

OSES = ("linux", "windows", "macos")
USES = ("headless", "desktop", "daily")
OVERRIDE_KEYS = ("ram", "carveout", "os", "vram", "gpu_cap", "use", "bandwidth", "host_bandwidth")


@dataclass(frozen=True)
class Flag:
    """One device flag: its spelling, the override it sets, its help and what it takes."""

    decls: tuple[str, ...]
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    repeatable: bool = False  # --device/--device-file: repeatable where a command compares devices


# key (the DeviceFlags field) -> the flag, in the order --help lists them
FLAGS: dict[str, Flag] = {
    "device": Flag(("--device", "-d", "device"), "device profile id (see `memfit devices`), a profile .toml, or "
                   "'auto' for this machine", repeatable=True),
    "device_file": Flag(("--device-file", "device_file"), "a device profile TOML file (docs/devices.md shows the format)",
                        repeatable=True),
    "ram": Flag(("--ram",), "override installed RAM (host RAM for discrete cards), e.g. 128g", "SIZE"),
    "carveout": Flag(("--carveout",), "override the BIOS UMA carve-out, e.g. 32g or 512m", "SIZE"),
    "os": Flag(("--os", "os"), "plan for this OS (default: the profile's)", choices=OSES),
    "vram": Flag(("--vram",), "override a discrete card's VRAM", "SIZE"),
    "gpu_cap": Flag(("--gpu-cap", "gpu_cap"), "GPU cap to assume: Linux GTT (ttm.pages_limit), macOS wired limit, "
                    "Windows shared", "SIZE"),
    "use": Flag(("--use", "use"), "how the machine is used (sets the OS reserve)", choices=USES),
    "bandwidth": Flag(("--bandwidth",), "override memory bandwidth (GB/s) for speed estimates", "GB/S"),
    "host_bandwidth": Flag(("--host-bandwidth", "host_bandwidth"), "override system RAM bandwidth (GB/s): the speed "
                           "of layers and experts on the CPU", "GB/S"),
}
FLAG_NAMES = {key: flag.decls[0] for key, flag in FLAGS.items()}


@dataclass(frozen=True)
class FlagStyle:
    """How one command words its device flags: its own help or metavar for some, whether choices
    ignore case, whether --device-file is checked as a path by click, whether --device's help ends
    with "; repeat to compare" where it repeats."""

    help: dict[str, str] = field(default_factory=dict)
    metavar: dict[str, str] = field(default_factory=dict)
    case_sensitive: bool = False
    path_type: bool = True


SHARED_STYLE = FlagStyle()


def _help(key: str, repeats: bool, style: FlagStyle) -> str:
    if key in style.help:
        return style.help[key]
    return FLAGS[key].help + ("; repeat to compare" if key == "device" and repeats else "")


def _type(key: str, style: FlagStyle) -> click.ParamType | None:
    flag = FLAGS[key]
    if flag.choices:
        return click.Choice(flag.choices, case_sensitive=style.case_sensitive)
    if key == "device_file" and style.path_type:
        return click.Path(dir_okay=False)
    return None


def _option(key: str, multiple: bool, style: FlagStyle) -> Callable:
    flag = FLAGS[key]
    repeats = flag.repeatable and multiple
    extra: dict[str, Any] = {"multiple": multiple} if flag.repeatable else {}
    return click.option(*flag.decls, help=_help(key, repeats, style), metavar=style.metavar.get(key, flag.metavar),
                        type=_type(key, style), **extra)


def device_flags(*keys: str, multiple: bool = True, style: FlagStyle = SHARED_STYLE) -> list[Callable]:
    """The click options of these device flags, in the order given."""
    return [_option(key, multiple, style) for key in keys]


def apply_options(options: list[Callable]) -> Callable:
    """Decorate with `options` so that --help lists them in this order."""
    def deco(f: Callable) -> Callable:
        for opt in reversed(options):
            f = opt(f)
        return f

    return deco


def device_options(*, multiple: bool = True, keys: tuple[str, ...] = tuple(FLAGS),
                   style: FlagStyle = SHARED_STYLE) -> Callable:
    """The device flags `keys` (all by default; without "device"/"device_file" the caller names
    the profile itself)."""
    return apply_options(device_flags(*keys, multiple=multiple, style=style))


def _as_tuple(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(value or ())


@dataclass(frozen=True)
class DeviceFlags:
    """What the device flags said (None / empty: not given)."""

    device: tuple[str, ...] = ()
    device_file: tuple[str, ...] = ()
    ram: str | None = None
    carveout: str | None = None
    os: str | None = None
    vram: str | None = None
    gpu_cap: str | None = None
    use: str | None = None
    bandwidth: str | None = None
    host_bandwidth: str | None = None

    @classmethod
    def pop_from(cls, kw: dict[str, Any]) -> DeviceFlags:
        """Take the device flags out of click's keyword arguments (a single --device as a 1-tuple,
        an empty one as none)."""
        given = {f.name: kw.pop(f.name) for f in fields(cls) if f.name in kw}
        for key in ("device", "device_file"):
            given[key] = _as_tuple(given.get(key))
        return cls(**given)

    def overrides(self) -> dict[str, Any]:
        """Every override flag, given or not (apply_overrides' keywords)."""
        return {key: getattr(self, key) for key in OVERRIDE_KEYS}

    def given_overrides(self) -> dict[str, Any]:
        return {key: value for key, value in self.overrides().items() if value is not None}

    def with_device(self, ref: str) -> DeviceFlags:
        return DeviceFlags(**{**{f.name: getattr(self, f.name) for f in fields(self)}, "device": _as_tuple(ref)})


def resolve_devices(flags: DeviceFlags, *, default: str | None = None) -> list[DeviceProfile]:
    """Profiles named by --device/--device-file (or `default`), each with the overrides applied."""
    from ..devices import apply_overrides, load_file, load_profile  # the schema loads with the first profile

    refs, files = flags.device, flags.device_file
    if not refs and not files:
        if default is None:
            raise click.UsageError("give --device ID (see `memfit devices`), --device-file FILE or --device auto")
        refs = (default,)
    profiles = [load_profile(r) for r in refs] + [load_file(f) for f in files]
    over = flags.given_overrides()
    if over:
        profiles = [apply_overrides(p, **flags.overrides()) for p in profiles]
    return profiles
