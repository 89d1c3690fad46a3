"""memfit (backend vulkan, llama-server's settings) against validation/results-vulkan-server/
(validation/vulkan_server_run.py): `section()` renders "Server mode on Vulkan" for
docs/accuracy-gpu.md (validation/compare_vulkan.py includes it)."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean

HERE = Path(__file__).resolve().parent

from validation.replay import measured_cases

RESULTS_DIR = HERE / "results-vulkan-server"
MiB = 1 << 20
VULKAN_BLOCK = 1 << 30


def settings(s: dict):
    from planner.estimate_types import RunSettings

    whole = s.get("set", "").endswith("whole-batch")
    return RunSettings(n_ctx=s["n_ctx"], n_batch=s["n_batch"], n_ubatch=s["n_ubatch"], n_parallel=s["n_parallel"],
                       kv_unified=s["kv_unified"], n_outputs_max=0 if whole else min(s["n_parallel"], s["n_batch"]),
                       flash_attn=s["flash_attn"], cache_type_k=s["cache_type_k"], cache_type_v=s["cache_type_v"],
                       repack=s["repack"], backend="vulkan", n_gpu_layers=-1)


def compare(results: list[dict]) -> list[dict]:
    from planner.estimator import estimate

    rows = []
    for res, facts, c in measured_cases(results):
        rec = c["llama"]
        b = estimate(facts, settings(c["settings"]))
        rows.append({
            "model": res["model"], "id": c["id"], "set": c["settings"].get("set", ""),
            "vk": rec["vulkan0"]["compute"], "host": rec["host"]["compute"],
            "mf": b.device("gpu").compute_bytes, "mf_host": b.device("host").compute_bytes,
            "kv_same": rec["kv_bytes"] + rec["recurrent_bytes"] == b.kv_bytes + b.recurrent_bytes,
            "out_same": rec["output_bytes"] == b.output_bytes,
            "chunked": rec["vulkan0"]["compute"] > VULKAN_BLOCK,
            # FA off with a score matrix above the driver's 4 GiB maxBufferSize: the op runs on the
            # CPU (docs: the cpu-kq regime), which memfit warns about
            "cpu_kq": any("4 GiB buffer limit" in w for w in b.warnings),
        })
    return rows


def section(results: list[dict] | None = None) -> list[str]:
    results = [json.loads(p.read_text()) for p in sorted(RESULTS_DIR.glob("*.json"))] if results is None else results
    if not results:
        return []
    rows = compare(results)
    plain = [r for r in rows if not r["chunked"] and not r["cpu_kq"] and not r["set"].startswith("rocm")]
    n_chunked = sum(r["chunked"] for r in rows)
    n_kq = sum(r["cpu_kq"] for r in rows)
    err = [(r["mf"] - r["vk"]) / r["vk"] for r in plain]
    herr = [(r["mf_host"] - r["host"]) / max(r["host"], 1) for r in plain]
    worst = max(range(len(plain)), key=lambda i: abs(err[i]))
    rocm = {r["set"]: r for r in rows if r["set"].startswith("rocm")}
    out = [
        "## Server mode on Vulkan",
        "",
        "llama-server's own reservation (memprobe `--server-mode`: `-np auto` = 4 unified slots, one logits row",
        "per slot) on this Vulkan build, every layer on Vulkan0 (`python -m validation.vulkan_server_run`):",
        f"{len(results)} models, {len(rows)} cases (np 1/2/4, unified and not, ub 512/1024, FA on/off, f16 and",
        "q8_0 at 16k).",
        "",
        f"- KV + recurrent identical in {sum(r['kv_same'] for r in rows)}/{len(rows)}, output buffer identical in "
        f"{sum(r['out_same'] for r in rows)}/{len(rows)};",
        f"- Vulkan0 compute (buffers under 1 GiB, {len(plain)} cases): within 5% in {sum(abs(e) <= 0.05 for e in err)}, "
        f"within 10% in {sum(abs(e) <= 0.10 for e in err)}, within 20% in {sum(abs(e) <= 0.20 for e in err)}; mean "
        f"{100 * mean(abs(e) for e in err):.1f}%, worst {100 * err[worst]:+.1f}% ({plain[worst]['model']} "
        f"`{plain[worst]['id']}`);",
        f"- host compute: mean {100 * mean(abs(e) for e in herr):.1f}%, worst {100 * max(herr, key=abs):+.1f}%;",
        f"- left out: {n_chunked} cases above Vulkan's 1 GiB buffer cap (chunked, ±100% stated) and {n_kq} FA-off",
        "  cases whose score matrix passes the 4 GiB maxBufferSize (run on the CPU; memfit warns), as above.",
        "",
    ]
    if rocm:
        srv, whole = rocm.get("rocm-log"), rocm.get("rocm-log-whole-batch")
        out += ["The ROCm log's settings (gpt-oss-120b, `-c 262144 -np 2 -ub 1024 -b 1024`, FA on) on b11434's Vulkan",
                "backend, MiB:", "", "| reservation | Vulkan0 compute | memfit | Vulkan_Host + CPU compute | memfit |",
                "| --- | ---: | ---: | ---: | ---: |"]
        for name, r in (("llama-server (one logits row per slot)", srv), ("whole-batch logits (before b9464)", whole)):
            if r:
                out.append(f"| {name} | {r['vk'] / MiB:,.1f} | {r['mf'] / MiB:,.1f} | {r['host'] / MiB:,.1f} | "
                           f"{r['mf_host'] / MiB:,.1f} |")
        out += ["", "b11434 places whole-batch logits above the masks on the device too (b9452 put them over the",
                "freed masks: the ROCm log's 796 MiB).", ""]
    return out


if __name__ == "__main__":
    print("\n".join(section()))
