"""The real architectures the validation runs on: their GGUF metadata, as llama.cpp's converter
(convert_hf_to_gguf.py, b11434) writes it from each model's Hugging Face config.json.

The configs are data (validation/model_configs.toml, each value's source beside it); this module
types them as the converter writes them (uint32 counts, float32 floats, int32 arrays) and builds
the configs validation/modelgen.py generates specs from. Only header facts live here; the tensor
lists come from validation/layouts.py and the quant mix from llama.cpp's own quantizer.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from gguf import GGUFValueType as V


def u32(x: int) -> tuple[Any, V, None]:
    return (int(x), V.UINT32, None)


def f32(x: float) -> tuple[Any, V, None]:
    return (float(x), V.FLOAT32, None)


def s(x: str) -> tuple[Any, V, None]:
    return (x, V.STRING, None)


def b(x: bool) -> tuple[Any, V, None]:
    return (bool(x), V.BOOL, None)


def i32s(xs: list[int]) -> tuple[Any, V, V]:
    return ([int(x) for x in xs], V.ARRAY, V.INT32)


def _prefixed(arch: str, keys: dict[str, Any]) -> dict[str, Any]:
    return {f"{arch}.{k}": v for k, v in keys.items()}


def _model(name: str, repo: str, arch: str, quant: str, vocab: dict, keys: dict[str, Any], notes: str = "",
           layout: dict | None = None) -> dict:
    """layout: tensor choices the metadata does not record (validation/layouts.py, Hp.options)."""
    meta = {"general.architecture": s(arch), "general.name": s(repo.split("/")[-1])}
    meta.update(_prefixed(arch, keys))
    cfg = {"name": name, "hf_repo": repo, "arch": arch, "quant": quant, "vocab": vocab, "metadata": meta, "notes": notes}
    if layout:
        cfg["layout"] = layout
    return cfg


def typed(value: Any) -> tuple[Any, V, V | None]:
    """A TOML value as the converter types it: int -> uint32, float -> float32, str, bool, and
    lists of ints (int32) or booleans."""
    if isinstance(value, list):
        return (value, V.ARRAY, V.BOOL) if value and isinstance(value[0], bool) else i32s(value)
    for kind, make in ((bool, b), (int, u32), (float, f32), (str, s)):
        if isinstance(value, kind):
            return make(value)
    raise TypeError(f"no GGUF type for {value!r}")


def load_configs(path: Path) -> tuple[list[dict], dict[str, dict]]:
    """The `[[model]]` entries of a config table (model_configs.toml's format) and its named vocabularies."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    vocabs = data.get("vocabs", {})
    models = []
    for m in data["model"]:
        vocab = vocabs[m["vocab"]] if isinstance(m["vocab"], str) else m["vocab"]
        cfg = _model(m["name"], m["hf_repo"], m["arch"], m["quant"], vocab,
                     {k: typed(v) for k, v in m["keys"].items()}, m.get("notes", ""), m.get("layout"))
        if "general_name" in m:
            cfg["metadata"]["general.name"] = s(m["general_name"])
        models.append(cfg)
    return models, vocabs


MODELS, _VOCABS = load_configs(Path(__file__).resolve().parent / "model_configs.toml")
QWEN_VOCAB = _VOCABS["qwen"]
BY_NAME = {m["name"]: m for m in MODELS}
