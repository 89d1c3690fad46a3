"""Rendering a workload plan (planner.workload_types.WorkloadPlan): text that fits the terminal,
markdown for forum posts, JSON. Per device: the one setting, why, each model's launch line, the
trade-off table (every candidate setting x every model) and what switching costs; with several
devices the buyer's matrix first and where the devices differ. Nothing here decides anything."""

from __future__ import annotations

import json
import re
from typing import Callable

from tabulate import tabulate

from ..plan_types import DeviceSummary
from ..units import GIB, MIB, fmt_ctx
from ..workload_plan import both, duration_words
from ..workload_types import (DeviceWorkload, MatrixCell, ModelAtSetting, ModelRun, Setting, SettingRow, TogetherRow,
                              WorkloadModelInfo, WorkloadPlan)
from .common import tps_cell
from .layout import render_table, text_width, wrap
from ..shells import shell
from .text import lm_studio_items, wrap_command

MARK = "►"
PLACE_SHORT = {"fast": "fast", "spill": "spills", "partial": "partial", "none": "no fit"}
LEGEND = ("fast = every GPU byte in fast memory (the carve-out on Windows; carve-out + GTT on Linux; unified "
          "memory; VRAM), spills = part in slower shared memory, partial = layers or experts on the CPU; "
          "est. t/s at an empty → full context; q8KV = with a q8_0 KV cache")
EST_NOTE = "est. = estimate from the speed model fitted on measurements (docs/speed.md), not a measurement."
LABEL = 12  # width of the row labels ("  BIOS         ...")


# --------------------------------------------------------------------------- shared words


def device_words(d: DeviceSummary) -> str:
    sizes = [f"{k} {d.overrides[k]}" for k in ("ram", "vram", "carveout", "gpu_cap") if k in d.overrides]
    name = f"{d.name} ({d.id})" + (" with " + ", ".join(sizes) if sizes else "")
    return f"{name} · {d.os}, {d.use} use · {d.backend}"


def cell(m: ModelAtSetting) -> str:
    """A model on a setting in a table cell: quant, memory class, est. t/s."""
    if m.quant is None:
        return "no fit"
    slow = "" if m.meets_filters else " (too slow)"
    speed = tps_cell(m.est_tps, m.est_tps_at_ctx)
    return f"{m.quant}{_kv_words(m.cache_type_k)} {PLACE_SHORT[m.placement]} {speed}{slow}".strip()


def _kv_words(cache_type_k: str) -> str:
    """A KV cache type other than f16, as a cell says it (` q8KV`)."""
    if cache_type_k == "q8_0":
        return " q8KV"
    return f" {cache_type_k}KV" if cache_type_k != "f16" else ""


def setting_label(s: Setting | None) -> str:
    return s.label if s else "-"


def _models_words(plan: WorkloadPlan) -> str:
    """`3 models loaded at once`: the workload's title words."""
    n = len(plan.models)
    return f"{n} model{'s' if n > 1 else ''}" + (" loaded at once" if plan.together else "")


def _one_at_a_time_title(d: DeviceWorkload) -> str:
    return "One at a time" if d.together is not None else "Trade-off"


def _short_of_all(d: DeviceWorkload, n: int) -> str:
    """How many of the models the chosen setting runs, and which of them miss the speed filters."""
    row = next((r for r in d.rows if r.chosen), None)
    if row is None:
        return f"runs 0 of {n} models"
    return f"runs {row.runs} of {n} models{_too_slow_words(row)}"


def _too_slow_words(row: SettingRow) -> str:
    """The models that run on the setting but miss the speed filters."""
    slow = [m.label for m in row.models if m.quant is not None and not m.meets_filters]
    return f"; too slow for the speed filters: {', '.join(slow)}" if slow else ""


def _one_at_a_time(d: DeviceWorkload, n: int) -> str:
    if d.all_at_best:
        return "every model at its best" if n > 1 else "the model at its best"
    if d.serves_all:
        return "every model runs, some give something up (below)"
    return _short_of_all(d, n)


def status(d: DeviceWorkload, n: int) -> str:
    if d.mode == "together":
        return f"{both(n)} models loaded at once"
    turns = "they must take turns; one at a time: " if d.together is not None else ""
    return turns + _one_at_a_time(d, n)


