"""What one device's workload run holds: the models as resolved, the planners, the candidates and
the one-at-a-time answer, which the `--together` planner (planner/workload_together.py) reuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .plan_types import PlanModel, PlanRequest
from .search import SearchHooks
from .workload import WorkloadEntry

if TYPE_CHECKING:
    from .plan import Planner
    from .search import DeviceSetup
    from .workload_rank import Candidate, Outcome
    from .workload_types import DeviceWorkload, Setting


@dataclass
class WorkItem:
    """One model of the workload, resolved."""

    entry: WorkloadEntry
    model: PlanModel


@dataclass
class DeviceRun:
    """Everything computed for one device (the together planner reuses the planners and alone plans)."""

    planners: list[Planner]
    dev: DeviceSetup
    candidates: list[Candidate]
    alone: list[Outcome]
    alone_settings: list[Setting]
    chosen: Candidate | None
    report: DeviceWorkload
    planner_kw: SearchHooks = field(default_factory=lambda: SearchHooks())  # stand-ins for the estimator (tests)


def request_for(entry: WorkloadEntry, base: PlanRequest, model: PlanModel) -> PlanRequest:
    """The single-model request for one entry: its own context, its projector choice."""
    ctx = entry.ctx if entry.ctx is not None else base.ctx
    return base.model_copy(update={"ctx": ctx, "use_mmproj": model.projector is not None and entry.mmproj != "none"})
