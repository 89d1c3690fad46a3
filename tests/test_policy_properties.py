"""Properties of the decision layer and the speed model over generated models and machines
(planner/testing/planfakes.py's estimator, synthetic profiles): what must hold for every input, not one example."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from planner.testing.planfakes import GIB, LADDER, apu, fake_estimate, fake_model, gpu_card, mac, FakeFacts
from planner.plan import PlanRequest, Planner

KW = dict(estimate_fn=fake_estimate, facts_fn=FakeFacts.from_headers)
ORDER = list(LADDER)

sizes = st.lists(st.sampled_from(ORDER), min_size=1, max_size=5, unique=True)
ctxs = st.sampled_from([4096, 8192, 16384, 32768])


def plan(model, profile, **req):
    return Planner(model, PlanRequest(**req), **KW).plan(profile)


@settings(max_examples=40, deadline=None)
@given(sizes, ctxs, st.sampled_from([32, 64, 128]), st.sampled_from(["daily", "desktop", "headless"]))
def test_a_quant_in_fast_memory_is_never_ranked_below_one_that_spills(quants, ctx, ram, use):
    """Windows shared memory is slower (planner/data/memory.toml): without --allow-spill the choice is
    in fast memory whenever any quant runs there."""
    model = fake_model({q: LADDER[q] for q in quants}, kv_token_layer=2048)
    opts = tuple(o for o in (0.5, 8, 16, 24, 32, 48, 64, 96) if o <= 0.75 * ram)
    p = plan(model, apu(ram=ram, carve_opts=opts), ctx=ctx, use=use)
    fast = [v for v in p.variants if v.placement == "fast"]
    if fast:
        assert p.recommendation.placement == "fast", (p.recommendation.quant, [(v.quant, v.placement) for v in p.variants])
    allowed = plan(model, apu(ram=ram, carve_opts=opts), ctx=ctx, use=use, allow_spill=True)
    if fast and allowed.recommendation.tier != "no_fit":
        # allowing spill never lowers the quality of the choice
        assert ORDER.index(allowed.recommendation.quant) >= ORDER.index(p.recommendation.quant)


@settings(max_examples=30, deadline=None)
@given(sizes, ctxs, st.sampled_from(["apu", "mac", "card"]))
def test_more_ram_never_gives_a_worse_recommendation(quants, ctx, kind):
    model = fake_model({q: LADDER[q] for q in quants}, kv_token_layer=2048)
    make = {"apu": lambda r: apu(ram=r, carve_opts=(0.5, 8, 16, 24, 32, 48)),
            "mac": lambda r: mac(ram=r), "card": lambda r: gpu_card(vram=24, ram=r)}[kind]
    small, big = plan(model, make(64), ctx=ctx, kv_fixed=True), plan(model, make(128), ctx=ctx, kv_fixed=True)
    rank = {"fast": 0, "spill": 1, "partial": 2, "none": 3}
    if small.recommendation.tier == "no_fit":
        return
    assert big.recommendation.tier != "no_fit"
    a, b = small.recommendation, big.recommendation
    # the bigger machine runs a quant at least as good, or a lesser one only in faster memory
    assert ORDER.index(b.quant) >= ORDER.index(a.quant) or rank[b.placement] < rank[a.placement]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(ORDER[:-1]), st.sampled_from([128, 256, 546, 819]), ctxs)
def test_more_bandwidth_is_never_slower_and_deeper_context_never_faster(quant, bw, ctx):
    model = fake_model({quant: LADDER[quant]}, kv_token_layer=2048)
    slow = mac(ram=128)
    fast = slow.model_copy(update={"bandwidth_gbps": slow.bandwidth_gbps * 2})
    a, b = plan(model, slow, ctx=ctx), plan(model, fast, ctx=ctx)
    if a.recommendation.est_tps is None:
        return
    assert b.recommendation.est_tps >= a.recommendation.est_tps
    for v in a.variants:
        if v.est_tps is not None and v.est_tps_at_ctx is not None:
            assert v.est_tps_at_ctx <= v.est_tps


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(ORDER[:-1]), ctxs)
def test_spilling_is_never_faster_than_the_same_quant_in_fast_memory(quant, ctx):
    model = fake_model({quant: LADDER[quant]}, kv_token_layer=2048)
    p = plan(model, apu(ram=64, carve_opts=(0.5, 8, 16, 24, 32, 48)), ctx=ctx, use="headless", allow_spill=True)
    by_place: dict[str, list[float]] = {}
    for c in p.candidates:
        if c.est_tps is not None and c.placement in ("fast", "spill"):
            by_place.setdefault(c.placement, []).append(c.est_tps)
    if "fast" in by_place and "spill" in by_place:
        assert max(by_place["spill"]) <= max(by_place["fast"]) + 1e-6


def test_every_variant_and_candidate_carries_its_speeds():
    model = fake_model({q: LADDER[q] for q in ("Q4_K_M", "Q6_K", "Q8_0")}, kv_token_layer=2048)
    p = plan(model, mac(ram=128), ctx=16384)
    for v in p.variants:
        if v.tier != "no_fit":
            assert v.est_tps and v.est_tps_at_ctx is not None
    for c in p.candidates:
        assert c.placement in ("fast", "spill", "partial", "none")
        if c.tier != "no_fit":
            assert c.est_tps is not None