def size_flag(n: int) -> str:
    return f"{n // GIB}g" if n % GIB == 0 else f"{n // MIB}m"


def _together_flags(run: ModelRun, d: DeviceWorkload) -> list[str]:
    """The quant and KV type the sum left this model (planned together)."""
    r = run.recommendation
    if d.mode != "together" or not r.quant:
        return []
    kv = [f"-ctk {r.cache_type_k} -ctv {r.cache_type_v}"] if r.cache_type_k != "f16" or r.cache_type_v != "f16" else []
    return [f"--quant {r.quant}"] + kv


def _setting_flags(d: DeviceWorkload) -> list[str]:
    """The chosen setting as flags: the carve-out, and a unified machine's raised GPU limit."""
    s = d.chosen
    if s is None:
        return []
    flags = [f"--carveout {size_flag(s.carveout_bytes)}"] if s.carveout_bytes is not None else []
    if s.cap_change is not None and d.device.memory_architecture == "unified":
        flags.append(f"--gpu-cap {size_flag(s.cap_change.cap_bytes)}")
    return flags


def alone_command(run: ModelRun, ref: str, d: DeviceWorkload) -> str:
    """The single-model command that plans this model at the chosen setting (Ollama lines, memory bar...)."""
    r = run.recommendation
    quote = shell(r.commands.shell).quote if r.commands is not None else (lambda word: word)
    parts = ["memfit plan", quote(f"{ref}@{fmt_ctx(run.ctx)}"), f"-d {d.device.id}:{d.device.os}:{d.device.use}"]
    return " ".join(parts + _together_flags(run, d) + _setting_flags(d))


def headline(run: ModelRun) -> str:
    r = run.recommendation
    if r.tier == "no_fit":
        return f"nothing fits at {fmt_ctx(run.ctx)}"
    speed = f" · est. {tps_cell(r.est_tps, r.est_tps_at_ctx)} t/s" if r.est_tps is not None else ""
    fill = f" · fill {duration_words(r.est_ttft_s)}" if r.est_ttft_s is not None else ""
    return f"{r.quant} — {r.tier_label}{speed}{fill}"


def titles(d: DeviceWorkload, numbered: bool = False) -> list[str]:
    """Model column headings: `label @ctx`, or `model N` (the numbered list above) where those are too wide."""
    return [f"model {i}" if numbered else f"{r.label} @{fmt_ctx(r.ctx)}" for i, r in enumerate(d.runs, 1)]


def trade_rows(d: DeviceWorkload, numbered: bool = False) -> tuple[list[list[str]], list[str]]:
    rows = [[MARK if row.chosen else "", row.setting.label] + [cell(m) for m in row.models] + [str(row.runs)]
            for row in d.rows]
    return rows, ["", "setting"] + titles(d, numbered) + ["runs"]


def together_rows(d: DeviceWorkload, numbered: bool = False) -> tuple[list[list[str]], list[str]]:
    """The together table; without model columns when no setting holds them all at once."""
    assert d.together is not None
    any_fit = any(row.fits for row in d.together.rows)

    def cells(row: TogetherRow) -> list[str]:
        if not any_fit:
            return []
        return [cell(m) for m in row.models] if row.fits else [""] * len(d.runs)

    rows = [[MARK if row.chosen else "", row.setting.label] + cells(row)
            + [f"{row.gpu_bytes / GIB:.1f} GiB on the GPU" if row.fits else row.blocker_short]
            for row in d.together.rows]
    return rows, ["", "setting"] + (titles(d, numbered) if any_fit else []) + ["together"]


