"""memfit against measured CUDA compute buffers: gpustack/gguf-parser-go's sweep.

gguf-parser-go's `testdata/llamacpp_compute_buffer_sweep.json` (repository gpustack/gguf-parser-go,
commit 71c933de5d22e6e7818f3d6f9c210252718679c7; MIT license) records the "CUDA0 compute buffer
size" llama.cpp c841aeeb8 (= b10687, 2026-08-29) reserved for one GGUF of each text architecture,
read from sched_reserve with

    llama-server -c <ctx> -fa on -ctk q8_0 -ctv q8_0 -b 2048 -ub 512 -np 1 -v

at a 4-layer offload (-ngl 4, "partial") and at a full offload (-ngl = block_count + 1), on an
NVIDIA GPU (file_estimate__llamacpp_test.go, TestGGUFFile_EstimateLLaMACppRun_MeasuredSweep). The
sweep records the repository and file, not the GGUF metadata, and this machine cannot reach the
Hub: a row is reproduced when its model's real shape is at hand, i.e. a validation spec of the
same model (validation/models/) or of a model with the same config (fine-tunes and renamed copies),
or a config added in validation/sweep_configs.py (validation/models-sweep/). The rest are listed
with the reason they are not.

memfit runs with what that command means for llama-server b10687: backend cuda, -ngl 4 / full,
FA on, q8_0 K and V, -b 2048 -ub 512, one slot with one logits row (n_outputs_max 1), llama_build
10687 (runtimes.toml: after per-slot outputs, before the mixed-embedding inputs; CUDA FA converts
the quantized K/V views to F16 inside the compute buffer).

    python -m validation.cuda_sweep            # prints the table; --write rewrites docs/accuracy-cuda-sweep.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

from validation.replay import spec_facts

DOC = REPO / "docs" / "accuracy-cuda-sweep.md"
SWEEP_SOURCE = ("gpustack/gguf-parser-go testdata/llamacpp_compute_buffer_sweep.json "
                "(commit 71c933de5d22e6e7818f3d6f9c210252718679c7)")
SWEEP_BUILD = 10687  # llama.cpp c841aeeb8, tag b10687
MiB = 1 << 20


@dataclass(frozen=True)
class SweepRow:
    arch: str
    repo: str
    file: str
    ctx: int
    full_layers: int
    partial_mib: float
    full_mib: float


@dataclass(frozen=True)
class Reproduction:
    spec_dir: str  # "models" or "models-sweep"
    spec: str
    how: str  # why the spec has this row's shape


# The sweep's rows memfit can reproduce exactly-shaped (values copied from the sweep file).
ROWS: dict[str, SweepRow] = {r.arch: r for r in [
    SweepRow("deepseek2", "unsloth/GLM-4.7-Flash-GGUF", "GLM-4.7-Flash-Q4_K_M.gguf", 4096, 48, 213.49, 99.38),
    SweepRow("gemma3", "ggml-org/gemma-3-1b-it-GGUF", "gemma-3-1b-it-Q4_K_M.gguf", 4096, 27, 59.29, 52.55),
    SweepRow("gemma2", "MaziyarPanahi/gemma-2-2b-it-GGUF", "gemma-2-2b-it.Q4_K_M.gguf", 4096, 27, 93.42, 75.55),
    SweepRow("olmoe", "bartowski/OLMoE-1B-7B-0924-Instruct-GGUF", "OLMoE-1B-7B-0924-Instruct-Q4_K_M.gguf", 4096, 17,
             172.37, 64.09),
    SweepRow("phi3", "MaziyarPanahi/Phi-3.5-mini-instruct-GGUF", "Phi-3.5-mini-instruct.Q4_K_M.gguf", 4096, 33,
             108.25, 70.01),
    SweepRow("qwen2", "Qwen/Qwen2.5-3B-Instruct-GGUF", "qwen2.5-3b-instruct-q4_k_m.gguf", 4096, 37, 96.68, 80.59),
    SweepRow("gpt-oss", "unsloth/gpt-oss-20b-GGUF", "gpt-oss-20b-Q4_K_M.gguf", 4096, 25, 219.73, 91.58),
    SweepRow("qwen3", "AnkitAI/Parable-Qwen3-4B-Claude-Fable-5-GGUF",
             "Parable-Qwen3-4B-Claude-Fable-5-GGUF-Q4_K_M.gguf", 4096, 37, 98.74, 79.09),
    SweepRow("qwen3moe", "unsloth/Qwen3-Coder-30B-A3B-Instruct-GGUF", "Qwen3-Coder-30B-A3B-Instruct-Q4_K_M.gguf",
             4096, 49, 224.53, 88.09),
    SweepRow("qwen3next", "bartowski/Qwen_Qwen3-Next-80B-A3B-Thinking-GGUF",
             "Qwen_Qwen3-Next-80B-A3B-Thinking-Q3_K_M.gguf", 4096, 49, 358.0, 86.28),
    SweepRow("qwen3vl", "mradermacher/Qwen3-VL-8B-Instruct-abliterated-GGUF",
             "Qwen3-VL-8B-Instruct-abliterated.Q4_K_M.gguf", 4096, 37, 152.07, 124.09),
    SweepRow("internlm2", "mradermacher/internlm2-base-7b-GGUF", "internlm2-base-7b.Q4_K_M.gguf", 4096, 33,
             137.56, 112.09),
    SweepRow("exaone", "lmstudio-community/EXAONE-3.5-7.8B-Instruct-GGUF", "EXAONE-3.5-7.8B-Instruct-Q4_K_M.gguf", 4096,
             33, 131.56, 112.09),
    SweepRow("qwen3vlmoe", "unsloth/Qwen3-VL-30B-A3B-Instruct-GGUF", "Qwen3-VL-30B-A3B-Instruct-Q4_K_M.gguf", 4096, 49,
             236.53, 96.59),
    SweepRow("qwen2vl", "unsloth/Qwen2.5-VL-7B-Instruct-GGUF", "Qwen2.5-VL-7B-Instruct-Q4_K_M.gguf", 4096, 29, 179.52,
             136.09),
    SweepRow("granitemoe", "bartowski/granite-3.1-3b-a800m-instruct-GGUF", "granite-3.1-3b-a800m-instruct-Q4_K_M.gguf",
             4096, 33, 73.02, 61.04),
    SweepRow("stablelm", "stabilityai/stablelm-2-zephyr-1_6b", "stablelm-2-zephyr-1_6b-Q4_0.gguf", 4096, 25, 69.04,
             52.04),
    SweepRow("starcoder2", "DevQuasar-9/bigcode.starcoder2-7b-GGUF", "bigcode.starcoder2-7b.Q4_K_M.gguf", 4096, 33,
             194.73, 67.09),
    SweepRow("phimoe", "bartowski/Phi-3.5-MoE-instruct-GGUF", "Phi-3.5-MoE-instruct-Q4_K_M.gguf", 4096, 33, 405.19,
             103.09),
    SweepRow("exaone4", "LGAI-EXAONE/EXAONE-4.0-1.2B-GGUF", "EXAONE-4.0-1.2B-Q4_K_M.gguf", 4096, 31, 42.5, 40.04),
    SweepRow("ernie4_5-moe", "bartowski/baidu_ERNIE-4.5-21B-A3B-Thinking-GGUF",
             "baidu_ERNIE-4.5-21B-A3B-Thinking-Q4_K_M.gguf", 4096, 29, 267.46, 91.09),
    SweepRow("seed_oss", "NousResearch/Hermes-4.3-36B-GGUF", "hermes-4_3_36b-Q4_K_M.gguf", 4096, 65, 208.04, 206.09),
]}

REPRODUCED: dict[str, Reproduction] = {
    "deepseek2": Reproduction("models", "glm-4.7-flash", "the same model (validation spec, Q4_K_M)"),
    "gemma3": Reproduction("models-sweep", "gemma-3-1b", "google/gemma-3-1b-it config (validation/sweep_configs.py)"),
    "gemma2": Reproduction("models-sweep", "gemma-2-2b", "google/gemma-2-2b-it config"),
    "olmoe": Reproduction("models-sweep", "olmoe-1b-7b", "allenai/OLMoE-1B-7B-0924-Instruct config"),
    "phi3": Reproduction("models-sweep", "phi-3.5-mini", "microsoft/Phi-3.5-mini-instruct config"),
    "qwen2": Reproduction("models-sweep", "qwen2.5-3b", "Qwen/Qwen2.5-3B-Instruct config"),
    "gpt-oss": Reproduction("models", "gpt-oss-20b", "the same model; the spec is MXFP4_MOE, the file Q4_K_M "
                            "(unsloth keeps the MXFP4 experts; only the partial-offload weight copy can differ)"),
    "qwen3": Reproduction("models-sweep", "qwen3-4b", "a Qwen3-4B fine-tune: Qwen/Qwen3-4B config"),
    "qwen3moe": Reproduction("models", "qwen3-30b-a3b", "Qwen3-Coder-30B-A3B has Qwen3-30B-A3B's config"),
    "qwen3next": Reproduction("models", "qwen3-next-80b-a3b", "Thinking and Instruct share the config; the spec "
                              "is Q4_K_M, the file Q3_K_M (partial offload's weight copy differs)"),
    "qwen3vl": Reproduction("models-sweep", "qwen3-vl-8b", "an abliterated Qwen3-VL-8B: Qwen/Qwen3-VL-8B-Instruct config"),
    "granitemoe": Reproduction("models-sweep", "granite-3.1-3b-a800m", "ibm-granite/granite-3.1-3b-a800m-instruct config"),
    "stablelm": Reproduction("models-sweep", "stablelm-2-1.6b", "the chat fine-tune of stablelm-2-1_6b: its config (Q4_0)"),
    "starcoder2": Reproduction("models-sweep", "starcoder2-7b", "bigcode/starcoder2-7b config"),
    "phimoe": Reproduction("models-sweep", "phi-3.5-moe", "microsoft/Phi-3.5-MoE-instruct config"),
    "exaone4": Reproduction("models-sweep", "exaone-4.0-1.2b", "LGAI-EXAONE/EXAONE-4.0-1.2B config"),
    "ernie4_5-moe": Reproduction("models-sweep", "ernie-4.5-21b-a3b", "the Thinking release of ERNIE-4.5-21B-A3B: its config"),
    "seed_oss": Reproduction("models-sweep", "seed-oss-36b", "a Seed-OSS-36B-Base fine-tune: the Seed-OSS-36B config"),
    "qwen2vl": Reproduction("models-sweep", "qwen2.5-vl-7b", "Qwen/Qwen2.5-VL-7B-Instruct config"),
    "qwen3vlmoe": Reproduction("models-sweep", "qwen3-vl-30b-a3b", "Qwen/Qwen3-VL-30B-A3B-Instruct config"),
    "exaone": Reproduction("models-sweep", "exaone-3.5-7.8b", "LGAI-EXAONE/EXAONE-3.5-7.8B-Instruct config"),
    "internlm2": Reproduction("models-sweep", "internlm2-7b", "InternLM2-7B's base stage: the internlm2-7b config"),
}

# Every other architecture of the sweep, with the reason it is not reproduced here.
NO_LAYOUT = "no tensor layout for this architecture in validation/layouts.py yet, and the model's config is not at hand"
ENCODER = "encoder / embedding / non-causal model: llama-server reserves for pooled embeddings; memfit does not size that buffer"
SPECIAL = "a graph memfit prices as an approximation (warned, ±30%): no exact comparison claimed"
NOT_REPRODUCED: dict[str, str] = {
    **{a: NO_LAYOUT for a in (
        "afmoe", "apertus", "arcee", "arwkv7", "baichuan", "bailingmoe", "bailingmoe2", "bitnet", "bloom",
        "chameleon", "chatglm", "codeshell", "cohere2", "cohere2moe", "command-r", "dbrx", "deci", "deepseek",
        "dots1", "ernie4_5", "falcon", "falcon-h1", "gemma3n",
        "gemma4", "glm4", "gpt2", "gptneox", "granite", "graniteswitch", "grovemoe",
        "hunyuan-dense", "hunyuan-moe", "hunyuan_vl", "jais", "jais2", "jamba", "kimi-linear",
        "laguna", "lfm2moe", "llama4", "maincoder", "mamba", "mamba2", "mellum", "minicpm", "minicpm3",
        "mistral3", "mistral4", "mpt", "muse-glimmer", "nanbeige", "nemotron", "nemotron_h", "nemotron_h_moe",
        "olmo", "olmo2", "openelm", "orion", "paddleocr", "pangu-embedded", "phi2",
        "plamo", "plamo2", "plamo3", "qwen", "qwen2moe", "qwen35", "qwen35moe", "qwen3tts",
        "refact", "rwkv6", "rwkv6qwen2", "rwkv7", "smallthinker", "smollm3",
        "starcoder", "talkie", "xverse", "clip")},
    # layouts known, configs searched for in the stored public repositories and pages:
    "llama": "HyperCLOVAX-SEED-Text-Instruct-1.5B: its config.json is not at hand (only model cards and code that "
             "downloads it); the layout is known",
    "lfm2": "LFM2.5-2.6B: a public suite gives 30 layers (22 convolution + 8 attention) and block_ff_dim 10752, not "
            "which layers attend, the heads or the vocabulary; another quotes a different 2.6B shape (28 layers of "
            "2560): not reproduced",
    "granitehybrid": "granite-4.0-h-micro: a suite quoting the published config gives 40 layers (attention at 5, 15, "
                     "25, 35), hidden 2048, 32/8 heads and the Mamba2 widths, not the vocabulary size, and another "
                     "fixture puts attention on every sixth layer: not reproduced",
    **{a: ENCODER for a in (
        "bert", "eurobert", "gemma-embedding", "jina-bert-v2", "jina-bert-v3", "llama-embed", "modern-bert",
        "neo-bert", "nomic-bert", "nomic-bert-moe", "t5encoder", "wavtokenizer-dec", "dream", "llada",
        "llada-moe", "rnd1")},
    **{a: SPECIAL for a in ("deepseek2-ocr", "deepseek32", "eagle3", "kimi-k3", "bailingmoe3")},
}


# Partial offload at ubatch 512: ggml-backend's scheduler runs a CPU-resident weight's matmul on the
# GPU (op_offload) only when the weight's buffer is host memory (ggml-backend.cpp
# ggml_backend_sched_backend_id_from_cur: ggml_backend_buffer_is_host); on x86 the CPU_REPACK buffer
# (is_host = nullptr) takes the Q4_K tensors (AVX2), not the Q6_K ones (ggml-cpu/repack.cpp
# ggml_repack_get_optimal_repack_type), so in a Q4_K_M file the copied weights are the Q6_K
# ffn_down / attn_v tensors. memfit adds the largest such copy on top of the full-offload peak.
PARTIAL_COPY_SHORT = "partial offload over-estimated: memfit adds the whole op_offload weight copy (note below)"
PARTIAL_COPY = ("Partial offload: memfit adds the largest CPU-resident weight (a Q6_K ffn_down in llama-quantize's "
                "Q4_K_M mix; on an x86 AVX2 host (the sweep does not record its CPU) the Q4_K tensors sit in the "
                "CPU_REPACK buffer, which is not host memory, so op_offload never copies them) to the full-offload "
                "peak. Measured partial minus full (memfit's copy in brackets): Qwen3-4B 19.6 MiB (19.5), "
                "gemma-2-2b 17.9 (16.6), Qwen2.5-3B 16.1 (17.6), Qwen2.5-VL-7B 43.4 (53.1), Qwen3-VL-8B 28.0 "
                "(39.4), InternLM2-7B 25.5 (45.9), EXAONE-3.5-7.8B 19.5 (45.9), Seed-OSS-36B 2.0 (110.7), "
                "Granite-3.1-3B-A800M 12.0 (24.6, a Q6_K ffn_down_exps): the whole copy shows above the peak for "
                "the small dense rows, part of it or almost none for the 7B+ rows and the MoE, as if the copy "
                "lived beside its own matmul's input and output rather than beside the peak phase. Not "
                "established from source here (no CUDA run at hand to check the scheduler's allocation); the "
                "full-offload buffers of these rows are within 5%; safe side")

# What is known about the rows outside the targets (measured on b11434's CPU backend with memprobe
# --server-mode on the same headers where that tells something).
MISSES: dict[str, str] = {
    "deepseek2": "MLA (GLM-4.7-Flash): memfit is 18% under at full offload on CUDA. memfit prices the attention "
                 "phase as three Q widths (20 heads x 576) + E + the K/V rows + the F16 copy of the latent K that "
                 "ggml-cuda's FA allocates (V is a view of it: fattn-common.cuh), about 39.5k floats per token "
                 "(81.1 MiB with the masks). What the absorbed path keeps live at once comes to less (the concat of "
                 "q_nope_absorbed and q_pe into Qcur, src/models/deepseek2.cpp; Qcur with the 20 x 512 FA output and "
                 "the K copy at the FA node, then wv_b and a ggml_cont, llama-graph.cpp build_attn_mha), yet the "
                 "measured 99.4 MiB needs about 9k more floats per token, the size of one more 20 x 512 tensor; "
                 "what else is allocated is not found in the source here",
    "phi3": "fused QKV with 32 KV heads: the F16 copies of a q8_0 MHA cache (48 MiB at 4096 cells) go on top of "
            "an attention phase modelled for separate Q/K/V; on the CPU memfit is within 5% (78.0 vs 82.0); safe side",
    "starcoder2": "partial offload under-estimated by memfit: measured partial minus full is 127.7 MiB, memfit adds the "
                  "largest CPU-resident weight, the Q6_K ffn_down (66.5 MiB). The ffn_down matmul offloaded to the GPU "
                  "holds that copy, its 18432-wide input copied from the CPU (36 MiB) and its output (9 MiB): 111.5 "
                  "MiB, near the difference, but the gated rows do not add that sum (Qwen3-4B: 19.6 MiB above full "
                  "against 43.5). Not established from source here; the full-offload buffer is exact (ungated GELU "
                  "FFN: one n_ff-wide activation, the GELU and the bias ADD run in place)",
    "exaone": PARTIAL_COPY_SHORT,
    "seed_oss": PARTIAL_COPY_SHORT,
    "granitemoe": PARTIAL_COPY_SHORT,
    "qwen3next": "partial offload copies the largest CPU-resident weight (an expert tensor) into the compute "
                 "buffer: memfit's spec is Q4_K_M, the measured file Q3_K_M",
}


def settings(row: SweepRow, layers: int):
    from planner.estimate_types import RunSettings

    return RunSettings(n_ctx=row.ctx, n_batch=2048, n_ubatch=512, n_parallel=1, n_outputs_max=1,
                       flash_attn="on", cache_type_k="q8_0", cache_type_v="q8_0", n_gpu_layers=layers,
                       backend="cuda", llama_build=SWEEP_BUILD)


def compare() -> list[dict]:
    from planner.estimator import estimate

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch, rep in sorted(REPRODUCED.items()):
            row = ROWS[arch]
            facts = spec_facts(rep.spec, Path(tmp), HERE / rep.spec_dir)
            full = estimate(facts, settings(row, row.full_layers)).device("gpu").compute_bytes / MiB
            part = estimate(facts, settings(row, 4)).device("gpu").compute_bytes / MiB
            out.append({"arch": arch, "row": row, "rep": rep, "full": full, "partial": part,
                        "full_err": (full - row.full_mib) / row.full_mib,
                        "partial_err": (part - row.partial_mib) / row.partial_mib})
    return out


def render(results: list[dict]) -> str:
    n = len(results)
    full10 = sum(abs(r["full_err"]) <= 0.10 for r in results)
    part15 = sum(abs(r["partial_err"]) <= 0.15 for r in results)
    total = len(ROWS) + len(NOT_REPRODUCED)
    lines = [
        "# Measured CUDA compute buffers: gguf-parser-go's sweep",
        "",
        "Generated by `python -m validation.cuda_sweep --write`. The measurements are gpustack/gguf-parser-go's",
        f"({SWEEP_SOURCE}): llama.cpp c841aeeb8 (b{SWEEP_BUILD}) on an NVIDIA GPU, `llama-server -c <ctx> -fa on",
        "-ctk q8_0 -ctv q8_0 -b 2048 -ub 512 -np 1`, CUDA0 compute buffer at `-ngl 4` (partial) and at full",
        "offload. memfit runs with the same settings, `backend=cuda`, `llama_build=10687`. **CUDA itself",
        "stays unmeasured by this repository** (no NVIDIA GPU was available to it): these are the only",
        "CUDA numbers memfit is checked against.",
        "",
        f"The sweep has {total} architectures. A row is reproduced when the real shape of its model is at",
        "hand: a validation spec of the same model or of a model with the same config (fine-tunes and",
        "renamed copies), or a config added in `validation/sweep_configs.py`, generated like every",
        "validation spec (BF16 conversion, then `llama-quantize --dry-run` for the file's quant) and",
        "checked by loading it in llama.cpp b11434. The sweep records repository and file only, and this",
        "machine cannot reach the Hub, so the other rows are not reproduced (reasons below).",
        "",
        f"## Reproduced rows: {n}",
        "",
        f"- full offload within 10%: **{full10}/{n}** (target: 90% of rows)",
        f"- partial offload (-ngl 4) within 15%: **{part15}/{n}**",
        "",
        "| architecture | file | memfit spec | full: measured | memfit | error | partial: measured | memfit | error |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        row, rep = r["row"], r["rep"]
        lines.append(f"| {r['arch']} | {row.repo}/{row.file} | `{rep.spec}` ({rep.how}) | {row.full_mib:.2f} | "
                     f"{r['full']:.2f} | {100 * r['full_err']:+.1f}% | {row.partial_mib:.2f} | {r['partial']:.2f} | "
                     f"{100 * r['partial_err']:+.1f}% |")
    misses = [r for r in results if abs(r["full_err"]) > 0.10 or abs(r["partial_err"]) > 0.15]
    if misses:
        lines += ["", "Rows outside the targets:", ""]
        lines += [f"- {r['arch']}: {MISSES.get(r['arch'], 'not analysed')}" for r in misses]
        if any(MISSES.get(r["arch"]) == PARTIAL_COPY_SHORT for r in misses):
            lines += ["", PARTIAL_COPY]
    lines += ["", "## Not reproduced", ""]
    by_reason: dict[str, list[str]] = {}
    for arch, why in sorted(NOT_REPRODUCED.items()):
        by_reason.setdefault(why, []).append(arch)
    for why, archs in by_reason.items():
        lines += [f"- {why} ({len(archs)}): " + ", ".join(f"`{a}`" for a in archs), ""]
    lines += [
        "Adding a row takes the model's config.json values (validation/sweep_configs.py) and, for an",
        "architecture validation/layouts.py does not know, its tensor list as llama.cpp's loader expects it.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"rewrite {DOC.relative_to(REPO)}")
    a = ap.parse_args(argv)
    text = render(compare())
    if a.write:
        DOC.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
