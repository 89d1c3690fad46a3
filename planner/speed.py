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
from importlib import resources
from typing import TYPE_CHECKING

from pydantic import BaseModel

from .device_schema import DeviceProfile
from .estimate_types import Breakdown

if TYPE_CHECKING:  # pragma: no cover
    from .fit import FitResult
    from .model_facts import ModelFacts

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
    data = tomllib.loads(resources.files("planner.data").joinpath("speed.toml").read_text(encoding="utf-8"))
    return params_from_dict(data)


def params_from_dict(data: dict) -> SpeedParams:
    d, p = data["decode"], data["prefill"]
    return SpeedParams(
        cpu_efficiency=float(d["cpu_efficiency"]),
        layer_latency_s={k: float(v) * 1e-6 for k, v in d["layer_latency_us"].items()},
        layer_units={k: float(v) for k, v in d["layer_units"].items()},
        backend_efficiency={k: float(v) for k, v in d.get("backend_efficiency", {}).items()},
        prefill_efficiency={k: float(v) for k, v in p["efficiency"].items()},
        pcie_gbps=float(p.get("pcie_gbps", 25.0)),
        moe_tokens_half=float(p.get("moe_tokens_half", 0.0)),
        attention_efficiency={k: float(v) for k, v in p.get("attention_efficiency", {}).items()},
        device_efficiency={k: float(v) for k, v in data.get("device_efficiency", {}).items()},
        type_decode={k: float(v) for k, v in data.get("type_decode", {}).items()},
        type_prefill={k: float(v) for k, v in data.get("type_prefill", {}).items()},
        evidence={k: int(v) for k, v in data.get("evidence", {}).items()},
        source=str(data.get("source", "")),
    )


# --------------------------------------------------------------------------- the model's arithmetic


@dataclass(frozen=True)
class LayerCompute:
    kind: str  # attention | swa | mla | recurrent | none
    moe: bool
    dense_params: int  # elements of the non-expert tensors
    expert_params: int  # elements of all experts together
    attn_width: int  # n_head x (head_k + head_v): attention FLOPs / 2 per token and context position
    window: int  # context positions attention reaches (0 = all)


@dataclass(frozen=True)
class ModelCompute:
    """What prefill FLOPs and decode dispatch depend on, from the model's own shapes."""

    layers: tuple[LayerCompute, ...]
    expert_ratio: float  # expert_used_count / expert_count (1.0 for dense models)
    head_params: int
    family: str  # dense | moe | mla | hybrid
    n_expert: int = 0
    type_bytes: tuple[tuple[str, float], ...] = ()  # share of the weight bytes read per token, per ggml type
    type_params: tuple[tuple[str, float], ...] = ()  # share of the matmul parameters, per ggml type

    def type_factor(self, factors: dict[str, float], by: str = "bytes") -> float:
        """Time multiplier for the quant types' kernels: sum of share / efficiency (1.0 = q4_K-like)."""
        shares = self.type_bytes if by == "bytes" else self.type_params
        if not shares or not factors:
            return 1.0
        return sum(share / factors.get(t, 1.0) for t, share in shares)

    def active_params_per_token(self) -> float:
        return sum(l.dense_params + l.expert_params * self.expert_ratio for l in self.layers)


def _elements(nbytes: int, ggml_type: int) -> int:
    from .ggml_types import quant_size

    qs = quant_size(ggml_type)
    if not qs:
        return nbytes
    block, size = qs
    return nbytes // size * block


