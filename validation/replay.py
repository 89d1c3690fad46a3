"""Replaying llama.cpp's measured cases through memfit: a validation model's facts from its recorded
spec (validation/models/<name>.json, the exact header llama.cpp measured, written as a sparse GGUF),
every case llama.cpp measured without refusing it, and the representative subset the accuracy pins
(tests/test_accuracy_pins.py) replay and validation/compare_builds.py re-measures with other builds,
the same subset for both so the builds compare on the pinned cases."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from validation.modelgen import load_spec, write_model

if TYPE_CHECKING:
    from planner.model_facts import ModelFacts


def spec_facts(name: str, where: Path, models_dir: Path | None = None) -> ModelFacts:
    """The facts memfit reads from the model's recorded header (a sparse GGUF written into `where`;
    the spec from validation/models unless `models_dir` says otherwise)."""
    from planner.header import ModelHeaders
    from planner.model_facts import ModelFacts
    from planner.reader import parse_file

    spec = load_spec(name) if models_dir is None else load_spec(name, models_dir)
    path = write_model(spec, where / f"{name}.gguf")
    return ModelFacts.from_headers(ModelHeaders.merge([parse_file(path)]))


class SpecFacts:
    """spec_facts per model, each read once; `where(name)` gives the folder to write its file into."""

    def __init__(self, where: Callable[[str], Path]):
        self._where = where
        self._facts: dict[str, ModelFacts] = {}

    def __call__(self, name: str) -> ModelFacts:
        if name not in self._facts:
            self._facts[name] = spec_facts(name, self._where(name))
        return self._facts[name]


def exact_mismatches(case_id: str, got: Any, want: dict, keys: tuple[str, ...]) -> list[str]:
    """The buffers memfit must reproduce to the byte that it does not, one line each."""
    return [f"{case_id}: {key} memfit {getattr(got, key):,} != llama.cpp {want[key]:,}"
            for key in keys if getattr(got, key) != want[key]]


def measured_cases(results: list[dict]) -> Iterator[tuple[dict, ModelFacts, dict]]:
    """(result, the model's facts, case) for every case llama.cpp measured (not the refused ones)."""
    with tempfile.TemporaryDirectory() as tmp:
        for res in results:
            facts = spec_facts(res["model"], Path(tmp))
            (Path(tmp) / f"{res['model']}.gguf").unlink()
            for c in res["cases"]:
                if "error" not in c["llama"]:
                    yield res, facts, c


def _axis_key(case: dict) -> tuple:
    s = case["settings"]
    return (s["flash_attn"], s["cache_type_k"], s["cache_type_v"], s["n_ubatch"], s["n_parallel"], s["kv_unified"],
            s["swa_full"], s["repack"])


def representative(cases: list[dict]) -> list[dict]:
    """Every distinct combination of the non-context axes once, plus every context at the base
    settings (flash attention on and off): about a dozen to twenty cases per model."""
    chosen, seen_axes, seen_ctx = [], set(), set()
    for c in cases:
        if "error" in c["llama"] or c["settings"].get("set") == "holdout":
            continue
        s = c["settings"]
        ctx_key = (s["n_ctx"], s["flash_attn"])
        base = _axis_key(c)[1:] == ("f16", "f16", 512, 1, False, False, False)
        if _axis_key(c) not in seen_axes or (base and ctx_key not in seen_ctx):
            seen_axes.add(_axis_key(c))
            if base:
                seen_ctx.add(ctx_key)
            chosen.append(c)
    return chosen
