"""Speed estimates: decode is memory-bound, prefill is compute-bound. Estimates, never measurements.

Decode, one token with `d` tokens already in the context:

    t_token = sum over memory classes of  bytes read there / (eta x bandwidth of that class)
              + sum over layers of  latency(backend) x units(layer kind)

- bytes read: every layer's non-expert tensors, expert_used / expert_count of its experts, the
  output head, the KV cache up to the depth (SWA layers stop at their window; MLA reads its latent
  cache), the recurrent state. Where each byte lives comes from the memory model itself: the
  Breakdown's per-layer placement and the FitResult's split between the carve-out and a slower
  shared window (one source of truth for placement; the output head is on the GPU whenever
  llama.cpp puts it there, Breakdown.output_on_gpu).
- eta = the device's measured dense decode efficiency (profile `decode_efficiency`) x a factor per
  OS/backend (Windows' AMD drivers, ROCm...). Bytes in a slower class (Windows shared GPU memory on
  Vulkan) cost `shared_slowdown` times as much (planner/data/memory.toml); CPU-side bytes are read
  at the host bandwidth x cpu_efficiency.
- the latency term is the fixed cost of dispatching a layer's kernels per token: it is why small
  models and MoE models with many small experts reach less of the bandwidth roofline, and why
  hybrid linear-attention layers are slower than their bytes say.

Prefill, n prompt tokens starting at depth d:

    t = max(FLOPs / (peak FP16 FLOPS x eta_pp(backend)),  weight bytes read per ubatch / bandwidth)

- FLOPs: 2 x active parameters per token (matrices) + attention 2 x n_head x (head_k + head_v) per
  token and context position (causal; SWA capped at its window).
- eta_pp per backend, fitted; the time to first token for a prompt that fills the context is the
  same sum over the whole prompt (attention grows with the square of its length).

The few parameters (planner/data/speed.toml) are fitted on validation/field/*.toml by
validation/field/calibrate.py; docs/speed.md gives the model, the parameters with the rows that
fix them, and fit and held-out errors. A (backend, family) cell with fewer than 3 rows is
reported as uncalibrated.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from pydantic import BaseModel

from . import data as _data
from .device_schema import DeviceProfile
from .estimate_types import Breakdown, LayerUsage
from .model_compute import ModelCompute

if TYPE_CHECKING:  # pragma: no cover - fit imports the device schema; speed needs only its type
    from .fit import FitResult

# APUs without a host_bandwidth_gbps: the CPU cluster reads DRAM at ~100 of 256 GB/s on Strix Halo
# (lhl/strix-halo-testing hardware-test/README.md, likwid stream).
APU_CPU_BANDWIDTH_FRACTION = 100 / 256
DISCRETE_HOST_BANDWIDTH_GBPS = 60.0  # dual-channel DDR5 desktop when a profile does not say
MIN_EVIDENCE_ROWS = 3  # a (backend, family) cell with fewer measured rows is "uncalibrated"


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class SpeedParams:
    """The fitted parameters (planner/data/speed.toml); each has a physical meaning."""

    cpu_efficiency: float
    layer_latency_s: dict[str, float]  # backend -> seconds per layer unit per token
    layer_units: dict[str, float]  # layer kind ("dense", "moe", "recurrent") -> dispatch units
    backend_efficiency: dict[str, float]  # "app/backend" (lmstudio/rocm) -> decode eta factor (missing = 1.0)
    prefill_efficiency: dict[str, float]  # backend -> share of the FP16 peak prefill reaches
    pcie_gbps: float  # discrete cards: CPU-side weights cross PCIe once per ubatch in prefill
    moe_tokens_half: float = 0.0  # MFLOPs per expert matmul call at which expert matmuls reach half speed
    moe_saturation_power: float = 1.0  # how sharply expert matmuls approach the dense rate with their size (1 = w / (w + half))
    attention_efficiency: dict[str, float] = field(default_factory=dict)  # backend -> FA kernels' share of the FP16 peak
    device_efficiency: dict[str, float] = field(default_factory=dict)  # fitted decode eta per memory system
    type_decode: dict[str, float] = field(default_factory=dict)  # ggml type -> decode kernel efficiency (q4_K = 1)
    type_prefill: dict[str, float] = field(default_factory=dict)  # ggml type -> prefill matmul efficiency (q4_K = 1)
    evidence: dict[str, int] = field(default_factory=dict)  # "backend/family" -> calibration rows
    source: str = ""

    def latency(self, backend: str) -> float:
        return self.layer_latency_s.get(backend, self.layer_latency_s.get("default", 0.0))

    def decode_factor(self, app: str, backend: str) -> float:
        """The runtime's own kernels and defaults against llama.cpp's (LM Studio's bundled runtimes
        of early 2026 decoded slower on Strix Halo: field section A, B6)."""
        return self.backend_efficiency.get(f"{app}/{backend}", self.backend_efficiency.get(f"{app}/*", 1.0))

    def prefill_eff(self, key: str) -> float:
        """Matmul share of the FP16 peak for a backend key ('vulkan-amdvlk' falls back to 'vulkan')."""
        base = key.split("-", 1)[0]
        return self.prefill_efficiency.get(key, self.prefill_efficiency.get(base, self.prefill_efficiency.get("default", 0.3)))

    def attn_eff(self, key: str) -> float:
        """Flash-attention kernels' share of the FP16 peak (0 = attention FLOPs not counted)."""
        base = key.split("-", 1)[0]
        return self.attention_efficiency.get(key, self.attention_efficiency.get(base, 0.0))

    def calibrated(self, backend: str, family: str) -> bool:
        return self.evidence.get(f"{backend}/{family}", 0) >= MIN_EVIDENCE_ROWS


