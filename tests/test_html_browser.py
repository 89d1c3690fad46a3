"""The HTML plan in a real browser: headless Chromium (Debian's `chromium` package) loads the page
that `plan --format html` writes for four devices (a Windows Strix Halo laptop, a Mac, a 4090, a
Linux Strix Halo mini PC) and must show no console message (a script error, or a fetch the page's
Content Security Policy blocked, would be one), lay out one chart per device with a line per quant
and its limit lines, and paint them: the screenshots (light and dark) are read back pixel by pixel
and kept as test artifacts in $MEMFIT_TEST_ARTIFACTS, else tests/artifacts/ (ignored by git).

Skipped where no Chromium is installed, except in CI (CI=true), where .ci/run installs it and a
missing browser fails the run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

import pngpixels
from planner.testing import realmodels
from planner.testing.clirun import plan

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DEVICES = ("ai-max-395-64g", "apple-m4-max-64g", "rtx-4090", "ai-max-395-128g-minipc:linux")
WIDTH = 1100
PROBE_HEIGHT = 12000  # the whole page in the viewport, so hit tests reach every chart

# Runs after the page has laid out (end of body): where each chart is, how long each quant's line
# is as drawn, its computed colour, what the browser finds on top at points along the recommended
# line, and any error or CSP violation; written into the DOM, read back with --dump-dom.
PROBE = """<script>
(function () {
  var out = {errors: window.__errors || [], height: document.documentElement.scrollHeight, charts: []};
  document.querySelectorAll('svg.ctx-chart').forEach(function (svg) {
    var r = svg.getBoundingClientRect();
    var chart = {x: r.left, y: r.top, w: r.width, h: r.height, curves: [], limits: []};
    svg.querySelectorAll('g.curve').forEach(function (g) {
      var segs = Array.prototype.slice.call(g.querySelectorAll('polyline'));
      var length = 0, loads = 0, hits = 0, probes = 0;
      segs.forEach(function (pl) {
        length += pl.getTotalLength();
        if (!pl.classList.contains('seg-none')) { loads += pl.getTotalLength(); }
      });
      if (g.classList.contains('rec')) {
        segs.forEach(function (pl) {
          [0.2, 0.4, 0.6, 0.8].forEach(function (f) {
            var p = pl.getPointAtLength(pl.getTotalLength() * f);
            var pt = svg.createSVGPoint(); pt.x = p.x; pt.y = p.y;
            var s = pt.matrixTransform(pl.getScreenCTM());
            var el = document.elementFromPoint(s.x, s.y);
            probes += 1;
            if (el && el.closest && el.closest('g.curve') === g) { hits += 1; }
          });
        });
      }
      chart.curves.push({quant: g.getAttribute('data-quant'), rec: g.classList.contains('rec'),
                         color: getComputedStyle(segs[0]).stroke, length: length, loads: loads, hits: hits, probes: probes,
                         segments: segs.length});
    });
    svg.querySelectorAll('line.limit').forEach(function (l) {
      var b = l.getBoundingClientRect();
      chart.limits.push({kind: l.getAttribute('data-kind'), x: b.left, y: b.top + b.height / 2, w: b.width,
                         color: getComputedStyle(l).stroke});
    });
    out.charts.push(chart);
  });
  document.body.setAttribute('data-probe', JSON.stringify(out));
})();
</script>"""
ERRORS = """<script>
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message || (e.target && e.target.outerHTML))); }, true);
document.addEventListener('securitypolicyviolation', function (e) { window.__errors.push('CSP ' + e.violatedDirective + ' ' + e.blockedURI); });
</script>"""


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but none of chromium, chromium-browser, google-chrome is on PATH: "
                        ".ci/run installs Debian's chromium before the tests")
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium): the page is not rendered")
    return path


@pytest.fixture(scope="module")
def artifacts() -> Path:
    root = Path(os.environ.get("MEMFIT_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The central command's model on four devices, written as `plan --format html` writes it."""
    spec = realmodels.load_spec("qwen3-vl-32b")
    root = tmp_path_factory.mktemp("qwen3-vl-32b-page")
    repo = root / "Qwen3-VL-32B"
    realmodels.repo_files(spec, repo)
    args = [str(repo)] + [x for d in DEVICES for x in ("--device", d)] + ["--ctx", "24k", "--format", "html"]
    res = plan(*args)
    assert res.exit_code == 0, res.output
    out = root / "plan.html"
    out.write_text(res.stdout, encoding="utf-8")
    return out


