"""The fit solver on hand-built breakdowns and synthetic device profiles (exact arithmetic).

Profiles here are built in the test so every number is known; the shipped profiles are exercised
by test_plan_e2e.py.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from planner.testing.planfakes import apu, gpu_card, mac
from planner.device_schema import DeviceProfile
from planner.estimate_types import Breakdown, DeviceUsage, LayerUsage, RunSettings
from planner.fit import FIT_TARGET_BYTES, FitConfig, last_fitting, place
from planner.runtime.llamacpp.offload import solve

GIB = 1024**3
MIB = 1024**2


def bd(gpu_w=0.0, gpu_kv=0.0, gpu_c=0.0, host_w=0.5, host_c=0.1, *, overhead=0.0, estimated=None,
       n_layer=8, ngl=-1, ncm=0, layer_kv_cells=4096, backend="vulkan") -> Breakdown:
    """A breakdown in GiB; the layers share the GPU weights/KV evenly."""
    g = lambda x: int(x * GIB)  # noqa: E731
    gpu = DeviceUsage(device="gpu", weights_bytes=g(gpu_w), kv_bytes=g(gpu_kv), compute_bytes=g(gpu_c))
    host = DeviceUsage(device="host", weights_bytes=g(host_w), compute_bytes=g(host_c))
    layers = [LayerUsage(index=i, weights_bytes=g(gpu_w) // n_layer, kv_bytes=g(gpu_kv) // n_layer,
                         kv_cells=layer_kv_cells) for i in range(n_layer)]
    return Breakdown(
        weights_bytes=g(gpu_w + host_w), kv_bytes=g(gpu_kv), recurrent_bytes=0, compute_bytes=g(gpu_c + host_c),
        output_bytes=0, total_bytes=gpu.total_bytes + host.total_bytes, overhead_bytes=g(overhead),
        devices=[gpu, host], layers=layers, n_ctx=layer_kv_cells, kv_cells=layer_kv_cells, flash_attn=True,
        settings=RunSettings(n_ctx=layer_kv_cells, n_gpu_layers=ngl, n_cpu_moe=ncm, backend=backend),
        estimated=estimated or {},
    )


def cfg(os="windows", carve=None, use="daily", backend="vulkan", desktop_gpu=0.0, **kw) -> FitConfig:
    """A configuration. On an APU the desktop's GPU memory is 0 unless a test is about it (pool
    arithmetic stays exact); desktop_gpu=None takes the profile's (discrete cards)."""
    return FitConfig(os=os, use=use, backend=backend, carveout_bytes=None if carve is None else int(carve * GIB),
                     gpu_reserve_bytes=None if desktop_gpu is None else int(desktop_gpu * GIB), **kw)


def failed(r) -> set[str]:
    return {c.name for c in r.blocking_failures}


# --------------------------------------------------------------------------- carve-out devices


def test_dedicated_when_the_carveout_holds_it_and_pools_are_exact():
    p = apu()
    r = place(bd(gpu_w=20, gpu_kv=4, gpu_c=1), p, cfg(carve=32))
    assert r.tier == "dedicated"
    assert r.os_visible_bytes == 32 * GIB
    assert r.gpu_cap_bytes == 16 * GIB  # Windows: half of the RAM the OS sees
    assert r.gpu_capacity_bytes == 48 * GIB
    assert r.gpu_need_bytes == 25 * GIB and r.shared_used_bytes == 0
    assert r.safety_bytes == FIT_TARGET_BYTES
    # OS side: 32 visible - 16 reserve - 0.6 host = 15.4 spare
    assert r.os_free_bytes == 32 * GIB - 16 * GIB - int(0.5 * GIB) - int(0.1 * GIB)
    pools = {x.name: x for x in r.pools}
    assert pools["dedicated"].capacity_bytes == 32 * GIB and pools["dedicated"].used_bytes == 25 * GIB
    assert pools["shared"].used_bytes == 0


def test_shared_when_it_spills_past_the_carveout_and_the_cost_is_named():
    r = place(bd(gpu_w=28, gpu_kv=4, gpu_c=1), apu(), cfg(carve=24))
    assert r.tier == "shared"
    assert r.shared_used_bytes == 9 * GIB  # 33 GiB need - 24 GiB carve-out
    assert "Windows" in r.shared_cost or "WDDM" in r.shared_cost
    assert 0 < r.shared_fraction < 1


