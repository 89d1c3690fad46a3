"""HTML plan (`--format html`): one self-contained page, for reading a plan as a picture.

Why a page: choosing a BIOS split is a picture problem (each quant's memory against the context,
against the carve-out, the shared window and the OS reserve), which a one-line text bar cannot
show. The page holds the same content as the text report (the same cells, from report/common.py)
plus the memory bars and that chart as inline SVG (report/svg.py).

Self-contained on purpose: no scripts, no fonts, no images, no links to fetch; a Content Security
Policy of `default-src 'none'` makes the browser refuse any fetch that slipped in (and say so on
its console, which the browser test reads). Light and dark follow the reader's system setting.
The chart needs DevicePlan.ctx_chart (PlanRequest.ctx_chart); a plan without it gets the page
without the chart.
"""

from __future__ import annotations

from ..plan_types import Commands, CtxChart, CtxCurve, DevicePlan, MemoryBar, MultiPlan
from ..units import GIB, fmt_bios_size, fmt_bytes, fmt_ctx
from .common import (CAP_HEADERS, cap_rows, carveout_caption, carveout_table, ctx_cell, device_title, gib, headline,
                     legend_sums, mmproj_line, options_table, prefill_line, request_title, tier_short, tps_cell,
                     variant_caption, variant_headers, variant_rows, warnings_first)
from .svg import bar_svg, chart_frame, chart_svg, esc, gib_text, point_at, quant_colors

CSP = "default-src 'none'; style-src 'unsafe-inline'"

CSS = """
:root { color-scheme: light dark; --bg: #ffffff; --fg: #1d2125; --muted: #5d656e; --grid: #e3e6ea;
  --axis: #8a939c; --warn: #b3261e; --panel: #f5f7f9; --border: #d5d9de; --free: #eef0f2; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #15181c; --fg: #e4e7eb; --muted: #9ba4ad; --grid: #2a3037; --axis: #6b747d; --warn: #ff8a80;
    --panel: #1e2227; --border: #39414a; --free: #262b31; } }
body { background: var(--bg); color: var(--fg); font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  max-width: 1000px; margin: 0 auto; padding: 16px 20px 40px; }
h1 { font-size: 1.35em; margin: .2em 0 .6em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
h3 { font-size: 1.05em; margin: 1.4em 0 .4em; }
.muted, .caption { color: var(--muted); } .caption { font-size: .9em; margin: .3em 0 .6em; }
ul { margin: .3em 0; padding-left: 1.3em; } .warnings li { color: var(--warn); }
pre { background: var(--panel); border: 1px solid var(--border); border-radius: 6px; padding: 8px 10px;
  overflow-x: auto; white-space: pre-wrap; word-break: break-all; font-size: .88em; }
dl.setup { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: .5em 0; }
dl.setup dt { font-weight: 600; } dl.setup dd { margin: 0; }
table { border-collapse: collapse; font-size: .9em; margin: .4em 0; }
th, td { border-bottom: 1px solid var(--border); padding: 3px 9px; text-align: left; vertical-align: top; }
th { font-weight: 600; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.chosen td { font-weight: 600; }
svg { display: block; width: 100%; height: auto; font-family: system-ui, sans-serif; }
svg.ctx-chart { max-width: 900px; } svg.mem-bar { max-width: 900px; margin: .2em 0; }
.grid { stroke: var(--grid); stroke-width: 1; } .axis { stroke: var(--axis); stroke-width: 1.2; }
.tick { fill: var(--muted); font-size: 11px; } .label { fill: var(--muted); font-size: 12px; }
line.limit { stroke: var(--fg); stroke-width: 1.6; } line.limit-gpu { stroke-dasharray: 9 4; }
line.limit-os_reserve { stroke: var(--warn); stroke-dasharray: 11 3 2 3; }
text.limit-label { fill: var(--fg); font-size: 11.5px; paint-order: stroke; stroke: var(--bg); stroke-width: 4px;
  stroke-linejoin: round; } text.limit-os_reserve { fill: var(--warn); }
.ctx-mark { stroke: var(--muted); stroke-width: 1.2; stroke-dasharray: 3 3; }
.ctx-label, .rec-label { fill: var(--fg); font-size: 12px; font-weight: 600; paint-order: stroke; stroke: var(--bg);
  stroke-width: 4px; stroke-linejoin: round; }
.curve polyline { fill: none; stroke-width: 2.2; stroke-linejoin: round; stroke-linecap: round; }
.curve.rec polyline { stroke-width: 4.2; } polyline.seg-spill { stroke-dasharray: 8 5; }
polyline.seg-none { stroke-dasharray: 1.5 5; opacity: .55; }
.rec-dot { stroke: var(--bg); stroke-width: 2; } .marker { stroke: var(--fg); stroke-width: 2; }
.marker-label { fill: var(--fg); font-size: 11.5px; }
.kind-weights { fill: #4e79a7; } .kind-mmproj { fill: #9c755f; } .kind-kv { fill: #f28e2b; }
.kind-compute { fill: #e15759; } .kind-safety { fill: #edc948; } .kind-carveout_free { fill: #a0cbe8; }
.kind-host { fill: #59a14f; } .kind-reserve { fill: #8c959e; } .kind-firmware { fill: #4b5259; }
.kind-free { fill: var(--free); stroke: var(--border); stroke-width: 1; }
ul.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 2px 18px; font-size: .9em; }
ul.legend.quants { display: block; } ul.legend.quants li { margin: 2px 0; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; vertical-align: -1px;
  margin-right: 5px; border: 1px solid var(--border); box-sizing: border-box; } .swatch.line { width: 22px; height: 4px; vertical-align: 3px; }
footer { margin-top: 2.2em; font-size: .88em; color: var(--muted); }
"""

