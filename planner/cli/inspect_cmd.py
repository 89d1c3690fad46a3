"""`memfit inspect` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from ..errors import MemfitError


@click.command("inspect", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1)
def inspect_command(args: tuple[str, ...]) -> None:
    """Not implemented yet."""
    raise MemfitError("'inspect' is not implemented yet")


COMMANDS = [inspect_command]
