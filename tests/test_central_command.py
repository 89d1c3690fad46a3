"""The central command on a real-shaped model: `plan qwen3-vl-32b --device ai-max-395-64g --ctx 24k`.

The repo is what the alias resolves to first (planner/data/aliases.toml: Qwen/Qwen3-VL-32B-Instruct-GGUF),
built from planner/testing/data/qwen3-vl-32b.json: Qwen3-VL-32B's real GGUF metadata and tensor layout, the
quant mixes llama.cpp's own quantizer (b11434, `llama-quantize --dry-run`) picks for Q3_K_M ... Q8_0,
the BF16 conversion, and the real-shaped vision projector (27-block ViT + mergers, ~0.6B parameters,
mmproj-F16 ~1.2 GB). Files are sparse (exact headers, a hole for the weights) and served by the
local fake Hub, so the whole path runs: alias -> Hub listing -> range reads of the headers ->
estimator -> fit solver -> planner -> report.

Assertions are the decisions a user acts on, each checked against arithmetic done here from the
spec (tensor bytes, KV cells x layers x heads x dims) and the device profile, not against numbers
copied from a run.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import pytest

from planner.testing.clirun import plan

from planner.testing import realmodels
from planner.devices import load_profile

GIB = 1024**3
SPEC = realmodels.load_spec("qwen3-vl-32b")
REPO = SPEC["repo"]
MMPROJ = SPEC["mmproj"]["file"]
LADDER = ["Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "BF16"]  # worst to best quality
CTX = 24576
# f16 K and V (2 bytes each) x 64 layers x 8 KV heads x 128 dims x 24576 cells
KV_24K = 64 * 8 * 128 * 2 * 2 * CTX
TEXT_WIDTH = 80  # the default when stdout is not a terminal (planner/report/layout.py)


def tensor_bytes(quant: str | None = None) -> int:
    part = SPEC["mmproj"] if quant is None else SPEC
    return sum(realmodels.nbytes(t) for t in realmodels.tensors(part, quant))


@pytest.fixture(scope="session")
def qwen3vl_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return realmodels.repo_files(SPEC, tmp_path_factory.mktemp("qwen3-vl-32b"))


@pytest.fixture
def hub(fake_hub, qwen3vl_files):
    fake_hub.add_repo(REPO, qwen3vl_files)
    return fake_hub


def plan_json(*args: str) -> dict:
    result = plan(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def variants(data: dict) -> dict[str, dict]:
    return {v["quant"]: v for v in data["variants"]}


# --------------------------------------------------------------------------- the fixture is the real model


def test_the_repo_is_real_shaped():
    meta = {k: v[-1] for k, v in SPEC["metadata"].items()}
    assert (meta["qwen3vl.block_count"], meta["qwen3vl.attention.head_count_kv"],
            meta["qwen3vl.attention.key_length"], meta["qwen3vl.context_length"]) == (64, 8, 128, 262144)
    # published file sizes of the Qwen3-VL-32B GGUFs: Q4_K_M 19.8 GB, Q8_0 34.8 GB, BF16 65.5 GB
    assert tensor_bytes("Q4_K_M") == pytest.approx(19.8e9, rel=0.01)
    assert tensor_bytes("Q8_0") == pytest.approx(34.8e9, rel=0.01)
    assert tensor_bytes("BF16") == pytest.approx(65.5e9, rel=0.01)
    sizes = [tensor_bytes(q) for q in LADDER]
    assert sizes == sorted(sizes)
    # the quantizer's mixes, not one type everywhere: Q4_K_M keeps attn_v / ffn_down at Q6_K in some layers
    q4 = realmodels.tensors(SPEC, "Q4_K_M")
    assert {t for n, _, t in q4 if n.endswith("attn_v.weight")} == {"Q4_K", "Q6_K"}
    # vision tower: ~0.6B parameters, mmproj-F16 ~1.2 GB
    mm = realmodels.tensors(SPEC["mmproj"])
    n_params = sum(math.prod(s) for _, s, _ in mm)
    assert 0.55e9 < n_params < 0.65e9 and 1.1e9 < tensor_bytes() < 1.3e9
    assert sum(1 for n, _, _ in mm if n.endswith("attn_qkv.weight")) == 27


# --------------------------------------------------------------------------- the central command


def test_central_command_json_decisions(hub):
    """The owner of this laptop (field-evidence.md section A) measured: Q5_K_M is the largest quant
    that runs fully in a 32 GB carve-out, Q6_K spills and runs much slower, 48/16 fails to load.
    memfit must recommend a quant in dedicated memory at 32/32 and name the spilling ones as
    alternatives with their cost."""
    data = plan_json("qwen3-vl-32b", "--device", "ai-max-395-64g", "--ctx", "24k")
    profile = load_profile("ai-max-395-64g")
    reserve = profile.reserve("windows", "daily")
    rec, vs = data["recommendation"], variants(data)
    assert data["model"]["repo"] == REPO and data["ctx"] == CTX and set(vs) == set(LADDER)
    assert data["device"]["os"] == "windows" and data["device"]["reserve_bytes"] == reserve == 16 * GIB

    # weights and KV are the estimator's exact numbers: every tensor of the mix, f16 KV for 24576 cells
    for q in LADDER:
        assert vs[q]["weights_bytes"] == tensor_bytes(q), q
        assert vs[q]["kv_bytes"] == KV_24K == 6 * GIB, q

    # BF16 cannot fit: its weights and KV alone exceed the RAM left after Windows' reserve
    assert tensor_bytes("BF16") + KV_24K > profile.ram_bytes - reserve
    assert vs["BF16"]["tier"] == "no_fit"
    # the recommendation runs entirely in the carve-out: Q4_K_M / Q5_K_M class at 32/32 (A9)
    assert rec["quant"] in ("Q4_K_M", "Q5_K_M") and rec["tier"] == "dedicated" and rec["placement"] == "fast"
    assert rec["carveout_bytes"] == 32 * GIB and rec["os_keeps_bytes"] == 32 * GIB
    assert rec["memory"]["spill_bytes"] == 0 and rec["fast_spare_bytes"] >= 0
    # its GPU side plus the desktop's GPU memory fits the carve-out
    assert rec["gpu_bytes"] + rec["memory"]["desktop_gpu_bytes"] <= 32 * GIB
    # Q6_K (A9) and Q8_0 do not fit in dedicated memory at 32 GB: alternatives, never the choice
    assert vs["Q6_K"]["placement"] in ("spill", "partial") and vs["Q8_0"]["placement"] in ("spill", "partial")
    facts = {f["code"]: f for f in rec["facts"]}
    nxt = LADDER[LADDER.index(rec["quant"]) + 1]
    spills = facts["next_quality_spills"]
    assert spills["quant"] == nxt and spills["values"]["est_tps"] < rec["est_tps"]
    assert spills["values"]["slowdown"] == pytest.approx(2.48)
    # a larger split is refused for a reason stated in the output: loading (A10)
    big = facts["larger_split_blocked"]
    assert big["values"]["carveout_bytes"] == 48 * GIB and big["values"]["check"] == "load_peak"
    rows = {o["carveout_bytes"]: o for o in data["carveout_options"]}
    assert [c for c, o in rows.items() if o["recommended"]] == [32 * GIB]
    assert rows[48 * GIB]["tier"] == "no_fit"
    for o in rows.values():
        assert (o["tier"] != "no_fit") == (o["gpu_spare_bytes"] >= 0 and o["os_free_bytes"] >= 0) or o["tier"] == "no_fit"
    # the OS keeps its reserve after the CPU side (nothing spills)
    assert rec["os_keeps_bytes"] - rec["host_bytes"] >= reserve and data["fit"]["os_free_bytes"] >= 0
    assert rec["commands"]["bios"].startswith("UMA frame buffer 32 GB, OS keeps 32 GB")

    # the vision projector is part of the plan and priced: its weights (exact) + the encoder buffer
    assert data["model"]["mmproj"] == rec["mmproj"] == MMPROJ
    mm = data["fit"]["gpu"]["mmproj_bytes"]
    assert rec["mmproj_bytes"] == mm and tensor_bytes() < mm < tensor_bytes() + 1 * GIB

    # launch: -hf downloads the projector with the model, so no --mmproj flag (and no --no-mmproj)
    cmd = rec["commands"]["llama_server"]
    assert cmd.startswith(f"llama-server -hf {REPO}:{rec['quant']} -c {CTX} -ngl 999 -fa on")
    assert "--mmproj" not in cmd and "--no-mmproj" not in cmd

    # speeds: decode at an empty and a full context, prefill and the time to fill the context
    assert rec["est_tps"] > rec["est_tps_at_ctx"] > 0
    assert rec["est_prefill_tps"] > 0 and rec["est_ttft_s"] == pytest.approx(CTX / rec["est_prefill_tps"], rel=0.02)
    for q in LADDER:
        if vs[q]["tier"] != "no_fit":
            assert vs[q]["est_tps"] and vs[q]["est_prefill_tps"] and vs[q]["est_ttft_s"], q

    # the largest context in dedicated memory is what "max ctx" means on Windows
    assert vs[rec["quant"]]["max_ctx_fast"] >= CTX
    for q in LADDER:
        if vs[q]["placement"] == "spill":
            assert vs[q]["max_ctx_fast"] < CTX <= vs[q]["max_ctx_f16"], q

    # every candidate weighed is in the JSON, with its memory per class; exactly one is chosen
    chosen = [c for c in data["candidates"] if c["chosen"]]
    assert len(chosen) == 1 and chosen[0]["quant"] == rec["quant"] and chosen[0]["carveout_bytes"] == 32 * GIB
    assert {c["quant"] for c in data["candidates"]} == set(LADDER)
    assert {c["carveout_bytes"] for c in data["candidates"]} >= set(profile.carveout_options())


def test_headless_use_fits_q5_k_m_in_the_32_gb_carveout(hub):
    """Without the desktop's GPU memory and apps, the laptop holds Q5_K_M in dedicated memory at
    24k (A9: Q5_K_M is the largest quant that runs fully in a 32 GB carve-out); 48/16 still loses
    on loading (A10), whatever the use."""
    for use in ("headless", "desktop", "daily"):
        data = plan_json("qwen3-vl-32b", "--device", "ai-max-395-64g", "--ctx", "24k", "--use", use)
        rec = data["recommendation"]
        assert rec["carveout_bytes"] == 32 * GIB, use
        assert {o["carveout_bytes"]: o for o in data["carveout_options"]}[48 * GIB]["tier"] == "no_fit", use
    headless = plan_json("qwen3-vl-32b", "--device", "ai-max-395-64g", "--ctx", "24k", "--use", "headless")
    assert headless["recommendation"]["quant"] == "Q5_K_M" and headless["recommendation"]["placement"] == "fast"


def test_allow_spill_is_the_explicit_way_to_a_spilling_quant(hub):
    data = plan_json("qwen3-vl-32b", "--device", "ai-max-395-64g", "--ctx", "24k", "--allow-spill")
    rec = data["recommendation"]
    base = plan_json("qwen3-vl-32b", "--device", "ai-max-395-64g", "--ctx", "24k")["recommendation"]
    assert LADDER.index(rec["quant"]) > LADDER.index(base["quant"]) and rec["placement"] == "spill"
    assert rec["memory"]["spill_bytes"] > 0 and rec["est_tps"] < base["est_tps"]
    assert any(f["code"] == "spill_cost" for f in rec["facts"])


def test_weights_and_kv_equal_the_estimator_for_that_mix(hub, qwen3vl_files):
    """The JSON carries the estimator's numbers for exactly these headers and settings."""
    from planner.estimate_types import RunSettings
    from planner.estimator import estimate
    from planner.header import ModelHeaders
    from planner.model_facts import ModelFacts
    from planner.reader import parse_file

    data = plan_json("qwen3-vl-32b", "--device", "ai-max-395-64g", "--ctx", "24k", "--quant", "Q8_0", "--allow-spill")
    headers = ModelHeaders.merge([parse_file(qwen3vl_files[realmodels.file_name(SPEC, "Q8_0")])])
    mmproj = ModelHeaders.merge([parse_file(qwen3vl_files[MMPROJ])])
    rec = data["recommendation"]
    settings = RunSettings(n_ctx=CTX, flash_attn="auto", backend="vulkan", with_mmproj=True,
                           use_mmap=not rec["no_mmap"])
    bd = estimate(ModelFacts.from_headers(headers), settings, mmproj=mmproj)
    v = variants(data)["Q8_0"]
    assert v["weights_bytes"] == bd.weights_bytes == tensor_bytes("Q8_0")
    assert v["kv_bytes"] == bd.kv_bytes == KV_24K
    assert data["fit"]["gpu"]["mmproj_bytes"] == bd.device("gpu").mmproj_bytes


