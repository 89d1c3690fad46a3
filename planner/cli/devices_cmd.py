"""`memfit devices` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from ..errors import MemfitError


@click.command("devices", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1)
def devices_command(args: tuple[str, ...]) -> None:
    """Not implemented yet."""
    raise MemfitError("'devices' is not implemented yet")


COMMANDS = [devices_command]
