"""`plan --runtime`: the plan sizes what the chosen llama.cpp build and app allocate (planner/runtime/llamacpp/apps.py)
and says which it assumed."""

from __future__ import annotations

import json

import pytest

from planner.testing.clirun import plan
from validation.field.make_specs import sparse_gguf


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(sparse_gguf("gpt-oss-20b", "MXFP4_MOE", tmp_path_factory.mktemp("rt")))


def _plan(model: str, *args: str) -> dict:
    r = plan(model, "--device", "rtx-4090", "--ctx", "32k", "--json", *args)
    assert r.exit_code in (0, 3), r.output
    return json.loads(r.stdout)


def test_the_default_is_conservative_and_says_so(model):
    d = _plan(model)
    assert d["runtime"] == "llama.cpp@conservative" and "conservative" in d["runtime_statement"]
    text = plan(model, "--device", "rtx-4090", "--ctx", "32k").stdout
    assert "sized for llama-server defaults, conservative" in " ".join(text.split())


def test_a_current_build_reserves_logits_per_slot_only(model):
    """Builds since b9464 reserve one logits row per slot; the conservative default a whole ubatch."""
    default = _plan(model)["fit"]["gpu"]["compute_bytes"]
    current = _plan(model, "--runtime", "llama.cpp@b11434")["fit"]["gpu"]["compute_bytes"]
    assert current < default


def test_ollama_runtime_uses_its_batch_and_its_speed(model):
    base, ollama = _plan(model), _plan(model, "--runtime", "ollama")
    assert ollama["runtime"].startswith("ollama@")
    assert ollama["fit"]["gpu"]["compute_bytes"] != base["fit"]["gpu"]["compute_bytes"]  # -b/-ub 512, its build
    assert ollama["recommendation"]["est_tps"] != base["recommendation"]["est_tps"]  # the app factor (docs/speed.md)


def test_llama_build_alone_is_llama_server_of_that_build(model):
    d = _plan(model, "--llama-build", "9452")
    assert d["runtime"] == "llama.cpp@b9452"


def test_an_unknown_runtime_is_a_one_line_error(model):
    r = plan(model, "--device", "rtx-4090", "--runtime", "vllm")
    assert r.exit_code in (1, 2) and r.output.count("\n") <= 3 and "Traceback" not in r.output
