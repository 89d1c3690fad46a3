"""Plain-text plan: warnings and assumptions, the recommendation, the memory bar, the quant table
and the carve-out table. Several devices: a side-by-side comparison, then each device's
recommendation. Every line fits the terminal width (planner/report/layout.py: COLUMNS, the tty,
else 80): prose wraps, tables drop columns in a stated order (and say which), commands wrap at
argument boundaries with the continuation of the shell they are written for (still
copy-pasteable)."""

from __future__ import annotations

import re
import textwrap
from contextvars import ContextVar

from ..plan_types import DevicePlan, MemoryBar, MultiPlan
from ..units import GIB, fmt_bios_size
from .layout import render_table, text_width
from .common import (ctx_cell,
    CAP_HEADERS, carveout_caption, device_title_parts, tier_short, VARIANT_CAPTION, VARIANT_HEADERS, cap_rows,
    carveout_table, gib, headline, mmproj_line, prefill_line, request_title, tps_cell, variant_caption,
    variant_headers, variant_rows, warnings_first, ttft_cell,
)

BAR_WIDTH = 64
LABEL_WIDTH = 12  # "  BIOS         ..." rows of the recommendation block
_WIDTH: ContextVar[int] = ContextVar("text_width", default=80)
_CONTINUATION: ContextVar[str] = ContextVar("continuation", default=" \\")
# columns the tables give up first when the terminal is narrow (the least needed first)
VARIANT_DROP = ("fill", "file", "max ctx q8_0", "fast q8", "spill")
CARVEOUT_DROP = ("t/s", "GPU max", "OS keeps")
CAP_DROP = ("t/s",)
COMPARE_DROP = ("fill", "pp t/s", "os/use", "needs GiB")


def _w() -> int:
    """The width this report renders at (set once per render)."""
    return _WIDTH.get()
ASCII_GLYPHS = {"weights": "W", "mmproj": "P", "kv": "K", "compute": "C", "safety": "s", "carveout_free": ":",
                "host": "H", "reserve": "R", "free": ".", "firmware": "F"}
UNICODE_GLYPHS = {"weights": "█", "mmproj": "▙", "kv": "▓", "compute": "▒", "safety": "▁", "carveout_free": "╌",
                  "host": "▚", "reserve": "░", "free": "·", "firmware": "▪"}


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


def render_bar(bar: MemoryBar, *, unicode: bool = False, width: int | None = None, indent: str = "  ",
               text_width: int | None = None) -> str:
    text_width = text_width or _w()
    width = width or min(BAR_WIDTH, text_width - len(indent) - 2)
    glyphs = UNICODE_GLYPHS if unicode else ASCII_GLYPHS
    cells = _cells(bar, width)
    body = "".join(glyphs[s.kind] * n for s, n in zip(bar.segments, cells))
    lines = [f"{indent}{bar.title}", f"{indent}[{body}]"]
    if bar.marker_bytes:
        pos = round(bar.marker_bytes / max(1, bar.total_bytes) * width)
        pos = min(max(pos, 1), width - 1)
        ruler = _span("carve-out", pos, unicode) + _span("OS sees", width - pos, unicode)
        lines.append(f"{indent} {ruler}")
    sums: dict[tuple[str, str], int] = {}
    for seg in bar.segments:  # one legend entry per kind (the safety margin can sit in two places)
        if seg.bytes > 0:
            sums[(seg.kind, seg.label)] = sums.get((seg.kind, seg.label), 0) + seg.bytes
    legend = [f"{glyphs[kind]} {label} {n / GIB:.1f}" for (kind, label), n in sums.items()]
    legend[-1] += " GiB"
    lines += _join_wrapped(legend, " · ", text_width, indent)
    return "\n".join(lines)


