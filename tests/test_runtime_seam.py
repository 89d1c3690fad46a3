"""The runtime seam (planner/runtime/): the planner reaches llama.cpp only through the engine the
registry gives it, so a second runtime is a new class and one registry line."""

from __future__ import annotations

import pytest

from planner.errors import InputError
from planner.plan import PlanRequest, Planner
from planner.plan_types import Commands
from planner.runtime import registry
from planner.runtime.base import Engine, RunShape
from planner.runtime.llamacpp.engine import LlamaCpp
from planner.testing.clirun import plan as plan_cli
from planner.testing.planfakes import FakeFacts, fake_estimate, fake_model, gpu_card


def test_the_default_engine_is_llama_cpp_and_resolves_apps():
    assert registry.engine_for(None).name == "llama.cpp"
    assert registry.engine_for(None).id == "llama.cpp@conservative"
    ollama = registry.engine_for("ollama@0.30")
    assert ollama.name == "llama.cpp" and ollama.id.startswith("ollama@0.30") and ollama.app == "ollama"
    assert registry.engine_for(None, 9452).id == "llama.cpp@b9452"


def test_a_runtime_no_engine_claims_is_llama_cpp_s_error():
    with pytest.raises(InputError, match="unknown runtime"):
        registry.engine_for("vllm")
    assert LlamaCpp.claims("lms@0.4") and LlamaCpp.claims("b9452") and not LlamaCpp.claims("vllm")


def test_llama_cpp_settings_follow_the_app():
    shape = RunShape(ctx=8192, backend="cuda", cache_type_k="q8_0", cache_type_v="q8_0", flash_attn="on",
                     n_parallel=1, n_batch=4096, n_ubatch=1024, mmap=True, with_mmproj=False, gpu_layers=20,
                     cpu_expert_layers=3)
    own = LlamaCpp("llama.cpp@b11434").settings(shape)
    assert (own.n_batch, own.n_ubatch, own.n_gpu_layers, own.n_cpu_moe, own.n_ctx) == (4096, 1024, 20, 3, 8192)
    ollama = LlamaCpp("ollama").settings(shape)
    assert (ollama.n_batch, ollama.n_ubatch) == (512, 512)  # Ollama passes its own batch sizes


class _Other(LlamaCpp):
    """A second runtime, for the test: llama.cpp's buffers, its own name and launch line."""

    name = "other"

    def __init__(self, runtime_text: str | None = None, llama_build: int | None = None) -> None:
        super().__init__(None, llama_build)
        self.id, self.app, self.statement = "other@1", "other", "runtime: other 1"

    @classmethod
    def claims(cls, runtime_text: str) -> bool:
        return runtime_text.startswith("other")

    def launch(self, model, v, rec, os_, shell_name) -> Commands:
        return Commands(llama_server=f"other-serve {v.quant} -c {rec.ctx}", lm_studio={}, ollama=[])


def test_a_second_runtime_is_one_registry_line(monkeypatch):
    monkeypatch.setitem(registry.ENGINES, "other", _Other)
    engine: Engine = registry.engine_for("other")
    assert engine.name == "other"
    model = fake_model({"Q4_K_M": 4.0})
    planner = Planner(model, PlanRequest(ctx=4096, runtime="other"), estimate_fn=fake_estimate,
                      facts_fn=FakeFacts.from_headers)
    plan = planner.plan(gpu_card(vram=24))
    assert plan.runtime == "other@1" and plan.runtime_statement == "runtime: other 1"
    assert plan.recommendation.commands.llama_server == "other-serve Q4_K_M -c 4096"


class _OneDevice(_Other):
    """A second runtime that plans one device only (no multi-device split)."""

    multi_device = None


def test_a_cluster_plan_asks_the_engine_for_its_split(monkeypatch, arch_models):
    """--cluster goes through the engine: one without a multi-device split is one error line."""
    monkeypatch.setitem(registry.ENGINES, "other", _OneDevice)
    result = plan_cli(str(arch_models["qwen2"]), "--cluster", "2x dgx-spark", "--runtime", "other")
    assert result.exit_code != 0
    assert result.output.startswith("error: runtime other@1 plans one device")
    assert "--cluster" in result.output.splitlines()[0]
