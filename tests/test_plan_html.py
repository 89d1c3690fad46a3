"""`plan --format html`: the chart's data (planner/ctx_chart.py) against the planner's own numbers,
the page (planner/report/html.py, svg.py) as markup (escaped, self-contained, one chart per
device), and the CLI end to end through the local fake Hub. tests/test_html_browser.py renders
the page in a real browser.

The data tests run the fake estimator (planner/testing/planfakes.py: linear in context, known numbers) on
synthetic profiles; the end-to-end test runs the real-shaped Qwen3-VL-32B repo of the central
command.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from planner.testing import realmodels
from planner.testing.clirun import plan
from planner.testing.planfakes import GIB, LADDER, FakeFacts, apu, fake_estimate, fake_model, gpu_card, mac
from planner.ctx_chart import chart_upper, sample_contexts
from planner.fit import FIT_TARGET_BYTES
from planner.plan import MultiPlan, PlanRequest, Planner
from planner.plan_types import DevicePlan
from planner.report import render_html, render_json, render_text
from planner.report.common import carveout_table, variant_rows

KW = dict(estimate_fn=fake_estimate, facts_fn=FakeFacts.from_headers)
QUANTS = ("Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0")


def model(**kw):
    return fake_model({q: LADDER[q] for q in QUANTS}, kv_token_layer=2048, **kw)


def plan_one(profile, m=None, **req) -> tuple[DevicePlan, Planner]:
    planner = Planner(m or model(), PlanRequest(ctx_chart=True, **req), **KW)
    return planner.plan(profile), planner


# --------------------------------------------------------------------------- the chart's data


def test_the_chart_is_computed_only_when_asked_for():
    planner = Planner(model(), PlanRequest(ctx=16384), **KW)
    p = planner.plan(apu())
    assert p.ctx_chart is None
    assert json.loads(render_json(MultiPlan(plans=[p])))["ctx_chart"] is None
    with_chart, charted = plan_one(apu(), ctx=16384)
    assert with_chart.ctx_chart is not None
    assert charted.n_estimates > planner.n_estimates  # the extra contexts cost estimates a text plan skips
    # and the plan itself does not change
    assert with_chart.recommendation == p.recommendation and with_chart.variants == p.variants


def test_on_one_fixed_split_the_curves_end_where_the_quant_table_says():
    """With --carveout fixed the search's longest contexts are over that one split too: the chart's
    edges, found on its own configuration, must be the same numbers."""
    p, _ = plan_one(apu(), ctx=16384, carveout_bytes=32 * GIB)
    ch = p.ctx_chart
    assert ch.carveout_bytes == 32 * GIB and {c.quant for c in ch.curves} == set(QUANTS)
    for c in ch.curves:
        v = next(x for x in p.variants if x.quant == c.quant)
        assert (c.fits_until_ctx or 0) == v.max_ctx
        assert (c.fast_until_ctx or 0) == (v.max_ctx_fast or 0)
    # the model spans both sides: some quants spill, one does not even stay fast at 256 tokens
    assert any(c.fast_until_ctx and c.fits_until_ctx and c.fast_until_ctx < c.fits_until_ctx for c in ch.curves)


def test_each_point_is_styled_by_what_the_plan_would_say_at_that_context():
    p, _ = plan_one(apu(), ctx=16384)
    ch = p.ctx_chart
    limits = {lim.kind: lim.bytes for lim in ch.limits}
    assert set(limits) == {"fast", "gpu", "os_reserve"}  # Windows: carve-out, shared window, OS reserve
    for c in ch.curves:
        ctxs = [pt.ctx for pt in c.points]
        assert ctxs == sorted(set(ctxs)) and all(x % 256 == 0 for x in ctxs)
        assert all(a.gpu_bytes <= b.gpu_bytes for a, b in zip(c.points, c.points[1:]))
        for pt in c.points:
            want = ("none" if c.fits_until_ctx is None or pt.ctx > c.fits_until_ctx else
                    "fast" if c.fast_until_ctx is not None and pt.ctx <= c.fast_until_ctx else "spill")
            assert pt.placement == want, (c.quant, pt.ctx)
            # the limits are where the plan's own rules give: fast memory holds need + estimate
            # margins, the GPU need + the whole safety
            margins = pt.safety_bytes - FIT_TARGET_BYTES
            if pt.placement == "fast":
                assert pt.gpu_bytes + margins <= limits["fast"]
            if pt.placement != "none":
                assert pt.gpu_bytes + pt.safety_bytes <= min(limits["gpu"], limits["os_reserve"])
        past = next((pt for pt in c.points if pt.placement == "none"), None)
        assert (past is None) == (c.stop is None)
        if c.stop == "gpu_memory":  # sampled on both sides of where it stops loading
            assert past.ctx == (c.fits_until_ctx or 0) + 256 or c.fits_until_ctx is None
            assert past.gpu_bytes + past.safety_bytes > limits["gpu"]
    # a quant can stop before it meets a line: on Windows the weights bound for the carve-out are
    # staged through the RAM Windows sees (the legend says so)
    assert {c.stop for c in ch.curves} <= {None, "gpu_memory", "os_reserve", "load_peak"}


def test_the_recommended_quant_at_the_requested_context_is_the_recommendation():
    p, _ = plan_one(apu(), ctx=16384)
    r = p.recommendation
    rec = [c for c in p.ctx_chart.curves if c.recommended]
    assert [c.quant for c in rec] == [r.quant]
    at = next(pt for pt in rec[0].points if pt.ctx == 16384)
    assert (at.gpu_bytes, at.host_bytes) == (r.gpu_bytes, r.host_bytes)
    assert p.ctx_chart.carveout_bytes == r.carveout_bytes and at.placement == "fast"


def test_os_reserve_line_is_the_arithmetic_of_the_split():
    """Windows APU: the GPU side may grow to the carve-out (after the desktop) plus what the OS sees
    beyond its reserve and the CPU side; independent of the fit solver's code."""
    prof = apu()
    p, _ = plan_one(prof, ctx=16384)
    f = p.fit
    ded = f.carveout_bytes - f.gpu_reserve_bytes
    want = ded + f.os_visible_bytes - f.reserve_bytes - f.host_need_bytes - f.host_safety_bytes
    got = next(lim.bytes for lim in p.ctx_chart.limits if lim.kind == "os_reserve")
    assert got == want
    assert next(lim.bytes for lim in p.ctx_chart.limits if lim.kind == "fast") == ded