def test_central_command_text_reads_at_a_glance(hub):
    result = plan("qwen3-vl-32b", "--device", "ai-max-395-64g", "--ctx", "24k")
    assert result.exit_code == 0, result.output
    text = result.stdout
    lines = text.splitlines()
    assert lines[0].startswith(f"{REPO} · 24k context (24576 tokens)")
    assert re.search(r"^Recommendation: Q[45]_K_M — fits in dedicated GPU memory", text, re.MULTILINE)
    assert re.search(r"^  BIOS +UMA frame buffer 32 GB, OS keeps 32 GB$", text, re.MULTILINE)
    # Windows: PowerShell, continued with a backtick as the line's last character
    joined = re.sub(r" `\n +", " ", text)
    assert re.search(rf"^  llama\.cpp +llama-server -hf {re.escape(REPO)}:Q[45]_K_M -c 24576 -ngl 999", joined, re.MULTILINE)
    assert f"{MMPROJ} included" in text  # the projector is named where the launch is
    assert "keep 16.00 GiB of RAM (windows, daily use" in text  # the assumed reserve is visible
    # the memory bar prices the projector separately and its legend adds up to the RAM
    bar = lines.index("Memory with the recommendation loaded:")
    legend = " ".join(lines[bar + 4: bar + 7])
    assert "P mmproj" in legend and "K KV 6.0" in legend and "R OS reserve 16.0" in legend
    assert text.index("Recommendation:") < text.index("Memory with") < text.index("Quants at") < text.index("BIOS carve-out")
    wide = [line for line in lines if len(line) > TEXT_WIDTH]
    assert not wide, wide


