"""Device profiles: the shipped set, the memory arithmetic, loading, user overrides, `memfit devices`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cli import EXIT_USAGE, cli, run
from planner.device_schema import GIB, MIB, DeviceProfile, gtt_pages
from planner.devices import apply_overrides, load_catalog, load_file, load_profile, parse_profile
from planner.errors import DeviceError, InputError

REPO = Path(__file__).resolve().parent.parent
PROFILES = sorted((REPO / "profiles").glob("*.toml"))

REQUIRED_IDS = {
    "ai-max-395-32g", "ai-max-395-64g", "ai-max-395-128g-minipc", "ai-max-395-128g-laptop",
    "ryzen-ai-9-hx-370-32g", "apple-m4-max-64g", "apple-m4-max-128g", "apple-m4-pro-48g",
    "dgx-spark", "jetson-agx-orin-64g", "intel-lunar-lake-32g", "rtx-3090", "rtx-4090", "rtx-5090",
}


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path, monkeypatch):
    """No test sees the developer's own ~/.config/memfit profiles."""
    monkeypatch.setenv("MEMFIT_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("MEMFIT_PROBE_ROOT", raising=False)


def user_profile(tmp_path: Path, text: str, name: str = "mine.toml") -> Path:
    d = tmp_path / "config" / "profiles"
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_text(text)
    return p


# --------------------------------------------------------------------------- the shipped set

def test_required_profiles_are_shipped():
    ids = set(load_catalog().ids())
    assert REQUIRED_IDS <= ids, REQUIRED_IDS - ids
    assert any(i.startswith("apple-m3-ultra") for i in ids)
    assert len(PROFILES) == len(ids)


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_every_profile_is_valid_and_named_after_its_file(path: Path):
    prof = load_file(path)
    assert prof.id == path.stem
    assert prof.sources, "a profile without sources"


def _numeric_fields(prof: DeviceProfile) -> list[str]:
    """The numbers a profile states that need a source."""
    fields = ["bandwidth_gbps", "decode_efficiency"]
    if prof.carveout is not None:
        fields += ["carveout.options_bytes", "carveout.default_bytes"]
    if prof.power_w:
        fields.append("power_w")
    if prof.firmware_reserved_bytes:
        fields.append("firmware_reserved_bytes")
    if prof.gpu_tflops_fp16:
        fields.append("gpu_tflops_fp16")
    for os, info in prof.os.items():
        fields.append(f"os.{os}.reserve_bytes")
        if info.gpu_reserve_bytes:
            fields.append(f"os.{os}.gpu_reserve_bytes")
        if info.gpu_cap is not None:
            fields.append(f"os.{os}.gpu_cap.default_fraction")
            if info.gpu_cap.max_fraction is not None:
                fields.append(f"os.{os}.gpu_cap.max_fraction")
        if any(b.max_alloc_bytes for b in info.backends):
            fields.append(f"os.{os}.backends.max_alloc_bytes")
        if any(b.overhead_bytes for b in info.backends):
            fields.append(f"os.{os}.backends.overhead_bytes")
    return fields


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_every_number_has_a_source(path: Path):
    prof = load_file(path)
    missing = [f for f in _numeric_fields(prof)
               if not any(f == s.field or f.startswith(s.field + ".") for s in prof.sources)]
    assert not missing, f"{prof.id}: no [[sources]] entry for {missing}"
    for s in prof.sources:
        assert s.ref.strip(), f"{prof.id}: empty ref for {s.field}"
        if s.ref == "derived":
            assert s.note, f"{prof.id}: 'derived' needs the formula in the note ({s.field})"


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_profiles_are_physically_sane(path: Path):
    prof = load_file(path)
    for os in prof.os:
        keep = prof.os[os].reserve_bytes
        assert keep["headless"] <= keep["desktop"] <= keep["daily"] < prof.ram_bytes
        cap = prof.os[os].gpu_cap
        if cap is not None and cap.max_fraction is not None:
            # the raised cap must still leave the OS its headless reserve at the smallest carve-out
            smallest = min(prof.carveout_options()) if prof.carveout else None
            left = prof.os_visible_ram(smallest) - prof.max_gpu_cap_bytes(os, smallest)
            assert left >= 2 * GIB, (prof.id, os, left / GIB)
    if prof.carveout is not None:
        assert max(prof.carveout_options()) <= 0.75 * prof.ram_bytes, prof.id


def test_strix_halo_windows_is_far_more_reserved_than_headless_linux():
    prof = load_profile("ai-max-395-64g")
    assert prof.reserve("windows", "daily") >= 3 * prof.reserve("linux", "headless")
    assert prof.default_os == "windows" and prof.default_use == "daily"


def test_amdvlk_single_allocation_limit_is_recorded():
    prof = load_profile("framework-desktop-395-128g")
    amdvlk = prof.backend("amdvlk", "linux")
    assert amdvlk is not None and amdvlk.max_alloc_bytes == 2 * GIB


# --------------------------------------------------------------------------- the arithmetic

def test_windows_shared_is_half_of_what_the_os_sees():
    prof = load_profile("ai-max-395-128g-minipc")
    assert prof.os_visible_ram(64 * GIB) == 64 * GIB
    assert prof.gpu_cap_bytes("windows", 64 * GIB) == 32 * GIB
    assert prof.gpu_total_bytes("windows", 64 * GIB) == 96 * GIB  # devices.md 1.4: 64 + 32
    assert prof.gpu_total_bytes("windows", 96 * GIB) == 112 * GIB  # 96 + 16
    assert prof.max_gpu_cap_bytes("windows", 64 * GIB) == 32 * GIB  # not tunable


def test_linux_gtt_default_and_raised_and_the_kernel_parameter():
    prof = load_profile("framework-desktop-395-128g")
    half = prof.gpu_cap_bytes("linux", 512 * MIB)
    assert half == int(0.5 * (128 * GIB - 512 * MIB))
    raised = prof.max_gpu_cap_bytes("linux", 512 * MIB)
    assert 118 * GIB < raised < 121 * GIB
    assert prof.cap_setting("linux", 120 * GIB) == "ttm.pages_limit=31457280"  # GiB x 262144
    assert gtt_pages(96 * GIB) == 25165824
    # an explicit setting replaces the formula, clipped to what the OS sees
    assert prof.gpu_cap_bytes("linux", 512 * MIB, setting_bytes=100 * GIB) == 100 * GIB
    assert prof.gpu_cap_bytes("linux", 96 * GIB, setting_bytes=100 * GIB) == 32 * GIB


def test_backend_reports_follow_the_pools():
    prof = load_profile("ai-max-395-128g-minipc")
    vk = prof.backend("radv", "linux")
    rocm = prof.backend("rocm", "linux")
    # 96 GiB carve-out + default GTT: Vulkan sums heaps, ROCm shows the carve-out (antirez/ds4#475)
    assert prof.reported_bytes(vk, "linux", 96 * GIB) == 96 * GIB + 16 * GIB
    assert prof.reported_bytes(rocm, "linux", 96 * GIB) == 96 * GIB


def test_macos_wired_limit_default_and_sysctl():
    prof = load_profile("apple-m4-max-128g")
    assert prof.gpu_total_bytes("macos") == 96 * GIB  # 3/4 of 128 GiB
    assert prof.cap_setting("macos", 112 * GIB) == "sudo sysctl iogpu.wired_limit_mb=114688"


def test_discrete_total_is_vram_and_host_ram_is_a_setting():
    prof = load_profile("rtx-4090")
    assert prof.gpu_total_bytes() == 24 * GIB and prof.gpu_cap_bytes() is None
    more = apply_overrides(prof, ram="128g")
    assert more.ram_bytes == 128 * GIB and more.vram_bytes == 24 * GIB
    assert more.overrides["ram"].startswith("128")


def test_spark_pool_is_what_linux_sees():
    prof = load_profile("dgx-spark")
    assert prof.os_visible_ram() == 122572 * MIB
    assert prof.gpu_total_bytes() == 122572 * MIB


# --------------------------------------------------------------------------- loading

def test_aliases_and_case_resolve():
    assert load_profile("SPARK").id == "dgx-spark"
    assert load_profile("hp-zbook-ultra-g1a-64g").id == "ai-max-395-64g"


def test_unknown_id_lists_close_matches_and_points_to_devices():
    with pytest.raises(DeviceError) as e:
        load_profile("ai-max-395-46g")
    assert "ai-max-395-64g" in e.value.hint and "memfit devices" in e.value.hint
    with pytest.raises(DeviceError) as e:
        load_profile("395 128")
    assert "ai-max-395-128g-minipc" in e.value.hint


def test_toml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "x"\nram_bytes = = 3\n')
    with pytest.raises(DeviceError) as e:
        load_profile(str(bad))
    assert str(bad) in e.value.message and "line 2" in e.value.message
    assert "\n" not in e.value.message


def _minimal(extra: str = "", **repl) -> str:
    base = {
        "id": '"my-box"', "ram_bytes": '"64 GiB"', "bandwidth_gbps": "120",
    }
    base.update(repl)
    return f'''id = {base["id"]}
name = "My box"
vendor = "AMD"
family = "strix-point"
form_factor = "mini-pc"
memory_architecture = "carveout"
ram_bytes = {base["ram_bytes"]}
default_os = "linux"
bandwidth_gbps = {base["bandwidth_gbps"]}
{extra}
[carveout]
options_bytes = ["512m", "8g", "16g"]
default_bytes = "512m"

[os.linux]
reserve_bytes = {{ headless = "4g", desktop = "8g", daily = "12g" }}
[os.linux.gpu_cap]
default_fraction = 0.5
max_fraction = 0.9
knob = "ttm.pages_limit"
[[os.linux.backends]]
name = "vulkan"
reports_as = "carveout_plus_cap"
'''


def test_validation_error_names_file_and_field(tmp_path):
    f = tmp_path / "box.toml"
    f.write_text(_minimal(bandwidth_gbps="-5"))
    with pytest.raises(DeviceError) as e:
        load_file(f)
    assert str(f) in e.value.message and "bandwidth_gbps" in e.value.message
    f.write_text(_minimal(extra='bandwith_gbps = 3'))
    with pytest.raises(DeviceError) as e:
        load_file(f)
    assert "bandwith_gbps" in e.value.message and "unknown field" in e.value.message
    f.write_text(_minimal().replace('daily = "12g"', 'daly = "12g"'))
    with pytest.raises(DeviceError) as e:
        load_file(f)
    assert "os.linux.reserve_bytes" in e.value.message


def test_device_file_and_user_dir_override_shipped(tmp_path):
    f = tmp_path / "box.toml"
    f.write_text(_minimal())
    assert load_profile(str(f)).id == "my-box"
    # a user profile with a shipped id replaces the shipped one
    user_profile(tmp_path, _minimal(id='"dgx-spark"'), "spark.toml")
    cat = load_catalog()
    assert cat.entries["dgx-spark"].origin == "user"
    assert load_profile("dgx-spark").memory_architecture == "carveout"


def test_broken_user_profile_is_reported_not_fatal(tmp_path):
    user_profile(tmp_path, "id = [", "broken.toml")
    cat = load_catalog()
    assert "rtx-4090" in cat.ids()
    assert cat.problems and "broken.toml" in cat.problems[0]
    with pytest.raises(DeviceError) as e:
        load_profile("nope")
    assert "failed to load" in e.value.hint


def test_size_strings_and_byte_counts_are_equal():
    a = parse_profile(_minimal(), "a")
    b = parse_profile(_minimal(ram_bytes=str(64 * GIB)), "b")
    assert a.ram_bytes == b.ram_bytes == 64 * GIB
    assert a.carveout.options_bytes[0] == 512 * MIB


# --------------------------------------------------------------------------- overrides

def test_overrides_carveout_os_and_use():
    prof = apply_overrides(load_profile("ai-max-395-64g"), carveout="32g", os="linux", use="headless")
    assert prof.current_carveout() == 32 * GIB and prof.default_os == "linux" and prof.default_use == "headless"
    assert prof.gpu_total_bytes() == 32 * GIB + 16 * GIB
    assert prof.overrides == {"os": "linux", "use": "headless", "carveout": "32.00 GiB"}
    assert prof.based_on == "ai-max-395-64g"


def test_carveout_not_in_firmware_list_is_accepted_with_a_note():
    prof = apply_overrides(load_profile("ai-max-395-64g"), carveout="20g")
    assert prof.current_carveout() == 20 * GIB and 20 * GIB in prof.carveout_options()
    assert any("not among the firmware options" in n for n in prof.notes)


@pytest.mark.parametrize("kw,err,text", [
    ({"carveout": "63g"}, DeviceError, "leaves the OS"),
    ({"carveout": "0"}, InputError, "512 MB"),
    ({"os": "macos"}, DeviceError, "no macos entry"),
    ({"os": "beos"}, InputError, "linux, windows or macos"),
    ({"vram": "24g"}, DeviceError, "--carveout"),
    ({"use": "gaming"}, InputError, "headless"),
    ({"ram": "lots"}, InputError, "invalid --ram"),
    ({"bandwidth": "fast"}, InputError, "GB/s"),
])
def test_bad_overrides_are_rejected_clearly(kw, err, text):
    with pytest.raises(err) as e:
        apply_overrides(load_profile("ai-max-395-64g"), **kw)
    assert text in e.value.message + (e.value.hint or "")


def test_carveout_on_unified_machine_points_to_gpu_cap():
    with pytest.raises(DeviceError) as e:
        apply_overrides(load_profile("apple-m4-max-64g"), carveout="8g")
    assert "--gpu-cap" in e.value.hint


def test_gpu_cap_override_and_ram_override_on_a_mac():
    prof = apply_overrides(load_profile("apple-m4-max-128g"), gpu_cap="112g")
    assert prof.gpu_total_bytes() == 112 * GIB
    small = apply_overrides(load_profile("apple-m4-pro-48g"), ram="24g")
    assert small.gpu_total_bytes() == int(2 / 3 * 24 * GIB)  # 2/3 below 36 GB


def test_ram_override_drops_carveouts_firmware_cannot_offer():
    prof = apply_overrides(load_profile("ai-max-395-128g-minipc"), ram="64g")
    assert max(prof.carveout_options()) <= 48 * GIB
    assert prof.current_carveout() in prof.carveout_options()


# --------------------------------------------------------------------------- CLI

def test_devices_table_lists_every_profile(monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # room for every column
    res = CliRunner().invoke(cli, ["devices"])
    assert res.exit_code == 0, res.output
    for pid in REQUIRED_IDS:
        assert pid in res.output
    # carve-out options as the BIOS names them
    assert "carve-out options" in res.output and "0.5,1,2,4,8,12,16,24,32,48 GB" in res.output
    monkeypatch.setenv("COLUMNS", "80")  # the options go first, and the table says so
    res = CliRunner().invoke(cli, ["devices"])
    assert "0.5,1,2,4,8,12,16,24,32,48 GB" not in res.output
    assert "(left out to fit 80 columns: carve-out options," in res.output
    for pid in REQUIRED_IDS:
        assert pid in res.output


def test_devices_json():
    res = CliRunner().invoke(cli, ["devices", "--json"])
    data = json.loads(res.output)
    row = next(d for d in data["devices"] if d["id"] == "ai-max-395-64g")
    assert row["memory_architecture"] == "carveout" and row["ram_bytes"] == 64 * GIB
    assert row["carveout_options_bytes"][0] == 512 * MIB and row["bandwidth_gbps"] == 256


def test_devices_show_explains_pools_caps_reserves_backends_sources():
    res = CliRunner().invoke(cli, ["devices", "show", "ai-max-395-128g-minipc"])
    out = res.output
    assert res.exit_code == 0, out
    assert "Linux" in out and "Windows (default)" in out
    assert "ttm.pages_limit=" in out and "not tunable" in out
    # the factory split on Windows: the carve-out as the BIOS names it, what it leaves in GiB
    assert re.search(r"64 GB \*\s+64 GiB\s+32 GiB\s+96 GiB", out), out
    assert "daily" in out and "amdvlk" in out and "2 GiB" in out
    assert "Sources:" in out and "unslothai/unsloth#10418" in out or "botbeat" in out


def test_devices_show_json_has_derived_pools():
    res = CliRunner().invoke(cli, ["devices", "show", "apple-m4-max-128g", "--json"])
    data = json.loads(res.output)
    pool = data["derived"]["macos"]["pools"][0]
    assert pool["gpu_total_bytes"] == 96 * GIB
    assert data["derived"]["macos"]["cap_setting_for_max"].startswith("sudo sysctl iogpu.wired_limit_mb=")


def test_devices_show_with_overrides():
    res = CliRunner().invoke(cli, ["devices", "show", "rtx-4090", "--ram", "128g", "--os", "linux"])
    assert res.exit_code == 0 and "host RAM 128 GB" in res.output and "Overrides" in res.output


def test_devices_show_unknown_is_one_line_error(capsys):
    assert run(["devices", "show", "ai-max-395-64"]) == 1
    err = capsys.readouterr().err
    assert "unknown device 'ai-max-395-64'" in err and "did you mean ai-max-395-64g" in err
    assert "Traceback" not in err


def test_devices_show_bad_override_is_usage_error(capsys):
    assert run(["devices", "show", "ai-max-395-64g", "--carveout", "lots"]) == EXIT_USAGE
    assert "invalid --carveout" in capsys.readouterr().err


def test_docs_example_profile_is_valid(tmp_path):
    """The commented example in docs/devices.md must load as it is."""
    doc = (REPO / "docs" / "devices.md").read_text()
    block = re.search(r"```toml\n(.*?)```", doc, re.DOTALL).group(1)
    f = tmp_path / "my-hx370-64g.toml"
    f.write_text(block)
    prof = load_profile(str(f))
    assert prof.id == "my-hx370-64g" and prof.gpu_total_bytes("linux") == 512 * MIB + int(0.5 * (64 * GIB - 512 * MIB))
    # and `--device auto` would prefer it over the shipped Strix Point profile on a matching box
    from planner.probe.build import recognise
    from planner.probe.facts import GpuFacts, MachineFacts

    user_profile(tmp_path, block, "my-hx370-64g.toml")
    facts = MachineFacts(system="linux", cpu_name="AMD Ryzen AI 9 HX 370 w/ Radeon 890M", model_name="MyBox",
                         gpus=[GpuFacts(vendor="amd", pci_id="1002:150e", kind="integrated")])
    assert recognise(facts, load_catalog(), 64 * GIB).entry.profile.id == "my-hx370-64g"


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_devices_show_works_for_every_profile(path: Path):
    from planner.report.device_show import show_json, show_text

    prof = load_file(path)
    text = show_text(prof)
    assert prof.id in text and "Sources:" in text
    json.dumps(show_json(prof))
