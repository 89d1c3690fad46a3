"""What a parsed GGUF header is: metadata + tensor infos, nothing of the tensor data.

These are plain slotted dataclasses, not pydantic models: a header has thousands of tensor infos
and is built on the hot path. `to_dict`/`from_dict` give the JSON form used by the header cache
and by `inspect --json` (the pydantic boundary models live with those consumers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from .errors import GGUFError


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


# A decoded metadata value (planner/reader.py): a number, string or boolean, an array of them (nested
# arrays are legal GGUF), or a large array that was counted rather than decoded.
MetaValue = int | float | bool | str | list[Any] | SkippedArray
Metadata = dict[str, MetaValue]


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
    metadata: Metadata  # decoded values; large arrays appear as SkippedArray
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
    metadata: Metadata = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)

    @classmethod
    def merge(cls, shards: list[GGUFHeader], label: str = "") -> "ModelHeaders":
        """Merge shards (in order) into one model after the checks llama.cpp's loader makes on a
        split set (see check_split_set); `label` names the model in error messages."""
        if not shards:
            raise ValueError("no shards")
        check_split_set(shards, label)
        tensors = [t for s in shards for t in s.tensors]
        meta = {k: v for k, v in shards[0].metadata.items() if not k.startswith("split.")}
        return cls(shards=shards, metadata=meta, tensors=tensors)

    @property
    def architecture(self) -> str | None:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) else None

    @property
    def file_size(self) -> int | None:
        known = [s.file_size for s in self.shards if s.file_size is not None]
        return sum(known) if len(known) == len(self.shards) else None

    @property
    def tensor_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


_SPLIT_HINT = "download every shard of the split model again (all of -0000i-of-0000N.gguf, from one release)"


def _split_int(h: GGUFHeader, key: str) -> int | None:
    v = h.metadata.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _required_split_int(h: GGUFHeader, key: str, who: str, where: str) -> int:
    """A split key llama.cpp requires of `who` (a shard), as an int."""
    v = _split_int(h, key)
    if v is None:
        raise GGUFError(f"{where}{who} has no {key} key (llama.cpp refuses it)", hint=_SPLIT_HINT)
    return v


def check_split_set(shards: list[GGUFHeader], label: str = "") -> None:
    """The checks llama.cpp b11434 makes when it loads a split model (llama_model_loader, split
    handling), raised as one-line GGUFErrors:
    - the first file carries `split.no` = 0 and `split.count` = the number of shards;
    - shard i carries `split.no` = i (llama.cpp: "invalid split file idx");
    - no tensor name appears in two shards ("tensor '...' is duplicated");
    - the shards hold exactly `split.tensors.count` tensors ("N tensors expected but M found").
    memfit also refuses a shard after the first that holds no tensors: gguf-split never writes
    one (only the first shard may be metadata-only, with --no-tensor-first-split), so it is a
    damaged or mixed-up download. A single file without split keys passes unchanged."""
    where = f"{label}: " if label else ""
    for i, s in enumerate(shards):
        _check_split_keys_are_ints(s, i, where)
    count = _split_count(shards, where)
    if count is None:
        return
    seen: dict[str, int] = {}
    for i, s in enumerate(shards):
        _check_shard(s, i, count, where)
        _check_unique_tensors(s, i, seen, where)
    _check_tensor_count(shards[0], count, len(seen), where)


_SPLIT_KEYS = ("split.no", "split.count", "split.tensors.count")


def _check_split_keys_are_ints(s: GGUFHeader, i: int, where: str) -> None:
    for key in _SPLIT_KEYS:
        if key in s.metadata and _split_int(s, key) is None:
            raise GGUFError(f"{where}shard {i + 1} has {key} = {s.metadata[key]!r:.40}, not an integer",
                            hint=_SPLIT_HINT)


def _split_count(shards: list[GGUFHeader], where: str) -> int | None:
    """The first shard's split.count when the files form a split set (None for one plain file)."""
    count = _split_int(shards[0], "split.count")
    if count is None or count <= 1:
        if len(shards) > 1:
            raise GGUFError(f"{where}{len(shards)} shard files, but the first one does not say it is part of a "
                            "split model (no split.count > 1)", hint=_SPLIT_HINT)
        return None
    if count != len(shards):
        raise GGUFError(f"{where}the first shard says the model has {count} parts, "
                        f"but {len(shards)} shard files were found", hint=_SPLIT_HINT)
    return count


def _check_shard(s: GGUFHeader, i: int, count: int, where: str) -> None:
    """Shard i says it is part i of `count`, and holds tensors unless it is the first."""
    no = _required_split_int(s, "split.no", f"shard {i + 1} of {count}", where)
    if no != i:
        raise GGUFError(f"{where}shard {i + 1} of {count} says it is part {no + 1} (split.no = {no}); "
                        "the shards are renamed, mixed up or from another model", hint=_SPLIT_HINT)
    other = _split_int(s, "split.count")
    if other is not None and other != count:
        raise GGUFError(f"{where}shard {i + 1} says the model has {other} parts, the first shard {count}",
                        hint=_SPLIT_HINT)
    if i > 0 and not s.tensors:
        raise GGUFError(f"{where}shard {i + 1} of {count} holds no tensors (gguf-split never writes such a "
                        "shard)", hint=_SPLIT_HINT)


def _check_unique_tensors(s: GGUFHeader, i: int, seen: dict[str, int], where: str) -> None:
    for t in s.tensors:
        if t.name in seen:
            raise GGUFError(f"{where}tensor '{t.name}' is in shard {seen[t.name] + 1} and again in shard "
                            f"{i + 1} (llama.cpp: tensor is duplicated)", hint=_SPLIT_HINT)
        seen[t.name] = i


def _check_tensor_count(first: GGUFHeader, count: int, found: int, where: str) -> None:
    declared = _required_split_int(first, "split.tensors.count", "the first shard", where)
    if declared != found:
        raise GGUFError(f"{where}the first shard says the model has {declared} tensors, the {count} shards hold "
                        f"{found} (llama.cpp: corrupted model)", hint=_SPLIT_HINT)