def _span(label: str, n: int, unicode: bool) -> str:
    """A bracket of n characters with a centred label: └── label ──┘ (or '<-- label -->'); a bare
    tick when the part is too small for a label (a 512 MB carve-out)."""
    if n <= 0:
        return ""
    if n < len(label) + 4:
        return ("┴" if unicode else "^") + ("─" if unicode else "-") * (n - 1) if n > 1 else ("┴" if unicode else "^")
    fill = n - len(label) - 4
    a, b = fill // 2, fill - fill // 2
    if unicode:
        return "└" + "─" * a + " " + label + " " + "─" * b + "┘"
    return "<" + "-" * a + " " + label + " " + "-" * b + ">"


def _join_wrapped(items: list[str], sep: str, width: int, indent: str, cont: str | None = None) -> list[str]:
    """Join items with sep, starting a new line (indented by `cont`, default `indent`) before an item
    that would cross `width`. Items are never split."""
    cont = indent if cont is None else cont
    lines: list[str] = []
    cur: str | None = None
    for item in items:
        if cur is None:
            cur = indent + item
        elif len(cur) + len(sep) + len(item) > width:
            lines.append(cur)
            cur = cont + item
        else:
            cur += sep + item
    if cur is not None:
        lines.append(cur)
    return lines


_SHELL_OPS = ("&&", "||", "|", ">", ">>", ";")


def _shell_units(cmd: str) -> list[str]:
    """Split a command line at spaces outside quotes into pieces that belong together: a flag with
    its value, an operator with the word after it. Quoted words stand alone, so a long list of them
    (a Modelfile written by printf or Set-Content) can wrap between them."""
    words = re.findall(r"(?:'[^']*'|\"[^\"]*\"|\S)+", cmd)
    units: list[str] = []
    for w in words:
        prev = units[-1] if units else ""
        flag_wants_value = prev.startswith("-") and " " not in prev and not w.startswith("-")
        if prev and w not in _SHELL_OPS and (prev in _SHELL_OPS or flag_wants_value):
            units[-1] = f"{prev} {w}"
        else:
            units.append(w)
    return units


def _runtime_words(plan: DevicePlan) -> str:
    """The runtime statement without its leading "runtime: " (planner/runtimes.py)."""
    return plan.runtime_statement.removeprefix("runtime: ") or plan.runtime


def wrap_command(cmd: str, width: int, first_indent: int, indent: int, continuation: str = " \\") -> list[str]:
    """A command as lines no wider than `width` (when its pieces allow), each but the last ending
    with the shell's continuation (' \\' POSIX, ' `' PowerShell, ' ^' cmd) as its last character."""
    if first_indent + len(cmd) <= width:
        return [cmd]
    lines: list[str] = []
    cur = ""
    avail = width - first_indent - len(continuation)
    for u in _shell_units(cmd):
        if cur and len(cur) + 1 + len(u) > avail:
            lines.append(cur + continuation)
            cur = "  " + u  # continuation lines indented two more
            avail = width - indent - len(continuation)
        else:
            cur = f"{cur} {u}" if cur else u
    lines.append(cur)
    return lines


def _row(label: str, lines: list[str]) -> list[str]:
    pad = " " * LABEL_WIDTH
    out = [f"  {label:<{LABEL_WIDTH}} {lines[0]}" if lines else f"  {label}"]
    out += [f"  {pad} {x}" for x in lines[1:]]
    return out


def _prose(text: str) -> list[str]:
    """Wrap prose to the space right of a row label."""
    room = _w() - LABEL_WIDTH - 3
    out: list[str] = []
    for para in text.split("\n"):
        out += textwrap.wrap(_glue(para), room, break_on_hyphens=False, break_long_words=False) or [""]
    return [x.replace("\u00a0", " ") for x in out]


def _command_lines(cmds: list[str]) -> list[str]:
    start = 2 + LABEL_WIDTH + 1
    out: list[str] = []
    for c in cmds:
        out += wrap_command(c, _w(), start, start, _CONTINUATION.get())
    return out


