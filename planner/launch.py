"""How to launch a recommendation: the llama-server command, LM Studio settings, Ollama lines,
the BIOS line and the kernel parameter / sysctl. Everything here is text built from a
Recommendation; nothing is decided here."""

from __future__ import annotations

import re
import shlex

from .archs import rule_for
from .device_schema import DeviceProfile
from .fit import FitConfig
from .plan_types import Commands, PlanModel, PlanVariant, Recommendation
from .units import fmt_bios_size


_LMS_KV = {"f16": "F16", "q8_0": "Q8_0", "q4_0": "Q4_0", "q4_1": "Q4_1", "q5_0": "Q5_0", "q5_1": "Q5_1",
           "iq4_nl": "IQ4_NL", "f32": "F32", "bf16": "BF16"}


def _model_flag(model: PlanModel, v: PlanVariant) -> tuple[str, str | None]:
    """(llama.cpp model argument, Ollama hf.co name or None for local files)."""
    if model.repo:
        ref = model.hf_tag(v.quant) if model.hf_tag else f"{model.repo}:{v.quant}"
        if ref:
            return f"-hf {ref}", f"hf.co/{ref}"
        return f"--hf-repo {model.repo} --hf-file {_quote(v.files[0])}", None
    path = v.files[0] if v.files else model.name
    return f"-m {_quote(path)}", None


OLLAMA_NAME_MAX = 80  # ollama types/model/name.go: a model name part is 1..80 of [A-Za-z0-9_.-]


def _ollama_slug(text: str) -> str:
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9._-]+", "-", text.lower())).strip("-._")