def test_linux_shared_costs_nothing_but_says_so():
    r = place(bd(gpu_w=20, gpu_kv=2, gpu_c=1), apu(os="linux"), cfg(os="linux", carve=0.5, gpu_cap_bytes=40 * GIB))
    assert r.tier == "shared"
    assert r.shared_slowdown == 1.0 and "no speed cost" in r.shared_cost
    assert r.spill_bytes == 0 and r.fast_spare_bytes > 0  # GTT runs at device speed


def test_a_big_carveout_that_starves_the_os_is_no_fit_even_if_the_gpu_holds_it():
    # 48 GiB carve-out on 64 GiB: the OS sees 16 GiB, exactly its daily reserve, and needs host parts too
    r = place(bd(gpu_w=30, gpu_kv=4, gpu_c=1), apu(), cfg(carve=48))
    assert r.gpu_need_bytes + r.safety_bytes <= r.gpu_capacity_bytes
    assert r.tier == "no_fit" and "os_reserve" in failed(r) and "gpu_memory" not in failed(r)
    assert r.os_visible_bytes - r.host_need_bytes < r.reserve_bytes
    assert "reserve" in r.short_reason


def test_gpu_capacity_failure_reports_the_shortfall():
    r = place(bd(gpu_w=40, gpu_kv=4, gpu_c=1), apu(), cfg(carve=0.5))
    assert r.tier == "no_fit" and "gpu_memory" in failed(r)
    need = r.gpu_need_bytes + r.safety_bytes
    check = next(c for c in r.checks if c.name == "gpu_memory")
    assert check.deficit_bytes == need - r.gpu_capacity_bytes > 0
    assert r.shortfall_bytes >= check.deficit_bytes
    assert r.slack_bytes < 0


def test_safety_is_fit_target_plus_estimate_margins():
    b = bd(gpu_w=10, gpu_kv=2, gpu_c=2, overhead=1, estimated={"compute": 0.25, "overhead": 0.5})
    r = place(b, apu(), cfg(carve=32))
    assert r.safety_bytes == FIT_TARGET_BYTES + int(0.25 * 2 * GIB) + int(0.5 * 1 * GIB)
    assert r.host_safety_bytes == int(round(0.25 * 0.1 * GIB))


def test_exact_edge_of_the_carveout_counts_the_estimate_margins():
    # need + estimate margins == carve-out -> dedicated; one byte more -> shared. llama.cpp's 1 GiB fit
    # target is headroom against the whole GPU budget: past the carve-out it only costs speed.
    carve = 16
    b = bd(gpu_w=14, gpu_c=0.8, estimated={"compute": 0.25}, host_c=0.0)
    r = place(b, apu(), cfg(carve=carve))
    assert r.tier == "dedicated"
    assert r.fast_spare_bytes == carve * GIB - r.gpu_need_bytes - r.margin_bytes > 0
    assert r.margin_bytes == round(0.25 * b.device("gpu").compute_bytes)
    b2 = bd(gpu_w=14 + (r.fast_spare_bytes + 1) / GIB, gpu_c=0.8, estimated={"compute": 0.25}, host_c=0.0)
    r2 = place(b2, apu(), cfg(carve=carve))
    assert r2.fast_spare_bytes < 0 and r2.tier == "shared"


def test_driver_overhead_is_the_larger_of_estimator_and_profile():
    r = place(bd(gpu_w=10, overhead=0.25), apu(), cfg(carve=32, backend="rocm"))
    assert r.overhead_bytes == int(0.75 * GIB)  # the profile's ROCm figure wins over 0.25
    r2 = place(bd(gpu_w=10, overhead=1.5), apu(), cfg(carve=32, backend="rocm"))
    assert r2.overhead_bytes == int(1.5 * GIB)


def test_single_allocation_beyond_the_backend_limit_fails():
    b = bd(gpu_w=10)
    ok = place(b, apu(), cfg(carve=32, backend="amdvlk"), largest_weight_bytes=GIB)
    assert ok.fits and any(c.name == "max_alloc" and c.ok for c in ok.checks)
    bad = place(b, apu(), cfg(carve=32, backend="amdvlk"), largest_weight_bytes=3 * GIB)
    assert bad.tier == "no_fit" and failed(bad) == {"max_alloc"}
    # the same tensor is fine on a backend without a known limit
    assert place(b, apu(), cfg(carve=32, backend="vulkan"), largest_weight_bytes=3 * GIB).fits


