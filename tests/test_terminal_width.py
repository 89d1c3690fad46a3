"""Every command's text fits the terminal (issue 14): `devices`, `devices show`, `doctor`,
`estimate` and `inspect`, their help and their errors, rendered at COLUMNS=80 and COLUMNS=120.

Three things are checked for each rendering:
- every line fits the width (`len()` of the line; '·' or '►' count one). The one exception is
  planner/report/layout.py's rule: a single word longer than a whole line (a URL or a path) is
  printed whole on a line of its own;
- every column a table dropped is named in that output's "(left out to fit N columns: ...)" note
  (a spy on layout.fit_columns sees each table before and after the drops);
- nothing disappears silently: every word of the 120-column text is in the 80-column text, except
  the header and cells of the columns dropped at 80 (and named there).

The `plan` report is tested by its own suite.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest

from planner.testing import realmodels
from planner.testing.clirun import memfit
from planner.testing.fakehub import FakeHub, model_repo_files
from planner.report import layout

REPO = Path(__file__).resolve().parent.parent
MACHINES = Path(__file__).resolve().parent / "fixtures" / "machines"
MACHINE_NAMES = sorted(p.name for p in MACHINES.iterdir() if p.is_dir())
PROFILES = sorted(p.stem for p in (REPO / "profiles").glob("*.toml"))
WIDTHS = (80, 120)
SPEC = realmodels.load_spec("qwen3-vl-32b")
LEFT_OUT = re.compile(r"\(left out to fit (\d+) columns: (.*?); a wider COLUMNS or --json shows (?:it|them)\)")

# the profiles the issue names: a discrete card, a Mac, DGX Spark and a Strix Halo laptop
NAMED_PROFILES = ["rtx-4090", "apple-m4-max-128g", "dgx-spark", "ai-max-395-128g-laptop"]


class Tables:
    """A spy on layout.fit_columns: each table's headers and rows, and the columns it dropped."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[list[str]], list[str]]] = []
        self._real = layout.fit_columns

    def __call__(self, rows: list[list[str]], headers: list[str], *args: Any, **kw: Any) -> Any:
        out = self._real(rows, headers, *args, **kw)
        self.calls.append((list(headers), [list(r) for r in rows], list(out[2])))
        return out

    def dropped_words(self) -> Counter[str]:
        """The words of the headers and cells of every dropped column."""
        words: Counter[str] = Counter()
        for headers, rows, dropped in self.calls:
            for name in dropped:
                i = headers.index(name)
                words.update(_words(name.replace("\n", " ")))
                for r in rows:
                    words.update(_words(r[i].replace(layout.NBSP, " ")))
        return words


def _words(text: str) -> Counter[str]:
    return Counter(text.split())


def render(monkeypatch: pytest.MonkeyPatch, width: int, args: tuple[str, ...]) -> tuple[str, Tables]:
    """`memfit ARGS` at COLUMNS=width: stdout and stderr, and the tables it drew."""
    spy = Tables()
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setattr(layout, "fit_columns", spy)
    try:
        res = memfit(*args)
    finally:
        monkeypatch.setattr(layout, "fit_columns", spy._real)
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    return res.stdout + res.stderr, spy


LABEL_MAX = 24  # the most an indent and a label ("          source: ") take before a long word


def assert_fits(text: str, width: int, what: str) -> None:
    for line in text.splitlines():
        if len(line) <= width:
            continue
        # the one exception: a path or URL longer than the room on its line, whole, ending it (before
        # a command's line continuation, if any)
        line = re.sub(r" [`\\^]$", "", line)
        # a quoted shell word holding a path ('FROM /long/path.gguf',) cannot break either
        quoted = [t for t in re.findall(r"'[^']*'|\"[^\"]*\"", line) if "/" in t and len(t) > width - LABEL_MAX - 10]
        if quoted and line.rstrip(",;").endswith(quoted[-1]):
            continue
        head, _, word = line.rpartition(" ")
        lone = "/" in word and len(head) < LABEL_MAX and len(head) + 1 + len(word) == len(line)
        assert lone and len(word) > width - LABEL_MAX, f"{what}: {len(line)} > {width} columns:\n{line}"


