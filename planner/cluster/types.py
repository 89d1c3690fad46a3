"""The cluster plan the reports render and `--json` prints (docs/cluster.md lists every field), and
the split estimate a multi-device engine gives the cluster search (`DeviceBuffers`, `SplitEstimate`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class DeviceBuffers(BaseModel):
    """What the runtime allocates on one device of a split (bytes): an engine's answer to
    `MultiDevice.split` (planner/runtime/base.py)."""

    device: str = Field(description="the runtime's device order: 'dev0', 'dev1'... or 'host' (the head's CPU)")
    layers: list[int] = Field(default_factory=list, description="the transformer layers it holds")
    holds_output: bool = False
    weights_bytes: int = 0
    kv_bytes: int = 0
    recurrent_bytes: int = 0
    compute_bytes: int = 0
    output_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.recurrent_bytes + self.compute_bytes + self.output_bytes


class SplitEstimate(BaseModel):
    """Every device's buffers (the runtime's device order) and the host's, for one split."""

    ts: list[float]
    pipeline: bool = Field(description="pipeline parallelism (more than one device): the scheduler's copies")
    devices: list[DeviceBuffers]
    host: DeviceBuffers


class MemberPlan(BaseModel):
    """One member: where it sits in llama.cpp's device order, what it holds, how it is set up."""

    index: int = Field(description="position in --cluster / the card number (0 = the head)")
    device_id: str
    role: Literal["head", "worker", "card"]
    llama_device: int = Field(description="index in llama.cpp's device order (RPC devices first, then local GPUs)")
    ts: float = Field(description="this member's -ts ratio")
    layers: list[int] = Field(description="the transformer layers it holds")
    holds_output: bool
    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    host_bytes: int = Field(description="the head's host buffers (token_embd, host compute, output); 0 elsewhere")
    rpc_cache_bytes: int = Field(0, description="a worker's `ggml-rpc-server -c` tensor cache on its disk (not memory)")
    need_bytes: int = Field(description="the GPU side with the runtime overhead")
    capacity_bytes: int = Field(description="the memory the GPU may use in the chosen setting")
    spare_bytes: int
    fits: bool
    tier: str
    carveout_bytes: int | None = None
    gpu_cap_bytes: int | None = None
    cap_setting: str | None = Field(None, description="the kernel parameter / sysctl line, when the cap is raised")
    bios: str | None = Field(None, description="the BIOS UMA frame buffer line, on a carve-out machine")
    failures: list[str] = Field(default_factory=list, description="the blocking checks that failed")
    decode_ms: float | None = Field(None, description="this member's share of one decoded token (ms, est.)")


class PipelineSpeed(BaseModel):
    """Decode and prefill of the pipeline (estimates; assumptions listed)."""

    decode_tps: float
    prefill_tps: float | None
    member_ms: list[float]
    link_ms: float = Field(description="per token: the hand-overs across the link (RPC round trips, transfers)")
    assumptions: list[str]


class SingleBox(BaseModel):
    """The best one member can do alone (the normal plan on its profile)."""

    device_id: str
    fits: bool
    quant: str | None
    ctx: int
    decode_tps: float | None
    placement: str = Field("none", description="fast / spill / partial (layers or experts on the CPU) / none")


class ClusterOption(BaseModel):
    """One quant's best split (or its closest miss)."""

    quant: str
    fits: bool
    ts: list[float]
    decode_tps: float | None
    total_bytes: int


class ClusterPlan(BaseModel):
    """The cluster decision: the quant, the split, each member's setting, speed, the launch lines."""

    model: str
    kind: Literal["rpc", "local"]
    link: str
    link_label: str
    ctx: int
    cache_type_k: str
    cache_type_v: str
    flash_attn: bool = True
    verdict: Literal["cluster", "single", "no_fit"] = Field(
        description="cluster: run it split; single: one member alone does as well; no_fit: neither")
    quant: str | None
    max_ctx: int | None = Field(None, description="the longest context the chosen split holds on every member")
    ts: list[float] = Field(default_factory=list, description="the -ts ratios in member order")
    llama_ts: list[float] = Field(default_factory=list, description="the same in llama.cpp's device order")
    members: list[MemberPlan] = Field(default_factory=list)
    speed: PipelineSpeed | None = None
    single: SingleBox | None = None
    options: list[ClusterOption] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list, description="worker lines first, then the head's")
    fits: bool