def test_a_kv_layer_tensor_counts_as_a_single_allocation():
    # 8 layers x 40 GiB/8 = 5 GiB of KV per layer -> K and V 2.5 GiB each, over AMDVLK's 2 GiB
    b = bd(gpu_w=4, gpu_kv=40)
    r = place(b, apu(ram=128, reserve=16, carve_opts=(0.5, 64, 96)), cfg(carve=96, backend="amdvlk"))
    assert "max_alloc" in failed(r)


def test_load_peak_staging_must_not_eat_the_reserve():
    # Linux: the largest tensor passes through a host buffer; the OS side ends with a little spare and
    # staging a tensor bigger than that pushes it under the reserve
    p = apu(os="linux")
    b = bd(gpu_w=30, gpu_kv=0, gpu_c=0.0, host_w=0.5, host_c=0.1)
    c = cfg(os="linux", carve=48, use="headless")
    r_small = place(b, p, c, largest_weight_bytes=GIB // 4)
    assert r_small.os_free_bytes > 0 and r_small.fits
    spare = r_small.os_free_bytes
    r_big = place(b, p, c, largest_weight_bytes=spare + GIB)
    assert r_big.tier == "no_fit" and failed(r_big) == {"load_peak"}
    assert r_big.load_peak_bytes > r_big.os_visible_bytes - r_big.reserve_bytes


def test_windows_stages_carveout_bound_weights_through_the_ram_it_sees():
    # 24 GiB of weights: at 48/16 half of them (12 GiB) would have to sit in the 16 GiB Windows sees
    # beside its 8 GiB minimum: the load fails for every use; at 32/32 it loads (field A9/A10)
    b = bd(gpu_w=24, gpu_kv=4, gpu_c=0.3)
    for use in ("headless", "desktop", "daily"):
        r48 = place(b, apu(), cfg(carve=48, use=use, desktop_gpu=2.2))
        assert "load_peak" in failed(r48), use
        assert "carve-out" in next(c.message for c in r48.checks if c.name == "load_peak")
    r32 = place(b, apu(), cfg(carve=32, use="daily", desktop_gpu=2.2))
    assert r32.fits and r32.staging_bytes == int(0.5 * 24 * GIB)


def test_the_desktop_holds_part_of_the_carveout_and_spills_the_model():
    b = bd(gpu_w=20, gpu_kv=8, gpu_c=1)  # 29 GiB
    clear = place(b, apu(), cfg(carve=32))
    desk = place(b, apu(), cfg(carve=32, desktop_gpu=4))
    assert clear.tier == "dedicated" and desk.tier == "shared"
    assert desk.gpu_capacity_bytes == clear.gpu_capacity_bytes - 4 * GIB
    assert desk.shared_used_bytes == 29 * GIB - 28 * GIB
    assert desk.spill_bytes == desk.shared_used_bytes and desk.shared_slowdown > 2  # Windows Vulkan (field A1/A2)


def test_keep_model_in_memory_holds_a_second_copy_in_ram():
    b = bd(gpu_w=20, gpu_kv=2, gpu_c=0.5)
    off = place(b, apu(), cfg(carve=32))
    on = place(b, apu(), cfg(carve=32, keep_in_memory=True))
    assert off.os_free_bytes - on.os_free_bytes == b.weights_bytes
    assert not on.fits and "Keep Model in Memory" in next(c.message for c in on.checks if c.name == "os_reserve")


def test_mmap_page_cache_pressure_suggests_no_mmap_without_blocking():
    b = bd(gpu_w=30, gpu_kv=2, gpu_c=1)
    r = place(b, apu(), cfg(carve=32))
    assert r.fits and r.suggest_no_mmap
    assert any(c.name == "page_cache" and not c.blocking for c in r.checks)
    assert "CPU cannot address the carve-out" in " ".join(r.warnings)
    off = place(b, apu(), cfg(carve=32, mmap=False))
    assert not off.suggest_no_mmap
    small = place(bd(gpu_w=4), apu(), cfg(carve=32))
    assert not small.suggest_no_mmap


def test_metal_maps_the_file_without_a_second_copy():
    r = place(bd(gpu_w=40, gpu_kv=2, gpu_c=1, backend="metal"), mac(), cfg(os="macos", use="headless", backend="metal"))
    assert not r.suggest_no_mmap


# --------------------------------------------------------------------------- unified and discrete


def test_unified_working_set_limit_and_raising_it():
    p = mac(ram=64, reserve=8)
    b = bd(gpu_w=44, gpu_kv=4, gpu_c=1, backend="metal")
    r = place(b, p, cfg(os="macos", use="desktop", backend="metal"))
    assert r.gpu_cap_bytes == 48 * GIB and r.tier == "no_fit" and failed(r) == {"gpu_memory"}
    assert r.needed_cap_bytes == r.gpu_need_bytes + r.safety_bytes
    raised = place(b, p, cfg(os="macos", use="desktop", backend="metal", gpu_cap_bytes=52 * GIB))
    assert raised.tier == "dedicated" and raised.gpu_cap_default_bytes == 48 * GIB
    # the OS side counts GPU bytes too: a 6 GiB-reserve machine could go higher than an 8 GiB one
    assert raised.os_free_bytes == 64 * GIB - 8 * GIB - (r.gpu_need_bytes + r.safety_bytes) - r.host_need_bytes


def test_unified_os_reserve_binds_before_the_cap():
    p = mac(ram=64, reserve=8, max_fraction=1.0)
    b = bd(gpu_w=54, gpu_kv=1, gpu_c=1, backend="metal")
    r = place(b, p, cfg(os="macos", use="daily", backend="metal", gpu_cap_bytes=60 * GIB))
    assert "os_reserve" in failed(r)


def test_discrete_vram_minus_desktop_and_host_ram():
    p = gpu_card(vram=24, ram=64, vram_reserve=1.0)
    r = place(bd(gpu_w=18, gpu_kv=3, gpu_c=0.5, backend="cuda"), p, cfg(os="linux", use="desktop", backend="cuda", desktop_gpu=None))
    assert r.gpu_capacity_bytes == 23 * GIB
    assert r.overhead_bytes == GIB // 2
    assert r.tier == "dedicated" and r.carveout_bytes is None
    too_big = place(bd(gpu_w=21, gpu_kv=2, gpu_c=0.5, backend="cuda"), p, cfg(os="linux", use="desktop", backend="cuda", desktop_gpu=None))
    assert too_big.tier == "no_fit"


def test_cpu_backend_is_a_cpu_plan():
    r = place(bd(gpu_w=4), apu(), cfg(carve=8, backend="cpu"))
    assert r.tier == "cpu_only" and r.fits and r.gpu_need_bytes == 0 and r.host_need_bytes >= 4 * GIB
    too_big = place(bd(gpu_w=60), apu(), cfg(carve=8, backend="cpu"))
    assert too_big.tier == "no_fit" and not too_big.fits


def test_backend_report_warns_when_llama_cpp_will_see_less():
    p = DeviceProfile.model_validate({**apu().model_dump(), "os": {
        **apu().model_dump()["os"],
        "windows": {**apu().model_dump()["os"]["windows"],
                    "backends": [{"name": "vulkan", "reports_as": "carveout"}]}}})
    r = place(bd(gpu_w=20, gpu_kv=2, gpu_c=1), p, cfg(carve=16))
    assert r.fits and r.reported_bytes == 16 * GIB
    assert any("report only" in w for w in r.warnings)


# --------------------------------------------------------------------------- partial offload search

N_LAYER = 48
LAYER = 0.5  # GiB per layer
EXPERT_SHARE = 0.8


def linear_estimator(calls: list):
    """A dense/MoE model of 48 x 0.5 GiB layers: GPU bytes are exactly linear in -ngl/--n-cpu-moe."""
    def est(ngl: int, ncm: int) -> Breakdown:
        calls.append((ngl, ncm))
        on = N_LAYER if ngl < 0 or ngl > N_LAYER else ngl
        gpu_layers = [i for i in range(N_LAYER) if i >= N_LAYER - on]
        gpu_bytes = 0.0
        host_bytes = 1.0
        layers = []
        for i in range(N_LAYER):
            on_gpu = i in gpu_layers
            experts_gpu = on_gpu and i >= ncm
            w = LAYER * (1 - EXPERT_SHARE) * on_gpu + LAYER * EXPERT_SHARE * experts_gpu
            gpu_bytes += w
            host_bytes += LAYER - w
            layers.append(LayerUsage(index=i, weights_bytes=int(LAYER * GIB), expert_bytes=int(LAYER * EXPERT_SHARE * GIB),
                                     on_gpu=on_gpu, experts_on_gpu=experts_gpu, kv_bytes=0, kv_cells=4096))
        g = lambda x: int(x * GIB)  # noqa: E731
        gpu = DeviceUsage(device="gpu", weights_bytes=g(gpu_bytes), compute_bytes=g(0.5))
        host = DeviceUsage(device="host", weights_bytes=g(host_bytes))
        return Breakdown(weights_bytes=g(N_LAYER * LAYER + 1), kv_bytes=0, recurrent_bytes=0, compute_bytes=g(0.5),
                         output_bytes=0, total_bytes=gpu.total_bytes + host.total_bytes, devices=[gpu, host],
                         layers=layers, n_ctx=4096, kv_cells=4096, flash_attn=True,
                         settings=RunSettings(n_ctx=4096, n_gpu_layers=ngl, n_cpu_moe=ncm, backend="cuda"))
    return est


def test_dense_partial_offload_finds_the_largest_ngl_with_few_estimates():
    calls: list = []
    p = gpu_card(vram=16, ram=64, vram_reserve=0)
    r = solve(linear_estimator(calls), p, cfg(os="linux", use="headless", backend="cuda"), n_layer=N_LAYER, is_moe=False)
    # 16 GiB - 0.5 overhead - 0.5 compute - 1 safety = 14 GiB -> 28 layers of 0.5 GiB
    assert r.tier == "partial_offload" and r.n_gpu_layers == 28
    assert len(calls) <= 8, calls


def test_moe_partial_offload_moves_experts_first():
    calls: list = []
    p = gpu_card(vram=16, ram=64, vram_reserve=0)
    r = solve(linear_estimator(calls), p, cfg(os="linux", use="headless", backend="cuda"), n_layer=N_LAYER, is_moe=True)
    # all attention on the GPU: 48 x 0.1 = 4.8 GiB; experts 0.4 GiB/layer in 14 - 4.8 = 9.2 GiB -> 23 layers
    assert r.tier == "partial_offload" and r.n_gpu_layers == -1
    assert r.n_cpu_moe == N_LAYER - 23
    assert len(calls) <= 9, calls


def test_partial_offload_falls_back_to_layers_when_even_no_experts_do_not_fit():
    calls: list = []
    p = gpu_card(vram=6, ram=64, vram_reserve=0)
    r = solve(linear_estimator(calls), p, cfg(os="linux", use="headless", backend="cuda"), n_layer=N_LAYER, is_moe=True)
    # 6 - 0.5 - 0.5 - 1 = 4 GiB: dense parts alone (4.8) do not fit; 0.1 GiB per layer with experts on CPU -> 40
    assert r.tier == "partial_offload" and r.n_cpu_moe == N_LAYER and r.n_gpu_layers == 40


def test_nothing_fits_when_the_host_side_is_short_too():
    p = gpu_card(vram=8, ram=12, vram_reserve=0)
    r = solve(linear_estimator([]), p, cfg(os="linux", use="headless", backend="cuda"), n_layer=N_LAYER, is_moe=False)
    assert r.tier == "no_fit"


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 4000), st.integers(1, 4000), st.sampled_from([1, 7, 256]),
       st.floats(0.2, 3.0), st.integers(-500, 500))
