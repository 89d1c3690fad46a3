"""Pin memfit's server-mode estimate to llama-server's own reservation (validation/results-server/).

Measured with llama.cpp b11434's llama-server rules (memprobe --server-mode: -np auto = 4 unified
slots, n_outputs_max = min(n_batch, n_parallel)) on the CPU backend; replayed here without
llama.cpp: each model's header is regenerated from validation/models/<name>.json and the estimator
gets the settings `memfit estimate --runtime llama.cpp@b11434` builds from the same flags. KV cache,
recurrent state and output buffer must be identical; the compute buffer within 10% (the issue's
target is 5% in 95% of the cases, checked over the whole grid by validation/compare_server.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from planner.estimator import estimate
from validation.compare_server import server_settings
from validation.replay import SpecFacts, exact_mismatches

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "validation" / "results-server"
SPECS = REPO / "validation" / "models"
MODELS = sorted(p.stem for p in RESULTS.glob("*.json"))
EXACT = ("weights_bytes", "kv_bytes", "recurrent_bytes", "output_bytes")
MiB = 1 << 20


def _axes(c: dict) -> tuple:
    s = c["settings"]
    return (s["flash_attn"], s["cache_type_k"], s["n_parallel"], s["kv_unified"], s["np_auto"], s["n_ubatch"] == 512)


def representative(cases: list[dict]) -> list[dict]:
    """Each combination of FA, KV type, slots, unification and np auto once (ub 512 and one other),
    every context, and the ROCm log's case: about 30 per model."""
    chosen, seen = [], set()
    for c in cases:
        if "error" in c["llama"]:
            continue
        key = _axes(c) + (c["settings"]["n_ctx"],)
        if key not in seen or c["settings"].get("set") == "rocm-log":
            seen.add(key)
            chosen.append(c)
    return chosen


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    return SpecFacts(lambda name: tmp_path_factory.mktemp("srv"))


def test_every_validation_model_was_measured_in_server_mode():
    assert set(MODELS) == {p.stem for p in SPECS.glob("*.json")}


@pytest.mark.parametrize("model", MODELS)
def test_server_results_match_specs(model):
    r = json.loads((RESULTS / f"{model}.json").read_text())
    assert r["spec_sha256"] == hashlib.sha256((SPECS / f"{model}.json").read_bytes()).hexdigest()
    assert r["llama_cpp"]["llama_cpp_build"] == "b11434"
    assert r["llama_server_mismatches"] == 0
    for c in r["cases"]:  # the probe applied llama-server's rules
        rec = c["llama"]
        assert rec["server_mode"] and rec["n_outputs_max"] == min(c["settings"]["n_parallel"], c["settings"]["n_batch"])


@pytest.mark.parametrize("model", MODELS)
def test_estimator_matches_llama_server(model, facts):
    r = json.loads((RESULTS / f"{model}.json").read_text())
    f = facts(model)
    failures = []
    for c in representative(r["cases"]):
        want = c["llama"]
        got = estimate(f, server_settings(c["settings"]))
        failures += exact_mismatches(c["id"], got, want, EXACT)
        err = (got.compute_bytes - want["compute_bytes"]) / want["compute_bytes"]
        if abs(err) > 0.10:
            failures.append(f"{c['id']}: compute {err:+.1%}")
        assert got.n_ctx == want["n_ctx"]
    assert not failures, "\n".join(failures)


def test_rocm_log_settings_on_b11434_cpu(facts):
    """The ROCm log's settings (gpt-oss-120b -c 262144 -np 2, non-unified, FA on, -ub/-b 1024) on
    b11434's llama-server, CPU backend: one 449.80 MiB compute buffer, KV 9306 MiB to the byte."""
    r = json.loads((RESULTS / "gpt-oss-120b.json").read_text())
    c = next(c for c in r["cases"] if c["settings"].get("set") == "rocm-log")
    want = c["llama"]
    assert round(want["compute_bytes"] / MiB, 2) == 449.80 and want["kv_bytes"] == 9306 * MiB
    got = estimate(facts("gpt-oss-120b"), server_settings(c["settings"]))
    assert got.kv_bytes == want["kv_bytes"] and got.output_bytes == want["output_bytes"]
    assert abs(got.compute_bytes - want["compute_bytes"]) / want["compute_bytes"] < 0.01
