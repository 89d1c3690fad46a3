"""Real-shaped model repos for end-to-end tests, from compact spec files in planner/testing/data/.

A spec (planner/testing/data/<name>.json, written by bench/central_specs.py from llama.cpp's own quantizer)
holds one model's real GGUF metadata, its tensor layout, and per quant the type llama-quantize
gives every tensor; plus the vision projector (mmproj) when the release has one. `repo_files()`
turns a spec into sparse GGUF files (exact headers, a hole for the data) named as the Hub repo
names them, ready for FakeHub.add_repo. No llama.cpp is needed to read a spec.

Tensor layouts are stored compactly: tensors outside the repeating blocks by name, the blocks as
one template (`blk.{i}.` / `v.blk.{i}.` + suffix) repeated n times; a quant mix is the most common
type per template entry plus the tensors that differ from it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType, GGUFValueType

from . import ggufgen

DATA = Path(__file__).resolve().parent / "data"
_BLOCK = re.compile(r"^(?P<prefix>(?:[a-z]+\.)?blk\.)(?P<i>\d+)\.(?P<suffix>.+)$")

Tensor = tuple[str, tuple[int, ...], str]  # name, ggml shape (ne0 first), ggml type name


# --------------------------------------------------------------------------- layout codec


def encode_layout(tensors: list[tuple[str, list[int] | tuple[int, ...]]]) -> dict[str, Any]:
    """[(name, shape)] -> {"before": [...], "blocks": {prefix: {"n": N, "template": [...]}}, "after": [...]}.
    Every block must have the same tensors (true for the dense and MoE layouts stored here)."""
    before: list = []
    after: list = []
    blocks: dict[str, dict[str, Any]] = {}
    seen_block = False
    for name, shape in tensors:
        m = _BLOCK.match(name)
        if not m:
            (after if seen_block else before).append([name, list(shape)])
            continue
        seen_block = True
        b = blocks.setdefault(m.group("prefix"), {"n": 0, "template": []})
        i = int(m.group("i"))
        b["n"] = max(b["n"], i + 1)
        if i == 0:
            b["template"].append([m.group("suffix"), list(shape)])
    out = {"before": before, "blocks": blocks, "after": after}
    if [(n, list(s)) for n, s in decode_layout(out)] != [(n, list(s)) for n, s in tensors]:
        raise ValueError("layout is not block-regular (or not in block order); cannot encode compactly")
    return out


def decode_layout(layout: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    out = [(n, tuple(s)) for n, s in layout["before"]]
    for prefix, b in layout["blocks"].items():
        for i in range(b["n"]):
            out += [(f"{prefix}{i}.{suffix}", tuple(s)) for suffix, s in b["template"]]
    out += [(n, tuple(s)) for n, s in layout["after"]]
    return out


def _role(name: str) -> str:
    m = _BLOCK.match(name)
    return f"{m.group('prefix')}*.{m.group('suffix')}" if m else name


def encode_types(names: list[str], types: dict[str, str]) -> dict[str, Any]:
    """Per role (template entry or global tensor) its most common type, plus the exceptions."""
    by_role: dict[str, Counter] = {}
    for n in names:
        by_role.setdefault(_role(n), Counter())[types[n]] += 1
    default = {role: c.most_common(1)[0][0] for role, c in by_role.items()}
    exceptions = {n: types[n] for n in names if types[n] != default[_role(n)]}
    return {"by_role": default, "except": exceptions}


def decode_types(names: list[str], mix: dict[str, Any]) -> dict[str, str]:
    return {n: mix["except"].get(n, mix["by_role"][_role(n)]) for n in names}


# --------------------------------------------------------------------------- specs


def load_spec(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


def _metadata(items: dict[str, list]) -> dict[str, Any]:
    """Spec metadata ([TYPE, value] or [ARRAY, ELEMTYPE, values]) -> ggufgen typed values."""
    out: dict[str, Any] = {}
    for key, item in items.items():
        if len(item) == 2:
            out[key] = ggufgen.typed(item[1], GGUFValueType[item[0]])
        else:
            out[key] = ggufgen.typed(item[2], GGUFValueType[item[0]], GGUFValueType[item[1]])
    return out


def tensors(spec_part: dict[str, Any], quant: str | None = None) -> list[Tensor]:
    """The exact tensor list (name, ggml shape, type) of one quant of the model, or of the mmproj."""
    layout = decode_layout(spec_part["layout"])
    names = [n for n, _ in layout]
    mix = spec_part["mixes"][quant] if quant else spec_part["types"]
    types = decode_types(names, mix)
    return [(n, s, types[n]) for n, s in layout]


@lru_cache(maxsize=4)
def _tokenizer(n_tokens: int, model: str) -> dict[str, Any]:
    """A full-size tokenizer block (token texts are placeholders: memory depends on the count only)."""
    return ggufgen.tokenizer_metadata(n_tokens, model=model)


def model_metadata(spec: dict[str, Any], quant: str) -> dict[str, Any]:
    meta = _metadata(spec["metadata"])
    meta["general.file_type"] = ggufgen.typed(spec["mixes"][quant]["file_type"], GGUFValueType.UINT32)
    meta["general.quantization_version"] = ggufgen.typed(2, GGUFValueType.UINT32)
    vocab = spec["vocab"]
    tok = dict(_tokenizer(int(vocab["n_tokens"]), vocab.get("model", "gpt2")))
    for name, token_id in vocab.get("special", {}).items():
        tok[f"tokenizer.ggml.{name}_token_id"] = ggufgen.typed(int(token_id), GGUFValueType.UINT32)
    meta.update(tok)
    return meta


def write_variant(spec: dict[str, Any], quant: str, path: Path) -> Path:
    ts = [(n, s, GGMLQuantizationType[t]) for n, s, t in tensors(spec, quant)]
    return ggufgen.write_gguf(path, model_metadata(spec, quant), ts)


def write_mmproj(spec: dict[str, Any], path: Path) -> Path:
    mm = spec["mmproj"]
    ts = [(n, s, GGMLQuantizationType[t]) for n, s, t in tensors(mm)]
    return ggufgen.write_gguf(path, _metadata(mm["metadata"]), ts)


def file_name(spec: dict[str, Any], quant: str) -> str:
    return spec["file_pattern"].format(quant=quant)


def repo_files(spec: dict[str, Any], root: Path, quants: list[str] | None = None) -> dict[str, Path]:
    """Sparse GGUFs for the spec's repo: repo path -> local file (for FakeHub.add_repo)."""
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for q in quants or list(spec["mixes"]):
        name = file_name(spec, q)
        files[name] = write_variant(spec, q, root / name)
    if spec.get("mmproj"):
        name = spec["mmproj"]["file"]
        files[name] = write_mmproj(spec, root / name)
    return files


def nbytes(t: Tensor) -> int:
    return ggufgen.tensor_nbytes(t[1], GGMLQuantizationType[t[2]])