def test_last_fitting_matches_brute_force(lo, span, step, power, offset):
    hi = lo + span // step * step
    boundary = lo + (span * 0.6)

    def slack(x: int) -> float:  # decreasing, not linear
        return (boundary + offset) ** power - x ** power if boundary + offset > 0 else -x - 1

    expected = None
    for x in range(lo, hi + 1, step):
        if slack(x) >= 0:
            expected = x
    assert last_fitting(slack, lo, hi, step) == expected


def test_per_device_overhead_goes_to_its_own_side():
    b = bd(gpu_w=10, host_w=0.5, host_c=0.1)
    b.devices[0].overhead_bytes = int(0.3 * GIB)
    b.devices[1].overhead_bytes = int(0.25 * GIB)
    b.overhead_bytes = int(0.55 * GIB)
    r = place(b, apu(), cfg(carve=32))
    assert r.overhead_bytes == int(0.3 * GIB)
    assert r.gpu_need_bytes == 10 * GIB + int(0.3 * GIB)
    assert r.host_need_bytes == int(0.5 * GIB) + int(0.1 * GIB) + int(0.25 * GIB)
    # the profile's measured driver context is a floor for the GPU side
    assert place(b, apu(), cfg(carve=32, backend="rocm")).overhead_bytes == int(0.75 * GIB)
