"""What a model reference resolves to: `ResolvedModel` with its quant `Variant`s and projector
files, and picking one variant by tag. Below the resolver and its backends (the Hub, local files,
Ollama, LM Studio), which all build these, so that each of them can import it without importing
the resolver."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from .errors import ResolveError
from .header import ModelHeaders
from .variants import normalize_tag, quant_bpw, quant_tag_from_name, tag_key

T = TypeVar("T")


@dataclass
class Variant:
    quant: str  # tag as llama.cpp spells it (Q4_K_M, UD-Q4_K_XL) or a file stem when untagged
    files: list[str]  # repo/dir-relative paths (local: absolute), shards in order
    size_bytes: int
    headers: ModelHeaders | None = None

    @property
    def bpw_nominal(self) -> float | None:
        return quant_bpw(self.quant)


@dataclass
class ProjectorFile:
    name: str  # repo/dir-relative path (local: absolute)
    size_bytes: int
    headers: ModelHeaders | None = None


@dataclass
class ResolvedModel:
    """What a reference names. `source`: "hub" (files are repo paths), "local" (absolute paths;
    also LM Studio's models folder), "ollama" (files are the model blob's path in the local
    Ollama store, or its digest when it is read from the registry; `local_path` is set only in
    the first case)."""

    ref: str
    source: Literal["local", "hub", "ollama"]
    repo: str | None
    revision: str | None  # commit sha for the Hub; the model blob's digest for Ollama
    variants: list[Variant]  # sorted by size, ascending
    mmproj: list[ProjectorFile] = field(default_factory=list)
    requested_quant: str | None = None  # the tag the user asked for (variants then holds just it)
    revision_name: str | None = None  # what the user asked for (branch/tag), before resolution
    problems: list[str] = field(default_factory=list)  # incomplete shard sets and the like
    local_path: str | None = None
    ollama_name: str | None = None  # the name `ollama run` takes ("qwen3:32b"), for Ollama models
    lmstudio_name: str | None = None  # publisher/repo in LM Studio's models folder, for its models

    def hf_tag(self, quant: str) -> str | None:
        """`owner/repo:QUANT` for llama.cpp's -hf / Ollama's hf.co/ (None for local models or
        labels that are not quant tags)."""
        if self.source != "hub" or self.repo is None:
            return None
        if quant_tag_from_name(quant + ".gguf") != normalize_tag(quant):
            return None
        return f"{self.repo}:{quant}"

    def variant(self, quant: str) -> Variant:
        return select_tagged([v.quant for v in self.variants], quant, self._where(), self.variants)

    def _where(self) -> str:
        if self.ollama_name:
            return f"Ollama model {self.ollama_name}"
        return self.repo if self.repo else (self.local_path or self.ref)


# --- selection ------------------------------------------------------------------------------------


class QuantNotFoundError(ResolveError):
    """The model exists but has no variant with the requested tag."""

    def __init__(self, message: str, *, tag: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.tag = tag


def select_tagged(labels: list[str], tag: str, where: str, items: list[T]) -> T:
    """The item whose label is `tag` (tag_key matching); QuantNotFoundError names the close ones."""
    key = tag_key(tag)
    hits = [item for label, item in zip(labels, items) if tag_key(label) == key]
    if len(hits) == 1:
        return hits[0]
    available = ", ".join(labels) or "none"
    if len(hits) > 1:  # cannot happen after grouping (labels are unique); kept as a guard
        raise ResolveError(f"'{tag}' matches several variants in {where}: {available}")
    raise QuantNotFoundError(f"no {normalize_tag(tag)} variant in {where}; available: {available}",
                             tag=normalize_tag(tag), hint=_near_tags_hint(labels, tag))


def _near_tags_hint(labels: list[str], tag: str) -> str:
    key = tag_key(tag)
    near = [label for label in labels if tag_key(label).endswith(key) or key.endswith(tag_key(label))]
    near += [m for m in difflib.get_close_matches(normalize_tag(tag), labels, n=3, cutoff=0.6) if m not in near]
    return f"did you mean {' or '.join(near[:3])}?" if near else "pick one of the available quants"
