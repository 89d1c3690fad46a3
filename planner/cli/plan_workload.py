"""`memfit plan MODEL@CTX MODEL@CTX ...` / `--workload FILE` / `--together`: the flags of the
workload path and the calls (resolve each model, plan, render). The choosing lives in
planner/workload_plan.py and planner/workload_together.py, the words in planner/report/workload.py."""

from __future__ import annotations

from typing import Any

import click

from ..errors import InputError
from ..units import printable

EXIT_OK = 0
EXIT_NO_FIT = 3


def parse_models(models: tuple[str, ...], workload_file: str | None, together: bool, ctx: int | None) -> Any:
    """The MODEL arguments, --workload and --together (planner.workload.parse_request); no model at
    all is click's usage error, as it was when `plan` took one MODEL."""
    from ..workload import parse_request

    if not models and workload_file is None:
        raise click.UsageError("Missing argument 'MODEL[@CTX]...' (or --workload FILE).")
    return parse_request(models, workload_file, together, ctx)


def run_workload(workload: Any, profiles: list[Any], request: Any, *, revision: str | None, quants: list[str],
                 mmproj: str, fmt: str) -> int:
    """Plan a workload (planner.workload.Workload) on the loaded profiles; print it; exit code."""
    from ..report.workload import render_workload_json, render_workload_markdown, render_workload_text
    from ..workload_plan import WorkItem, plan_workload
    from .plan_cmd import _build_model

    if quants:
        raise InputError("--quant applies to one model: in a workload write MODEL:QUANT (or quant = in the file)")
    if revision:
        raise InputError("--revision applies to one model: in a workload write owner/repo@REV (or revision = in "
                         "the file)")
    if mmproj not in ("auto", "none"):
        raise InputError("--mmproj FILE applies to one model: in a workload file give mmproj = FILE for it")
    items = []
    for entry in workload.models:
        own = entry.mmproj.strip()
        mm = own.lower() if own.lower() in ("auto", "none") else own
        if mm == "auto":
            mm = mmproj  # --mmproj none turns every projector off
        entry = entry.model_copy(update={"mmproj": mm})
        model, _ = _build_model(entry.ref, entry.revision, entry.quant, mm)
        items.append(WorkItem(entry=entry, model=model))
    plan = plan_workload(workload, items, request, profiles)
    if fmt == "json":
        click.echo(render_workload_json(plan))
    elif fmt == "markdown":
        click.echo(printable(render_workload_markdown(plan)), nl=False)
    else:
        click.echo(printable(render_workload_text(plan)))
    return EXIT_OK if plan.fits else EXIT_NO_FIT
