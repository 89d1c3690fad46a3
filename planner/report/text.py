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

from ..fit_types import Tier
from ..plan_types import Commands, DevicePlan, MemoryBar, MultiPlan, Recommendation, VariantPlan
from ..units import GIB, fmt_bios_size
from .layout import render_table, text_width
from .common import (
    CAP_HEADERS, cap_rows, carveout_caption, carveout_table, ctx_cell, device_title_parts, gib, headline, legend_sums,
    mmproj_line, options_table, prefill_line, request_title, tier_short, tps_cell, ttft_cell, variant_caption,
    variant_headers, variant_rows, warnings_first,
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
    _take_back(cells, width)
    _hand_out(cells, exact, width)
    return cells


def _take_back(cells: list[int], width: int) -> None:
    """Over the width (the one-cell minimums): take back from the largest segment."""
    while sum(cells) > width:
        i = max(range(len(cells)), key=lambda j: cells[j])
        cells[i] -= 1


def _hand_out(cells: list[int], exact: list[float], width: int) -> None:
    """Under the width: one more cell each to the largest remainders first."""
    order = sorted(range(len(cells)), key=lambda j: exact[j] - int(exact[j]), reverse=True)
    k = 0
    while sum(cells) < width and order:
        cells[order[k % len(order)]] += 1
        k += 1


def render_bar(bar: MemoryBar, *, unicode: bool = False, width: int | None = None, indent: str = "  ",
               text_width: int | None = None) -> str:
    text_width = text_width or _w()
    width = width or min(BAR_WIDTH, text_width - len(indent) - 2)
    glyphs = UNICODE_GLYPHS if unicode else ASCII_GLYPHS
    cells = _cells(bar, width)
    body = "".join(glyphs[s.kind] * n for s, n in zip(bar.segments, cells))
    lines = [f"{indent}{bar.title}", f"{indent}[{body}]"]
    if bar.marker_bytes:
        lines.append(f"{indent} {_ruler(bar, width, unicode)}")
    legend = [f"{glyphs[kind]} {label} {n / GIB:.1f}" for (kind, label), n in legend_sums(bar).items()]
    legend[-1] += " GiB"
    lines += _join_wrapped(legend, " · ", text_width, indent)
    return "\n".join(lines)


def _ruler(bar: MemoryBar, width: int, unicode: bool) -> str:
    """Under the bar: the carve-out and what the OS sees, split at the marker."""
    pos = round(bar.marker_bytes / max(1, bar.total_bytes) * width)
    pos = min(max(pos, 1), width - 1)
    return _span("carve-out", pos, unicode) + _span("OS sees", width - pos, unicode)


def _span(label: str, n: int, unicode: bool) -> str:
    """A bracket of n characters with a centred label: └── label ──┘ (or '<-- label -->'); a bare
    tick when the part is too small for a label (a 512 MB carve-out)."""
    if n <= 0:
        return ""
    if n < len(label) + 4:
        return _tick(n, unicode)
    fill = n - len(label) - 4
    a, b = fill // 2, fill - fill // 2
    if unicode:
        return "└" + "─" * a + " " + label + " " + "─" * b + "┘"
    return "<" + "-" * a + " " + label + " " + "-" * b + ">"


def _tick(n: int, unicode: bool) -> str:
    """A part too small for its label: a tick and a line of n characters."""
    tick = "┴" if unicode else "^"
    return tick + ("─" if unicode else "-") * (n - 1) if n > 1 else tick


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
        if _belongs_to(prev, w):
            units[-1] = f"{prev} {w}"
        else:
            units.append(w)
    return units


def _belongs_to(prev: str, w: str) -> bool:
    """Whether word w goes with the unit before it: a flag's value, an operator's next word."""
    flag_wants_value = prev.startswith("-") and " " not in prev and not w.startswith("-")
    return bool(prev) and w not in _SHELL_OPS and (prev in _SHELL_OPS or flag_wants_value)


def _runtime_words(plan: DevicePlan) -> str:
    """The runtime statement without its leading "runtime: " (planner/runtime/llamacpp/apps.py)."""
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


_CAP_LABEL = {"linux": "Linux kernel", "macos": "macOS"}  # the GPU cap row's label per OS
_OLLAMA_PROSE = ("in the session:", "note:")  # Ollama lines that are words, not commands


def _bios_rows(c: Commands) -> list[str]:
    if not c.bios:
        return []
    first, *rest = c.bios.split("\n")
    return _row("BIOS", [first] + [x for part in rest for x in _prose(part)])


def _cap_rows(plan: DevicePlan, c: Commands, compact: bool) -> list[str]:
    if not c.cap:
        return []
    change = plan.recommendation.cap_change
    how = change.how if (change and change.how and not compact) else ""
    return _row(_CAP_LABEL.get(plan.device.os, "GPU cap"), _command_lines([c.cap]) + (_prose(f"({how})") if how else []))


def _lm_studio_line(c: Commands, key: str, value: str) -> list[str]:
    """One LM Studio setting: the `lms` command, a note, or a setting with why."""
    if key == "lms":
        return _command_lines([value])
    if key == "note":
        return _prose(f"note: {value}")
    why = c.lm_studio_why.get(key)
    return _prose(f"{key}: {value}" + (f" ({why})" if why else ""))


def _lm_studio_rows(c: Commands, compact: bool) -> list[str]:
    if compact:
        return _row("LM Studio", _compact_lm_studio(c))
    return _row("LM Studio", [x for k, v in c.lm_studio.items() for x in _lm_studio_line(c, k, v)])


def _compact_lm_studio(c: Commands) -> list[str]:
    """LM Studio's settings on as few lines as fit (no `lms` command, no note)."""
    room = _w() - LABEL_WIDTH - 3
    lms = [f"{k} {v}" for k, v in lm_studio_items(c)]
    return [x.strip() for x in _join_wrapped(lms, " · ", room, "", "")]


def lm_studio_items(c: Commands) -> list[tuple[str, str]]:
    """LM Studio's settings worth a line (not its `lms` command or note)."""
    return [(k, v) for k, v in c.lm_studio.items() if k not in ("lms", "note")]


def _ollama_rows(c: Commands, compact: bool) -> list[str]:
    out = _row("Ollama", _words_or_commands(c.ollama, _OLLAMA_PROSE))
    if c.ollama_app and not compact:
        out += _row("Ollama app", _words_or_commands(c.ollama_app, ("then", "#")))
    return out


def _words_or_commands(lines: list[str], prose: tuple[str, ...]) -> list[str]:
    """Lines starting with one of `prose` wrapped as words, the rest as commands."""
    return [x for line in lines for x in (_prose(line) if line.startswith(prose) else _command_lines([line]))]


def _why_and_warnings(r: Recommendation, compact: bool) -> list[str]:
    out = [] if compact else ["  Why:"] + _bullets(r.reasons, "    - ")
    return out + (["  Warnings:"] + _bullets(r.warnings, "    ! ") if r.warnings else [])


def _recommendation_block(plan: DevicePlan, *, compact: bool = False) -> list[str]:
    r = plan.recommendation
    out = _bullets([f"Recommendation: {headline(plan)}"], "", None, "  ")
    pf = prefill_line(plan)
    if pf and not compact:
        out += _bullets([pf], "  ")
    c = r.commands
    if r.tier == "no_fit" or c is None:
        return out + _bullets(r.reasons, "  - ")
    out += _bios_rows(c) + _cap_rows(plan, c, compact) + _row("llama.cpp", _command_lines([c.llama_server]))
    mm = mmproj_line(plan)
    if mm:
        out += _row("Vision", _prose(mm))
    return out + _lm_studio_rows(c, compact) + _ollama_rows(c, compact) + _why_and_warnings(r, compact)


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


def _options_lines(plan: DevicePlan) -> list[str]:
    """The BIOS carve-out table of a carve-out APU, or the GPU limit table where the limit matters."""
    kind = options_table(plan)
    if kind == "carveout":
        rows, headers, align = carveout_table(plan.carveout_options)
        return (["", f"BIOS carve-out options for {plan.recommendation.quant} ({plan.device.os}):"]
                + _bullets([carveout_caption(headers)], "") + [_table(rows, headers, align, CARVEOUT_DROP)])
    if kind == "cap":
        return ["", f"GPU memory limit for {plan.recommendation.quant}:",
                _table(cap_rows(plan.carveout_options), CAP_HEADERS,
                       ("left", "right", "left", "right", "right", "right", "left"), CAP_DROP)]
    return []


def _bar_lines(plan: DevicePlan, unicode: bool) -> list[str]:
    if not plan.bars:
        return []
    return ["", "Memory with the recommendation loaded:"] + [render_bar(b, unicode=unicode) for b in plan.bars]


def render_device(plan: DevicePlan, *, unicode: bool = False) -> str:
    out = _bullets([request_title(plan)], "") + _bullets([" · ".join(device_title_parts(plan))], "on ", None, "   ")
    out += _bullets(warnings_first(plan), "  ! ")
    out += _bullets(plan.device.assumptions, "  assumed: ")
    out += [""] + _recommendation_block(plan) + _bar_lines(plan, unicode)
    out += ["", f"Quants at {plan.ctx} tokens:"]
    out += _bullets([variant_caption(plan)], "")
    headers = variant_headers(plan)
    out.append(_table(variant_rows(plan), headers, ("left", "left", "right", "right", "left", "left")
                      + ("right",) * (len(headers) - 6), VARIANT_DROP))
    return "\n".join(out + _options_lines(plan) + _footer(plan))


def _setup_cell(r: Recommendation) -> str:
    """How the device is set up for its recommendation: the BIOS split, a raised cap, offload."""
    setup = []
    if r.carveout_bytes is not None:
        setup.append(f"UMA {fmt_bios_size(r.carveout_bytes)} / OS {fmt_bios_size(r.os_keeps_bytes)}")
    if r.cap_change:
        setup.append(r.cap_change.setting)
    if r.tier == "partial_offload":
        setup.append(f"--n-cpu-moe {r.n_cpu_moe}" if r.n_cpu_moe else f"-ngl {r.n_gpu_layers}")
    return ", ".join(setup) or "-"


def _comparison_row(p: DevicePlan) -> list[str]:
    r = p.recommendation
    fits = r.tier != "no_fit"
    tier = _tier_words(r.placement, r.tier, p)
    return [p.device.id, f"{p.device.os}/{p.device.use}", r.quant if fits else "-", tier, _setup_cell(r),
            gib(r.total_bytes) if fits else "-", tps_cell(r.est_tps, r.est_tps_at_ctx),
            f"{r.est_prefill_tps:.0f}" if r.est_prefill_tps else "-", ttft_cell(r.est_ttft_s)]


def _tier_words(placement: str, tier: Tier, p: DevicePlan) -> str:
    return "spills" if placement == "spill" else tier_short(tier, p.device.memory_architecture)


def _matrix_cell(p: DevicePlan, q: str) -> str:
    """A quant on a device: its tier (► on the recommended one), est. t/s, and the longest context
    on the GPU (what would fit, when it does not at this context)."""
    v = next((x for x in p.variants if x.quant == q), None)
    if v is None:
        return "-"
    mark = "► " if (p.recommendation.quant == q and p.recommendation.tier != "no_fit") else ""
    cell = f"{mark}{_tier_words(v.placement, v.tier, p)}"
    return cell + (f" {v.est_tps:.1f} t/s" if v.est_tps is not None else "") + _reach_cell(v)


def _reach_cell(v: VariantPlan) -> str:
    """The longest context on the GPU (fast memory where that differs), or what would fit."""
    limit = v.max_ctx_fast if v.max_ctx_fast is not None else v.max_ctx_f16
    if not limit:
        return ""
    return f", fits ≤{ctx_cell(limit)}" if v.tier == "no_fit" else f" ≤{ctx_cell(limit)}"


def _quant_matrix(plans: list[DevicePlan]) -> list[list[str]]:
    quants = [v.quant for v in sorted(plans[0].variants, key=lambda v: v.size_bytes, reverse=True)]
    return [[q] + [_matrix_cell(p, q) for p in plans] for q in quants]


def _footer(plan: DevicePlan) -> list[str]:
    return [""] + _bullets([FOOTNOTE], "") + _bullets([f"sized for {_runtime_words(plan)}"], "")


def _same_use(plans: list[DevicePlan]) -> str:
    """` · daily use for all` when every device is planned for the same use."""
    uses = {(p.device.use) for p in plans}
    return f" · {next(iter(uses))} use for all" if len(uses) == 1 else ""


def render_comparison(multi: MultiPlan) -> str:
    plans = multi.plans
    first = plans[0]
    use = _same_use(plans)
    out = _bullets([f"{first.model.name} · {plans[0].ctx} tokens · compared on {len(plans)} devices{use}"], "")
    out += _bullets(list(dict.fromkeys(w for p in plans for w in warnings_first(p))), "  ! ")
    out.append("")
    out.append(_table([_comparison_row(p) for p in plans],
                      ["device", "os/use", "quant", "tier", "setup", "needs GiB", "est. t/s", "pp t/s", "fill"],
                      drop=COMPARE_DROP))
    out += [""] + _bullets(["Quants per device (tier at this context, est. t/s, ≤ the longest context on the GPU, "
                            "f16 KV):"], "")
    out.append(_table(_quant_matrix(plans), ["quant"] + [p.device.id for p in plans]))
    for p in plans:
        out += [""] + _bullets([" · ".join(device_title_parts(p))], "── ", None, "   ")
        out += _bullets(p.device.assumptions, "  assumed: ")
        out += _recommendation_block(p, compact=True)
    return "\n".join(out + _footer(first))


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