@lru_cache(maxsize=1)
def default_params() -> SpeedParams:
    data = tomllib.loads(_data.read("speed.toml").decode("utf-8"))
    return params_from_dict(data)


def _numbers(table: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in table.items()}


def params_from_dict(data: dict) -> SpeedParams:
    """planner/data/speed.toml's tables, as numbers (latencies from microseconds to seconds)."""
    d, p = data["decode"], data["prefill"]
    return SpeedParams(
        cpu_efficiency=float(d["cpu_efficiency"]),
        layer_latency_s={k: float(v) * 1e-6 for k, v in d["layer_latency_us"].items()},
        layer_units=_numbers(d["layer_units"]),
        backend_efficiency=_numbers(d.get("backend_efficiency", {})),
        prefill_efficiency=_numbers(p["efficiency"]),
        pcie_gbps=float(p.get("pcie_gbps", 25.0)),
        moe_tokens_half=float(p.get("moe_tokens_half", 0.0)),
        moe_saturation_power=float(p.get("moe_saturation_power", 1.0)),
        attention_efficiency=_numbers(p.get("attention_efficiency", {})),
        device_efficiency=_numbers(data.get("device_efficiency", {})),
        type_decode=_numbers(data.get("type_decode", {})),
        type_prefill=_numbers(data.get("type_prefill", {})),
        evidence={k: int(v) for k, v in data.get("evidence", {}).items()},
        source=str(data.get("source", "")),
    )


# --------------------------------------------------------------------------- results


class SpeedEstimate(BaseModel):
    """An estimated decode speed (tokens/s) at one context depth; never a measurement."""

    tps: float
    depth: int  # tokens already in the context
    bytes_per_token: int
    gpu_bytes_per_token: int
    cpu_bytes_per_token: int
    kv_bytes_per_token: int
    slow_bytes_per_token: int = 0  # of the GPU bytes, those in a slower shared window
    efficiency: float
    bandwidth_gbps: float
    host_bandwidth_gbps: float
    latency_ms: float = 0.0  # the fixed per-token dispatch cost in the time
    calibrated: bool = True
    label: str = "est."

    def __str__(self) -> str:  # pragma: no cover - presentation
        return f"{self.tps:.1f} t/s (est.)"


