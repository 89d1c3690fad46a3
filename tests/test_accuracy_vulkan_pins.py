"""Pin the GPU branch of the estimator to llama.cpp's Vulkan backend (validation/results-vulkan/).

The numbers were measured with llama.cpp b11434 built with GGML_VULKAN=ON on Mesa's lavapipe
(validation/vulkan_run.py, docs/accuracy-gpu.md); no Vulkan is needed here. Each model's header is
regenerated from validation/models/<name>.json and the estimator runs with backend="vulkan":
weights and KV per device must be identical, the compute buffers close to llama.cpp's in the
regimes memfit models (full offload under 1 GiB; -ngl 0), and above its 1 GiB buffer cap the
measured buffer must stay inside memfit's stated margin.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.estimate_types import RunSettings
from planner.estimator import estimate
from validation.replay import SpecFacts

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "validation" / "results-vulkan"
MiB = 1 << 20

# (model, case id, what is pinned): "close" = Vulkan0 compute within 3% and host within 2 MiB,
# "ngl0" = everything op-offloaded: Vulkan0 within 5%, "margin" = measured within the stated margin
PINS = [
    ("llama-3.1-8b", "c4096_fa-on_ub512_ngl-all", "close"),
    ("llama-3.1-8b", "c131072_fa-on_ub512_ngl-all", "close"),
    ("llama-3.1-8b", "c4096_fa-on_ub512_ngl-0", "ngl0"),
    ("llama-3.1-8b", "c4096_fa-off_ub2048_ngl-all", "margin"),
    ("gpt-oss-20b", "c32768_fa-on_ub512_ngl-all", "close"),
    ("gemma-3-12b", "c131072_fa-on_ub512_ngl-all", "close"),
    ("deepseek-v2-lite", "c32768_fa-on_ub512_ngl-all", "close"),
    ("qwen3-30b-a3b", "c4096_fa-on_ub512_ngl-0", "ngl0"),
]


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    return SpecFacts(lambda name: tmp_path_factory.mktemp("vk"))


def _case(model: str, case_id: str) -> dict:
    data = json.loads((RESULTS / f"{model}.json").read_text())
    return next(c for c in data["cases"] if c["id"] == case_id)


def _settings(s: dict) -> RunSettings:
    return RunSettings(n_ctx=s["n_ctx"], n_batch=s["n_batch"], n_ubatch=s["n_ubatch"], n_parallel=s["n_parallel"],
                       flash_attn=s["flash_attn"], repack=s["repack"], backend="vulkan",
                       n_gpu_layers=s["n_gpu_layers"])


@pytest.mark.parametrize("model,case_id,kind", PINS, ids=[f"{m}:{c}" for m, c, _ in PINS])
def test_vulkan_pin(facts, model, case_id, kind):
    case = _case(model, case_id)
    rec = case["llama"]
    b = estimate(facts(model), _settings(case["settings"]))
    gpu, host = b.device("gpu"), b.device("host")
    vk, hs = rec["vulkan0"], rec["host"]
    # exact components, per device
    assert gpu.weights_bytes == vk["model"]
    assert host.weights_bytes == hs["model"]
    assert gpu.kv_bytes + gpu.recurrent_bytes == vk["context"]
    assert host.kv_bytes + host.recurrent_bytes == hs["context"]
    # Vulkan_Host adds 32 B to each allocation ("behave like the CPU buffer type"): in the backend table
    assert rec["output_bytes"] == b.output_bytes

    err = (gpu.compute_bytes - vk["compute"]) / vk["compute"]
    if kind == "close":
        assert abs(err) <= 0.03, f"Vulkan0 compute {err:+.1%}"
        assert abs(host.compute_bytes - hs["compute"]) <= 2 * MiB
    elif kind == "ngl0":
        assert abs(err) <= 0.05, f"Vulkan0 compute with -ngl 0 {err:+.1%}"
        assert abs(host.compute_bytes - hs["compute"]) <= 2 * MiB
    else:  # above the 1 GiB buffer cap: fragmentation is covered by the margin, and said
        margin = b.estimated["compute"]
        assert margin >= 1.0
        assert vk["compute"] <= gpu.compute_bytes * (1 + margin)
        assert any("1 GiB" in w for w in b.warnings)


def test_vulkan_results_record_the_setup():
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        assert data["llama_cpp"]["llama_cpp_build"] == "b11434"
        assert "llvmpipe" in data["vulkan_driver"]["deviceName"]
        assert data["vulkan_driver"]["limits"]["maxStorageBufferRange"] == 134217728
        assert data["emulated_limits"]["maxStorageBufferRange"] == 4294967295
        assert data["fit_print_mismatches"] == 0
