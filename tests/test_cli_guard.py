"""The CLI guard: every outcome is an exit code and at most one line of error, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

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
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError" in err
