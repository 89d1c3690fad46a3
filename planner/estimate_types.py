"""The contract between the estimator and everything downstream (fit solver, planner, reports).

RunSettings mirrors llama.cpp's own flags and defaults (b11434, common/common.h). Breakdown is
what llama.cpp would allocate, component by component and per device, plus the estimator's
honesty labels (which parts are exact and which are estimates with a margin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from .vocab import CacheType, EstimatorBackend, FlashAttn

Backend = EstimatorBackend  # the backends whose buffer rules the estimator knows (planner/vocab.py)


class RunSettings(BaseModel):
    """llama.cpp run settings, named after its CLI flags."""

    n_ctx: int = Field(0, ge=0, description="-c/--ctx-size; 0 = the model's training context")
    n_batch: int = Field(2048, ge=1, description="-b/--batch-size")
    n_ubatch: int = Field(512, ge=1, description="-ub/--ubatch-size")
    n_parallel: int = Field(1, ge=1, description="-np/--parallel (number of sequences)")
    n_outputs_max: int = Field(0, ge=0, description=(
        "max logits rows per ubatch the compute graph is reserved for; 0 = n_batch (libllama, "
        "llama-fit-params); llama-server and llama-cli set it to n_parallel"))
    kv_unified: bool = Field(False, description="--kv-unified: one KV buffer shared by all sequences")
    flash_attn: FlashAttn = "auto"
    cache_type_k: CacheType = "f16"
    cache_type_v: CacheType = "f16"
    n_gpu_layers: int = Field(-1, description="-ngl; -1 = all layers (llama.cpp's auto/fit aside)")
    n_cpu_moe: int = Field(0, ge=0, description="--n-cpu-moe: expert tensors of the first N layers stay on the CPU")
    swa_full: bool = False
    no_kv_offload: bool = False
    use_mmap: bool = True
    repack: bool = Field(True, description="CPU weight repacking (llama.cpp default; --no-repack turns it off)")
    backend: Backend = "cuda"
    with_mmproj: bool = Field(False, description="size the vision projector too (when one is given)")
    llama_build: int | None = Field(None, ge=1, description=(
        "llama.cpp build whose buffer rules apply (planner/data/runtimes.toml); None = b11434, the "
        "validated build"))


class DeviceUsage(BaseModel):
    """One row of llama.cpp's memory breakdown: a device (GPU) or the host."""

    device: Literal["gpu", "host"]
    weights_bytes: int = 0
    kv_bytes: int = 0
    recurrent_bytes: int = 0
    compute_bytes: int = 0
    output_bytes: int = 0
    mmproj_bytes: int = 0  # projector weights + its compute buffer
    overhead_bytes: int = 0  # backend runtime overhead on this device (estimate, not in total_bytes)

    @property
    def total_bytes(self) -> int:
        return (self.weights_bytes + self.kv_bytes + self.recurrent_bytes + self.compute_bytes
                + self.output_bytes + self.mmproj_bytes)


@dataclass(slots=True)
class LayerUsage:
    """One repeating block (blk.N). expert_bytes is the part of weights_bytes in MoE expert tensors.
    A plain dataclass, not a pydantic model: a plan builds tens of thousands of them (one per layer
    per estimate) and a model's construction cost was a fifth of a warm plan; pydantic still
    serialises it inside Breakdown."""

    index: int
    weights_bytes: int
    expert_bytes: int = 0
    kv_bytes: int = 0
    recurrent_bytes: int = 0
    kind: Literal["attention", "swa", "recurrent", "mla", "none"] = "attention"
    kv_cells: int = 0
    on_gpu: bool = True
    experts_on_gpu: bool = True


class Breakdown(BaseModel):
    """What llama.cpp allocates for one model + settings. All integers are bytes."""

    weights_bytes: int
    kv_bytes: int
    recurrent_bytes: int
    compute_bytes: int
    output_bytes: int
    mmproj_bytes: int = 0
    total_bytes: int  # all of the above, all devices together
    overhead_bytes: int = Field(0, description="backend runtime/driver overhead outside llama.cpp's buffers (estimate)")

    devices: list[DeviceUsage]
    layers: list[LayerUsage]
    nonrepeating_weights: dict[str, int] = Field(default_factory=dict, description="tensor name -> bytes outside blk.N")

    n_ctx: int  # context actually used (after 0 -> training context)
    kv_cells: int  # cache cells per full-attention layer (padded as llama.cpp does)
    flash_attn: bool  # effective, after resolving auto
    output_on_gpu: bool = True  # where llama.cpp puts the output head (the speed model reads it there)
    settings: RunSettings

    exact: list[str] = Field(default_factory=lambda: ["weights", "kv", "recurrent", "output"])
    estimated: dict[str, float] = Field(default_factory=dict, description="component -> assumed relative margin (0.10 = +-10%)")
    warnings: list[str] = Field(default_factory=list)

    def device(self, which: Literal["gpu", "host"]) -> DeviceUsage:
        for d in self.devices:
            if d.device == which:
                return d
        return DeviceUsage(device=which)
