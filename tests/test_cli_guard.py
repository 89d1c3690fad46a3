"""The CLI guard: every outcome is an exit code and at most one line of error, never a traceback."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys

import click
import pytest

from planner.testing.clirun import logical_lines
from planner.cli import EXIT_ERROR, EXIT_USAGE, cli, run
from planner.errors import GGUFError, InputError


@pytest.fixture
def boom_command():
    """Temporarily add commands that fail in known ways."""
    added = []

    def add(name, exc):
        @click.command(name)
        @click.option("--json", "as_json", is_flag=True)
        def _cmd(as_json):
            raise exc

        cli.add_command(_cmd)
        added.append(name)

    yield add
    for name in added:
        cli.commands.pop(name, None)


def test_help_works_for_both_entry_points():
    for args in (["--help"], ["plan", "--help"], ["inspect", "--help"], ["estimate", "--help"],
                 ["devices", "--help"], ["doctor", "--help"]):
        out = subprocess.run([sys.executable, "-m", "planner", *args], capture_output=True, text=True)
        assert out.returncode == 0, (args, out.stderr)
        assert "Usage:" in out.stdout


def test_unknown_command_is_a_usage_error(capsys):
    assert run(["no-such-command"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "No such command" in err and "Traceback" not in err


def test_project_error_is_one_line_with_hint(boom_command, capsys):
    boom_command("boom", GGUFError("bad magic b'GGUX' in x.gguf", hint="is this a GGUF file?"))
    assert run(["boom"]) == EXIT_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: bad magic b'GGUX' in x.gguf", "hint: is this a GGUF file?"]


def test_input_error_exits_2(boom_command, capsys):
    boom_command("bad-input", InputError("invalid context 'abc'"))
    assert run(["bad-input"]) == EXIT_USAGE


def test_json_errors_are_objects(boom_command, capsys):
    boom_command("boom-json", GGUFError("truncated header"))
    assert run(["boom-json", "--json"]) == EXIT_ERROR
    payload = json.loads(capsys.readouterr().out)
    assert payload["error"]["kind"] == "gguf"
    assert payload["error"]["message"] == "truncated header"
    assert payload["error"]["exit_code"] == EXIT_ERROR


def test_unexpected_exception_is_reported_in_one_line(boom_command, capsys, monkeypatch):
    monkeypatch.delenv("MEMFIT_DEBUG", raising=False)
    boom_command("bug", ZeroDivisionError("division by zero"))
    assert run(["bug"]) == EXIT_ERROR
    err = capsys.readouterr().err
    lines = logical_lines(err)  # one message, wrapped to 80 columns
    assert len(lines) == 1 and "internal error: ZeroDivisionError" in lines[0]


# --------------------------------------------------------------------------- closed pipes


def _run_into_closed_pipe(*args: str, entry: str = "memfit") -> subprocess.CompletedProcess:
    """Run the CLI with stdout connected to a pipe whose reader has already gone: every write
    fails with EPIPE, as in `memfit devices | true` (deterministic, unlike a race with head)."""
    code = ("from planner.cli import main; main()" if entry == "memfit"
            else "from planner.cli import plan_main; plan_main()")
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([sys.executable, "-c", code, *args], stdout=w, stderr=subprocess.PIPE, text=True,
                              timeout=120)
    finally:
        os.close(w)


@pytest.mark.parametrize("args", [["devices"], ["devices", "--json"], ["devices", "show", "ai-max-395-64g"],
                                  ["--help"]])
def test_closed_pipe_exits_0_quietly(args):
    out = _run_into_closed_pipe(*args)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""


def test_closed_pipe_on_the_plan_script_exits_0_quietly():
    out = _run_into_closed_pipe("--help", entry="plan")
    assert (out.returncode, out.stderr) == (0, "")


def test_closed_pipe_keeps_an_errors_exit_code():
    # the JSON error object goes to stdout, which nobody reads any more: still exit 1, no traceback
    out = _run_into_closed_pipe("devices", "show", "no-such-device", "--json")
    assert out.returncode == 1 and out.stderr == ""


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("head") is None, reason="needs bash and head")
def test_pipe_into_head_exits_0():
    cmd = f"set -o pipefail; {shlex.quote(sys.executable)} -m planner devices | head -1"
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 1 and out.stdout.startswith("id")
    assert "Traceback" not in out.stderr and "Broken pipe" not in out.stderr
