"""CPU-only machines: `--device auto` builds a profile (unified, no GPU window, the CPU backend
only) whose bandwidth comes from the RAM modules the firmware lists, or is a labelled estimate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.testing.clirun import memfit
from planner.probe import env_for, probe_machine
from planner.probe.build import build_profile
from planner.probe.dmi import channel_of, parse_dmidecode, ram_bandwidth
from planner.probe.facts import MachineFacts, MemoryModule
from planner.probe.windows import parse_windows

MACHINES = Path(__file__).parent / "fixtures" / "machines"
GIB = 1024**3


def _device(size: str, loc: str, bank: str, speed: str = "5600 MT/s", width: str = "64 bits",
            kind: str = "DDR5", key: str = "Configured Memory Speed") -> str:
    return (f"Handle 0x0010, DMI type 17, 92 bytes\nMemory Device\n\tData Width: {width}\n\tSize: {size}\n"
            f"\tLocator: {loc}\n\tBank Locator: {bank}\n\tType: {kind}\n\t{key}: {speed}\n")


def test_two_dimms_in_two_channels():
    text = "\n".join([_device("16 GB", "DIMM 0", "P0 CHANNEL A"), _device("No Module Installed", "DIMM 1", "P0 CHANNEL A"),
                      _device("16 GB", "DIMM 0", "P0 CHANNEL B")])
    mods = parse_dmidecode(text)
    assert [m.size_bytes for m in mods] == [16 * GIB, 16 * GIB] and [channel_of(m) for m in mods] == ["A", "B"]
    gbps, how = ram_bandwidth(mods)
    assert gbps == 89.6 and "2 channel(s) x 64-bit x 5600 MT/s DDR5" in how


def test_two_dimms_per_channel_share_the_channel():
    text = "\n".join(_device("32 GB", f"DIMM_{c}{i}", "BANK 0", speed="4800 MT/s") for c in "AB" for i in (1, 2))
    gbps, _ = ram_bandwidth(parse_dmidecode(text))
    assert gbps == 76.8  # 2 channels, not 4


def test_soldered_lpddr_packages_each_count():
    text = "\n".join(_device("16 GB", f"LPDDR5X {i}", "Bank 0", speed="8000 MT/s", width="32 bits", kind="LPDDR5")
                     for i in range(8))
    gbps, how = ram_bandwidth(parse_dmidecode(text))
    assert gbps == 256.0 and "one channel per module assumed" in how  # Strix Halo's 256-bit bus


def test_older_dmidecode_units_and_missing_speed():
    old = parse_dmidecode(_device("8192 MB", "ChannelA-DIMM0", "BANK 0", speed="2400 MHz", kind="DDR4",
                                  key="Configured Clock Speed"))
    assert old[0].size_bytes == 8 * GIB and old[0].speed_mts == 2400 and channel_of(old[0]) == "A"
    assert ram_bandwidth(parse_dmidecode(_device("8 GB", "X", "Y", speed="Unknown"))) is None
    assert parse_dmidecode("Permission denied\n") == []


def test_windows_physical_memory_gives_modules():
    f = MachineFacts(system="windows")
    parse_windows(json.dumps({"TotalPhysicalMemory": 34359738368, "InstalledMemory": 34359738368, "Dimms": [
        {"Capacity": 17179869184, "Speed": 5600, "DataWidth": 64, "Locator": "DIMM 0", "Bank": "P0 CHANNEL A",
         "SMBIOSMemoryType": 34},
        {"Capacity": 17179869184, "Speed": 5600, "DataWidth": 64, "Locator": "DIMM 0", "Bank": "P0 CHANNEL B",
         "SMBIOSMemoryType": 34}]}), f)
    assert len(f.memory_modules) == 2 and f.memory_modules[0].type == "DDR5"
    assert ram_bandwidth(f.memory_modules)[0] == 89.6


def test_cpu_only_desktop_profile_shape():
    facts = probe_machine(env_for(MACHINES / "cpu-only-ryzen-desktop"))
    p, rec = build_profile(facts)
    assert rec.entry is None and p.id == "auto" and p.memory_architecture == "unified"
    assert p.cpu_only() and [b.name for b in p.backends()] == ["cpu"] and p.backends()[0].reports_as == "host_ram"
    assert p.os_info().gpu_cap is None and p.gpu_cap_bytes() is None and p.carveout is None and p.vram_bytes is None
    assert p.bandwidth_gbps == 83.2 and "bandwidth_gbps" not in p.estimated  # 2 x 64-bit x 5200 MT/s
    assert any(s.field == "bandwidth_gbps" and "dmidecode" in s.note for s in p.sources)
    assert p.ram_bytes == 64 * GIB and p.live is not None and p.live.os_visible_ram_bytes == 65029124 * 1024


def test_cpu_only_without_readable_dmi_is_a_labelled_estimate():
    facts = probe_machine(env_for(MACHINES / "unknown-arm-board"))
    p, _ = build_profile(facts)
    assert p.cpu_only() and "bandwidth_gbps" in p.estimated and p.bandwidth_gbps == 50.0
    assert any("assumed 50 GB/s" in n for n in p.notes)
    assert any("dmidecode" in n for n in facts.notes)


def test_recognised_machines_are_not_cpu_only():
    facts = probe_machine(env_for(MACHINES / "strix-halo-linux-512m-gtt"))
    p, _ = build_profile(facts)
    assert not p.cpu_only()


def test_estimate_on_a_cpu_only_machine(monkeypatch: pytest.MonkeyPatch, arch_models):
    monkeypatch.setenv("MEMFIT_PROBE_ROOT", str(MACHINES / "cpu-only-ryzen-desktop"))
    res = memfit("estimate", str(arch_models["llama"]), "-c", "2k", "--device", "auto", "--json")
    assert res.exit_code == 0, res.output
    fit = json.loads(res.output)["device_fit"]
    assert fit["tier"] == "cpu_only"
    res = memfit("devices", "show", "auto")
    assert res.exit_code == 0 and "83.2 GB/s" in res.output and "CPU only" in res.output


def test_memory_module_model_is_exported():
    assert MemoryModule(size_bytes=1).speed_mts is None


def test_plan_on_a_cpu_only_machine(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """A CPU-only machine is planned on its CPU: system RAM, the RAM's bandwidth, -ngl 0."""
    from validation.field.make_specs import sparse_gguf

    from planner.testing.clirun import plan

    for q in ("Q4_K_M", "Q8_0", "BF16"):
        sparse_gguf("qwen3-30b-a3b", q, tmp_path)
    monkeypatch.setenv("MEMFIT_PROBE_ROOT", str(MACHINES / "cpu-only-ryzen-desktop"))
    res = plan(str(tmp_path), "--device", "auto", "--ctx", "8k", "--json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    r = d["recommendation"]
    assert r["tier"] == "cpu_only" and r["quant"] == "Q8_0"  # BF16 (57 GiB) leaves the OS under its reserve
    assert " -ngl 0 " in r["commands"]["llama_server"] and "--gpu off" in r["commands"]["lm_studio"]["lms"]
    assert any("num_gpu 0" in line for line in r["commands"]["ollama"])
    assert r["est_tps"] and r["est_prefill_tps"] is None  # decode from RAM bandwidth; no CPU compute figure
    bf16 = next(v for v in d["variants"] if v["quant"] == "BF16")
    assert bf16["tier"] == "no_fit"
    text = plan(str(tmp_path), "--device", "auto", "--ctx", "8k").stdout
    assert "on the CPU from system RAM" in text and "GPU" not in text.split("Why:")[1].split("\n")[1]


def test_backend_cpu_plans_any_machine_on_its_cpu(tmp_path):
    from validation.field.make_specs import sparse_gguf

    from planner.testing.clirun import plan

    sparse_gguf("qwen3-30b-a3b", "Q4_K_M", tmp_path)
    res = plan(str(tmp_path), "--device", "rtx-4090", "--backend", "cpu", "--ctx", "8k", "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)["recommendation"]
    assert r["tier"] == "cpu_only" and r["gpu_bytes"] == 0
