"""`memfit devices` (list profiles) and `memfit devices show ID` (explain one in words and tables).

The flags and the calls; planner/report/devices.py renders the list, planner/report/device_show.py
one profile. `memfit devices` must start in a few tens of milliseconds: the list reads the
profiles' TOML (planner.profile_files); the schema (pydantic) loads only for `devices show`.
"""

from __future__ import annotations

from typing import Any

import click

from ..report.devices import list_json, list_rows, list_text
from ..report.layout import text_width
from .device_options import DeviceFlags, device_options, resolve_devices
from .help_format import WrappingGroup

OVERRIDES_ONLY = ("ram", "carveout", "os", "vram", "gpu_cap", "use", "bandwidth", "host_bandwidth")


@click.group("devices", cls=WrappingGroup, invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable list")
@click.pass_context
def devices_command(ctx: click.Context, as_json: bool) -> None:
    """List device profiles (shipped, plus yours in ~/.config/memfit/profiles/).

    \b
    memfit devices            the table
    memfit devices show ID    one profile explained: pools per OS, caps,
                              reserves, backends, sources
    memfit devices show auto  this machine
    """
    from ..profile_files import list_profiles

    if ctx.invoked_subcommand is not None:
        return
    listing = list_profiles()
    rows = list_rows(listing)
    for problem in listing.problems:
        click.echo(f"warning: skipped {problem}", err=True)
    click.echo(list_json(rows, listing.problems) if as_json else list_text(rows, text_width()))


def _recorded_machine(root: str, flags: DeviceFlags) -> Any:
    """`devices show auto --root DIR`: the profile of a recorded machine tree, with the overrides."""
    from ..devices import apply_overrides, load_profile

    profile = load_profile("auto", probe_root=root)
    return apply_overrides(profile, **flags.overrides()) if flags.given_overrides() else profile


@devices_command.command("show")
@click.argument("device_id")
@click.option("--json", "as_json", is_flag=True, help="the profile and the derived pools as JSON")
@click.option("--root", type=click.Path(file_okay=False, exists=True), hidden=True,
              help="with 'auto': read a recorded machine tree instead of this machine")
@device_options(multiple=False, keys=OVERRIDES_ONLY)
def show_command(device_id: str, as_json: bool, root: str | None, **kw: Any) -> None:
    """Explain one profile (an id, a .toml file, or auto): memory pools per OS and carve-out,
    caps and how to change them, OS reserves, what each backend reports, sources."""
    from ..report.device_show import render_show_json, show_text

    flags = DeviceFlags.pop_from(kw)
    if device_id.lower() == "auto" and root:
        profile = _recorded_machine(root, flags)
    else:
        profile = resolve_devices(flags.with_device(device_id))[0]
    click.echo(render_show_json(profile) if as_json else show_text(profile))


COMMANDS = [devices_command]
