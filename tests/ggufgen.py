"""Write GGUF files for tests: a real header (gguf's own writer), a sparse data region.

`write_gguf(path, metadata, tensors)` writes metadata and tensor infos exactly as gguf.GGUFWriter
does, then extends the file with a hole to its full size, so a "20 GB" model costs a few KB of
disk. Values are typed by `typed()` when the default inference (int -> uint32/int32...) is not
what a real converter writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType, GGUFWriter

Q = GGMLQuantizationType


@dataclass(frozen=True)
class typed:
    """A metadata value with an explicit GGUF type (and element type for arrays)."""

    value: Any
    vtype: GGUFValueType
    sub_type: GGUFValueType | None = None


def tensor_nbytes(shape: Sequence[int], qtype: GGMLQuantizationType) -> int:
    block, type_size = GGML_QUANT_SIZES[qtype]
    n = 1
    for d in shape:
        n *= d
    assert shape[0] % block == 0, f"row {shape[0]} not a multiple of block {block} for {qtype.name}"
    return n // block * type_size


def _infer(value: Any) -> tuple[GGUFValueType, GGUFValueType | None]:
    if isinstance(value, bool):
        return GGUFValueType.BOOL, None
    if isinstance(value, int):
        return (GGUFValueType.UINT32 if value >= 0 else GGUFValueType.INT32), None
    if isinstance(value, float):
        return GGUFValueType.FLOAT32, None
    if isinstance(value, str):
        return GGUFValueType.STRING, None
    if isinstance(value, (list, tuple)):
        sub = _infer(value[0])[0] if value else GGUFValueType.UINT32
        return GGUFValueType.ARRAY, sub
    raise TypeError(f"cannot infer GGUF type of {value!r}")


def write_gguf(
    path: str | os.PathLike,
    metadata: dict[str, Any],
    tensors: Iterable[tuple[str, Sequence[int], GGMLQuantizationType]],
    *,
    sparse: bool = True,
    alignment: int | None = None,
) -> Path:
    """Write a GGUF whose tensor data region is a hole (sparse) of the exact full size.

    metadata: key -> value or typed(...); `general.architecture` must be present.
    tensors: (name, shape in ggml order (ne0 first), ggml type).
    """
    path = Path(path)
    arch = metadata.get("general.architecture", "llama")
    arch = arch.value if isinstance(arch, typed) else arch
    w = GGUFWriter(str(path), arch=arch)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for key, value in metadata.items():
        if key in ("general.architecture",):
            continue
        if isinstance(value, typed):
            w.add_key_value(key, value.value, value.vtype, value.sub_type)
        else:
            vtype, sub = _infer(value)
            w.add_key_value(key, value, vtype, sub)
    total = 0
    for name, shape, qtype in tensors:
        nbytes = tensor_nbytes(shape, qtype)
        # numpy (outer-first) element shape; a non-uint8 dtype makes the writer take it as elements
        w.add_tensor_info(name, list(reversed(shape)), np.dtype(np.float16), nbytes, raw_dtype=qtype)
        total += nbytes
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    data_start = path.stat().st_size
    # the data region: every tensor padded to the alignment, as the writer would have done
    align = alignment or 32
    size = data_start
    for t in w.tensors[0].values():
        size += t.nbytes + (-t.nbytes % align)
    if sparse:
        with open(path, "r+b") as f:
            f.truncate(size)
    else:
        with open(path, "ab") as f:
            f.write(b"\0" * (size - data_start))
    return path