class PrefillEstimate(BaseModel):
    """Estimated prompt processing: average speed over a prompt, and the time to its first token."""

    tps: float  # average tokens/s over the prompt
    tokens: int
    depth: int  # context already filled before the prompt
    seconds: float  # time to process it: the time to the first token
    tflops: float  # the device FP16 peak it was scaled from
    efficiency: float
    calibrated: bool = True
    label: str = "est."


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
    if profile.cpu_only():  # a CPU-only machine: its bandwidth is the RAM's
        return profile.bandwidth_gbps
    if profile.memory_architecture == "discrete":
        return DISCRETE_HOST_BANDWIDTH_GBPS
    return profile.bandwidth_gbps * APU_CPU_BANDWIDTH_FRACTION


def backend_name(label: str) -> str:
    """'vulkan (amdvlk)' -> 'vulkan'."""
    return label.split(" ", 1)[0].strip().lower()


def backend_key(label: str) -> str:
    """'vulkan (amdvlk)' -> 'vulkan-amdvlk'; 'rocm' -> 'rocm': a driver with kernels of its own gets
    its own prefill efficiency (AMDVLK's dense prefill runs ~4x below RADV's, field S20 vs S22)."""
    name = backend_name(label)
    driver = label[len(name):].strip(" ()").lower()
    return f"{name}-{driver}" if driver in ("amdvlk",) else name


def _units(kind: str, moe: bool, params: SpeedParams) -> float:
    """Dispatch units of one layer per token: 1 for a dense layer; an MoE FFN (router, gather, several
    expert matmuls), a recurrent block (conv, gated delta net) and MLA's absorbed attention add more."""
    u = params.layer_units.get("dense", 1.0)
    if moe:
        u = params.layer_units.get("moe", u)
    if kind == "recurrent":
        u += params.layer_units.get("recurrent", 0.0)
    if kind == "mla":
        u += params.layer_units.get("mla", 0.0)
    return u


# --------------------------------------------------------------------------- decode


@dataclass
class _DecodeTraffic:
    """What one decoded token reads, and the layers it dispatches, on each side of the placement."""

    gpu_bytes: float = 0.0
    cpu_bytes: float = 0.0
    kv_read: float = 0.0
    kv_read_gpu: float = 0.0
    gpu_units: float = 0.0
    cpu_units: float = 0.0

    def read(self, nbytes: float, on_gpu: bool) -> None:
        if on_gpu:
            self.gpu_bytes += nbytes
        else:
            self.cpu_bytes += nbytes

    def read_state(self, nbytes: float, on_gpu: bool) -> None:
        """The KV cache up to the depth and the recurrent state: read as they are (no kernel factor)."""
        self.kv_read += nbytes
        self.read(nbytes, on_gpu)
        if on_gpu:
            self.kv_read_gpu += nbytes

    def dispatch(self, units: float, on_gpu: bool) -> None:
        if on_gpu:
            self.gpu_units += units
        else:
            self.cpu_units += units


