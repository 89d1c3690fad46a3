"""Inline SVG for the HTML report: the memory bars (one per physical memory) and the chart of
GPU-side memory against context for every quant with the limits of the recommended split.

Everything is drawn from the plan's data (MemoryBar, CtxChart); nothing here estimates or places.
Colours of the page furniture come from CSS classes (planner/report/html.py sets them for light
and dark); the quants' colours are fixed hues that read on both backgrounds. Every string that
reaches the markup passes through `esc` (model names and quant tags come from files).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from ..plan_types import CtxChart, CtxCurve, CtxPoint, MemoryBar
from ..units import GIB, fmt_ctx, printable

# Tableau 10: distinct hues, readable on white and on near-black
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f",
           "#bab0ac")
STYLE_ORDER = {"fast": 0, "spill": 1, "none": 2}  # a segment takes the worse style of its two ends

W, H = 760, 420  # chart viewBox
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 24, 48
BAR_W, BAR_H = 760, 30


def esc(text: object) -> str:
    """Markup-safe text: control and format characters out (as in the terminal), then escaped."""
    return html.escape(printable(str(text)), quote=True)


def gib_text(n: int, digits: int = 1) -> str:
    return f"{n / GIB:.{digits}f} GiB"


def quant_colors(curves: list[CtxCurve]) -> dict[str, str]:
    """One colour per quant, in the order of their memory (smallest first), the same on every chart."""
    order = sorted(curves, key=lambda c: c.points[0].gpu_bytes if c.points else 0)
    return {c.quant: PALETTE[i % len(PALETTE)] for i, c in enumerate(order)}


def _nice_step(span: float, steps: tuple[float, ...], max_ticks: int) -> float:
    for s in steps:
        if span / s <= max_ticks:
            return s
    return steps[-1] * -(-span // (steps[-1] * max_ticks))


GIB_STEPS = (0.5, 1, 2, 4, 5, 8, 10, 16, 20, 32, 40, 64, 80, 128, 160, 256, 320, 512)
CTX_STEPS = tuple(float(1024 * 2**i) for i in range(0, 16))


@dataclass(frozen=True)
class Frame:
    """The plot area and its scales: x in tokens, y in bytes."""

    x_max: int
    y_max: int

    def x(self, ctx: int) -> float:
        return round(LEFT + (W - LEFT - RIGHT) * ctx / max(1, self.x_max), 1)

    def y(self, n: int) -> float:
        return round(H - BOTTOM - (H - TOP - BOTTOM) * n / max(1, self.y_max), 1)


def chart_frame(chart: CtxChart) -> Frame:
    """x to the last sampled context; y to a round number above the highest limit and the point
    where every quant starts, but not past twice the highest limit (a BF16 on a small card runs
    off the top rather than flattening the lines that matter)."""
    x_max = max((p.ctx for c in chart.curves for p in c.points), default=chart.ctx) or 1
    top_limit = max((lim.bytes for lim in chart.limits), default=0)
    starts = max((c.points[0].gpu_bytes for c in chart.curves if c.points), default=0)
    want = max(top_limit * 1.12, min(starts * 1.08, top_limit * 2) if top_limit else starts * 1.15, GIB)
    step = _nice_step(want / GIB, GIB_STEPS, 8)
    y_max = int(-(-want // (step * GIB)) * step * GIB)
    return Frame(x_max=x_max, y_max=y_max)


def _segments(curve: CtxCurve, f: Frame) -> list[tuple[str, list[tuple[float, float]]]]:
    """Consecutive points joined into runs of one style (fast, spill, none)."""
    pts = curve.points
    runs: list[tuple[str, list[tuple[float, float]]]] = []
    for a, b in zip(pts, pts[1:]):
        style = max(a.placement, b.placement, key=STYLE_ORDER.__getitem__)
        pa, pb = (f.x(a.ctx), f.y(a.gpu_bytes)), (f.x(b.ctx), f.y(b.gpu_bytes))
        if runs and runs[-1][0] == style:
            runs[-1][1].append(pb)
        else:
            runs.append((style, [pa, pb]))
    return runs


def _axes(f: Frame) -> list[str]:
    out = ['<g class="axes">']
    y_step = _nice_step(f.y_max / GIB, GIB_STEPS, 8)
    v = 0.0
    while v * GIB <= f.y_max + 1:
        y = f.y(int(v * GIB))
        out.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y}" y2="{y}"/>')
        out.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 4}" text-anchor="end">{v:g}</text>')
        v += y_step
    x_step = int(_nice_step(f.x_max, CTX_STEPS, 8))
    c = 0
    while c <= f.x_max:
        x = f.x(c)
        out.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{TOP}" y2="{H - BOTTOM}"/>')
        out.append(f'<text class="tick" x="{x}" y="{H - BOTTOM + 16}" text-anchor="middle">{fmt_ctx(c) if c else 0}</text>')
        c += x_step
    out.append(f'<line class="axis" x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}"/>')
    out.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H - BOTTOM}"/>')
    out.append(f'<text class="label" x="{(LEFT + W - RIGHT) / 2}" y="{H - 8}" text-anchor="middle">'
               'context (tokens)</text>')
    out.append(f'<text class="label" transform="translate(14 {(TOP + H - BOTTOM) / 2}) rotate(-90)" '
               'text-anchor="middle">GPU-side memory (GiB)</text>')
    out.append("</g>")
    return out


def _limits(chart: CtxChart, f: Frame) -> list[str]:
    """Horizontal limit lines, labels right-aligned above them, pushed apart when two are close."""
    out = ['<g class="limits">']
    prev = -1e9
    for lim in sorted(chart.limits, key=lambda lim: -lim.bytes):
        if lim.bytes > f.y_max:
            continue
        y = f.y(lim.bytes)
        ty = max(y - 5, prev + 14)
        prev = ty
        out.append(f'<line class="limit limit-{lim.kind}" data-kind="{lim.kind}" x1="{LEFT}" x2="{W - RIGHT}" '
                   f'y1="{y}" y2="{y}"><title>{esc(lim.label)}: {gib_text(lim.bytes, 2)}</title></line>')
        out.append(f'<text class="limit-label limit-{lim.kind}" x="{W - RIGHT - 4}" y="{ty}" text-anchor="end">'
                   f'{esc(lim.label)} · {gib_text(lim.bytes)}</text>')
    out.append("</g>")
    return out


def chart_svg(chart: CtxChart, uid: str, title: str, rec_partial: bool = False) -> str:
    """The memory-vs-context chart. `uid` keeps element ids unique when a page has several."""
    f = chart_frame(chart)
    colors = quant_colors(chart.curves)
    out = [f'<svg class="ctx-chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="{uid}-title">',
           f'<title id="{uid}-title">{esc(title)}</title>',
           f'<defs><clipPath id="{uid}-plot"><rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" '
           f'height="{H - TOP - BOTTOM}"/></clipPath></defs>']
    out += _axes(f)
    out += _limits(chart, f)
    xc = f.x(chart.ctx)
    out.append(f'<line class="ctx-mark" x1="{xc}" x2="{xc}" y1="{TOP}" y2="{H - BOTTOM}"/>')
    out.append(f'<text class="ctx-label" x="{xc + 4}" y="{TOP - 8}">--ctx {esc(fmt_ctx(chart.ctx))}</text>')
    out.append(f'<g class="curves" clip-path="url(#{uid}-plot)">')
    for c in sorted(chart.curves, key=lambda c: c.recommended):  # the recommendation drawn last, on top
        out += _curve(c, f, colors[c.quant])
    out.append("</g>")
    return "\n".join(out + _rec_mark(chart, f, colors, rec_partial) + ["</svg>"])


def _curve(c: CtxCurve, f: Frame, color: str) -> list[str]:
    cls = "curve rec" if c.recommended else "curve"
    out = [f'<g class="{cls}" data-quant="{esc(c.quant)}" stroke="{color}"><title>{esc(c.quant)}</title>']
    for style, pts in _segments(c, f):
        coords = " ".join(f"{x},{y}" for x, y in pts)
        out.append(f'<polyline class="seg seg-{style}" points="{coords}"/>')
    return out + ["</g>"]


def _rec_mark(chart: CtxChart, f: Frame, colors: dict[str, str], rec_partial: bool) -> list[str]:
    """A dot and a label where the recommended quant's curve meets --ctx (when it is on the chart)."""
    rec = next((c for c in chart.curves if c.recommended), None)
    at = point_at(rec, chart.ctx) if rec else None
    if rec is None or at is None or at.gpu_bytes > f.y_max:
        return []
    x, y = f.x(at.ctx), f.y(at.gpu_bytes)
    what = "fully on the GPU would need " if rec_partial else ""
    return [f'<circle class="rec-dot" cx="{x}" cy="{y}" r="5" fill="{colors[rec.quant]}"/>',
            f'<text class="rec-label" x="{x + 8}" y="{y + 16}">► {esc(rec.quant)} {what}{gib_text(at.gpu_bytes)}</text>']


