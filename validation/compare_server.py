"""memfit's server-mode estimate (`memfit estimate --runtime llama.cpp@b11434`) against llama-server's own
reservation measured by validation/server_run.py (validation/results-server/*.json).

The estimator gets the settings `memfit estimate --runtime llama.cpp@b11434` derives from the same flags:
n_outputs_max = n_parallel (one logits row per slot), -np auto = 4 unified slots, backend cpu.
Targets (issue 11): KV and output identical in every case; CPU compute within 5% in 95% of the
cases and within 10% in all. `section()` renders the server-mode section of docs/accuracy.md
(validation/compare.py includes it); `python -m validation.compare_server` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import mean

HERE = Path(__file__).resolve().parent

from validation.results import load_results
from validation.replay import measured_cases

RESULTS_DIR = HERE / "results-server"
MiB = 1 << 20
EXACT = ("weights_bytes", "kv_bytes", "recurrent_bytes", "output_bytes")


@dataclass
class ServerRow:
    model: str
    case: dict
    llama: dict
    memfit: dict

    def rel(self, key: str) -> float:
        ref = self.llama[key]
        return 0.0 if ref == 0 and self.memfit[key] == 0 else (self.memfit[key] - ref) / ref


def server_settings(s: dict):
    """The RunSettings `memfit estimate` (tool server) builds from these llama-server flags."""
    from planner.estimate_types import RunSettings

    return RunSettings(
        n_ctx=s["n_ctx"], n_batch=s["n_batch"], n_ubatch=s["n_ubatch"], n_parallel=s["n_parallel"],
        kv_unified=s["kv_unified"], n_outputs_max=min(s["n_parallel"], s["n_batch"]),
        flash_attn=s["flash_attn"], cache_type_k=s["cache_type_k"], cache_type_v=s["cache_type_v"],
        repack=s["repack"], backend="cpu",
    )


def compare(results: list[dict]) -> list[ServerRow]:
    from planner.estimator import estimate

    rows: list[ServerRow] = []
    for res, facts, c in measured_cases(results):
        b = estimate(facts, server_settings(c["settings"]))
        got = {k: getattr(b, k) for k in EXACT} | {"compute_bytes": b.compute_bytes}
        rows.append(ServerRow(res["model"], c, c["llama"], got))
    return rows


def _pct(x: float) -> str:
    return f"{100 * x:+.2f}%"


def section(results: list[dict] | None = None) -> list[str]:
    results = load_results(RESULTS_DIR) if results is None else results
    if not results:
        return []
    rows = compare(results)
    n = len(rows)
    exact = {k: sum(r.llama[k] == r.memfit[k] for r in rows) for k in EXACT}
    errs = [abs(r.rel("compute_bytes")) for r in rows]
    w5 = sum(e <= 0.05 for e in errs)
    w10 = sum(e <= 0.10 for e in errs)
    worst = max(rows, key=lambda r: abs(r.rel("compute_bytes")))
    cross = [c for res in results for c in res["cases"] if "llama_server_agrees" in c]
    agree = sum(c["llama_server_agrees"] for c in cross)
    build = results[0]["llama_cpp"]
    out = [
        "## Server mode: llama-server's own reservation",
        "",
        "`memfit estimate --runtime llama.cpp@b11434` prices what llama-server b11434 allocates, which differs",
        "from llama-fit-params' reservation above (memfit's default runtime is conservative over the builds",
        "apps ship and keeps whole-batch logits, see Older builds): tools/server/server.cpp turns `-np auto` into 4 slots",
        "with a unified KV cache, and server-context.cpp reserves the compute graph for one logits row per",
        "slot (`n_outputs_max = min(n_batch, n_parallel)`, common/speculative.cpp",
        "`common_speculative_get_output_limits` without a draft model), so the layer phases, not the",
        "logits, set the peak. `python -m validation.server_run` measures it: memprobe `--server-mode`",
        "parses each case as llama-server does (LLAMA_EXAMPLE_SERVER) and applies those rules before the",
        "same no_alloc dry run; a few cases per model also start the real `llama-server` binary (CPU,",
        f"`-fit off`, no warmup) and compare the buffer sizes it logs: {agree}/{len(cross)} agree to the",
        "0.01 MiB it prints.",
        "",
        f"- llama.cpp {build['llama_cpp_build']} ({build['source']}), CPU backend; {len(results)} models, "
        f"**{n} cases**: np 1/2/4, unified and per-sequence KV, ub 512/1024/2048, FA on/off, KV f16/q8_0 at "
        "32k (clamped to the training context), the base settings at 4k and at the training context, `-np auto`, "
        "and the ROCm log's settings (gpt-oss-120b `-c 262144 -np 2 -fa on -ub 1024 -b 1024`, non-unified).",
        "- memfit: the RunSettings `memfit estimate --runtime llama.cpp@b11434` builds from the same flags "
        "(`n_outputs_max = n_parallel`).",
        "",
        "| component | target | cases meeting it |",
        "| --- | --- | ---: |",
        f"| weights | identical | {exact['weights_bytes']}/{n} |",
        f"| KV cache + recurrent state | identical | {min(exact['kv_bytes'], exact['recurrent_bytes'])}/{n} |",
        f"| output (logits) buffer | identical | {exact['output_bytes']}/{n} |",
        f"| compute (CPU) | within 5% in 95% | {w5}/{n} ({100 * w5 / n:.1f}%) |",
        f"| compute (CPU) | within 10% in 100% | {w10}/{n} |",
        "",
        f"Compute: mean absolute error {100 * mean(errs):.2f}%, worst {_pct(worst.rel('compute_bytes'))} "
        f"({worst.model} `{worst.case['id']}`, llama.cpp {worst.llama['compute_bytes'] / MiB:,.1f} MiB, "
        f"memfit {worst.memfit['compute_bytes'] / MiB:,.1f} MiB).",
        "",
        "| model | cases | KV+output identical | compute within 5% | within 10% | worst compute error | mean |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for res in results:
        mr = [r for r in rows if r.model == res["model"]]
        if not mr:
            continue
        ex = sum(all(r.llama[k] == r.memfit[k] for k in EXACT) for r in mr)
        e = [r.rel("compute_bytes") for r in mr]
        w = max(e, key=abs)
        out.append(f"| {res['model']} | {len(mr)} | {ex}/{len(mr)} | {sum(abs(x) <= 0.05 for x in e)} | "
                   f"{sum(abs(x) <= 0.10 for x in e)} | {_pct(w)} | {100 * mean(abs(x) for x in e):.2f}% |")
    bad = sorted((r for r in rows if abs(r.rel("compute_bytes")) > 0.05), key=lambda r: -abs(r.rel("compute_bytes")))
    if bad:
        out += ["", "Cases outside 5% (compute, MiB):", "",
                "| model | case | llama.cpp | memfit | error |", "| --- | --- | ---: | ---: | ---: |"]
        for r in bad[:25]:
            out.append(f"| {r.model} | `{r.case['id']}` | {r.llama['compute_bytes'] / MiB:,.2f} | "
                       f"{r.memfit['compute_bytes'] / MiB:,.2f} | {_pct(r.rel('compute_bytes'))} |")
    rocm = [r for r in rows if r.case["settings"].get("set") == "rocm-log"]
    if rocm:
        r = rocm[0]
        out += ["", f"The ROCm log's settings on b11434's CPU backend: llama.cpp {r.llama['compute_bytes'] / MiB:,.2f} MiB "
                f"compute (one buffer), memfit {r.memfit['compute_bytes'] / MiB:,.2f} MiB; KV "
                f"{r.llama['kv_bytes'] / MiB:,.2f} MiB and output {r.llama['output_bytes'] / MiB:,.2f} MiB identical. "
                "The ROCm log itself came from an older llama.cpp: see docs/accuracy-gpu.md, \"The ROCm log\"."]
    out.append("")
    return out


if __name__ == "__main__":
    print("\n".join(section()))
