"""Properties of the workload planner (planner/workload_plan.py, planner/workload_together.py) over
generated models and machines: planner/testing/planfakes.py's estimator and synthetic profiles, so what is
checked is the choosing, not the real estimator's calibration."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from planner.testing.planfakes import GIB, LADDER, FakeFacts, apu, fake_estimate, fake_model, gpu_card, mac
from planner.fit import place
from planner.plan import PlanRequest, Planner
from planner.search import placement
from planner.workload import Workload, WorkloadEntry
from planner.workload_plan import WorkItem, plan_workload
from planner.workload_together import sum_breakdown

KW = dict(estimate_fn=fake_estimate, facts_fn=FakeFacts.from_headers)
ORDER = list(LADDER)
PLACE_RANK = {"fast": 0, "spill": 1, "partial": 2, "none": 3}
# the single-model policy weighs the slow options (spilling, partial offload) alike, by speed and
# quality (planner/policy.py usable_slow): the set's order does the same
CLASS_RANK = {"fast": 0, "spill": 1, "partial": 1, "none": 2}


def model_spec():
    """A model: a scale of the LADDER sizes (4B to 70B class), some quants of it, dense or MoE."""
    return st.tuples(st.sampled_from([0.3, 0.6, 1.0, 1.6, 2.2]),
                     st.lists(st.sampled_from(ORDER[:-1]), min_size=1, max_size=4, unique=True),
                     st.booleans(), st.sampled_from([4096, 16384, 32768]))


def build(spec, i: int) -> WorkItem:
    scale, quants, moe, ctx = spec
    kw = {"experts": (8, 128)} if moe else {}
    model = fake_model({q: LADDER[q] * scale for q in quants}, kv_token_layer=2048, repo=f"t/M{i}", **kw)
    return WorkItem(entry=WorkloadEntry(ref=f"m{i}", ctx=ctx), model=model)


profiles = st.sampled_from([
    lambda: apu(ram=64), lambda: apu(ram=128, carve_opts=(0.5, 16, 32, 48, 64, 96)),
    lambda: apu(ram=64, os="linux"), lambda: apu(ram=32, carve_opts=(0.5, 4, 8, 16, 24)),
    lambda: mac(ram=64), lambda: gpu_card(vram=24, ram=64)])


def run(items: list[WorkItem], profile, together: bool = False, **req):
    work = Workload(models=[it.entry for it in items], together=together)
    return plan_workload(work, items, PlanRequest(**req), [profile], **KW).devices[0]


def goodness(m) -> tuple:
    """The single-model preference order for one model on one setting."""
    return (m.fits, -CLASS_RANK[m.placement])


# a MoE that runs only where a small carve-out leaves the OS RAM for its experts, then a dense model
# that runs fast only in a 32 GB carve-out: the 32 GB split would drop the MoE
MOE_THEN_DENSE = ([(2.2, ["Q4_K_M"], True, 16384)], (1.0, ["Q4_K_M", "Q6_K", "Q8_0"], False, 16384), lambda: apu(ram=64))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(model_spec(), min_size=1, max_size=3), model_spec(), profiles)
@example(*MOE_THEN_DENSE)
def test_adding_a_model_never_drops_an_earlier_fit_when_a_setting_keeps_them_all(specs, extra, make):
    """The issue's property: with a model added, the chosen setting keeps every earlier model that ran
    on the earlier choice whenever some setting runs all of those and the new one."""
    profile = make()
    items = [build(s, i) for i, s in enumerate(specs)]
    before = run(items, profile)
    kept = {i for i, m in enumerate(next(r for r in before.rows if r.chosen).models) if m.fits}
    after = run(items + [build(extra, len(items))], profile)
    new = len(items)
    possible = any(all(r.models[i].fits for i in kept | {new}) for r in after.rows)
    chosen = next(r for r in after.rows if r.chosen)
    if possible:
        lost = [i for i in kept if not chosen.models[i].fits]
        assert not lost, (before.chosen.label, after.chosen.label, lost)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(model_spec(), min_size=2, max_size=3), profiles, st.sampled_from(["daily", "headless"]))
def test_the_chosen_setting_is_best_for_the_whole_set(specs, make, use):
    """No other setting runs more models, and none is at least as good for every model (runs, then
    memory class, then quality) and better for one: the choice is on the set's Pareto front."""
    items = [build(s, i) for i, s in enumerate(specs)]
    d = run(items, make(), use=use)
    chosen = [r for r in d.rows if r.chosen]
    assert len(chosen) == 1
    c = chosen[0]
    assert c.runs == max(r.runs for r in d.rows)
    assert c.runs == sum(m.fits for m in c.models) and d.serves_all == (c.runs == len(items))
    for r in d.rows:
        if r is c:
            continue
        pairs = list(zip(c.models, r.models))
        better_somewhere = any(goodness(b) > goodness(a) for a, b in pairs)
        worse_nowhere = all(goodness(b) >= goodness(a) for a, b in pairs)
        assert not (better_somewhere and worse_nowhere), (r.setting.label, c.setting.label)
    # losses are named against each model's own best, and only where there are any
    assert d.all_at_best == all(not m.loss for m in c.models)
    assert bool(d.losses) == (not d.all_at_best)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_spec(), profiles)