def assert_drops_named(text: str, spy: Tables, width: int, what: str) -> None:
    named = [n.strip() for w, names in LEFT_OUT.findall(" ".join(text.split())) if int(w) == width
             for n in names.split(", ")]
    for headers, _rows, dropped in spy.calls:
        for name in dropped:
            assert " ".join(name.split()) in named, f"{what}: column {name!r} dropped without a note"


def _content(text: str) -> Counter[str]:
    """The words of a rendering, without the table rules and the left-out notes."""
    flat = LEFT_OUT.sub(" ", " ".join(text.split()))
    flat = re.sub(r"(?<=[a-z])- (?=[a-z])", "-", flat)  # click's help breaks words after a hyphen
    return Counter(w for w in flat.split() if set(w) != {"-"} and w != "·")  # rules and separators


def check_command(monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], what: str,
                  expect: Callable[[str, int], None] | None = None) -> dict[int, str]:
    """Render at each width; every line fits, drops are named, no word goes missing at 80."""
    texts: dict[int, str] = {}
    spies: dict[int, Tables] = {}
    for width in WIDTHS:
        text, spy = render(monkeypatch, width, args)
        assert_fits(text, width, f"{what} @{width}")
        assert_drops_named(text, spy, width, f"{what} @{width}")
        if expect is not None:
            expect(text, width)
        texts[width], spies[width] = text, spy
    missing = _content(texts[120]) - _content(texts[80])
    unexplained = missing - spies[80].dropped_words()
    assert not unexplained, f"{what}: at 80 columns these words are gone without a note: {dict(unexplained)}"
    return texts


# --------------------------------------------------------------------------- devices


def test_devices_list(monkeypatch):
    def expect(text: str, width: int) -> None:
        for pid in PROFILES:  # the id is never dropped
            assert re.search(rf"^{re.escape(pid)}\s", text, re.MULTILINE), pid
        assert "128 GB" in text and "24 GB" in text  # RAM and VRAM as sold
        if width == 80:
            assert "left out to fit 80 columns: carve-out options" in " ".join(text.split())
        else:
            assert "carve-out APU" in text and "GB/s" in text

    check_command(monkeypatch, ("devices",), "devices", expect)


@pytest.mark.parametrize("profile", PROFILES)
def test_devices_show(monkeypatch, profile):
    def expect(text: str, width: int) -> None:
        assert "Sources:" in text and "Units: GB for sizes as vendors" in " ".join(text.split())

    check_command(monkeypatch, ("devices", "show", profile), f"devices show {profile}", expect)


def test_devices_show_covers_the_named_kinds_of_machine():
    assert set(NAMED_PROFILES) <= set(PROFILES)


def test_devices_show_carveout_table_drops_backend_reports_first(monkeypatch):
    text, spy = render(monkeypatch, 80, ("devices", "show", "ai-max-395-128g-laptop"))
    linux = next(c for c in spy.calls if "vulkan (amdvlk)\nreports" in c[0])
    # the backends' report columns go first, the non-default backends before the default one
    assert linux[2][:3] == ["vulkan (amdvlk)\nreports", "rocm\nreports", "vulkan (radv)\nreports"]
    assert "GPU total" in text and "RAM left after" in text and "512 MB *" in text
    text, spy = render(monkeypatch, 160, ("devices", "show", "ai-max-395-128g-laptop"))
    assert all(not dropped for _h, _r, dropped in spy.calls)  # nothing dropped when there is room


@pytest.mark.parametrize("machine", MACHINE_NAMES)
def test_devices_show_auto(monkeypatch, machine):
    check_command(monkeypatch, ("devices", "show", "auto", "--root", str(MACHINES / machine)),
                  f"devices show auto ({machine})")


# --------------------------------------------------------------------------- doctor


@pytest.mark.parametrize("machine", MACHINE_NAMES)
def test_doctor(monkeypatch, machine):
    def expect(text: str, width: int) -> None:
        assert "Findings:" in text and "Units: GB for sizes" in " ".join(text.split())

    check_command(monkeypatch, ("doctor", "--root", str(MACHINES / machine)), f"doctor {machine}", expect)