def run_chromium(browser: str, url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check", "--hide-scrollbars", "--force-device-scale-factor=1",
            f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *extra, url]
    env = dict(os.environ, HOME=str(profile))
    res = subprocess.run(args, capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def console(res: subprocess.CompletedProcess) -> list[str]:
    """What the page said on the browser console (Chromium logs it as `INFO:CONSOLE`)."""
    return [line for line in res.stderr.splitlines() if ":CONSOLE" in line]


class _Body(HTMLParser):
    probe: str = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "body":
            self.probe = dict(attrs).get("data-probe") or ""


def probe(browser: str, page: Path, tmp: Path) -> dict:
    """Load a copy of the page with the probe added (and scripts allowed for it alone)."""
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text  # the page itself runs nothing
    text = text.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    text = text.replace("<head>", "<head>" + ERRORS, 1).replace("</body>", PROBE + "</body>", 1)
    copy = tmp / "probe.html"
    copy.write_text(text, encoding="utf-8")
    res = run_chromium(browser, copy.as_uri(), tmp / "profile-probe", f"--window-size={WIDTH},{PROBE_HEIGHT}",
                       "--virtual-time-budget=3000", "--dump-dom")
    assert console(res) == []
    body = _Body(convert_charrefs=True)
    body.feed(res.stdout)
    assert body.probe, "the probe did not run: " + res.stdout[:500]
    return json.loads(body.probe)


def rgb(css: str) -> tuple[int, int, int]:
    m = re.match(r"rgba?\((\d+), (\d+), (\d+)", css)
    assert m, css
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def test_the_page_renders_in_chromium(browser: str, page: Path, artifacts: Path, tmp_path: Path):
    shutil.copy(page, artifacts / "plan.html")
    found = probe(browser, page, tmp_path)
    assert found["errors"] == []
    charts = found["charts"]
    assert len(charts) == len(DEVICES)
    for chart in charts:
        assert chart["w"] > 600 and chart["h"] > 300  # laid out at a readable size
        assert len(chart["curves"]) == 6  # Q3_K_M ... BF16
        assert all(c["length"] > 50 for c in chart["curves"])  # every line has a drawn path
        assert {lim["kind"] for lim in chart["limits"]} >= {"gpu"} and all(lim["w"] > 600 for lim in chart["limits"])
        rec = [c for c in chart["curves"] if c["rec"]]
        assert len(rec) == 1 and rec[0]["probes"] and rec[0]["hits"] >= 1  # on top where it is drawn

    # the unmodified page: no console message at all, painted in light and in dark
    height = min(found["height"] + 20, 16000)
    shots = {}
    for scheme, flags in (("light", ()), ("dark", ("--force-dark-mode",))):
        png = artifacts / f"plan-{scheme}.png"
        png.unlink(missing_ok=True)
        res = run_chromium(browser, page.as_uri(), tmp_path / f"profile-{scheme}", f"--window-size={WIDTH},{height}",
                           f"--screenshot={png}", *flags)
        assert console(res) == [], console(res)
        shots[scheme] = pngpixels.read_png(png.read_bytes())
        assert (shots[scheme].width, shots[scheme].height) == (WIDTH, height)

    light, dark = shots["light"], shots["dark"]
    assert tuple(light.pixels[5, 5]) == (255, 255, 255) and tuple(dark.pixels[5, 5]) == (0x15, 0x18, 0x1C)
    for chart in charts:
        box = (int(chart["x"]), int(chart["y"]), int(chart["x"] + chart["w"]), int(chart["y"] + chart["h"]))
        for img in (light, dark):
            assert img.colors(box) > 50  # not a blank rectangle
            rec = next(c for c in chart["curves"] if c["rec"])
            # its dot (~75 px) at the requested context, and the 4 px line where it loads, in its colour
            assert img.count(rgb(rec["color"]), box) > 40 + (2 * rec["loads"] if rec["loads"] > 100 else 0)
        for lim in chart["limits"]:  # each limit line painted across the plot in light mode
            y = round(lim["y"])
            x0, x1 = int(lim["x"]), int(lim["x"] + lim["w"])
            color = rgb(lim["color"])
            painted = max(light.count(color, (x0, yy, x1, yy + 1), tol=70) for yy in (y - 1, y, y + 1))
            assert painted > 0.3 * (x1 - x0), (lim, painted)