# every quant spills on this small laptop: the slow Q6_K (under half the speed of the fastest option)
# must lose to Q4_K_M on another split, as the single-model policy decides
@example(spec=(0.3, ["Q3_K_M", "Q4_K_M", "Q6_K"], False, 16384),
         make=lambda: apu(ram=32, carve_opts=(0.5, 4, 8, 16, 24)))
def test_one_model_gets_what_the_single_model_plan_gives(spec, make):
    """The workload path uses the single-model rules: for one model its choice is `plan MODEL`'s."""
    profile = make()
    item = build(spec, 0)
    d = run([item], profile)
    alone = Planner(item.model, PlanRequest(ctx=item.entry.ctx), **KW).plan(profile).recommendation
    got = d.runs[0].recommendation
    assert (got.quant, got.tier, got.placement, got.cache_type_k) == (alone.quant, alone.tier, alone.placement,
                                                                       alone.cache_type_k)
    if alone.tier != "no_fit":
        assert got.carveout_bytes == alone.carveout_bytes and d.all_at_best


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(model_spec(), min_size=2, max_size=3), profiles)
def test_together_fits_only_what_also_runs_one_at_a_time(specs, make):
    """Loaded at once they need at least as much as one at a time: a together plan that fits never
    beats the one-at-a-time plan of a model in memory class or quality, and its sum is placed fully
    on the GPU."""
    items = [build(s, i) for i, s in enumerate(specs)]
    d = run(items, make(), together=True)
    t = d.together
    assert t is not None and t.fits == any(r.fits for r in t.rows) == (d.mode == "together") == d.fits
    if not t.fits:
        assert "take turns" in t.statement
        return
    row = next(r for r in t.rows if r.chosen)
    assert row.placement in ("fast", "spill") and row.setting == d.chosen
    for m, run_ in zip(row.models, d.runs):
        alone = run_.alone
        assert alone.fits and PLACE_RANK[alone.placement] <= PLACE_RANK[m.placement] or alone.placement == "partial"
        assert run_.recommendation.quant == m.quant and run_.recommendation.tier != "no_fit"
    assert row.gpu_bytes >= sum(m.gpu_bytes for m in row.models)


def test_a_sum_is_placed_with_each_models_margins_and_overhead():
    """sum_breakdown: the fit solver sees the models' GPU bytes added, one driver overhead per server
    and each model's estimate margin, with one --fit-target for the GPU."""
    profile = gpu_card(vram=48, ram=128)
    a = fake_model({"Q4_K_M": 8}, kv_token_layer=2048, repo="t/A")
    b = fake_model({"Q8_0": 12}, kv_token_layer=4096, repo="t/B", experts=(8, 64))
    parts = []
    for m, ctx in ((a, 8192), (b, 16384)):
        p = Planner(m, PlanRequest(ctx=ctx), **KW)
        dev = p.setup(profile)
        ev = p.evaluate(m.variants[0], dev, ctx, "f16")
        parts.append((ev.full, ev.options[0]))
    total = place(sum_breakdown(parts), profile, parts[0][1].config)
    assert total.gpu_need_bytes == sum(r.gpu_need_bytes for _, r in parts)
    assert abs(total.margin_bytes - sum(r.margin_bytes for _, r in parts)) <= 2
    fit_target = parts[0][1].safety_bytes - parts[0][1].margin_bytes
    assert total.safety_bytes == total.margin_bytes + fit_target
    assert placement(total) == "fast" and total.gpu_need_bytes < 48 * GIB


