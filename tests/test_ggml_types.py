"""planner.ggml_types and archs.GGUF_ARCH_NAMES are copies of gguf's tables (so that a start does
not import gguf and numpy): they must agree with the installed gguf package."""

from __future__ import annotations

import gguf
from gguf.constants import MODEL_ARCH_NAMES

from planner import ggml_types
from planner.archs import GGUF_ARCH_NAMES, is_known_architecture, known_architectures


def test_quant_types_match_the_installed_gguf():
    for t in gguf.GGMLQuantizationType:
        assert ggml_types.GGMLQuantizationType[t.name] == int(t), t.name
        assert ggml_types.quant_size(int(t)) == gguf.GGML_QUANT_SIZES[t], t.name
        assert ggml_types.type_name(int(t)) == t.name
    assert {t.name for t in ggml_types.GGMLQuantizationType} == {t.name for t in gguf.GGMLQuantizationType}


def test_value_types_match_the_installed_gguf():
    assert {(t.name, int(t)) for t in ggml_types.GGUFValueType} == {(t.name, int(t)) for t in gguf.GGUFValueType}


def test_unknown_type_ids_fall_back_to_gguf_then_none():
    assert ggml_types.quant_size(9999) is None and ggml_types.type_name(9999) is None


def test_architecture_names_cover_the_installed_gguf():
    assert set(MODEL_ARCH_NAMES.values()) <= GGUF_ARCH_NAMES | known_architectures()
    assert all(is_known_architecture(a) for a in MODEL_ARCH_NAMES.values())
    assert not is_known_architecture("no-such-arch-xyz")


def test_reading_and_estimating_do_not_import_gguf_or_numpy():
    """The point of the copies: parsing a header and estimating must not load gguf/numpy."""
    import subprocess
    import sys

    code = ("import sys; import planner.reader, planner.model_facts, planner.estimator, planner.inspect; "
            "bad = [m for m in ('gguf', 'numpy') if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
