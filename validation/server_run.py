"""llama-server's own reservation, measured: the server-mode grid for every validation model.

llama-server does not reserve what llama-fit-params does. tools/server/server.cpp turns `-np auto`
(its default) into 4 slots with a unified KV cache, and server-context.cpp sets n_outputs_max =
min(n_batch, n_parallel) (one logits row per slot, common_speculative_get_output_limits without a
draft), so its compute graph is reserved for one output per sequence instead of the whole ubatch:
the layer phases, not the logits, decide the peak. memprobe's `--server-mode` (validation/probe/
memprobe.cpp) parses each line as llama-server does (LLAMA_EXAMPLE_SERVER) and applies exactly those
rules before the same no_alloc dry run; a few cases are also run through the real `llama-server`
binary (CPU, -fit off, no warmup) and its logged buffer sizes compared (`server_cross_check`).

Grid per model (specs from validation/models/, never regenerated here): np 1/2/4, unified and not
(np > 1), ub 512/1024/2048, FA on/off, KV f16 and q8_0 (q8_0 without FA = K q8_0 + V f16; none for
MLA models), at a 32k context (clamped to the training context); the base settings at 4k and at
the training context (128k cap); -np auto; and ROCM_LOG_CASE, the settings of the ROCm log in
issue 11 (gpt-oss-120b, -c 262144 -np 2, FA on, -ub 1024 -b 1024, non-unified).

    python -m validation.server_run [--llama-bin DIR] [--only MODEL ...] [--cross-check N]

Writes validation/results-server/<model>.json; validation/compare_server.py compares.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from itertools import product
from pathlib import Path

HERE = Path(__file__).resolve().parent

from validation import results
from validation.build_llamacpp import DEFAULT_CACHE, LlamaBuild, ensure_build
from validation.modelgen import all_specs, write_model
from validation.run_llamacpp import (
    _contexts, _is_mla, _probe_record, _spec_digest, unique_cases,
)

RESULTS_DIR = HERE / "results-server"
UBATCHES = (512, 1024, 2048)
PARALLEL = (1, 2, 4)
BASE = {"n_ctx": 32768, "flash_attn": "on", "cache_type_k": "f16", "cache_type_v": "f16", "n_ubatch": 512,
        "n_batch": 2048, "n_parallel": 1, "kv_unified": False, "np_auto": False, "repack": False, "set": "server"}
# The ROCm log of issue 11 (ollama/ollama#16416, Ollama 0.30.0 = llama.cpp b9452): the same settings
# on b11434's llama-server (the build difference is the subject of planner/data/runtimes.toml).
ROCM_LOG_CASE = {"model": "gpt-oss-120b", "n_ctx": 262144, "n_parallel": 2, "kv_unified": False,
                 "flash_attn": "on", "n_ubatch": 1024, "n_batch": 1024}


def _case(**over) -> dict:
    c = dict(BASE)
    c.update(over)
    return c


def _kv_pairs(fa: str, mla: bool) -> list[tuple[str, str]]:
    pairs = [("f16", "f16")]
    if fa == "on":
        pairs.append(("q8_0", "q8_0"))
    elif not mla:
        pairs.append(("q8_0", "f16"))  # llama.cpp refuses a quantized V cache without FA
    return pairs


def server_cases(spec: dict) -> list[dict]:
    ctxs = _contexts(spec)
    mid = min(32768, ctxs[-1])
    mla = _is_mla(spec)
    cases = []
    for np_, unified, ub, fa in product(PARALLEL, (False, True), UBATCHES, ("on", "off")):
        if np_ == 1 and unified:
            continue  # one sequence: one stream either way
        for k, v in _kv_pairs(fa, mla):
            cases.append(_case(n_ctx=mid, n_parallel=np_, kv_unified=unified, n_ubatch=ub, flash_attn=fa,
                               cache_type_k=k, cache_type_v=v))
    for ctx, fa in product(sorted({min(4096, ctxs[-1]), ctxs[-1]}), ("on", "off")):
        cases.append(_case(n_ctx=ctx, flash_attn=fa))
        cases.append(_case(n_ctx=ctx, flash_attn=fa, n_parallel=4, kv_unified=True))
    cases.append(_case(n_ctx=mid, np_auto=True, n_parallel=4, kv_unified=True, flash_attn="auto"))
    if spec["name"] == ROCM_LOG_CASE["model"]:
        rc = {k: v for k, v in ROCM_LOG_CASE.items() if k != "model"}
        cases.append(_case(**rc, set="rocm-log"))
    return unique_cases(cases, case_id)


def case_id(c: dict) -> str:
    kv = c["cache_type_k"] if c["cache_type_k"] == c["cache_type_v"] else f"{c['cache_type_k']}-{c['cache_type_v']}"
    np_ = "npauto" if c["np_auto"] else f"np{c['n_parallel']}"
    parts = ["srv", f"c{c['n_ctx']}", f"fa-{c['flash_attn']}", f"kv-{kv}", f"ub{c['n_ubatch']}", np_]
    if c["n_batch"] != BASE["n_batch"]:
        parts.append(f"b{c['n_batch']}")
    if c["kv_unified"] and not c["np_auto"]:
        parts.append("kvu")
    return "_".join(parts)


def cli_args(c: dict, model: str) -> list[str]:
    """llama-server flags for a case (memprobe --server-mode and llama-server take the same)."""
    args = ["-m", model, "-c", str(c["n_ctx"]), "-fa", c["flash_attn"], "-ctk", c["cache_type_k"],
            "-ctv", c["cache_type_v"], "-ub", str(c["n_ubatch"]), "-b", str(c["n_batch"])]
    if not c["np_auto"]:
        args += ["-np", str(c["n_parallel"]), "-kvu" if c["kv_unified"] else "-no-kvu"]
    if not c["repack"]:
        args.append("-nr")
    return args


def run_probe(build: LlamaBuild, model_path: Path, cases: list[dict], workdir: Path) -> list[dict]:
    cases_file = workdir / f"{model_path.stem}.server.cases"
    cases_file.write_text("".join("--server-mode " + " ".join(cli_args(c, str(model_path))) + "\n" for c in cases))
    proc = subprocess.run([str(build.probe), str(cases_file)], capture_output=True, text=True, errors="replace")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or len(lines) != len(cases):
        raise RuntimeError(f"memprobe failed on {model_path.name} (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    out = []
    for ln in lines:
        raw = json.loads(ln)
        rec = _probe_record(raw)
        if "error" not in rec:
            rec.update({k: raw[k] for k in ("n_outputs_max", "kv_unified", "server_mode")})
        out.append(rec)
    return out


# --- the real llama-server, for a few cases ----------------------------------------------------

_BUF = re.compile(r"(\w+)\s+(compute|KV|output|RS) buffer size =\s+([\d.]+) MiB")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_llama_server(build: LlamaBuild, model_path: Path, case: dict, timeout: float = 120.0) -> dict:
    """Start llama-server on 127.0.0.1 (CPU, no warmup, -fit off), wait for its context to be
    created, read the buffer sizes it logs (MiB, 2 decimals), stop it."""
    cmd = [str(build.bin_dir / "llama-server"), *cli_args(case, str(model_path)), "--host", "127.0.0.1",
           "--port", str(_free_port()), "--no-warmup", "-fit", "off", "-t", "2", "--no-mmproj", "-v"]  # -v: buffer sizes are logged at info
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    log: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            if "listening on" in line or "failed to" in line or time.monotonic() > deadline:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = "".join(log)
    bufs: dict[str, float] = {}
    for m in _BUF.finditer(text):
        bufs[f"{m.group(1)} {m.group(2)}"] = bufs.get(f"{m.group(1)} {m.group(2)}", 0.0) + float(m.group(3))
    if not bufs:
        return {"error": text[-1500:]}
    n_out = re.search(r"n_outputs_max\s*=\s*(\d+)", text)
    return {"buffers_mib": bufs, "n_outputs_max": int(n_out.group(1)) if n_out else None}


def cross_check(rec: dict, server: dict) -> bool:
    """memprobe's bytes printed as llama-server prints them (MiB, 2 decimals)."""
    if "error" in server or "error" in rec:
        return False
    got = server["buffers_mib"]
    want_compute = round(rec["compute_bytes"] / 2**20, 2)
    want_out = round(rec["output_bytes"] / 2**20, 2)
    return (abs(got.get("CPU compute", -1) - want_compute) <= 0.01
            and abs(got.get("CPU output", -1) - want_out) <= 0.01)