def test_without_the_projector_it_is_dropped_from_the_plan_and_the_command(hub):
    on = plan_json("qwen3-vl-32b", "-d", "ai-max-395-64g", "-c", "24k", "--quant", "Q4_K_M")
    off = plan_json("qwen3-vl-32b", "-d", "ai-max-395-64g", "-c", "24k", "--quant", "Q4_K_M", "--mmproj", "none")
    assert off["model"]["mmproj"] is None and off["recommendation"]["mmproj_bytes"] == 0
    assert "--no-mmproj" in off["recommendation"]["commands"]["llama_server"]
    assert on["recommendation"]["gpu_bytes"] - off["recommendation"]["gpu_bytes"] == on["recommendation"]["mmproj_bytes"]


def test_the_128g_mini_pc_takes_at_least_the_laptops_quant(hub):
    """A fair comparison: one use (the first device's, daily) for both machines, shown once. The
    mini-PC holds Q8_0 in dedicated memory where the laptop would spill, so it is faster for the
    same quant; its 96/32 split is a valid setting with 32 GB kept for daily use (section A)."""
    data = plan_json("qwen3-vl-32b", "-d", "ai-max-395-64g", "-d", "ai-max-395-128g-minipc", "--ctx", "24k")
    laptop, mini = (p["recommendation"] for p in data["plans"])
    assert {p["device"]["use"] for p in data["plans"]} == {"daily"}
    assert LADDER.index(mini["quant"]) > LADDER.index(laptop["quant"])
    # BF16 + 6 GiB KV + projector is ~70 GiB: it runs on the 128 GB machine (and not the 64 GB one), but
    # Q8_0 is the same quality class (within ~0.005 ppl in llama.cpp's quantize table) at twice the speed
    mini_vs = {v["quant"]: v for v in data["plans"][1]["variants"]}
    lap_vs = {v["quant"]: v for v in data["plans"][0]["variants"]}
    assert mini_vs["BF16"]["tier"] in ("dedicated", "shared")
    assert mini["quant"] == "Q8_0" and mini["tier"] == "dedicated" and mini["placement"] == "fast"
    # where the laptop spills and the mini-PC does not, their speeds for the same quant differ
    assert lap_vs["Q6_K"]["placement"] == "spill" and mini_vs["Q6_K"]["placement"] == "fast"
    assert mini_vs["Q6_K"]["est_tps"] > lap_vs["Q6_K"]["est_tps"]
    rows = {o["carveout_bytes"]: o for o in data["plans"][1]["carveout_options"]}
    assert rows[96 * GIB]["tier"] != "no_fit" and rows[96 * GIB]["os_keeps_bytes"] == 32 * GIB
    mini_profile = load_profile("ai-max-395-128g-minipc")
    reserve = mini_profile.reserve("windows", "daily")
    assert mini["os_keeps_bytes"] - mini["host_bytes"] >= reserve
    assert [c["device"] for c in data["comparison"]] == ["ai-max-395-64g", "ai-max-395-128g-minipc"]


