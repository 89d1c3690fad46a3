"""The MoE phase of the compute model against llama.cpp b11434's CPU reservation on synthetic
qwen3moe shapes (validation/moe_grid: expert width against embedding width, experts used, FA on
and off, contexts around the ubatch), replayed without llama.cpp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.estimate_types import RunSettings
from planner.estimator import estimate
from planner.model_facts import ModelFacts
from planner.testing.estimator_models import load
from planner.testing.ggufgen import ModelShape, write_model

RESULTS = Path(__file__).resolve().parent.parent / "validation" / "moe_grid" / "results.jsonl"


@pytest.fixture(scope="module")
def errors(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[float, dict]]:
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines()]
    work = tmp_path_factory.mktemp("moe")
    facts: dict[str, ModelFacts] = {}
    out = []
    for row in rows:
        key = json.dumps(row["shape"], sort_keys=True)
        if key not in facts:
            path = work / f"m{len(facts)}.gguf"
            write_model(path, "qwen3moe", ModelShape(**row["shape"]))
            facts[key] = load(path)
        rec = row["rec"]
        settings = RunSettings(n_ctx=rec["n_ctx"], n_batch=rec["n_batch"], n_ubatch=rec["n_ubatch"], n_parallel=1,
                               kv_unified=False, flash_attn="on" if rec["flash_attn"] else "off",
                               cache_type_k="f16", cache_type_v="f16", repack=True, backend="cpu")
        b = estimate(facts[key], settings)
        assert b.kv_bytes == rec["kv_bytes"] and b.output_bytes == rec["output_bytes"], row
        out.append(((b.compute_bytes - rec["compute_bytes"]) / rec["compute_bytes"], row))
    return out


def test_the_grid_covers_the_shapes_it_claims(errors):
    shapes = {json.dumps(r["shape"], sort_keys=True) for _, r in errors}
    assert len(errors) >= 300 and len(shapes) >= 55


def test_moe_compute_within_10_percent_in_95_percent_of_cases(errors):
    within = sum(abs(e) <= 0.10 for e, _ in errors)
    assert within >= 0.95 * len(errors), sorted((round(e, 3), r["shape"], r["rec"]["n_ctx"]) for e, r in errors
                                                if abs(e) > 0.10)


def test_moe_compute_mean_error_is_small(errors):
    mean = sum(abs(e) for e, _ in errors) / len(errors)
    assert mean < 0.02


def test_olmoe_proportions_are_no_longer_over_estimated(errors):
    """OLMoE's FFN proportions (E 2048, 8 of 64 experts of 1024): the old phase sum was +22% here."""
    olmoe = [e for e, r in errors if r["shape"]["n_embd"] == 2048 and r["shape"]["n_expert_used"] == 8
             and r["shape"]["n_ff_exp"] == 1024 and r["rec"]["n_ctx"] >= 4096]
    assert olmoe and max(abs(e) for e in olmoe) <= 0.05
