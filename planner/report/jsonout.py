"""JSON output: the plan models dumped as they are (one plan, or `plans[]` for several devices)."""

from __future__ import annotations

import json

from ..plan_types import DevicePlan, MultiPlan


def plan_dict(plan: DevicePlan) -> dict:
    return plan.model_dump(mode="json")


def render_json(multi: MultiPlan) -> str:
    """One device: the plan object itself; several: {"plans": [...], "comparison": [...]}."""
    if len(multi.plans) == 1:
        data = plan_dict(multi.plans[0])
    else:
        data = {
            "plans": [plan_dict(p) for p in multi.plans],
            "comparison": [
                {"device": p.device.id, "quant": p.recommendation.quant, "tier": p.recommendation.tier,
                 "carveout_bytes": p.recommendation.carveout_bytes, "total_bytes": p.recommendation.total_bytes,
                 "est_tps": p.recommendation.est_tps, "fits": p.fits}
                for p in multi.plans
            ],
        }
    return json.dumps(data, indent=2, allow_nan=False)
