"""Plain-text plan: the recommendation first, then the memory bar, the quant table and the
carve-out table. Several devices: a side-by-side comparison, then each device's recommendation."""

from __future__ import annotations

import re
import textwrap

from tabulate import tabulate

from ..plan import DevicePlan, MemoryBar, MultiPlan, fmt_bios_size
from ..units import GIB
from .common import (
    CAP_HEADERS, CARVEOUT_HEADERS, TIER_SHORT, VARIANT_HEADERS, cap_rows, carveout_rows, device_title, gib,
    headline, lm_studio_line, request_title, tps_cell, variant_rows,
)

BAR_WIDTH = 64
TEXT_WIDTH = 110  # reasons and warnings wrap here (tables and commands never wrap: they are copied)
ASCII_GLYPHS = {"weights": "W", "kv": "K", "compute": "C", "carveout_free": ":", "host": "H", "reserve": "R",
                "free": "."}
UNICODE_GLYPHS = {"weights": "█", "kv": "▓", "compute": "▒", "carveout_free": "╌", "host": "▚", "reserve": "░",
                  "free": "·"}


def _cells(bar: MemoryBar, width: int) -> list[int]:
    """Characters per segment: proportional (largest remainder), at least one for any visible part."""
    total = max(1, bar.total_bytes)
    exact = [s.bytes / total * width for s in bar.segments]
    cells = [int(x) for x in exact]
    for i, s in enumerate(bar.segments):
        if s.bytes > 0 and cells[i] == 0:
            cells[i] = 1
    while sum(cells) > width:  # take back from the largest segment
        i = max(range(len(cells)), key=lambda j: cells[j])
        cells[i] -= 1
    order = sorted(range(len(cells)), key=lambda j: exact[j] - int(exact[j]), reverse=True)
    k = 0
    while sum(cells) < width and order:
        cells[order[k % len(order)]] += 1
        k += 1
    return cells


def render_bar(bar: MemoryBar, *, unicode: bool = False, width: int = BAR_WIDTH, indent: str = "  ") -> str:
    glyphs = UNICODE_GLYPHS if unicode else ASCII_GLYPHS
    cells = _cells(bar, width)
    body = "".join(glyphs[s.kind] * n for s, n in zip(bar.segments, cells))
    lines = [f"{indent}{bar.title}", f"{indent}[{body}]"]
    if bar.marker_bytes:
        pos = round(bar.marker_bytes / max(1, bar.total_bytes) * width)
        pos = min(max(pos, 1), width - 1)
        left, right = "carve-out", "OS sees"
        ruler = _span(left, pos, unicode) + _span(right, width - pos, unicode)
        lines.append(f"{indent} {ruler}")
    legend = [f"{glyphs[s.kind]} {s.label} {s.bytes / GIB:.1f}" for s in bar.segments if s.bytes > 0]
    lines.append(f"{indent}" + " · ".join(legend) + " GiB")
    return "\n".join(lines)


def _span(label: str, n: int, unicode: bool) -> str:
    """A bracket of n characters with a centred label: └── label ──┘ (or '<-- label -->')."""
    if n <= 0:
        return ""
    if n < len(label) + 4:
        return ("─" if unicode else "-") * n
    fill = n - len(label) - 4
    a, b = fill // 2, fill - fill // 2
    if unicode:
        return "└" + "─" * a + " " + label + " " + "─" * b + "┘"
    return "<" + "-" * a + " " + label + " " + "-" * b + ">"


def _recommendation_block(plan: DevicePlan, *, compact: bool = False) -> list[str]:
    r = plan.recommendation
    out = [f"Recommendation: {headline(plan)}"]
    c = r.commands
    if r.tier == "no_fit" or c is None:
        out += _bullets(r.reasons, "  - ")
        return out
    rows = []
    if c.bios:
        rows.append(("BIOS", c.bios))
    if c.cap:
        rows.append(("Linux kernel" if plan.device.os == "linux" else ("macOS" if plan.device.os == "macos" else "GPU cap"),
                     c.cap + (f"   ({r.cap_change.how})" if r.cap_change and r.cap_change.how and not compact else "")))
    rows.append(("llama.cpp", c.llama_server))
    rows.append(("LM Studio", lm_studio_line(c.lm_studio)))
    rows.append(("Ollama", "\n".join(c.ollama)))
    for label, text in rows:
        lines = text.split("\n")
        out.append(f"  {label:<12} {lines[0]}")
        out += [f"  {'':<12} {x}" for x in lines[1:]]
    if not compact:
        out.append("  Why:")
        out += _bullets(r.reasons, "    - ")
    if r.warnings:
        out.append("  Warnings:")
        out += _bullets(r.warnings, "    ! ")
    return out


