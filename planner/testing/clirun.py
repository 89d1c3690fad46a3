"""Run the CLI in-process the way the installed console scripts do: through planner.cli.run, the
guard that turns every outcome into an exit code (click's CliRunner alone would bypass it)."""

from __future__ import annotations

import sys

import click
from click.testing import CliRunner, Result

from ..cli import run


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                 "help_option_names": []})
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def _entry(argv: tuple[str, ...]) -> None:
    sys.exit(run(list(argv)))


def memfit(*args: str) -> Result:
    """`memfit ARGS...` with captured output and the real exit code."""
    return CliRunner().invoke(_entry, list(args), catch_exceptions=False)


def plan(*args: str) -> Result:
    """The `plan` console script (the same as `memfit plan`)."""
    return memfit("plan", *args)


def plan_json(*args: str, code: int = 0) -> dict:
    """`plan ARGS... --json`, its exit code checked, its JSON parsed."""
    import json

    result = plan(*args, "--json")
    assert result.exit_code == code, result.output
    return json.loads(result.output)


def logical_lines(text: str) -> list[str]:
    """Output as its logical lines: a message wrapped to the terminal width (an error, hint or
    note, whose continuation lines are indented) joined back into one line."""
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith(" ") and out and out[-1].startswith(("error: ", "hint: ", "note: ")):
            out[-1] += " " + line.strip()
        else:
            out.append(line)
    return out
