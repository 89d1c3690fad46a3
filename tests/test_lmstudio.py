"""LM Studio's models folder as references (`lmstudio:publisher/repo[:QUANT]`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.testing import fakehub
from planner.testing.clirun import memfit
from planner import lmstudio
from planner.errors import ResolveError
from planner.resolver import resolve


@pytest.fixture(scope="module")
def lms_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder as LM Studio lays it out: <publisher>/<repo>/<file>.gguf."""
    root = tmp_path_factory.mktemp("lms")
    fakehub.model_repo_files(root / "lmstudio-community" / "Qwen3-8B-GGUF", "Qwen3-8B", ["Q4_K_M", "Q8_0"],
                             arch="qwen3", mmproj=True)
    fakehub.model_repo_files(root / "unsloth" / "Qwen3-4B-GGUF", "Qwen3-4B", ["Q4_K_M"], arch="qwen3")
    fakehub.model_repo_files(root / "bartowski" / "Qwen3-4B-GGUF", "Qwen3-4B", ["Q6_K"], arch="qwen3")
    return root


@pytest.fixture
def lms(lms_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(lmstudio.ENV, str(lms_root))
    return lms_root


def test_publisher_repo_lists_its_variants_and_projector(lms):
    m = resolve("lmstudio:lmstudio-community/Qwen3-8B-GGUF")
    assert m.source == "local" and m.lmstudio_name == "lmstudio-community/Qwen3-8B-GGUF"
    assert [v.quant for v in m.variants] == ["Q4_K_M", "Q8_0"] and all(v.headers for v in m.variants)
    assert m.mmproj and m.variants[0].files[0].startswith(str(lms))


def test_quant_and_case_and_repo_only(lms):
    m = resolve("lmstudio:LMSTUDIO-COMMUNITY/qwen3-8b-gguf:q8_0")
    assert [v.quant for v in m.variants] == ["Q8_0"]
    assert resolve("lmstudio:Qwen3-8B-GGUF").lmstudio_name == "lmstudio-community/Qwen3-8B-GGUF"


def test_a_repo_under_two_publishers_needs_the_publisher(lms):
    with pytest.raises(ResolveError) as e:
        resolve("lmstudio:Qwen3-4B-GGUF")
    assert "several publishers" in e.value.message and "bartowski/Qwen3-4B-GGUF" in e.value.message
    assert resolve("lmstudio:unsloth/Qwen3-4B-GGUF").variants[0].quant == "Q4_K_M"


def test_unknown_model_suggests_what_is_there(lms):
    with pytest.raises(ResolveError) as e:
        resolve("lmstudio:lmstudio-community/Qwen3-8B-GUF")
    assert "no LM Studio model" in e.value.message and "lmstudio:lmstudio-community/Qwen3-8B-GGUF" in e.value.hint


def test_missing_quant_lists_the_available_ones(lms):
    with pytest.raises(ResolveError) as e:
        resolve("lmstudio:lmstudio-community/Qwen3-8B-GGUF:Q5_K_M")
    assert "available: Q4_K_M, Q8_0" in e.value.message


def test_no_models_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(lmstudio.ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    with pytest.raises(ResolveError) as e:
        resolve("lmstudio:a/b")
    assert "no LM Studio models folder found" in e.value.message and lmstudio.ENV in e.value.hint


def test_folder_discovery_settings_pointer_and_old_cache(lms_root, tmp_path, monkeypatch):
    monkeypatch.delenv(lmstudio.ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    old = tmp_path / ".cache" / "lm-studio" / "models"
    old.mkdir(parents=True)
    assert lmstudio.models_dirs() == [old]
    home = tmp_path / "elsewhere" / "lmstudio-home"
    (home / "models").mkdir(parents=True)
    (tmp_path / ".lmstudio-home-pointer").write_text(str(home) + "\n")
    assert lmstudio.models_dirs() == [home / "models", old]
    (home / "settings.json").write_text(json.dumps({"downloadsFolder": str(lms_root)}))
    assert lmstudio.models_dirs()[0] == lms_root
    assert resolve("lmstudio:unsloth/Qwen3-4B-GGUF").variants[0].quant == "Q4_K_M"


def test_cli_inspect_and_estimate(lms):
    res = memfit("inspect", "lmstudio:lmstudio-community/Qwen3-8B-GGUF", "--json")
    assert res.exit_code == 0, res.output
    assert [v["quant"] for v in json.loads(res.output)["variants"]] == ["Q4_K_M", "Q8_0"]
    res = memfit("estimate", "lmstudio:lmstudio-community/Qwen3-8B-GGUF:Q4_K_M", "-c", "4k")
    assert res.exit_code == 0, res.output
    res = memfit("inspect", "lmstudio:nobody/nothing")
    assert res.exit_code == 1 and res.output.startswith("error: no LM Studio model")