LEGEND_SWATCH = {"weights": "#4e79a7", "mmproj": "#9c755f", "kv": "#f28e2b", "compute": "#e15759",
                 "safety": "#edc948", "carveout_free": "#a0cbe8", "host": "#59a14f", "reserve": "#8c959e",
                 "firmware": "#4b5259", "free": "transparent"}


def _table(headers: list[str], rows: list[list[str]], align: tuple[str, ...] | None = None,
           chosen_mark: str = "►") -> str:
    """A table from the same cells the text report prints; the ► row (the recommendation) bold."""
    align = align or tuple("left" for _ in headers)

    def cls(i: int) -> str:
        return ' class="num"' if i < len(align) and align[i] == "right" else ""

    head = "".join(f"<th{cls(i)}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        body.append(f"<tr{_row_class(row, chosen_mark)}>" + "".join(f"<td{cls(i)}>{esc(c)}</td>" for i, c in enumerate(row))
                    + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _row_class(row: list[str], chosen_mark: str) -> str:
    return ' class="chosen"' if row and row[0].strip() == chosen_mark else ""


def _ul(items: list[str], cls: str = "") -> list[str]:
    if not items:
        return []
    c = f' class="{cls}"' if cls else ""
    return [f"<ul{c}>" + "".join(f"<li>{esc(x)}</li>" for x in items) + "</ul>"]


_CAP_LABEL = {"linux": "Linux kernel", "macos": "macOS"}  # the GPU cap row's label per OS


def _cap_html(plan: DevicePlan, c: Commands) -> str:
    change = plan.recommendation.cap_change
    how = f"<br>{esc(change.how)}" if change and change.how else ""
    return f"<pre>{esc(c.cap)}</pre>{how}"


def _lm_studio_html(c: Commands) -> str:
    lms = " · ".join(f"{esc(k)} {esc(v)}" for k, v in c.lm_studio.items() if k != "lms")
    return lms + (f"<pre>{esc(c.lm_studio['lms'])}</pre>" if "lms" in c.lm_studio else "")


def _ollama_html(c: Commands) -> str:
    """Ollama's commands in one block, its words (session commands, notes) as captions after it."""
    prose = [x for x in c.ollama if x.startswith(("in the session:", "note:"))]
    return _pre([x for x in c.ollama if x not in prose]) + "".join(f"<p class=\"caption\">{esc(x)}</p>" for x in prose)


def _pre(lines: list[str]) -> str:
    """Commands as one preformatted block (nothing when there are none)."""
    return f"<pre>{esc(chr(10).join(lines))}</pre>" if lines else ""


def _setup_rows(plan: DevicePlan, c: Commands) -> list[tuple[str, str]]:
    rows = []
    if c.bios:
        first, *rest = c.bios.split("\n")
        rows.append(("BIOS", esc(first) + "".join(f"<br>{esc(x)}" for x in rest)))
    if c.cap:
        rows.append((_CAP_LABEL.get(plan.device.os, "GPU cap"), _cap_html(plan, c)))
    rows.append(("llama.cpp", f"<pre>{esc(c.llama_server)}</pre>"))
    mm = mmproj_line(plan)
    if mm:
        rows.append(("Vision", esc(mm)))
    return rows + [("LM Studio", _lm_studio_html(c)), ("Ollama", _ollama_html(c))]


def _recommendation(plan: DevicePlan) -> list[str]:
    r = plan.recommendation
    out = [f"<h3>Recommendation: {esc(headline(plan))}</h3>"]
    pf = prefill_line(plan)
    if pf:
        out.append(f'<p class="muted">{esc(pf)}</p>')
    c = r.commands
    if r.tier == "no_fit" or c is None:
        return out + _ul(r.reasons)
    out.append('<dl class="setup">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in _setup_rows(plan, c)) + "</dl>")
    return out + ["<p><strong>Why</strong></p>"] + _ul(r.reasons) + _warnings_html(r.warnings)


def _warnings_html(warnings: list[str]) -> list[str]:
    return ["<p><strong>Warnings</strong></p>"] + _ul(warnings, "warnings") if warnings else []


def _bar_html(bar: MemoryBar, uid: str) -> list[str]:
    legend = "".join(f'<li><span class="swatch kind-{kind}" style="background:{LEGEND_SWATCH[kind]}"></span>'
                     f"{esc(label)} {n / GIB:.1f} GiB</li>" for (kind, label), n in legend_sums(bar).items())
    return [f'<p class="caption">{esc(bar.title)}</p>', bar_svg(bar, uid), '<ul class="legend">' + legend + "</ul>"]


def _pool_table(plan: DevicePlan) -> list[str]:
    if plan.fit is None or not plan.fit.pools:
        return []
    rows = [[p.label, gib(p.capacity_bytes), gib(p.used_bytes), gib(p.capacity_bytes - p.used_bytes)]
            for p in plan.fit.pools]
    return ['<p class="caption">Pools as the fit solver counts them (GiB; the GPU pools after what the '
            "desktop holds, system RAM after the OS reserve; left = before the safety margins):</p>",
            _table(["pool", "may use", "used", "left"], rows, ("left", "right", "right", "right"))]


def _bars(plan: DevicePlan, uid: str) -> list[str]:
    """The memory picture per physical memory, its legend, and the fit solver's pools."""
    if not plan.bars:
        return []
    out = ["<h3>Memory with the recommendation loaded</h3>"]
    for i, bar in enumerate(plan.bars):
        out += _bar_html(bar, f"{uid}-bar{i}")
    return out + _pool_table(plan)


# what gives first past a quant's longest context (planner.fit check names)
STOP_WORDS = {"gpu_memory": "the GPU is full", "os_reserve": "the OS would go under its reserve",
              "load_peak": "loading would push the OS under its minimum (weights staged through its RAM)",
              "max_alloc": "a buffer exceeds the backend's largest allocation"}
_CAP_WORDS = {"windows": "Windows shared GPU memory", "linux": "GTT"}


def _split_words(plan: DevicePlan, chart: CtxChart) -> str:
    """The configuration the chart is drawn for, in words (BIOS sizes in GB as the firmware says)."""
    arch = plan.device.memory_architecture
    kv = chart.cache_type_k if chart.cache_type_k == chart.cache_type_v else f"{chart.cache_type_k}/{chart.cache_type_v}"
    if arch == "carveout" and chart.carveout_bytes is not None:
        where = _carveout_words(plan, chart, chart.carveout_bytes)
    elif arch == "unified":
        where = f"GPU limit {fmt_bytes(chart.gpu_cap_bytes, digits=0)}" if chart.gpu_cap_bytes else "the GPU's share"
    else:
        where = "the card"
    return f"{where}, KV {kv}"


def _carveout_words(plan: DevicePlan, chart: CtxChart, carveout: int) -> str:
    """A carve-out split as the BIOS names it, with the GPU cap it was drawn at."""
    os_keeps = plan.device.ram_bytes - carveout
    where = f"UMA frame buffer {fmt_bios_size(carveout)} (OS keeps {fmt_bios_size(os_keeps)})"
    if chart.gpu_cap_bytes:
        where += f", {_CAP_WORDS.get(plan.device.os, 'GPU cap')} {fmt_bytes(chart.gpu_cap_bytes, digits=0)}"
    return where


def _chart_caption(plan: DevicePlan, has_fast: bool, has_os: bool) -> str:
    text = ("Each line is one quant fully on the GPU (weights, projector, KV cache, compute buffers, driver "
            "overhead) as the context grows, on this configuration. Solid: it loads"
            + (" and stays in fast memory (the carve-out)" if has_fast else "")
            + ("; dashed: part of it spills into slower shared memory" if has_fast else "")
            + "; dotted: it does not load here. A line changes a little below a limit: the plan keeps a "
              "safety margin free (llama.cpp's 1 GiB fit target plus the estimate margins).")
    if plan.recommendation.tier == "partial_offload":
        text += (f" The recommendation, {plan.recommendation.quant}, runs with part of the model on the CPU "
                 "(the quant table's setup): its line is what it would need fully on the GPU.")
    if has_os:
        text += (" The OS line is where the GPU side, with that margin, would push the OS under its reserve "
                 "(with the recommended quant's CPU side).")
    return text


def _reach(c: CtxCurve, has_fast: bool) -> list[str]:
    """How far the quant's context goes: where it stops loading (and why), where it leaves fast memory."""
    if c.fits_until_ctx is None:
        return ["does not load here"]
    why = f" (then {STOP_WORDS[c.stop]})" if c.stop in STOP_WORDS else ""
    bits = [f"loads up to {ctx_cell(c.fits_until_ctx)}{why}"]
    if has_fast:
        bits.append(f"in fast memory up to {ctx_cell(c.fast_until_ctx)}" if c.fast_until_ctx else "spills at any context")
    return bits


def _at_ctx(c: CtxCurve, ctx: int) -> list[str]:
    """What the quant needs at the requested context (when the curve has that point)."""
    at = point_at(c, ctx)
    return [f"{gib_text(at.gpu_bytes)} at {fmt_ctx(ctx)}"] if at else []


def _curve_item(c: CtxCurve, chart: CtxChart, has_fast: bool, top: int, color: str) -> str:
    bits = _at_ctx(c, chart.ctx) + _reach(c, has_fast)
    if c.points and c.points[0].gpu_bytes > top:
        bits.append("above the chart")
    mark = " ►" if c.recommended else ""
    return (f'<li data-quant="{esc(c.quant)}"><span class="swatch line" style="background:{color}">'
            f"</span><strong>{esc(c.quant)}</strong>{mark}: {esc('; '.join(bits))}</li>")


def _chart(plan: DevicePlan, uid: str) -> list[str]:
    chart = plan.ctx_chart
    if chart is None or not any(p.gpu_bytes for c in chart.curves for p in c.points):
        return []  # no chart asked for, or nothing on a GPU to draw
    words = _split_words(plan, chart)
    has_fast = any(lim.kind == "fast" for lim in chart.limits)
    has_os = any(lim.kind == "os_reserve" for lim in chart.limits)
    items = _curve_items(chart, has_fast)
    return [f"<h3>Memory against context on {esc(words)}</h3>",
            chart_svg(chart, f"{uid}-chart", f"GPU-side memory against context for each quant: {words}",
                      rec_partial=plan.recommendation.tier == "partial_offload"),
            f'<p class="caption">{esc(_chart_caption(plan, has_fast, has_os))}</p>',
            '<ul class="legend quants">' + "".join(items) + "</ul>"]


def _curve_items(chart: CtxChart, has_fast: bool) -> list[str]:
    """The chart's legend: one item per quant, the largest at the full context first."""
    colors = quant_colors(chart.curves)
    top = chart_frame(chart).y_max
    return [_curve_item(c, chart, has_fast, top, colors[c.quant])
            for c in sorted(chart.curves, key=lambda c: -c.points[-1].gpu_bytes if c.points else 0)]


def _tables(plan: DevicePlan) -> list[str]:
    headers = variant_headers(plan)
    out = [f"<h3>Quants at {plan.ctx} tokens</h3>", f'<p class="caption">{esc(variant_caption(plan))}</p>',
           _table(headers, variant_rows(plan), ("left", "left", "right", "right", "left", "left")
                  + ("right",) * (len(headers) - 6))]
    q = esc(plan.recommendation.quant)
    kind = options_table(plan)
    if kind == "carveout":
        rows, headers, align = carveout_table(plan.carveout_options)
        out += [f"<h3>BIOS carve-out options for {q} ({esc(plan.device.os)})</h3>",
                f'<p class="caption">{esc(carveout_caption(headers))}</p>', _table(headers, rows, align)]
    elif kind == "cap":
        out += [f"<h3>GPU memory limit for {q}</h3>",
                _table(CAP_HEADERS, cap_rows(plan.carveout_options),
                       ("left", "right", "left", "right", "right", "right", "left"))]
    return out


def render_device_html(plan: DevicePlan, uid: str) -> list[str]:
    out = [f'<section class="device" id="{uid}">', f"<h2>{esc(request_title(plan))}</h2>",
           f'<p>on <strong>{esc(device_title(plan))}</strong></p>']
    out += _ul(warnings_first(plan), "warnings")
    out += _ul([f"assumed: {a}" for a in plan.device.assumptions], "muted")
    out += _recommendation(plan)
    out += _bars(plan, uid)
    out += _chart(plan, uid)
    out += _tables(plan)
    out.append("</section>")
    return out


def _comparison_row(p: DevicePlan) -> list[str]:
    r = p.recommendation
    split = (f"UMA {fmt_bios_size(r.carveout_bytes)} / OS {fmt_bios_size(r.os_keeps_bytes)}"
             if r.carveout_bytes is not None else f"none ({p.device.memory_architecture})")
    return [p.device.id, (r.quant or "-") if r.tier != "no_fit" else "-",
            tier_short(r.tier, p.device.memory_architecture), split,
            gib(r.total_bytes) if r.tier != "no_fit" else "-", tps_cell(r.est_tps, r.est_tps_at_ctx)]


def _comparison(multi: MultiPlan) -> list[str]:
    rows = [_comparison_row(p) for p in multi.plans]
    return [f"<h2>{esc(multi.plans[0].model.name)} on {len(multi.plans)} devices ({multi.plans[0].ctx} tokens)</h2>",
            _table(["device", "recommended", "tier", "BIOS split", "needs GiB", "est. t/s"], rows,
                   ("left", "left", "left", "left", "right", "right"))]


def render_html(multi: MultiPlan) -> str:
    plans = multi.plans
    first = plans[0]
    body: list[str] = [f"<h1>memfit plan · {esc(first.model.name)}</h1>"]
    if len(plans) > 1:
        body += _comparison(multi)
    for i, p in enumerate(plans):
        body += render_device_html(p, f"d{i}")
    runtime = first.runtime_statement.removeprefix("runtime: ") or first.runtime
    body.append(f"<footer><p>est. = estimate from the speed model fitted on measurements (docs/speed.md), not a "
                f"measurement. Sized for {esc(runtime)}. Generated by memfit.</p></footer>")
    page = "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="color-scheme" content="light dark">',
        f"<title>memfit plan · {esc(first.model.name)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        *body, "</body>", "</html>", ""])
    # ASCII out (►, →, · as character references): a redirect through a shell or console that does
    # not write UTF-8 (Windows PowerShell 5, a cp1252 pipe) cannot garble or refuse the page
    return page.encode("ascii", "xmlcharrefreplace").decode("ascii")
