"""Quant tags from file names, shard grouping, projector companions, quality order."""

from __future__ import annotations

import pytest

from planner.variants import (
    FileEntry,
    group_files,
    is_projector,
    normalize_tag,
    quality_key,
    quant_bpw,
    quant_tag_from_name,
    tag_key,
)


@pytest.mark.parametrize("name, tag", [
    ("Qwen3-30B-A3B-Q4_K_M.gguf", "Q4_K_M"),
    ("qwen2.5-7b-instruct-q4_k_m.gguf", "Q4_K_M"),
    ("llama-2-7b.Q4_K_M.gguf", "Q4_K_M"),
    ("model_q8_0.gguf", "Q8_0"),
    ("gpt-oss-20b-mxfp4.gguf", "MXFP4"),
    ("gpt-oss-120b-MXFP4_MOE-00001-of-00003.gguf", "MXFP4_MOE"),
    ("Qwen3-30B-A3B-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"),
    ("GLM-4.7-Flash-UD-IQ1_S.gguf", "UD-IQ1_S"),
    ("Model-IQ2_XXS.gguf", "IQ2_XXS"),
    ("Model-IQ4_XS.gguf", "IQ4_XS"),
    ("Model-IQ4_NL.gguf", "IQ4_NL"),
    ("Model-BF16.gguf", "BF16"),
    ("Meta-Llama-3-8B-Instruct-fp16.gguf", "F16"),
    ("model-f32.gguf", "F32"),
    ("gemma-3-27b-it-qat-Q4_0.gguf", "Q4_0"),
    ("bitnet-TQ1_0.gguf", "TQ1_0"),
    ("GLM-4.7-Flash-Q6_K_L.gguf", "Q6_K_L"),
    ("Model-Q4_K_S.gguf", "Q4_K_S"),
    ("Model-Q3_K_XL.gguf", "Q3_K_XL"),
    ("model-q4-k-m.gguf", "Q4_K_M"),
    ("Q4_K_M/Model-Q4_K_M-00001-of-00002.gguf", "Q4_K_M"),
    ("BF16/GLM-4.7-Flash-BF16-00001-of-00002.gguf", "BF16"),
    ("UD-Q4_K_XL/Model-00001-of-00002.gguf", "UD-Q4_K_XL"),
    ("Qwen2.5-Coder-7B-F16-Q4_K_M.gguf", "Q4_K_M"),  # the last tag wins
    ("phi-4-q4.gguf", None),
    ("model.gguf", None),
    ("Q8-Instruct.gguf", None),
])
def test_tag_from_name(name: str, tag: str | None) -> None:
    assert quant_tag_from_name(name) == tag


def test_tag_not_found_inside_words() -> None:
    # "F16" inside a longer word, "Q4_0" glued to letters: not tags
    assert quant_tag_from_name("XF16Y.gguf") is None
    assert quant_tag_from_name("abcQ4_0def.gguf") is None


def test_normalize_and_key() -> None:
    assert normalize_tag("ud_q4_k_xl") == "UD-Q4_K_XL"
    assert normalize_tag("q4-k-m") == "Q4_K_M"
    assert normalize_tag("fp16") == "F16"
    assert tag_key("UD-Q4_K_XL") == tag_key("ud_q4.k.xl")
    assert tag_key("Q4_K_M") != tag_key("UD-Q4_K_M")


def test_projectors() -> None:
    for name in ("mmproj-F16.gguf", "mmproj-model-f16.gguf", "Qwen3-VL-32B-Instruct-mmproj-BF16.gguf",
                 "sub/MMPROJ-Q8_0.gguf"):
        assert is_projector(name)
    assert not is_projector("Qwen3-VL-32B-Instruct-Q4_K_M.gguf")


def _entries(*names: str, size: int = 100) -> list[FileEntry]:
    return [FileEntry(n, size + i) for i, n in enumerate(names)]


def test_grouping_shards_and_projectors() -> None:
    g = group_files(_entries(
        "README.md",
        "M-Q8_0.gguf",
        "Q4_K_M/M-Q4_K_M-00002-of-00002.gguf",
        "Q4_K_M/M-Q4_K_M-00001-of-00002.gguf",
        "BF16/M-BF16-00001-of-00003.gguf",
        "BF16/M-BF16-00002-of-00003.gguf",
        "BF16/M-BF16-00003-of-00003.gguf",
        "mmproj-F16.gguf",
        "mmproj-BF16.gguf",
    ))
    by = {v.quant: v for v in g.variants}
    assert set(by) == {"Q8_0", "Q4_K_M", "BF16"}
    assert [f.path for f in by["Q4_K_M"].files] == ["Q4_K_M/M-Q4_K_M-00001-of-00002.gguf",
                                                    "Q4_K_M/M-Q4_K_M-00002-of-00002.gguf"]
    assert len(by["BF16"].files) == 3
    assert by["BF16"].size_bytes == sum(f.size for f in by["BF16"].files)
    assert [p.path for p in g.projectors] == ["mmproj-BF16.gguf", "mmproj-F16.gguf"]
    assert g.variants == sorted(g.variants, key=lambda v: v.size_bytes)
    assert g.problems == []


def test_incomplete_shards_reported_and_left_out() -> None:
    g = group_files(_entries("M-Q8_0.gguf", "M-Q4_K_M-00001-of-00003.gguf", "M-Q4_K_M-00003-of-00003.gguf"))
    assert [v.quant for v in g.variants] == ["Q8_0"]
    assert len(g.problems) == 1
    assert "M-Q4_K_M-00002-of-00003.gguf" in g.problems[0]


def test_disagreeing_shard_counts() -> None:
    g = group_files(_entries("M-Q4_K_M-00001-of-00002.gguf", "M-Q4_K_M-00002-of-00003.gguf"))
    assert g.variants == [] and "disagree" in g.problems[0]


def test_same_tag_twice_is_disambiguated_by_stem() -> None:
    g = group_files(_entries("model-Q4_K_M.gguf", "model-instruct-Q4_K_M.gguf", "model-Q8_0.gguf"))
    labels = sorted(v.quant for v in g.variants)
    assert labels == ["Q8_0", "model-Q4_K_M", "model-instruct-Q4_K_M"]


def test_untagged_file_keeps_its_stem() -> None:
    g = group_files(_entries("my-finetune.gguf"))
    assert [v.quant for v in g.variants] == ["my-finetune"]


def test_quality_order() -> None:
    order = ["IQ1_S", "IQ2_XXS", "Q2_K", "IQ3_XXS", "Q3_K_M", "IQ4_XS", "Q4_K_M", "UD-Q4_K_XL", "Q5_K_M",
             "Q6_K", "Q8_0", "BF16", "F32"]
    ranks = [quant_bpw(q) for q in order]
    assert all(r is not None for r in ranks)
    assert ranks == sorted(ranks)
    assert quant_bpw("UD-Q4_K_M") > quant_bpw("Q4_K_M")  # type: ignore[operator]
    assert quant_bpw("my-finetune") is None
    assert quality_key("Q8_0", 10) > quality_key("Q4_K_M", 20)
    assert quality_key("unknown", 20) < quality_key("IQ1_S", 1)
