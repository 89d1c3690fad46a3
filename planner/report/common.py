"""Cells and rows shared by the text and markdown renderers (same numbers, different markup)."""

from __future__ import annotations

from ..fit import Tier
from ..plan_types import CarveoutOption, DevicePlan, MemoryBar, VariantPlan
from ..units import GIB, fmt_bios_size, fmt_bytes, fmt_ctx

TIER_SHORT: dict[Tier, str] = {
    "dedicated": "dedicated",
    "shared": "shared",
    "partial_offload": "partial",
    "no_fit": "no fit",
    "cpu_only": "CPU",
}


# "dedicated" only where there is a dedicated pool to speak of (a carve-out); JSON keeps `tier`
_TIER_SHORT_BY_ARCH: dict[str, dict[str, str]] = {
    "unified": {"dedicated": "GPU"},
    "discrete": {"dedicated": "VRAM"},
}


def tier_short(tier: Tier, arch: str = "carveout") -> str:
    return _TIER_SHORT_BY_ARCH.get(arch, {}).get(tier, TIER_SHORT[tier])


def gib(n: int | None, digits: int = 1) -> str:
    return "-" if n is None else f"{n / GIB:.{digits}f}"


def ctx_cell(n: int | None) -> str:
    """Context in k tokens for tables: 24576 -> 24k, 12032 -> 11.8k (JSON keeps the exact number)."""
    if n is None:
        return "n/a"
    if n == 0:
        return "-"
    if n % 1024 == 0:
        return fmt_ctx(n)
    return f"{n / 1024:.1f}k"


def tps_cell(a: float | None, b: float | None = None) -> str:
    if a is None:
        return "-"
    if b is None or abs(a - b) < 0.05:
        return f"{a:.1f}"
    return f"{a:.1f}→{b:.1f}"


CAP_KNOB = {"macos": "wired", "linux": "GTT"}  # the raised GPU cap's name per OS (else "cap")


def _offload_cell(plan: DevicePlan, v: VariantPlan) -> str:
    """What stays on the CPU: the experts of N layers, or layers past -ngl."""
    if v.n_cpu_moe and v.n_gpu_layers < 0:
        return f"--n-cpu-moe {v.n_cpu_moe}"
    return f"-ngl {v.n_gpu_layers}/{plan.model.n_layer}"


def config_cell(plan: DevicePlan, v: VariantPlan) -> str:
    """How the device is set up for this variant: BIOS split, raised cap, layers on the GPU."""
    if v.tier == "no_fit":
        return "-"
    parts = [fmt_bios_size(v.carveout_bytes)] if v.carveout_bytes is not None else []
    if v.cap_raised and v.gpu_cap_bytes:
        parts.append(f"{CAP_KNOB.get(plan.device.os, 'cap')} {v.gpu_cap_bytes / GIB:.0f}G")
    if v.tier == "partial_offload":
        parts.append(_offload_cell(plan, v))
    return ", ".join(parts) if parts else "-"


def spill_matters(plan: DevicePlan) -> bool:
    """Whether this device has a slower class of GPU memory (Windows shared GPU memory on an APU):
    then "max ctx" is counted in fast memory, and the spill limit is its own column."""
    return any(v.placement == "spill" for v in plan.variants) or any(
        v.max_ctx_fast is not None and v.max_ctx_fast != v.max_ctx for v in plan.variants)


TIER_CELL: dict[str, str] = {"fast": "", "spill": "spills", "partial": "", "none": ""}


def tier_cell(v: VariantPlan, arch: str = "carveout") -> str:
    return "spills" if v.placement == "spill" else tier_short(v.tier, arch)


def ttft_cell(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.0f}s" if s >= 10 else f"{s:.1f}s"


def variant_rows(plan: DevicePlan, mark: str = "►") -> list[list[str]]:
    rec_q = plan.recommendation.quant if plan.recommendation.tier != "no_fit" else None
    fast = spill_matters(plan)
    rows = []
    for v in sorted(plan.variants, key=lambda v: v.size_bytes, reverse=True):
        row = [mark if v.quant == rec_q else "", v.quant, gib(v.size_bytes), gib(v.total_bytes), tier_cell(v, plan.device.memory_architecture),
               config_cell(plan, v)]
        rows.append(row + _ctx_cells(v, fast) + [_speed_cell(v), ttft_cell(v.est_ttft_s)])
    return rows


