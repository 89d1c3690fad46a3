"""The `memfit` command group and its entry points.

Exit codes (documented in docs/cli.md): 0 = done (for `plan`: the recommendation fits),
1 = error, 2 = usage error, 3 = nothing fits on this device, 130 = interrupted (Ctrl-C).
Each subcommand lives in its own module; this file only wires them; guard.py turns every outcome
into an exit code.
"""

from __future__ import annotations

import importlib

import click

from .. import __version__
from . import guard
from .startup import skip_pydantic_plugins
from .guard import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_NO_FIT, EXIT_OK, EXIT_USAGE
from .help_format import WrappingGroup

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_NO_FIT", "EXIT_OK", "EXIT_USAGE", "cli", "main", "plan_main", "run"]


# command -> the module that defines it, imported when that command runs (or --help lists them):
# a start imports only the command it runs (`memfit --version` none), see docs/performance.md.
COMMAND_MODULES = {"inspect": "inspect_cmd", "estimate": "estimate_cmd", "plan": "plan_cmd",
                   "devices": "devices_cmd", "doctor": "doctor_cmd"}


class LazyGroup(WrappingGroup):
    """A click group that imports a command's module on first use (and wraps its command list)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            module = importlib.import_module(f"{__name__}.{COMMAND_MODULES[cmd_name]}")
            for command in module.COMMANDS:
                self.commands.setdefault(command.name or cmd_name, command)
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="memfit")
def cli() -> None:
    """Plan GGUF models onto your machine's memory: which quant, which BIOS VRAM split,
    which llama.cpp flags.

    \b
    Examples:
      memfit plan qwen3-vl-32b --device ai-max-395-64g --ctx 24k
      memfit inspect unsloth/Qwen3-30B-A3B-GGUF
      memfit estimate ./model.gguf -c 32k -fa on
      memfit devices
    """


def run(args: list[str] | None = None, *, prog_name: str = "memfit", command: click.Command | None = None) -> int:
    """Run the CLI (the `memfit` group unless `command` says otherwise) and return its exit code,
    never a traceback (planner/cli/guard.py)."""
    return guard.run(args, prog_name=prog_name, command=command or cli)


def main() -> None:
    skip_pydantic_plugins()
    guard.exit_with(run())


def plan_main() -> None:
    """The `plan` console script: the same as `memfit plan`."""
    skip_pydantic_plugins()
    from .plan_cmd import plan_command

    guard.exit_with(run(prog_name="plan", command=plan_command))
