"""Run real llama.cpp over a grid of settings for every validation model and record its numbers.

For each case memprobe (validation/probe/memprobe.cpp) does llama-fit-params' no_alloc dry run
and prints what llama.cpp would allocate in bytes: weights, KV cache, recurrent state, compute
buffer and the host output buffer. Each case is also run through `llama-fit-params --fit-print on`
itself (which prints MiB, rounded down) as a cross-check that memprobe measures what llama.cpp's
own tool reports. Results go to validation/results/<model>.json.

The grid covers every value of every axis for every model (contexts 4k..128k clamped to the
training context, flash attention on/off/auto, KV f16/q8_0, ubatch 512/1024/2048, parallel 1/4
with unified and per-sequence KV, --swa-full for SWA models) and the full cross product of
context x flash-attn x KV type x ubatch x parallel for FULL_PRODUCT_MODELS. A small hold-out set
of off-grid settings per model (set "holdout") measures how the estimator generalises.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from itertools import product
from pathlib import Path

HERE = Path(__file__).resolve().parent

from validation import results
from validation.build_llamacpp import DEFAULT_CACHE, LlamaBuild, ensure_build
from validation.modelgen import MODELS_DIR, all_specs, write_model

RESULTS_DIR = HERE / "results"
CONTEXTS = (4096, 8192, 16384, 32768, 65536, 131072)
UBATCHES = (512, 1024, 2048)
FULL_PRODUCT_MODELS = ("llama-3.1-8b", "gpt-oss-20b")
FIT_PRINT = re.compile(r"^Host\s+(\d+)\s+(\d+)\s+(\d+)\s*$", re.M)

BASE = {"n_ctx": 8192, "flash_attn": "on", "cache_type_k": "f16", "cache_type_v": "f16",
        "n_ubatch": 512, "n_batch": 2048, "n_parallel": 1, "kv_unified": False, "swa_full": False, "repack": False,
        "set": "grid"}


# --- the grid ----------------------------------------------------------------------------------

def _meta(spec: dict, key: str, default=None):
    v = spec["metadata"].get(f"{spec['arch']}.{key}")
    return default if v is None else v[-1]


def _is_mla(spec: dict) -> bool:
    return _meta(spec, "attention.kv_lora_rank") is not None


def _has_swa(spec: dict) -> bool:
    return bool(_meta(spec, "attention.sliding_window"))


def _contexts(spec: dict) -> list[int]:
    n_train = int(_meta(spec, "context_length"))
    return sorted({min(c, n_train) for c in CONTEXTS})


def _kv(kind: str, fa: str, mla: bool) -> tuple[str, str] | None:
    """KV types for a case. llama.cpp needs flash attention for a quantized V cache, and MLA
    models need equal K/V types, so q8_0 without FA is K q8_0 + V f16 (none for MLA)."""
    if kind == "f16":
        return ("f16", "f16")
    if fa != "off":
        return ("q8_0", "q8_0")
    return None if mla else ("q8_0", "f16")


def _case(**over) -> dict:
    c = dict(BASE)
    c.update(over)
    return c


def covering_cases(spec: dict) -> list[dict]:
    """Every value of every axis at least once, each varied around a base case."""
    mla, ctxs = _is_mla(spec), _contexts(spec)
    mid, big = min(16384, ctxs[-1]), min(65536, ctxs[-1])
    cases = []
    for ctx, fa in product(ctxs, ("on", "off")):
        cases.append(_case(n_ctx=ctx, flash_attn=fa))
    for ctx, fa in product((8192, min(32768, ctxs[-1])), ("on", "off")):
        kv = _kv("q8_0", fa, mla)
        if kv:
            cases.append(_case(n_ctx=ctx, flash_attn=fa, cache_type_k=kv[0], cache_type_v=kv[1]))
    for ub, fa in product((1024, 2048), ("on", "off")):
        cases.append(_case(n_ctx=mid, flash_attn=fa, n_ubatch=ub))
    for ctx, fa in product((mid, big), ("on", "off")):
        cases.append(_case(n_ctx=ctx, flash_attn=fa, n_parallel=4))
    for fa in ("on", "off"):
        cases.append(_case(n_ctx=mid, flash_attn=fa, n_parallel=4, kv_unified=True))
    cases.append(_case(n_ctx=8192, flash_attn="auto"))
    cases.append(_case(n_ctx=ctxs[-1], flash_attn="auto", n_ubatch=1024, n_parallel=4))
    if _has_swa(spec):
        for ctx in (8192, min(32768, ctxs[-1])):
            cases.append(_case(n_ctx=ctx, swa_full=True))
        cases.append(_case(n_ctx=mid, n_parallel=4, swa_full=True, flash_attn="off"))
    cases.append(_case(n_ctx=ctxs[-1], cache_type_k="q8_0", cache_type_v="q8_0", n_ubatch=2048, n_parallel=4))
    cases.append(_case(n_ctx=8192, repack=True))  # CPU weight repacking on (llama.cpp's default)
    return cases


def holdout_cases(spec: dict) -> list[dict]:
    """Settings off the grid (odd contexts, ubatch 256/768, parallel 2/3, other cache types and
    batch sizes): measured and compared, but not used to pin or tune the estimator, so they show
    how well it generalises beyond the grid."""
    mla, n_train = _is_mla(spec), _contexts(spec)[-1]
    clamp = lambda c: min(c, n_train)  # noqa: E731
    ho = lambda **kw: _case(set="holdout", **kw)  # noqa: E731
    cases = [
        ho(n_ctx=3000),
        ho(n_ctx=24576, flash_attn="off", n_ubatch=256),
        ho(n_ctx=clamp(50000), cache_type_k="q4_0", cache_type_v="q4_0", n_ubatch=768),
        ho(n_ctx=12288, cache_type_k="bf16", cache_type_v="bf16", n_parallel=2),
        ho(n_ctx=clamp(32768), cache_type_k="iq4_nl", cache_type_v="iq4_nl", n_ubatch=1024, n_parallel=3, kv_unified=True),
        ho(n_ctx=8192, n_batch=512),
        ho(n_ctx=16384, flash_attn="off", n_batch=4096, n_ubatch=2048),
        ho(n_ctx=clamp(100000), flash_attn="auto"),
    ]
    cases.append(ho(n_ctx=20000, flash_attn="on", cache_type_k="q5_1", cache_type_v="q5_1", n_parallel=3) if mla else
                 ho(n_ctx=20000, flash_attn="off", cache_type_k="q5_1", cache_type_v="f16", n_parallel=3))
    if _has_swa(spec):
        cases += [ho(n_ctx=12288, n_parallel=2), ho(n_ctx=12288, n_parallel=2, swa_full=True, n_ubatch=768)]
    return cases


# The settings of the llama.cpp reference table in /work/shared/reference/peers.md (llama-cpp-python
# 0.3.36, CPU, n_ctx 24576, n_ubatch 512, f16 KV, one sequence, repacking off), measured here with
# b11434 so the two can be compared (validation/compare.py, "Cross-check with peers.md"). The last
# gemma case uses llama-cpp-python's own defaults: n_batch 512 and a full-size SWA cache.
PEERS_CASES: dict[str, list[dict]] = {
    "gemma-3-270m": [
        {"n_ctx": 24576, "flash_attn": "on"}, {"n_ctx": 24576, "flash_attn": "off"},
        {"n_ctx": 24576, "flash_attn": "on", "swa_full": True}, {"n_ctx": 24576, "flash_attn": "off", "swa_full": True},
        {"n_ctx": 24576, "flash_attn": "on", "swa_full": True, "n_batch": 512},
    ],
    "llama-3.1-8b": [{"n_ctx": 24576, "flash_attn": "on"}, {"n_ctx": 24576, "flash_attn": "off"}],
    "qwen3-32b": [{"n_ctx": 24576, "flash_attn": "on"}, {"n_ctx": 24576, "flash_attn": "off"}],
}


def peers_cases(spec: dict) -> list[dict]:
    return [_case(set="peers", **kw) for kw in PEERS_CASES.get(spec["name"], [])]


def full_product_cases(spec: dict) -> list[dict]:
    mla = _is_mla(spec)
    cases = []
    for ctx, fa, kvk, ub, np_ in product(_contexts(spec), ("on", "off"), ("f16", "q8_0"), UBATCHES, (1, 4)):
        kv = _kv(kvk, fa, mla)
        if kv:
            cases.append(_case(n_ctx=ctx, flash_attn=fa, cache_type_k=kv[0], cache_type_v=kv[1], n_ubatch=ub, n_parallel=np_))
    return cases


def quick_cases(spec: dict) -> list[dict]:
    ctxs = _contexts(spec)
    cases = [_case(n_ctx=8192, flash_attn="on"), _case(n_ctx=8192, flash_attn="off"),
             _case(n_ctx=ctxs[-1], flash_attn="on", cache_type_k="q8_0", cache_type_v="q8_0", n_ubatch=1024, n_parallel=4)]
    if _has_swa(spec):
        cases.append(_case(n_ctx=8192, swa_full=True))
    return cases


def case_id(c: dict) -> str:
    kv = c["cache_type_k"] if c["cache_type_k"] == c["cache_type_v"] else f"{c['cache_type_k']}-{c['cache_type_v']}"
    parts = [f"c{c['n_ctx']}", f"fa-{c['flash_attn']}", f"kv-{kv}", f"ub{c['n_ubatch']}", f"np{c['n_parallel']}"]
    if c["n_batch"] != BASE["n_batch"]:
        parts.append(f"b{c['n_batch']}")
    if c["kv_unified"]:
        parts.append("kvu")
    if c["swa_full"]:
        parts.append("swafull")
    if c["repack"]:
        parts.append("repack")
    return "_".join(parts)


def grid(spec: dict, quick: bool = False) -> list[dict]:
    cases = quick_cases(spec) if quick else covering_cases(spec)
    if not quick and spec["name"] in FULL_PRODUCT_MODELS:
        cases += full_product_cases(spec)
    if not quick:
        cases += holdout_cases(spec) + peers_cases(spec)
    return unique_cases(cases, case_id)


def unique_cases(cases: list[dict], ident) -> list[dict]:
    """Cases in order, each id once, with its id stored in the case."""
    seen, out = set(), []
    for c in cases:
        cid = ident(c)
        if cid not in seen:
            seen.add(cid)
            out.append(dict(c, id=cid))
    return out


def cli_args(c: dict, model: str) -> list[str]:
    """llama.cpp flags for a case (llama-fit-params and memprobe take the same)."""
    args = ["-m", model, "-c", str(c["n_ctx"]), "-fa", c["flash_attn"], "-ctk", c["cache_type_k"],
            "-ctv", c["cache_type_v"], "-ub", str(c["n_ubatch"]), "-b", str(c["n_batch"]), "-np", str(c["n_parallel"])]
    if c["kv_unified"]:
        args.append("-kvu")
    if c["swa_full"]:
        args.append("--swa-full")
    if not c["repack"]:
        args.append("-nr")
    return args


# --- running -----------------------------------------------------------------------------------

def _probe_record(raw: dict) -> dict:
    if "error" in raw:
        return {"error": raw["error"], "log_tail": raw.get("log", "")[-2000:]}
    keep = ("n_ctx", "n_ctx_seq", "n_batch", "n_ubatch", "n_seq_max", "n_ctx_train", "n_vocab", "memory_kind",
            "kv_base_bytes", "kv_swa_bytes", "kv_cells", "kv_swa_cells", "kv_streams", "rs_cells", "buffers")
    rec = {
        "weights_bytes": raw["model_bytes"],
        "kv_bytes": raw["kv_bytes"],
        "recurrent_bytes": raw["recurrent_bytes"],
        "compute_bytes": raw["compute_bytes"],
        "output_bytes": raw["output_bytes"],
        "context_bytes": raw["context_bytes"],
        "flash_attn_effective": raw["flash_attn"],
    }
    rec.update({k: raw[k] for k in keep})
    return rec


def run_probe(build: LlamaBuild, model_path: Path, cases: list[dict], workdir: Path) -> list[dict]:
    cases_file = workdir / f"{model_path.stem}.cases"
    cases_file.write_text("".join(" ".join(cli_args(c, str(model_path))) + "\n" for c in cases))
    proc = subprocess.run([str(build.probe), str(cases_file)], capture_output=True, text=True, errors="replace")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or len(lines) != len(cases):
        raise RuntimeError(f"memprobe failed on {model_path.name} (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return [_probe_record(json.loads(ln)) for ln in lines]


def run_fit_print(build: LlamaBuild, model_path: Path, case: dict) -> dict | None:
    """llama-fit-params' own estimate (MiB, rounded down): the cross-check of memprobe."""
    cmd = [str(build.bin_dir / "llama-fit-params"), *cli_args(case, str(model_path)), "--fit-print", "on"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    m = FIT_PRINT.search(proc.stdout)
    if proc.returncode != 0 or not m:
        return {"error": (proc.stderr or proc.stdout)[-500:]}
    return {"model": int(m.group(1)), "context": int(m.group(2)), "compute": int(m.group(3))}


def _spec_digest(name: str) -> str:
    return hashlib.sha256((MODELS_DIR / f"{name}.json").read_bytes()).hexdigest()


def run_model(spec: dict, build: LlamaBuild, models_dir: Path, work: Path, quick: bool, cross_check: str) -> dict:
    t0 = time.monotonic()
    path = write_model(spec, models_dir / f"{spec['name']}-{spec['quant']}.gguf")
    cases = grid(spec, quick)
    records = run_probe(build, path, cases, work)
    out_cases = []
    mism = 0
    for i, (c, rec) in enumerate(zip(cases, records)):
        entry = {"id": c["id"], "settings": {k: v for k, v in c.items() if k != "id"},
                 "args": " ".join(cli_args(c, "MODEL.gguf")), "llama": rec}
        check = cross_check == "all" or (cross_check == "some" and i % 5 == 0)
        if check and "error" not in rec and not c["kv_unified"]:  # llama-fit-params has no -kvu
            # fit-print sums host buffers only (CPU_REPACK is not a host buffer and is left out)
            host = [b for b in rec["buffers"] if b["host"]]
            fp = run_fit_print(build, path, c)
            entry["fit_print_mib"] = fp
            if fp and "error" not in fp:
                expect = {k: sum(b[k] for b in host) >> 20 for k in ("model", "context", "compute")}
                entry["fit_print_agrees"] = expect == fp
                mism += expect != fp
        out_cases.append(entry)
    return {
        "model": spec["name"],
        "hf_repo": spec["hf_repo"],
        "quant": spec["quant"],
        "spec": f"validation/models/{spec['name']}.json",
        "spec_sha256": _spec_digest(spec["name"]),
        "llama_cpp": build.as_dict(),
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": f"{platform.system()} {platform.machine()}",
        "grid": "quick" if quick else ("covering+full-product" if spec["name"] in FULL_PRODUCT_MODELS else "covering"),
        "runtime_s": round(time.monotonic() - t0, 2),
        "fit_print_mismatches": mism,
        "cases": out_cases,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bin", type=Path, help="reuse this llama.cpp build (its bin/ directory)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--quick", action="store_true", help="a few cases per model")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--cross-check", choices=("all", "some", "none"), default="all",
                    help="also run llama-fit-params --fit-print for all/every 5th/no case")
    args = ap.parse_args(argv)
    build = ensure_build(args.llama_bin, args.cache)
    models_dir = args.cache / "models"
    work = args.cache / "work"
    models_dir.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    specs = {spec["name"]: spec for spec in all_specs() if not args.only or spec["name"] in args.only}
    return results.measure_each(
        specs, lambda name: run_model(specs[name], build, models_dir, work, args.quick, args.cross_check),
        lambda res: (f"{len(res['cases'])} cases, {results.refused(res)} refused by llama.cpp, "
                     f"fit-print mismatches {res['fit_print_mismatches']}, {res['runtime_s']} s"),
        lambda res: results.save_result(res, RESULTS_DIR))


if __name__ == "__main__":
    sys.exit(main())
