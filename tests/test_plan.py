"""The planner, speed model and reports over the fake estimator (planner/testing/planfakes.py) and synthetic
device profiles whose numbers are known, so each rule is checked on its own."""

from __future__ import annotations

import json
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.testing.planfakes import GIB, LADDER, MIB, FakeFacts, apu, fake_estimate, fake_model, gpu_card, mac
from planner.fit import place
from planner.plan import MultiPlan, PlanRequest, Planner, plan_devices
from planner.report import render_bar, render_json, render_markdown, render_text
from planner.speed import SpeedParams, estimate_speed

KW = dict(estimate_fn=fake_estimate, facts_fn=FakeFacts.from_headers)


def plan_one(model, profile, **req):
    planner = Planner(model, PlanRequest(**req), **KW)
    return planner.plan(profile), planner


def variant(plan, quant):
    return next(v for v in plan.variants if v.quant == quant)


# --------------------------------------------------------------------------- carve-out strategy


@settings(max_examples=40, deadline=None)
@given(st.floats(4, 70), st.sampled_from([4096, 16384, 32768, 65536]), st.sampled_from(["daily", "desktop"]))
def test_windows_never_leaves_the_os_less_than_its_reserve(size, ctx, use):
    p = apu(ram=64, reserve=16)
    plan, _ = plan_one(fake_model({"Q4_K_M": size}, kv_token_layer=2048), p, ctx=ctx, use=use)
    reserve = p.reserve("windows", use)
    rows = [o for o in plan.carveout_options if o.tier != "no_fit"]
    for o in rows:  # every configuration the plan calls usable keeps the reserve
        assert o.os_free_bytes >= 0
        assert o.os_keeps_bytes == p.ram_bytes - o.carveout_bytes
    r = plan.recommendation
    if r.tier != "no_fit":
        f = plan.fit
        assert r.os_keeps_bytes == p.ram_bytes - r.carveout_bytes
        # independent arithmetic: what the OS sees minus GPU spill (with safety) and CPU-side buffers
        spill = max(0, f.gpu_need_bytes + f.safety_bytes - r.carveout_bytes)
        assert r.os_keeps_bytes - spill - f.host_need_bytes - f.host_safety_bytes >= reserve
        assert r.carveout_bytes in p.carveout_options()


def test_windows_picks_the_smallest_carveout_that_holds_the_model_in_dedicated_memory():
    p = apu(ram=64, reserve=16, carve_opts=(0.5, 8, 16, 24, 32, 48))
    plan, _ = plan_one(fake_model({"Q4_K_M": 19}, kv_token_layer=1024), p, ctx=8192)
    r = plan.recommendation
    assert r.tier == "dedicated" and r.carveout_bytes == 24 * GIB  # 19 + KV + compute + 1 GiB safety > 16
    assert r.commands.bios.startswith("UMA frame buffer 24 GB, OS keeps 40 GB")
    assert any("only lever" in x for x in r.reasons)
    rec_rows = [o for o in plan.carveout_options if o.recommended]
    assert len(rec_rows) == 1 and rec_rows[0].carveout_bytes == 24 * GIB
    smaller = [o for o in plan.carveout_options if o.carveout_bytes < 24 * GIB]
    assert all(o.tier != "dedicated" for o in smaller)


def test_a_quant_that_spills_is_an_alternative_unless_the_user_allows_it():
    """Windows shared GPU memory on Vulkan decodes 2.48x slower (field A1/A2): Q8_0 spills past
    the carve-out, so Q6_K (in the carve-out) is recommended and Q8_0 is named with its cost;
    --allow-spill takes Q8_0 with the least spill that keeps Windows its reserve."""
    p = apu(ram=64, reserve=16)
    plan, _ = plan_one(fake_model(LADDER, kv_token_layer=1024), p, ctx=8192, prefer="quality")
    r = plan.recommendation
    assert r.quant == "Q6_K" and r.tier == "dedicated" and r.placement == "fast"
    assert variant(plan, "Q8_0").placement == "spill" and variant(plan, "Q6_K").placement == "fast"
    spills = next(f for f in r.facts if f.code == "next_quality_spills")
    assert spills.quant == "Q8_0" and spills.values["slowdown"] > 2 and spills.values["est_tps"] < r.est_tps
    assert "--allow-spill" in spills.text
    allowed, _ = plan_one(fake_model(LADDER, kv_token_layer=1024), p, ctx=8192, allow_spill=True)
    a = allowed.recommendation
    assert a.quant == "Q8_0" and a.tier == "shared" and a.placement == "spill"
    assert allowed.fit.shared_used_bytes > 0 and a.memory.spill_bytes == allowed.fit.shared_used_bytes
    text = render_text(MultiPlan(plans=[allowed]))
    assert "Q8_0 — fits on the GPU using shared memory" in text
    assert any(f.code == "spill_cost" for f in a.facts)
    assert a.carveout_bytes == 32 * GIB  # least shared memory while Windows keeps its 16 GiB


