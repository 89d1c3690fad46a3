"""Section A's workload end to end: `plan glm-4.7-flash@198k qwen3-vl-32b@24k` through the local
Hub (aliases -> listings -> ranged header reads -> estimator -> one setting for both).

The owner of the 64 GB laptop (../shared/reference/field-evidence.md section A,
validation/field/section_a.toml) runs GLM-4.7-Flash for long-context coding and Qwen3-VL-32B for
screenshots, both at a 32 GB carve-out (32/32): GLM-4.7-Flash Q4_K_M ran at 198K there (A5) and
failed to load at 512 MB (A4); Q5_K_M is the largest Qwen3-VL quant that runs inside 32 GB (A9);
48/16 failed to load (A10). The workload plan must agree, and the 128 GB mini-PC must show where it
differs. Repos are real-shaped sparse GGUFs (exact headers): GLM-4.7-Flash from
validation/field/models, Qwen3-VL-32B (with its projector) from planner/testing/data."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import pytest

from planner.testing import realmodels
from planner.testing.clirun import plan
from validation.field.make_specs import load_spec, sparse_gguf

ROOT = Path(__file__).resolve().parent.parent

GIB = 1024**3
GLM = load_spec("glm-4.7-flash")
QWEN = realmodels.load_spec("qwen3-vl-32b")
QWEN_LADDER = ["Q3_K_M", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "BF16"]
WORKLOAD = ("glm-4.7-flash@198k", "qwen3-vl-32b@24k")
LAPTOP, MINI = "ai-max-395-64g", "ai-max-395-128g-minipc"
EVIDENCE = {o["id"]: o for o in tomllib.loads((ROOT / "validation/field/section_a.toml").read_text())["obs"]}


@pytest.fixture(scope="module")
def section_a_repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    glm_dir = tmp_path_factory.mktemp("glm-4.7-flash")
    glm = {p.name: p for p in (sparse_gguf("glm-4.7-flash", q, glm_dir) for q in GLM["mixes"])}
    qwen = realmodels.repo_files(QWEN, tmp_path_factory.mktemp("qwen3-vl-32b"))
    return {GLM["repo"]: glm, QWEN["repo"]: qwen}


@pytest.fixture
def hub(fake_hub, section_a_repos):
    for repo, files in section_a_repos.items():
        fake_hub.add_repo(repo, files)
    return fake_hub


def plan_json(*args: str, code: int = 0) -> dict:
    r = plan(*args, "--json")
    assert r.exit_code == code, r.output
    return json.loads(r.stdout)


def row_at(device: dict, carve_gib: float) -> dict:
    return next(r for r in device["rows"] if r["setting"]["carveout_bytes"] == int(carve_gib * GIB))


def by_label(models: list[dict]) -> dict[str, dict]:
    return {m["label"]: m for m in models}


def test_the_64_gb_laptop_gets_the_owners_32_32_split_for_both(hub):
    data = plan_json(*WORKLOAD, "--device", LAPTOP)
    d = data["devices"][0]
    assert [m["label"] for m in data["models"]] == ["glm-4.7-flash", "qwen3-vl-32b"]
    assert [m["ctx"] for m in data["models"]] == [198 * 1024, 24 * 1024]
    assert data["models"][0]["repo"] == GLM["repo"] and data["models"][1]["repo"] == QWEN["repo"]
    assert data["models"][1]["mmproj"] == QWEN["mmproj"]["file"]
    # one setting: the owner's 32/32 (A2, A5, A9)
    assert d["chosen"]["carveout_bytes"] == 32 * GIB and d["chosen"]["os_keeps_bytes"] == 32 * GIB
    assert d["chosen"]["bios"].startswith("UMA frame buffer 32 GB, OS keeps 32 GB")
    chosen = next(r for r in d["rows"] if r["chosen"])
    assert chosen["setting"] == d["chosen"] and d["serves_all"] and d["fits"]
    glm, qwen = by_label(chosen["models"])["glm-4.7-flash"], by_label(chosen["models"])["qwen3-vl-32b"]

    # A5: GLM-4.7-Flash Q4_K_M ran at 198K in the 32 GB carve-out: the plan runs it there at least as well
    a5 = EVIDENCE["A5"]
    assert a5["machine"]["carveout_gib"] == 32 and a5["settings"]["ctx"] == data["models"][0]["ctx"]
    assert glm["placement"] == "fast" and glm["tier"] == "dedicated"
    assert list(GLM["mixes"]).index(glm["quant"]) >= list(GLM["mixes"]).index(a5["model"]["quant"])
    # A9: Q5_K_M is the largest Qwen3-VL quant inside 32 GB; Q6_K spills
    a9 = EVIDENCE["A9"]
    assert qwen["placement"] == "fast" and qwen["quant"] in ("Q4_K_M", a9["outcome"]["largest_in_dedicated"])
    assert QWEN_LADDER.index(qwen["quant"]) < QWEN_LADDER.index(a9["model"]["quant"])
    # A4: at 512 MB GLM-4.7-Flash does not run fully on the GPU at 198K
    a4 = EVIDENCE["A4"]
    small = by_label(row_at(d, a4["machine"]["carveout_gib"])["models"])["glm-4.7-flash"]
    assert a4["outcome"]["loaded"] is False and small["placement"] != "fast"
    # A10: 48/16 fails to load Qwen3-VL: the row says it does not run, and names the load path
    a10 = EVIDENCE["A10"]
    big = by_label(row_at(d, a10["machine"]["carveout_gib"])["models"])["qwen3-vl-32b"]
    assert a10["outcome"]["loaded"] is False and not big["fits"] and "load_peak" in big["blocked_by"]

    # both at their best: the plan each gets alone is the same split and quant
    assert d["all_at_best"] and not d["losses"] and not d["switches"]
    for run in d["runs"]:
        assert run["alone"]["setting"]["carveout_bytes"] == 32 * GIB
        assert run["alone"]["quant"] == run["recommendation"]["quant"]
    assert "fast memory" in d["reason"]
    # launch lines: each model's own llama-server line, at its own context
    cmds = [r["recommendation"]["commands"]["llama_server"] for r in d["runs"]]
    assert cmds[0].startswith(f"llama-server -hf {GLM['repo']}:{glm['quant']} -c {198 * 1024} -ngl 999")
    assert cmds[1].startswith(f"llama-server -hf {QWEN['repo']}:{qwen['quant']} -c {24 * 1024} -ngl 999")
    # the trade-off table covers every BIOS option, one row marked
    assert len(d["rows"]) == len(d["device"]["carveout_options_bytes"]) and sum(r["chosen"] for r in d["rows"]) == 1


def test_the_128_gb_mini_pc_differs_where_the_laptop_runs_out(hub, monkeypatch):
    """A buyer's comparison: the mini-PC holds Q8_0 of both in its carve-out and still leaves the OS at
    least 32 GB (section A's conclusion); the laptop needs Q4/Q5-class quants. Text, markdown and
    JSON all say where they differ."""
    data = plan_json(*WORKLOAD, "-d", LAPTOP, "-d", MINI)
    laptop, mini = data["devices"]
    assert laptop["chosen"]["carveout_bytes"] == 32 * GIB
    assert mini["chosen"]["carveout_bytes"] >= 48 * GIB and mini["chosen"]["os_keeps_bytes"] >= 32 * GIB
    cells = {(c["device"], c["model"]): c for c in data["matrix"]}
    assert len(cells) == 4
    for model in ("glm-4.7-flash", "qwen3-vl-32b"):
        lap, big = cells[(LAPTOP, model)], cells[(MINI, model)]
        assert big["quant"] == "Q8_0" and big["placement"] == "fast"
        assert lap["placement"] == "fast" and lap["quant"] != "Q8_0"
        assert big["setting"] == mini["chosen"]["label"] and lap["setting"] == laptop["chosen"]["label"]
        for c in (lap, big):
            assert c["est_tps"] > c["est_tps_at_ctx"] > 0 and c["est_prefill_tps"] > 0 and c["est_ttft_s"] > 0
    diffs = {x["model"]: x for x in data["differences"]}
    assert set(diffs) == {"glm-4.7-flash", "qwen3-vl-32b"}
    for model, x in diffs.items():
        assert "quant" in x["fields"] and LAPTOP in x["text"] and MINI in x["text"], x
        assert cells[(LAPTOP, model)]["quant"] in x["text"] and "Q8_0" in x["text"]

    for width in (80, 120):
        monkeypatch.setenv("COLUMNS", str(width))
        r = plan(*WORKLOAD, "-d", LAPTOP, "-d", MINI)
        assert r.exit_code == 0, r.output
        wide = [line for line in r.stdout.splitlines() if len(line) > width]
        assert not wide, (width, wide)
        assert "Buyer's matrix" in r.stdout and "Where they differ" in r.stdout
        assert f"{LAPTOP}  " in r.stdout and f"{MINI}  " in r.stdout
    md = plan(*WORKLOAD, "-d", LAPTOP, "-d", MINI, "--format", "markdown").stdout
    header = next(line for line in md.splitlines() if line.startswith("| device") and "glm-4.7-flash @198k" in line)
    assert "qwen3-vl-32b @24k" in header
    assert any(line.startswith(f"| {MINI}") and "Q8_0" in line for line in md.splitlines())


def test_model_at_ctx_alone_is_the_single_model_plan(hub):
    """One MODEL@CTX is the ordinary plan at that context: the same JSON as --ctx."""
    a = plan_json("qwen3-vl-32b@24k", "-d", LAPTOP)
    b = plan_json("qwen3-vl-32b", "--ctx", "24k", "-d", LAPTOP)
    for x in (a, b):
        x.pop("elapsed_ms")
    assert a == b and a["recommendation"]["quant"] in ("Q4_K_M", "Q5_K_M")


def test_loaded_together_the_laptop_must_take_turns_and_the_mini_pc_holds_both(hub, monkeypatch):
    data = plan_json(*WORKLOAD, "--together", "-d", LAPTOP, "-d", MINI)
    laptop, mini = data["devices"]
    assert data["together"] and data["fits"]
    assert not laptop["together"]["fits"] and "take turns" in laptop["together"]["statement"]
    assert laptop["mode"] == "one_at_a_time" and not laptop["fits"]
    assert laptop["chosen"]["carveout_bytes"] == 32 * GIB  # one at a time they still share 32/32
    t = mini["together"]
    assert t["fits"] and mini["mode"] == "together" and mini["fits"]
    row = next(r for r in t["rows"] if r["chosen"])
    assert row["setting"] == mini["chosen"] and row["placement"] == "fast"
    # the sum holds both servers: more GPU memory than either alone, within the carve-out (and the
    # carve-out less what the desktop holds)
    assert row["gpu_bytes"] >= sum(m["gpu_bytes"] for m in row["models"])
    assert row["gpu_bytes"] < row["setting"]["carveout_bytes"] and row["fast_spare_bytes"] >= 0
    assert [r["recommendation"]["quant"] for r in mini["runs"]] == [m["quant"] for m in row["models"]]
    assert plan(*WORKLOAD, "--together", "-d", LAPTOP).exit_code == 3  # nothing holds them at once
    for width in (80, 120):
        monkeypatch.setenv("COLUMNS", str(width))
        text = plan(*WORKLOAD, "--together", "-d", LAPTOP, "-d", MINI).stdout
        assert "must take turns" in text and "they run together on" in text
        assert not [line for line in text.splitlines() if len(line) > width], width
    md = plan(*WORKLOAD, "--together", "-d", MINI, "--format", "markdown").stdout
    assert "Together: every model loaded at once" in md and "**Together:** they run together" in md


def test_a_workload_file_plans_the_same_as_the_command_line(hub, tmp_path, monkeypatch):
    f = tmp_path / "workload.toml"
    f.write_text('[[model]]\nref = "glm-4.7-flash"\nctx = "198k"\nname = "coding"\n\n'
                 '[[model]]\nref = "qwen3-vl-32b"\nctx = 24576\nname = "screenshots"\n')
    data = plan_json("--workload", str(f), "-d", LAPTOP)
    cli = plan_json(*WORKLOAD, "-d", LAPTOP)
    assert [m["label"] for m in data["models"]] == ["coding", "screenshots"]
    assert data["devices"][0]["chosen"] == cli["devices"][0]["chosen"]
    got = [(m["quant"], m["placement"]) for m in next(r for r in data["devices"][0]["rows"] if r["chosen"])["models"]]
    want = [(m["quant"], m["placement"]) for m in next(r for r in cli["devices"][0]["rows"] if r["chosen"])["models"]]
    assert got == want
    monkeypatch.setenv("COLUMNS", "80")
    text = plan("--workload", str(f), "-d", LAPTOP).stdout
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "coding @198k" in text and "screenshots @24k" in text


def test_planning_the_section_a_workload_is_quick(hub, section_a_repos):
    """The planner's own compute for two models on two machines (headers already read): every model
    on every BIOS option of both machines, plus the final plans."""
    from planner.inputs import build_plan_model
    from planner.devices import load_profile
    from planner.plan_types import PlanRequest
    from planner.workload import from_cli
    from planner.workload_plan import WorkItem, plan_workload

    work = from_cli(list(WORKLOAD))
    items = [WorkItem(entry=e, model=build_plan_model(e.ref, None, [], "auto")[0]) for e in work.models]
    t0 = time.perf_counter()
    out = plan_workload(work, items, PlanRequest(), [load_profile(LAPTOP), load_profile(MINI)])
    elapsed = time.perf_counter() - t0
    assert out.fits
    # ~1 s on the 2-core test machine; the bound leaves room for a loaded CI runner
    assert elapsed < 8, elapsed