def test_device_suffixes_set_os_and_use_per_device_and_errors_name_the_device(hub):
    data = plan_json("qwen3-vl-32b", "-d", "ai-max-395-64g:linux:headless", "-d", "ai-max-395-128g-minipc:windows",
                     "--ctx", "24k")
    a, b = data["plans"]
    assert (a["device"]["os"], a["device"]["use"]) == ("linux", "headless")
    assert (b["device"]["os"], b["device"]["use"]) == ("windows", "headless")  # the common use
    mixed = plan_json("qwen3-vl-32b", "-d", "ai-max-395-64g", "-d", "dgx-spark", "--os", "windows", "--ctx", "24k")
    assert [p["device"]["os"] for p in mixed["plans"]] == ["windows", "linux"]
    assert any("dgx-spark has no windows profile" in x for x in mixed["plans"][1]["device"]["assumptions"])
    bad = plan("qwen3-vl-32b", "-d", "ai-max-395-64g", "-d", "dgx-spark", "--carveout", "32g", "--ctx", "24k")
    assert bad.exit_code == 2 and "dgx-spark" in bad.output


def test_on_linux_the_same_laptop_uses_a_small_carveout_and_raises_gtt(hub):
    data = plan_json("qwen3-vl-32b", "-d", "ai-max-395-64g", "--os", "linux", "--ctx", "24k")
    rec = data["recommendation"]
    assert rec["quant"] == "Q8_0" and rec["carveout_bytes"] == GIB // 2
    change = rec["cap_change"]
    assert change["knob"] == "ttm.pages_limit" and rec["commands"]["cap"] == f"ttm.pages_limit={change['cap_bytes'] // 4096}"
    assert change["cap_bytes"] + rec["carveout_bytes"] >= rec["gpu_bytes"] + data["fit"]["safety_bytes"]
    assert "set on the command line: os linux" in " ".join(data["device"]["assumptions"])


