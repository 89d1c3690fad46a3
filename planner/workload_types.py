"""What a workload plan reports (the pydantic models `--json` dumps and the reports render), kept
apart from the choosing in planner/workload_plan.py as plan_types.py is from the search."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from .plan_types import CapChange, DeviceSummary, Recommendation

Placement = Literal["fast", "spill", "partial", "none"]
Mode = Literal["one_at_a_time", "together"]


class WorkloadModelInfo(BaseModel):
    """One model of the workload as planned: what the user wrote and what it resolved to."""

    label: str  # the user's reference (or the file's `name`): table headings use it
    ref: str
    ctx: int  # the context planned (tokens)
    repo: str | None = None
    name: str  # the resolved model (repo, path or Ollama name)
    mmproj: str | None = None  # the projector sized with it


class Setting(BaseModel):
    """One machine setting a whole workload runs on: the BIOS carve-out and the GPU memory limit."""

    id: str  # stable within a plan: "uma=32g", "cap=default", "as-is"
    label: str  # "32 GB / OS 32 GB", "wired limit 48 GiB"
    carveout_bytes: int | None = None
    os_keeps_bytes: int | None = None
    gpu_cap_bytes: int | None = None  # the GTT / wired limit in effect (None: nothing to set)
    cap_change: CapChange | None = None  # the raise one of the models needs (kernel parameter / sysctl)
    bios: str | None = None  # the BIOS line (with the vendor's menu path)


class ModelAtSetting(BaseModel):
    """One model on one candidate setting: the single-model plan's choice there."""

    label: str
    quant: str | None  # None: nothing runs
    tier: str
    placement: Placement
    fits: bool  # runs and meets the speed filters (--min-tps, --min-prefill-tps, --max-ttft)
    meets_filters: bool = True  # False: it runs (quant, placement, speeds given) but too slowly for the filters
    cache_type_k: str
    cache_type_v: str
    n_cpu_moe: int = 0
    n_gpu_layers: int = -1
    gpu_bytes: int = 0
    total_bytes: int = 0
    est_tps: float | None = None
    est_tps_at_ctx: float | None = None
    est_prefill_tps: float | None = None
    est_ttft_s: float | None = None
    losses: list[str] = Field(default_factory=list)  # codes: no_fit, placement, quality, kv, speed
    loss: str = ""  # what it gives up here against its own best, in words ("" = nothing)
    blocker: str = ""  # why nothing runs (the plan's first blocking fact), when it does not
    blocked_by: list[str] = Field(default_factory=list)  # the checks that fail: os_reserve, load_peak, gpu_memory...


class SettingRow(BaseModel):
    """One candidate setting with every model's outcome on it (a row of the trade-off table)."""

    setting: Setting
    models: list[ModelAtSetting]
    runs: int  # models that run here
    fast: int  # models with every GPU byte in fast memory
    at_best: int  # models that give up nothing against their own best
    chosen: bool = False
    dominated: bool = False  # another setting is at least as good for every model and better for one


class AloneBest(BaseModel):
    """What the model gets when it is planned alone (`plan MODEL`): the yardstick for losses."""

    label: str
    quant: str | None
    placement: Placement
    fits: bool
    est_tps_at_ctx: float | None = None
    setting: Setting


class Switch(BaseModel):
    """Going from the chosen setting to another model's own best: what changes, and at what cost."""

    model: str
    to: Setting
    quant: str | None
    est_tps_at_ctx: float | None = None
    changes: list[str]  # "the BIOS carve-out", "the GTT limit (kernel command line)"...
    reboot: bool
    text: str


class TogetherRow(BaseModel):
    """One candidate setting with the models loaded at the same time (their sum in the same pools)."""

    setting: Setting
    fits: bool
    placement: Placement  # of the sum: fast, spill (part in a slower class) or none
    models: list[ModelAtSetting]
    gpu_bytes: int = 0
    total_bytes: int = 0
    fast_spare_bytes: int | None = None
    os_free_bytes: int | None = None
    blocker: str = ""  # the closest combination's first blocking check, when nothing fits together
    blocker_short: str = ""  # the same for a table cell ("GPU short 2.6 GiB")
    chosen: bool = False


class TogetherPlan(BaseModel):
    fits: bool
    rows: list[TogetherRow]
    statement: str  # "they run together ..." or "they must take turns: ..."


class ModelRun(BaseModel):
    """One model at the chosen setting: its plan's recommendation, with the launch lines."""

    label: str
    ctx: int
    recommendation: Recommendation
    alone: AloneBest
    warnings: list[str] = Field(default_factory=list)  # the plan's own (a context past training...)


class DeviceWorkload(BaseModel):
    device: DeviceSummary
    mode: Mode
    rows: list[SettingRow]  # the trade-off table (models one at a time)
    chosen: Setting | None
    reason: str
    serves_all: bool  # every model runs on the chosen setting
    all_at_best: bool  # and none gives up anything against its own best
    losses: list[str] = Field(default_factory=list)  # per candidate worth weighing: who loses what
    switches: list[Switch] = Field(default_factory=list)  # what switching to another model's best costs
    switch_cost: str = ""  # what moving between the candidate settings costs on this device
    together: TogetherPlan | None = None
    runs: list[ModelRun] = Field(default_factory=list)
    fits: bool
    elapsed_ms: float = 0.0


class MatrixCell(BaseModel):
    """One entry of the buyer's matrix: a model on a device at that device's workload setting."""

    device: str
    model: str
    setting: str
    quant: str | None
    tier: str
    placement: Placement
    est_tps: float | None = None
    est_tps_at_ctx: float | None = None
    est_prefill_tps: float | None = None
    est_ttft_s: float | None = None


class Difference(BaseModel):
    model: str
    fields: list[str]  # quant, placement, est_tps_at_ctx, est_ttft_s
    text: str


class WorkloadPlan(BaseModel):
    models: list[WorkloadModelInfo]
    together: bool
    devices: list[DeviceWorkload]
    matrix: list[MatrixCell] = Field(default_factory=list)
    differences: list[Difference] = Field(default_factory=list)
    fits: bool  # on at least one device the chosen setting runs every model (together: at once)
    elapsed_ms: float = 0.0