def _ctx_cells(v: VariantPlan, fast: bool) -> list[str]:
    """The longest contexts: in fast memory (q8_0 KV there too) and on the GPU where spilling
    matters, else with an f16 and a q8_0 KV cache."""
    if fast:
        return [ctx_cell(v.max_ctx_fast), ctx_cell(v.max_ctx_fast_q8_0), ctx_cell(v.max_ctx_f16)]
    return [ctx_cell(v.max_ctx_f16), ctx_cell(v.max_ctx_q8_0)]


def _speed_cell(v: VariantPlan) -> str:
    """Est. t/s, starred when the speed model is not calibrated for this backend and model."""
    speed = tps_cell(v.est_tps, v.est_tps_at_ctx)
    return speed + "*" if v.est_tps is not None and not v.speed_calibrated else speed


def variant_headers(plan: DevicePlan) -> list[str]:
    if spill_matters(plan):
        return ["", "quant", "file", "needs", "tier", "setup", "fast f16", "fast q8", "spill", "t/s est.", "fill"]
    return VARIANT_HEADERS


def variant_caption(plan: DevicePlan) -> str:
    base = ("file and needs in GiB (needs = GPU + CPU side at this context); ► = recommended; est. t/s at an "
            "empty → full context; fill = est. time to process a prompt that fills the context (time to first token)")
    if spill_matters(plan):
        base += ("; fast f16 / q8 = the longest context (KV type) that stays in fast memory (the carve-out), "
                 "spill = the longest that runs on the GPU at all, part of it in slower shared memory")
    else:
        where = "fits in RAM" if plan.recommendation.tier == "cpu_only" else "still runs fully on the GPU"
        base += f"; max ctx = the longest context that {where} (- = none)"
    if any(v.est_tps is not None and not v.speed_calibrated for v in plan.variants):
        base += "; * = speed uncalibrated for this backend and model family (docs/speed.md)"
    return base + "."


VARIANT_HEADERS = ["", "quant", "file", "needs", "tier", "setup", "max ctx f16", "max ctx q8_0", "est. t/s", "fill"]
VARIANT_CAPTION = ("GiB; ► = recommended; needs = GPU + CPU side at this context; max ctx = the longest context "
                   "that still runs fully on the GPU (- = none); est. t/s at an empty → full context.")


def options_table(plan: DevicePlan) -> str | None:
    """Which table of memory settings the report shows: the BIOS carve-out options of a carve-out
    APU ("carveout"), the GPU limit where there is more than one or it is raised ("cap"), or none."""
    options = plan.carveout_options
    if not options:
        return None
    if plan.device.memory_architecture == "carveout":
        return "carveout"
    return "cap" if len(options) > 1 or options[0].cap_raised else None


def carveout_table(options: list[CarveoutOption], mark: str = "►") -> tuple[list[list[str]], list[str], tuple[str, ...]]:
    """Rows, headers and column alignment of the carve-out table. The speed column only shows when
    the carve-out changes the speed (a slower shared window, partial offload): a column of one
    number says nothing."""
    show_tps = len({round(o.est_tps, 1) for o in options if o.est_tps is not None}) > 1
    rows = [_carveout_row(o, mark, show_tps) for o in options]
    headers = CARVEOUT_HEADERS if show_tps else [h for h in CARVEOUT_HEADERS if h != "t/s"]
    align = ("left", "right", "right", "right", "left", "right", "right") + (("right",) if show_tps else ()) + ("left",)
    return rows, headers, align


def _carveout_row(o: CarveoutOption, mark: str, show_tps: bool) -> list[str]:
    return ([mark if o.recommended else "", fmt_bios_size(o.carveout_bytes), fmt_bios_size(o.os_keeps_bytes),
             gib(o.gpu_may_use_bytes), tier_short(o.tier), gib(o.gpu_spare_bytes), gib(o.os_free_bytes)]
            + ([tps_cell(o.est_tps)] if show_tps else []) + [o.note])


def carveout_rows(options: list[CarveoutOption], os_: str = "", mark: str = "►") -> list[list[str]]:
    return carveout_table(options, mark)[0]


# GPU max = carve-out + the shared window in effect; spare = what is left after the safety margin
# (GPU) or after the OS reserve (OS side); negative = short by that much.
CARVEOUT_HEADERS = ["", "UMA", "OS keeps", "GPU max", "tier", "GPU spare", "OS spare", "t/s", "note"]
CARVEOUT_CAPTION = ("GiB. UMA = BIOS frame buffer; GPU max = frame buffer + shared window; spare = left after "
                    "the GPU safety margin / the OS reserve (negative = short).")