def test_limits_per_memory_architecture():
    mac_plan, _ = plan_one(mac(), ctx=16384)
    assert [lim.kind for lim in mac_plan.ctx_chart.limits] == ["gpu", "os_reserve"]
    card_plan, _ = plan_one(gpu_card(vram=24), ctx=16384)
    (vram,) = card_plan.ctx_chart.limits  # a card's RAM holds only the CPU side: no OS line on a GPU chart
    assert vram.kind == "gpu" and vram.bytes == 23 * GIB  # 24 GiB less the 1 GiB the desktop holds
    linux, _ = plan_one(apu(os="linux"), ctx=16384)
    assert [lim.kind for lim in linux.ctx_chart.limits] == ["gpu", "os_reserve"]  # GTT is as fast as the carve-out


def test_nothing_fits_still_charts_the_smallest_quants_split():
    p, _ = plan_one(gpu_card(vram=8, ram=16), ctx=131072)
    assert p.recommendation.tier == "no_fit"
    assert p.ctx_chart is not None and not any(c.recommended for c in p.ctx_chart.curves)
    assert {c.stop for c in p.ctx_chart.curves} == {"gpu_memory"}
    assert "<svg class=\"ctx-chart\"" in render_html(MultiPlan(plans=[p]))


def test_the_contexts_sampled_and_the_span_of_the_chart():
    assert sample_contexts(24576, 131072) == sorted(set(sample_contexts(24576, 131072)))
    got = sample_contexts(24576, 131072, n=4)
    assert got == [256, 24576, 32768, 65536, 98304, 131072]
    # a model trained for 10M tokens that loads up to 80k: the chart runs a quarter past that
    assert chart_upper(24576, 10 * 2**20, 81920) == 102400
    assert chart_upper(4096, 16384, 8192) == 16384  # never past the training context
    assert chart_upper(200000, 131072, 0) == 200000  # nor short of the requested one


# --------------------------------------------------------------------------- the page as markup