def model_compute(facts: "ModelFacts") -> ModelCompute:
    """Per-layer parameter counts and attention widths from the model's tensors and geometry."""
    from .ggml_types import type_name

    layers = []
    any_moe = any_rec = False
    ratio0 = (facts.n_expert_used / facts.n_expert) if (facts.n_expert and facts.n_expert_used) else 1.0
    by_bytes: dict[str, float] = {}
    by_params: dict[str, float] = {}
    for layer in facts.layers:
        if not layer.loaded:
            continue
        dense = expert = 0
        for t in layer.tensors:
            n = _elements(t.nbytes, t.ggml_type)
            tname = (type_name(t.ggml_type) or str(t.ggml_type)).lower()
            read = ratio0 if t.is_expert else 1.0
            by_bytes[tname] = by_bytes.get(tname, 0.0) + t.nbytes * read
            if t.ne1 > 1:  # matrices (norms and biases are vectors)
                by_params[tname] = by_params.get(tname, 0.0) + n * read
            if t.is_expert:
                expert += n
            else:
                dense += n
        kind = layer.kind
        width = 0
        if layer.has_attn_kv and layer.n_head_kv:
            head_k = layer.k_width // max(1, layer.n_head_kv)
            head_v = (layer.v_width // max(1, layer.n_head_kv)) if layer.v_width else facts.head_v_full
            width = layer.n_head * (head_k + head_v)
        window = facts.n_swa if (layer.is_swa and facts.swa_enabled and facts.n_swa) else 0
        moe = expert > 0
        any_moe |= moe
        any_rec |= kind == "recurrent"
        layers.append(LayerCompute(kind=kind, moe=moe, dense_params=dense, expert_params=expert,
                                   attn_width=width, window=window))
    head = 0
    for name in facts.output_names or ["output.weight"]:
        t = facts.nonrepeating.get(name)
        if t is not None:
            head += _elements(t.nbytes, t.ggml_type)
    if not head and "token_embd.weight" in facts.nonrepeating:
        t = facts.nonrepeating["token_embd.weight"]
        head = _elements(t.nbytes, t.ggml_type)
    ratio = (facts.n_expert_used / facts.n_expert) if (facts.n_expert and facts.n_expert_used) else 1.0
    family = "hybrid" if any_rec else ("mla" if facts.is_mla else ("moe" if any_moe else "dense"))
    tb, tp = sum(by_bytes.values()) or 1.0, sum(by_params.values()) or 1.0
    return ModelCompute(layers=tuple(layers), expert_ratio=min(1.0, ratio), head_params=head, family=family,
                        n_expert=facts.n_expert if any_moe else 0,
                        type_bytes=tuple(sorted((k, v / tb) for k, v in by_bytes.items() if v / tb > 0.001)),
                        type_params=tuple(sorted((k, v / tp) for k, v in by_params.items() if v / tp > 0.001)))


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


def estimate_speed(b: Breakdown, fit: "FitResult", profile: DeviceProfile, *, ratio: float = 1.0,
                   depth: int | None = None, compute: ModelCompute | None = None,
                   params: SpeedParams | None = None, app: str = "llama.cpp") -> SpeedEstimate:
    """Tokens/s decoding at `depth` tokens of context (default: the full context)."""
    params = params or default_params()
    depth = b.n_ctx if depth is None else max(0, depth)
    be = backend_name(fit.config.backend)
    os_ = fit.config.os
    cpu_only = be == "cpu"
    n_seq = max(1, b.settings.n_parallel)
    gpu_bytes = cpu_bytes = kv_read = kv_read_gpu = 0.0
    gpu_units = cpu_units = 0.0
    kinds = [l.kind for l in compute.layers] if compute else [l.kind for l in b.layers]
    moes = [l.moe for l in compute.layers] if compute else [bool(l.expert_bytes) for l in b.layers]
    for i, layer in enumerate(b.layers):
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
            kv_read_gpu += kv
        else:
            cpu_bytes += kv
        kind = kinds[i] if i < len(kinds) else layer.kind
        moe = moes[i] if i < len(moes) else bool(layer.expert_bytes)
        units = _units(kind, moe, params)
        if on_gpu:
            gpu_units += units
        else:
            cpu_units += units
    head = head_bytes(b)
    if b.output_on_gpu and not cpu_only:
        gpu_bytes += head
    else:
        cpu_bytes += head

    eff = profile.decode_efficiency * params.decode_factor(app, be)
    bw = profile.bandwidth_gbps * 1e9
    host_bw = host_bandwidth(profile) * 1e9
    slow = gpu_bytes * fit.shared_fraction if fit.shared_slowdown > 1.0 else 0.0
    # weights at their quant type's kernel efficiency (Q6_K unpacks slowly); the KV cache as it is
    kernels = compute.type_factor(params.type_decode) if compute is not None else 1.0
    weights_read = gpu_bytes - kv_read_gpu
    gpu_time = ((kernels * weights_read + kv_read_gpu + slow * (fit.shared_slowdown - 1)) / (eff * bw)
                if gpu_bytes else 0.0)
    cpu_time = cpu_bytes / (params.cpu_efficiency * host_bw) if cpu_bytes else 0.0
    latency = gpu_units * params.latency(be) + cpu_units * params.latency("cpu")
    # attention at depth is also arithmetic: each new token's queries meet every cached position
    # (MLA's absorbed attention: 20+ heads of 576 + 512 per position), at a share of the FP16 peak
    attn_time = 0.0
    eff_attn = params.attn_eff(backend_key(fit.config.backend))
    if compute is not None and eff_attn > 0 and profile.gpu_tflops_fp16 and depth > 0:
        attn_time = _attention_flops(compute, 1, depth) / (profile.gpu_tflops_fp16 * 1e12 * eff_attn)
    total_time = gpu_time + cpu_time + latency + attn_time
    tps = 1.0 / total_time if total_time > 0 else 0.0
    family = compute.family if compute else ("moe" if ratio < 1.0 else "dense")
    return SpeedEstimate(
        tps=round(tps, 2), depth=depth, bytes_per_token=int(gpu_bytes + cpu_bytes),
        gpu_bytes_per_token=int(gpu_bytes), cpu_bytes_per_token=int(cpu_bytes), kv_bytes_per_token=int(kv_read),
        slow_bytes_per_token=int(slow), efficiency=round(eff, 3), bandwidth_gbps=profile.bandwidth_gbps,
        host_bandwidth_gbps=round(host_bandwidth(profile), 1), latency_ms=round(latency * 1e3, 3),
        calibrated=params.calibrated(be, family),
    )


# --------------------------------------------------------------------------- prefill


def _attention_flops(compute: ModelCompute, n: int, depth: int) -> float:
    """Attention FLOPs for n causal prompt tokens after `depth` tokens: 2 x width per position."""
    total = 0.0
    for l in compute.layers:
        if not l.attn_width:
            continue
        if l.window:
            # each token sees at most `window` positions
            lo, hi = depth, depth + n
            full = max(0, hi - max(lo, l.window))  # tokens past the window see exactly `window`
            ramp_hi = min(hi, l.window)
            ramp = max(0, ramp_hi - lo)
            positions = full * l.window + (ramp * (lo + ramp_hi) / 2 if ramp else 0.0)
        else:
            positions = n * depth + n * n / 2
        total += 2.0 * l.attn_width * positions
    return total


def estimate_prefill(b: Breakdown, fit: "FitResult", profile: DeviceProfile, compute: ModelCompute, *,
                     tokens: int, depth: int = 0, params: SpeedParams | None = None) -> PrefillEstimate | None:
    """Processing `tokens` prompt tokens after `depth`: compute-bound, with the weights read once
    per ubatch (all experts: a ubatch of hundreds of tokens touches nearly every expert).
    None when the device has no FP16 throughput figure."""
    params = params or default_params()
    tflops = profile.gpu_tflops_fp16
    be = backend_name(fit.config.backend)
    if not tflops or tokens <= 0:
        return None
    key = backend_key(fit.config.backend)
    eff = params.prefill_eff(key)
    eff_attn = params.attn_eff(key) or eff
    n_ubatch = max(1, b.settings.n_ubatch)
    # a ubatch spreads its tokens over the experts: each expert's matmul sees ubatch x used/count
    # tokens times that expert's weights; small matmuls run far below peak (half speed at
    # moe_tokens_half MFLOPs per expert call: many tiny experts are slow, few big ones less so)
    sat = 1.0
    if params.moe_tokens_half > 0 and compute.n_expert:
        per_expert_tokens = min(tokens, n_ubatch) * compute.expert_ratio
        n_moe = max(1, sum(1 for l in compute.layers if l.moe))
        per_expert_params = sum(l.expert_params for l in compute.layers) / max(1, compute.n_expert) / n_moe
        work = 2.0 * per_expert_tokens * per_expert_params / 1e6  # MFLOPs per expert call
        sat = work / (work + params.moe_tokens_half)
    dense = sum(l.dense_params for l in compute.layers) + compute.head_params / max(1, tokens)
    expert = sum(l.expert_params for l in compute.layers) * compute.expert_ratio
    flops_dense = 2.0 * dense * tokens
    flops_expert = 2.0 * expert * tokens
    flops_attn = _attention_flops(compute, tokens, depth)
    kernels = compute.type_factor(params.type_prefill, by="params")
    t_compute = (kernels * (flops_dense + flops_expert / max(sat, 1e-6)) / (tflops * 1e12 * eff)
                 + flops_attn / (tflops * 1e12 * eff_attn))
    chunks = -(-tokens // n_ubatch)
    gpu_w = fit.gpu.weights_bytes
    cpu_w = fit.host.weights_bytes if not fit.full_offload else 0
    bw = profile.bandwidth_gbps * 1e9 * profile.decode_efficiency
    slow = 1 + fit.shared_fraction * (fit.shared_slowdown - 1) if fit.shared_slowdown > 1.0 else 1.0
    t_read = chunks * gpu_w * slow / bw
    if cpu_w:  # llama.cpp runs big-batch matmuls of CPU-resident weights on the GPU: they cross over
        link = params.pcie_gbps * 1e9 if profile.memory_architecture == "discrete" else host_bandwidth(profile) * 1e9
        t_read += chunks * cpu_w / link
    seconds = max(t_compute, t_read)
    family = compute.family
    return PrefillEstimate(tps=round(tokens / seconds, 1) if seconds > 0 else 0.0, tokens=tokens, depth=depth,
                           seconds=round(seconds, 3), tflops=tflops, efficiency=eff,
                           calibrated=params.calibrated(be, family) and params.calibrated(be, "prefill"))
