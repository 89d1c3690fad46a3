"""Measured results, one JSON file per model (the run's facts one key per line, then one line per
case: readable diffs when a case changes), and the loop every harness runs: measure each model,
save it, say in one line what happened."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable


def save_result(result: dict, results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{result['model']}.json"
    head = {k: v for k, v in result.items() if k != "cases"}
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    lines += [' "cases": [', ",\n".join("  " + json.dumps(c) for c in result["cases"]), " ]\n}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def load_results(results_dir: Path) -> list[dict]:
    """Every model's result in `results_dir`, by name; files named `_*.json` are notes about the
    run, not results."""
    return [json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json")) if not p.name.startswith("_")]


def refused(result: dict) -> int:
    """Cases llama.cpp refused (an error instead of a measurement)."""
    return sum("error" in c["llama"] for c in result["cases"])


def measure_each(names: Iterable[str], measure: Callable[[str], dict], summary: Callable[[dict], str],
                 save: Callable[[dict], Path]) -> int:
    """Measure each model, save its result, print `name: summary -> file`."""
    for name in names:
        result = measure(name)
        print(f"{name}: {summary(result)} -> {save(result)}", flush=True)
    return 0
