"""`memfit doctor` and `memfit devices show auto` against recorded machines (click's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import cli, run
from planner.device_schema import GIB, MIB
from planner.probe.build import build_profile
from planner.probe.diagnose import Diagnosis, Finding, diagnose
from planner.probe.facts import GpuFacts, MachineFacts

MACHINES = Path(__file__).resolve().parent / "fixtures" / "machines"


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMFIT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("MEMFIT_PROBE_ROOT", raising=False)


def doctor_json(name: str) -> dict:
    res = CliRunner().invoke(cli, ["doctor", "--json", "--root", str(MACHINES / name)])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def ids(data: dict) -> dict[str, dict]:
    return {f["id"]: f for f in data["findings"]}


def test_every_fixture_gives_a_report_with_sourced_fixes():
    for m in sorted(p.name for p in MACHINES.iterdir()):
        data = doctor_json(m)
        assert data["facts"]["system"] in ("linux", "macos", "windows")
        for f in data["findings"]:
            assert f["source"], (m, f["id"])
            if f["level"] in ("warn", "problem"):
                assert f["fix"], (m, f["id"])


def test_strix_halo_raised_gtt_is_ok_and_backends_report_gtt_plus_carveout():
    data = doctor_json("strix-halo-linux-512m-gtt")
    found = ids(data)
    assert data["recognised"] == "framework-desktop-395-128g"
    assert found["gtt-raised"]["level"] == "ok" and "31457280" in found["gtt-raised"]["title"]
    assert found["kernel-ok"]["level"] == "ok"
    assert "gtt-default" not in found and "iommu" not in found  # amd_iommu=off already
    assert data["carveout_bytes"] == 512 * MIB and data["gpu_cap_bytes"] == 120 * GIB
    reports = {b["backend"]: b["reports_bytes"] for b in data["backends"]}
    assert reports["vulkan (radv)"] == 120 * GIB + 512 * MIB
    assert reports["rocm"] == 120 * GIB
    amdvlk = next(b for b in data["backends"] if b["backend"] == "vulkan (amdvlk)")
    assert amdvlk["max_alloc_bytes"] == 2 * GIB


def test_strix_halo_64g_carveout_findings():
    data = doctor_json("strix-halo-linux-64g-carveout")
    found = ids(data)
    assert found["amdttm-ignored"]["level"] == "problem"
    assert "rename ttm.pages_limit=27787264 (106.00 GiB) to amdttm.pages_limit=27787264" in found["amdttm-ignored"]["fix"]
    gtt = found["gtt-default"]
    assert gtt["level"] == "warn" and "amdttm.pages_limit=" in gtt["fix"] and "rocm.docs.amd.com" in gtt["source"]
    assert found["carveout-large-linux"]["level"] == "warn"
    assert found["kernel-old"]["level"] == "warn" and "6.18.4" in found["kernel-old"]["fix"]
    assert found["kernel-large-carveout"]["level"] == "problem"
    levels = [f["level"] for f in data["findings"]]
    assert levels == sorted(levels, key=["problem", "warn", "info", "ok"].index)


def test_64g_carveout_advice_is_one_setup_that_every_finding_quotes():
    """One recommended setup (a small carve-out with the user's own, renamed pages_limit) and one
    alternative (keep the 64 GiB carve-out: the safe maximum with it); no third value."""
    import re

    data = doctor_json("strix-halo-linux-64g-carveout")
    found = ids(data)
    advice = data["gtt_advice"]
    assert advice["key"] == "amdttm.pages_limit" and advice["uses_user_value"]
    assert advice["carveout_bytes"] == 2 * GIB and advice["gtt_bytes"] == 27787264 * 4096  # 106 GiB
    assert advice["keep_gtt_bytes"] == 59 * GIB  # 0.93 x the 63.65 GiB Linux sees at 64 GiB, whole GiB
    recommended, keep = "amdttm.pages_limit=27787264", f"amdttm.pages_limit={59 * 262144}"
    values = set()
    for f in data["findings"]:
        values |= set(re.findall(r"(?<![a-z])(?:amd)?ttm\.pages_limit=\d+", f["fix"] or ""))
    assert values == {"ttm.pages_limit=27787264", recommended, keep}  # the old option, renamed; the alternative
    carve = found["carveout-large-linux"]["fix"]
    # the carve-out as the BIOS menu names it (docs/cli.md "Units")
    assert "UMA Frame Buffer Size to 2 GB" in carve and recommended in carve and keep not in carve and "recommended setup" in carve
    gtt = found["gtt-default"]["fix"]
    assert recommended in gtt and keep in gtt and "see the carve-out finding" in gtt
    assert gtt.index(recommended) < gtt.index("to keep the 64 GB carve-out instead") < gtt.index(keep)
    ignored = found["amdttm-ignored"]["fix"]
    assert "needs the 2 GB carve-out of the recommended setup" in ignored and keep in ignored
    assert "see the carve-out finding" in found["kernel-large-carveout"]["fix"]


def _diagnosed(facts: MachineFacts) -> tuple[Diagnosis, dict[str, Finding]]:
    """The diagnosis of a machine (its profile built from the facts) and its findings by id."""
    d = diagnose(facts, *build_profile(facts))
    return d, {f.id: f for f in d.findings}


def test_gtt_advice_without_a_user_value_uses_the_safe_maximum():
    # a large carve-out and no pages_limit of the user's: recommended = smallest carve-out + its safe maximum
    facts = MachineFacts(
        system="linux", cpu_name="AMD RYZEN AI MAX+ 395 w/ Radeon 8060S", kernel="6.18.5",
        ram_visible_bytes=int(63.6 * GIB), mem_available_bytes=58 * GIB,
        gpus=[GpuFacts(name="Strix Halo", vendor="amd", pci_id="1002:1586", kind="integrated",
                       family="strix-halo", vram_total_bytes=64 * GIB, gtt_total_bytes=int(31.8 * GIB))])
    d, found = _diagnosed(facts)
    a = d.gtt_advice
    assert a is not None and a.key == "ttm.pages_limit" and a.user_pages is None and a.shrink
    assert a.gtt_bytes == a.safe_gtt_bytes and a.gtt_bytes % GIB == 0 and a.gtt_bytes > a.keep_gtt_bytes
    assert f"ttm.pages_limit={a.gtt_bytes // 4096}" in found["carveout-large-linux"].fix
    assert f"ttm.pages_limit={a.gtt_bytes // 4096}" in found["gtt-default"].fix
    assert f"ttm.pages_limit={a.keep_gtt_bytes // 4096}" in found["gtt-default"].fix


def test_ignored_ttm_value_above_the_safe_maximum_is_replaced_not_renamed():
    facts = MachineFacts(
        system="linux", cpu_name="AMD RYZEN AI MAX+ 395 w/ Radeon 8060S", kernel="6.18.5", amdttm_loaded=True,
        ttm_module="amdttm", ram_visible_bytes=int(127.5 * GIB), mem_available_bytes=120 * GIB,
        cmdline={"ttm.pages_limit": str(127 * 262144)},
        gpus=[GpuFacts(name="Strix Halo", vendor="amd", pci_id="1002:1586", kind="integrated",
                       family="strix-halo", vram_total_bytes=512 * MIB, gtt_total_bytes=int(63.75 * GIB))])
    d, found = _diagnosed(facts)
    a = d.gtt_advice
    assert a is not None and not a.shrink and not a.uses_user_value and a.gtt_bytes == a.safe_gtt_bytes
    fix = found["amdttm-ignored"].fix
    assert fix.startswith(f"replace ttm.pages_limit={127 * 262144}") and f"amdttm.pages_limit={a.gtt_bytes // 4096}" in fix
    assert f"amdttm.pages_limit={a.gtt_bytes // 4096}" in found["gtt-default"].fix


def test_windows_auto_carveout_is_a_problem():
    data = doctor_json("strix-halo-windows-auto")
    found = ids(data)
    assert found["carveout-auto"]["level"] == "problem"
    assert "llama.cpp#26089" in found["carveout-auto"]["source"]
    assert "windows-shared" in found


def test_mac_default_wired_limit_suggests_sysctl():
    data = doctor_json("mac-m4-max-128g")
    fix = ids(data)["wired-default"]["fix"]
    assert fix.startswith("sudo sysctl iogpu.wired_limit_mb=")
    assert int(fix.split("=")[1].split()[0]) * MIB <= 128 * GIB - 8 * GIB


def test_spark_page_cache_finding():
    data = doctor_json("dgx-spark")
    f = ids(data)["page-cache"]
    assert "drop_caches" in f["fix"] and "unsloth#10704" in f["source"]
    cuda = next(b for b in data["backends"] if b["backend"] == "cuda")
    assert cuda["reports_bytes"] == data["facts"]["mem_available_bytes"]


def test_rtx_desktop_vram_in_use_and_no_apu_findings():
    found = ids(doctor_json("rtx-4090-desktop"))
    assert "vram-in-use" in found
    assert not any(k.startswith("gtt") or k.startswith("carveout") for k in found)


def test_unknown_machine_is_reported_not_crashed():
    data = doctor_json("unknown-arm-board")
    assert data["recognised"] is None
    assert ids(data)["not-recognised"]["level"] == "warn"
    assert data["facts"]["notes"]


def test_doctor_text_output_reads_well():
    res = CliRunner().invoke(cli, ["doctor", "--root", str(MACHINES / "strix-halo-linux-64g-carveout")])
    out = res.output
    assert res.exit_code == 0, out
    for text in ("RAM:", "128 GB installed", "Carve-out:  64 GB", "GPU cap:", "(default)",
                 "What llama.cpp's backends will report", "[problem]", "fix:", "source:"):
        assert text in out, text


def test_doctor_on_an_empty_tree_does_not_crash(tmp_path):
    res = CliRunner().invoke(cli, ["doctor", "--root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "RAM could not be read" in res.output


def test_doctor_rejects_root_with_record(tmp_path, capsys):
    assert run(["doctor", "--root", str(tmp_path), "--record", str(tmp_path / "x")]) == 2


def test_devices_show_auto_with_root():
    res = CliRunner().invoke(cli, ["devices", "show", "auto", "--root", str(MACHINES / "strix-halo-linux-512m-gtt")])
    assert res.exit_code == 0, res.output
    assert "based on: framework-desktop-395-128g" in res.output
    assert "Read from this machine" in res.output and "GPU cap 120 GiB" in res.output
    assert "* = in effect" in res.output


def test_devices_show_auto_via_env(monkeypatch):
    monkeypatch.setenv("MEMFIT_PROBE_ROOT", str(MACHINES / "mac-m4-max-128g"))
    res = CliRunner().invoke(cli, ["devices", "show", "auto", "--json"])
    data = json.loads(res.output)
    assert data["based_on"] == "apple-m4-max-128g" and data["live"]["os"] == "macos"


def test_gttsize_and_low_gtt_checks_on_synthetic_facts():
    """Checks that no fixture covers: amdgpu.gttsize on a new kernel, GTT leaving the OS < 4 GiB,
    carve-out + GTT above the installed RAM."""
    facts = MachineFacts(
        system="linux", cpu_name="AMD RYZEN AI MAX+ 395 w/ Radeon 8060S", kernel="7.1.2",
        ram_visible_bytes=int(31.5 * GIB), ram_installed_bytes=128 * GIB, mem_available_bytes=30 * GIB,
        cmdline={"amdgpu.gttsize": "126976", "ttm.pages_limit": "27525120", "amd_iommu": "off"},
        gpus=[GpuFacts(name="Strix Halo", vendor="amd", pci_id="1002:1586", kind="integrated",
                       family="strix-halo", vram_total_bytes=96 * GIB, gtt_total_bytes=105 * GIB)])
    _, found = _diagnosed(facts)
    assert found["gttsize-deprecated"].level == "warn" and "remove amdgpu.gttsize" in found["gttsize-deprecated"].fix
    assert found["gtt-too-high"].level == "warn"
    assert found["gtt-plus-carveout"].level == "warn" and "memtest_vulkan#66" in found["gtt-plus-carveout"].source
    assert "kernel-ok" in found
