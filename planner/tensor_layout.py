"""Which buffer each tensor of a model belongs to, as llama.cpp b11434 decides it.

Repeating blocks `blk.N.*` belong to layer N; the other tensors are input, output, layer-0 or
per-device tensors (planner/archs.py holds the name lists, from llama-arch.cpp LLM_TENSOR_INFOS),
and blocks numbered past block_count go with the output (llama-model.cpp create_tensor: "blocks
that are not model layers go with the output"). Routed MoE expert tensors are marked with the
one pattern of planner/vocab.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from .archs import INPUT_TENSORS, LAYER0_TENSORS, PER_DEVICE_TENSORS
from .header import TensorInfo
from .vocab import is_expert_tensor

_BLOCK_RE = re.compile(r"^blk\.(\d+)\.(.+)$")

Role = Literal["input", "output", "layer0", "per_device"]
# the non-block tensors' placement, checked in this order; anything else goes with the output
_ROLES: tuple[tuple[frozenset[str], Role], ...] = (
    (INPUT_TENSORS, "input"), (PER_DEVICE_TENSORS, "per_device"), (LAYER0_TENSORS, "layer0"),
)


@dataclass(frozen=True, slots=True)
class TensorBytes:
    """One tensor as the allocators see it: its bytes and what a backend's padding depends on."""

    name: str
    nbytes: int
    ne0: int
    ne1: int
    ggml_type: int
    is_expert: bool

    @classmethod
    def of(cls, t: TensorInfo) -> "TensorBytes":
        return cls(t.name, t.nbytes, int(t.shape[0]) if t.shape else 1,
                   int(t.shape[1]) if len(t.shape) > 1 else 1, t.ggml_type, is_expert_tensor(t.name))


@dataclass
class TensorLayout:
    """A model's tensors by owner: each repeating layer's, and the non-repeating ones by role."""

    per_layer: list[list[TensorBytes]]
    nonrepeating: dict[str, TensorBytes] = field(default_factory=dict)  # full name -> bytes
    names: dict[Role, list[str]] = field(default_factory=lambda: {"input": [], "output": [], "layer0": [],
                                                                    "per_device": []})
    stray_blocks: int = 0  # blk.N tensors with N >= block_count (counted with the output)


def block_index(name: str) -> int | None:
    """N of a `blk.N.*` tensor name, None for the non-repeating tensors."""
    m = _BLOCK_RE.match(name)
    return int(m.group(1)) if m else None


def tensor_role(name: str, token_embd_norm_is_output: bool) -> Role:
    """Where llama.cpp places a non-block tensor (`token_embd.weight` -> input, ...)."""
    base = name.rsplit(".", 1)[0] if name.endswith((".weight", ".bias")) else name
    if base == "token_embd_norm" and token_embd_norm_is_output:
        return "output"  # lfm2 names its output norm token_embd_norm
    return next((role for names, role in _ROLES if base in names), "output")


def layout_tensors(tensors: list[TensorInfo], n_layer_all: int, token_embd_norm_is_output: bool) -> TensorLayout:
    """Every tensor to its layer or role, in file order."""
    layout = TensorLayout(per_layer=[[] for _ in range(n_layer_all)])
    for t in tensors:
        tb = TensorBytes.of(t)
        il = block_index(t.name)
        if il is not None and il < n_layer_all:
            layout.per_layer[il].append(tb)
            continue
        layout.nonrepeating[t.name] = tb
        if il is not None:
            layout.stray_blocks += 1
            layout.names["output"].append(t.name)
        else:
            layout.names[tensor_role(t.name, token_embd_norm_is_output)].append(t.name)
    return layout