def test_linux_prefers_a_small_carveout_and_raises_gtt():
    p = apu(ram=64, os="linux", reserve=12.8, linux_max=0.93)
    plan, _ = plan_one(fake_model({"Q8_0": 33}, kv_token_layer=1024), p, ctx=8192)
    r = plan.recommendation
    assert r.carveout_bytes == int(0.5 * GIB) and r.tier == "shared"
    change = r.cap_change
    assert change is not None and change.knob == "ttm.pages_limit"
    assert change.setting == f"ttm.pages_limit={change.cap_bytes // 4096}"
    assert change.cap_bytes % GIB == 0 and change.default_bytes == int(0.5 * (64 - 0.5) * GIB)
    assert plan.fit.gpu_need_bytes + plan.fit.safety_bytes <= int(0.5 * GIB) + change.cap_bytes
    assert change.cap_bytes <= int(0.93 * (64 - 0.5) * GIB)
    assert r.commands.cap == change.setting
    assert any("AMD recommends a small carve-out" in x for x in r.reasons)


def test_linux_without_a_raise_when_the_default_gtt_holds_it():
    p = apu(ram=64, os="linux")
    plan, _ = plan_one(fake_model({"Q4_K_M": 12}, kv_token_layer=1024), p, ctx=8192)
    assert plan.recommendation.carveout_bytes == int(0.5 * GIB) and plan.recommendation.cap_change is None


def test_the_128g_machine_takes_a_larger_quant_than_the_64g_one():
    ladder_70b = {q: gib * 2.2 for q, gib in LADDER.items()}  # a 70B-class model: Q4_K_M ~42 GiB
    model = fake_model(ladder_70b, kv_token_layer=2048)
    small, _ = plan_one(model, apu(ram=64, reserve=16))
    big, _ = plan_one(model, apu(ram=128, reserve=32, carve_opts=(0.5, 16, 32, 64, 96)))
    order = list(LADDER)
    assert order.index(big.recommendation.quant) > order.index(small.recommendation.quant)


def test_quality_takes_the_fastest_of_the_near_lossless_quants():
    """Q8_0, F16 and BF16 are one quality class (llama.cpp's quantize table: within ~0.005 ppl):
    when BF16 fits too, `quality` still takes Q8_0, says why, and --quant BF16 gets BF16."""
    model = fake_model(LADDER, kv_token_layer=2048)
    p = mac(ram=128, reserve=8, default_fraction=0.75)
    plan, _ = plan_one(model, p)
    assert variant(plan, "BF16").placement == "fast"
    assert plan.recommendation.quant == "Q8_0"
    assert any("BF16 fits too" in r and "--quant BF16" in r for r in plan.recommendation.reasons)
    forced, _ = plan_one(fake_model({"BF16": LADDER["BF16"]}, kv_token_layer=2048), p)
    assert forced.recommendation.quant == "BF16"


def test_user_fixed_carveout_is_the_only_option():
    p = apu(ram=64)
    plan, _ = plan_one(fake_model({"Q4_K_M": 19}), p, ctx=8192, carveout_bytes=16 * GIB)
    assert [o.carveout_bytes for o in plan.carveout_options] == [16 * GIB]
    assert plan.recommendation.carveout_bytes == 16 * GIB


# --------------------------------------------------------------------------- unified and discrete


