"""The buyer's matrix: each model on each device at the setting chosen there, and per model where
the devices differ (quant, memory class, speed, first-token time)."""

from __future__ import annotations

from .units import fmt_ctx
from .workload_types import Difference, DeviceWorkload, MatrixCell, ModelRun, WorkloadModelInfo

DIFFERENCE_SHARE = 0.10  # devices "differ" in speed or first-token time by at least this share
_PLACE_WORDS = {"fast": "fully on the GPU", "spill": "spilling into shared memory", "partial": "partly on the CPU"}


def matrix_cells(devices: list[DeviceWorkload]) -> list[MatrixCell]:
    cells = []
    for d in devices:
        setting = d.chosen.label if d.chosen else "-"
        cells += [_cell(d.device.id, run, setting) for run in d.runs]
    return cells


def _cell(device: str, run: ModelRun, setting: str) -> MatrixCell:
    r = run.recommendation
    ok = r.tier != "no_fit"
    return MatrixCell(
        device=device, model=run.label, setting=setting, quant=r.quant if ok else None, tier=r.tier,
        placement=r.placement if ok else "none", est_tps=r.est_tps, est_tps_at_ctx=r.est_tps_at_ctx,
        est_prefill_tps=r.est_prefill_tps, est_ttft_s=r.est_ttft_s)


def _differs(values: list[float | None]) -> bool:
    known = [v for v in values if v]
    if len(known) != len(values):
        return len(set(v is None for v in values)) > 1
    return max(known) > (1 + DIFFERENCE_SHARE) * min(known)


def _fields_that_differ(row: list[MatrixCell]) -> list[str]:
    """Quant and memory class where any two devices differ; speeds where they differ by a share."""
    exact = [f for f in ("quant", "placement") if len({getattr(c, f) for c in row}) > 1]
    return exact + [f for f in ("est_tps_at_ctx", "est_ttft_s") if _differs([getattr(c, f) for c in row])]


def _difference_text(title: str, row: list[MatrixCell], fields: list[str]) -> str:
    if not fields:
        return f"{title}: the same on every device ({_cell_words(row[0], True)})"
    text = f"{title}: " + "; ".join(f"{c.device} {_cell_words(c, 'est_ttft_s' in fields)}" for c in row)
    return text + _same_ttft_words(row, fields)


def _same_ttft_words(row: list[MatrixCell], fields: list[str]) -> str:
    """The first-token time once for the row when it does not differ between the devices."""
    if "est_ttft_s" not in fields and row[0].est_ttft_s:
        return f" (first token after a full prompt in {duration_words(row[0].est_ttft_s)} on each)"
    return ""


def differences(models: list[WorkloadModelInfo], cells: list[MatrixCell], devices: list[str]) -> list[Difference]:
    """Per model: where the devices differ (quant, memory class, speed, first-token time)."""
    out = []
    for info in models:
        row = [next(c for c in cells if c.model == info.label and c.device == d) for d in devices]
        fields = _fields_that_differ(row)
        text = _difference_text(f"{info.label} @{fmt_ctx(info.ctx)}", row, fields)
        out.append(Difference(model=info.label, fields=fields, text=text))
    return out


def _cell_words(c: MatrixCell, with_ttft: bool) -> str:
    if c.quant is None:
        return "does not run"
    speed = f" at {c.est_tps_at_ctx:.1f} t/s" if c.est_tps_at_ctx else ""
    ttft = f", first token after a full prompt in {duration_words(c.est_ttft_s)}" if c.est_ttft_s and with_ttft else ""
    return f"{c.quant} {_PLACE_WORDS.get(c.placement, c.placement)}{speed}{ttft}"


def duration_words(s: float | None) -> str:
    """Seconds as people say them: 40 s, 3.9 min, 1.9 h."""
    if s is None:
        return "-"
    if s < 90:
        return f"{s:.0f} s"
    if s < 2 * 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
