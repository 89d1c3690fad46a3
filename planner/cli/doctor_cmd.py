"""`memfit doctor` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from ..errors import MemfitError


@click.command("doctor", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1)
def doctor_command(args: tuple[str, ...]) -> None:
    """Not implemented yet."""
    raise MemfitError("'doctor' is not implemented yet")


COMMANDS = [doctor_command]