def test_mac_raises_the_wired_limit_with_sysctl():
    p = mac(ram=64, reserve=8)
    plan, _ = plan_one(fake_model({"Q8_0": 48}, kv_token_layer=1024), p, ctx=16384, use="headless")
    r = plan.recommendation
    assert r.tier == "dedicated" and r.carveout_bytes is None and r.os_keeps_bytes is None
    assert r.cap_change is not None
    mb = int(re.search(r"iogpu.wired_limit_mb=(\d+)", r.commands.cap).group(1))
    assert r.commands.cap.startswith("sudo sysctl ")
    assert mb * MIB == r.cap_change.cap_bytes >= plan.fit.gpu_need_bytes + plan.fit.safety_bytes
    assert mb * MIB > 48 * GIB  # above the default 3/4 of RAM
    # the same model on daily use: the 16 GiB reserve binds, raising the cap cannot help
    daily, _ = plan_one(fake_model({"Q8_0": 48}, kv_token_layer=1024), p, ctx=16384, use="daily")
    assert daily.recommendation.tier == "no_fit"


def test_discrete_partial_offload_gives_ngl():
    p = gpu_card(vram=24, ram=64)
    plan, _ = plan_one(fake_model({"Q4_K_M": 19, "Q3_K_M": 15}, kv_token_layer=4096), p, ctx=24576,
                       use="desktop")
    q4 = variant(plan, "Q4_K_M")
    assert q4.tier == "partial_offload" and 0 < q4.n_gpu_layers < 64
    assert plan.recommendation.quant == "Q3_K_M"  # full GPU beats partial offload
    forced, _ = plan_one(fake_model({"Q4_K_M": 19}, kv_token_layer=4096), p, ctx=24576, use="desktop")
    r = forced.recommendation
    assert r.tier == "partial_offload"
    assert f"-ngl {r.n_gpu_layers} " in r.commands.llama_server and "-ngl 999" not in r.commands.llama_server
    assert r.commands.lm_studio["GPU Offload"] == f"{r.n_gpu_layers} / 64 layers"
    assert any(f"num_gpu {r.n_gpu_layers}" in x for x in r.commands.ollama)
    assert r.est_tps < variant(plan, "Q3_K_M").est_tps


def test_moe_partial_offload_gives_n_cpu_moe():
    p = gpu_card(vram=16, ram=64)
    model = fake_model({"Q4_K_M": 24}, experts=(8, 128), kv_token_layer=1024)
    plan, _ = plan_one(model, p, ctx=8192, use="desktop")
    r = plan.recommendation
    assert r.tier == "partial_offload" and r.n_cpu_moe > 0 and r.n_gpu_layers == -1
    assert f"--n-cpu-moe {r.n_cpu_moe}" in r.commands.llama_server and "-ngl 999" in r.commands.llama_server
    assert r.commands.lm_studio["Number of layers for which to force MoE weights onto CPU"] == str(r.n_cpu_moe)


def test_nothing_fits_is_no_fit_with_a_context_hint():
    p = apu(ram=32, reserve=16, carve_opts=(0.5, 4, 8, 16))
    plan, _ = plan_one(fake_model({"Q4_K_M": 10}, kv_token_layer=8192), p, ctx=131072)
    r = plan.recommendation
    assert r.tier == "no_fit" and not plan.fits and r.commands is None
    assert any("--ctx" in x for x in r.reasons)
    v = variant(plan, "Q4_K_M")
    assert 0 < v.max_ctx < 131072


# --------------------------------------------------------------------------- context search


def test_max_ctx_is_the_exact_boundary():
    p = apu(ram=64, reserve=16)
    model = fake_model({"Q6_K": 25}, kv_token_layer=8192, ctx_train=262144)
    plan, _ = plan_one(model, p, ctx=4096)
    v = variant(plan, "Q6_K")
    assert v.max_ctx_mode == "gpu" and 0 < v.max_ctx < 262144 and v.max_ctx % 256 == 0
    at, _ = plan_one(model, p, ctx=v.max_ctx)
    over, _ = plan_one(model, p, ctx=v.max_ctx + 256)
    assert at.recommendation.tier in ("dedicated", "shared")
    assert over.recommendation.tier not in ("dedicated", "shared")  # partial offload at best
    assert v.max_ctx_q8_0 > v.max_ctx_f16
    # in fast memory (the carve-out on Windows) the limit is lower and exact too
    assert 0 < v.max_ctx_fast < v.max_ctx and v.max_ctx_fast % 256 == 0
    fast_at, _ = plan_one(model, p, ctx=v.max_ctx_fast, kv_fixed=True)
    fast_over, _ = plan_one(model, p, ctx=v.max_ctx_fast + 256, kv_fixed=True)
    assert fast_at.recommendation.placement == "fast" and fast_over.recommendation.placement != "fast"