def carveout_caption(headers: list[str]) -> str:
    return CARVEOUT_CAPTION + (" t/s = est. decode speed at an empty context." if "t/s" in headers else "")


def cap_rows(options: list[CarveoutOption]) -> list[list[str]]:
    """Unified devices: the wired-limit settings instead of carve-outs."""
    rows = []
    for o in options:
        rows.append([
            "►" if o.recommended else "", f"{gib(o.gpu_cap_bytes)} GiB" + (" (raised)" if o.cap_raised else " (default)"),
            tier_short(o.tier, "unified"), gib(o.gpu_spare_bytes), gib(o.os_free_bytes), tps_cell(o.est_tps), o.note,
        ])
    return rows


CAP_HEADERS = ["", "GPU limit", "tier", "GPU spare", "OS spare", "t/s", "note"]


def device_title_parts(plan: DevicePlan) -> list[str]:
    d = plan.device
    name = f"{d.name} ({d.id})"
    sizes = [f"{k} {d.overrides[k]}" for k in ("ram", "vram", "carveout") if k in d.overrides]
    if sizes:  # the profile's name says its own RAM: say what was planned instead
        name += " with " + ", ".join(sizes)
    return [name, f"{d.os}, {d.use} use", d.backend]


def device_title(plan: DevicePlan) -> str:
    return " · ".join(device_title_parts(plan))


def request_title(plan: DevicePlan) -> str:
    kv = plan.cache_type_k if plan.cache_type_k == plan.cache_type_v else f"{plan.cache_type_k}/{plan.cache_type_v}"
    ctx = f"{fmt_ctx(plan.ctx)} context ({plan.ctx} tokens{', default' if plan.ctx_defaulted else ''})"
    return f"{plan.model.name} · {ctx} · KV {kv}"


def headline(plan: DevicePlan) -> str:
    r = plan.recommendation
    if r.tier == "no_fit":
        return f"nothing fits on {plan.device.id} at {fmt_ctx(r.ctx)} context"
    speed = ""
    if r.est_tps is not None:
        speed = f" · est. {r.est_tps:.1f} t/s"
        if r.est_tps_at_ctx is not None and abs(r.est_tps_at_ctx - r.est_tps) >= 0.05:
            speed += f" ({r.est_tps_at_ctx:.1f} at {fmt_ctx(r.ctx)})"
    return f"{r.quant} — {r.tier_label}{speed}"


def prefill_line(plan: DevicePlan) -> str | None:
    """Prompt processing in words: average speed over a prompt that fills the context, and the time
    to its first token."""
    r = plan.recommendation
    if r.tier == "no_fit" or r.est_prefill_tps is None or r.est_ttft_s is None:
        return None
    cal = "" if r.speed_calibrated else " (uncalibrated for this backend and model family)"
    return (f"prompt processing est. {r.est_prefill_tps:.0f} t/s; a prompt that fills the {fmt_ctx(r.ctx)} context "
            f"takes about {ttft_cell(r.est_ttft_s)} to the first token{cal}")




def mmproj_line(plan: DevicePlan) -> str | None:
    """Whether the vision projector is part of the plan, what it costs and how it gets loaded."""
    r = plan.recommendation
    name = plan.model.mmproj
    if r.tier == "no_fit" or not name:
        return None
    cost = f"{fmt_bytes(r.mmproj_bytes, digits=1)} with its image-encoder buffer" if r.mmproj_bytes else "sized"
    how = ("-hf downloads it with the model" if plan.model.repo else "loaded with --mmproj")
    return f"{name} included ({cost}): {how}; --mmproj none plans text only"


def warnings_first(plan: DevicePlan) -> list[str]:
    """Warnings that change what the user asks for (shown above the recommendation)."""
    return list(plan.warnings)


def legend_sums(bar: MemoryBar) -> dict[tuple[str, str], int]:
    """Bytes per (kind, label) of a memory bar's visible segments: one legend entry per kind (the
    safety margin can sit in two places)."""
    sums: dict[tuple[str, str], int] = {}
    for seg in bar.segments:
        if seg.bytes > 0:
            sums[(seg.kind, seg.label)] = sums.get((seg.kind, seg.label), 0) + seg.bytes
    return sums
