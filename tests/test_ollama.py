"""Ollama models as references: names, the registry (planner/testing/fakeregistry.py), the local store,
the cache, errors; and the CLI end to end."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from planner.testing import fakeregistry
from planner.testing import ggufgen
from planner.testing.clirun import logical_lines, memfit, plan
from planner.testing.fakeregistry import build_model, write_store
from planner import ollama
from planner.cache import default_cache
from planner.errors import RegistryError, ResolveError
from planner.ollama import OllamaName
from planner.reader import parse_file
from planner.resolver import parse_reference, resolve

SHAPE = ggufgen.ModelShape(n_vocab=32000, n_layer=4, n_embd=512, n_ff=1024, n_head=8, n_head_kv=2)


@pytest.fixture(scope="module")
def qwen3_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ggufgen.write_model(tmp_path_factory.mktemp("ollama_src") / "qwen3.gguf", "qwen3", SHAPE)[0]


@pytest.fixture(scope="module")
def projector_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ggufgen.write_model(tmp_path_factory.mktemp("ollama_proj") / "proj.gguf", "clip", SHAPE)[0]


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("text,full,display", [
    ("qwen3:32b", "registry.ollama.ai/library/qwen3:32b", "qwen3:32b"),
    ("gpt-oss:120b", "registry.ollama.ai/library/gpt-oss:120b", "gpt-oss:120b"),
    ("qwen3", "registry.ollama.ai/library/qwen3:latest", "qwen3"),
    ("qwen3:latest", "registry.ollama.ai/library/qwen3:latest", "qwen3"),
    ("huihui_ai/qwen3-abliterated:8b", "registry.ollama.ai/huihui_ai/qwen3-abliterated:8b", "huihui_ai/qwen3-abliterated:8b"),
    ("example.com/team/m:q4", "example.com/team/m:q4", "example.com/team/m:q4"),
    ("qwen2.5-coder:7b-instruct-q4_K_M", "registry.ollama.ai/library/qwen2.5-coder:7b-instruct-q4_K_M",
     "qwen2.5-coder:7b-instruct-q4_K_M"),
])
def test_names_follow_ollamas_rules(text, full, display):
    n = OllamaName.parse(text)
    assert n.full == full and n.display == display


@pytest.mark.parametrize("bad", ["qwen3:", "a/b/c/d:e", "bad name:1", "ns.dot/model:1", ":tag", "x:y z"])
def test_bad_names_are_one_line_errors(bad):
    with pytest.raises(ResolveError) as e:
        OllamaName.parse(bad)
    assert "not an Ollama model name" in e.value.message and "\n" not in e.value.message


@pytest.mark.parametrize("ref,kind", [
    ("ollama:qwen3:32b", "ollama"), ("gpt-oss:120b", "ollama"), ("qwen3:32b", "ollama"),
    ("lfm2:1.2b", "ollama"),  # lfm2 is a short name, but 1.2b is no quant tag
    ("qwen3-vl-32b:Q4_K_M", "alias"), ("gpt-oss-120b:MXFP4", "alias"), ("qwen3-vl-32b", "alias"),
    ("unsloth/Qwen3-32B-GGUF:Q4_K_M", "hub"), ("hf.co/unsloth/Qwen3-32B-GGUF:Q4_K_M", "hub"),
    ("lmstudio:lmstudio-community/Qwen3-32B-GGUF:Q4_K_M", "lmstudio"),
])
def test_reference_kinds(ref, kind):
    assert parse_reference(ref).kind == kind


# --------------------------------------------------------------------------- the registry


def test_registry_reads_manifest_config_and_only_the_header(fake_registry, qwen3_gguf):
    fake_registry.add_model("qwen3:32b", build_model(qwen3_gguf, file_type="Q4_K_M"))
    m = resolve("ollama:qwen3:32b")
    assert m.source == "ollama" and m.ollama_name == "qwen3:32b" and m.local_path is None
    assert [v.quant for v in m.variants] == ["Q4_K_M"]
    v = m.variants[0]
    want = parse_file(qwen3_gguf)
    assert v.headers.tensors == want.tensors and v.headers.metadata == want.metadata
    assert v.size_bytes == qwen3_gguf.stat().st_size and m.hf_tag("Q4_K_M") is None
    manifests = fake_registry.requests("registry", "/manifests/")
    assert len(manifests) == 1 and manifests[0].accept == fakeregistry.MANIFEST_V2
    assert manifests[0].path == "/v2/library/qwen3/manifests/32b"
    blob_bytes = sum(r.bytes_sent for r in fake_registry.requests("cdn"))
    assert blob_bytes <= want.data_offset + (1 << 20) + (1 << 20) // 10  # header + one read-ahead, never the weights
    assert qwen3_gguf.stat().st_size > 10 * blob_bytes


def test_warm_and_offline_runs_make_no_request(fake_registry, qwen3_gguf, monkeypatch):
    fake_registry.add_model("qwen3:32b", build_model(qwen3_gguf))
    resolve("qwen3:32b")
    fake_registry.reset_stats()
    assert resolve("qwen3:32b").variants[0].headers is not None
    assert fake_registry.requests() == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MEMFIT_REF_TTL", "0")  # offline, any cached manifest does
    assert resolve("ollama:qwen3:32b").variants[0].quant == "Q4_K_M"
    assert fake_registry.requests() == []


def test_an_expired_manifest_is_asked_again_but_the_header_is_not(fake_registry, qwen3_gguf, monkeypatch):
    fake_registry.add_model("qwen3:32b", build_model(qwen3_gguf))
    resolve("qwen3:32b")
    fake_registry.reset_stats()
    monkeypatch.setenv("MEMFIT_REF_TTL", "0")
    resolve("qwen3:32b")
    assert len(fake_registry.requests("registry", "/manifests/")) == 1
    assert fake_registry.requests("cdn") == []  # same digest: the cached header


def test_projector_layer_becomes_the_companion(fake_registry, qwen3_gguf, projector_gguf):
    fake_registry.add_model("qwen2.5vl:7b", build_model(qwen3_gguf, projector=projector_gguf, family="qwen25vl"))
    m = resolve("ollama:qwen2.5vl:7b")
    assert len(m.mmproj) == 1 and m.mmproj[0].headers is not None
    assert m.mmproj[0].headers.architecture == "clip" and m.mmproj[0].size_bytes == projector_gguf.stat().st_size


def test_quant_label_falls_back_to_the_tag_without_a_file_type(fake_registry, qwen3_gguf):
    fake_registry.add_model("mine:v1", build_model(qwen3_gguf, config={"file_type": ""}))
    assert resolve("ollama:mine:v1").variants[0].quant == "v1"


def test_quant_flag_must_match_the_tags_quant(fake_registry, qwen3_gguf):
    fake_registry.add_model("qwen3:32b", build_model(qwen3_gguf, file_type="Q4_K_M"))
    assert resolve("qwen3:32b", quant="q4_k_m").variants[0].quant == "Q4_K_M"
    with pytest.raises(ResolveError) as e:
        resolve("qwen3:32b", quant="Q8_0")
    assert "is Q4_K_M" in e.value.message and "ollama.com/library/qwen3/tags" in e.value.hint


# --------------------------------------------------------------------------- errors


def test_unknown_tag_and_unknown_model(fake_registry, qwen3_gguf):
    fake_registry.add_model("qwen3:32b", build_model(qwen3_gguf))
    with pytest.raises(ResolveError) as e:
        resolve("ollama:qwen3:31b")
    assert e.value.message.startswith("unknown Ollama model qwen3:31b: no such model or tag")
    assert "ollama.com/library/qwen3/tags" in e.value.hint
    with pytest.raises(ResolveError) as e:
        resolve("ollama:nosuchmodel:7b")
    assert "unknown Ollama model nosuchmodel:7b: no such model in the registry" in e.value.message


def test_a_bare_unknown_name_mentions_short_names_too(fake_registry):
    with pytest.raises(ResolveError) as e:
        resolve("qwen3-vl-23b:7b")
    assert "neither a short name memfit knows nor an Ollama model" in e.value.message
    assert "qwen3-vl-32b" in e.value.hint


def test_manifest_without_model_layer_says_what_it_is(fake_registry, qwen3_gguf):
    tensors = [{"mediaType": "application/vnd.ollama.image.tensor; name=x; dtype=BF16", "data": b"x"}]
    fake_registry.add_model("newfmt:1b", build_model(qwen3_gguf, model_layer=False, extra_layers=tensors))
    fake_registry.add_model("gpt-oss:120b-cloud", build_model(qwen3_gguf, model_layer=False,
                                                              config={"remote_host": "https://ollama.com:443"}))
    fake_registry.add_model("odd:1", build_model(qwen3_gguf, model_layer=False))
    with pytest.raises(ResolveError, match="safetensors tensor layers"):
        resolve("ollama:newfmt:1b")
    with pytest.raises(ResolveError, match="is a cloud model"):
        resolve("ollama:gpt-oss:120b-cloud")
    with pytest.raises(ResolveError, match="has no model layer"):
        resolve("ollama:odd:1")


def test_registry_down_is_one_line(monkeypatch):
    monkeypatch.setenv("MEMFIT_HTTP_RETRIES", "1")
    monkeypatch.setenv("MEMFIT_HTTP_BACKOFF", "0.01")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    t = time.monotonic()
    with pytest.raises(RegistryError) as e:
        resolve("ollama:qwen3:32b")  # conftest points the registry at a closed port
    assert e.value.message.startswith("cannot connect to the Ollama registry at http://127.0.0.1:9")
    assert "local Ollama store" in e.value.hint and time.monotonic() - t < 5


def test_5xx_is_retried_then_reported(fake_registry, qwen3_gguf):
    fake_registry.add_model("qwen3:32b", build_model(qwen3_gguf))
    fake_registry.add_fault("status", status=503, where="manifest", times=2)
    assert resolve("qwen3:32b").variants[0].headers is not None
    fake_registry.add_fault("status", status=503, where="manifest", times=-1)
    with pytest.raises(RegistryError) as e:
        resolve("qwen3:4b")
    assert "answered HTTP 503 after 4 attempt(s)" in e.value.message


def test_a_reset_blob_read_resumes(fake_registry, qwen3_gguf):
    fake_registry.add_model("qwen3:32b", build_model(qwen3_gguf))
    fake_registry.add_fault("reset", where="cdn", after_bytes=20000)
    h = resolve("qwen3:32b").variants[0].headers
    assert h.tensors == parse_file(qwen3_gguf).tensors


def test_offline_without_cache_says_so(fake_registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RegistryError) as e:
        resolve("ollama:qwen3:32b")
    assert "HF_HUB_OFFLINE is set" in e.value.message and fake_registry.requests() == []


def test_a_damaged_cache_entry_is_fetched_again(fake_registry, qwen3_gguf):
    fake_registry.add_model("qwen3:32b", build_model(qwen3_gguf))
    resolve("qwen3:32b")
    cache = default_cache()
    for entry in (cache.base / "ollama").rglob("*.entry"):
        entry.write_bytes(entry.read_bytes()[:-3] + b"xyz")
    fake_registry.reset_stats()
    assert resolve("qwen3:32b").variants[0].headers is not None
    assert len(fake_registry.requests("registry", "/manifests/")) == 1


# --------------------------------------------------------------------------- the local store


def test_local_store_is_read_without_network(qwen3_gguf, projector_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMA_MODELS", f'"{tmp_path}"')  # Ollama strips quotes too
    model = build_model(qwen3_gguf, projector=projector_gguf, file_type="Q8_0")
    write_store(tmp_path, "qwen3:32b", model)
    m = resolve("qwen3:32b")  # the registry is a closed port: any request would fail
    blob = tmp_path / "blobs" / model.manifest["layers"][0]["digest"].replace(":", "-")
    assert m.local_path == str(blob) and m.variants[0].files == [str(blob)]
    assert m.variants[0].quant == "Q8_0" and m.ollama_name == "qwen3:32b"
    assert m.mmproj and m.mmproj[0].headers is not None and m.mmproj[0].name.startswith(str(tmp_path))
    assert resolve("ollama:QWEN3:32B").variants[0].headers is not None  # names are case-insensitive


def test_a_pull_that_never_finished_falls_back_to_the_registry(fake_registry, qwen3_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path))
    model = build_model(qwen3_gguf)
    write_store(tmp_path, "qwen3:32b", model, link_blobs=False)
    fake_registry.add_model("qwen3:32b", model)
    m = resolve("qwen3:32b")
    assert m.local_path is None and len(fake_registry.requests("registry", "/manifests/")) == 1


def test_a_damaged_local_manifest_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path))
    p = tmp_path / "manifests" / "registry.ollama.ai" / "library" / "qwen3" / "32b"
    p.parent.mkdir(parents=True)
    p.write_text("{not json")
    with pytest.raises(ResolveError) as e:
        resolve("qwen3:32b")
    assert "not valid JSON" in e.value.message and "ollama pull" in e.value.hint


def test_namespaced_models_use_their_path(fake_registry, qwen3_gguf):
    fake_registry.add_model("huihui_ai/qwen3-abliterated:8b", build_model(qwen3_gguf))
    m = resolve("ollama:huihui_ai/qwen3-abliterated:8b")
    assert m.ollama_name == "huihui_ai/qwen3-abliterated:8b"
    assert fake_registry.requests("registry", "/manifests/")[0].path == "/v2/huihui_ai/qwen3-abliterated/manifests/8b"


# --------------------------------------------------------------------------- the CLI


def test_cli_inspect_estimate_and_plan(fake_registry, qwen3_gguf):
    fake_registry.add_model("qwen3:32b", build_model(qwen3_gguf))
    res = memfit("inspect", "ollama:qwen3:32b", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["source"] == "ollama" and data["variants"][0]["quant"] == "Q4_K_M"
    res = memfit("estimate", "qwen3:32b", "-c", "4k", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["total_bytes"] > 0
    res = plan("qwen3:32b", "--device", "rtx-4090", "--ctx", "4k", "--json")
    assert res.exit_code in (0, 3), res.output


def test_cli_errors_are_one_line(fake_registry):
    res = memfit("inspect", "ollama:nosuch:1b")
    assert res.exit_code == 1
    lines = [x for x in logical_lines(res.output) if x]  # error and hint, each wrapped to 80 columns
    assert lines[0].startswith("error: unknown Ollama model nosuch:1b") and len(lines) == 2
    res = memfit("inspect", "ollama:nosuch:1b", "--json")
    assert json.loads(res.output)["error"]["kind"] == "resolve"


def test_module_doc_names_the_media_types():
    assert ollama.MODEL_LAYER == fakeregistry.MODEL_LAYER and ollama.PROJECTOR_LAYER == fakeregistry.PROJECTOR_LAYER


def test_no_credential_is_ever_sent_to_the_registry(fake_registry, qwen3_gguf, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 34)
    fake_registry.add_model("qwen3:32b", build_model(qwen3_gguf))
    resolve("qwen3:32b")
    assert fake_registry.requests() and all(r.authorization is None for r in fake_registry.requests())


def test_an_oversized_config_answer_is_cut_off(fake_registry, qwen3_gguf):
    """A manifest whose config digest points at a big blob (here: the model itself) costs at most
    1 MiB, never the download."""
    model = build_model(qwen3_gguf)
    model.manifest["config"] = dict(model.manifest["layers"][0], mediaType=fakeregistry.CONFIG_TYPE, size=500)
    fake_registry.add_model("qwen3:32b", model)
    with pytest.raises(RegistryError, match="over 1 MiB"):
        resolve("qwen3:32b")
    # what the server pushed before the connection closed (kernel socket buffers included): a
    # fraction of the 28 MiB file; memfit itself reads at most 1 MiB + one network chunk
    assert qwen3_gguf.stat().st_size > 20 * (1 << 20) and fake_registry.bytes_sent() < 10 * (1 << 20)