def test_max_ctx_shrinks_with_quant_size_and_caps_at_training_context():
    plan, _ = plan_one(fake_model(LADDER, kv_token_layer=4096, ctx_train=65536), apu(ram=64), ctx=4096)
    fitting = [v for v in sorted(plan.variants, key=lambda v: v.size_bytes) if v.max_ctx]
    ctxs = [v.max_ctx_f16 for v in fitting]
    assert ctxs == sorted(ctxs, reverse=True)
    assert max(ctxs) <= 65536 and variant(plan, "Q2_K").max_ctx_f16 == 65536


def test_quantized_kv_column_is_na_when_flash_attention_is_off():
    plan, _ = plan_one(fake_model({"Q4_K_M": 10}), apu(ram=64), ctx=4096, flash_attn="off")
    v = variant(plan, "Q4_K_M")
    assert v.max_ctx_q8_0 is None and v.max_ctx_f16


# --------------------------------------------------------------------------- policy


@pytest.fixture(scope="module")
def roomy():
    return mac(ram=128, reserve=8, default_fraction=0.75)


def test_policy_quality_balanced_speed(roomy):
    model = fake_model({k: v for k, v in LADDER.items() if k != "BF16"}, kv_token_layer=1024)
    assert plan_one(model, roomy, ctx=8192, prefer="quality")[0].recommendation.quant == "Q8_0"
    assert plan_one(model, roomy, ctx=8192, prefer="balanced")[0].recommendation.quant == "Q6_K"
    assert plan_one(model, roomy, ctx=8192, prefer="speed")[0].recommendation.quant == "Q4_K_M"


def test_min_tps_filters_and_reports_when_unmet(roomy):
    model = fake_model({k: v for k, v in LADDER.items() if k != "BF16"}, kv_token_layer=1024)
    base, _ = plan_one(model, roomy, ctx=8192)
    speeds = {v.quant: v.est_tps for v in base.variants}
    threshold = (speeds["Q5_K_M"] + speeds["Q6_K"]) / 2
    fast, _ = plan_one(model, roomy, ctx=8192, min_tps=threshold)
    assert fast.recommendation.quant == "Q5_K_M" and fast.fits
    impossible, _ = plan_one(model, roomy, ctx=8192, min_tps=max(speeds.values()) * 2)
    assert not impossible.fits and not impossible.recommendation.meets_min_tps
    assert impossible.recommendation.quant == "Q2_K"  # the fastest that fits


def test_q8_kv_hint_names_the_better_quant_it_would_unlock():
    p = gpu_card(vram=24, ram=64)
    plan, _ = plan_one(fake_model({"Q4_K_M": 19, "Q3_K_M": 15}, kv_token_layer=2048), p, ctx=24576, use="desktop")
    assert plan.recommendation.quant == "Q3_K_M"
    assert any("Q4_K_M would run in fast memory with a q8_0 KV cache" in x for x in plan.recommendation.reasons)
    unlock = next(f for f in plan.recommendation.facts if f.code == "kv_q8_unlocks")
    assert unlock.quant == "Q4_K_M" and unlock.values["kv"] == "q8_0"


# --------------------------------------------------------------------------- speed model


PARAMS = SpeedParams(cpu_efficiency=0.6, layer_latency_s={"vulkan": 50e-6, "metal": 30e-6, "cpu": 0.0},
                     layer_units={"dense": 1.0, "moe": 2.0, "recurrent": 1.0}, backend_efficiency={"lmstudio/vulkan": 0.5},
                     prefill_efficiency={"vulkan": 0.3}, pcie_gbps=25.0)


