"""Decode speed estimate: a memory-bandwidth roofline, labelled as an estimate everywhere.

Decoding one token reads every weight it touches once, plus the KV cache up to the current
position, so  t/s ~= efficiency x bandwidth / bytes read per token.

Bytes read per token:
- each repeating layer: its non-expert tensors in full, plus expert_used/expert_count of its
  expert tensors (MoE routes each token through a few experts);
- the output head (output.weight, or token_embd when the embeddings are tied); the input
  embedding is a row lookup and costs nothing;
- the KV cache: bytes per cell x min(position, cells) per attention layer (SWA layers stop at
  their window); recurrent state in full.
Where a byte lives decides the bandwidth it is read at: GPU memory at the device bandwidth
(slowed by the OS's shared-memory factor for the part in a shared window), CPU-side parts at the
host bandwidth. Times add up (layers run one after another).

Calibration (devices.md section 7; docs/plan.md has the table): the profile's decode_efficiency
is the measured dense-model ratio (Strix Halo 0.83-0.91, DGX Spark 0.87, M4 Max 0.58); MoE models
reach about 0.77 of it (routing and more, smaller kernels: gpt-oss-120b at 56.6 t/s on Strix
Halo and 59.0 t/s on DGX Spark, Qwen3-Coder-30B-A3B at 87.1 and 60.9 t/s).
"""

from __future__ import annotations

from pydantic import BaseModel

from .device_schema import DeviceProfile
from .estimate_types import Breakdown
from .fit import FitResult

MOE_EFFICIENCY_FACTOR = 0.77  # measured MoE decode efficiency / dense efficiency on the same device
CPU_EFFICIENCY = 0.6  # CPU decode reaches about 60 % of the RAM bandwidth it is given (assumption)
# APUs without a host_bandwidth_gbps: the CPU cluster reads DRAM at ~100 of 256 GB/s on Strix Halo
# (lhl/strix-halo-testing hardware-test/README.md, likwid stream).
APU_CPU_BANDWIDTH_FRACTION = 100 / 256
DISCRETE_HOST_BANDWIDTH_GBPS = 60.0  # dual-channel DDR5 desktop when a profile does not say


class SpeedEstimate(BaseModel):
    """An estimated decode speed (tokens/s) at one context depth; never a measurement."""

    tps: float
    depth: int  # tokens already in the context
    bytes_per_token: int
    gpu_bytes_per_token: int
    cpu_bytes_per_token: int
    kv_bytes_per_token: int
    efficiency: float
    bandwidth_gbps: float
    host_bandwidth_gbps: float
    label: str = "est."

    def __str__(self) -> str:  # pragma: no cover - presentation
        return f"{self.tps:.1f} t/s (est.)"


def moe_ratio(metadata: dict) -> float:
    """expert_used_count / expert_count from GGUF metadata (1.0 for dense models)."""
    arch = metadata.get("general.architecture")
    used = metadata.get(f"{arch}.expert_used_count")
    count = metadata.get(f"{arch}.expert_count")
    try:
        used_i, count_i = int(used), int(count)
    except (TypeError, ValueError):
        return 1.0
    if count_i <= 0 or used_i <= 0:
        return 1.0
    return min(1.0, used_i / count_i)


def head_bytes(b: Breakdown) -> int:
    """Bytes of the output head read per token (tied embeddings: token_embd doubles as the head)."""
    nr = b.nonrepeating_weights
    if "output.weight" in nr:
        return nr["output.weight"]
    if "token_embd.weight" in nr:
        return nr["token_embd.weight"]
    rest = b.weights_bytes - sum(l.weights_bytes for l in b.layers)
    return max(0, rest // 2)  # unknown split: embeddings and head are usually the same size


def host_bandwidth(profile: DeviceProfile) -> float:
    if profile.host_bandwidth_gbps:
        return profile.host_bandwidth_gbps
    if profile.memory_architecture == "discrete":
        return DISCRETE_HOST_BANDWIDTH_GBPS
    return profile.bandwidth_gbps * APU_CPU_BANDWIDTH_FRACTION


def estimate_speed(b: Breakdown, fit: FitResult, profile: DeviceProfile, *, ratio: float = 1.0,
                   depth: int | None = None) -> SpeedEstimate:
    """Tokens/s for decoding at `depth` tokens of context (default: the full context)."""
    depth = b.n_ctx if depth is None else max(0, depth)
    gpu_bytes = 0.0
    cpu_bytes = 0.0
    kv_read = 0.0
    n_seq = max(1, b.settings.n_parallel)
    cpu_only = fit.config.backend == "cpu"
    for layer in b.layers:
        dense_part = layer.weights_bytes - layer.expert_bytes
        expert_part = layer.expert_bytes * ratio
        on_gpu = layer.on_gpu and not cpu_only
        if on_gpu:
            gpu_bytes += dense_part
        else:
            cpu_bytes += dense_part
        if on_gpu and layer.experts_on_gpu:
            gpu_bytes += expert_part
        else:
            cpu_bytes += expert_part
        kv = 0.0
        if layer.kv_bytes and layer.kv_cells:
            kv = layer.kv_bytes / layer.kv_cells * min(depth, layer.kv_cells)
        if layer.recurrent_bytes:
            kv += layer.recurrent_bytes / n_seq
        kv_read += kv
        if on_gpu and not b.settings.no_kv_offload:
            gpu_bytes += kv
        else:
            cpu_bytes += kv
    head = head_bytes(b)
    if fit.full_offload and not cpu_only:
        gpu_bytes += head
    else:
        cpu_bytes += head

    eff = profile.decode_efficiency * (MOE_EFFICIENCY_FACTOR if ratio < 1.0 else 1.0)
    bw = profile.bandwidth_gbps * 1e9
    host_bw = host_bandwidth(profile) * 1e9
    # the part of the GPU bytes in a slower shared window costs `shared_slowdown` times as much
    gpu_time = gpu_bytes * (1 + fit.shared_fraction * (fit.shared_slowdown - 1)) / (eff * bw)
    cpu_eff = CPU_EFFICIENCY * (MOE_EFFICIENCY_FACTOR if ratio < 1.0 else 1.0)
    cpu_time = cpu_bytes / (cpu_eff * host_bw)
    total_time = gpu_time + cpu_time
    tps = 1.0 / total_time if total_time > 0 else 0.0
    return SpeedEstimate(
        tps=round(tps, 2), depth=depth, bytes_per_token=int(gpu_bytes + cpu_bytes),
        gpu_bytes_per_token=int(gpu_bytes), cpu_bytes_per_token=int(cpu_bytes), kv_bytes_per_token=int(kv_read),
        efficiency=round(eff, 3), bandwidth_gbps=profile.bandwidth_gbps,
        host_bandwidth_gbps=round(host_bandwidth(profile), 1),
    )
