"""Instant start: each command imports only what it uses (docs/performance.md has the timings;
these tests check the imports, which do not depend on how loaded the machine is)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from planner.testing.fakehub import FakeHub, model_repo_files

NETWORK = ("httpx2", "huggingface_hub.utils", "huggingface_hub.hf_api", "requests", "filelock")
NUMERIC = ("gguf", "numpy")
SCHEMA = ("pydantic", "planner.device_schema")
TABLES = ("tabulate",)
PLUGINS = ("importlib.metadata",)  # pydantic's plugin search (the console scripts stand in for it)

_CODE = """
import io, json, sys
from planner.cli import run
from planner.cli.startup import skip_pydantic_plugins
skip_pydantic_plugins()  # as the memfit and plan console scripts do
out, sys.stdout = sys.stdout, io.StringIO()
code = run(sys.argv[1:])
sys.stdout = out
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _imports(*args: str, env: dict[str, str] | None = None) -> tuple[int, set[str]]:
    res = subprocess.run([sys.executable, "-c", _CODE, *args], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})}, timeout=120)
    data = json.loads(res.stdout.strip().splitlines()[-1])
    return data["code"], set(data["modules"])


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if n in modules]


def test_version_imports_nothing_heavy():
    code, mods = _imports("--version")
    assert code == 0
    assert _loaded(mods, NETWORK + NUMERIC + SCHEMA + TABLES + ("planner.resolver", "planner.plan")) == []


def test_devices_list_reads_toml_without_the_schema():
    code, mods = _imports("devices")
    assert code == 0
    assert _loaded(mods, NETWORK + NUMERIC + SCHEMA + TABLES + ("huggingface_hub",)) == []


def test_estimate_on_a_local_file_needs_no_network_stack_or_numpy(arch_models):
    code, mods = _imports("estimate", str(arch_models["qwen3"]), "-c", "4k")
    assert code == 0
    assert _loaded(mods, NETWORK + NUMERIC + TABLES + PLUGINS + ("planner.device_schema",)) == []
    # nor the Hub client's settings, logging or a thread pool: one local file is read in place
    assert _loaded(mods, ("planner.hub", "huggingface_hub", "logging", "concurrent.futures")) == []


def test_warm_plan_needs_no_network_stack_or_numpy(fake_hub: FakeHub, tmp_path: Path):
    files = model_repo_files(tmp_path / "m", "Qwen3-8B", ["Q4_K_M", "Q8_0"], arch="qwen3", mmproj=True)
    fake_hub.add_repo("o/Qwen3-8B-GGUF", files)
    args = ("plan", "o/Qwen3-8B-GGUF", "--device", "rtx-4090", "--ctx", "4k")
    env = {k: os.environ[k] for k in ("HF_ENDPOINT", "HF_HOME", "MEMFIT_CACHE_DIR")}
    cold_code, cold = _imports(*args, env=env)
    assert cold_code in (0, 3) and "httpx2" in cold  # the cold run did fetch
    code, mods = _imports(*args, env=env)
    assert code == cold_code
    assert _loaded(mods, NETWORK + NUMERIC + PLUGINS + ("planner.cluster.members",)) == []


@pytest.mark.parametrize("ref", ["ollama:qwen3:32b", "lmstudio:a/b"])
def test_app_references_fail_fast_without_them(ref):
    """No store, a closed registry port (conftest): one line, quickly, from the right module."""
    code, mods = _imports("inspect", ref)
    assert code == 1 and ("planner.ollama" in mods) == ref.startswith("ollama")


def test_pydantic_plugin_loader_stand_in_finds_none_and_serves_the_rest():
    """The console scripts stand in for pydantic's plugin loader (no entry-point scan at start);
    any other name of the real loader still comes from it."""
    code = ("import sys\n"
            "from planner.cli.startup import skip_pydantic_plugins\n"
            "skip_pydantic_plugins()\n"
            "from pydantic import BaseModel\n"
            "class M(BaseModel):\n    a: int\n"
            "import pydantic.plugin._loader as L\n"
            "assert M(a=1).a == 1 and tuple(L.get_plugins()) == ()\n"
            "assert 'importlib.metadata' not in sys.modules\n"
            "print(L.PYDANTIC_ENTRY_POINT_GROUP)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert res.stdout.strip() == "pydantic"


def test_importing_planner_as_a_library_leaves_pydantic_alone():
    """Only the memfit and plan processes stand in for the plugin loader: a program that imports
    planner keeps pydantic's own (its plugins still load)."""
    code = ("import planner, planner.plan_types\n"
            "import pydantic.plugin._loader as L\n"
            "print(type(L.__spec__.loader).__name__ if L.__spec__ else 'stub')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert res.stdout.strip() != "stub"