def test_dense_speed_is_bandwidth_over_bytes_read_plus_dispatch():
    p = apu(ram=128, reserve=16, carve_opts=(0.5, 64, 96), os="linux")
    model = fake_model({"Q8_0": 33}, kv_token_layer=4096)
    planner = Planner(model, PlanRequest(ctx=8192), **KW)
    plan = planner.plan(p)
    v = model.variants[0]
    bd = planner.breakdown(v, ctx=8192, backend="vulkan")
    r = plan.fit
    layers = sum(x.weights_bytes for x in bd.layers)
    head = bd.nonrepeating_weights["output.weight"]
    s0 = estimate_speed(bd, r, p, depth=0, params=PARAMS)
    assert s0.bytes_per_token == layers + head  # the input embedding is a lookup, not a read
    assert s0.tps == pytest.approx(1 / ((layers + head) / (0.85 * 256e9) + len(bd.layers) * 50e-6), abs=0.01)
    s_full = estimate_speed(bd, r, p, depth=8192, params=PARAMS)
    assert s_full.kv_bytes_per_token == bd.kv_bytes and s_full.tps < s0.tps
    assert plan.recommendation.est_tps == pytest.approx(estimate_speed(bd, r, p, depth=0).tps, abs=0.01)
    # the runtime's factor scales the bandwidth term only (LM Studio's bundled runtime, planner/data/speed.toml)
    w0 = estimate_speed(bd, r, p, depth=0, params=PARAMS, app="lmstudio")
    assert w0.tps == pytest.approx(1 / ((layers + head) / (0.5 * 0.85 * 256e9) + len(bd.layers) * 50e-6), abs=0.01)


def test_moe_speed_reads_only_active_experts_and_pays_more_dispatch():
    p = mac(ram=128)
    moe = fake_model({"Q4_K_M": 60}, experts=(8, 128), expert_share=0.9, kv_token_layer=1024)
    m, planner = plan_one(moe, p, ctx=4096, use="headless")
    assert planner.ratio == pytest.approx(8 / 128)
    bd = planner.breakdown(moe.variants[0], ctx=4096, backend="metal")
    s = estimate_speed(bd, m.fit, p, ratio=planner.ratio, depth=0, params=PARAMS)
    layers = sum(x.weights_bytes - x.expert_bytes + x.expert_bytes * 8 / 128 for x in bd.layers)
    total = layers + bd.nonrepeating_weights["output.weight"]
    assert s.bytes_per_token == pytest.approx(total, abs=64)
    n_moe = sum(1 for x in bd.layers if x.expert_bytes)
    assert s.latency_ms == pytest.approx(n_moe * 2.0 * 30e-3, rel=1e-6)
    assert s.tps == pytest.approx(1 / (total / (0.6 * 546e9) + n_moe * 2.0 * 30e-6), abs=0.01)
    dense = fake_model({"Q4_K_M": 60}, kv_token_layer=1024)
    d = plan_one(dense, p, ctx=4096, use="headless")[0].recommendation.est_tps
    assert m.recommendation.est_tps > 3 * d


def test_shared_slowdown_and_cpu_layers_cost_speed():
    slow = apu(ram=64, reserve=16, slowdown=2.5)
    model = fake_model({"Q8_0": 33}, kv_token_layer=1024)
    fast_plan, _ = plan_one(model, apu(ram=128, reserve=16, carve_opts=(0.5, 64)), ctx=8192)
    slow_plan, _ = plan_one(model, slow, ctx=8192, allow_spill=True)
    assert slow_plan.recommendation.tier == "shared" and fast_plan.recommendation.tier == "dedicated"
    assert slow_plan.recommendation.est_tps < fast_plan.recommendation.est_tps
    assert "2.5x slower" in slow_plan.fit.shared_cost


# --------------------------------------------------------------------------- commands and reports


def test_commands_for_a_hub_model_with_q8_kv_and_projector():
    p = apu(ram=64, os="linux")
    model = fake_model({"Q4_K_M": 19}, projector_gib=1.2, kv_token_layer=1024)
    plan, _ = plan_one(model, p, ctx=24576, cache_type_k="q8_0", cache_type_v="q8_0")
    c = plan.recommendation.commands
    assert c.llama_server.startswith("llama-server -hf test/Model-GGUF:Q4_K_M -c 24576 -ngl 999 -fa on")
    assert "-ctk q8_0 -ctv q8_0" in c.llama_server
    assert "--mmproj" not in c.llama_server  # -hf fetches the projector itself
    assert c.lm_studio["K Cache Quantization Type"] == "Q8_0" and c.lm_studio["Context Length"] == "24576"
    assert "OLLAMA_KV_CACHE_TYPE=q8_0" in c.ollama[0] and "OLLAMA_FLASH_ATTENTION=1" in c.ollama[0]
    assert "ollama run hf.co/test/Model-GGUF:Q4_K_M" in c.ollama
    assert plan.fit.gpu.mmproj_bytes > GIB  # the projector was sized on the GPU
    without, _ = plan_one(model, p, ctx=24576, use_mmproj=False)
    assert "--no-mmproj" in without.recommendation.commands.llama_server
    assert without.fit.gpu.mmproj_bytes == 0


