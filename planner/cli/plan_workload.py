"""`memfit plan MODEL@CTX MODEL@CTX ...` / `--workload FILE` / `--together`: the flags of the
workload path and the calls (resolve each model, plan, render). The planning inputs come from
planner/inputs.py, the choosing lives in planner/workload_plan.py and planner/workload_together.py,
the words in planner/report/workload.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..errors import InputError
from .guard import EXIT_NO_FIT, EXIT_OK

if TYPE_CHECKING:
    from ..device_schema import DeviceProfile
    from ..plan_types import PlanRequest
    from ..workload import ParsedRequest, Workload


def parse_models(models: tuple[str, ...], workload_file: str | None, together: bool, ctx: int | None) -> ParsedRequest:
    """The MODEL arguments, --workload and --together (planner.workload.parse_request); no model at
    all is click's usage error, as it was when `plan` took one MODEL."""
    from ..workload import parse_request

    if not models and workload_file is None:
        raise click.UsageError("Missing argument 'MODEL[@CTX]...' (or --workload FILE).")
    return parse_request(models, workload_file, together, ctx)


def _check_single_model_flags(revision: str | None, quants: list[str], mmproj: str) -> None:
    """Flags that name one model's files have no meaning for several: say where they go instead."""
    if quants:
        raise InputError("--quant applies to one model: in a workload write MODEL:QUANT (or quant = in the file)")
    if revision:
        raise InputError("--revision applies to one model: in a workload write owner/repo@REV (or revision = in "
                         "the file)")
    if mmproj not in ("auto", "none"):
        raise InputError("--mmproj FILE applies to one model: in a workload file give mmproj = FILE for it")


def run_workload(workload: Workload, profiles: list[DeviceProfile], request: PlanRequest, *, revision: str | None,
                 quants: list[str], mmproj: str, fmt: str) -> int:
    """Plan a workload (planner.workload.Workload) on the loaded profiles; print it; exit code."""
    from ..inputs import build_work_items
    from ..report.formats import workload_output
    from ..workload_plan import plan_workload

    _check_single_model_flags(revision, quants, mmproj)
    plan = plan_workload(workload, build_work_items(workload, mmproj), request, profiles)
    click.echo(workload_output(plan, fmt), nl=False)
    return EXIT_OK if plan.fits else EXIT_NO_FIT
