"""`plan` end to end: generated GGUF repos served by the local fake Hub, the real resolver,
estimator and shipped device profiles, run through click's CliRunner with the real exit-code guard.

The model is a 32B-class dense Qwen3 (64 layers, 8 KV heads x 128: 256 KiB of f16 KV per token)
in seven quants from Q2_K (~10 GiB) to BF16 (~57 GiB), plus a small vision projector; and a
30B-A3B-class MoE (128 experts, 8 active). Assertions are about decisions (tiers, which quant wins,
what is emitted), with windows wide enough that a calibration change in the estimator does not
flip them silently.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from planner.testing.clirun import plan

from planner.testing import fakehub
from planner.testing import ggufgen
from planner.devices import load_profile

GIB = 1024**3
DENSE_REPO = "test-org/Dense-32B-GGUF"
MOE_REPO = "test-org/MoE-30B-A3B-GGUF"
LADDER = ["Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "BF16"]


@pytest.fixture(scope="session")
def dense_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dense32b")
    shape = ggufgen.ModelShape(n_vocab=32768, n_layer=64, n_embd=5120, n_ff=25600, n_head=40, n_head_kv=8,
                               ctx=131072)
    files = fakehub.model_repo_files(root, "Dense-32B", LADDER, arch="qwen3", shape=shape)
    proj = ggufgen.ModelShape(n_embd=1152, n_ff=4304, n_layer=27, n_head=16)
    files["mmproj-F16.gguf"] = ggufgen.write_model(root / "mmproj-F16.gguf", "clip", proj)[0]
    return files


@pytest.fixture(scope="session")
def moe_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("moe30b")
    shape = ggufgen.ModelShape(n_vocab=32768, n_layer=48, n_embd=2048, n_ff=6144, n_head=32, n_head_kv=4,
                               n_expert=128, n_expert_used=8, n_ff_exp=768, ctx=40960)
    return fakehub.model_repo_files(root, "MoE-30B-A3B", ["Q4_K_M", "Q8_0"], arch="qwen3moe", shape=shape)


@pytest.fixture
def hub(fake_hub, dense_files, moe_files):
    fake_hub.add_repo(DENSE_REPO, dense_files)
    fake_hub.add_repo(MOE_REPO, moe_files)
    return fake_hub


def plan_json(*args: str) -> tuple[int, dict]:
    result = plan(*args, "--json")
    return result.exit_code, json.loads(result.stdout)


def quality(quant: str) -> int:
    return LADDER.index(quant)


# --------------------------------------------------------------------------- carve-out devices


def test_64g_windows_laptop_keeps_the_os_reserve_and_the_model_in_the_carveout(hub):
    code, data = plan_json(DENSE_REPO, "--device", "ai-max-395-64g", "--ctx", "24k")
    assert code == 0
    profile = load_profile("ai-max-395-64g")
    reserve = profile.reserve("windows", "daily")
    rec = data["recommendation"]
    vs = {v["quant"]: v for v in data["variants"]}
    assert data["device"]["os"] == "windows" and data["device"]["use"] == "daily"
    # Q8_0 (~37 GiB at 24k) holds in no carve-out with Windows keeping its reserve: it would spill
    # into shared memory at 2.48x the cost (field A1/A2), so a smaller quant runs in the carve-out
    assert vs["Q8_0"]["placement"] in ("spill", "partial") and vs["BF16"]["tier"] == "no_fit"
    assert rec["placement"] == "fast" and rec["tier"] == "dedicated"
    assert quality(rec["quant"]) == max(quality(q) for q, v in vs.items() if v["placement"] == "fast")
    assert rec["carveout_bytes"] in profile.carveout_options()
    fit = data["fit"]
    assert rec["os_keeps_bytes"] == profile.ram_bytes - rec["carveout_bytes"]
    assert fit["os_free_bytes"] >= 0 and fit["shared_used_bytes"] == 0
    assert rec["os_keeps_bytes"] - fit["host_need_bytes"] >= reserve
    for row in data["carveout_options"]:
        if row["tier"] != "no_fit":
            assert row["os_keeps_bytes"] >= reserve and row["os_free_bytes"] >= 0
    # the 48 GB split would leave Windows only 16 GiB and fails to load: never recommended
    big = [r for r in data["carveout_options"] if r["carveout_bytes"] == 48 * GIB]
    assert big and big[0]["tier"] == "no_fit"

    text = plan(DENSE_REPO, "--device", "ai-max-395-64g", "--ctx", "24k").stdout
    first = text.splitlines()
    assert any(line.startswith(f"Recommendation: {rec['quant']} — fits in dedicated GPU memory") for line in first[:10])
    unwrapped = re.sub(r" `\n +", " ", text)  # PowerShell continuation lines joined
    assert f"llama-server -hf test-org/Dense-32B-GGUF:{rec['quant']} -c 24576 -ngl 999 -fa on" in unwrapped
    assert "shared GPU memory" in text and "only lever" in text


def test_128g_minipc_takes_a_larger_quant_than_the_64g_laptop(hub):
    # at 64k the f16 KV cache alone is 16 GiB: the laptop has to step down from Q8_0, the mini-PC not
    code, data = plan_json(DENSE_REPO, "-d", "ai-max-395-64g", "-d", "ai-max-395-128g-minipc", "-c", "64k")
    assert code == 0
    by_dev = {p["device"]["id"]: p["recommendation"] for p in data["plans"]}
    small, big = by_dev["ai-max-395-64g"], by_dev["ai-max-395-128g-minipc"]
    assert quality(big["quant"]) > quality(small["quant"])
    assert big["quant"] == "Q8_0" and big["tier"] in ("dedicated", "shared")
    text = plan(DENSE_REPO, "-d", "ai-max-395-64g", "-d", "ai-max-395-128g-minipc", "-c", "64k").stdout
    assert "compared on 2 devices" in text and "ai-max-395-128g-minipc" in text


def test_linux_uses_a_small_carveout_and_raises_gtt(hub):
    code, data = plan_json(DENSE_REPO, "-d", "ai-max-395-64g", "--os", "linux", "-c", "24k", "--quant", "Q8_0")
    assert code == 0
    rec = data["recommendation"]
    profile = load_profile("ai-max-395-64g")
    assert rec["carveout_bytes"] == min(profile.carveout_options())
    change = rec["cap_change"]
    assert change and change["setting"] == f"ttm.pages_limit={change['cap_bytes'] // 4096}"
    assert change["cap_bytes"] > change["default_bytes"]
    assert change["cap_bytes"] <= profile.max_gpu_cap_bytes("linux", rec["carveout_bytes"])
    text = plan(DENSE_REPO, "-d", "ai-max-395-64g", "--os", "linux", "-c", "24k", "--quant", "Q8_0").stdout
    assert "Linux kernel" in text and "ttm.pages_limit=" in text


# --------------------------------------------------------------------------- unified devices


def test_mac_128g_fits_bf16_without_touching_the_wired_limit(hub):
    code, data = plan_json(DENSE_REPO, "-d", "apple-m4-max-128g", "-c", "24k")
    assert code == 0
    rec = data["recommendation"]
    assert {v["quant"]: v["tier"] for v in data["variants"]}["BF16"] == "dedicated"
    # BF16 fits, but Q8_0 is the same quality class and decodes twice as fast; the reasons say so
    assert rec["quant"] == "Q8_0" and rec["tier"] == "dedicated"
    assert any("BF16 fits too" in r for r in rec["reasons"])
    assert rec["carveout_bytes"] is None and rec["cap_change"] is None
    assert data["carveout_options"][0]["carveout_bytes"] is None


def test_mac_64g_headless_raises_the_wired_limit_with_sysctl(hub):
    code, data = plan_json(DENSE_REPO, "-d", "apple-m4-max-64g", "--use", "headless", "-c", "80k")
    assert code == 0
    rec = data["recommendation"]
    assert rec["quant"] == "Q8_0" and rec["tier"] == "dedicated"
    cmd = rec["commands"]["cap"]
    mb = int(re.fullmatch(r"sudo sysctl iogpu\.wired_limit_mb=(\d+)", cmd).group(1))
    assert mb * 1024**2 == rec["cap_change"]["cap_bytes"] > rec["cap_change"]["default_bytes"]
    assert mb * 1024**2 >= data["fit"]["gpu_need_bytes"] + data["fit"]["safety_bytes"]


def test_dgx_spark_unified_device_plans_without_carveout(hub):
    code, data = plan_json(MOE_REPO, "-d", "dgx-spark", "-c", "32k")
    assert code == 0
    rec = data["recommendation"]
    assert rec["quant"] == "Q8_0" and rec["tier"] == "dedicated" and rec["carveout_bytes"] is None
    assert data["model"]["moe"] and data["model"]["expert_ratio"] == pytest.approx(8 / 128)


# --------------------------------------------------------------------------- discrete devices


def test_rtx_4090_partial_offload_gives_ngl(hub):
    code, data = plan_json(DENSE_REPO, "-d", "rtx-4090", "-c", "24k", "--quant", "Q4_K_M")
    assert code == 0
    rec = data["recommendation"]
    assert rec["tier"] == "partial_offload" and 0 < rec["n_gpu_layers"] < 64
    assert f"-ngl {rec['n_gpu_layers']} " in rec["commands"]["llama_server"]
    full, data_all = plan_json(DENSE_REPO, "-d", "rtx-4090", "-c", "24k")
    tiers = {v["quant"]: v["tier"] for v in data_all["variants"]}
    assert tiers["Q2_K"] == "dedicated" and tiers["Q8_0"] == "partial_offload"
    assert data_all["recommendation"]["tier"] == "dedicated"  # a full-GPU quant beats partial offload


def test_moe_on_a_24g_card_keeps_experts_on_the_cpu(hub):
    code, data = plan_json(MOE_REPO, "-d", "rtx-3090", "-c", "16k", "--quant", "Q8_0")
    assert code == 0
    rec = data["recommendation"]
    assert rec["tier"] == "partial_offload" and rec["n_cpu_moe"] > 0 and rec["n_gpu_layers"] == -1
    assert f"--n-cpu-moe {rec['n_cpu_moe']}" in rec["commands"]["llama_server"]


# --------------------------------------------------------------------------- exit codes and formats


def test_nothing_fits_exits_3_with_a_plan(hub):
    result = plan(DENSE_REPO, "-d", "ryzen-ai-9-hx-370-32g", "-c", "128k", "--json")
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["recommendation"]["tier"] == "no_fit" and data["fits"] is False
    text = plan(DENSE_REPO, "-d", "ryzen-ai-9-hx-370-32g", "-c", "128k")
    assert text.exit_code == 3 and "nothing fits" in text.stdout
    # comparing devices: 0 as long as one of them has a plan that fits; each plan says which
    both = plan(DENSE_REPO, "-d", "ryzen-ai-9-hx-370-32g", "-d", "dgx-spark", "-c", "128k", "--json")
    assert both.exit_code == 0
    assert [p["fits"] for p in json.loads(both.stdout)["plans"]] == [False, True]


def test_unreachable_min_tps_exits_3(hub):
    result = plan(DENSE_REPO, "-d", "rtx-4090", "-c", "8k", "--min-tps", "100000")
    assert result.exit_code == 3 and "--min-tps" in result.stdout


@pytest.mark.parametrize("ctx", ["24k", "24K", "24576"])
def test_context_spellings(hub, ctx):
    code, data = plan_json(DENSE_REPO, "-d", "dgx-spark", "-c", ctx, "--quant", "Q4_K_M")
    assert code == 0 and data["ctx"] == 24576 and data["recommendation"]["ctx"] == 24576


def test_128k_context_parses(hub):
    code, data = plan_json(DENSE_REPO, "-d", "dgx-spark", "-c", "128k", "--quant", "Q4_K_M")
    assert data["ctx"] == 131072


@pytest.mark.parametrize("bad", ["24kk", "abc", "-5", "1.5", "maximum"])
def test_nonsense_context_is_a_usage_error(hub, bad):
    result = plan(DENSE_REPO, "-d", "dgx-spark", "-c", bad)
    assert result.exit_code == 2
    assert "context" in result.output and "Traceback" not in result.output


def test_missing_device_and_unknown_device(hub):
    assert plan(DENSE_REPO, "-c", "8k").exit_code == 2
    result = plan(DENSE_REPO, "-d", "no-such-box", "-c", "8k", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["kind"] == "device"


def test_json_shape_single_and_several_devices(hub):
    code, one = plan_json(DENSE_REPO, "-d", "ai-max-395-64g", "-c", "24k")
    rec = one["recommendation"]
    for key in ("quant", "carveout_bytes", "tier", "total_bytes"):
        assert key in rec
    assert rec["tier"] in ("dedicated", "shared", "partial_offload", "no_fit")
    assert isinstance(rec["total_bytes"], int) and rec["total_bytes"] > 0
    assert len(one["variants"]) == len(LADDER)
    for v in one["variants"]:
        assert {"quant", "tier", "total_bytes", "max_ctx"} <= set(v)
        assert v["tier"] in ("dedicated", "shared", "partial_offload", "no_fit")
    code, many = plan_json(DENSE_REPO, "-d", "ai-max-395-64g", "-d", "rtx-4090", "-c", "24k")
    assert [p["device"]["id"] for p in many["plans"]] == ["ai-max-395-64g", "rtx-4090"]
    assert many["plans"][1]["recommendation"]["carveout_bytes"] is None
    assert all("variants" in p for p in many["plans"])


def test_markdown_output_for_a_forum_post(hub):
    result = plan(DENSE_REPO, "-d", "ai-max-395-64g", "-c", "24k", "--format", "markdown")
    assert result.exit_code == 0
    md = result.stdout
    assert md.startswith("## test-org/Dense-32B-GGUF")
    assert "| quant" in md and "UMA frame buffer" in md
    assert "```sh\nllama-server -hf test-org/Dense-32B-GGUF:" in md
    assert re.search(r"^\|[- |]+\|$", md, re.MULTILINE)


def test_vision_projector_is_sized_and_can_be_turned_off(hub):
    code, data = plan_json(DENSE_REPO, "-d", "dgx-spark", "-c", "8k", "--quant", "Q4_K_M")
    assert data["model"]["mmproj"] == "mmproj-F16.gguf" and data["fit"]["gpu"]["mmproj_bytes"] > 0
    code, off = plan_json(DENSE_REPO, "-d", "dgx-spark", "-c", "8k", "--quant", "Q4_K_M", "--mmproj", "none")
    assert off["model"]["mmproj"] is None and off["fit"]["gpu"]["mmproj_bytes"] == 0
    assert "--no-mmproj" in off["recommendation"]["commands"]["llama_server"]
    assert off["recommendation"]["total_bytes"] < data["recommendation"]["total_bytes"]


def test_kv_q8_flags_and_ollama_settings(hub):
    code, data = plan_json(DENSE_REPO, "-d", "ai-max-395-128g-minipc", "-c", "32k", "--kv", "q8_0", "--quant", "Q6_K")
    c = data["recommendation"]["commands"]
    assert "-ctk q8_0 -ctv q8_0" in c["llama_server"]
    assert "$env:OLLAMA_KV_CACHE_TYPE='q8_0'" in c["ollama"][0]  # the mini-PC plans for Windows: PowerShell
    assert "ollama run hf.co/test-org/Dense-32B-GGUF:Q6_K" in c["ollama"]
    assert c["lm_studio"]["V Cache Quantization Type"] == "Q8_0"


def test_assumed_os_reserve_is_stated_in_text_markdown_and_json(hub):
    # the RAM the OS keeps is the number users most often want to change: every format states it
    line = "the OS and your apps keep {} of RAM (windows, {} use; change with --use or --os)"
    for use, gib in (("daily", "16.00 GiB"), ("headless", "8.00 GiB")):
        args = (DENSE_REPO, "-d", "ai-max-395-64g", "-c", "8k", "--quant", "Q4_K_M", "--use", use)
        text = plan(*args).stdout
        assert "assumed: " + line.format(gib, use) in text.replace("\n           ", " ")
        md = plan(*args, "--format", "markdown").stdout
        assert "\nAssumed: " + line.format(gib, use) in md
        code, data = plan_json(*args)
        assert data["device"]["reserve_bytes"] == int(gib.split(".")[0]) * GIB
        assert data["device"]["assumptions"][0] == line.format(gib, use)
    # several devices: one use for all (the first device's), each device's reserve for that use, in both formats
    args = (DENSE_REPO, "-d", "ai-max-395-64g", "-d", "rtx-4090", "-c", "8k", "--quant", "Q4_K_M")
    for out in (plan(*args).stdout, plan(*args, "--format", "markdown").stdout):
        out = out.replace("\n           ", " ")
        assert out.count(line.format("16.00 GiB", "daily")) == 2


def test_auto_on_a_small_unrecognised_apu_plans_an_8b_model(tmp_path, monkeypatch):
    """A 16 GB Phoenix mini-PC no shipped profile matches: the generic profile's reserve scales with
    the RAM (4 GiB for desktop use, not the 8 GiB of a 32+ GB machine), so an 8B Q4 model plans."""
    from planner.testing import estimator_models as em
    machines = Path(__file__).resolve().parent / "fixtures" / "machines"
    monkeypatch.setenv("MEMFIT_PROBE_ROOT", str(machines / "phoenix-linux-16g"))
    model = tmp_path / "Llama-3.1-8B-Q4_K_M.gguf"
    em.llama31_8b(model, n_vocab=128256)
    code, data = plan_json(str(model), "-d", "auto", "-c", "8k")
    assert code == 0 and data["fits"], data["recommendation"]["reasons"]
    assert data["device"]["reserve_bytes"] == 4 * GIB
    assert data["recommendation"]["tier"] in ("dedicated", "shared")
    assert "4.00 GiB of RAM (linux, desktop use" in data["device"]["assumptions"][0]