def estimate_speed(b: Breakdown, fit: "FitResult", profile: DeviceProfile, *, ratio: float = 1.0,
                   depth: int | None = None, compute: ModelCompute | None = None,
                   params: SpeedParams | None = None, app: str = "llama.cpp") -> SpeedEstimate:
    """Tokens/s decoding at `depth` tokens of context (default: the full context)."""
    params = params or default_params()
    depth = b.n_ctx if depth is None else max(0, depth)
    be = backend_name(fit.config.backend)
    traffic = _decode_traffic(b, compute, params, ratio=ratio, depth=depth, cpu_only=be == "cpu")
    eff = profile.decode_efficiency * params.decode_factor(app, be)
    slow = traffic.gpu_bytes * fit.shared_fraction if fit.shared_slowdown > 1.0 else 0.0
    latency = traffic.gpu_units * params.latency(be) + traffic.cpu_units * params.latency("cpu")
    total_time = (_gpu_read_time(traffic, fit, profile, compute, params, eff, slow)
                  + _cpu_read_time(traffic, profile, params) + latency
                  + _decode_attention_time(compute, profile, params, fit.config.backend, depth))
    tps = 1.0 / total_time if total_time > 0 else 0.0
    family = compute.family if compute else ("moe" if ratio < 1.0 else "dense")
    return SpeedEstimate(
        tps=round(tps, 2), depth=depth, bytes_per_token=int(traffic.gpu_bytes + traffic.cpu_bytes),
        gpu_bytes_per_token=int(traffic.gpu_bytes), cpu_bytes_per_token=int(traffic.cpu_bytes),
        kv_bytes_per_token=int(traffic.kv_read), slow_bytes_per_token=int(slow), efficiency=round(eff, 3),
        bandwidth_gbps=profile.bandwidth_gbps, host_bandwidth_gbps=round(host_bandwidth(profile), 1),
        latency_ms=round(latency * 1e3, 3), calibrated=params.calibrated(be, family),
    )


# (id(breakdown), id(compute), id(params), ratio, depth, cpu_only) -> (breakdown, compute, params, traffic):
# a plan asks for the same breakdown's traffic on every configuration it ranks (the objects are kept
# so their ids stay theirs; cleared when it grows)
_TRAFFIC: dict[tuple, tuple] = {}
_TRAFFIC_MAX = 4096


def _decode_traffic(b: Breakdown, compute: ModelCompute | None, params: SpeedParams, *, ratio: float, depth: int,
                    cpu_only: bool) -> _DecodeTraffic:
    """Per layer: its non-expert tensors, `ratio` of its experts, its KV cache up to the depth (SWA
    layers stop at their window), its recurrent state; then the output head where llama.cpp put it.
    The same breakdown asked again gives the same (read-only) answer."""
    key = (id(b), id(compute), id(params), ratio, depth, cpu_only)
    hit = _TRAFFIC.get(key)
    if hit is not None and hit[0] is b and hit[1] is compute and hit[2] is params:
        return hit[3]
    traffic = _traffic(b, compute, params, ratio=ratio, depth=depth, cpu_only=cpu_only)
    if len(_TRAFFIC) >= _TRAFFIC_MAX:
        _TRAFFIC.clear()
    _TRAFFIC[key] = (b, compute, params, traffic)
    return traffic


def _traffic(b: Breakdown, compute: ModelCompute | None, params: SpeedParams, *, ratio: float, depth: int,
             cpu_only: bool) -> _DecodeTraffic:
    traffic = _DecodeTraffic()
    n_seq = max(1, b.settings.n_parallel)
    kinds = _layer_kinds(b, compute)
    for layer, (kind, moe) in zip(b.layers, kinds):
        on_gpu = layer.on_gpu and not cpu_only
        traffic.read(layer.weights_bytes - layer.expert_bytes, on_gpu)
        traffic.read(layer.expert_bytes * ratio, on_gpu and layer.experts_on_gpu)
        traffic.read_state(_state_read(layer, depth, n_seq), on_gpu and not b.settings.no_kv_offload)
        traffic.dispatch(_units(kind, moe, params), on_gpu)
    traffic.read(head_bytes(b), b.output_on_gpu and not cpu_only)
    return traffic


def _layer_kinds(b: Breakdown, compute: ModelCompute | None) -> list[tuple[str, bool]]:
    """(kind, MoE) of each of the breakdown's layers: the model's compute facts where they name the
    layer, else the breakdown's own."""
    known = [(layer.kind, layer.moe) for layer in compute.layers] if compute else []
    return known[:len(b.layers)] + [(layer.kind, bool(layer.expert_bytes)) for layer in b.layers[len(known):]]


