"""ggml tensor types and GGUF metadata value types, as data.

Why not `from gguf import ...`: importing the gguf package loads numpy and gguf's reader, about
70 ms of every start, for a few small tables. These are copied from gguf-py's constants
(gguf 0.19.0, llama.cpp's own Python package); tests/test_ggml_types.py checks every entry
against the installed gguf package, so a drift fails the suite. A type id that is not listed
here falls back to the installed gguf package's table when it is met (`quant_size`), so a newer
gguf still reads files with newer types.
"""

from __future__ import annotations

from enum import IntEnum
from functools import lru_cache


class GGMLQuantizationType(IntEnum):
    """ggml_type ids (ggml.h), the same names gguf.GGMLQuantizationType uses."""

    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q8_1 = 9
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    Q8_K = 15
    IQ2_XXS = 16
    IQ2_XS = 17
    IQ3_XXS = 18
    IQ1_S = 19
    IQ4_NL = 20
    IQ3_S = 21
    IQ2_S = 22
    IQ4_XS = 23
    I8 = 24
    I16 = 25
    I32 = 26
    I64 = 27
    F64 = 28
    IQ1_M = 29
    BF16 = 30
    TQ1_0 = 34
    TQ2_0 = 35
    MXFP4 = 39
    NVFP4 = 40
    Q1_0 = 41


class GGUFValueType(IntEnum):
    """Metadata value types of the GGUF format."""

    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


_Q = GGMLQuantizationType
# type -> (elements per block, bytes per block)
GGML_QUANT_SIZES: dict[GGMLQuantizationType, tuple[int, int]] = {
    _Q.F32: (1, 4), _Q.F16: (1, 2), _Q.Q4_0: (32, 18), _Q.Q4_1: (32, 20), _Q.Q5_0: (32, 22),
    _Q.Q5_1: (32, 24), _Q.Q8_0: (32, 34), _Q.Q8_1: (32, 40), _Q.Q2_K: (256, 84), _Q.Q3_K: (256, 110),
    _Q.Q4_K: (256, 144), _Q.Q5_K: (256, 176), _Q.Q6_K: (256, 210), _Q.Q8_K: (256, 292),
    _Q.IQ2_XXS: (256, 66), _Q.IQ2_XS: (256, 74), _Q.IQ3_XXS: (256, 98), _Q.IQ1_S: (256, 50),
    _Q.IQ4_NL: (32, 18), _Q.IQ3_S: (256, 110), _Q.IQ2_S: (256, 82), _Q.IQ4_XS: (256, 136),
    _Q.I8: (1, 1), _Q.I16: (1, 2), _Q.I32: (1, 4), _Q.I64: (1, 8), _Q.F64: (1, 8), _Q.IQ1_M: (256, 56),
    _Q.BF16: (1, 2), _Q.TQ1_0: (256, 54), _Q.TQ2_0: (256, 66), _Q.MXFP4: (32, 17), _Q.NVFP4: (64, 36),
    _Q.Q1_0: (128, 18),
}
_SIZES: dict[int, tuple[int, int]] = {int(k): v for k, v in GGML_QUANT_SIZES.items()}  # the one int-keyed copy
_NAMES: dict[int, str] = {int(q): q.name for q in GGMLQuantizationType}


@lru_cache(maxsize=None)
def _from_gguf(type_id: int) -> tuple[tuple[int, int] | None, str | None]:
    """A type this table does not list, looked up in the installed gguf package (imported only
    here, for files with types newer than the table)."""
    try:
        from gguf import GGML_QUANT_SIZES as sizes, GGMLQuantizationType as types
    except Exception:  # pragma: no cover - gguf is a dependency
        return None, None
    try:
        t = types(type_id)
    except ValueError:
        return None, None
    return sizes.get(t), t.name


def quant_size(type_id: int) -> tuple[int, int] | None:
    """(elements per block, bytes per block) of a ggml type id, None when no table knows it."""
    hit = _SIZES.get(type_id)
    return hit if hit is not None else _from_gguf(type_id)[0]


def is_block_quantized(type_id: int) -> bool:
    """A type stored in blocks of several elements (Q4_K, Q8_0...), not one value per element (F16)."""
    sizes = quant_size(type_id)
    return sizes is not None and sizes[0] > 1


def row_size(type_id: int, n: int) -> int:
    """ggml_row_size: bytes of a row of n elements of this type (type_size * n / block, in that
    order, as ggml computes it; also for CUDA's partial-block row padding)."""
    sizes = quant_size(type_id)
    if sizes is None:
        raise KeyError(f"ggml type {type_id} is in no table")
    block, type_size = sizes
    return type_size * n // block


def type_name(type_id: int) -> str | None:
    """The ggml type's name (Q4_K, BF16...), None when unknown."""
    name = _NAMES.get(type_id)
    return name if name is not None else _from_gguf(type_id)[1]


def gguf_version() -> str:
    """The installed gguf package's version (for messages), without importing it."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("gguf")
    except PackageNotFoundError:  # pragma: no cover - gguf is a dependency
        return "?"


__all__ = ["GGMLQuantizationType", "GGUFValueType", "GGML_QUANT_SIZES", "quant_size", "is_block_quantized", "row_size",
           "type_name", "gguf_version"]
