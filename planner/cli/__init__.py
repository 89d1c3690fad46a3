"""The `memfit` command group and the one place where errors become exit codes.

Exit codes (documented in docs/cli.md): 0 = done (for `plan`: the recommendation fits),
1 = error, 2 = usage error, 3 = nothing fits on this device, 130 = interrupted (Ctrl-C).
Each subcommand lives in its own module; this file only wires them and guards the exits.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import sys

import click

from .. import __version__
from ..errors import MemfitError
from ..units import printable
from .help_format import WrappingGroup

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_FIT = 3
EXIT_INTERRUPTED = 130


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


def _wants_json(argv: list[str]) -> bool:
    return "--json" in argv or any(a in ("--format=json",) for a in argv) or (
        "--format" in argv and argv.index("--format") + 1 < len(argv) and argv[argv.index("--format") + 1] == "json"
    )


def _fail(err: MemfitError | None, message: str, code: int, kind: str, hint: str | None, as_json: bool) -> int:
    """Print the error (JSON on stdout, else one or two lines on stderr) and return its exit code,
    which stands even when the reader of the output has already gone away. The error and its hint
    stay one line each at any width (the terminal wraps them; scripts and grep read one line)."""
    try:
        if as_json:
            click.echo(json.dumps({"error": {"kind": kind, "message": message, "hint": hint, "exit_code": code}}, allow_nan=False))
        else:
            click.echo(printable(f"error: {message}"), err=True)
            if hint:
                click.echo(printable(f"hint: {hint}"), err=True)
    except OSError as e:
        if not _is_epipe(e):
            raise
        _silence_stdout()
    return code


def _usage_hint(e: click.ClickException, prog_name: str) -> str:
    """Where to read about the options: the failing (sub)command's --help."""
    ctx = getattr(e, "ctx", None)
    path = ctx.command_path if ctx is not None and ctx.command_path else prog_name
    return f"see `{path} --help`"


def _interrupted(as_json: bool) -> int:
    return _fail(None, "interrupted", EXIT_INTERRUPTED, "interrupted", None, as_json)


def _silence_stdout() -> None:
    """The reader of our output went away (`memfit devices | head -1`): point stdout at /dev/null
    so the interpreter's final flush of what is still buffered cannot fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ is not None else 1)
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (tests' captured streams)
        pass


def _closed_pipe() -> int:
    """A closed pipe is the reader's choice, not our failure: exit 0 quietly (not 1, not 141)."""
    _silence_stdout()
    return EXIT_OK


def _is_epipe(e: BaseException) -> bool:
    return isinstance(e, BrokenPipeError) or (isinstance(e, OSError) and e.errno == errno.EPIPE)


def run(args: list[str] | None = None, *, prog_name: str = "memfit", command: click.Command | None = None) -> int:
    """Run the CLI and turn every outcome into an exit code (never a traceback). A reader that
    closes the pipe early (`memfit devices | head -1`) ends the run with 0, wherever the write
    failed: in a command, in click, or while printing an error."""
    stdout, stderr = sys.stdout, sys.stderr
    try:
        return _guarded_run(args, prog_name, command)
    except SystemExit as e:
        # click answers EPIPE while a command echoes by itself: it swaps stdout/stderr for
        # wrappers that swallow the failing flush and calls sys.exit(1). The swapped stdout is how
        # it is recognised; any other SystemExit keeps its code.
        if sys.stdout is not stdout:
            sys.stdout, sys.stderr = stdout, stderr
            return _closed_pipe()
        code = e.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_ERROR)
    except OSError as e:
        if _is_epipe(e):
            return _closed_pipe()
        raise


def _guarded_run(args: list[str] | None, prog_name: str, command: click.Command | None) -> int:
    argv = list(sys.argv[1:] if args is None else args)
    as_json = _wants_json(argv)
    target = command or cli
    # click's help and usage text at the width every other text is rendered at (subcommands
    # inherit it): COLUMNS, else the terminal's width, else 80 (planner/report/layout.py)
    from ..report.layout import text_width

    width = text_width()
    try:
        rv = target.main(args=argv, prog_name=prog_name, standalone_mode=False,
                         terminal_width=width, max_content_width=width)
        return rv if isinstance(rv, int) else EXIT_OK
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort as e:
        # click turns Ctrl-C (KeyboardInterrupt) into Abort: that is an interruption, exit 130
        if isinstance(e.__cause__ or e.__context__, KeyboardInterrupt):
            return _interrupted(as_json)
        return _fail(None, "aborted", EXIT_ERROR, "usage", None, as_json)
    except click.ClickException as e:
        # click's own usage errors, in the same one-line form as ours (plus where to read more)
        return _fail(None, e.format_message(), e.exit_code, "usage", _usage_hint(e, prog_name), as_json)
    except MemfitError as e:
        return _fail(e, e.message, e.exit_code, e.kind, e.hint, as_json)
    except KeyboardInterrupt:
        return _interrupted(as_json)
    except Exception as e:  # the last guard: a bug, reported in one line
        if _is_epipe(e):
            return _closed_pipe()
        if os.environ.get("MEMFIT_DEBUG"):
            raise
        return _fail(None, f"internal error: {type(e).__name__}: {e} (set MEMFIT_DEBUG=1 for the traceback)",
                     EXIT_ERROR, "internal", None, as_json)


def _exit(code: int) -> None:
    """Exit with `code`. After Ctrl-C, exit at once: header reads still running in worker threads
    must not hold the process (cache writes are atomic, so cutting them short corrupts nothing).
    Output still buffered is flushed here, where a reader that has gone away is still a quiet 0."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError, ValueError):
        _silence_stdout()
    if code == EXIT_INTERRUPTED:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - exiting anyway
                pass
        os._exit(code)
    sys.exit(code)


def main() -> None:
    _exit(run())


def plan_main() -> None:
    """The `plan` console script: the same as `memfit plan`."""
    from .plan_cmd import plan_command

    _exit(run(prog_name="plan", command=plan_command))