def _setting_lines(s: Setting | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if s is None:
        return out
    if s.bios:
        first, *rest = s.bios.split("\n")
        out.append(("BIOS", first))
        out += [("", x) for x in rest]
    if s.cap_change is not None:
        out.append(("GPU limit", s.cap_change.setting))
    return out


def _titles(plan: WorkloadPlan) -> list[str]:
    out = []
    for i, m in enumerate(plan.models, 1):
        what = m.repo or m.name
        source = f": {what}" if what != m.label else ""
        proj = f" + {m.mmproj}" if m.mmproj else ""
        out.append(f"{i}. {m.label} @{fmt_ctx(m.ctx)} ({m.ctx} tokens){source}{proj}")
    return out


# --------------------------------------------------------------------------- text


def _wrap(text: str, width: int, lead: str = "", cont: str | None = None) -> list[str]:
    """Prose wrapped without splitting a number from its unit (t/s, GiB, GB, min)."""
    glued = re.sub(r"(\d) (t/s|GiB|GB|MB|min|h|s)\b", "\\1\u00a0\\2", text)
    return [x.replace("\u00a0", " ") for x in wrap(glued, width, lead, cont)]


def _row(label: str, lines: list[str]) -> list[str]:
    pad = " " * (LABEL + 3)
    return [f"  {label:<{LABEL}} {lines[0]}"] + [pad + x for x in lines[1:]]


def _prose(label: str, text: str, width: int) -> list[str]:
    return _row(label, _wrap(text, width - LABEL - 3))


def _setting_text(plan: WorkloadPlan, d: DeviceWorkload, width: int) -> list[str]:
    """The device, its assumptions, the one setting with how to set it, why, and the together verdict."""
    s = d.chosen
    out = _wrap(device_words(d.device), width, "", "   ")
    out += _wrap("; ".join(d.device.assumptions), width, "  assumed: ", "           ")
    out += [""] + _wrap(f"Setting: {setting_label(s)} — {status(d, len(plan.models))}", width, "", "  ")
    for label, text in _setting_lines(s):
        out += _prose(label, text, width)
    out += _prose("Why", d.reason, width)
    return out + (_prose("Together", d.together.statement, width) if d.together is not None else [])


def _run_text(run: ModelRun, d: DeviceWorkload, width: int, ref: str) -> list[str]:
    """One model at the setting: its headline, launch lines (in the planned shell) or why not, warnings."""
    out = [""] + _wrap(f"{run.label} @{fmt_ctx(run.ctx)}: {headline(run)}", width, "", "  ")
    c = run.recommendation.commands
    if c is not None:
        cont = shell(c.shell).continuation  # the shell the commands are written for
        out += _row("llama.cpp", wrap_command(c.llama_server, width, LABEL + 3, LABEL + 3, cont))
        out += _prose("LM Studio", " · ".join(f"{k} {v}" for k, v in lm_studio_items(c)), width)
        out += _row("alone", wrap_command(alone_command(run, ref, d), width, LABEL + 3, LABEL + 3, cont))
    else:
        out += [f"    - {x}" for line in run.recommendation.reasons for x in _wrap(line, width - 6)]
    for w in run.warnings + run.recommendation.warnings:
        out += _wrap(w, width, "    ! ", "      ")
    return out


def _tables_text(d: DeviceWorkload, width: int) -> list[str]:
    """The together table (when planned together) and the one-at-a-time trade-off table."""
    out = []
    if d.together is not None:
        out += [""] + _wrap(f"Together on {d.device.id}: every model loaded at once ({MARK} = chosen):", width)
        out += _fitted(lambda k: together_rows(d, k), width, ())
    one = _one_at_a_time_title(d)
    out += [""] + _wrap(f"{one} on {d.device.id}: each setting x each model ({MARK} = {_chosen_words(d)}):", width)
    return out + _fitted(lambda k: trade_rows(d, k), width, ("runs",)) + _wrap(LEGEND + ".", width, "  ")


def _costs_text(d: DeviceWorkload, width: int) -> list[str]:
    """What each setting gives up, and what switching between settings costs."""
    out = _losses_text(d.losses, width)
    if d.switches:
        return out + ["", "Switching:"] + [x for sw in d.switches for x in _wrap(sw.text, width, "  - ", "    ")]
    if len(d.rows) > 1:
        out += _wrap(f"Switching settings: {d.switch_cost}.", width, "", "  ")
    return out


def _losses_text(losses: list[str], width: int) -> list[str]:
    if not losses:
        return []
    return (["", "What each setting costs (against each model's own best):"]
            + [x for line in losses for x in _wrap(line, width, "  - ", "    ")])


def _device_text(plan: WorkloadPlan, d: DeviceWorkload, width: int, refs: dict[str, str]) -> list[str]:
    out = _setting_text(plan, d, width)
    for run in d.runs:
        out += _run_text(run, d, width, refs[run.label])
    return out + _tables_text(d, width) + _costs_text(d, width)


def _fitted(make: Callable[[bool], tuple[list[list[str]], list[str]]], width: int,
            drop: tuple[str, ...]) -> list[str]:
    """A table within `width`: model columns headed `label @ctx`, else `model N` when those headings
    alone would overflow (a heading never wraps)."""
    lines: list[str] = []
    for numbered in (False, True):
        rows, headers = make(numbered)
        align = ["right" if h == "runs" else "left" for h in headers]
        lines = render_table(rows, headers, width, drop_order=drop, align=align, indent=2)
        if max(len(x) for x in lines) <= width:
            break
    return lines


def _chosen_words(d: DeviceWorkload) -> str:
    return "the best setting for them one at a time" if d.mode == "together" else "chosen"


def _settings_table(plan: WorkloadPlan, width: int) -> list[str]:
    rows = []
    for d in plan.devices:
        runs = next((r for r in d.rows if r.chosen), None)
        rows.append([d.device.id, setting_label(d.chosen), status(d, len(plan.models)) if runs else "-"])
    return render_table(rows, ["device", "setting", "result"], width, indent=2)


def _model_on_devices(plan: WorkloadPlan, m: WorkloadModelInfo, width: int) -> list[str]:
    rows = [[c.device, c.quant or "-", PLACE_SHORT[c.placement], tps_cell(c.est_tps, c.est_tps_at_ctx),
             f"{c.est_prefill_tps:.0f}" if c.est_prefill_tps else "-", duration_words(c.est_ttft_s)]
            for c in plan.matrix if c.model == m.label]
    return [f"  {m.label} @{fmt_ctx(m.ctx)}"] + render_table(
        rows, ["device", "quant", "memory", "est. t/s", "pp t/s", "fill"], width, drop_order=("pp t/s",),
        align=["left", "left", "left", "right", "right", "right"], indent=4)


def _matrix_text(plan: WorkloadPlan, width: int) -> list[str]:
    out = ["Settings (one per device for the whole workload):"] + _settings_table(plan, width)
    out += ["", "Buyer's matrix: each model on each device at that device's setting (est.):"]
    for m in plan.models:
        out += _model_on_devices(plan, m, width)
    out += _wrap("pp t/s = prompt processing; fill = time to the first token for a prompt that fills the context.",
                 width, "  ")
    return out + ["", "Where they differ:"] + [x for diff in plan.differences for x in _wrap(diff.text, width, "  - ", "    ")]


def render_workload_text(plan: WorkloadPlan) -> str:
    width = text_width()
    k = len(plan.devices)
    where = f"on {plan.devices[0].device.id}" if k == 1 else f"compared on {k} devices"
    out = _wrap(f"Workload: {_models_words(plan)} {where}, one setting per device", width)
    for t in _titles(plan):
        out += _wrap(t, width, "  ", "     ")
    refs = {m.label: m.ref for m in plan.models}
    if k > 1:
        out += [""] + _matrix_text(plan, width)
    rule = ["─" * min(width, 40)] if k > 1 else []
    for d in plan.devices:
        out += [""] + rule + _device_text(plan, d, width, refs)
    out += [""] + _wrap(EST_NOTE, width)
    return "\n".join(out)


# --------------------------------------------------------------------------- markdown


def _md_table(rows: list[list[str]], headers: list[str]) -> str:
    clean = [[c.strip().replace("|", "\\|") for c in row] for row in rows]
    return tabulate(clean, headers=headers, tablefmt="github", disable_numparse=True)


def _run_md(run: ModelRun, d: DeviceWorkload, ref: str) -> list[str]:
    out = ["", f"**{run.label} @{fmt_ctx(run.ctx)}:** {headline(run)}", ""]
    c = run.recommendation.commands
    if c is not None:
        out += ["```sh", c.llama_server, "```", "",
                "- LM Studio: " + "; ".join(f"{k}: {v}" for k, v in lm_studio_items(c)),
                f"- Alone, with Ollama lines and the memory bar: `{alone_command(run, ref, d)}`"]
    else:
        out += [f"- {x}" for x in run.recommendation.reasons]
    return out + [f"- Warning: {w}" for w in run.warnings + run.recommendation.warnings]


def _tables_md(d: DeviceWorkload) -> list[str]:
    out = []
    if d.together is not None:
        rows, headers = together_rows(d)
        out += ["", f"Together: every model loaded at once ({MARK} = chosen)", "", _md_table(rows, headers)]
    rows, headers = trade_rows(d)
    one = _one_at_a_time_title(d)
    return out + ["", f"{one}: each setting x each model ({MARK} = {_chosen_words(d)}; {LEGEND})", "",
                  _md_table(rows, headers)]


def _costs_md(d: DeviceWorkload) -> list[str]:
    out = ["", "What each setting costs (against each model's own best):", ""] + [f"- {x}" for x in d.losses] if d.losses else []
    if d.switches:
        return out + ["", "Switching:", ""] + [f"- {sw.text}" for sw in d.switches]
    return out + (["", f"Switching settings: {d.switch_cost}."] if len(d.rows) > 1 else [])


def _device_md(plan: WorkloadPlan, d: DeviceWorkload, refs: dict[str, str], level: str) -> list[str]:
    s = d.chosen
    out = [f"{level} {d.device.id}: {setting_label(s)} — {status(d, len(plan.models))}", "",
           f"_{device_words(d.device)}_", ""]
    out += [f"- Assumed: {a}" for a in d.device.assumptions]
    out += [f"- **{label or 'how'}:** {text}" for label, text in _setting_lines(s)]
    out.append(f"- **Why:** {d.reason}")
    if d.together is not None:
        out.append(f"- **Together:** {d.together.statement}")
    for run in d.runs:
        out += _run_md(run, d, refs[run.label])
    return out + _tables_md(d) + _costs_md(d)


def _matrix_cell_md(c: MatrixCell) -> str:
    if not c.quant:
        return "no fit"
    pp = f", pp {c.est_prefill_tps:.0f} t/s" if c.est_prefill_tps else ""
    fill = f", fill {duration_words(c.est_ttft_s)}" if c.est_ttft_s else ""
    return f"{c.quant or '-'} {PLACE_SHORT[c.placement]} {tps_cell(c.est_tps, c.est_tps_at_ctx)} t/s{pp}{fill}"


def _matrix_cell(plan: WorkloadPlan, device: str, model: str) -> MatrixCell:
    return next(x for x in plan.matrix if x.device == device and x.model == model)


def _comparison_md(plan: WorkloadPlan) -> list[str]:
    """Several devices: the setting each, the buyer's matrix, where they differ."""
    rows = [[d.device.id, setting_label(d.chosen), status(d, len(plan.models))] for d in plan.devices]
    out = ["", "### Settings (one per device)", "", _md_table(rows, ["device", "setting", "result"])]
    models = [f"{m.label} @{fmt_ctx(m.ctx)}" for m in plan.models]
    matrix = [[d.device.id] + [_matrix_cell_md(_matrix_cell(plan, d.device.id, m.label)) for m in plan.models]
              for d in plan.devices]
    out += ["", "### Buyer's matrix (est.)", "", _md_table(matrix, ["device"] + models), ""]
    return out + ["Where they differ:", ""] + [f"- {x.text}" for x in plan.differences]


def render_workload_markdown(plan: WorkloadPlan) -> str:
    out = [f"## Workload: {_models_words(plan)}", ""]
    out += [f"{t}" for t in _titles(plan)]
    refs = {m.label: m.ref for m in plan.models}
    if len(plan.devices) > 1:
        out += _comparison_md(plan)
    for d in plan.devices:
        out += [""] + _device_md(plan, d, refs, "###")
    out += ["", f"_{EST_NOTE}_", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- JSON


def render_workload_json(plan: WorkloadPlan) -> str:
    return json.dumps(plan.model_dump(mode="json"), indent=2, allow_nan=False)


__all__ = ["render_workload_text", "render_workload_markdown", "render_workload_json", "cell", "SettingRow"]
