"""`memfit plan` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from ..errors import MemfitError


@click.command("plan", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1)
def plan_command(args: tuple[str, ...]) -> None:
    """Not implemented yet."""
    raise MemfitError("'plan' is not implemented yet")


COMMANDS = [plan_command]