# --------------------------------------------------------------------------- estimate


@pytest.fixture(scope="module")
def qwen3vl(tmp_path_factory) -> dict[str, str]:
    """Real-shaped Qwen3-VL-32B headers (sparse files): sizes with realistic digits."""
    root = tmp_path_factory.mktemp("qwen3vl")
    q = "Q4_K_M"
    return {"model": str(realmodels.write_variant(SPEC, q, root / realmodels.file_name(SPEC, q))),
            "mmproj": str(realmodels.write_mmproj(SPEC, root / SPEC["mmproj"]["file"]))}


@pytest.mark.parametrize("arch", ["llama", "qwen3moe", "gemma3", "deepseek2", "gpt-oss", "jamba"])
def test_estimate_local(monkeypatch, arch_models, arch):
    check_command(monkeypatch, ("estimate", str(arch_models[arch])), f"estimate {arch}")


def test_estimate_real_shape_with_projector(monkeypatch, qwen3vl):
    check_command(monkeypatch, ("estimate", qwen3vl["model"], "-c", "32k", "--mmproj", qwen3vl["mmproj"]),
                  "estimate qwen3-vl-32b")


@pytest.mark.parametrize("device", NAMED_PROFILES)
def test_estimate_with_device(monkeypatch, qwen3vl, device):
    def expect(text: str, width: int) -> None:
        assert "for a recommendation" in text
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("memfit plan "))
        command = []  # the plan line, continued with ` \` when it is broken, pastes as one command
        for line in lines[start:]:
            command.append(line.strip().removesuffix("\\").strip())
            if not line.endswith("\\"):
                break
        assert " ".join(command).startswith(f"memfit plan {qwen3vl['model']} --device {device} --ctx 8k")

    check_command(monkeypatch, ("estimate", qwen3vl["model"], "-c", "8k", "--device", device),
                  f"estimate --device {device}", expect)


def test_estimate_on_a_cpu_only_machine(monkeypatch, arch_models):
    monkeypatch.setenv("MEMFIT_PROBE_ROOT", str(MACHINES / "cpu-only-ryzen-desktop"))
    check_command(monkeypatch, ("estimate", str(arch_models["qwen3"]), "--device", "auto"), "estimate cpu-only")


def test_estimate_carveout_is_in_bios_units(monkeypatch, qwen3vl):
    text, _ = render(monkeypatch, 80, ("estimate", qwen3vl["model"], "-c", "8k", "--device", "ai-max-395-64g"))
    assert "carve-out 512 MB (factory default, assumed)" in text
    text, _ = render(monkeypatch, 80, ("estimate", qwen3vl["model"], "-c", "8k", "--device", "rtx-4090"))
    assert "VRAM 24 GB (" in text


# --------------------------------------------------------------------------- inspect


@pytest.mark.parametrize("arch", ["llama", "qwen3moe", "deepseek2", "jamba", "clip"])
def test_inspect_local(monkeypatch, arch_models, arch):
    check_command(monkeypatch, ("inspect", str(arch_models[arch])), f"inspect {arch}")


def test_inspect_local_directory_with_a_projector(monkeypatch, tmp_path):
    from planner.testing import ggufgen

    shape = ggufgen.ModelShape(n_layer=4, n_embd=512, n_head=8, n_head_kv=2, n_vocab=3000)
    model_repo_files(tmp_path / "m", "Qwen3-30B-A3B-Instruct-2507", ["Q4_K_M", "Q8_0", "UD-Q4_K_XL"],
                     arch="qwen3moe", shape=shape, mmproj=True)
    texts = check_command(monkeypatch, ("inspect", str(tmp_path / "m")), "inspect directory")
    assert "companions" in texts[80] and "mmproj-F16.gguf" in texts[80]


