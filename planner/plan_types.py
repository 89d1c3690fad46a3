"""The planner's inputs (the model as variants, the user's request) and outputs (the pydantic
plan the reports render and `--json` prints). Kept apart from the search in planner.plan so the
reports and the launch-command builder depend on the data, not on the search."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field

from .device_schema import OS, Use
from .fit import FitResult, Tier
from .header import GGUFHeader, ModelHeaders
from .vocab import CacheType, FlashAttn

Prefer = Literal["quality", "speed", "balanced"]


# --------------------------------------------------------------------------- inputs


@dataclass
class PlanVariant:
    """One quant of the model, with its merged headers."""

    quant: str
    headers: ModelHeaders
    size_bytes: int
    files: list[str] = field(default_factory=list)  # repo-relative (Hub) or absolute (local) paths


@dataclass
class PlanProjector:
    name: str
    size_bytes: int
    headers: ModelHeaders | GGUFHeader | None  # what the estimator takes as `mmproj`
    path: str = ""


@dataclass
class PlanModel:
    """The model as the planner sees it: variants, an optional projector, and how to launch it."""

    name: str
    variants: list[PlanVariant]
    repo: str | None = None  # owner/repo on the Hub (None for local files)
    revision: str | None = None
    projector: PlanProjector | None = None
    hf_tag: Callable[[str], str] | None = None  # quant -> tag for `-hf repo:TAG`
    notes: list[str] = field(default_factory=list)  # what the resolver left out (broken or incomplete files)
    ollama_name: str | None = None  # the name `ollama run` takes, for models read from Ollama
    lmstudio_name: str | None = None  # publisher/repo in LM Studio's folder, for models read from LM Studio


class PlanRequest(BaseModel):
    """What the user asked for (the CLI maps its flags onto this)."""

    ctx: int | None = Field(None, ge=0, description="tokens; 0 = the training context; None = it, capped at 32k")
    cache_type_k: CacheType = "f16"
    cache_type_v: CacheType = "f16"
    flash_attn: FlashAttn = "auto"
    n_parallel: int = Field(1, ge=1)
    n_batch: int = 2048
    n_ubatch: int = 512
    use_mmproj: bool = True
    prefer: Prefer = "quality"
    min_tps: float | None = None
    os: OS | None = None
    use: Use | None = None
    backend: str | None = None
    carveout_bytes: int | None = None  # fixed by the user (--carveout): only this split is planned
    gpu_cap_bytes: int | None = None  # fixed by the user: only this GTT / wired limit is planned
    mmap: bool | None = None  # None: the planner decides (recommends --no-mmap when loading needs it)
    search_max_ctx: bool = True
    kv_fixed: bool = False  # the user chose the KV cache type (--kv / -ctk / -ctv): no quantized-KV alternative
    allow_spill: bool = False  # --allow-spill: a quant that spills into slower shared memory may be recommended
    min_prefill_tps: float | None = None
    max_ttft_s: float | None = None
    keep_in_memory: bool = False  # plan with LM Studio's Keep Model in Memory on (a second copy in RAM)
    runtime: str | None = None  # --runtime: llama.cpp@N | ollama[@V] | lmstudio[@V]; None = the conservative default
    shell: Literal["bash", "zsh", "powershell", "cmd"] | None = None  # None: the planned OS's default shell
    llama_build: int | None = Field(None, ge=1)  # --llama-build N
    ctx_chart: bool = False  # --format html: memory against context per quant (DevicePlan.ctx_chart)


# --------------------------------------------------------------------------- outputs


class Fact(BaseModel):
    """One reason as data: a stable code and the numbers behind it. The text reports word it
    (planner/explain.py); JSON keeps the code and the values, so scripts need no parsing."""

    code: str
    quant: str | None = None
    values: dict[str, float | int | str | bool | None] = Field(default_factory=dict)
    text: str = ""  # the rendered sentence (filled by planner/explain.py)


class MemoryByClass(BaseModel):
    """Where a candidate's bytes live: GPU side per memory class, and the CPU side."""

    fast_label: str  # "carve-out", "carve-out + GTT", "VRAM", "GPU working set"...
    fast_bytes: int  # GPU-side bytes at device speed
    spill_label: str = ""  # "Windows shared GPU memory" when part of it is in a slower class
    spill_bytes: int = 0
    spill_slowdown: float = 1.0
    host_bytes: int = 0  # CPU side (system RAM)
    desktop_gpu_bytes: int = 0  # what the desktop already holds on the GPU (not the model's)


