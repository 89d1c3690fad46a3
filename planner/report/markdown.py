"""Markdown plan (`--format markdown`): the same content as the text report, as tables and code
blocks a user can paste into a forum post or an issue."""

from __future__ import annotations

from tabulate import tabulate

from ..plan_types import Commands, DevicePlan, MultiPlan
from ..units import fmt_bios_size
from .common import (
    CAP_HEADERS, cap_rows, carveout_caption, carveout_table, device_title, gib, headline, mmproj_line, options_table,
    prefill_line, request_title, tier_short, tps_cell, variant_caption, variant_headers, variant_rows,
    warnings_first,
)
from .text import render_bar


def _table(rows: list[list[str]], headers: list[str]) -> str:
    clean = [[c.strip().replace("|", "\\|") for c in row] for row in rows]
    return tabulate(clean, headers=headers, tablefmt="github", disable_numparse=True)


def _setting_lines(plan: DevicePlan, c: Commands) -> list[str]:
    """The BIOS and GPU-limit settings, the llama-server line, the projector."""
    change = plan.recommendation.cap_change
    out = ["- **BIOS:** " + c.bios.replace("\n", " — ")] if c.bios else []
    if c.cap:
        out.append(f"- **GPU memory limit:** `{c.cap}`" + (f" ({change.how})" if change and change.how else ""))
    out += ["", "```sh", c.llama_server, "```", ""]
    mm = mmproj_line(plan)
    return out + ([f"- **Vision:** {mm}"] if mm else [])


def _app_lines(c: Commands) -> list[str]:
    """LM Studio's settings and Ollama's commands (its words as shell comments)."""
    out = ["- **LM Studio:** " + "; ".join(f"{k}: {v}" for k, v in c.lm_studio.items() if k != "lms")]
    ollama = [f"# {x}" if x.startswith(("in the session:", "note:")) else x for x in c.ollama]
    return out + ["- **Ollama:**", "", "```sh"] + ollama + ["```"]


def _recommendation(plan: DevicePlan, level: str = "###") -> list[str]:
    r = plan.recommendation
    out = [f"{level} Recommendation: {headline(plan)}", ""]
    pf = prefill_line(plan)
    if pf:
        out += [f"_{pf}_", ""]
    c = r.commands
    if r.tier == "no_fit" or c is None:
        return out + [f"- {x}" for x in r.reasons]
    out += _setting_lines(plan, c) + _app_lines(c)
    return out + _bullet_block("Why", r.reasons) + (_bullet_block("Warnings", r.warnings) if r.warnings else [])


def _bullet_block(title: str, items: list[str]) -> list[str]:
    return ["", f"**{title}:**", ""] + [f"- {x}" for x in items]


def _options_lines(plan: DevicePlan, level: str) -> list[str]:
    """The BIOS carve-out table of a carve-out APU, or the GPU limit table where the limit matters."""
    kind = options_table(plan)
    if kind == "carveout":
        rows, headers, _ = carveout_table(plan.carveout_options)
        return ["", f"{level}# BIOS carve-out options for {plan.recommendation.quant} ({plan.device.os})", "",
                carveout_caption(headers), "", _table(rows, headers)]
    if kind == "cap":
        return ["", f"{level}# GPU memory limit for {plan.recommendation.quant}", "",
                _table(cap_rows(plan.carveout_options), CAP_HEADERS)]
    return []


def _bar_lines(plan: DevicePlan) -> list[str]:
    if not plan.bars:
        return []
    return ["", "Memory with the recommendation loaded:", "", "```"] + [render_bar(b, indent="") for b in plan.bars] + ["```"]


def render_device_markdown(plan: DevicePlan, level: str = "##") -> list[str]:
    out = [f"{level} {request_title(plan)}", "", f"Device: **{device_title(plan)}**", ""]
    warn = warnings_first(plan)
    if warn:
        out += [f"> **Warning:** {w}" for w in warn] + [""]
    out += [f"Assumed: {a}" + ("  " if i < len(plan.device.assumptions) - 1 else "")
            for i, a in enumerate(plan.device.assumptions)] + [""]
    out += _recommendation(plan, level + "#") + _bar_lines(plan)
    out += ["", f"{level}# Quants at {plan.ctx} tokens", "", variant_caption(plan), ""]
    out.append(_table(variant_rows(plan), variant_headers(plan)))
    return out + _options_lines(plan, level)


def _comparison_row(p: DevicePlan) -> list[str]:
    r = p.recommendation
    fits = r.tier != "no_fit"
    split = (f"UMA {fmt_bios_size(r.carveout_bytes)} / OS {fmt_bios_size(r.os_keeps_bytes)}"
             if r.carveout_bytes is not None else f"none ({p.device.memory_architecture})")
    return [p.device.id, r.quant if fits else "-", tier_short(r.tier, p.device.memory_architecture), split,
            gib(r.total_bytes) if fits else "-", tps_cell(r.est_tps, r.est_tps_at_ctx)]


def _comparison(plans: list[DevicePlan]) -> list[str]:
    out = [f"## {plans[0].model.name} on {len(plans)} devices ({plans[0].ctx} tokens)", ""]
    out.append(_table([_comparison_row(p) for p in plans],
                      ["device", "recommended", "tier", "BIOS split", "needs GiB", "est. t/s"]))
    out.append("")
    for p in plans:
        out += render_device_markdown(p, level="###") + [""]
    return out


def render_markdown(multi: MultiPlan) -> str:
    plans = multi.plans
    out = _comparison(plans) if len(plans) > 1 else render_device_markdown(plans[0])
    out += ["", "_est. = estimate from the speed model fitted on measurements (docs/speed.md), not a measurement. "
            f"Sized for {plans[0].runtime_statement.removeprefix('runtime: ') or plans[0].runtime}. "
            "Generated by memfit._"]
    return "\n".join(out) + "\n"
