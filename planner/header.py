"""What a parsed GGUF header is: metadata + tensor infos, nothing of the tensor data.

These are plain slotted dataclasses, not pydantic models: a header has thousands of tensor infos
and is built on the hot path. `to_dict`/`from_dict` give the JSON form used by the header cache
and by `inspect --json` (the pydantic boundary models live with those consumers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass(frozen=True, slots=True)
class SkippedArray:
    """A metadata array that was counted, not decoded (tokenizer tokens, merges, scores...).

    `nbytes` (the array's encoded length after its 12-byte head) and `tail` (byte lengths of the
    last few strings of a string array) are what a sibling file's parse may jump by (see
    planner.reader.SkipHint). They are bookkeeping, not content: equality ignores them, and
    headers cached before they existed carry None / ().
    """

    element_type: int  # gguf.GGUFValueType value of the elements
    count: int
    nbytes: int | None = field(default=None, compare=False)
    tail: tuple[int, ...] = field(default=(), compare=False)

    def __len__(self) -> int:
        return self.count


@dataclass(frozen=True, slots=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: ne[0] (the contiguous row) first
    ggml_type: int  # gguf.GGMLQuantizationType value
    offset: int  # relative to the start of the tensor data section
    nbytes: int  # from the type's block size / type size

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(slots=True)
class GGUFHeader:
    """One GGUF file's header. `data_offset` is where tensor data starts (absolute)."""

    version: int
    metadata: dict[str, Any]  # decoded values; large arrays appear as SkippedArray
    tensors: list[TensorInfo]
    alignment: int
    data_offset: int
    file_size: int | None = None  # None when the source cannot tell
    source: str = ""  # path or URL, for messages only

    @property
    def architecture(self) -> str | None:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) else None

    @property
    def tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def iter_tensors(self, prefix: str = "") -> Iterator[TensorInfo]:
        return (t for t in self.tensors if t.name.startswith(prefix))


@dataclass(slots=True)
class ModelHeaders:
    """A model made of one or more shard headers, merged as llama.cpp merges splits:
    metadata from the first shard, tensor infos from all of them."""

    shards: list[GGUFHeader]
    metadata: dict[str, Any] = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)

    @classmethod
    def merge(cls, shards: list[GGUFHeader]) -> "ModelHeaders":
        if not shards:
            raise ValueError("no shards")
        tensors = [t for s in shards for t in s.tensors]
        meta = {k: v for k, v in shards[0].metadata.items() if not k.startswith("split.")}
        return cls(shards=shards, metadata=meta, tensors=tensors)

    @property
    def architecture(self) -> str | None:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) else None

    @property
    def file_size(self) -> int | None:
        sizes = [s.file_size for s in self.shards]
        return None if any(x is None for x in sizes) else sum(sizes)  # type: ignore[misc]

    @property
    def tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)
