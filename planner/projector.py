"""Which vision projector (mmproj) llama.cpp pairs with a model: one rule for `estimate` and `plan`.

llama-server / llama-cli started with `-hf owner/repo[:QUANT]` download a projector with the model
(common/arg.cpp: `download_mmproj` for the multimodal examples unless --no-mmproj or --mmproj is
given) and choose it with common/download.cpp `find_best_sibling(files, model, "mmproj")` (b11434):

- candidates: `.gguf` files whose path contains "mmproj";
- only those whose folder is the model's folder or one of its parents (`std::mismatch` of the
  folder parts must consume the candidate's whole folder, else `continue`);
- the deepest such folder wins; then, among equals, the smallest |bits - model bits|, where bits
  are the first number of the file's tag (`get_gguf_split_info`: the last `-`/`.`-separated
  [A-Z0-9_]+ group of the name without `.gguf` and the `-0000N-of-0000M` suffix; Q4_K_M -> 4,
  F16 -> 16, no number -> 0);
- remaining ties: the first file in the listing (strict `<`).

No candidate: no projector (llama.cpp does not fall back to one in another folder).
"""

from __future__ import annotations

import re
from typing import Protocol, Sequence, TypeVar

_SPLIT = re.compile(r"^(.+)-([0-9]{5})-of-([0-9]{5})$", re.I)
_TAG = re.compile(r"[-.]([A-Z0-9_]+)$", re.I)
_DIGITS = re.compile(r"[0-9]+")


class _Named(Protocol):
    name: str


P = TypeVar("P", bound=_Named)


def gguf_tag(path: str) -> str:
    """common/download.cpp get_gguf_split_info(path).tag, upper-cased ('' when none)."""
    if not path.lower().endswith(".gguf"):
        return ""
    prefix = path[: -len(".gguf")]
    m = _SPLIT.match(prefix)
    if m:
        prefix = m.group(1)
    t = _TAG.search(prefix)
    return t.group(1).upper() if t else ""


def quant_bits(path: str) -> int:
    """common/download.cpp extract_quant_bits: the first number in the file's tag (0 if none)."""
    m = _DIGITS.search(gguf_tag(path))
    return int(m.group(0)) if m else 0


def _dirs(path: str) -> list[str]:
    return path.replace("\\", "/").split("/")[:-1]


def find_best_mmproj(candidates: Sequence[P], model_path: str) -> P | None:
    """The projector llama.cpp's `-hf` download picks for the model file `model_path` (a repo-relative
    path, or an absolute local path with local candidates); `candidates` in listing order."""
    model_dirs = _dirs(model_path)
    model_bits = quant_bits(model_path)
    best: P | None = None
    best_depth = best_diff = 0
    for c in candidates:
        depth = _projector_depth(c.name, model_dirs)
        if depth is None:
            continue
        diff = abs(quant_bits(c.name) - model_bits)
        if best is None or depth > best_depth or (depth == best_depth and diff < best_diff):
            best, best_depth, best_diff = c, depth, diff
    return best


def _projector_depth(name: str, model_dirs: list[str]) -> int | None:
    """How deep a projector file sits (its folder count) when it is an mmproj GGUF in the
    model's folder or one of its parents; None otherwise."""
    if not name.lower().endswith(".gguf") or "mmproj" not in name:
        return None
    sib_dirs = _dirs(name)
    if len(sib_dirs) > len(model_dirs) or model_dirs[: len(sib_dirs)] != sib_dirs:
        return None
    return len(sib_dirs)


def pick_projector(projectors: Sequence[P], variant_quant: str, variant_path: str) -> P | None:
    """The projector `llama-server -hf` downloads with this variant (find_best_mmproj on the
    variant's first file). A variant without a file path is matched by its quant tag."""
    if not projectors:
        return None
    path = variant_path or (f"model-{variant_quant}.gguf" if variant_quant else "model.gguf")
    return find_best_mmproj(projectors, path)
