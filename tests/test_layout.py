"""planner/report/layout.py: the width text renders at, prose wrapping, commands broken for
pasting, and tables that wrap and drop columns in a stated order (and say so)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.report import layout
from planner.report.layout import command_lines, kv_lines, render_table, text_width, unbroken, wrap

# --------------------------------------------------------------------------- width


@pytest.mark.parametrize("columns, width", [("80", 80), ("120", 120), ("100", 100), ("20", 60), ("400", 160),
                                            (" 90 ", 90)])
def test_width_is_columns_held_between_60_and_160(monkeypatch, columns, width):
    monkeypatch.setenv("COLUMNS", columns)
    assert text_width() == width


@pytest.mark.parametrize("columns", [None, "", "abc", "0", "-5"])
def test_width_is_80_when_not_a_terminal_and_columns_is_unusable(monkeypatch, columns):
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert text_width() == 80


def test_width_of_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(sys, "stdout", Tty())
    monkeypatch.setattr(layout.shutil, "get_terminal_size", lambda fallback: __import__("os").terminal_size((132, 40)))
    assert text_width() == 132


# --------------------------------------------------------------------------- prose


def test_wrap_hangs_continuation_lines_under_the_text():
    text = "rename ttm.pages_limit=27787264 to amdttm.pages_limit=27787264 on the kernel command line, then reboot"
    lines = wrap(text, 40, "  fix: ", "    ")
    assert lines[0].startswith("  fix: rename") and all(x.startswith("    ") for x in lines[1:])
    assert all(len(x) <= 40 for x in lines)
    assert " ".join(x.strip() for x in lines) == "fix: " + text


def test_wrap_keeps_values_with_their_units_and_unbroken_phrases_whole():
    text = "use a 2 GB carve-out and 106.00 GiB of GTT at 256 GB/s for 4,096 tokens"
    for width in range(20, 60):
        lines = wrap(text, width)
        for unit in ("2 GB", "106.00 GiB", "256 GB/s", "4,096 tokens"):
            assert any(unit in x for x in lines), (width, lines)
    lines = wrap("a " + unbroken("Ryzen AI Max+ 395") + " b", 12)
    assert "Ryzen AI Max+ 395" in lines and not any("\u00a0" in x for x in lines)


def test_a_word_longer_than_the_line_stays_whole_and_ends_its_line():
    url = "https://rocm.docs.amd.com/en/latest/how-to/system-optimization/strixhalo.html;"
    lines = wrap(f"{url} drivers/gpu/drm/ttm/ttm_device.c (default 1/2 of RAM)", 40, "source: ", "  ")
    assert lines[0] == "source: " + url  # whole: a broken URL does not paste
    assert all(len(x) <= 40 for x in lines[1:])


def test_wrap_starts_new_lines_at_newlines():
    assert wrap("one\ntwo", 80, "- ") == ["- one", "  two"]


def test_kv_lines_wrap_values_under_the_value_column():
    rows = [("model", "Qwen3 VL 32B Instruct " * 4), ("layers", "64"),
            ("a label far too long to line up with the rest", "its value")]
    lines = kv_lines(rows, 60)
    assert lines[0].startswith("model   Qwen3") and all(len(x) <= 60 for x in lines)
    value_col = lines[0].index("Qwen3")
    cont = [x for x in lines[1:] if x.startswith(" ")]
    assert cont and all(x[:value_col].strip() == "" for x in cont)
    assert "layers  64" in lines
    i = lines.index("a label far too long to line up with the rest")
    assert lines[i + 1].strip() == "its value"  # a long label does not push the value column


# --------------------------------------------------------------------------- commands


def _bash_argv(lines: list[str]) -> list[str]:
    out = subprocess.run(["bash", "-c", 'printf "%s\\n" ' + "\n".join(lines)], capture_output=True, text=True,
                         check=True)
    return out.stdout.splitlines()


def test_a_command_that_fits_is_one_line():
    assert command_lines(["memfit", "plan", "m.gguf", "--device", "rtx-4090"], 80, indent="  ") == [
        "  memfit plan m.gguf --device rtx-4090"]


def test_a_long_command_breaks_between_arguments_and_pastes_as_one():
    words = ["memfit", "plan", "/models/Qwen3VL-32B-Instruct-Q4_K_M.gguf", "--device", "ai-max-395-128g-laptop",
             "--ctx", "8k", "-np", "4", "--backend", "'vulkan (amdvlk)'"]
    lines = command_lines(words, 60, indent="    ")
    assert len(lines) > 1 and all(len(x) <= 60 for x in lines)
    assert all(x.endswith(" \\") for x in lines[:-1]) and not lines[-1].endswith("\\")
    assert not any(x.rstrip(" \\").endswith(("--device", "--ctx", "-np", "--backend")) for x in lines)  # flag + value
    assert _bash_argv(lines) == ["memfit", "plan", "/models/Qwen3VL-32B-Instruct-Q4_K_M.gguf", "--device",
                                 "ai-max-395-128g-laptop", "--ctx", "8k", "-np", "4", "--backend", "vulkan (amdvlk)"]


def test_a_long_path_moves_to_the_commands_own_indent():
    path = "/tmp/pytest-of-root/pytest-123/qwen3vl0/Qwen3VL-32B-Instruct-Q4_K_M.gguf"  # 73 characters
    lines = command_lines(["memfit", "plan", path, "--device", "rtx-4090"], 80, indent="    ")
    assert f"    {path} \\" in lines and all(len(x) <= 80 for x in lines)
    assert lines[-1] == "        --device rtx-4090"  # the others keep the continuation indent


# --------------------------------------------------------------------------- tables

HEADERS = ["id", "name", "RAM", "bandwidth", "options"]
ROWS = [["ai-max-395-64g", "Ryzen AI Max+ 395 64 GB laptop (HP ZBook Ultra G1a class)", "64 GB", "256 GB/s",
         "0.5,1,2,4,8,12,16,24,32,48 GB"],
        ["rtx-4090", "RTX 4090 24 GB + 64 GB RAM desktop", "64 GB", "1008 GB/s", "-"]]


def test_a_table_that_fits_drops_nothing_and_says_nothing():
    lines = render_table(ROWS, HEADERS, 160, drop_order=["options", "bandwidth"])
    assert lines[0].split() == HEADERS and not any("left out" in x for x in lines)
    assert set(lines[1]) == {"-", " "} and len(lines) == 4


def test_columns_go_in_the_stated_order_and_are_named():
    lines = render_table(ROWS, HEADERS, 80, drop_order=["options", "bandwidth", "RAM"])
    assert all(len(x) <= 80 for x in lines)
    assert lines[0].split() == ["id", "name", "RAM"]  # only as many as needed: RAM stays
    note = " ".join(" ".join(lines).split())
    assert "(left out to fit 80 columns: options, bandwidth; a wider COLUMNS or --json shows them)" in note


def test_a_wrappable_column_wraps_before_any_column_is_dropped():
    lines = render_table(ROWS, HEADERS, 100, drop_order=["options", "bandwidth"], wrap_min={"name": 20})
    assert lines[0].split() == HEADERS and all(len(x) <= 100 for x in lines)
    assert not any("left out" in x for x in lines)
    body = " ".join(" ".join(lines[2:]).split())
    for word in ROWS[0][1].split():
        assert word in body  # wrapped, not cut
    # below the minimum, the drop order applies
    lines = render_table(ROWS, HEADERS, 80, drop_order=["options", "bandwidth"], wrap_min={"name": 20})
    assert "options" not in lines[0] and all(len(x) <= 80 for x in lines)


def test_headers_may_span_lines_and_cells_may_align_right():
    lines = render_table([["512 MB", "120.3 GiB"], ["96 GB", "8 GiB"]], ["carve-out", "GPU total\nraised"], 60,
                         align=["left", "right"])
    assert lines[0] == "           GPU total" and lines[1] == "carve-out     raised"
    assert lines[2] == "---------  ---------"
    assert lines[3] == "512 MB     120.3 GiB" and lines[4] == "96 GB          8 GiB"


def test_a_dropped_multiline_header_is_named_on_one_line():
    lines = render_table([["a" * 30, "b" * 30, "c" * 30]], ["x", "rocm\nreports", "z"], 70,
                         drop_order=["rocm\nreports"])
    assert "(left out to fit 70 columns: rocm reports; a wider COLUMNS or --json shows it)" in " ".join(lines)


def test_indent_counts_against_the_width():
    lines = render_table(ROWS, HEADERS, 80, drop_order=["options", "bandwidth", "RAM"], indent=4)
    assert all(x.startswith("    ") and len(x) <= 80 for x in lines if x.strip())


_word = st.text(alphabet="abcdefghij0123456789.%/", min_size=1, max_size=40)
_cell = st.lists(_word, min_size=0, max_size=8).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(n_cols=st.integers(1, 6), data=st.data(), width=st.integers(60, 160))
def test_every_table_fits_and_names_what_it_dropped(n_cols, data, width):
    headers = [f"col{i}" + "x" * data.draw(st.integers(0, 5)) for i in range(n_cols)]
    rows = data.draw(st.lists(st.lists(_cell, min_size=n_cols, max_size=n_cols), min_size=0, max_size=6))
    drop = data.draw(st.permutations(headers[1:]))
    wraps = {h: data.draw(st.integers(6, 30)) for h in headers if data.draw(st.booleans())}
    lines = render_table(rows, headers, width, drop_order=drop, wrap_min=wraps)
    assert all(len(x) <= width for x in lines), lines
    kept = lines[0].split()
    dropped = [h for h in drop if h not in kept]
    assert set(headers) - set(kept) == set(dropped) and headers[0] in kept  # only columns in the order go
    assert dropped == list(drop[:len(dropped)])  # in the stated order
    if dropped:
        assert f"left out to fit {width} columns: {', '.join(dropped)};" in " ".join(" ".join(lines).split())
