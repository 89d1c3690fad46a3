"""Device files are bounded (finite numbers within physical ranges), every JSON output is strict
JSON, and terminal output carries no bidi or other format characters (issue 12)."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest

from planner.testing import ggufgen
from planner.testing.clirun import memfit, plan
from planner.devices import load_file, parse_profile
from planner.errors import DeviceError
from planner.units import one_line, printable

PROFILES = Path(__file__).resolve().parent.parent / "profiles"


def _strict(text: str) -> object:
    def no_constant(name: str) -> object:
        raise AssertionError(f"{name} in JSON output")

    return json.loads(text, parse_constant=no_constant)


def _hostile(tmp_path: Path, pattern: str, repl: str, base: str = "rtx-4090.toml") -> Path:
    text = (PROFILES / base).read_text()
    new, n = re.subn(pattern, repl, text, count=1, flags=re.MULTILINE)
    assert n == 1, pattern
    path = tmp_path / "hostile.toml"
    path.write_text(new)
    return path


HOSTILE = {
    "bandwidth inf": (r"^bandwidth_gbps = .*$", "bandwidth_gbps = inf", "bandwidth_gbps"),
    "bandwidth nan": (r"^bandwidth_gbps = .*$", "bandwidth_gbps = nan", "bandwidth_gbps"),
    "bandwidth 1e9": (r"^bandwidth_gbps = .*$", "bandwidth_gbps = 1e9", "bandwidth_gbps"),
    "host bandwidth inf": (r"^host_bandwidth_gbps = .*$", "host_bandwidth_gbps = inf", "host_bandwidth_gbps"),
    "decode efficiency nan": (r"^decode_efficiency = .*$", "decode_efficiency = nan", "decode_efficiency"),
    "ram 2^80": (r"^ram_bytes = .*$", f"ram_bytes = {1 << 80}", "ram_bytes"),
    "ram inf": (r"^ram_bytes = .*$", "ram_bytes = inf", "ram_bytes"),
    "vram 2^60": (r"^vram_bytes = .*$", f"vram_bytes = {1 << 60}", "vram_bytes"),
    "reserve 2^64": (r'headless = "4 GiB"', f"headless = {1 << 64}", "reserve_bytes"),
    "reserve 1e30 as text": (r'headless = "4 GiB"', 'headless = "1e30g"', "reserve_bytes"),
    "overhead inf": (r'overhead_bytes = "0.45 GiB"', "overhead_bytes = inf", "overhead_bytes"),
    "tflops inf": (r"^gpu_tflops_fp16 = .*$", "gpu_tflops_fp16 = inf", "gpu_tflops_fp16"),
    "ram 512 MiB": (r"^ram_bytes = .*$", 'ram_bytes = "512 MiB"', "ram_bytes"),
    "vram 100 KB": (r"^vram_bytes = .*$", "vram_bytes = 100000", "vram_bytes"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_device_files_are_refused(tmp_path: Path, case: str) -> None:
    """Before: bandwidth inf made --json print Infinity; ram 2^80 and a reserve of 2^64 passed."""
    pattern, repl, field = HOSTILE[case]
    path = _hostile(tmp_path, pattern, repl)
    with pytest.raises(DeviceError) as e:
        load_file(path)
    assert field in e.value.message and "\n" not in e.value.message
    model = str(ggufgen.write_model(tmp_path / "m.gguf", "llama")[0])
    result = plan(model, "--device-file", str(path), "--json")
    assert result.exit_code == 1, result.output
    err = _strict(result.stdout)["error"]  # type: ignore[index]
    assert err["kind"] == "device" and field in err["message"]
    assert "Infinity" not in result.stdout and "NaN" not in result.stdout


def test_shared_slowdown_and_live_values_are_bounded() -> None:
    text = (PROFILES / "ai-max-395-64g.toml").read_text()
    for value in ("inf", "nan", "1000.0", "0.5"):
        bad = re.sub(r"^(\[os\.windows\.gpu_cap\])$", rf"\1\nshared_slowdown = {value}", text, count=1,
                     flags=re.MULTILINE)
        assert bad != text
        with pytest.raises(DeviceError, match="shared_slowdown"):
            parse_profile(bad, "x.toml")
    with pytest.raises(DeviceError, match="live.os_visible_ram_bytes"):
        parse_profile(text + f'\n[live]\nos = "linux"\nos_visible_ram_bytes = {1 << 70}\n', "x.toml")


def test_every_shipped_profile_is_within_the_bounds() -> None:
    for p in sorted(PROFILES.glob("*.toml")):
        load_file(p)  # raises on a shipped profile outside a bound


def test_plan_json_is_strict_for_every_shipped_device(tmp_path: Path) -> None:
    model = str(ggufgen.write_model(tmp_path / "m.gguf", "qwen3moe")[0])
    ids = ",".join(p.stem for p in sorted(PROFILES.glob("*.toml"))[:6])
    result = plan(model, "--device", ids, "--json")
    assert result.exit_code in (0, 3), result.output
    _strict(result.stdout)
    for cmd in (("estimate", model, "--json"), ("devices", "--json"), ("devices", "show", "rtx-4090", "--json"),
                ("inspect", model, "--json")):
        result = memfit(*cmd)
        assert result.exit_code == 0, result.output
        _strict(result.stdout)


# --- bidi and other format characters ---------------------------------------------------------------


def _format_chars(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) == "Cf"]


def test_printable_strips_bidi_and_format_characters() -> None:
    for c in ("\u202e", "\u202a", "\u202b", "\u202c", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069",
              "\u200e", "\u200f", "\u061c", "\u200b", "\u200d", "\ufeff", "\u00ad", "\U000e0041"):
        assert printable(f"a{c}b") == "ab", hex(ord(c))
    assert printable("a\u2028b\u2029c") == "a?b?c"
    assert printable("Qwen3 ✓ ünïcode 模型") == "Qwen3 ✓ ünïcode 模型"
    assert one_line("x\u202eyz") == "xyz"


def test_a_right_to_left_override_in_a_model_name_never_reaches_the_terminal(tmp_path: Path) -> None:
    """Before: U+202E in general.name was printed as is (the name displayed reversed)."""
    meta, tensors = ggufgen.model_spec("llama", ggufgen.ModelShape(), name="evil\u202egnp.exe \u2066model\u2069")
    path = str(ggufgen.write_gguf(tmp_path / "m.gguf", meta, tensors))
    for result in (memfit("inspect", path), memfit("estimate", path), plan(path, "--device", "ai-max-395-64g"),
                   plan(path, "--device", "ai-max-395-64g", "--format", "markdown")):
        assert result.exit_code in (0, 3), result.output
        assert _format_chars(result.output) == [], result.output
    assert "evilgnp.exe model" in memfit("inspect", path).output