def point_at(curve: CtxCurve, ctx: int) -> CtxPoint | None:
    return next((p for p in curve.points if p.ctx == ctx), None)


def bar_svg(bar: MemoryBar, uid: str) -> str:
    """One physical memory as a stacked bar, with the end of the carve-out marked."""
    total = max(1, bar.total_bytes)
    top = 18 if bar.marker_bytes else 4
    out = [f'<svg class="mem-bar" viewBox="0 0 {BAR_W} {BAR_H + top + 4}" role="img" aria-labelledby="{uid}-t">'
           f'<title id="{uid}-t">{esc(bar.title)}</title>']
    x = 0.0
    for s in bar.segments:
        if s.bytes <= 0:
            continue
        w = BAR_W * s.bytes / total
        out.append(f'<rect class="kind-{s.kind}" x="{x:.1f}" y="{top}" width="{max(w, 0.5):.1f}" height="{BAR_H}">'
                   f'<title>{esc(s.label)}: {gib_text(s.bytes)}</title></rect>')
        x += w
    if bar.marker_bytes:
        mx = round(BAR_W * bar.marker_bytes / total, 1)
        out.append(f'<line class="marker" x1="{mx}" x2="{mx}" y1="2" y2="{top + BAR_H + 2}"/>')
        anchor = "end" if mx > BAR_W / 2 else "start"
        dx = -4 if anchor == "end" else 4
        out.append(f'<text class="marker-label" x="{mx + dx}" y="12" text-anchor="{anchor}">{esc(bar.marker_label)}</text>')
    out.append("</svg>")
    return "".join(out)
