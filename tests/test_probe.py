"""The machine probe on recorded trees (tests/fixtures/machines/*), and `--device auto`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from planner.device_schema import GIB, MIB
from planner.devices import apply_overrides, load_profile
from planner.errors import DeviceError
from planner.probe import ProbeEnv, RecordingEnv, auto_profile, env_for, probe_machine
from planner.probe.build import build_profile, installed_ram
from planner.probe.env import COMMANDS_FILE
from planner.probe.known import installed_ram_from_visible, kernel_version, strix_halo_kernel
from planner.probe.linux import parse_carveout_options, parse_cmdline, parse_meminfo
from planner.probe.nvidia import parse_nvidia_smi
from planner.probe.windows import parse_windows

MACHINES = Path(__file__).resolve().parent / "fixtures" / "machines"


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMFIT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("MEMFIT_PROBE_ROOT", raising=False)


def machine(name: str):
    facts = probe_machine(env_for(MACHINES / name))
    profile, rec = build_profile(facts)
    return facts, profile, rec


# --------------------------------------------------------------------------- parsers

def test_parse_meminfo_kb_and_counts():
    mi = parse_meminfo("MemTotal:       131753574 kB\nMemAvailable:    1024 kB\nHugePages_Total:       0\n")
    assert mi["MemTotal"] == 131753574 * 1024 and mi["MemAvailable"] == 1024 * 1024 and mi["HugePages_Total"] == 0


def test_parse_carveout_options_kernel_doc_format():
    text = "0: Minimum (0 GB)\n1:  (1 GB)\n7: Medium (16 GB)\n9: High (32 GB)\ngarbage\n"
    opts = parse_carveout_options(text)
    assert [i for i, _, _ in opts] == [0, 1, 7, 9]
    assert opts[0][2] == 512 * MIB  # the VBIOS stores 0 for the 512 MB minimum
    assert opts[-1] == (9, "High", 32 * GIB)
    assert parse_carveout_options("0: Minimum (512 MB)")[0][2] == 512 * MIB


def test_parse_cmdline_keeps_memory_parameters_only():
    got = parse_cmdline("BOOT_IMAGE=/vmlinuz quiet ttm.pages_limit=31457280 amdgpu.gttsize=126976 amd_iommu=off x=1")
    assert got == {"ttm.pages_limit": "31457280", "amdgpu.gttsize": "126976", "amd_iommu": "off"}


def test_parse_nvidia_smi_discrete_and_unified():
    gpus = parse_nvidia_smi("NVIDIA GeForce RTX 4090, 24564, 1850\nNVIDIA GB10, [N/A], [N/A]\n")
    assert gpus[0].kind == "discrete" and gpus[0].vram_total_bytes == 24564 * MIB and gpus[0].family == "rtx-40"
    assert gpus[1].kind == "integrated" and gpus[1].memory_not_reported and gpus[1].family == "gb10"
    assert parse_nvidia_smi("Orin (nvgpu), Not Supported, Not Supported")[0].family == "jetson-orin"


def test_parse_windows_uses_64bit_registry_size_over_adapterram():
    from planner.probe.facts import MachineFacts

    f = MachineFacts(system="windows")
    parse_windows(json.dumps({
        "TotalPhysicalMemory": 34359738368 // 2, "InstalledMemory": 32 * GIB, "Cpu": "AMD RYZEN AI MAX+ 395",
        "Gpus": {"Name": "AMD Radeon(TM) 8060S Graphics", "AdapterRAM": 4293918720,
                 "PNPDeviceID": "PCI\\VEN_1002&DEV_1586&SUBSYS_0&REV_C1"},
        "Registry": {"DriverDesc": "AMD Radeon(TM) 8060S Graphics", "MemorySize": 16 * GIB}}), f)
    g = f.gpus[0]
    assert g.vram_total_bytes == 16 * GIB and g.family == "strix-halo" and g.pci_id == "1002:1586"
    assert g.shared_bytes == 8 * GIB  # half of the 16 GiB Windows sees
    garbage = MachineFacts(system="windows")
    parse_windows("not json", garbage)
    assert garbage.notes and garbage.ram_visible_bytes is None


def test_installed_ram_snaps_to_sold_sizes():
    assert installed_ram_from_visible(int(125.65 * GIB)) == 128 * GIB
    assert installed_ram_from_visible(122572 * MIB) == 128 * GIB  # GB10
    assert installed_ram_from_visible(int(62.5 * GIB)) == 64 * GIB
    assert installed_ram_from_visible(int(39.2 * GIB)) == 40 * GIB  # odd sizes round up, not to 48


@pytest.mark.parametrize("release,ok", [
    ("6.19.12-200.fc43.x86_64", True), ("6.18.4", True), ("6.18.3-arch1-1", False),
    ("6.17.0-19-generic", True), ("6.17.0-14-generic", False), ("6.14.0-1018-oem", True),
    ("6.14.0-1010-oem", False), ("6.8.0-45-generic", False), ("7.1.0-rc2", True),
])
def test_strix_halo_kernel_rules(release, ok):
    assert strix_halo_kernel(release).ok is ok
    assert kernel_version("garbage") is None


# --------------------------------------------------------------------------- recorded machines

def test_strix_halo_512m_carveout_raised_gtt():
    facts, p, rec = machine("strix-halo-linux-512m-gtt")
    assert rec.entry.profile.id == "framework-desktop-395-128g" and rec.exact_ram
    assert p.id == "auto" and p.based_on == "framework-desktop-395-128g"
    assert facts.ram_installed_bytes == 128 * GIB
    assert p.current_carveout() == 512 * MIB
    assert p.live.gpu_cap_bytes == 120 * GIB and p.live.gpu_cap_is_default is False
    assert p.gpu_cap_bytes("linux") == 120 * GIB  # the raised GTT is the setting in effect
    assert p.gpu_total_bytes("linux") == 120 * GIB + 512 * MIB
    # the firmware's own carve-out list replaces the profile's guess
    assert p.carveout_options() == sorted({512 * MIB, *(g * GIB for g in (1, 2, 4, 8, 16, 32, 48, 64, 96))})
    assert "uma/carveout_options" in p.carveout.options_note
    assert p.os_visible_ram() == facts.ram_visible_bytes  # firmware reservation learnt from the machine
    assert p.bandwidth_gbps == 256 and p.default_os == "linux"


def test_strix_halo_64g_carveout_default_gtt():
    facts, p, rec = machine("strix-halo-linux-64g-carveout")
    assert rec.entry.profile.id == "ai-max-395-128g-minipc"
    assert p.current_carveout() == 64 * GIB
    assert p.live.gpu_cap_is_default is True
    assert p.gpu_cap_bytes("linux") == pytest.approx(facts.ram_visible_bytes / 2, rel=0.001)
    assert facts.amdttm_loaded and facts.ttm_module == "amdttm"
    assert facts.cmdline["ttm.pages_limit"] == "27787264"
    # planning another carve-out on this machine keeps the kernel-default formula
    assert p.gpu_cap_bytes("linux", 512 * MIB) > p.gpu_cap_bytes("linux", 64 * GIB)


def test_amdgpu_dkms_machine_gets_the_amdttm_knob():
    # the amdttm module ignores ttm.* options: plans for this machine must say amdttm.pages_limit
    _, p, _ = machine("strix-halo-linux-64g-carveout")
    assert p.os["linux"].gpu_cap.knob == "amdttm.pages_limit"
    assert p.cap_setting("linux", 77 * GIB) == f"amdttm.pages_limit={77 * 262144}"
    _, p, _ = machine("strix-halo-linux-512m-gtt")  # in-tree ttm module
    assert p.cap_setting("linux", 77 * GIB) == f"ttm.pages_limit={77 * 262144}"


def test_mac_m4_max():
    facts, p, rec = machine("mac-m4-max-128g")
    assert facts.system == "macos" and facts.cpu_name == "Apple M4 Max"
    assert rec.entry.profile.id == "apple-m4-max-128g"
    assert facts.wired_limit_mb == 0 and p.live.gpu_cap_is_default is True
    assert p.gpu_total_bytes() == 96 * GIB


def test_mac_with_raised_wired_limit(tmp_path):
    root = tmp_path / "mac"
    shutil.copytree(MACHINES / "mac-m4-max-128g", root)
    data = json.loads((root / COMMANDS_FILE).read_text())
    data["commands"]["sysctl iogpu.wired_limit_mb"] = {"stdout": "114688\n"}
    (root / COMMANDS_FILE).write_text(json.dumps(data))
    p = auto_profile(root)
    assert p.gpu_total_bytes() == 112 * GIB and p.live.gpu_cap_is_default is False


def test_dgx_spark_unified_memory():
    facts, p, rec = machine("dgx-spark")
    assert rec.entry.profile.id == "dgx-spark"
    assert facts.gpus[0].memory_not_reported
    assert any("does not report memory" in n for n in facts.notes)
    assert p.gpu_total_bytes() == 122572 * MIB
    cuda = p.backend("cuda")
    assert p.reported_bytes(cuda) == facts.mem_available_bytes  # llama.cpp reads MemAvailable


def test_rtx_4090_desktop_prefers_the_discrete_card():
    facts, p, rec = machine("rtx-4090-desktop")
    assert rec.entry.profile.id == "rtx-4090"
    assert p.memory_architecture == "discrete"
    assert p.vram_bytes == 24564 * MIB and p.live.vram_used_bytes == 1850 * MIB
    assert p.ram_bytes == 64 * GIB and "ram_bytes" not in p.estimated
    assert len(facts.gpus) == 2  # the CPU's small iGPU is listed but not planned for


def test_nothing_recognised_degrades_to_a_generic_profile():
    facts, p, rec = machine("unknown-arm-board")
    assert rec.entry is None
    assert p.id == "auto" and p.ram_bytes == 8 * GIB
    assert "bandwidth_gbps" in p.estimated
    assert [b.name for b in p.backends()] == ["cpu"]
    assert "Raspberry Pi 5" in p.name
    assert any("no GPU" in n for n in facts.notes)


def test_windows_strix_halo_with_auto_carveout():
    facts, p, rec = machine("strix-halo-windows-auto")
    assert facts.system == "windows" and rec.entry.profile.id == "ai-max-395-64g"
    assert p.default_os == "windows" and p.current_carveout() == 0
    assert p.live.gpu_cap_bytes == facts.ram_visible_bytes // 2


def test_empty_tree_never_crashes(tmp_path):
    (tmp_path / "proc").mkdir()
    facts = probe_machine(ProbeEnv.from_root(tmp_path))
    assert facts.system == "unknown" and facts.notes
    with pytest.raises(DeviceError) as e:
        build_profile(facts)
    assert "--device" in e.value.hint


def test_linux_tree_with_missing_files(tmp_path):
    root = tmp_path / "m"
    (root / "proc").mkdir(parents=True)
    (root / "proc" / "meminfo").write_text("MemTotal: 16000000 kB\n")  # no MemAvailable, nothing else
    card = root / "sys/class/drm/card0/device"
    card.mkdir(parents=True)
    (card / "vendor").write_text("0x1002\n")
    (card / "device").write_text("0x1586\n")  # a Strix Halo without amdgpu memory files
    facts = probe_machine(ProbeEnv.from_root(root))
    assert facts.system == "linux" and facts.mem_available_bytes is None
    assert any("carve-out/GTT unknown" in n for n in facts.notes)
    p, rec = build_profile(facts)  # 16 GB: no shipped profile; nearest Strix Halo with --ram 16g
    assert p.family == "strix-halo" and p.ram_bytes == 16 * GIB and not rec.exact_ram


def test_load_profile_auto_uses_env_root(monkeypatch):
    monkeypatch.setenv("MEMFIT_PROBE_ROOT", str(MACHINES / "dgx-spark"))
    p = load_profile("auto")
    assert p.based_on == "dgx-spark"
    q = apply_overrides(p, use="desktop")
    assert q.reserve() == 16 * GIB


def test_recording_env_round_trip(tmp_path, monkeypatch):
    """RecordingEnv copies what a probe reads; replaying the copy gives the same facts."""
    src = MACHINES / "strix-halo-linux-512m-gtt"
    rec_env = RecordingEnv(tmp_path / "rec")
    rec_env.root = src  # record from the fixture as if it were a live machine
    rec_env.system = "linux"
    rec_env.live = False
    rec_env.recorded = {}
    first = probe_machine(rec_env)
    rec_env.save()
    again = probe_machine(ProbeEnv.from_root(tmp_path / "rec"))
    assert again.model_dump() == first.model_dump()
    assert installed_ram(again) == 128 * GIB


def _board(tmp_path: Path, model: str, mem_kb: int) -> Path:
    root = tmp_path / "board"
    (root / "proc" / "device-tree").mkdir(parents=True)
    (root / "proc" / "meminfo").write_text(f"MemTotal: {mem_kb} kB\nMemAvailable: {mem_kb // 2} kB\n")
    (root / "proc" / "device-tree" / "model").write_text(model + "\x00")
    return root


def test_jetson_recognised_from_the_device_tree_without_nvidia_smi(tmp_path):
    root = _board(tmp_path, "NVIDIA Jetson AGX Orin Developer Kit", 64_300_000)
    facts = probe_machine(ProbeEnv.from_root(root))
    assert facts.gpus[0].family == "jetson-orin" and facts.gpus[0].kind == "integrated"
    p, rec = build_profile(facts)
    assert rec.entry.profile.id == "jetson-agx-orin-64g" and p.backend("cuda").reports_as == "mem_available"


def test_jetson_orin_nano_is_not_taken_for_the_agx(tmp_path):
    root = _board(tmp_path, "NVIDIA Jetson Orin Nano Developer Kit", 7_800_000)
    p, rec = build_profile(probe_machine(ProbeEnv.from_root(root)))
    assert rec.entry is None and p.memory_architecture == "unified" and p.family == "jetson-orin"
    assert "bandwidth_gbps" in p.estimated


def test_mac_with_a_ram_size_no_profile_has_gets_the_chip_table(tmp_path):
    root = tmp_path / "mac36"
    root.mkdir()
    (root / COMMANDS_FILE).write_text(json.dumps({"system": "macos", "commands": {
        "sysctl hw.memsize": {"stdout": str(36 * GIB)}, "sysctl machdep.cpu.brand_string": {"stdout": "Apple M4 Max"},
        "sysctl iogpu.wired_limit_mb": {"stdout": "0"}}}))
    p, rec = build_profile(probe_machine(ProbeEnv.from_root(root)))
    assert rec.entry is None  # the 36 GB M4 Max is the 32-core bin: not the 546 GB/s profiles
    assert p.bandwidth_gbps == 410 and p.gpu_total_bytes() == 27 * GIB  # 3/4 at >= 36 GB


# --------------------------------------------------------------------------- OS reserve of small machines


def test_generic_reserve_scales_below_32_gib_with_a_floor():
    from planner.probe.generic import RESERVE_FLOOR, fixed_reserve_table, reserve_table

    assert reserve_table("linux", 8 * GIB) == {"headless": 1 * GIB, "desktop": 2 * GIB, "daily": 3 * GIB}
    assert reserve_table("linux", 16 * GIB) == {"headless": 2 * GIB, "desktop": 4 * GIB, "daily": 6 * GIB}
    assert reserve_table("windows", 8 * GIB) == {"headless": 2 * GIB, "desktop": 3 * GIB, "daily": 4 * GIB}
    assert reserve_table("linux", 2 * GIB) == RESERVE_FLOOR["linux"]  # tiny boards: the floor
    for os in ("linux", "windows", "macos"):
        for ram in (32, 48, 64, 128):  # where the shipped rules were measured: unchanged
            assert reserve_table(os, ram * GIB) == fixed_reserve_table(os, ram * GIB)
        prev = None
        for ram in range(1, 40):  # never more than the fixed rule, never shrinking as RAM grows
            r = reserve_table(os, ram * GIB)
            assert all(r[u] <= fixed_reserve_table(os, ram * GIB)[u] for u in r)
            assert prev is None or all(r[u] >= prev[u] for u in r)
            prev = r


def test_unknown_8g_board_gets_a_reserve_it_can_live_with():
    _, p, _ = machine("unknown-arm-board")
    assert (p.reserve("linux", "headless"), p.reserve("linux", "desktop"), p.reserve("linux", "daily")) == \
        (1 * GIB, 2 * GIB, 3 * GIB)
    assert p.reserve() < p.os_visible_ram() / 2  # the default use leaves the board most of its RAM
    assert any("OS reserve scaled" in n for n in p.notes)
    assert any(s.field == "os" and s.ref == "derived" for s in p.sources)


def test_small_unrecognised_apu_gets_scaled_reserves_and_a_usable_gtt_advice():
    facts, p, rec = machine("phoenix-linux-16g")
    assert rec.entry is None and p.memory_architecture == "carveout" and p.family == "phoenix"
    assert p.ram_bytes == 16 * GIB and p.current_carveout() == 2 * GIB
    assert p.reserve("linux", "desktop") == 4 * GIB and p.reserve("linux", "daily") == 6 * GIB
    from planner.probe.diagnose import diagnose

    d = diagnose(facts, p, rec)
    gtt = next(f for f in d.findings if f.id == "gtt-default")
    # the advice leaves Linux its 4 GiB: 13.7 GiB seen -> 9 GiB of GTT, not 0.9 x 13.7 = 12
    assert "ttm.pages_limit=2359296 (9.00 GiB)" in gtt.fix
    assert not any(f.id == "gtt-too-high" for f in d.findings)


def test_matched_profile_on_a_smaller_machine_scales_its_reserves(tmp_path):
    # a Strix Point laptop with 16 GB: the 32 GB profile's Windows daily reserve (16 GiB) would be all of it
    facts = probe_machine(env_for(MACHINES / "phoenix-linux-16g"))
    facts.cpu_name = "AMD Ryzen AI 9 HX 370 w/ Radeon 890M"
    for g in facts.gpus:
        g.pci_id, g.family = "1002:150e", "strix-point"
    p, rec = build_profile(facts)
    assert rec.entry is not None and rec.entry.profile.id == "ryzen-ai-9-hx-370-32g" and p.ram_bytes == 16 * GIB
    base = load_profile("ryzen-ai-9-hx-370-32g")
    for os in p.os:
        for use in ("headless", "desktop", "daily"):
            assert p.reserve(os, use) <= base.reserve(os, use) // 2 + GIB  # about half at half the RAM
    assert any("OS reserve scaled" in n for n in p.notes)


def test_small_board_fits_a_small_model_on_its_cpu(tmp_path, monkeypatch):
    # with the fixed 8 GiB desktop reserve nothing could fit on an 8 GB board (the OS sees 7.9 GiB)
    from planner.testing import ggufgen

    from planner.testing.clirun import memfit

    monkeypatch.setenv("MEMFIT_PROBE_ROOT", str(MACHINES / "unknown-arm-board"))
    shape = ggufgen.ModelShape(n_vocab=32000, n_layer=16, n_embd=2048, n_ff=8192, n_head=32, n_head_kv=8, ctx=8192)
    model = ggufgen.write_model(tmp_path / "small-1b-Q4_K_M.gguf", "llama", shape)[0]
    res = memfit("estimate", str(model), "-c", "4k", "-d", "auto", "--json")
    assert res.exit_code == 0, res.output
    fit = json.loads(res.stdout)["device_fit"]
    assert fit["reserve_bytes"] == 2 * GIB and fit["tier"] == "cpu_only" and fit["fits"]
    assert fit["os_free_bytes"] > 4 * GIB