def test_commands_for_local_files():
    model = fake_model({"Q4_K_M": 10}, repo=None, projector_gib=0.5)
    model.variants[0].files = ["/models/My Model-Q4_K_M.gguf"]
    plan, _ = plan_one(model, apu(ram=64), ctx=8192)
    c = plan.recommendation.commands
    assert c.shell == "powershell" and "-m '/models/My Model-Q4_K_M.gguf'" in c.llama_server  # Windows: PowerShell
    assert "--mmproj /models/mmproj-F16.gguf" in c.llama_server
    assert any("ollama create my-model-q4_k_m -f Modelfile" in x for x in c.ollama)


def test_no_mmap_when_the_load_needs_it():
    plan, _ = plan_one(fake_model({"Q8_0": 33}, kv_token_layer=1024), apu(ram=64, reserve=16), ctx=8192)
    r = plan.recommendation
    # llama.cpp b10488+ takes -lm none (b11003 refuses --no-mmap); the LM Studio setting says the same
    assert r.no_mmap and "-lm none" in r.commands.llama_server and r.commands.lm_studio["Try mmap()"] == "off"
    small, _ = plan_one(fake_model({"Q4_K_M": 6}, kv_token_layer=1024), apu(ram=64, reserve=16), ctx=8192)
    assert not small.recommendation.no_mmap and "--no-mmap" not in small.recommendation.commands.llama_server


def test_text_report_puts_the_recommendation_first_and_fits_a_screen():
    plan, _ = plan_one(fake_model(LADDER, kv_token_layer=2048), apu(ram=64), ctx=24576)
    text = render_text(MultiPlan(plans=[plan]))
    assert text.index("Recommendation:") < text.index("Memory with") < text.index("Quants at") < text.index("BIOS carve-out")
    assert "est." in text and "GiB" in text
    bar_line = next(line for line in text.splitlines() if line.strip().startswith("["))
    assert len(bar_line.strip()) == 66
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("W weights"))
    legend = " ".join(lines[start:start + 2])  # the legend wraps at the report width
    assert "OS reserve" in legend and "free" in legend and legend.strip().endswith("GiB")
    assert all(len(line) <= 110 for line in lines)


def test_memory_bar_is_proportional_and_has_a_unicode_form():
    plan, _ = plan_one(fake_model({"Q4_K_M": 19}, kv_token_layer=2048), apu(ram=64), ctx=8192)
    bar = plan.bars[0]
    assert sum(s.bytes for s in bar.segments) == bar.total_bytes == 64 * GIB
    ascii_ = render_bar(bar)
    uni = render_bar(bar, unicode=True)
    body = ascii_.splitlines()[1].strip()[1:-1]
    weights = next(s for s in bar.segments if s.kind == "weights")
    assert body.count("W") == pytest.approx(weights.bytes / bar.total_bytes * 64, abs=1.5)
    assert "█" in uni and "carve-out" in ascii_


def test_markdown_and_json_reports():
    plan, _ = plan_one(fake_model(LADDER, kv_token_layer=2048), apu(ram=64), ctx=24576)
    multi = MultiPlan(plans=[plan])
    md = render_markdown(multi)
    assert "| quant" in md and "|---" in md.replace(" ", "").replace(":", "-")
    assert "```sh\nllama-server" in md and md.startswith("## ")
    data = json.loads(render_json(multi))
    rec = data["recommendation"]
    assert {"quant", "carveout_bytes", "tier", "total_bytes"} <= set(rec)
    assert rec["tier"] in ("dedicated", "shared", "partial_offload", "no_fit")
    assert all({"quant", "tier", "total_bytes", "max_ctx"} <= set(v) for v in data["variants"])


def test_several_devices_compare_side_by_side():
    model = fake_model(LADDER, kv_token_layer=2048)
    multi = plan_devices(model, PlanRequest(ctx=24576), [apu(ram=64), mac(ram=128), gpu_card(vram=24)], **KW)
    text = render_text(multi)
    assert "compared on 3 devices" in text and "Quants per device" in text
    for dev in ("test-apu", "test-mac", "test-card"):
        assert dev in text
    data = json.loads(render_json(multi))
    assert [p["device"]["id"] for p in data["plans"]] == ["test-apu", "test-mac", "test-card"]
    assert data["plans"][2]["recommendation"]["carveout_bytes"] is None
    assert len(data["comparison"]) == 3


