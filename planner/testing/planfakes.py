"""Test doubles for the fit solver and planner tests: synthetic device profiles with known numbers,
and a small deterministic estimator (layer-granular like llama.cpp, linear in context) over
hand-built headers, so planner tests do not depend on the real estimator's calibration.
test_plan_e2e.py runs the real estimator, resolver and shipped profiles instead."""

from __future__ import annotations

from dataclasses import dataclass

from ..device_schema import DeviceProfile
from ..estimate_types import Breakdown, DeviceUsage, LayerUsage, RunSettings
from ..header import GGUFHeader, ModelHeaders, TensorInfo
from ..plan_types import PlanModel, PlanProjector, PlanVariant

GIB = 1024**3
MIB = 1024**2



def apu(ram=64, os="windows", reserve=16, carve_opts=(0.5, 8, 16, 24, 32, 48), windows_fraction=0.5,
        linux_max=0.93, slowdown=None, max_alloc=None) -> DeviceProfile:
    gib = lambda x: int(x * GIB)  # noqa: E731
    return DeviceProfile.model_validate({
        "id": "test-apu", "name": "Test APU", "vendor": "AMD", "family": "strix-halo", "form_factor": "laptop",
        "memory_architecture": "carveout", "ram_bytes": gib(ram), "default_os": os, "default_use": "daily",
        "bandwidth_gbps": 256.0, "decode_efficiency": 0.85,
        "carveout": {"options_bytes": [gib(c) for c in carve_opts], "default_bytes": gib(carve_opts[0])},
        "os": {
            "windows": {"reserve_bytes": {"headless": gib(8), "desktop": gib(10), "daily": gib(reserve)},
                        "gpu_cap": {"default_fraction": windows_fraction, "shared_slowdown": slowdown},
                        "backends": [{"name": "vulkan", "reports_as": "carveout_plus_cap"},
                                     {"name": "vulkan", "driver": "amdvlk", "max_alloc_bytes": max_alloc or 2 * GIB},
                                     {"name": "rocm", "overhead_bytes": gib(0.75)}]},
            "linux": {"reserve_bytes": {"headless": gib(4), "desktop": gib(8), "daily": gib(reserve)},
                      "gpu_cap": {"default_fraction": 0.5, "max_fraction": linux_max, "knob": "ttm.pages_limit"},
                      "backends": [{"name": "vulkan", "reports_as": "carveout_plus_cap"}]},
        },
    })


def mac(ram=64, reserve=8, default_fraction=0.75, max_fraction=0.9) -> DeviceProfile:
    return DeviceProfile.model_validate({
        "id": "test-mac", "name": "Test Mac", "vendor": "Apple", "family": "apple-m4", "form_factor": "laptop",
        "memory_architecture": "unified", "ram_bytes": ram * GIB, "default_os": "macos", "default_use": "desktop",
        "bandwidth_gbps": 546.0, "decode_efficiency": 0.6,
        "os": {"macos": {"reserve_bytes": {"headless": 6 * GIB, "desktop": reserve * GIB, "daily": 16 * GIB},
                         "gpu_cap": {"default_fraction": default_fraction, "max_fraction": max_fraction,
                                     "knob": "iogpu.wired_limit_mb"},
                         "backends": [{"name": "metal", "reports_as": "cap"}]}},
    })


