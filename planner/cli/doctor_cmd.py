"""`memfit doctor`: what this machine has, what llama.cpp will see, and what to change.

The flags and the calls: probe the machine (or a recorded tree), build its profile, diagnose it
(planner/probe/), optionally record what was read, print the report (planner/report/doctor.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import InputError, MemfitError
from ..probe import RecordingEnv, env_for, probe_machine
from ..probe.build import Recognition, build_profile
from ..probe.diagnose import diagnose
from ..report.doctor import render_doctor_json, render_doctor_text
from ..report.layout import text_width
from .device_options import USES

if TYPE_CHECKING:
    from ..device_schema import DeviceProfile
    from ..probe.facts import MachineFacts


def _check_writable(directory: str) -> None:
    """--record DIR must be a directory memfit can create and write, checked before probing."""
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        probe = Path(directory) / ".memfit-write-test"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as e:
        raise InputError(f"--record {directory}: cannot write there: {e.strerror or e}",
                         hint="choose a directory you can write to") from None


def _profile(facts: MachineFacts, use: str | None) -> tuple[DeviceProfile | None, Recognition | None]:
    """The machine's profile from the probe (None, noted, when it cannot be built), with --use."""
    try:
        profile, rec = build_profile(facts)
    except MemfitError as e:
        facts.notes.append(e.message)
        return None, None
    if use:
        from ..devices import apply_overrides

        profile = apply_overrides(profile, use=use)
    return profile, rec


def _save_recording(env: RecordingEnv, record: str) -> None:
    try:
        out = env.save()
    except OSError as e:
        raise InputError(f"--record {record}: cannot write the recording: {e.strerror or e}",
                         hint="choose a directory you can write to") from None
    click.echo(f"recorded into {out.parent} (replay with memfit doctor --root {out.parent})", err=True)


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="everything found, as JSON")
@click.option("--root", type=click.Path(file_okay=False, exists=True),
              help="read a recorded machine tree (DIR/proc, DIR/sys, DIR/.memfit-commands.json) instead of this machine")
@click.option("--record", type=click.Path(file_okay=False), default=None,
              help="copy everything the probe reads into DIR (to attach to a bug report or build a test fixture)")
@click.option("--use", type=click.Choice(USES, case_sensitive=False),
              help="how this machine is used (sets the OS reserve the checks compare against)")
def doctor_command(as_json: bool, root: str | None, record: str | None, use: str | None) -> None:
    """Read this machine's memory configuration: RAM, BIOS carve-out, GPU cap (GTT / shared /
    wired limit), what llama.cpp's backends will report, and what to change (each finding with
    its fix and source)."""
    if root and record:
        raise click.UsageError("--record copies a live machine; it cannot be combined with --root")
    if record:
        _check_writable(record)
    env = RecordingEnv(record) if record else env_for(root)
    facts = probe_machine(env)
    profile, rec = _profile(facts, use)
    d = diagnose(facts, profile, rec)
    if record:
        _save_recording(env, record)  # type: ignore[arg-type]
    click.echo(render_doctor_json(d, profile) if as_json else render_doctor_text(d, text_width()))


COMMANDS = [doctor_command]
