"""The device flags every command shares (`--device`, `--device-file`, `--ram`, `--carveout`, ...).

Usage in a command module:

    @click.command("plan")
    @device_options(multiple=True)
    def plan_command(..., **kw):
        profiles = resolve_devices(kw)        # list[DeviceProfile], overrides applied to each

Override policy: see planner.devices.apply_overrides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import click

if TYPE_CHECKING:
    from ..device_schema import DeviceProfile

OVERRIDE_KEYS = ("ram", "carveout", "os", "vram", "gpu_cap", "use", "bandwidth", "host_bandwidth")


def device_options(*, multiple: bool = True, with_device: bool = True) -> Callable:
    """The device flags; with_device=False leaves out --device/--device-file (the caller names the profile)."""
    def deco(f: Callable) -> Callable:
        opts = [
            click.option("--device", "-d", "device", multiple=multiple, required=False,
                         help="device profile id (see `memfit devices`), a profile .toml, or 'auto' for this machine"
                              + ("; repeat to compare" if multiple else "")),
            click.option("--device-file", "device_file", multiple=multiple, type=click.Path(dir_okay=False),
                         help="a device profile TOML file (docs/devices.md shows the format)"),
            click.option("--ram", metavar="SIZE", help="override installed RAM (host RAM for discrete cards), e.g. 128g"),
            click.option("--carveout", metavar="SIZE", help="override the BIOS UMA carve-out, e.g. 32g or 512m"),
            click.option("--os", "os_name", type=click.Choice(["linux", "windows", "macos"], case_sensitive=False),
                         help="plan for this OS (default: the profile's)"),
            click.option("--vram", metavar="SIZE", help="override a discrete card's VRAM"),
            click.option("--gpu-cap", "gpu_cap", metavar="SIZE",
                         help="GPU cap to assume: Linux GTT (ttm.pages_limit), macOS wired limit, Windows shared"),
            click.option("--use", type=click.Choice(["headless", "desktop", "daily"], case_sensitive=False),
                         help="how the machine is used (sets the OS reserve)"),
            click.option("--bandwidth", metavar="GB/S", help="override memory bandwidth (GB/s) for speed estimates"),
            click.option("--host-bandwidth", "host_bandwidth", metavar="GB/S",
                         help="override system RAM bandwidth (GB/s): the speed of layers and experts on the CPU"),
        ]
        if not with_device:
            opts = opts[2:]
        for opt in reversed(opts):
            f = opt(f)
        return f

    return deco


def overrides_from(kw: dict[str, Any]) -> dict[str, Any]:
    return {"ram": kw.get("ram"), "carveout": kw.get("carveout"), "os": kw.get("os_name"), "vram": kw.get("vram"),
            "gpu_cap": kw.get("gpu_cap"), "use": kw.get("use"), "bandwidth": kw.get("bandwidth"),
            "host_bandwidth": kw.get("host_bandwidth")}


def resolve_devices(kw: dict[str, Any], *, default: str | None = None) -> list[DeviceProfile]:
    """Profiles named by --device/--device-file (or `default`), each with the overrides applied."""
    from ..devices import apply_overrides, load_file, load_profile  # the schema loads with the first profile

    refs = kw.get("device") or ()
    files = kw.get("device_file") or ()
    if isinstance(refs, str):
        refs = (refs,)
    if isinstance(files, str):
        files = (files,)
    if not refs and not files:
        if default is None:
            raise click.UsageError("give --device ID (see `memfit devices`), --device-file FILE or --device auto")
        refs = (default,)
    profiles = [load_profile(r) for r in refs] + [load_file(f) for f in files]
    over = overrides_from(kw)
    if any(v is not None for v in over.values()):
        profiles = [apply_overrides(p, **over) for p in profiles]
    return profiles