class Page(HTMLParser):
    """Tags with their attributes and the text, as a browser's parser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag and (cls is None or cls in a.get("class", "").split())]


def test_one_chart_per_device_with_a_line_per_quant():
    planner = Planner(model(), PlanRequest(ctx=16384, ctx_chart=True), **KW)
    multi = MultiPlan(plans=[planner.plan(p) for p in (apu(), mac(), gpu_card())])
    page = Page(render_html(multi))
    charts = page.find("svg", "ctx-chart")
    assert len(charts) == 3 and len(page.find("section", "device")) == 3
    assert len(page.find("g", "curve")) == 3 * len(QUANTS)
    assert len(page.find("g", "rec")) == sum(p.recommendation.tier != "no_fit" for p in multi.plans)
    assert len(page.find("line", "limit")) == 3 + 2 + 1  # Windows APU, Mac, card
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert len(ids) == len(set(ids))  # clip paths and titles do not collide between devices
    assert len(page.find("svg", "mem-bar")) == sum(len(p.bars) for p in multi.plans)


def test_the_page_fetches_nothing():
    p, _ = plan_one(apu(), ctx=16384)
    out = render_html(MultiPlan(plans=[p]))
    page = Page(out)
    assert page.find("script") == [] and page.find("link") == [] and page.find("img") == []
    assert not [a for _, a in page.tags if "src" in a or "href" in a or "xlink:href" in a]
    assert not re.search(r"https?://", out)
    assert "url(" not in out.replace("url(#d0-chart-plot)", "")  # only the chart's own clip path
    csp = next(a for a in page.find("meta") if a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp["content"] and "script-src" not in csp["content"]


EVIL = '<script>alert("x")</script> & \'q\' \u202eevil'


def test_every_string_from_the_model_is_escaped():
    p, _ = plan_one(apu(), ctx=16384)
    p.model.name = EVIL
    p.recommendation.reasons.append(EVIL)
    p.recommendation.commands.llama_server += " " + EVIL
    p.warnings.append(EVIL)
    p.bars[0].segments[0].label = EVIL
    c = p.ctx_chart.curves[0]
    c.quant = EVIL  # quant tags come from file names
    p.variants[0].quant = EVIL
    out = render_html(MultiPlan(plans=[p]))
    page = Page(out)
    assert page.find("script") == []
    assert "<script>" not in out and "\u202e" not in out  # a bidi override cannot reorder the page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;q&#x27;" in out
    assert sum("alert(\"x\")" in t for t in page.text) >= 5  # the text survives, as text
    assert any(a.get("data-quant", "").startswith("<script>") for a in page.find("g", "curve"))


def test_without_chart_data_the_page_still_renders_the_report():
    planner = Planner(model(), PlanRequest(ctx=16384), **KW)
    p = planner.plan(apu())
    page = Page(render_html(MultiPlan(plans=[p])))
    assert page.find("svg", "ctx-chart") == [] and page.find("svg", "mem-bar")
    assert len(page.find("table")) >= 2


# --------------------------------------------------------------------------- the CLI, end to end

SPEC = realmodels.load_spec("qwen3-vl-32b")


@pytest.fixture(scope="module")
def qwen3vl_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return realmodels.repo_files(SPEC, tmp_path_factory.mktemp("qwen3-vl-32b-html"))


def _cells(page_text: str) -> list[list[str]]:
    """Rows of every table of the page, cell text stripped."""
    rows, row, cell, inside = [], None, [], False

    class T(HTMLParser):
        def handle_starttag(self, tag, attrs):
            nonlocal row, cell, inside
            if tag == "tr":
                row = []
            elif tag in ("td", "th"):
                cell, inside = [], True

        def handle_endtag(self, tag):
            nonlocal row, inside
            if tag in ("td", "th") and row is not None:
                row.append("".join(cell).strip())
                inside = False
            elif tag == "tr" and row is not None:
                rows.append(row)

        def handle_data(self, data):
            if inside:
                cell.append(data)

    T(convert_charrefs=True).feed(page_text)
    return rows


def test_central_command_as_a_page(fake_hub, qwen3vl_files):
    fake_hub.add_repo(SPEC["repo"], qwen3vl_files)
    args = ("qwen3-vl-32b", "--device", "ai-max-395-64g", "--ctx", "24k")
    res = plan(*args, "--format", "html")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    data = json.loads(plan(*args, "--json").stdout)
    dp = DevicePlan.model_validate(data)
    rec = dp.recommendation
    # the page's tables are the text report's cells
    rows = _cells(out)
    for want in variant_rows(dp) + carveout_table(dp.carveout_options)[0]:
        assert [c.strip() for c in want] in rows
    assert out.isascii()  # any shell's redirect writes it intact; ► and → are character references
    assert f"Recommendation: {rec.quant}" in render_text(MultiPlan(plans=[dp]))
    assert f"Recommendation: {rec.quant}" in "".join(Page(out).text)
    # the chart: every quant, the recommended one marked at its GPU need at 24k (as JSON has it)
    page = Page(out)
    assert {a["data-quant"] for a in page.find("g", "curve")} == {v["quant"] for v in data["variants"]}
    assert page.find("g", "rec")[0]["data-quant"] == rec.quant
    assert f"► {rec.quant} {rec.gpu_bytes / GIB:.1f} GiB" in "".join(page.text)
    assert {a["data-kind"] for a in page.find("line", "limit")} == {"fast", "gpu", "os_reserve"}
    assert "UMA frame buffer 32 GB (OS keeps 32 GB)" in out  # BIOS sizes in GB, as the firmware says
    assert "&#9658; Q4_K_M" in out or rec.quant != "Q4_K_M"
    assert data["ctx_chart"] is None  # --json stays as fast as before