class Candidate(BaseModel):
    """One option the planner weighed: a quant with a KV type on one device configuration."""

    id: str  # "Q5_K_M|kv=f16|uma=32g" - stable within a plan
    quant: str
    cache_type_k: str
    cache_type_v: str
    tier: Tier
    placement: Literal["fast", "spill", "partial", "none"]  # fast = all GPU data at device speed
    carveout_bytes: int | None
    gpu_cap_bytes: int | None
    cap_raised: bool = False
    n_gpu_layers: int = -1
    n_cpu_moe: int = 0
    total_bytes: int
    memory: MemoryByClass
    fast_spare_bytes: int  # room left in fast memory after the model and the estimate margins
    os_free_bytes: int
    quality_bpw: float | None
    quality_class: str  # "near-lossless" (>= 8 bpw), "high" (>= 6.5), "good" (>= 4.5), "small"
    est_tps: float | None = None
    est_tps_at_ctx: float | None = None
    est_prefill_tps: float | None = None
    est_ttft_s: float | None = None
    speed_calibrated: bool = True
    checks: list[dict[str, Any]] = Field(default_factory=list)  # {name, ok, blocking, margin_bytes}
    chosen: bool = False


class CapChange(BaseModel):
    """Raising the GPU cap: the exact setting and how to apply it."""

    knob: str
    cap_bytes: int
    default_bytes: int
    setting: str  # "ttm.pages_limit=12582912" / "sudo sysctl iogpu.wired_limit_mb=57344"
    how: str


class Commands(BaseModel):
    """The lines to run, in `shell`'s syntax (planner/shells.py)."""

    llama_server: str
    lm_studio: dict[str, str]
    lm_studio_why: dict[str, str] = Field(default_factory=dict)  # per LM Studio setting: why this value
    ollama: list[str]
    ollama_app: list[str] = Field(default_factory=list)  # the same settings for the Ollama app, on this OS
    bios: str | None = None
    cap: str | None = None  # kernel parameter / sysctl line
    shell: str = "bash"


class WholeLayerSplit(BaseModel):
    """The best split in whole layers (-ngl N, experts with their layers) for a plan that offloads
    experts with --n-cpu-moe: what Ollama (num_gpu) and LM Studio's older builds can do."""

    n_gpu_layers: int  # 0 = no whole-layer split fits
    est_tps: float | None


class Recommendation(BaseModel):
    quant: str | None
    tier: Tier
    tier_label: str
    carveout_bytes: int | None
    os_keeps_bytes: int | None
    gpu_cap_bytes: int | None
    cap_change: CapChange | None = None
    total_bytes: int
    gpu_bytes: int
    host_bytes: int
    ctx: int
    cache_type_k: str
    cache_type_v: str
    flash_attn: bool
    n_parallel: int
    n_gpu_layers: int  # -1 = all
    n_cpu_moe: int
    n_layer: int
    no_mmap: bool
    mmproj: str | None
    mmproj_bytes: int = 0  # projector weights + its encoder buffer, included in gpu_bytes
    est_tps: float | None
    est_tps_at_ctx: float | None
    est_prefill_tps: float | None = None  # average prompt speed for a prompt that fills the context
    est_ttft_s: float | None = None  # seconds to the first token for that prompt
    speed_calibrated: bool = True  # False: the speed model has under 3 measured rows for this backend/family
    placement: Literal["fast", "spill", "partial", "none"] = "none"
    memory: MemoryByClass | None = None
    fast_spare_bytes: int | None = None  # "to spare" in fast memory (the carve-out on Windows)
    keep_in_memory_ok: bool | None = None  # LM Studio Keep Model in Memory can stay on
    rope_flags: str = ""  # llama.cpp flags extending the context past the trained length ("" = none)
    whole_layer_split: WholeLayerSplit | None = None  # for --n-cpu-moe plans: the split apps without it get
    meets_min_tps: bool = True
    facts: list[Fact] = Field(default_factory=list)  # the reasons as codes with numbers
    reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    commands: Commands | None = None


class VariantPlan(BaseModel):
    quant: str
    files: list[str]
    size_bytes: int
    bpw: float | None  # nominal bits per weight of the tag
    total_bytes: int  # GPU + CPU side at this context (driver overhead included)
    gpu_bytes: int
    host_bytes: int
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    mmproj_bytes: int  # projector weights + its encoder buffer (0 without a projector)
    tier: Tier
    carveout_bytes: int | None
    gpu_cap_bytes: int | None
    cap_raised: bool
    n_gpu_layers: int
    n_cpu_moe: int
    gpu_headroom_bytes: int
    max_ctx: int  # largest context that still runs fully on the GPU, requested KV type (0 = not even 256 tokens)
    max_ctx_f16: int | None
    max_ctx_q8_0: int | None
    max_ctx_mode: Literal["gpu", "partial", "none"]  # "gpu": full offload; "none": not even 256 tokens
    max_ctx_fast: int | None = None  # largest context that stays in fast memory (Windows: the carve-out), requested KV
    max_ctx_fast_q8_0: int | None = None
    est_tps: float | None
    est_tps_at_ctx: float | None
    est_prefill_tps: float | None = None
    est_ttft_s: float | None = None
    placement: Literal["fast", "spill", "partial", "none"] = "none"
    spill_bytes: int = 0
    fast_spare_bytes: int | None = None
    speed_calibrated: bool = True
    why: str  # one line: the tier's reason or what blocks it