def _recommendation_block(plan: DevicePlan, *, compact: bool = False) -> list[str]:
    r = plan.recommendation
    out = _bullets([f"Recommendation: {headline(plan)}"], "", None, "  ")
    pf = prefill_line(plan)
    if pf and not compact:
        out += _bullets([pf], "  ")
    c = r.commands
    if r.tier == "no_fit" or c is None:
        out += _bullets(r.reasons, "  - ")
        return out
    if c.bios:
        first, *rest = c.bios.split("\n")
        out += _row("BIOS", [first] + [x for part in rest for x in _prose(part)])
    if c.cap:
        label = "Linux kernel" if plan.device.os == "linux" else ("macOS" if plan.device.os == "macos" else "GPU cap")
        how = r.cap_change.how if (r.cap_change and r.cap_change.how and not compact) else ""
        out += _row(label, _command_lines([c.cap]) + (_prose(f"({how})") if how else []))
    out += _row("llama.cpp", _command_lines([c.llama_server]))
    mm = mmproj_line(plan)
    if mm:
        out += _row("Vision", _prose(mm))
    room = _w() - LABEL_WIDTH - 3
    if compact:
        lms = [f"{k} {v}" for k, v in c.lm_studio.items() if k not in ("lms", "note")]
        out += _row("LM Studio", [x.strip() for x in _join_wrapped(lms, " · ", room, "", "")])
    else:
        lms_lines: list[str] = []
        for k, v in c.lm_studio.items():
            if k == "lms":
                lms_lines += _command_lines([v])
            elif k == "note":
                lms_lines += _prose(f"note: {v}")
            else:
                why = c.lm_studio_why.get(k)
                lms_lines += _prose(f"{k}: {v}" + (f" ({why})" if why else ""))
        out += _row("LM Studio", lms_lines)
    ollama: list[str] = []
    for line in c.ollama:
        if line.startswith(("in the session:", "note:")):
            ollama += _prose(line)
        else:
            ollama += _command_lines([line])
    out += _row("Ollama", ollama)
    if c.ollama_app and not compact:
        app: list[str] = []
        for line in c.ollama_app:
            app += _prose(line) if line.startswith(("then", "#")) else _command_lines([line])
        out += _row("Ollama app", app)
    if not compact:
        out.append("  Why:")
        out += _bullets(r.reasons, "    - ")
    if r.warnings:
        out.append("  Warnings:")
        out += _bullets(r.warnings, "    ! ")
    return out


def _glue(text: str) -> str:
    """Never split a number from its unit."""
    return re.sub(r"(\d) (GiB|GB|MiB|MB|t/s)", "\\1\u00a0\\2", text)


def _bullets(items: list[str], lead: str, width: int | None = None, cont: str | None = None) -> list[str]:
    width = width or _w()
    cont = " " * len(lead) if cont is None else cont
    out: list[str] = []
    for x in items:
        out += [line.replace("\u00a0", " ") for line in
                textwrap.wrap(_glue(x), width, initial_indent=lead, subsequent_indent=cont,
                              break_on_hyphens=False, break_long_words=False)]
    return out


FOOTNOTE = "est. = estimate from the speed model fitted on measurements (docs/speed.md), not a measurement."


def _table(rows: list[list[str]], headers: list[str], colalign: tuple[str, ...] | None = None,
           drop: tuple[str, ...] = ()) -> str:
    return "\n".join(render_table(rows, headers, _w(), drop_order=drop, align=colalign))