def _ollama_name(v: PlanVariant) -> str:
    """A name `ollama create` accepts: allowed characters only, at most 80 long (the quant tag
    kept at the end when a long file name has to be cut)."""
    stem = v.files[0].replace("\\", "/").rsplit("/", 1)[-1] if v.files else v.quant
    name = _ollama_slug(stem.removesuffix(".gguf").removesuffix(".GGUF")) or "model"
    if len(name) <= OLLAMA_NAME_MAX:
        return name
    tag = _ollama_slug(v.quant)[:OLLAMA_NAME_MAX // 2]
    if tag and name.endswith(tag):
        head = name[:OLLAMA_NAME_MAX - len(tag) - 1].rstrip("-._")
        return f"{head}-{tag}"
    return name[:OLLAMA_NAME_MAX].rstrip("-._")


_SHELL_SAFE = re.compile(r"[^\w@%+=:,./-]")


def _quote(s: str) -> str:
    """A path as one shell word: double quotes where they are enough (they also work in
    PowerShell and cmd), single quotes (POSIX) when the path holds $, `, \\, ! or a double quote."""
    if not s or _SHELL_SAFE.search(s):
        return shlex.quote(s) if any(ch in s for ch in '"$`\\!') else f'"{s}"'
    return s


def build_commands(model: PlanModel, v: PlanVariant, rec: Recommendation, profile: DeviceProfile,
                   cfg: FitConfig) -> Commands:
    model_arg, ollama_name = _model_flag(model, v)
    parts = ["llama-server", model_arg, f"-c {rec.ctx}"]
    if rec.tier == "partial_offload" and rec.n_gpu_layers >= 0:
        parts.append(f"-ngl {rec.n_gpu_layers}")
    else:
        parts.append("-ngl 999")
    if rec.n_cpu_moe:
        parts.append(f"--n-cpu-moe {rec.n_cpu_moe}")
    parts.append("-fa on" if rec.flash_attn else "-fa off")
    if rec.cache_type_k != "f16":
        parts.append(f"-ctk {rec.cache_type_k}")
    if rec.cache_type_v != "f16":
        parts.append(f"-ctv {rec.cache_type_v}")
    # always explicit: without -np, llama-server runs 4 slots with a unified KV cache ("auto"),
    # which holds more SWA cells and recurrent states than the plan priced
    parts.append(f"-np {rec.n_parallel}")
    if rule_for(v.headers.architecture).no_output_head:
        parts.append("--embeddings")  # an encoder: llama-server serves it on /embedding only
    if rec.no_mmap:
        parts.append("--no-mmap")
    if model.projector:
        if rec.mmproj and not model.repo:
            parts.append(f"--mmproj {_quote(model.projector.path or model.projector.name)}")
        elif not rec.mmproj:
            parts.append("--no-mmproj")
    llama = " ".join(parts)

    n_layer = rec.n_layer
    if rec.tier == "partial_offload" and rec.n_gpu_layers >= 0:
        offload = f"{rec.n_gpu_layers} / {n_layer} layers"
    else:
        offload = f"max ({n_layer} / {n_layer} layers)"
    lms = {"GPU Offload": offload, "Context Length": str(rec.ctx),
           "Flash Attention": "on" if rec.flash_attn else "off"}
    if rec.cache_type_k != "f16" or rec.cache_type_v != "f16":
        lms["K Cache Quantization Type"] = _LMS_KV.get(rec.cache_type_k, rec.cache_type_k)
        lms["V Cache Quantization Type"] = _LMS_KV.get(rec.cache_type_v, rec.cache_type_v)
    if rec.n_cpu_moe:
        lms["Number of layers for which to force MoE weights onto CPU"] = str(rec.n_cpu_moe)
    if rec.no_mmap:
        lms["Try mmap()"] = "off"
    if rec.keep_in_memory_ok is False:
        # LM Studio passes it to llama.cpp as --mlock: the whole file stays in RAM beside the GPU copy
        lms["Keep Model in Memory"] = "off"
    layers_on_gpu = rec.tier != "partial_offload" or rec.n_gpu_layers < 0
    gpu = "max" if layers_on_gpu else f"{max(0.0, rec.n_gpu_layers / max(1, n_layer)):.2f}"
    lms["lms"] = f"lms load <model> --gpu {gpu} --context-length {rec.ctx}"

    env = []
    if rec.flash_attn:
        env.append("OLLAMA_FLASH_ATTENTION=1")
    if rec.cache_type_k != "f16":
        env.append(f"OLLAMA_KV_CACHE_TYPE={rec.cache_type_k}")
    env.append(f"OLLAMA_CONTEXT_LENGTH={rec.ctx}")
    env.append(f"OLLAMA_NUM_PARALLEL={rec.n_parallel}")  # each parallel slot is priced, so pin it
    params = [f"num_ctx {rec.ctx}"]
    if rec.tier == "partial_offload" and rec.n_gpu_layers >= 0:
        params.append(f"num_gpu {rec.n_gpu_layers}")
    ollama = [" ".join(env) + " ollama serve"]
    if ollama_name:
        ollama.append(f"ollama run {ollama_name}")
        ollama.append("in the session: " + "; ".join(f"/set parameter {p}" for p in params))
    else:
        name = _ollama_name(v)
        lines = [f"FROM {v.files[0] if v.files else model.name}"] + [f"PARAMETER {p}" for p in params]
        # printf '%s\\n' with quoted lines: any path (quotes, %, backslashes) survives the shell
        ollama.append(f"printf '%s\\n' {' '.join(shlex.quote(x) for x in lines)} > Modelfile && "
                      f"ollama create {name} -f Modelfile")
        ollama.append(f"ollama run {name}")
    if len(v.files) > 1:
        ollama.append("note: Ollama cannot load split GGUF files; merge them first (llama-gguf-split --merge)")

    bios = None
    if rec.carveout_bytes is not None and profile.carveout is not None:
        bios = (f"UMA frame buffer {fmt_bios_size(rec.carveout_bytes)}, OS keeps {fmt_bios_size(rec.os_keeps_bytes)}\n"
                f"{profile.carveout.how_to_change}")
    cap = rec.cap_change.setting if rec.cap_change else None
    return Commands(llama_server=llama, lm_studio=lms, ollama=ollama, bios=bios, cap=cap)

