"""Implausible header values end in one line naming the key and the value (issue 12), for every
command; real models' metadata passes every bound (planner/plausibility.py).

Each file here is structurally valid GGUF: only the meaning of a value is wrong (a float where
llama.cpp wants an integer, an array of arrays, a negative or astronomically large count).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from gguf import GGUFValueType as V

from planner.testing import ggufgen
from planner.testing.clirun import logical_lines, memfit, plan
from planner.testing.ggufgen import typed
from planner.errors import GGUFError, MemfitError
from planner.header import ModelHeaders
from planner.model_facts import ModelFacts
from planner.reader import parse_file

ROOT = Path(__file__).resolve().parent.parent


def _write(tmp: Path, name: str, arch: str = "llama", override: dict[str, Any] | None = None,
           drop: tuple[str, ...] = ()) -> Path:
    meta, tensors = ggufgen.model_spec(arch, ggufgen.ModelShape())
    for k in drop:
        meta.pop(k, None)
    meta.update(override or {})
    return ggufgen.write_gguf(tmp / f"{name}.gguf", meta, tensors)


def _one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = logical_lines(result.stderr.strip())  # the message, wrapped to 80 columns, read back
    assert 1 <= len(lines) <= 2 and lines[0].startswith("error: "), lines
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert "ValidationError" not in result.output
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# --- crashes: float infinities and huge floats for integer keys, arrays of arrays, -1 context ------

CRASHERS = {
    "context_length=inf": ("llama", {"llama.context_length": typed(float("inf"), V.FLOAT32)},
                           "llama.context_length = inf"),
    "context_length=1e308": ("llama", {"llama.context_length": typed(1e308, V.FLOAT64)},
                             "llama.context_length = 1e+308"),
    "expert_used_count=inf": ("qwen3moe", {"qwen3moe.expert_used_count": typed(float("inf"), V.FLOAT32)},
                              "qwen3moe.expert_used_count = inf"),
    "head_count_kv=[[2],[2]]": ("llama", {"llama.attention.head_count_kv": typed([[2], [2]], V.ARRAY, V.ARRAY)},
                                "llama.attention.head_count_kv[0] = [2]"),
    "context_length=-1": ("llama", {"llama.context_length": typed(-1, V.INT32)}, "llama.context_length = -1"),
}


@pytest.mark.parametrize("case", sorted(CRASHERS))
def test_values_that_crashed_are_one_line_errors(tmp_path: Path, case: str) -> None:
    """Issue 12: OverflowError (inf, 1e308), TypeError (array of arrays) and a 4-line pydantic
    ValidationError (context -1 in plan) were 'internal error's."""
    arch, override, shown = CRASHERS[case]
    path = str(_write(tmp_path, "m", arch, override))
    for result in (memfit("estimate", path, "-c", "4096"), memfit("inspect", path),
                   plan(path, "--device", "ai-max-395-64g")):
        _one_line_error(result, "implausible header value", shown)


# --- silently wrong answers: KV 0.00 GiB, millions of GiB, "layers -1" -------------------------------

ABSURD = {
    "head_count=-8": ("llama", {"llama.attention.head_count": typed(-8, V.INT32)}, "llama.attention.head_count = -8"),
    "head_count_kv=0": ("llama", {"llama.attention.head_count_kv": typed(0, V.UINT32)},
                        "llama.attention.head_count_kv = 0"),
    "head_count_kv=-1": ("llama", {"llama.attention.head_count_kv": typed(-1, V.INT32)},
                         "llama.attention.head_count_kv = -1"),
    "key_length=2^31": ("llama", {"llama.attention.key_length": typed(1 << 31, V.UINT32)},
                        "llama.attention.key_length = 2147483648"),
    "ssm.inner_size=2^62": ("jamba", {"jamba.ssm.inner_size": typed(1 << 62, V.UINT64)},
                            "jamba.ssm.inner_size = 4611686018427387904"),
    "context_length=2^63": ("llama", {"llama.context_length": typed(1 << 63, V.UINT64)},
                            "llama.context_length = 9223372036854775808"),
    "block_count=-1": ("llama", {"llama.block_count": typed(-1, V.INT32)}, "llama.block_count = -1"),
}


@pytest.mark.parametrize("case", sorted(ABSURD))
def test_values_that_gave_absurd_numbers_are_refused(tmp_path: Path, case: str) -> None:
    """Issue 12: these exited 0 with 'KV cache 0.00 GiB', 4,194,304 GiB, 1e13-1e15 GiB or
    'layers -1' in inspect."""
    arch, override, shown = ABSURD[case]
    path = str(_write(tmp_path, "m", arch, override))
    line = _one_line_error(memfit("estimate", path, "-c", "4096"), "implausible header value", shown)
    assert "GiB" not in line
    _one_line_error(memfit("inspect", path), shown)
    res = memfit("estimate", path, "--json")
    assert res.exit_code == 1 and json.loads(res.stdout)["error"]["kind"] == "gguf"


def test_plan_refuses_an_implausible_header(tmp_path: Path) -> None:
    path = str(_write(tmp_path, "m", "llama", {"llama.attention.head_count": typed(-8, V.INT32)}))
    _one_line_error(plan(path, "--device", "ai-max-395-64g"), "llama.attention.head_count = -8")


@pytest.mark.parametrize("override,needle", [
    ({"llama.attention.head_count": typed([4, 4, 4], V.ARRAY, V.UINT32)}, "wants exactly block_count = 2"),
    ({"llama.attention.head_count_kv": typed(8, V.UINT32)}, "more K/V heads than query heads"),
    ({"llama.feed_forward_length": typed("512", V.STRING)}, "a string where llama.cpp expects an integer"),
    ({"llama.embedding_length": typed(True, V.BOOL)}, "a boolean"),
    ({"llama.context_length": typed(float("nan"), V.FLOAT32)}, "= nan"),
    ({"llama.attention.head_count": typed([4, float("inf")], V.ARRAY, V.FLOAT32)}, "head_count[0] = 4.0: a float"),
])
def test_types_lengths_and_relations(tmp_path: Path, override: dict, needle: str) -> None:
    path = parse_file(_write(tmp_path, "m", "llama", override))
    with pytest.raises(GGUFError, match="implausible header value") as e:
        ModelFacts.from_headers(ModelHeaders.merge([path]))
    assert needle in e.value.message and "\n" not in e.value.message
    assert e.value.hint


def test_expert_relations() -> None:
    from planner.plausibility import check_metadata

    base = {"general.architecture": "qwen3moe", "qwen3moe.block_count": 2}
    check_metadata({**base, "qwen3moe.expert_count": 8, "qwen3moe.expert_used_count": 2})
    for bad, needle in (({"qwen3moe.expert_count": 4, "qwen3moe.expert_used_count": 8}, "more experts used"),
                        ({"qwen3moe.expert_count": 4, "qwen3moe.expert_used_count": 0}, "0 experts per token"),
                        ({"qwen3moe.expert_used_count": 2}, "more experts used"),
                        ({"qwen3moe.expert_count": 2000}, "LLAMA_MAX_EXPERTS")):
        with pytest.raises(GGUFError, match=needle):
            check_metadata({**base, **bad})


def test_kv_heads_zero_is_fine_where_it_marks_recurrent_layers(tmp_path: Path) -> None:
    """Jamba writes head_count_kv 0 on its Mamba layers: plausible, and priced as such."""
    path = ggufgen.write_model(tmp_path / "jamba.gguf", "jamba", ggufgen.ModelShape(n_layer=4))[0]
    facts = ModelFacts.from_headers(ModelHeaders.merge([parse_file(path)]))
    assert facts.n_recurrent_layers > 0 and facts.n_kv_layers > 0


def test_derived_widths_are_bounded(tmp_path: Path) -> None:
    """Each value inside its own bound, their product not: key_length 4096 x 1024 K/V heads."""
    path = parse_file(_write(tmp_path, "m", "llama", {
        "llama.attention.head_count": typed(1024, V.UINT32), "llama.attention.head_count_kv": typed(1024, V.UINT32),
        "llama.attention.key_length": typed(4096, V.UINT32), "llama.attention.value_length": typed(128, V.UINT32)}))
    with pytest.raises(GGUFError, match=r"K width .* = 4194304"):
        ModelFacts.from_headers(ModelHeaders.merge([path]))


def test_a_head_of_zero_dimensions_is_refused(tmp_path: Path) -> None:
    """Found by the semantic fuzzer: 1024 heads on a 256-wide model without key_length gave
    heads of 256 // 1024 = 0 dimensions and a KV cache of 0 bytes; a missing embedding_length
    did the same."""
    path = parse_file(_write(tmp_path, "m", "gemma3", {"gemma3.attention.head_count": typed(1024, V.UINT32)}))
    with pytest.raises(GGUFError, match="a head of 0 dimensions"):
        ModelFacts.from_headers(ModelHeaders.merge([path]))
    path = parse_file(_write(tmp_path, "m2", "gpt-oss", drop=("gpt-oss.embedding_length",)))
    with pytest.raises(MemfitError, match="embedding_length' is missing"):
        ModelFacts.from_headers(ModelHeaders.merge([path]))


def test_projector_values_are_bounded(tmp_path: Path) -> None:
    path = _write(tmp_path, "mmproj", "clip", {"clip.vision.image_size": typed(float("inf"), V.FLOAT32)})
    model = ggufgen.write_model(tmp_path / "m.gguf", "llama")[0]
    _one_line_error(memfit("estimate", str(model), "--mmproj", str(path)), "clip.vision.image_size = inf")
    path = _write(tmp_path, "mmproj2", "clip", {"clip.vision.image_size": typed(30000, V.UINT32),
                                                "clip.vision.patch_size": typed(1, V.UINT32)})
    _one_line_error(memfit("estimate", str(model), "--mmproj", str(path)), "clip.vision.image_size = 30000")


def test_checks_are_total_on_any_python_value() -> None:
    """Whatever the reader (or a cache entry) produced, the answer is a GGUFError or nothing."""
    from planner.plausibility import BOUNDS, check_metadata

    odd: list[Any] = [None, "x", b"\x00", 1.5, -0.0, math.inf, -math.inf, math.nan, True, [], [[]], [None],
                      {"a": 1}, (1, 2), 1 << 200, -(1 << 200), ["1"], [1.0], [[1, 2]]]
    for b in BOUNDS:
        key = b.key if b.key.startswith("clip.") else f"llama.{b.key}"
        for v in odd:
            try:
                check_metadata({"general.architecture": "llama", "llama.block_count": 2, key: v})
            except GGUFError as e:
                assert "\n" not in e.message and key.split(".")[-1] in e.message


# --- no real model is refused -----------------------------------------------------------------------


def _real_metadata() -> list[tuple[str, dict[str, Any]]]:
    from validation.model_configs import MODELS  # real configs as convert_hf_to_gguf writes them

    out = [(m["name"], {k: v[0] for k, v in m["metadata"].items()}) for m in MODELS]
    for spec in sorted((ROOT / "planner" / "testing" / "data").glob("*.json")):
        d = json.loads(spec.read_text())
        out.append((spec.stem, {k: v[1] for k, v in d["metadata"].items()}))
    return out


def test_real_models_pass_every_bound() -> None:
    from planner.plausibility import check_metadata

    models = _real_metadata()
    assert len(models) >= 14
    for name, meta in models:
        check_metadata(meta)  # raises on a refusal: no real model may be refused


def test_every_bound_has_a_reason() -> None:
    from planner.plausibility import BOUNDS, RELATIONS, table_markdown

    keys = [b.key for b in BOUNDS]
    assert len(keys) == len(set(keys))
    for b in BOUNDS:
        assert b.lo <= b.hi and len(b.reason) > 10, b
    assert all(len(why) > 10 for _, why in RELATIONS)
    assert table_markdown().count("\n") > len(BOUNDS) + len(RELATIONS)


def test_the_docs_carry_the_table() -> None:
    """docs/cli.md shows every bound with its reason: regenerate it from table_markdown() when
    a bound changes."""
    from planner.plausibility import table_markdown

    doc = (ROOT / "docs" / "cli.md").read_text()
    begin, end = "<!-- bounds table: begin -->\n", "\n<!-- bounds table: end -->"
    assert doc[doc.index(begin) + len(begin):doc.index(end)] == table_markdown()


def test_one_implausible_variant_among_several_is_left_out_with_a_note(tmp_path: Path) -> None:
    """A directory or repo with one damaged quant (or projector) still plans the others; asking
    for the damaged one is the one-line error."""
    d = tmp_path / "repo"
    d.mkdir()
    ggufgen.write_model(d / "M-Q4_K_M.gguf", "llama")
    meta, tensors = ggufgen.model_spec("llama", ggufgen.ModelShape(qtype=ggufgen.Q.Q8_0))
    meta["llama.attention.head_count"] = typed(-8, V.INT32)
    ggufgen.write_gguf(d / "M-Q8_0.gguf", meta, tensors)
    meta, tensors = ggufgen.model_spec("clip", ggufgen.ModelShape())
    meta["clip.vision.image_size"] = typed(float("inf"), V.FLOAT32)
    ggufgen.write_gguf(d / "mmproj-F16.gguf", meta, tensors)
    result = memfit("inspect", str(d))
    assert result.exit_code == 0, result.output
    notes = "\n".join(logical_lines(result.output))  # each note wrapped to 80 columns, read back
    assert "skipped M-Q8_0.gguf: implausible header value llama.attention.head_count = -8" in notes
    assert "skipped mmproj-F16.gguf: implausible header value clip.vision.image_size = inf" in notes
    _one_line_error(memfit("estimate", str(d), "--quant", "Q8_0"), "llama.attention.head_count = -8")
