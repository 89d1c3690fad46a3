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


# --------------------------------------------------------------------------- layer sets


def _runs(xs: list[int]) -> str:
    """Sorted ints -> "a-b/s" arithmetic runs (3+ members) and single numbers, comma-separated."""
    out, i = [], 0
    while i < len(xs):
        j = i + 1
        if j < len(xs):
            step = xs[j] - xs[i]
            while j + 1 < len(xs) and xs[j + 1] - xs[j] == step:
                j += 1
            if j - i >= 2:
                out.append(f"{xs[i]}-{xs[j]}" + (f"/{step}" if step != 1 else ""))
                i = j + 1
                continue
        out.append(str(xs[i]))
        i += 1
    return ",".join(out)


def encode_layers(layers: set[int], n: int) -> str:
    """The shorter of the set and "~" + its complement in 0..n-1."""
    direct = _runs(sorted(layers))
    other = "~" + _runs(sorted(set(range(n)) - layers))
    return direct if len(direct) <= len(other) else other


def decode_layers(text: str, n: int) -> set[int]:
    neg = text.startswith("~")
    out: set[int] = set()
    for part in text.lstrip("~").split(","):
        if part:
            out.update(_decode_run(part))
    return set(range(n)) - out if neg else out


def _decode_run(part: str) -> range:
    """`a-b/s`, `a-b` or `a` as the layers it names."""
    if "-" not in part:
        return range(int(part), int(part) + 1)
    span, _, step = part.partition("/")
    a, b = (int(x) for x in span.split("-"))
    return range(a, b + 1, int(step or 1))


# --------------------------------------------------------------------------- layout codec


def decode_layout(layout: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    out = [(n, tuple(s)) for n, s in layout["before"]]
    for prefix, blk in layout["blocks"].items():
        n = blk["n"]
        entries = [(e[0], tuple(e[1]), decode_layers(e[2], n) if len(e) > 2 else None) for e in blk["template"]]
        for i in range(n):
            out += [(f"{prefix}{i}.{suffix}", shape) for suffix, shape, only in entries if only is None or i in only]
    out += [(n, tuple(s)) for n, s in layout["after"]]
    return out


def encode_layout(tensors: list[tuple[str, tuple[int, ...] | list[int]]]) -> dict[str, Any]:
    """[(name, shape)] -> compact layout. Block tensors must come block after block; the template
    is the merge of the blocks' (suffix, shape) sequences, each entry tagged with the layers that
    have it when not all do. Raises when that cannot reproduce the list exactly."""
    before, per_layer, after = _split_blocks(tensors)
    out = {"before": before, "blocks": {prefix: _encode_block(layers) for prefix, layers in per_layer.items()},
           "after": after}
    if [(n, tuple(s)) for n, s in decode_layout(out)] != [(n, tuple(s)) for n, s in tensors]:
        raise ValueError("the tensor list is not in block order; cannot encode it compactly")
    return out


_Entry = tuple[str, tuple[int, ...]]  # a block tensor's suffix and shape


def _split_blocks(tensors: list[tuple[str, tuple[int, ...] | list[int]]]
                  ) -> tuple[list, dict[str, dict[int, list[_Entry]]], list]:
    """The global tensors before the first block tensor, the block tensors per prefix and layer,
    the global tensors after."""
    before: list = []
    after: list = []
    per_layer: dict[str, dict[int, list[_Entry]]] = {}
    seen_block = False
    for name, shape in tensors:
        m = _BLOCK.match(name)
        if not m:
            (after if seen_block else before).append([name, list(shape)])
            continue
        seen_block = True
        per_layer.setdefault(m.group("prefix"), {}).setdefault(int(m.group("i")), []).append((m.group("suffix"), tuple(shape)))
    return before, per_layer, after


def _encode_block(layers: dict[int, list[_Entry]]) -> dict[str, Any]:
    """One block prefix: its layer count and the template, each entry tagged with its layers
    when not all have it."""
    n = max(layers) + 1
    template = _template(layers, n)
    members = {key: {i for i in range(n) if key in layers.get(i, [])} for key in template}
    return {"n": n, "template": [
        [suffix, list(shape)] + ([] if len(members[(suffix, shape)]) == n else [encode_layers(members[(suffix, shape)], n)])
        for suffix, shape in template]}


def _template(layers: dict[int, list[_Entry]], n: int) -> list[_Entry]:
    """The merge of the layers' (suffix, shape) sequences, each layer's order kept."""
    template: list[_Entry] = []
    for i in range(n):
        pos = -1
        for key in layers.get(i, []):
            if key in template:
                pos = template.index(key)
            else:
                pos += 1
                template.insert(pos, key)
    return template


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


def format_spec(value: Any, indent: int = 0) -> str:
    """A spec as JSON with dicts one key per line and lists of lists one per line: readable diffs,
    a small file."""
    pad = " " * (indent + 1)
    if isinstance(value, dict) and value:
        items = [f"{pad}{json.dumps(k)}: {format_spec(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list) and any(isinstance(x, dict) for x in value):
        return _lines_of([pad + format_spec(x, indent + 1) for x in value], indent)
    if isinstance(value, list) and value and all(isinstance(x, list) for x in value):
        return _lines_of([pad + json.dumps(x, separators=(",", ":")) for x in value], indent)
    return json.dumps(value, separators=(",", ":"))


def _lines_of(items: list[str], indent: int) -> str:
    """A JSON list with one item per line."""
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


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