def render_device(plan: DevicePlan, *, unicode: bool = False) -> str:
    out = _bullets([request_title(plan)], "") + _bullets([" · ".join(device_title_parts(plan))], "on ", None, "   ")
    out += _bullets(warnings_first(plan), "  ! ")
    out += _bullets(plan.device.assumptions, "  assumed: ")
    out.append("")
    out += _recommendation_block(plan)
    if plan.bars:
        out += ["", "Memory with the recommendation loaded:"]
        out += [render_bar(b, unicode=unicode) for b in plan.bars]
    out += ["", f"Quants at {plan.ctx} tokens:"]
    out += _bullets([variant_caption(plan)], "")
    headers = variant_headers(plan)
    out.append(_table(variant_rows(plan), headers, ("left", "left", "right", "right", "left", "left")
                      + ("right",) * (len(headers) - 6), VARIANT_DROP))
    if plan.carveout_options:
        if plan.device.memory_architecture == "carveout":
            out += ["", f"BIOS carve-out options for {plan.recommendation.quant} ({plan.device.os}):"]
            rows, headers, align = carveout_table(plan.carveout_options)
            out += _bullets([carveout_caption(headers)], "")
            out.append(_table(rows, headers, align, CARVEOUT_DROP))
        elif len(plan.carveout_options) > 1 or plan.carveout_options[0].cap_raised:
            out += ["", f"GPU memory limit for {plan.recommendation.quant}:"]
            out.append(_table(cap_rows(plan.carveout_options), CAP_HEADERS,
                              ("left", "right", "left", "right", "right", "right", "left"), CAP_DROP))
    out += [""] + _bullets([FOOTNOTE], "")
    out += _bullets([f"sized for {_runtime_words(plan)}"], "")
    return "\n".join(out)


def render_comparison(multi: MultiPlan) -> str:
    plans = multi.plans
    first = plans[0]
    uses = {(p.device.use) for p in plans}
    use = f" · {next(iter(uses))} use for all" if len(uses) == 1 else ""
    out = _bullets([f"{first.model.name} · {plans[0].ctx} tokens · compared on {len(plans)} devices{use}"], "")
    out += _bullets(list(dict.fromkeys(w for p in plans for w in warnings_first(p))), "  ! ")
    out.append("")
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
                     "spills" if r.placement == "spill" else tier_short(r.tier, p.device.memory_architecture), ", ".join(setup) or "-",
                     gib(r.total_bytes) if r.tier != "no_fit" else "-", tps_cell(r.est_tps, r.est_tps_at_ctx),
                     f"{r.est_prefill_tps:.0f}" if r.est_prefill_tps else "-", ttft_cell(r.est_ttft_s)])
    out.append(_table(rows, ["device", "os/use", "quant", "tier", "setup", "needs GiB", "est. t/s", "pp t/s", "fill"],
                      drop=COMPARE_DROP))
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
            cell = f"{mark}{'spills' if v.placement == 'spill' else tier_short(v.tier, p.device.memory_architecture)}"
            if v.est_tps is not None:
                cell += f" {v.est_tps:.1f} t/s"
            limit = v.max_ctx_fast if v.max_ctx_fast is not None else v.max_ctx_f16
            if limit:
                cell += f", fits ≤{ctx_cell(limit)}" if v.tier == "no_fit" else f" ≤{ctx_cell(limit)}"
            row.append(cell)
        matrix.append(row)
    out += [""] + _bullets(["Quants per device (tier at this context, est. t/s, ≤ the longest context on the GPU, "
                            "f16 KV):"], "")
    out.append(_table(matrix, ["quant"] + [p.device.id for p in plans]))
    for p in plans:
        out += [""] + _bullets([" · ".join(device_title_parts(p))], "── ", None, "   ")
        out += _bullets(p.device.assumptions, "  assumed: ")
        out += _recommendation_block(p, compact=True)
    out += [""] + _bullets([FOOTNOTE], "")
    out += _bullets([f"sized for {_runtime_words(first)}"], "")
    return "\n".join(out)


def render_text(multi: MultiPlan, *, unicode: bool = False, width: int | None = None) -> str:
    """The report at `width` columns (default: planner.report.layout.text_width())."""
    from ..shells import shell

    first = multi.plans[0].recommendation.commands if multi.plans else None
    w = _WIDTH.set(width or text_width())
    c = _CONTINUATION.set(shell(first.shell).continuation if first is not None else " \\")
    try:
        if len(multi.plans) == 1:
            return render_device(multi.plans[0], unicode=unicode)
        return render_comparison(multi)
    finally:
        _WIDTH.reset(w)
        _CONTINUATION.reset(c)
