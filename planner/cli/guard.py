"""The one place where outcomes become exit codes (docs/cli.md): every error, usage error, Ctrl-C
and closed pipe ends as one line (or JSON with --json) and a code, never a traceback.

Exit codes: 0 = done (for `plan`: the recommendation fits), 1 = error, 2 = usage error, 3 = nothing
fits on this device, 130 = interrupted (Ctrl-C).
"""

from __future__ import annotations

import errno
import json
import os
import sys
from typing import Any, Callable

import click

from ..errors import MemfitError
from ..units import printable

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_FIT = 3
EXIT_INTERRUPTED = 130


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


def run(args: list[str] | None, *, prog_name: str, command: click.Command) -> int:
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


def _aborted(e: click.exceptions.Abort, as_json: bool, prog_name: str) -> int:
    """click turns Ctrl-C (KeyboardInterrupt) into Abort: that is an interruption, exit 130."""
    if isinstance(e.__cause__ or e.__context__, KeyboardInterrupt):
        return _interrupted(as_json)
    return _fail(None, "aborted", EXIT_ERROR, "usage", None, as_json)


def _usage_error(e: click.ClickException, as_json: bool, prog_name: str) -> int:
    """click's own usage errors, in the same one-line form as ours (plus where to read more)."""
    return _fail(None, e.format_message(), e.exit_code, "usage", _usage_hint(e, prog_name), as_json)


def _memfit_error(e: MemfitError, as_json: bool, prog_name: str) -> int:
    return _fail(e, e.message, e.exit_code, e.kind, e.hint, as_json)


def _internal_error(e: Exception, as_json: bool, prog_name: str) -> int:
    """The last guard: a bug, reported in one line (MEMFIT_DEBUG=1 raises it for the traceback)."""
    if _is_epipe(e):
        return _closed_pipe()
    if os.environ.get("MEMFIT_DEBUG"):
        raise e
    return _fail(None, f"internal error: {type(e).__name__}: {e} (set MEMFIT_DEBUG=1 for the traceback)",
                 EXIT_ERROR, "internal", None, as_json)


# what ends a run -> its exit code (and its line), the first match wins
OUTCOMES: list[tuple[type[BaseException], Callable[[Any, bool, str], int]]] = [
    (click.exceptions.Exit, lambda e, as_json, prog: e.exit_code),
    (click.exceptions.Abort, _aborted),
    (click.ClickException, _usage_error),
    (MemfitError, _memfit_error),
    (KeyboardInterrupt, lambda e, as_json, prog: _interrupted(as_json)),
    (Exception, _internal_error),
]


def _guarded_run(args: list[str] | None, prog_name: str, target: click.Command) -> int:
    argv = list(sys.argv[1:] if args is None else args)
    as_json = _wants_json(argv)
    # click's help and usage text at the width every other text is rendered at (subcommands
    # inherit it): COLUMNS, else the terminal's width, else 80 (planner/report/layout.py)
    from ..report.layout import text_width

    width = text_width()
    try:
        rv = target.main(args=argv, prog_name=prog_name, standalone_mode=False,
                         terminal_width=width, max_content_width=width)
        return rv if isinstance(rv, int) else EXIT_OK
    except (KeyboardInterrupt, Exception) as e:
        handle = next(h for kind, h in OUTCOMES if isinstance(e, kind))
        return handle(e, as_json, prog_name)


def exit_with(code: int) -> None:
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
