"""A cluster plan (planner/cluster/types.py) as text (80 columns), markdown and JSON. Nothing
here computes; the decision and every number come with the plan."""

from __future__ import annotations

import json
from collections.abc import Callable

from ..cluster.types import ClusterPlan, MemberPlan
from ..units import fmt_bytes, fmt_ctx
from .layout import command_lines, render_table, text_width, wrap

HEADERS = ["member", "device", "-ts", "layers", "weights", "KV", "compute", "need / may use", "setting"]
DROP = ["compute", "KV", "setting"]
VERDICT = {"cluster": "run it split over the members", "single": "no cluster needed",
           "no_fit": "nothing fits, split or alone"}


def _layers(m: MemberPlan) -> str:
    if not m.layers:
        return "output" if m.holds_output else "-"
    span = f"{m.layers[0]}-{m.layers[-1]}" if len(m.layers) > 1 else str(m.layers[0])
    return span + ("+out" if m.holds_output else "")


def _setting(m: MemberPlan) -> str:
    parts = []
    if m.carveout_bytes is not None:
        parts.append(f"UMA {fmt_bytes(m.carveout_bytes, digits=0)}")
    if m.cap_setting:
        parts.append("cap raised")
    return ", ".join(parts) or "as is"


def _row(m: MemberPlan) -> list[str]:
    fits = "" if m.fits else " NO"
    return [f"{m.index} {m.role}", m.device_id, f"{m.ts:g}", _layers(m), fmt_bytes(m.weights_bytes, digits=1),
            fmt_bytes(m.kv_bytes, digits=1), fmt_bytes(m.compute_bytes, digits=1),
            f"{fmt_bytes(m.need_bytes, digits=1)} / {fmt_bytes(m.capacity_bytes, digits=1)}{fits}", _setting(m)]


def _speed_lines(plan: ClusterPlan, width: int) -> list[str]:
    s = plan.speed
    if s is None:
        return []
    prefill = f", prefill {s.prefill_tps:.0f} t/s" if s.prefill_tps else ""
    lines = wrap(f"decode {s.decode_tps:.1f} t/s{prefill} (estimates): members "
                 f"{' + '.join(f'{x:.1f}' for x in s.member_ms)} ms, link {s.link_ms:.1f} ms per token", width,
                 "Speed: ")
    for a in s.assumptions:
        lines += wrap(a, width, "  - ")
    return lines


def _command(line: str, width: int) -> list[str]:
    """A comment wraps as prose; a command breaks between arguments with ` \\` (pastes as one)."""
    if line.startswith("#"):
        return wrap(line, width, "  ", "  # ")
    return command_lines(line.split(" "), width, indent="  ")


def _launch_lines(plan: ClusterPlan, width: int) -> list[str]:
    if not plan.commands:
        return []
    title = ("Launch (workers first; 10.10.0.x stands for each member's private-link address):"
             if plan.kind == "rpc" else "Launch:")
    return ["", title] + [x for c in plan.commands for line in c.split("\n") for x in _command(line, width)]


def _headline(plan: ClusterPlan) -> str:
    head = f"{plan.model}: {VERDICT[plan.verdict]}"
    if plan.quant:
        head += f" -- {plan.quant}, context {fmt_ctx(plan.ctx)}, link {plan.link_label}"
    return head


def render_cluster_text(plan: ClusterPlan) -> str:
    width = text_width()
    out = wrap(_headline(plan), width) + [""] + [x for r in plan.reasons for x in wrap(r, width, "- ")]
    if plan.members:
        out += [""] + render_table([_row(m) for m in plan.members], HEADERS, width, drop_order=DROP)
    if plan.speed:
        out += [""] + _speed_lines(plan, width)
    for w in plan.warnings:
        out += [""] + wrap(w, width, "Warning: ")
    return "\n".join(out + _launch_lines(plan, width)) + "\n"


def render_cluster_markdown(plan: ClusterPlan) -> str:
    out = [f"### {plan.model}: {VERDICT[plan.verdict]}", ""]
    if plan.quant:
        out += [f"**{plan.quant}**, context {fmt_ctx(plan.ctx)}, link {plan.link_label}", ""]
    out += [f"- {r}" for r in plan.reasons] + [""]
    if plan.members:
        out += ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        out += ["| " + " | ".join(_row(m)) + " |" for m in plan.members] + [""]
    out += _speed_lines(plan, 10_000) + [""]
    out += [f"> **Warning:** {w}" for w in plan.warnings]
    if plan.commands:
        out += ["", "```bash", *plan.commands, "```"]
    return "\n".join(out) + "\n"


def render_cluster_json(plan: ClusterPlan) -> str:
    return json.dumps(plan.model_dump(mode="json"), indent=2, allow_nan=False) + "\n"


CLUSTER_FORMATS: dict[str, Callable[[ClusterPlan], str]] = {
    "text": render_cluster_text, "markdown": render_cluster_markdown, "json": render_cluster_json,
    "html": render_cluster_text}