def _bullets(items: list[str], lead: str) -> list[str]:
    out: list[str] = []
    for x in items:
        glued = re.sub(r"(\d) (GiB|GB|MiB|t/s)", "\\1\u00a0\\2", x)  # never split a number from its unit
        out += [line.replace("\u00a0", " ") for line in
                textwrap.wrap(glued, TEXT_WIDTH, initial_indent=lead, subsequent_indent=" " * len(lead),
                              break_on_hyphens=False, break_long_words=False)]
    return out


def render_device(plan: DevicePlan, *, unicode: bool = False) -> str:
    out = [request_title(plan), f"on {device_title(plan)}", ""]
    out += _recommendation_block(plan)
    out += _bullets(plan.warnings, "  ! ")
    if plan.bars:
        out += ["", "Memory with the recommendation loaded:"]
        out += [render_bar(b, unicode=unicode) for b in plan.bars]
    out += ["", f"Quants at {plan.ctx} tokens (GiB; ► = recommended; est. t/s at empty → full context):"]
    out.append(tabulate(variant_rows(plan), headers=VARIANT_HEADERS, tablefmt="simple", disable_numparse=True,
                        colalign=("left", "left", "right", "right", "left", "left", "right", "right", "right")))
    if plan.carveout_options:
        if plan.device.memory_architecture == "carveout":
            out += ["", f"BIOS carve-out options for {plan.recommendation.quant} ({plan.device.os}):"]
            out.append(tabulate(carveout_rows(plan.carveout_options, plan.device.os), headers=CARVEOUT_HEADERS,
                                tablefmt="simple", disable_numparse=True,
                                colalign=("left", "right", "right", "right", "left", "right", "right", "right", "left")))
        elif len(plan.carveout_options) > 1 or plan.carveout_options[0].cap_raised:
            out += ["", f"GPU memory limit for {plan.recommendation.quant}:"]
            out.append(tabulate(cap_rows(plan.carveout_options), headers=CAP_HEADERS, tablefmt="simple",
                                disable_numparse=True))
    out += ["", "est. = bandwidth-roofline estimate (docs/plan.md), not a measurement."]
    return "\n".join(out)


def render_comparison(multi: MultiPlan) -> str:
    plans = multi.plans
    first = plans[0]
    out = [f"{first.model.name} · {plans[0].ctx} tokens · compared on {len(plans)} devices", ""]
    rows = []
    for p in plans:
        r = p.recommendation
        setup = []
        if r.carveout_bytes is not None:
            setup.append(f"UMA {fmt_bios_size(r.carveout_bytes)} / OS {fmt_bios_size(r.os_keeps_bytes)}")
        if r.cap_change:
            setup.append(r.cap_change.setting)
        if r.tier == "partial_offload":
            setup.append(f"--n-cpu-moe {r.n_cpu_moe}" if r.n_cpu_moe else f"-ngl {r.n_gpu_layers}")
        rows.append([p.device.id, f"{p.device.os}/{p.device.use}", r.quant if r.tier != "no_fit" else "-",
                     TIER_SHORT[r.tier], ", ".join(setup) or "-",
                     gib(r.total_bytes) if r.tier != "no_fit" else "-", tps_cell(r.est_tps, r.est_tps_at_ctx)])
    out.append(tabulate(rows, headers=["device", "os/use", "recommended", "tier", "setup", "needs GiB", "est. t/s"],
                        tablefmt="simple", disable_numparse=True))
    # quant x device matrix
    quants = [v.quant for v in sorted(first.variants, key=lambda v: v.size_bytes, reverse=True)]
    matrix = []
    for q in quants:
        row = [q]
        for p in plans:
            v = next((x for x in p.variants if x.quant == q), None)
            if v is None:
                row.append("-")
                continue
            mark = "► " if (p.recommendation.quant == q and p.recommendation.tier != "no_fit") else ""
            cell = f"{mark}{TIER_SHORT[v.tier]}"
            if v.est_tps is not None:
                cell += f" {v.est_tps:.1f} t/s"
            if v.max_ctx_f16:
                cell += f" ≤{v.max_ctx_f16 // 1024}k"
            row.append(cell)
        matrix.append(row)
    out += ["", "Quants per device (tier, est. t/s, max ctx f16):"]
    out.append(tabulate(matrix, headers=["quant"] + [p.device.id for p in plans], tablefmt="simple",
                        disable_numparse=True))
    for p in plans:
        out += ["", f"── {device_title(p)}"]
        out += _recommendation_block(p, compact=True)
    out += ["", "est. = bandwidth-roofline estimate (docs/plan.md), not a measurement."]
    return "\n".join(out)


def render_text(multi: MultiPlan, *, unicode: bool = False) -> str:
    if len(multi.plans) == 1:
        return render_device(multi.plans[0], unicode=unicode)
    return render_comparison(multi)
