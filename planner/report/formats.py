"""`plan`'s output formats as one table each for a plan and for a workload: the exact text a command
prints for --format text|markdown|json|html (the trailing newline included, so the command prints
it as it is). Each renderer module loads only when its format is asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..units import printable

if TYPE_CHECKING:
    from ..plan_types import MultiPlan
    from ..workload_types import WorkloadPlan


def _plan_text(multi: MultiPlan, unicode: bool) -> str:
    from .text import render_text

    return printable(render_text(multi, unicode=unicode)) + "\n"


def _plan_markdown(multi: MultiPlan, unicode: bool) -> str:
    from .markdown import render_markdown

    return printable(render_markdown(multi))


def _plan_json(multi: MultiPlan, unicode: bool) -> str:
    from .jsonout import render_json

    return render_json(multi) + "\n"


def _plan_html(multi: MultiPlan, unicode: bool) -> str:
    from .html import render_html

    return render_html(multi)


PLAN_FORMATS: dict[str, Callable[[MultiPlan, bool], str]] = {
    "text": _plan_text, "markdown": _plan_markdown, "json": _plan_json, "html": _plan_html}


def plan_output(multi: MultiPlan, fmt: str, *, unicode: bool = False) -> str:
    return PLAN_FORMATS[fmt](multi, unicode)


def _workload_text(plan: WorkloadPlan) -> str:
    from .workload import render_workload_text

    return printable(render_workload_text(plan)) + "\n"


def _workload_markdown(plan: WorkloadPlan) -> str:
    from .workload import render_workload_markdown

    return printable(render_workload_markdown(plan))


def _workload_json(plan: WorkloadPlan) -> str:
    from .workload import render_workload_json

    return render_workload_json(plan) + "\n"


# a workload has no HTML page: --format html prints its text
WORKLOAD_FORMATS: dict[str, Callable[[WorkloadPlan], str]] = {
    "text": _workload_text, "markdown": _workload_markdown, "json": _workload_json, "html": _workload_text}


def workload_output(plan: WorkloadPlan, fmt: str) -> str:
    return WORKLOAD_FORMATS[fmt](plan)