def test_a_context_beyond_training_is_flagged_above_the_recommendation(hub):
    text = plan("qwen3-vl-32b", "-d", "ai-max-395-64g", "--ctx", "300k").stdout
    assert "beyond the model's training context of 256k" in text
    assert text.index("training context") < text.index("Recommendation:")
    md = plan("qwen3-vl-32b", "-d", "ai-max-395-64g", "--ctx", "300k", "--format", "markdown").stdout
    assert md.index("training context") < md.index("### Recommendation")


def test_planning_the_six_quants_is_fast(hub, qwen3vl_files):
    """The planner's own compute for the 6-quant repo (headers already read): well under a second."""
    from planner.header import ModelHeaders
    from planner.plan import Planner, PlanModel, PlanProjector, PlanRequest, PlanVariant
    from planner.reader import parse_file

    pv = [PlanVariant(quant=q, headers=ModelHeaders.merge([parse_file(qwen3vl_files[realmodels.file_name(SPEC, q)])]),
                      size_bytes=tensor_bytes(q)) for q in LADDER]
    proj = PlanProjector(name=MMPROJ, size_bytes=tensor_bytes(),
                         headers=ModelHeaders.merge([parse_file(qwen3vl_files[MMPROJ])]))
    model = PlanModel(name=REPO, variants=pv, repo=REPO, projector=proj)
    timings = {}
    for device in ("ai-max-395-64g", "rtx-4090"):
        planner = Planner(model, PlanRequest(ctx=CTX))
        t0 = time.perf_counter()
        planner.plan(load_profile(device))
        timings[device] = time.perf_counter() - t0
    # ~0.2 s each on the 2-core test machine; the bound leaves room for a loaded CI runner
    assert max(timings.values()) < 1.5, timings