def _state_read(layer: LayerUsage, depth: int, n_seq: int) -> float:
    """KV cache bytes read at `depth` (at most the layer's cells) plus one sequence's recurrent state."""
    kv = 0.0
    if layer.kv_bytes and layer.kv_cells:
        kv = layer.kv_bytes / layer.kv_cells * min(depth, layer.kv_cells)
    if layer.recurrent_bytes:
        kv += layer.recurrent_bytes / n_seq
    return kv


def _gpu_read_time(traffic: _DecodeTraffic, fit: "FitResult", profile: DeviceProfile, compute: ModelCompute | None,
                   params: SpeedParams, eff: float, slow: float) -> float:
    """Weights at their quant type's kernel efficiency (Q6_K unpacks slowly), the KV cache as it is,
    bytes in a slower shared window `shared_slowdown` times as long."""
    if not traffic.gpu_bytes:
        return 0.0
    kernels = compute.type_factor(params.type_decode) if compute is not None else 1.0
    weights_read = traffic.gpu_bytes - traffic.kv_read_gpu
    return ((kernels * weights_read + traffic.kv_read_gpu + slow * (fit.shared_slowdown - 1))
            / (eff * (profile.bandwidth_gbps * 1e9)))


def _cpu_read_time(traffic: _DecodeTraffic, profile: DeviceProfile, params: SpeedParams) -> float:
    if not traffic.cpu_bytes:
        return 0.0
    return traffic.cpu_bytes / (params.cpu_efficiency * (host_bandwidth(profile) * 1e9))


def _decode_attention_time(compute: ModelCompute | None, profile: DeviceProfile, params: SpeedParams,
                           backend_label: str, depth: int) -> float:
    """Attention at depth is also arithmetic: each new token's queries meet every cached position
    (MLA's absorbed attention: 20+ heads of 576 + 512 per position), at a share of the FP16 peak."""
    eff_attn = params.attn_eff(backend_key(backend_label))
    if compute is None or eff_attn <= 0 or not profile.gpu_tflops_fp16 or depth <= 0:
        return 0.0
    return _attention_flops(compute, 1, depth) / (profile.gpu_tflops_fp16 * 1e12 * eff_attn)


# --------------------------------------------------------------------------- prefill


def _attention_positions(window: int, n: int, depth: int) -> float:
    """Context positions n causal prompt tokens after `depth` attend to (SWA: at most `window` each)."""
    if not window:
        return n * depth + n * n / 2
    lo, hi = depth, depth + n
    full = max(0, hi - max(lo, window))  # tokens past the window see exactly `window`
    ramp_hi = min(hi, window)
    ramp = max(0, ramp_hi - lo)
    return full * window + (ramp * (lo + ramp_hi) / 2 if ramp else 0.0)


def _attention_flops(compute: ModelCompute, n: int, depth: int) -> float:
    """Attention FLOPs for n causal prompt tokens after `depth` tokens: 2 x width per position."""
    total = 0.0
    for l in compute.layers:
        if l.attn_width:
            total += 2.0 * l.attn_width * _attention_positions(l.window, n, depth)
    return total


def _expert_saturation(compute: ModelCompute, params: SpeedParams, tokens: int, n_ubatch: int) -> float:
    """A ubatch spreads its tokens over the experts: each expert's matmul sees ubatch x used/count
    tokens times that expert's weights; small matmuls run far below peak (half speed at
    moe_tokens_half MFLOPs per expert call: many tiny experts are slow, few big ones less so).
    The curve is (w / half)^k / (1 + (w / half)^k): with k below 1 (fitted) it is broader than a
    plain half-saturation, so even big expert calls stay below the dense matmuls' rate (MUL_MAT_ID
    gathers its rows and addresses its experts indirectly on every call), and the backend's dense
    efficiency is no longer dragged down by the MoE rows that dominate the field data."""
    if not (params.moe_tokens_half > 0 and compute.n_expert):
        return 1.0
    per_expert_tokens = min(tokens, n_ubatch) * compute.expert_ratio
    n_moe = max(1, sum(1 for l in compute.layers if l.moe))
    per_expert_params = sum(l.expert_params for l in compute.layers) / max(1, compute.n_expert) / n_moe
    work = 2.0 * per_expert_tokens * per_expert_params / 1e6  # MFLOPs per expert call
    k = params.moe_saturation_power
    return work ** k / (work ** k + params.moe_tokens_half ** k)


