"""`memfit estimate --device ID|auto|FILE`: the device's backend, where this exact breakdown lands
on the device as configured now (pools, tier, headroom), the plan hint, --json device_fit, exit 0.

Models: the real-shaped Qwen3-VL-32B headers (planner/testing/data/qwen3-vl-32b.json, sparse files): Q4_K_M
puts ~20.5 GiB on the GPU at 8k, Q8_0 ~34 GiB. Machines: the recorded trees in
tests/fixtures/machines/, replayed by `--device auto` through $MEMFIT_PROBE_ROOT (planner.probe.env_for).
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from planner.testing import realmodels
from planner.testing.clirun import logical_lines, memfit
from planner.device_schema import GIB, MIB
from planner.devices import load_profile

MACHINES = Path(__file__).resolve().parent / "fixtures" / "machines"
SPEC = realmodels.load_spec("qwen3-vl-32b")
TOP_LEVEL = ("weights_bytes", "kv_bytes", "recurrent_bytes", "compute_bytes", "output_bytes", "total_bytes")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMFIT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("MEMFIT_PROBE_ROOT", raising=False)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("qwen3vl")
    out = {}
    for q in ("Q4_K_M", "Q8_0"):
        out[q] = str(realmodels.write_variant(SPEC, q, root / realmodels.file_name(SPEC, q)))
    out["mmproj"] = str(realmodels.write_mmproj(SPEC, root / SPEC["mmproj"]["file"]))
    return out


def on_machine(monkeypatch, name: str) -> None:
    monkeypatch.setenv("MEMFIT_PROBE_ROOT", str(MACHINES / name))


def est_json(*args: str) -> dict:
    res = memfit("estimate", *args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def gpu_side(d: dict) -> dict:
    return next(x for x in d["devices"] if x["device"] == "gpu")


def pools(fit: dict) -> dict[str, dict]:
    return {p["name"]: p for p in fit["pools"]}


def check(fit: dict, name: str) -> dict:
    return next(c for c in fit["checks"] if c["name"] == name)


# --------------------------------------------------------------------------- --device auto


def test_auto_strix_halo_512m_raised_gtt_spills_into_gtt(models, monkeypatch):
    """Linux Strix Halo with a 512 MB carve-out and GTT raised to 120 GiB: the live values are the
    pools, the default backend is RADV Vulkan, and 20 GiB on the GPU is the `shared` tier."""
    on_machine(monkeypatch, "strix-halo-linux-512m-gtt")
    d = est_json(models["Q4_K_M"], "-c", "8k", "--device", "auto")
    fit = d["device_fit"]
    assert fit["device"] == "auto" and fit["live"] and fit["based_on"] == "framework-desktop-395-128g"
    assert (fit["os"], fit["backend"], fit["estimator_backend"]) == ("linux", "vulkan (radv)", "vulkan")
    assert d["settings"]["backend"] == "vulkan"
    assert fit["carveout_bytes"] == 512 * MIB and fit["carveout_source"] == "in effect on this machine"
    assert fit["gpu_cap_bytes"] == 120 * GIB and fit["gpu_capacity_bytes"] == 120 * GIB + 512 * MIB
    p = pools(fit)
    assert p["dedicated"]["capacity_bytes"] == 512 * MIB and p["dedicated"]["headroom_bytes"] == 0
    # the GPU side = the breakdown's GPU buffers + runtime overhead, carve-out first, the rest in GTT
    g = gpu_side(d)
    buffers = sum(g[k] for k in ("weights_bytes", "kv_bytes", "recurrent_bytes", "compute_bytes", "output_bytes",
                                 "mmproj_bytes"))
    assert fit["gpu_need_bytes"] == buffers + fit["overhead_bytes"]
    assert fit["overhead_bytes"] >= g["overhead_bytes"]
    assert p["dedicated"]["used_bytes"] + p["shared"]["used_bytes"] == fit["gpu_need_bytes"]
    assert p["shared"]["headroom_bytes"] == 120 * GIB - p["shared"]["used_bytes"]
    assert fit["tier"] == "shared" and fit["fits"]
    assert fit["gpu_margin_bytes"] == fit["gpu_capacity_bytes"] - fit["gpu_need_bytes"] - fit["safety_bytes"]
    assert fit["safety_bytes"] >= 1024 * MIB  # llama.cpp's --fit-target, plus the estimate margins
    # the OS reserve is the profile's for the probed use; host pool = what the OS sees - reserve
    prof = load_profile("auto", probe_root=MACHINES / "strix-halo-linux-512m-gtt")
    assert fit["reserve_bytes"] == prof.reserve("linux", prof.default_use)
    assert p["host"]["capacity_bytes"] == fit["os_visible_bytes"] - fit["reserve_bytes"]
    assert all(check(fit, n)["ok"] for n in ("gpu_memory", "os_reserve"))
    assert fit["plan_command"].startswith("memfit plan ") and "--device auto" in fit["plan_command"]


def test_auto_strix_halo_64g_carveout_is_dedicated(models, monkeypatch):
    on_machine(monkeypatch, "strix-halo-linux-64g-carveout")
    fit = est_json(models["Q4_K_M"], "-c", "8k", "-d", "auto")["device_fit"]
    assert fit["carveout_bytes"] == 64 * GIB and fit["tier"] == "dedicated"
    p = pools(fit)
    assert p["shared"]["used_bytes"] == 0 and p["dedicated"]["used_bytes"] == fit["gpu_need_bytes"]
    # the desktop's GPU memory comes off the carve-out first (planner/data/memory.toml)
    assert p["dedicated"]["headroom_bytes"] == 64 * GIB - fit["gpu_reserve_bytes"] - fit["gpu_need_bytes"]


def test_auto_windows_auto_carveout_no_fit_still_exits_0(models, monkeypatch):
    """Windows, BIOS 'Auto' (carve-out 0), 64 GB: the GPU may use half of what Windows sees. Q8_0
    does not fit; estimate says so and still exits 0 (plan is the command with exit 3)."""
    on_machine(monkeypatch, "strix-halo-windows-auto")
    res = memfit("estimate", models["Q8_0"], "-c", "8k", "--device", "auto")
    assert res.exit_code == 0, res.output
    assert "on auto" in res.output and "tier no_fit" in res.output and "GPU short" in res.output
    assert "carve-out reads 0" in res.output
    fit = est_json(models["Q8_0"], "-c", "8k", "--device", "auto")["device_fit"]
    assert fit["os"] == "windows" and fit["carveout_bytes"] == 0
    assert not fit["fits"] and fit["tier"] == "no_fit"
    gpu = check(fit, "gpu_memory")
    assert not gpu["ok"] and gpu["margin_bytes"] < 0
    assert fit["gpu_need_bytes"] + fit["safety_bytes"] - fit["gpu_capacity_bytes"] == -gpu["margin_bytes"]
    assert pools(fit)["shared"]["headroom_bytes"] < 0
    # the smaller quant fits in the shared window
    assert est_json(models["Q4_K_M"], "-c", "8k", "--device", "auto")["device_fit"]["tier"] == "shared"


@pytest.mark.parametrize("machine, backend, estimator", [
    ("mac-m4-max-128g", "metal", "metal"),
    ("rtx-4090-desktop", "cuda", "cuda"),
    ("dgx-spark", "cuda", "cuda"),
])
def test_auto_default_backend_is_the_devices_first(models, monkeypatch, machine, backend, estimator):
    on_machine(monkeypatch, machine)
    d = est_json(models["Q4_K_M"], "-c", "8k", "-d", "auto")
    assert d["device_fit"]["backend"] == backend and d["settings"]["backend"] == estimator


def test_auto_rtx_4090_full_offload_vs_partial(models, monkeypatch):
    on_machine(monkeypatch, "rtx-4090-desktop")
    full = est_json(models["Q8_0"], "-c", "8k", "-d", "auto")["device_fit"]
    assert full["tier"] == "no_fit" and pools(full)["vram"]["headroom_bytes"] < 0
    part = est_json(models["Q8_0"], "-c", "8k", "-d", "auto", "-ngl", "30")["device_fit"]
    assert part["tier"] == "partial_offload" and part["fits"]
    assert pools(part)["vram"]["used_bytes"] < pools(full)["vram"]["used_bytes"]
    assert pools(part)["host"]["used_bytes"] > pools(full)["host"]["used_bytes"]


def test_auto_cpu_only_board_has_no_gpu_pool_and_no_plan_hint(models, monkeypatch):
    on_machine(monkeypatch, "unknown-arm-board")
    res = memfit("estimate", models["Q4_K_M"], "-c", "8k", "-d", "auto")
    assert res.exit_code == 0, res.output
    assert "backend cpu" in res.output and "memfit plan" in res.output and "nothing to place" in res.output
    fit = est_json(models["Q4_K_M"], "-c", "8k", "-d", "auto")["device_fit"]
    assert fit["backend"] == "cpu" and fit["gpu_need_bytes"] == 0 and fit["plan_command"] is None
    assert [p["name"] for p in fit["pools"]] == ["host"] and fit["gpu_cap_bytes"] is None
    assert fit["tier"] == "no_fit"  # 20 GiB of weights on an 8 GB board


# --------------------------------------------------------------------------- named devices, overrides


def test_breakdown_unchanged_and_device_fit_null_without_device(models):
    plain = est_json(models["Q4_K_M"], "-c", "8k", "--backend", "vulkan")
    dev = est_json(models["Q4_K_M"], "-c", "8k", "--device", "ai-max-395-64g")
    assert plain["device_fit"] is None and dev["device_fit"] is not None
    for key in TOP_LEVEL:
        assert isinstance(dev[key], int) and dev[key] == plain[key], key
    assert est_json(models["Q4_K_M"], "-c", "8k")["settings"]["backend"] == "cuda"  # default without a device


def test_explicit_backend_wins_and_a_driver_picks_its_entry(models):
    rocm = est_json(models["Q4_K_M"], "-c", "8k", "-d", "ai-max-395-128g-minipc", "--os", "linux", "--backend", "rocm")
    assert rocm["settings"]["backend"] == "rocm" and rocm["device_fit"]["backend"] == "rocm"
    prof = load_profile("ai-max-395-128g-minipc")
    assert rocm["device_fit"]["overhead_bytes"] >= prof.backend("rocm", "linux").overhead_bytes  # the HIP floor
    amdvlk = est_json(models["Q4_K_M"], "-c", "8k", "-d", "ai-max-395-128g-minipc", "--os", "linux",
                      "--backend", "amdvlk")["device_fit"]
    assert amdvlk["backend"] == "vulkan (amdvlk)" and amdvlk["estimator_backend"] == "vulkan"
    limit = check(amdvlk, "max_alloc")  # AMDVLK's 2 GiB per allocation
    assert limit["ok"] and "2.00 GiB" in limit["message"]
    assert "--backend amdvlk" in amdvlk["plan_command"]


def test_cpu_backend_on_a_gpu_device_fits_in_system_ram(models):
    fit = est_json(models["Q4_K_M"], "-c", "8k", "-d", "dgx-spark", "--backend", "cpu")["device_fit"]
    assert fit["tier"] == "cpu_only" and fit["fits"] and fit["gpu_need_bytes"] == 0
    assert [p["name"] for p in fit["pools"]] == ["host"]
    assert "--backend" not in fit["plan_command"]  # plan places models on a GPU


def test_overrides_carveout_gpu_cap_use(models):
    base = est_json(models["Q8_0"], "-c", "8k", "-d", "ai-max-395-64g", "--os", "linux")["device_fit"]
    assert base["carveout_source"].startswith("factory default")
    big = est_json(models["Q8_0"], "-c", "8k", "-d", "ai-max-395-64g", "--os", "linux", "--carveout", "48g")["device_fit"]
    assert big["carveout_bytes"] == 48 * GIB and big["carveout_source"] == "--carveout"
    assert pools(big)["dedicated"]["capacity_bytes"] == 48 * GIB - big["gpu_reserve_bytes"]
    assert big["os_visible_bytes"] == base["os_visible_bytes"] - (48 * GIB - base["carveout_bytes"])
    cap = est_json(models["Q8_0"], "-c", "8k", "-d", "ai-max-395-64g", "--os", "linux", "--gpu-cap", "50g")["device_fit"]
    assert cap["gpu_cap_bytes"] == 50 * GIB and cap["gpu_cap_source"] == "--gpu-cap"
    head = est_json(models["Q8_0"], "-c", "8k", "-d", "ai-max-395-64g", "--os", "linux", "--use", "headless")["device_fit"]
    prof = load_profile("ai-max-395-64g")
    assert head["use"] == "headless" and head["reserve_bytes"] == prof.reserve("linux", "headless")
    # an unknown firmware option is accepted with the override's note
    odd = est_json(models["Q4_K_M"], "-c", "8k", "-d", "ai-max-395-64g", "--carveout", "40g")["device_fit"]
    assert any("not among the firmware options" in n for n in odd["notes"])


def test_device_file_and_toml_path(models, tmp_path):
    src = Path(__file__).resolve().parents[1] / "profiles" / "rtx-4090.toml"
    mine = tmp_path / "my-card.toml"
    mine.write_text(src.read_text().replace('id = "rtx-4090"', 'id = "my-card"'))
    a = est_json(models["Q4_K_M"], "-c", "8k", "--device-file", str(mine))["device_fit"]
    b = est_json(models["Q4_K_M"], "-c", "8k", "--device", str(mine))["device_fit"]
    assert a["device"] == b["device"] == "my-card" and a["tier"] == b["tier"]
    assert "--device-file" in a["plan_command"]


def test_mmproj_counts_on_the_gpu(models):
    without = est_json(models["Q4_K_M"], "-c", "8k", "-d", "apple-m4-max-64g")["device_fit"]
    with_mm = est_json(models["Q4_K_M"], "-c", "8k", "-d", "apple-m4-max-64g", "--mmproj", models["mmproj"])
    grew = with_mm["device_fit"]["gpu_need_bytes"] - without["gpu_need_bytes"]
    assert grew >= gpu_side(with_mm)["mmproj_bytes"] > 0


def test_text_section_and_the_hint_is_a_working_plan_command(models):
    res = memfit("estimate", models["Q4_K_M"], "-c", "8k", "-d", "ai-max-395-128g-minipc", "--os", "linux",
                 "--use", "headless")
    assert res.exit_code == 0, res.output
    out = res.output
    section = out[out.index("\non ai-max-395-128g-minipc"):]
    for word in ("carve-out (dedicated)", "GTT (shared)", "system RAM (CPU side)", "capacity", "headroom",
                 "OS reserve", "tier dedicated", "for a recommendation"):
        assert word in section, word
    assert "weights" in out[:out.index("\non ai-max")]  # the breakdown first, unchanged
    # the hint as a shell reads it: one line, or lines joined by ` \` continuations (80 columns)
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("memfit plan "))
    end = next(i for i in range(start, len(lines)) if not lines[i].endswith("\\"))
    hint = "\n".join(lines[start:end + 1])
    argv = subprocess.run(["bash", "-c", 'printf "%s\\n" ' + hint.strip()], capture_output=True, text=True,
                          check=True).stdout.splitlines()[1:]
    assert argv == shlex.split(hint.replace("\\\n", " "))[1:]
    assert argv[argv.index("--use") + 1] == "headless" and argv[argv.index("--ctx") + 1] == "8k"
    plan = memfit(*argv, "--json")
    assert plan.exit_code in (0, 3), plan.output
    planned = json.loads(plan.output)
    assert planned["device"]["id"] == "ai-max-395-128g-minipc"
    assert (planned["device"]["os"], planned["device"]["use"], planned["ctx"]) == ("linux", "headless", 8192)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("args, words", [
    (("--ram", "64g"), "--ram describes a device"),
    (("--carveout", "32g", "--use", "daily"), "--carveout, --use describe a device"),
    (("-d", "ai-max-395-64g", "--device-file", "x.toml"), "not both"),
])
def test_usage_errors_exit_2(models, args, words):
    res = memfit("estimate", models["Q4_K_M"], *args)
    assert res.exit_code == 2 and words in res.output


def test_backend_errors_are_usage_errors_with_a_hint(models):
    res = memfit("estimate", models["Q4_K_M"], "-d", "apple-m4-max-64g", "--backend", "cuda", "--json")
    err = json.loads(res.output)["error"]
    assert res.exit_code == 2 and "not listed for apple-m4-max-64g" in err["message"] and "metal" in err["hint"]
    res = memfit("estimate", models["Q4_K_M"], "--backend", "amdvlk")
    assert res.exit_code == 2 and "add --device" in " ".join(logical_lines(res.output))
    res = memfit("estimate", models["Q4_K_M"], "-d", "no-such-box")
    assert res.exit_code == 1 and "unknown device" in res.output
