"""`memfit doctor`: what this machine has, what llama.cpp will see, and what to change.

The text fits the terminal (planner/report/layout.py): labelled facts and findings wrap with a
hanging indent; installed RAM and the carve-out in GB as sold and as the BIOS names them, what the
OS sees, caps and reports in GiB."""

from __future__ import annotations

import json
from pathlib import Path

import click
from ..errors import InputError, MemfitError
from ..probe import RecordingEnv, env_for, probe_machine
from ..probe.build import Recognition, build_profile
from ..probe.diagnose import Diagnosis, diagnose
from ..report.layout import kv_lines, render_table, text_width, wrap
from ..units import UNITS_NOTE, fmt_vendor_size
from .devices_cmd import OS_WORDS, gib

MARK = {"problem": "[problem]", "warn": "[warn]", "info": "[info]", "ok": "[ok]"}
FINDING_INDENT = 10  # findings' text starts after the widest mark, "[problem] "
# The backends table is three short columns and needs no drop order: "total" and "max buffer"
# are sizes, and "backend" names like "vulkan (amdvlk)" are at most 15 wide.
BACKEND_HEADERS = ["backend", "total", "max buffer"]


def _header_rows(d: Diagnosis) -> list[tuple[str, str]]:
    """The machine in a few labelled facts: installed RAM as sold and the carve-out as the BIOS
    names it (GB), what the OS sees and the GPU may hold as memfit reads them (GiB)."""
    f = d.facts
    rows: list[tuple[str, str]] = []
    ident = " / ".join(x for x in (f.model_name, f.cpu_name) if x) or "unknown machine"
    rows.append(("Machine:", ident))
    rows.append(("Profile:", (d.recognised or "none (generic profile built from the probe)")
                 + (f"  ({d.recognition})" if d.recognised and "differs" in d.recognition else "")))
    os_line = OS_WORDS.get(d.os, d.os)
    if f.kernel:
        os_line += f", kernel {f.kernel}"
    if f.os_version:
        os_line += f", {f.os_version}"
    rows.append(("OS:", os_line))
    installed = fmt_vendor_size(f.ram_installed_bytes) if f.ram_installed_bytes else "-"
    rows.append(("RAM:", f"{installed} installed, {gib(f.ram_visible_bytes)} seen by the OS, "
                         f"{gib(f.mem_available_bytes)} available"))
    for g in f.gpus:
        mem = []
        if g.vram_total_bytes is not None:
            mem.append(f"carve-out {fmt_vendor_size(g.vram_total_bytes)}" if g.kind == "integrated"
                       else f"VRAM {gib(g.vram_total_bytes)}")
        if g.gtt_total_bytes is not None:
            mem.append(f"GTT {gib(g.gtt_total_bytes)}")
        if g.memory_not_reported:
            mem.append("memory not reported (unified)")
        rows.append(("GPU:", f"{g.name} ({g.kind}{', ' + g.pci_id if g.pci_id else ''})"
                             + (f": {', '.join(mem)}" if mem else "")))
    if not f.gpus:
        rows.append(("GPU:", "none found"))
    if d.carveout_bytes is not None:
        rows.append(("Carve-out:", f"{fmt_vendor_size(d.carveout_bytes)} (BIOS UMA frame buffer in effect)"))
    if d.gpu_cap_bytes is not None:
        state = " (default)" if d.gpu_cap_is_default else (" (raised)" if d.gpu_cap_is_default is False else "")
        rows.append(("GPU cap:", f"{gib(d.gpu_cap_bytes)}{state}; GPU may hold {gib(d.gpu_total_bytes)} in all"))
    return rows


def _finding_lines(level: str, title: str, parts: list[tuple[str, str | None]], width: int) -> list[str]:
    """One finding: its mark and title, then its detail, fix and source under the title, each
    wrapped with a hanging indent."""
    pad = " " * FINDING_INDENT
    lines = wrap(title, width, MARK[level].ljust(FINDING_INDENT), pad)
    for label, text in parts:
        if text:
            lines += wrap(text, width, pad + label, pad + ("  " if label else ""))
    return lines


def _text(d: Diagnosis, width: int) -> str:
    f = d.facts
    lines = kv_lines(_header_rows(d), width)
    if d.backends:
        lines.append("")
        lines.append("What llama.cpp's backends will report:")
        rows = [[b.backend, gib(b.reports_bytes), gib(b.max_alloc_bytes) if b.max_alloc_bytes else "-"] for b in d.backends]
        lines += render_table(rows, BACKEND_HEADERS, width)
    lines.append("")
    lines.append("Findings:")
    if not d.findings:
        lines.append("  nothing to change")
    for x in d.findings:
        lines += _finding_lines(x.level, x.title, [("", x.detail), ("fix: ", x.fix), ("source: ", x.source)], width)
    if f.notes:
        lines.append("")
        lines.append("Could not read:")
        for n in f.notes:
            lines += wrap(n, width, "  - ", "    ")
    lines.append("")
    lines += wrap(f"Units: {UNITS_NOTE}.", width, "", "  ")
    lines += wrap("Plan for this machine with --device auto (memfit devices show auto explains the profile).", width)
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
        click.echo(_text(d, text_width()))


COMMANDS = [doctor_command]