# --------------------------------------------------------------------------- a real MoE on a 24 GB card

MOE = realmodels.load_spec("qwen3-30b-a3b")
MOE_LADDER = ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "BF16"]


@pytest.fixture(scope="session")
def moe_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return realmodels.repo_files(MOE, tmp_path_factory.mktemp("qwen3-30b-a3b"))


def test_qwen3_30b_a3b_on_a_4090_runs_fully_on_the_gpu_and_offloads_experts_first(fake_hub, moe_files):
    fake_hub.add_repo(MOE["repo"], moe_files)
    data = plan_json("qwen3-30b-a3b-instruct-2507", "-d", "rtx-4090", "--ctx", "24k")
    assert data["model"]["repo"] == MOE["repo"] and data["model"]["moe"]
    vs, rec = variants(data), data["recommendation"]
    kv = 48 * 4 * 128 * 2 * 2 * CTX  # 48 layers x 4 KV heads x 128 dims, f16 K and V
    for q in MOE_LADDER:
        raw = sum(realmodels.nbytes(t) for t in realmodels.tensors(MOE, q))
        # CUDA pads each tensor (128 B alignment, quantized rows to 512 elements): a few KiB over the file
        assert 0 <= vs[q]["weights_bytes"] - raw < 1 << 20, q
        assert vs[q]["kv_bytes"] == kv
    vram = load_profile("rtx-4090").vram_bytes
    # Q8_0's weights alone are more than the card: it can only run with experts on the CPU
    assert vs["Q8_0"]["weights_bytes"] > vram
    for q in ("Q8_0", "BF16"):
        assert vs[q]["tier"] == "partial_offload" and vs[q]["n_cpu_moe"] > 0 and vs[q]["n_gpu_layers"] == -1
    # a quant that runs fully on the GPU beats any partial offload, and it is the best such quant
    on_gpu = [q for q in MOE_LADDER if vs[q]["tier"] == "dedicated"]
    assert on_gpu and rec["quant"] == on_gpu[-1] and rec["tier"] == "dedicated"
    assert "--n-cpu-moe" not in rec["commands"]["llama_server"] and "-ngl 999" in rec["commands"]["llama_server"]
    assert vs["BF16"]["n_cpu_moe"] > vs["Q8_0"]["n_cpu_moe"]  # the bigger quant keeps more experts on the CPU
