"""Measure llama.cpp's Vulkan backend buffers on a machine without a GPU (dev-only tool).

llama.cpp's no_alloc dry run (what `llama-fit-params --fit-print on` does, and what our
probe/memprobe.cpp prints in bytes) loads the model metadata, builds the worst-case graph and
sizes every buffer, but allocates nothing and runs no kernel. A software Vulkan device (Mesa's
lavapipe, "llvmpipe") is therefore enough to get the numbers llama.cpp's real Vulkan backend
reserves: weights / KV / compute per device (Vulkan0) and the host buffers (Vulkan_Host, CPU).

Needs a llama.cpp b11434 build with -DGGML_VULKAN=ON (see docs/accuracy-gpu.md for the recipe:
Debian packages libvulkan-dev, mesa-vulkan-drivers, glslc, vulkan-tools; none of this is a memfit
runtime dependency, nor part of the unit tests). ggml-vulkan skips CPU-type devices unless they
are named in GGML_VK_VISIBLE_DEVICES, which this script sets.

Writes validation/results-vulkan/<model>.json (one record per case, with the build, the Vulkan
driver and its limits).

Usage: python -m validation.vulkan_run --build /work/llamacpp/build-vulkan [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent

from validation import results
from validation.build_llamacpp import DEFAULT_CACHE, LLAMA_BUILD, _build_probe, _source_of_build, _source_package
from validation.modelgen import load_spec, write_model
from validation.run_llamacpp import _spec_digest, cli_args, unique_cases

RESULTS_DIR = HERE / "results-vulkan"
# the 9 models of the CPU validation (docs/accuracy.md)
MODELS = ("deepseek-v2-lite", "gemma-3-12b", "gpt-oss-20b", "lfm2-1.2b", "llama-3.1-8b", "qwen3-30b-a3b",
          "qwen3-32b", "qwen3-next-80b-a3b", "qwen3-vl-32b")
CONTEXTS = (4096, 32768, 131072)
UBATCHES = (512, 2048)
FULL = 999  # -ngl 999: every layer and the output layer on Vulkan0
VK_ENV = {"GGML_VK_VISIBLE_DEVICES": "0"}  # lavapipe is a CPU-type device: name it explicitly
SHIM_SRC = HERE / "probe" / "vulkan_limits_shim.c"
# what the shim makes the device report to llama.cpp (desktop GPU value; lavapipe: 128 MiB)
EMULATED_LIMITS = {"maxStorageBufferRange": 4294967295}
FIT_LINE = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$", re.M)
LIMITS = ("maxStorageBufferRange", "maxMemoryAllocationSize", "maxBufferSize", "minStorageBufferOffsetAlignment",
          "minMemoryMapAlignment", "maxComputeSharedMemorySize", "subgroupSize")


def _meta(spec: dict, key: str):
    v = spec["metadata"].get(f"{spec['arch']}.{key}")
    return None if v is None else v[-1]


def _case(n_ctx: int, fa: str, ub: int, ngl: int) -> dict:
    return {"n_ctx": n_ctx, "flash_attn": fa, "cache_type_k": "f16", "cache_type_v": "f16", "n_ubatch": ub,
            "n_batch": 2048, "n_parallel": 1, "kv_unified": False, "swa_full": False, "repack": False,
            "n_gpu_layers": ngl}


def case_id(c: dict) -> str:
    ngl = "all" if c["n_gpu_layers"] >= FULL else str(c["n_gpu_layers"])
    return f"c{c['n_ctx']}_fa-{c['flash_attn']}_ub{c['n_ubatch']}_ngl-{ngl}"


def grid(spec: dict) -> list[dict]:
    """Full offload over contexts x FA x ubatch; half the layers at 32k; no layer at 4k."""
    n_train = int(_meta(spec, "context_length"))
    n_layer = int(_meta(spec, "block_count"))
    ctxs = sorted({min(c, n_train) for c in CONTEXTS})
    cases = [_case(c, fa, ub, FULL) for c in ctxs for fa in ("on", "off") for ub in UBATCHES]
    cases += [_case(min(32768, n_train), fa, ub, n_layer // 2) for fa in ("on", "off") for ub in UBATCHES]
    cases += [_case(4096, "on", ub, 0) for ub in UBATCHES]
    return unique_cases(cases, case_id)


def vk_args(c: dict, model: str) -> list[str]:
    return [*cli_args(c, model), "-ngl", str(c["n_gpu_layers"])]


# --- the Vulkan device ------------------------------------------------------------------------

def vulkan_driver() -> dict:
    """What vulkaninfo says about the device llama.cpp uses (GPU0), and the limits that matter."""
    env = dict(os.environ, **VK_ENV)
    try:
        summ = subprocess.run(["vulkaninfo", "--summary"], capture_output=True, text=True, env=env).stdout
        full = subprocess.run(["vulkaninfo"], capture_output=True, text=True, env=env).stdout
    except FileNotFoundError:
        return {"error": "vulkaninfo not found (Debian: vulkan-tools)"}
    out: dict = {}
    for key in ("deviceName", "deviceType", "driverName", "driverInfo", "apiVersion", "conformanceVersion"):
        m = re.search(rf"^\s*{key}\s*=\s*(.+)$", summ, re.M)
        if m:
            out[key] = m.group(1).strip()
    limits = {}
    for key in LIMITS:
        m = re.search(rf"^\s*{key}\s*=\s*(\S+)", full, re.M)
        if m:
            v = m.group(1)
            limits[key] = int(v, 16) if v.startswith("0x") else int(v)
    heap = re.search(r"memoryHeaps\[0\]:\s*\n\s*size\s*=\s*(\d+)", full)
    if heap:
        limits["memoryHeap0"] = int(heap.group(1))
    out["limits"] = limits
    return out


# --- running ----------------------------------------------------------------------------------

def _device_sums(buffers: list[dict], device: str) -> dict:
    on = [b for b in buffers if b["buft"] == device]
    return {k: sum(b[k] for b in on) for k in ("model", "context", "compute")}


def _host_sums(buffers: list[dict]) -> dict:
    on = [b for b in buffers if b["host"]]
    return {k: sum(b[k] for b in on) for k in ("model", "context", "compute")}


def _record(raw: dict) -> dict:
    if "error" in raw:
        return {"error": raw["error"], "log_tail": raw.get("log", "")[-2000:]}
    keep = ("n_ctx", "n_ctx_seq", "n_batch", "n_ubatch", "n_seq_max", "n_vocab", "memory_kind", "kv_cells",
            "kv_swa_cells", "buffers", "output_buft")
    rec = {"weights_bytes": raw["model_bytes"], "kv_bytes": raw["kv_bytes"], "recurrent_bytes": raw["recurrent_bytes"],
           "compute_bytes": raw["compute_bytes"], "output_bytes": raw["output_bytes"],
           "flash_attn_effective": raw["flash_attn"]}
    rec.update({k: raw[k] for k in keep})
    rec["vulkan0"] = _device_sums(raw["buffers"], "Vulkan0")
    rec["host"] = _host_sums(raw["buffers"])
    splits = re.findall(r"graph splits = (\d+)", raw.get("log", ""))
    if splits:
        rec["graph_splits"] = int(splits[-1])
    return rec


def build_shim(cache: Path) -> Path:
    out = cache / "libvklimits.so"
    if not out.is_file() or out.stat().st_mtime < SHIM_SRC.stat().st_mtime:
        subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(out), str(SHIM_SRC), "-ldl"], check=True)
    return out


def vk_env(shim: Path) -> dict:
    env = dict(os.environ, **VK_ENV)
    env["LD_PRELOAD"] = str(shim)
    env["MEMFIT_VK_MAX_STORAGE_BUFFER_RANGE"] = str(EMULATED_LIMITS["maxStorageBufferRange"])
    return env


def run_probe(probe: Path, model: Path, cases: list[dict], work: Path, env: dict) -> list[dict]:
    """memprobe caches a loaded model per (path, repack): run one process per -ngl value."""
    out: dict[str, dict] = {}
    for ngl in sorted({c["n_gpu_layers"] for c in cases}):
        group = [c for c in cases if c["n_gpu_layers"] == ngl]
        f = work / f"{model.stem}.ngl{ngl}.cases"
        f.write_text("".join(" ".join(vk_args(c, str(model))) + "\n" for c in group))
        proc = subprocess.run([str(probe), str(f)], capture_output=True, text=True, errors="replace", env=env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or len(lines) != len(group):
            raise RuntimeError(f"memprobe failed on {model.name} -ngl {ngl} (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
        for c, ln in zip(group, lines):
            out[c["id"]] = _record(json.loads(ln))
    return [out[c["id"]] for c in cases]


def run_fit_print(bin_dir: Path, model: Path, c: dict, env: dict) -> dict:
    """llama-fit-params' own per-device lines (MiB, rounded down): the cross-check of memprobe."""
    cmd = [str(bin_dir / "llama-fit-params"), *vk_args(c, str(model)), "--fit-print", "on"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env)
    lines = {m.group(1): [int(m.group(i)) for i in (2, 3, 4)] for m in FIT_LINE.finditer(proc.stdout)}
    if proc.returncode != 0 or "Host" not in lines:
        return {"error": (proc.stderr or proc.stdout)[-500:]}
    return lines


