"""`memfit estimate` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from ..errors import MemfitError


@click.command("estimate", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1)
def estimate_command(args: tuple[str, ...]) -> None:
    """Not implemented yet."""
    raise MemfitError("'estimate' is not implemented yet")


COMMANDS = [estimate_command]
