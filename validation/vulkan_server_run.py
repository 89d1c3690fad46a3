"""llama-server's own reservation on llama.cpp's Vulkan backend (Mesa lavapipe), and the ROCm log's
settings on a GPU backend of b11434.

The server-mode rules (validation/server_run.py: memprobe --server-mode, -np auto = 4 unified
slots, n_outputs_max = min(n_batch, n_parallel)) on the Vulkan build of validation/vulkan_run.py,
every layer on Vulkan0, for a subset of the validation models: np 1/2/4, unified and not, ub
512/1024, FA on and off, f16 and q8_0 caches at 16k; plus the ROCm log's settings on gpt-oss-120b
with llama-server's reservation and with whole-batch logits (`llama-fit-params`' reservation, what
llama-server did before b9464).

    python -m validation.vulkan_server_run --build /work/llamacpp/build-vulkan

Writes validation/results-vulkan-server/<model>.json; validation/compare_vulkan_server.py compares.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from itertools import product
from pathlib import Path

HERE = Path(__file__).resolve().parent

from validation import results
from validation.build_llamacpp import DEFAULT_CACHE
from validation.modelgen import load_spec, write_model
from validation.run_llamacpp import _contexts, _spec_digest, unique_cases
from validation.server_run import BASE, ROCM_LOG_CASE, case_id, cli_args
from validation.vulkan_run import CAVEATS, EMULATED_LIMITS, _record, load_build

RESULTS_DIR = HERE / "results-vulkan-server"
MODELS = ("llama-3.1-8b", "qwen3-30b-a3b", "gpt-oss-20b", "gemma-3-12b", "lfm2-1.2b", "qwen3-next-80b-a3b",
          "gpt-oss-120b")


def cases(spec: dict) -> list[dict]:
    ctx = min(16384, _contexts(spec)[-1])
    out = []
    for np_, unified, ub, fa in product((1, 2, 4), (False, True), (512, 1024), ("on", "off")):
        if np_ == 1 and unified:
            continue
        out.append(dict(BASE, n_ctx=ctx, n_parallel=np_, kv_unified=unified, n_ubatch=ub, flash_attn=fa))
    out.append(dict(BASE, n_ctx=ctx, cache_type_k="q8_0", cache_type_v="q8_0", n_parallel=4, kv_unified=True))
    if spec["name"] == ROCM_LOG_CASE["model"]:
        rc = {k: v for k, v in ROCM_LOG_CASE.items() if k != "model"}
        out.append(dict(BASE, **rc, set="rocm-log"))
        out.append(dict(BASE, **rc, set="rocm-log-whole-batch"))
    return unique_cases(out, lambda c: case_id(c) + ("_whole-batch" if c["set"].endswith("whole-batch") else ""))


def args(c: dict, model: str) -> list[str]:
    a = cli_args(c, model) + ["-ngl", "999"]
    if c["set"].endswith("whole-batch"):  # llama-fit-params' parser: logits for the whole batch
        return [x for x in a if x != "-no-kvu"]
    return ["--server-mode", *a]


def run_model(spec: dict, build: dict, work: Path) -> dict:
    t0 = time.monotonic()
    model = write_model(spec, work / f"{spec['name']}-{spec['quant']}.gguf")
    cs = cases(spec)
    f = work / f"{model.stem}.vkserver.cases"
    f.write_text("".join(" ".join(args(c, str(model))) + "\n" for c in cs))
    proc = subprocess.run([str(build["probe"]), str(f)], capture_output=True, text=True, errors="replace",
                          env=build["env"])
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or len(lines) != len(cs):
        raise RuntimeError(f"memprobe failed on {model.name} (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    entries = []
    for c, ln in zip(cs, lines):
        raw = json.loads(ln)
        rec = _record(raw)
        if "error" not in rec:
            rec["n_outputs_max"] = raw.get("n_outputs_max")
        entries.append({"id": c["id"], "settings": {k: v for k, v in c.items() if k != "id"},
                        "args": " ".join(args(c, "MODEL.gguf")), "llama": rec})
    model.unlink()
    return {
        "model": spec["name"], "hf_repo": spec["hf_repo"], "quant": spec["quant"],
        "spec": f"validation/models/{spec['name']}.json", "spec_sha256": _spec_digest(spec["name"]),
        "llama_cpp": build["info"], "vulkan_driver": build["driver"], "emulated_limits": EMULATED_LIMITS,
        "mode": "llama-server (memprobe --server-mode), -ngl 999",
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "runtime_s": round(time.monotonic() - t0, 2), "caveats": CAVEATS, "cases": entries,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, required=True, help="cmake build dir of llama.cpp b11434 with GGML_VULKAN=ON")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args(argv)
    build = load_build(a.build, a.cache)
    work = a.cache / "work"
    work.mkdir(parents=True, exist_ok=True)
    return results.measure_each(
        [name for name in MODELS if not a.only or name in a.only], lambda name: run_model(load_spec(name), build, work),
        lambda res: f"{len(res['cases'])} cases, {results.refused(res)} refused, {res['runtime_s']} s",
        lambda res: results.save_result(res, RESULTS_DIR))


if __name__ == "__main__":
    sys.exit(main())
