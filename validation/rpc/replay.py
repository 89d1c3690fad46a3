"""Replays validation/rpc/results.json through memfit's split estimate (planner.cluster.estimate):
the same three models rebuilt from their recorded shapes, each case's -ts and context, every
device's weights, KV and compute against what llama.cpp logged. Used by tests/test_cluster_rpc.py
and to write docs/accuracy.md's RPC table:

    python -m validation.rpc.replay
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from planner.cluster.estimate import split_buffers
from planner.estimate_types import RunSettings
from planner.estimator import estimate
from planner.header import ModelHeaders
from planner.model_facts import ModelFacts
from planner.reader import parse_file
from planner.testing import ggufgen

RESULTS = Path(__file__).with_name("results.json")
MIB = 1024 * 1024
# the remote devices run ggml's CPU backend: 32-byte alignment, no row padding, a GPU-style split;
# memfit's metal rules are the same buffer rules
BACKEND = "metal"


@dataclass
class DeviceRow:
    case: str
    device: str
    weights_ok: bool
    kv_ok: bool
    compute_memfit_mib: float
    compute_llama_mib: float

    @property
    def compute_error(self) -> float:
        return self.compute_memfit_mib / self.compute_llama_mib - 1 if self.compute_llama_mib else 0.0


def _facts(where: Path) -> dict[str, ModelFacts]:
    from validation.modelgen import write_model as write_spec
    from validation.rpc.run_rpc import MODELS, SWA_SPEC

    for name, (arch, dims) in MODELS.items():
        ggufgen.write_model(where / f"{name}.gguf", arch, ggufgen.ModelShape(**dims))  # type: ignore[arg-type]
    write_spec(json.loads(SWA_SPEC.read_text()), where / "swa.gguf")
    return {n: ModelFacts.from_headers(ModelHeaders.merge([parse_file(where / f"{n}.gguf")]))
            for n in [*MODELS, "swa"]}


def _rows(case: dict, facts: ModelFacts) -> list[DeviceRow]:
    # llama-server -np 1 reserves logits for one row (n_outputs_max = n_parallel)
    bd = estimate(facts, RunSettings(n_ctx=case["ctx"], flash_attn="on", backend=BACKEND, n_outputs_max=1))
    split = split_buffers(facts, bd, case["split"])
    name = f"{case['model']} -ts {','.join(map(str, case['split']))} -c {case['ctx']}"
    rows = []
    for i, dev in enumerate([*split.devices, split.host]):
        want = case["buffers_mib"]["host" if dev.device == "host" else f"rpc{i}"]
        rows.append(DeviceRow(
            case=name, device="host" if dev.device == "host" else f"rpc{i}",
            weights_ok=round(dev.weights_bytes / MIB, 2) == want["model"],
            kv_ok=round((dev.kv_bytes + dev.recurrent_bytes) / MIB, 2) == want.get("KV", 0.0) + want.get("RS", 0.0),
            compute_memfit_mib=round(dev.compute_bytes / MIB, 2), compute_llama_mib=want["compute"]))
    return rows


def layer_matches(case: dict) -> bool:
    from planner.cluster.split import layer_devices

    want = [int(s[-1]) if s.startswith("RPC") else -1 for s in case["layer_device"]]
    return layer_devices(len(want) - 1, case["split"]) == want


def replay(results: Path = RESULTS) -> list[DeviceRow]:
    cases = json.loads(results.read_text())["cases"]
    with tempfile.TemporaryDirectory() as tmp:
        facts = _facts(Path(tmp))
        return [row for case in cases if case["ok"] for row in _rows(case, facts[case["model"]])]


def main() -> None:
    rows = replay()
    print("| case | device | weights | KV | compute memfit / llama.cpp MiB | error |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.case} | {r.device} | {'exact' if r.weights_ok else 'DIFF'} | {'exact' if r.kv_ok else 'DIFF'} "
              f"| {r.compute_memfit_mib:.2f} / {r.compute_llama_mib:.2f} | {r.compute_error:+.1%} |")


if __name__ == "__main__":
    main()