def test_when_no_setting_serves_all_it_says_who_loses_what_and_what_switching_costs():
    """A dense model that runs fast only in a 32 GB carve-out and a large MoE that needs the RAM a
    small carve-out leaves: no setting gives both their best. The plan keeps both running, names
    each model's loss per candidate worth weighing, and prices the switch (a BIOS change: reboot)."""
    dense = WorkItem(WorkloadEntry(ref="dense", ctx=16384),
                     fake_model({q: LADDER[q] for q in ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0")}, kv_token_layer=2048,
                                repo="t/Dense"))
    moe = WorkItem(WorkloadEntry(ref="moe", ctx=16384),
                   fake_model({q: LADDER[q] * 2.2 for q in ("Q4_K_M", "Q8_0")}, kv_token_layer=1024,
                              experts=(8, 128), repo="t/Moe"))
    d = run([dense, moe], apu(ram=64))
    assert d.serves_all and not d.all_at_best and d.fits
    chosen = next(r for r in d.rows if r.chosen)
    assert chosen.setting.carveout_bytes != d.runs[0].alone.setting.carveout_bytes
    assert any("dense" in x and "(chosen)" in x for x in d.losses)
    assert any("moe does not run" in x for x in d.losses)  # on the dense model's own best setting
    sw = d.switches[0]
    assert sw.model == "dense" and sw.reboot and "BIOS carve-out" in sw.changes[0]
    assert sw.to.carveout_bytes == d.runs[0].alone.setting.carveout_bytes
    # the same pair on Linux: carve-out and GTT are one fast pool, so one setting serves both at their best
    linux = run([dense, moe], apu(ram=64, os="linux"))
    assert linux.all_at_best and not linux.switches and not linux.losses


def test_a_mac_weighs_its_default_wired_limit_against_the_raise_and_switching_needs_no_reboot():
    big = WorkItem(WorkloadEntry(ref="big", ctx=32768),
                   fake_model({q: LADDER[q] for q in ("Q4_K_M", "Q8_0")}, kv_token_layer=4096, repo="t/Big"))
    small = WorkItem(WorkloadEntry(ref="small", ctx=8192), fake_model({"Q8_0": 8}, repo="t/Small"))
    d = run([big, small], mac(ram=64, default_fraction=0.6, max_fraction=0.9))
    kinds = [r.setting.id for r in d.rows]
    assert kinds[0] == "cap=default" and len(kinds) == 2
    assert d.chosen.cap_change is not None and d.chosen.cap_change.setting.startswith("sudo sysctl iogpu.wired_limit_mb=")
    assert "no reboot" in d.switch_cost


def test_speed_filters_nothing_meets_still_picks_the_best_memory_and_says_so():
    """--min-tps that no model reaches: nothing is served (exit 3), but the setting is still one with
    every model in fast memory (each plan then shows its fastest option, as `plan MODEL` does), and
    each model shows what it would run there."""
    items = [build((1.0, ["Q4_K_M", "Q6_K", "Q8_0"], False, 16384), 0), build((0.6, ["Q4_K_M", "Q8_0"], False, 8192), 1)]
    free = run(items, apu(ram=64))
    strict = run(items, apu(ram=64), min_tps=10_000)
    assert free.fits and not strict.fits and not strict.serves_all and not strict.all_at_best
    row = next(r for r in strict.rows if r.chosen)
    assert row.runs == 0 and all(m.quant and not m.meets_filters and not m.fits for m in row.models)
    assert all(m.placement == "fast" for m in row.models)
    assert any(all(m.placement != "fast" for m in r.models) for r in strict.rows)  # there was a worse choice
