"""`memfit doctor`'s report: what this machine has, what llama.cpp will see, and what to change.

The text fits the terminal (planner/report/layout.py): labelled facts and findings wrap with a
hanging indent; installed RAM and the carve-out in GB as sold and as the BIOS names them, what the
OS sees, caps and reports in GiB. JSON is the diagnosis with the profile built from the probe."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..units import UNITS_NOTE, fmt_vendor_size
from .devices import OS_WORDS, gib
from .layout import kv_lines, render_table, wrap

if TYPE_CHECKING:
    from ..device_schema import DeviceProfile
    from ..probe.diagnose import Diagnosis
    from ..probe.facts import GpuFacts

MARK = {"problem": "[problem]", "warn": "[warn]", "info": "[info]", "ok": "[ok]"}
FINDING_INDENT = 10  # findings' text starts after the widest mark, "[problem] "
# The backends table is three short columns and needs no drop order: "total" and "max buffer"
# are sizes, and "backend" names like "vulkan (amdvlk)" are at most 15 wide.
BACKEND_HEADERS = ["backend", "total", "max buffer"]


def _os_line(d: Diagnosis) -> str:
    f = d.facts
    return OS_WORDS.get(d.os, d.os) + (f", kernel {f.kernel}" if f.kernel else "") + (
        f", {f.os_version}" if f.os_version else "")


def _gpu_row(g: GpuFacts) -> tuple[str, str]:
    """A GPU and its memory: a carve-out (GB, as the BIOS names it) or VRAM, GTT, or none reported."""
    mem = _gpu_memory_words(g)
    return ("GPU:", f"{g.name} ({g.kind}{', ' + g.pci_id if g.pci_id else ''})" + (f": {', '.join(mem)}" if mem else ""))


def _gpu_memory_words(g: GpuFacts) -> list[str]:
    mem = []
    if g.vram_total_bytes is not None:
        mem.append(f"carve-out {fmt_vendor_size(g.vram_total_bytes)}" if g.kind == "integrated"
                   else f"VRAM {gib(g.vram_total_bytes)}")
    if g.gtt_total_bytes is not None:
        mem.append(f"GTT {gib(g.gtt_total_bytes)}")
    if g.memory_not_reported:
        mem.append("memory not reported (unified)")
    return mem


def _gpu_memory_rows(d: Diagnosis) -> list[tuple[str, str]]:
    rows = []
    if d.carveout_bytes is not None:
        rows.append(("Carve-out:", f"{fmt_vendor_size(d.carveout_bytes)} (BIOS UMA frame buffer in effect)"))
    if d.gpu_cap_bytes is not None:
        state = " (default)" if d.gpu_cap_is_default else (" (raised)" if d.gpu_cap_is_default is False else "")
        rows.append(("GPU cap:", f"{gib(d.gpu_cap_bytes)}{state}; GPU may hold {gib(d.gpu_total_bytes)} in all"))
    return rows


def _header_rows(d: Diagnosis) -> list[tuple[str, str]]:
    """The machine in a few labelled facts: installed RAM as sold and the carve-out as the BIOS
    names it (GB), what the OS sees and the GPU may hold as memfit reads them (GiB)."""
    f = d.facts
    installed = fmt_vendor_size(f.ram_installed_bytes) if f.ram_installed_bytes else "-"
    rows = [("Machine:", " / ".join(x for x in (f.model_name, f.cpu_name) if x) or "unknown machine"),
            ("Profile:", _profile_words(d)), ("OS:", _os_line(d)),
            ("RAM:", f"{installed} installed, {gib(f.ram_visible_bytes)} seen by the OS, "
                     f"{gib(f.mem_available_bytes)} available")]
    rows += [_gpu_row(g) for g in f.gpus] or [("GPU:", "none found")]
    return rows + _gpu_memory_rows(d)


def _profile_words(d: Diagnosis) -> str:
    """The profile recognised (and how the machine differs from it), or the generic one."""
    return (d.recognised or "none (generic profile built from the probe)") + (
        f"  ({d.recognition})" if d.recognised and "differs" in d.recognition else "")


def _finding_lines(level: str, title: str, parts: list[tuple[str, str | None]], width: int) -> list[str]:
    """One finding: its mark and title, then its detail, fix and source under the title, each
    wrapped with a hanging indent."""
    pad = " " * FINDING_INDENT
    lines = wrap(title, width, MARK[level].ljust(FINDING_INDENT), pad)
    for label, text in parts:
        if text:
            lines += wrap(text, width, pad + label, pad + ("  " if label else ""))
    return lines


def _backend_lines(d: Diagnosis, width: int) -> list[str]:
    if not d.backends:
        return []
    rows = [[b.backend, gib(b.reports_bytes), gib(b.max_alloc_bytes) if b.max_alloc_bytes else "-"] for b in d.backends]
    return ["", "What llama.cpp's backends will report:"] + render_table(rows, BACKEND_HEADERS, width)


def _findings(d: Diagnosis, width: int) -> list[str]:
    lines = ["", "Findings:"] + ([] if d.findings else ["  nothing to change"])
    for x in d.findings:
        lines += _finding_lines(x.level, x.title, [("", x.detail), ("fix: ", x.fix), ("source: ", x.source)], width)
    return lines


def _unread(d: Diagnosis, width: int) -> list[str]:
    if not d.facts.notes:
        return []
    return ["", "Could not read:"] + [x for n in d.facts.notes for x in wrap(n, width, "  - ", "    ")]


def render_doctor_text(d: Diagnosis, width: int) -> str:
    lines = kv_lines(_header_rows(d), width) + _backend_lines(d, width) + _findings(d, width) + _unread(d, width)
    lines += [""] + wrap(f"Units: {UNITS_NOTE}.", width, "", "  ")
    lines += wrap("Plan for this machine with --device auto (memfit devices show auto explains the profile).", width)
    return "\n".join(lines)


def render_doctor_json(d: Diagnosis, profile: DeviceProfile | None) -> str:
    data = d.model_dump(mode="json")
    data["profile"] = profile.model_dump(mode="json") if profile is not None else None
    return json.dumps(data, indent=2, allow_nan=False)