def test_inspect_via_the_hub(monkeypatch, fake_hub: FakeHub, tmp_path):
    from planner.testing import ggufgen

    shape = ggufgen.ModelShape(n_layer=4, n_embd=512, n_head=8, n_head_kv=2, n_vocab=3000)
    files = model_repo_files(tmp_path / "hub", "Qwen3-30B-A3B", ["IQ4_XS", "Q4_K_M", "Q6_K", "Q8_0"],
                             arch="qwen3moe", shape=shape, mmproj=True, shards={"Q8_0": 2})
    fake_hub.add_repo("unsloth/Qwen3-30B-A3B-Instruct-2507-GGUF", files)

    def expect(text: str, width: int) -> None:
        assert "memfit plan unsloth/Qwen3-30B-A3B-Instruct-2507-GGUF --device ID" in text
        assert "llama-server -hf unsloth/Qwen3-30B-A3B-Instruct-2507-GGUF:QUANT" in text

    check_command(monkeypatch, ("inspect", "unsloth/Qwen3-30B-A3B-Instruct-2507-GGUF"), "inspect hub", expect)


# --------------------------------------------------------------------------- help and errors


@pytest.mark.parametrize("command", [(), ("devices",), ("devices", "show"), ("doctor",), ("estimate",),
                                     ("inspect",)], ids=lambda c: " ".join(c) or "memfit")
def test_help(monkeypatch, command):
    texts = check_command(monkeypatch, (*command, "--help"), f"{' '.join(command)} --help")
    assert texts[80].startswith("Usage: memfit")
    # click fills the width it is given: the 120-column help is not the 80-column one
    assert max(map(len, texts[120].splitlines())) > 80


def test_errors_are_one_line_at_any_width(monkeypatch, tmp_path):
    """An error and its hint stay one line each whatever the width: the terminal wraps them, and a
    script or grep reads one line (the brief's one-line errors)."""
    deep = tmp_path / "some" / "deeply" / "nested" / "folder"
    deep.mkdir(parents=True)
    junk = deep / "not-a-model-Q4_K_M.gguf"
    junk.write_bytes(b"just some text, not a GGUF file at all" * 10)
    for args in [("estimate", str(junk)), ("inspect", str(junk)), ("devices", "show", "ai-max-395-64"),
                 ("estimate", str(junk), "--ctx-size", "24kk"), ("doctor", "--use", "sometimes"),
                 ("estimate", str(junk), "--device", "rtx-4090", "--backend", "rocm")]:
        for width in WIDTHS:
            text, _ = render(monkeypatch, width, args)
            lines = text.splitlines()
            assert lines[0].startswith("error: ") and 1 <= len(lines) <= 2, lines
            assert all(line.startswith(("error: ", "hint: ")) for line in lines), lines

# --------------------------------------------------------------------------- plan


@pytest.fixture(scope="module")
def plan_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from validation.field.make_specs import sparse_gguf

    root = tmp_path_factory.mktemp("plan-width")
    for q in ("Q4_K_M", "Q6_K", "Q8_0", "BF16"):
        sparse_gguf("qwen3-32b", q, root / "dense")
    sparse_gguf("gpt-oss-120b", "MXFP4_MOE", root / "moe")
    return root


@pytest.mark.parametrize("device", NAMED_PROFILES + ["ai-max-395-64g"])
def test_plan_fits_the_terminal(monkeypatch, plan_model, device):
    def expect(text: str, width: int) -> None:
        assert "Recommendation:" in text and "Quants at" in text

    check_command(monkeypatch, ("plan", str(plan_model / "dense"), "--device", device, "--ctx", "32k"), f"plan {device}", expect)


def test_plan_of_an_expert_offload_fits_the_terminal(monkeypatch, plan_model):
    check_command(monkeypatch, ("plan", str(plan_model / "moe"), "--device", "rtx-4090", "--ctx", "32k"),
                  "plan moe rtx-4090")


def test_plan_comparison_fits_the_terminal(monkeypatch, plan_model):
    check_command(monkeypatch, ("plan", str(plan_model / "dense"), "--device", "ai-max-395-64g", "--device", "dgx-spark",
                                "--device", "rtx-4090", "--ctx", "32k"), "plan comparison")
