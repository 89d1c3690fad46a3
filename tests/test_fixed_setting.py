"""--carveout and --gpu-cap reach the planner through one typed channel, PlanRequest.carveout_bytes /
gpu_cap_bytes (the profile's overrides are display words only): with them the plan weighs that
split or that cap alone, says so, and never suggests another."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.testing.clirun import plan

from planner.testing import fakehub
from planner.testing import ggufgen

GIB = 1024**3


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fixed_setting")
    shape = ggufgen.ModelShape(n_vocab=32768, n_layer=64, n_embd=5120, n_ff=25600, n_head=40, n_head_kv=8,
                               ctx=131072)
    fakehub.model_repo_files(root, "Dense-32B", ["Q4_K_M", "Q8_0", "BF16"], arch="qwen3", shape=shape)
    return root


def plan_json(*args: str) -> tuple[int, dict]:
    result = plan(*args, "--json")
    return result.exit_code, json.loads(result.stdout)


def test_carveout_fixes_the_split(model_dir: Path) -> None:
    _, free = plan_json(str(model_dir), "-d", "ai-max-395-64g", "--ctx", "8k")
    assert len(free["carveout_options"]) > 1  # without the flag every firmware option is weighed
    _, data = plan_json(str(model_dir), "-d", "ai-max-395-64g", "--ctx", "8k", "--carveout", "32g")
    p = data
    assert [o["carveout_bytes"] for o in p["carveout_options"]] == [32 * GIB]
    assert {c["carveout_bytes"] for c in p["candidates"]} == {32 * GIB}
    assert p["recommendation"]["carveout_bytes"] == 32 * GIB


def test_gpu_cap_fixes_the_cap(model_dir: Path) -> None:
    args = (str(model_dir), "-d", "ai-max-395-128g-minipc:linux", "--ctx", "32k")
    _, free = plan_json(*args)
    assert any(c["cap_raised"] for c in free["candidates"])  # BF16 needs a raised GTT
    _, data = plan_json(*args, "--gpu-cap", "40g")
    p = data
    assert p["recommendation"]["cap_change"] is None
    assert all(c["gpu_cap_bytes"] <= 40 * GIB and not c["cap_raised"] for c in p["candidates"])  # less where the OS sees less
    assert not any(f["code"] == "cap_change" for f in p["recommendation"]["facts"])


def test_a_workload_keeps_the_fixed_cap_on_every_setting(model_dir: Path) -> None:
    _, data = plan_json(f"{model_dir}@8k", f"{model_dir}@16k", "-d", "ai-max-395-128g-minipc:linux", "--gpu-cap", "40g")
    rows = data["devices"][0]["rows"]
    assert rows and all(r["setting"]["cap_change"] is None for r in rows)
    assert all(r["setting"]["gpu_cap_bytes"] <= 40 * GIB and "(--gpu-cap)" in r["setting"]["label"] for r in rows)