def run_model(spec: dict, build: dict, work: Path, cross_check: bool) -> dict:
    t0 = time.monotonic()
    model = write_model(spec, work / f"{spec['name']}-{spec['quant']}.gguf")
    cases = grid(spec)
    records = run_probe(build["probe"], model, cases, work, build["env"])
    entries = []
    mism = 0
    for c, rec in zip(cases, records):
        e = {"id": c["id"], "settings": {k: v for k, v in c.items() if k != "id"},
             "args": " ".join(vk_args(c, "MODEL.gguf")), "llama": rec}
        if cross_check and "error" not in rec:
            fp = run_fit_print(build["bin_dir"], model, c, build["env"])
            e["fit_print_mib"] = fp
            if "error" not in fp:
                want = {"Vulkan0": [rec["vulkan0"][k] >> 20 for k in ("model", "context", "compute")],
                        "Host": [rec["host"][k] >> 20 for k in ("model", "context", "compute")]}
                e["fit_print_agrees"] = all(fp.get(k) == v for k, v in want.items())
                mism += not e["fit_print_agrees"]
        entries.append(e)
    model.unlink()
    return {
        "model": spec["name"], "hf_repo": spec["hf_repo"], "quant": spec["quant"],
        "spec": f"validation/models/{spec['name']}.json", "spec_sha256": _spec_digest(spec["name"]),
        "llama_cpp": build["info"], "vulkan_driver": build["driver"], "emulated_limits": EMULATED_LIMITS,
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": f"{platform.system()} {platform.machine()}", "runtime_s": round(time.monotonic() - t0, 2),
        "fit_print_mismatches": mism, "caveats": CAVEATS, "cases": entries,
    }