def run_model(spec: dict, build: LlamaBuild, models_dir: Path, work: Path, n_cross: int) -> dict:
    t0 = time.monotonic()
    path = write_model(spec, models_dir / f"{spec['name']}-{spec['quant']}.gguf")
    cases = server_cases(spec)
    records = run_probe(build, path, cases, work)
    out_cases = []
    # cross-check the smallest contexts first (the real server clears its KV buffer: real memory)
    order = sorted(range(len(cases)), key=lambda i: (cases[i]["n_ctx"] * max(1, cases[i]["n_parallel"]), i))
    checked = set(order[:n_cross])
    mism = 0
    for i, (c, rec) in enumerate(zip(cases, records)):
        entry = {"id": c["id"], "settings": {k: v for k, v in c.items() if k != "id"},
                 "args": " ".join(cli_args(c, "MODEL.gguf")), "llama": rec}
        if i in checked and "error" not in rec:
            srv = run_llama_server(build, path, c)
            entry["llama_server"] = srv
            entry["llama_server_agrees"] = cross_check(rec, srv)
            mism += not entry["llama_server_agrees"]
        out_cases.append(entry)
    return {
        "model": spec["name"], "hf_repo": spec["hf_repo"], "quant": spec["quant"],
        "spec": f"validation/models/{spec['name']}.json", "spec_sha256": _spec_digest(spec["name"]),
        "llama_cpp": build.as_dict(), "mode": "llama-server (memprobe --server-mode)",
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "runtime_s": round(time.monotonic() - t0, 2), "llama_server_mismatches": mism, "cases": out_cases,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bin", type=Path, help="reuse this llama.cpp build (its bin/ directory)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--cross-check", type=int, default=2, help="cases per model also run through llama-server")
    args = ap.parse_args(argv)
    build = ensure_build(args.llama_bin, args.cache)
    models_dir, work = args.cache / "models", args.cache / "work"
    models_dir.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    specs = {spec["name"]: spec for spec in all_specs() if not args.only or spec["name"] in args.only}
    return results.measure_each(
        specs, lambda name: run_model(specs[name], build, models_dir, work, args.cross_check),
        lambda res: (f"{len(res['cases'])} server cases, {results.refused(res)} refused, llama-server mismatches "
                     f"{res['llama_server_mismatches']}, {res['runtime_s']} s"),
        lambda res: results.save_result(res, RESULTS_DIR))


if __name__ == "__main__":
    sys.exit(main())