# --------------------------------------------------------------------------- performance


def test_fifteen_quants_by_twelve_carveouts_stay_cheap():
    """The call count is the real guard (a handful of estimates per quant); the time bound only
    catches a pathological regression on a loaded CI machine."""
    quants = {f"Q{i}_K": 6 + i * 3.5 for i in range(15)}
    model = fake_model(quants, kv_token_layer=2048)
    p = apu(ram=128, reserve=16, carve_opts=(0.5, 1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96))
    calls = []

    def counting(facts, s, mmproj=None):
        calls.append(s.n_ctx)
        return fake_estimate(facts, s, mmproj)

    planner = Planner(model, PlanRequest(ctx=32768), estimate_fn=counting, facts_fn=FakeFacts.from_headers)
    t0 = time.perf_counter()
    plan = planner.plan(p)
    elapsed = time.perf_counter() - t0
    assert len(plan.variants) == 15 and len(plan.carveout_options) == 12
    assert elapsed < 3.0, elapsed
    assert len(calls) <= 15 * 16, len(calls)  # a handful of estimates per quant, not one per probe x option


def test_facts_are_built_once_per_variant_across_devices():
    model = fake_model({"Q4_K_M": 19, "Q8_0": 33})
    built = []

    def facts(h):
        built.append(h)
        return FakeFacts.from_headers(h)

    plan_devices(model, PlanRequest(ctx=8192), [apu(ram=64), apu(ram=128, carve_opts=(0.5, 64))],
                 estimate_fn=fake_estimate, facts_fn=facts)
    assert len(built) == 2


def test_place_agrees_with_the_plan_for_the_recommended_configuration():
    p = apu(ram=64)
    model = fake_model({"Q6_K": 25}, kv_token_layer=1024)
    plan, planner = plan_one(model, p, ctx=8192)
    bd = planner.breakdown(model.variants[0], ctx=8192, backend="vulkan")
    again = place(bd, p, plan.fit.config, largest_weight_bytes=planner._largest["Q6_K"])
    assert again.tier == plan.recommendation.tier and again.gpu_need_bytes == plan.recommendation.gpu_bytes


def test_backend_choice_reaches_the_single_allocation_check():
    p = apu(ram=64, max_alloc=2 * GIB)
    model = fake_model({"Q4_K_M": 19}, kv_token_layer=1024, largest=3 * GIB)
    radv, _ = plan_one(model, p, ctx=8192)
    assert radv.recommendation.tier != "no_fit" and radv.device.backend == "vulkan"
    amdvlk, _ = plan_one(model, p, ctx=8192, backend="amdvlk")
    assert amdvlk.device.backend == "vulkan (amdvlk)"
    assert amdvlk.recommendation.tier == "no_fit"
    assert any("per allocation" in x for x in amdvlk.recommendation.reasons)


def test_a_backend_the_device_lacks_is_a_usage_error():
    from planner.errors import InputError

    with pytest.raises(InputError):
        plan_one(fake_model({"Q4_K_M": 10}), apu(ram=64), ctx=8192, backend="cuda")


def test_backend_cpu_plans_the_model_in_system_ram():
    p, _ = plan_one(fake_model({"Q4_K_M": 10}), apu(ram=64), ctx=8192, backend="cpu")
    assert p.recommendation.tier == "cpu_only" and p.recommendation.gpu_bytes == 0


def test_default_context_is_the_training_context_capped_at_32k():
    long, _ = plan_one(fake_model({"Q4_K_M": 10}, ctx_train=131072), apu(ram=64))
    short, _ = plan_one(fake_model({"Q4_K_M": 10}, ctx_train=8192), apu(ram=64))
    assert (long.ctx, long.ctx_defaulted) == (32768, True)
    assert short.ctx == 8192 and "default" in render_text(MultiPlan(plans=[short])).splitlines()[0]


def test_a_machine_with_only_a_cpu_backend_is_planned_on_the_cpu():
    p = gpu_card()
    p.os["linux"].backends = [b.model_copy(update={"name": "cpu"}) for b in p.os["linux"].backends]
    plan, _ = plan_one(fake_model({"Q4_K_M": 10}), p, ctx=8192)
    assert plan.recommendation.tier == "cpu_only" and plan.device.backend == "cpu"