class CarveoutOption(BaseModel):
    carveout_bytes: int | None
    os_keeps_bytes: int
    gpu_may_use_bytes: int
    gpu_cap_bytes: int | None
    cap_raised: bool
    tier: Tier
    gpu_headroom_bytes: int  # GPU memory left after the model and driver overhead (safety margin not taken)
    gpu_spare_bytes: int  # left after the safety margin too: negative = how much the GPU is short
    os_free_bytes: int  # left to the OS above its reserve: negative = how far under it
    est_tps: float | None
    note: str
    recommended: bool = False
    fast_spare_bytes: int | None = None  # room in fast memory (Windows: the carve-out) after the model
    spill_bytes: int = 0  # bytes in slower shared memory at this split


class BarSegment(BaseModel):
    kind: Literal["reserve", "weights", "mmproj", "kv", "compute", "safety", "host", "free", "carveout_free", "firmware"]
    label: str
    bytes: int


class MemoryBar(BaseModel):
    title: str
    total_bytes: int
    segments: list[BarSegment]
    marker_bytes: int | None = None  # where the carve-out ends
    marker_label: str = ""


class CtxPoint(BaseModel):
    """One quant at one context on the charted configuration, fully on the GPU."""

    ctx: int
    gpu_bytes: int  # GPU buffers + driver overhead, as VariantPlan.gpu_bytes
    host_bytes: int
    safety_bytes: int  # the GPU-side safety the plan keeps free (fit target + estimate margins)
    placement: Literal["fast", "spill", "none"]  # fast memory / part in a slower class / does not load


class CtxCurve(BaseModel):
    quant: str
    recommended: bool = False
    points: list[CtxPoint]  # ascending context
    fits_until_ctx: int | None = None  # the longest context that loads on this configuration (None: none does)
    fast_until_ctx: int | None = None  # the longest that stays in fast memory (== fits_until_ctx without a slower class)
    stop: str | None = None  # the check that fails past fits_until_ctx: gpu_memory, os_reserve, load_peak, max_alloc


class ChartLimit(BaseModel):
    """A horizontal line of the chart: GPU-side memory (with its safety) at which something gives."""

    kind: Literal["fast", "gpu", "os_reserve"]
    label: str
    bytes: int


class CtxChart(BaseModel):
    """Memory against context for every quant on one configuration (the recommended split), with
    the limits that configuration sets. Filled only when asked for (PlanRequest.ctx_chart): it costs
    estimates a text plan does not need."""

    carveout_bytes: int | None
    gpu_cap_bytes: int | None
    cache_type_k: str
    cache_type_v: str
    ctx: int  # the requested context (marked on the chart)
    ctx_train: int | None
    limits: list[ChartLimit]
    curves: list[CtxCurve]


class DeviceSummary(BaseModel):
    id: str
    name: str
    memory_architecture: str
    os: str
    use: str
    backend: str
    ram_bytes: int
    vram_bytes: int | None
    bandwidth_gbps: float
    reserve_bytes: int
    carveout_options_bytes: list[int] = Field(default_factory=list)
    overrides: dict[str, str] = Field(default_factory=dict)
    estimated: list[str] = Field(default_factory=list)  # profile fields that are assumptions
    based_on: str | None = None
    live: dict[str, Any] | None = None  # what --device auto read from this machine
    assumptions: list[str] = Field(default_factory=list)  # the numbers taken as given, in words


class ModelSummary(BaseModel):
    name: str
    repo: str | None
    revision: str | None
    architecture: str | None
    n_params: int
    n_layer: int
    moe: bool
    expert_ratio: float
    n_ctx_train: int | None
    mmproj: str | None
    decodes: bool = True  # False for embedding/encoder models: no tokens generated, no t/s estimate


class DevicePlan(BaseModel):
    device: DeviceSummary
    model: ModelSummary
    ctx: int
    ctx_defaulted: bool
    cache_type_k: str
    cache_type_v: str
    prefer: str
    min_tps: float | None
    recommendation: Recommendation
    variants: list[VariantPlan]
    candidates: list[Candidate] = Field(default_factory=list)  # every option weighed (quant x split x KV)
    allow_spill: bool = False
    runtime: str = "llama.cpp@conservative"  # the Runtime id planned for (planner/runtime/llamacpp/apps.py)
    runtime_statement: str = ""  # which llama.cpp build and app defaults were assumed, in words
    carveout_options: list[CarveoutOption]
    bars: list[MemoryBar]
    fit: FitResult | None = None
    warnings: list[str] = Field(default_factory=list)
    fits: bool
    ctx_chart: CtxChart | None = None  # only with PlanRequest.ctx_chart (--format html)
    elapsed_ms: float = 0.0


class MultiPlan(BaseModel):
    plans: list[DevicePlan]

    @property
    def fits(self) -> bool:
        return any(p.fits for p in self.plans)

