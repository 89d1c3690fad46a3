"""Pin the estimator to numbers measured with real llama.cpp b11434 (validation/results/*.json).

No llama.cpp needed: each model's GGUF header is regenerated from validation/models/<name>.json
(the exact header llama.cpp measured, sparse data region), read back with memfit's reader, and the
estimator must reproduce llama.cpp's bytes: weights, KV cache, recurrent state and output buffer
identical; the CPU compute buffer within 10%; the total within 3%. The cases are a representative
subset of the harness grid: every value of every axis for every model (see validation/run_llamacpp.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("planner.estimator", reason="the estimator is not importable yet")

from planner.estimate_types import RunSettings  # noqa: E402
from planner.estimator import estimate  # noqa: E402
from validation.replay import SpecFacts, exact_mismatches, representative  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "validation" / "results"
SPECS = REPO / "validation" / "models"
MODELS = sorted(p.stem for p in RESULTS.glob("*.json") if not p.name.startswith("_"))
EXACT = ("weights_bytes", "kv_bytes", "recurrent_bytes", "output_bytes")
COMPUTE_TOLERANCE = 0.10
TOTAL_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def facts_by_model(tmp_path_factory):
    return SpecFacts(lambda name: tmp_path_factory.mktemp(name))


def _settings(s: dict) -> RunSettings:
    return RunSettings(
        n_ctx=s["n_ctx"], n_batch=s["n_batch"], n_ubatch=s["n_ubatch"], n_parallel=s["n_parallel"],
        kv_unified=s["kv_unified"], flash_attn=s["flash_attn"], cache_type_k=s["cache_type_k"],
        cache_type_v=s["cache_type_v"], swa_full=s["swa_full"], repack=s["repack"], backend="cpu",
    )


# Every model docs/accuracy.md reports on: removing one's results must fail here, not shrink the page.
REQUIRED_MODELS = {
    "llama-3.1-8b", "llama-3.3-70b", "qwen3-32b", "qwen3-vl-32b", "qwen3-30b-a3b", "qwen3-next-80b-a3b",
    "gpt-oss-20b", "gpt-oss-120b", "gemma-3-12b", "gemma-3-270m", "deepseek-v2-lite", "glm-4.7-flash",
    "lfm2-1.2b", "granite-4.0-h-tiny",
}
MiB = 1 << 20


def test_results_exist_for_the_required_architectures():
    archs = {json.loads((SPECS / f"{m}.json").read_text())["arch"] for m in MODELS}
    assert {"llama", "qwen3moe", "gpt-oss", "gemma3", "deepseek2", "granitehybrid"} <= archs
    assert archs & {"qwen3", "qwen3vl"} and archs & {"lfm2", "qwen3next"}
    assert REQUIRED_MODELS <= set(MODELS)


def _case(model: str, case_id: str) -> dict:
    result = json.loads((RESULTS / f"{model}.json").read_text())
    return next(c for c in result["cases"] if c["id"] == case_id)


def test_gemma_270m_agrees_with_the_real_file_measured_in_peers_md(facts_by_model):
    """/work/shared/reference/peers.md loaded a real gemma-3-270m Q4_K_M file in llama.cpp: tensor
    bytes 246,587,904; at n_ctx 24576, f16 KV, one sequence, a KV cache of 87 MiB with the SWA cache
    trimmed (3 global layers x 24576 cells + 15 SWA layers x 1024 cells) and 432 MiB full size; a
    1 MiB output buffer. Our generated header (config + llama-quantize's mix), llama.cpp b11434 on it,
    and the estimator must all reproduce those numbers."""
    facts = facts_by_model("gemma-3-270m")
    for case_id, kv_mib in (("c24576_fa-on_kv-f16_ub512_np1", 87), ("c24576_fa-on_kv-f16_ub512_np1_swafull", 432)):
        measured = _case("gemma-3-270m", case_id)
        got = estimate(facts, _settings(measured["settings"]))
        for source in (measured["llama"], {k: getattr(got, k) for k in EXACT}):
            assert source["weights_bytes"] == 246_587_904
            assert source["kv_bytes"] == kv_mib * MiB, case_id
            assert source["output_bytes"] == 1 * MiB


@pytest.mark.parametrize("model", MODELS)
def test_results_were_measured_on_these_specs(model):
    """A spec edited without re-running llama.cpp would make the pins meaningless."""
    result = json.loads((RESULTS / f"{model}.json").read_text())
    assert result["spec_sha256"] == hashlib.sha256((SPECS / f"{model}.json").read_bytes()).hexdigest()
    assert result["llama_cpp"]["llama_cpp_build"] == "b11434"


@pytest.mark.parametrize("model", MODELS)
def test_estimator_matches_llamacpp(model, facts_by_model):
    result = json.loads((RESULTS / f"{model}.json").read_text())
    facts = facts_by_model(model)
    cases = representative(result["cases"])
    assert len(cases) >= 8
    failures = []
    for case in cases:
        want = case["llama"]
        got = estimate(facts, _settings(case["settings"]))
        failures += exact_mismatches(case["id"], got, want, EXACT)
        comp_err = (got.compute_bytes - want["compute_bytes"]) / want["compute_bytes"]
        if abs(comp_err) > COMPUTE_TOLERANCE:
            failures.append(f"{case['id']}: compute off by {comp_err:+.1%} "
                            f"(memfit {got.compute_bytes:,}, llama.cpp {want['compute_bytes']:,})")
        want_total = sum(want[k] for k in EXACT) + want["compute_bytes"]
        total_err = (got.total_bytes - want_total) / want_total
        if abs(total_err) > TOTAL_TOLERANCE:
            failures.append(f"{case['id']}: total off by {total_err:+.1%}")
        assert got.flash_attn == want["flash_attn_effective"], f"{case['id']}: flash attention resolved differently"
        assert got.n_ctx == want["n_ctx"], f"{case['id']}: n_ctx memfit {got.n_ctx} != llama.cpp {want['n_ctx']}"
    assert not failures, "\n".join(failures)