CAVEATS = [
    "device is Mesa lavapipe (llvmpipe), a CPU-type Vulkan device made visible with GGML_VK_VISIBLE_DEVICES=0; "
    "no_alloc dry run: graphs are built and buffers sized, nothing is allocated and no kernel runs",
    "lavapipe reports maxStorageBufferRange = 128 MiB; ggml-vulkan's supports_op rejects ops on larger tensors "
    "(logits, long KV views: CPU fallback or an abort), which no desktop GPU does. validation/probe/"
    "vulkan_limits_shim.c (LD_PRELOAD) makes the device report 4 GiB - 1 instead (emulated_limits); the driver "
    "never sees it used because nothing is allocated",
    "maxBufferSize stays lavapipe's 4 GiB - 1 (RADV-like): an op whose tensor is larger (the FA-off score matrix at "
    "long contexts) runs on the CPU, as it would on such a GPU; devices with larger limits keep it on the GPU",
    "ggml-vulkan caps one buffer at suballocation_block_size = min(1 GiB, maxMemoryAllocationSize); "
    "llvmpipe's maxMemoryAllocationSize is 2 GiB, so the 1 GiB cap is the same as on real GPUs; "
    "graph-allocator chunks above 1 GiB are laid out as on a real GPU",
    "minStorageBufferOffsetAlignment is 16 B on llvmpipe (real GPUs: 4-256 B, 64 B typical), which changes weight "
    "and KV padding by a few bytes per tensor",
    "op support (which ops fall back to the CPU: graph splits) depends on the device's features: llvmpipe has "
    "fp16, int8 and subgroups but no cooperative matrices; flash attention support for a head size can differ "
    "from real GPUs",
    "Vulkan-Hpp headers are Debian bookworm's 1.3.239 plus a 30-line declaration shim for VK_EXT_layer_settings "
    "(only used to configure validation layers), shaders compiled with Debian's glslc 2023.2",
]


def load_build(build_dir: Path, cache: Path) -> dict:
    bin_dir = build_dir / "bin"
    for t in ("llama-fit-params", "libggml-vulkan.so"):
        if not (bin_dir / t).exists():
            raise SystemExit(f"{bin_dir} lacks {t}: build llama.cpp with -DGGML_VULKAN=ON (docs/accuracy-gpu.md)")
    src = _source_of_build(build_dir)
    probe = _build_probe(build_dir, src, bin_dir, cache)
    env = vk_env(build_shim(cache))
    proc = subprocess.run([str(bin_dir / "llama-fit-params"), "--version"], capture_output=True, text=True, env=env)
    version = " ".join(ln for ln in (proc.stdout + proc.stderr).splitlines() if "version" in ln or "built with" in ln)
    info = {"llama_cpp_build": LLAMA_BUILD, "source": _source_package(src), "binary_version": version,
            "backend": "Vulkan (ggml-vulkan, GGML_VULKAN=ON, GGML_NATIVE=OFF) + CPU"}
    return {"bin_dir": bin_dir, "probe": probe, "info": info, "driver": vulkan_driver(), "env": env}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, required=True, help="cmake build dir of llama.cpp b11434 with GGML_VULKAN=ON")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE / "vulkan")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--no-cross-check", action="store_true", help="skip llama-fit-params --fit-print")
    args = ap.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    build = load_build(args.build.resolve(), args.cache)
    print(f"driver: {build['driver'].get('deviceName')} / {build['driver'].get('driverInfo')}", flush=True)
    return results.measure_each(
        args.only or MODELS, lambda name: run_model(load_spec(name), build, args.cache, not args.no_cross_check),
        lambda res: (f"{len(res['cases'])} cases, {results.refused(res)} refused, fit-print mismatches "
                     f"{res['fit_print_mismatches']}, {res['runtime_s']} s"),
        lambda res: results.save_result(res, RESULTS_DIR))


if __name__ == "__main__":
    sys.exit(main())
