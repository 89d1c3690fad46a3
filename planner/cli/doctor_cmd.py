"""`memfit doctor`: what this machine has, what llama.cpp will see, and what to change."""

from __future__ import annotations

import json
from pathlib import Path

import click
from tabulate import tabulate

from ..errors import InputError, MemfitError
from ..probe import RecordingEnv, env_for, probe_machine
from ..probe.build import Recognition, build_profile
from ..probe.diagnose import Diagnosis, diagnose
from .devices_cmd import OS_WORDS, gib

MARK = {"problem": "[problem]", "warn": "[warn]   ", "info": "[info]   ", "ok": "[ok]     "}


def _text(d: Diagnosis) -> str:
    f = d.facts
    lines = []
    ident = " / ".join(x for x in (f.model_name, f.cpu_name) if x) or "unknown machine"
    lines.append(f"Machine:    {ident}")
    lines.append(f"Profile:    {d.recognised or 'none (generic profile built from the probe)'}"
                 + (f"  ({d.recognition})" if d.recognised and "differs" in d.recognition else ""))
    os_line = OS_WORDS.get(d.os, d.os)
    if f.kernel:
        os_line += f", kernel {f.kernel}"
    if f.os_version:
        os_line += f", {f.os_version}"
    lines.append(f"OS:         {os_line}")
    lines.append(f"RAM:        {gib(f.ram_installed_bytes)} installed, {gib(f.ram_visible_bytes)} seen by the OS, "
                 f"{gib(f.mem_available_bytes)} available")
    for g in f.gpus:
        mem = []
        if g.vram_total_bytes is not None:
            mem.append(("carve-out " if g.kind == "integrated" else "VRAM ") + gib(g.vram_total_bytes))
        if g.gtt_total_bytes is not None:
            mem.append(f"GTT {gib(g.gtt_total_bytes)}")
        if g.memory_not_reported:
            mem.append("memory not reported (unified)")
        lines.append(f"GPU:        {g.name} ({g.kind}{', ' + g.pci_id if g.pci_id else ''})"
                     + (f": {', '.join(mem)}" if mem else ""))
    if not f.gpus:
        lines.append("GPU:        none found")
    if d.carveout_bytes is not None:
        lines.append(f"Carve-out:  {gib(d.carveout_bytes)} (BIOS UMA frame buffer in effect)")
    if d.gpu_cap_bytes is not None:
        state = " (default)" if d.gpu_cap_is_default else (" (raised)" if d.gpu_cap_is_default is False else "")
        lines.append(f"GPU cap:    {gib(d.gpu_cap_bytes)}{state}; GPU may hold {gib(d.gpu_total_bytes)} in all")
    if d.backends:
        lines.append("")
        lines.append("What llama.cpp's backends will report:")
        rows = [[b.backend, gib(b.reports_bytes), gib(b.max_alloc_bytes) if b.max_alloc_bytes else "-"] for b in d.backends]
        lines.append(tabulate(rows, headers=["backend", "total", "max buffer"], tablefmt="simple"))
    lines.append("")
    lines.append("Findings:")
    if not d.findings:
        lines.append("  nothing to change")
    for x in d.findings:
        lines.append(f"{MARK[x.level]} {x.title}")
        if x.detail:
            lines.append(f"           {x.detail}")
        if x.fix:
            lines.append(f"           fix: {x.fix}")
        if x.source:
            lines.append(f"           source: {x.source}")
    if f.notes:
        lines.append("")
        lines.append("Could not read:")
        lines.extend(f"  - {n}" for n in f.notes)
    lines.append("")
    lines.append("Plan for this machine with --device auto (memfit devices show auto explains the profile).")
    return "\n".join(lines)


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


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="everything found, as JSON")
@click.option("--root", type=click.Path(file_okay=False, exists=True),
              help="read a recorded machine tree (DIR/proc, DIR/sys, DIR/.memfit-commands.json) instead of this machine")
@click.option("--record", type=click.Path(file_okay=False), default=None,
              help="copy everything the probe reads into DIR (to attach to a bug report or build a test fixture)")
@click.option("--use", type=click.Choice(["headless", "desktop", "daily"], case_sensitive=False),
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
    profile = None
    rec: Recognition | None = None
    try:
        profile, rec = build_profile(facts)
    except MemfitError as e:
        facts.notes.append(e.message)
    if profile is not None and use:
        from ..devices import apply_overrides

        profile = apply_overrides(profile, use=use)
    d = diagnose(facts, profile, rec)
    if record:
        try:
            out = env.save()  # type: ignore[union-attr]
        except OSError as e:
            raise InputError(f"--record {record}: cannot write the recording: {e.strerror or e}",
                             hint="choose a directory you can write to") from None
        click.echo(f"recorded into {out.parent} (replay with memfit doctor --root {out.parent})", err=True)
    if as_json:
        data = d.model_dump(mode="json")
        data["profile"] = profile.model_dump(mode="json") if profile is not None else None
        click.echo(json.dumps(data, indent=2, allow_nan=False))
    else:
        click.echo(_text(d))


COMMANDS = [doctor_command]