def gpu_card(vram=24, ram=64, vram_reserve=1.0) -> DeviceProfile:
    return DeviceProfile.model_validate({
        "id": "test-card", "name": "Test card", "vendor": "NVIDIA", "family": "rtx-40", "form_factor": "desktop",
        "memory_architecture": "discrete", "ram_bytes": ram * GIB, "vram_bytes": vram * GIB, "default_os": "linux",
        "bandwidth_gbps": 1008.0, "host_bandwidth_gbps": 80.0,
        "os": {"linux": {"reserve_bytes": {"headless": 4 * GIB, "desktop": 8 * GIB, "daily": 12 * GIB},
                         "vram_reserve_bytes": {"desktop": int(vram_reserve * GIB)},
                         "backends": [{"name": "cuda", "overhead_bytes": GIB // 2}]}},
    })



# --------------------------------------------------------------------------- a fake estimator

KV_SCALE = {"f32": 2.0, "f16": 1.0, "bf16": 1.0, "q8_0": 34 / 64, "q4_0": 18 / 64, "q4_1": 20 / 64,
            "q5_0": 22 / 64, "q5_1": 24 / 64, "iq4_nl": 18 / 64}
COMPUTE_BASE = 256 * MIB
COMPUTE_PER_TOKEN = 8 * 1024


@dataclass
class FakeFacts:
    n_layer: int
    layer_bytes: list[int]
    expert_bytes: list[int]
    embd_bytes: int
    out_bytes: int
    kv_token_layer: int  # f16 K+V bytes per token per layer
    ctx_train: int

    @classmethod
    def from_headers(cls, h: ModelHeaders) -> "FakeFacts":
        arch = h.metadata["general.architecture"]
        n = int(h.metadata[f"{arch}.block_count"])
        layer = [0] * n
        expert = [0] * n
        for t in h.tensors:
            if t.name.startswith("blk."):
                i = int(t.name.split(".")[1])
                layer[i] += t.nbytes
                if "_exps" in t.name:
                    expert[i] += t.nbytes
        by = {t.name: t.nbytes for t in h.tensors}
        return cls(n, layer, expert, by["token_embd.weight"], by.get("output.weight", 0),
                   int(h.metadata["test.kv_bytes_per_token_layer"]), int(h.metadata[f"{arch}.context_length"]))


def fake_estimate(f: FakeFacts, s: RunSettings, mmproj=None) -> Breakdown:
    ctx = s.n_ctx or f.ctx_train
    cells = -(-ctx // 256) * 256
    ngl = f.n_layer + 1 if s.n_gpu_layers < 0 else s.n_gpu_layers
    first_gpu = f.n_layer - min(ngl, f.n_layer)
    kv_layer = int(f.kv_token_layer * cells * KV_SCALE[s.cache_type_k])
    layers, gw, hw, gkv, hkv = _fake_layers(f, s, first_gpu, kv_layer, cells)
    out_on_gpu = ngl > f.n_layer and s.backend != "cpu"
    head = f.out_bytes
    gw += head if out_on_gpu else 0
    hw += f.embd_bytes + (0 if out_on_gpu else head)
    proj = sum(t.nbytes for t in mmproj.tensors) + 64 * MIB if s.with_mmproj and mmproj is not None else 0
    compute = COMPUTE_BASE + COMPUTE_PER_TOKEN * cells
    gpu = DeviceUsage(device="gpu", weights_bytes=gw, kv_bytes=gkv, compute_bytes=compute, mmproj_bytes=proj)
    host = DeviceUsage(device="host", weights_bytes=hw, kv_bytes=hkv, compute_bytes=32 * MIB, output_bytes=MIB)
    nonrep = {"token_embd.weight": f.embd_bytes}
    if head:
        nonrep["output.weight"] = head
    return Breakdown(
        weights_bytes=gw + hw, kv_bytes=gkv + hkv, recurrent_bytes=0, compute_bytes=compute + 32 * MIB,
        output_bytes=MIB, mmproj_bytes=proj, total_bytes=gpu.total_bytes + host.total_bytes, overhead_bytes=0,
        devices=[gpu, host], layers=layers, nonrepeating_weights=nonrep, n_ctx=ctx, kv_cells=cells,
        flash_attn=s.flash_attn != "off", settings=s, estimated={"compute": 0.1},
    )


def _fake_layers(f: FakeFacts, s: RunSettings, first_gpu: int, kv_layer: int,
                 cells: int) -> tuple[list[LayerUsage], int, int, int, int]:
    """The layers from `first_gpu` on the GPU (their experts from --n-cpu-moe on): each layer's
    usage, and the GPU and host weight and KV sums."""
    layers, gw, hw, gkv, hkv = [], 0, 0, 0, 0
    for i in range(f.n_layer):
        on = i >= first_gpu and s.backend != "cpu"
        experts_on = on and i >= s.n_cpu_moe
        w, e = f.layer_bytes[i], f.expert_bytes[i]
        g = (w - e if on else 0) + (e if experts_on else 0)
        gw, hw = gw + g, hw + (w - g)
        if on:
            gkv += kv_layer
        else:
            hkv += kv_layer
        layers.append(LayerUsage(index=i, weights_bytes=w, expert_bytes=e, kv_bytes=kv_layer, kv_cells=cells,
                                 on_gpu=on, experts_on_gpu=experts_on))
    return layers, gw, hw, gkv, hkv


def fake_headers(total_bytes: int, *, n_layer: int = 64, kv_token_layer: int = 4096, ctx_train: int = 131072,
                 experts: tuple[int, int] | None = None, expert_share: float = 0.9,
                 largest: int | None = None) -> ModelHeaders:
    """Headers of a model of about total_bytes: 3 % embeddings, 3 % head, the rest in equal layers
    (MoE: expert_share of each layer in expert tensors)."""
    arch = "testarch"
    embd = int(total_bytes * 0.03)
    layer = (total_bytes - 2 * embd) // n_layer
    md = {"general.architecture": arch, f"{arch}.block_count": n_layer, f"{arch}.context_length": ctx_train,
          "test.kv_bytes_per_token_layer": kv_token_layer}
    if experts:
        md[f"{arch}.expert_used_count"], md[f"{arch}.expert_count"] = experts
    ts = [TensorInfo("token_embd.weight", (1,), 0, 0, embd), TensorInfo("output.weight", (1,), 0, 0, largest or embd)]
    for i in range(n_layer):
        if experts:
            e = int(layer * expert_share)
            ts += [TensorInfo(f"blk.{i}.attn_qkv.weight", (1,), 0, 0, layer - e),
                   TensorInfo(f"blk.{i}.ffn_up_exps.weight", (1,), 0, 0, e)]
        else:
            ts.append(TensorInfo(f"blk.{i}.ffn_up.weight", (1,), 0, 0, layer))
    h = GGUFHeader(version=3, metadata=md, tensors=ts, alignment=32, data_offset=0)
    return ModelHeaders(shards=[h], metadata=md, tensors=ts)


def fake_model(sizes_gib: dict[str, float], *, repo: str | None = "test/Model-GGUF", projector_gib: float | None = None,
               **kw) -> PlanModel:
    variants = [PlanVariant(quant=q, headers=fake_headers(int(g * GIB), **kw), size_bytes=int(g * GIB),
                            files=[f"Model-{q}.gguf"]) for q, g in sizes_gib.items()]
    proj = None
    if projector_gib:
        ph = fake_headers(int(projector_gib * GIB), n_layer=1)
        proj = PlanProjector(name="mmproj-F16.gguf", size_bytes=int(projector_gib * GIB), headers=ph,
                             path="/models/mmproj-F16.gguf")
    return PlanModel(name=repo or "/models", variants=variants, repo=repo, projector=proj,
                     hf_tag=(lambda q: f"{repo}:{q}") if repo else None)


LADDER = {"Q2_K": 12, "Q3_K_M": 15, "Q4_K_M": 19, "Q5_K_M": 22, "Q6_K": 25, "Q8_0": 33, "BF16": 62}