def _prefill_compute_time(compute: ModelCompute, params: SpeedParams, tflops: float, key: str, *, tokens: int,
                          depth: int, n_ubatch: int) -> float:
    """Matmul FLOPs (2 x active parameters per token) at the backend's share of the FP16 peak,
    attention FLOPs at its flash-attention kernels' share."""
    eff = params.prefill_eff(key)
    eff_attn = params.attn_eff(key) or eff
    sat = _expert_saturation(compute, params, tokens, n_ubatch)
    dense = sum(l.dense_params for l in compute.layers) + compute.head_params / max(1, tokens)
    expert = sum(l.expert_params for l in compute.layers) * compute.expert_ratio
    flops_dense = 2.0 * dense * tokens
    flops_expert = 2.0 * expert * tokens
    flops_attn = _attention_flops(compute, tokens, depth)
    kernels = compute.type_factor(params.type_prefill, by="params")
    return (kernels * (flops_dense + flops_expert / max(sat, 1e-6)) / (tflops * 1e12 * eff)
            + flops_attn / (tflops * 1e12 * eff_attn))


def _prefill_read_time(fit: "FitResult", profile: DeviceProfile, params: SpeedParams, chunks: int) -> float:
    """The weights read once per ubatch; llama.cpp runs big-batch matmuls of CPU-resident weights on
    the GPU, so they cross over (PCIe on a discrete card, the host's bandwidth on an APU)."""
    bw = profile.bandwidth_gbps * 1e9 * profile.decode_efficiency
    slow = 1 + fit.shared_fraction * (fit.shared_slowdown - 1) if fit.shared_slowdown > 1.0 else 1.0
    t_read = chunks * fit.gpu.weights_bytes * slow / bw
    cpu_w = fit.host.weights_bytes if not fit.full_offload else 0
    if cpu_w:
        link = params.pcie_gbps * 1e9 if profile.memory_architecture == "discrete" else host_bandwidth(profile) * 1e9
        t_read += chunks * cpu_w / link
    return t_read


def estimate_prefill(b: Breakdown, fit: "FitResult", profile: DeviceProfile, compute: ModelCompute, *,
                     tokens: int, depth: int = 0, params: SpeedParams | None = None) -> PrefillEstimate | None:
    """Processing `tokens` prompt tokens after `depth`: compute-bound, with the weights read once
    per ubatch (all experts: a ubatch of hundreds of tokens touches nearly every expert).
    None when the device has no FP16 throughput figure."""
    params = params or default_params()
    tflops = profile.gpu_tflops_fp16
    if not tflops or tokens <= 0:
        return None
    be = backend_name(fit.config.backend)
    key = backend_key(fit.config.backend)
    n_ubatch = max(1, b.settings.n_ubatch)
    t_compute = _prefill_compute_time(compute, params, tflops, key, tokens=tokens, depth=depth, n_ubatch=n_ubatch)
    seconds = max(t_compute, _prefill_read_time(fit, profile, params, -(-tokens // n_ubatch)))
    return PrefillEstimate(tps=round(tokens / seconds, 1) if seconds > 0 else 0.0, tokens=tokens, depth=depth,
                           seconds=round(seconds, 3), tflops=tflops, efficiency=params.prefill_eff(key),
                           calibrated=params.calibrated(be, compute.family) and params.calibrated(be, "prefill"))
