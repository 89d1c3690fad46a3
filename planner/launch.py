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


def _llama_and_lms(model: PlanModel, v: PlanVariant, rec: Recommendation) -> tuple[str, dict[str, str]]:
    model_arg, _ = _model_flag(model, v)
    parts = ["llama-server", model_arg, f"-c {rec.ctx}"]
    if rec.tier == "cpu_only":
        parts.append("-ngl 0")  # a CPU-only machine: no layer to offload
    elif rec.tier == "partial_offload" and rec.n_gpu_layers >= 0:
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
    if rec.rope_flags:
        parts.append(rec.rope_flags)
    if model.projector:
        if rec.mmproj and not model.repo:
            parts.append(f"--mmproj {_quote(model.projector.path or model.projector.name)}")
        elif not rec.mmproj:
            parts.append("--no-mmproj")
    llama = " ".join(parts)

    n_layer = rec.n_layer
    if rec.tier == "cpu_only":
        offload = f"0 / {n_layer} layers (CPU only)"
    elif rec.tier == "partial_offload" and rec.n_gpu_layers >= 0:
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
    if rec.tier == "cpu_only":
        gpu = "off"
    lms_model = model.lmstudio_name or "<model>"
    lms["lms"] = f"lms load {lms_model} --gpu {gpu} --context-length {rec.ctx}"
    if rec.rope_flags:
        lms["note"] = "LM Studio has no YaRN setting: past the trained context run the llama-server line"
    return llama, lms


def _ollama_lines(model: PlanModel, v: PlanVariant, rec: Recommendation, ollama_name: str | None) -> list[str]:
    """Ollama's lines, and what they cannot do that the llama-server line does: Ollama has no
    per-expert CPU offload (whole layers only, num_gpu), no rope-scaling flags, no split GGUFs,
    and splits layers by its own estimate unless num_gpu pins it."""
    env = []
    if rec.flash_attn:
        env.append("OLLAMA_FLASH_ATTENTION=1")
    if rec.cache_type_k != "f16":
        env.append(f"OLLAMA_KV_CACHE_TYPE={rec.cache_type_k}")
    env.append(f"OLLAMA_CONTEXT_LENGTH={rec.ctx}")
    env.append(f"OLLAMA_NUM_PARALLEL={rec.n_parallel}")  # each parallel slot is priced, so pin it
    params = [f"num_ctx {rec.ctx}"]
    notes = []
    whole = rec.whole_layer_split
    if rec.n_cpu_moe and whole is not None:
        if whole.n_gpu_layers > 0:
            params.append(f"num_gpu {whole.n_gpu_layers}")
            speed = f" (~{whole.est_tps:.0f} t/s instead of ~{rec.est_tps_at_ctx or rec.est_tps or 0:.0f})" if whole.est_tps else ""
            notes.append(f"note: Ollama has no per-expert CPU offload (--n-cpu-moe); num_gpu "
                         f"{whole.n_gpu_layers} keeps whole layers on the GPU instead{speed}")
        else:
            notes.append("note: Ollama has no per-expert CPU offload (--n-cpu-moe) and no whole-layer split "
                         "fits here: use the llama-server line")
    elif rec.tier == "partial_offload" and rec.n_gpu_layers >= 0:
        params.append(f"num_gpu {rec.n_gpu_layers}")
    elif rec.tier == "cpu_only":
        params.append("num_gpu 0")
    elif rec.tier != "no_fit":
        # Ollama's own estimator may keep layers on the CPU where this plan fits them all
        # (an M3 Pro 36 GB ran gpt-oss:20b at 131072 split 16%/84% CPU/GPU): pin every layer
        params.append("num_gpu 999")
    if rec.rope_flags:
        notes.append("note: Ollama takes no YaRN flags: past the trained context use the llama-server line")
    lines = [" ".join(env) + " ollama serve"]
    if ollama_name:
        lines.append(f"ollama run {ollama_name}")
        lines.append("in the session: " + "; ".join(f"/set parameter {p}" for p in params))
    else:
        name = _ollama_name(v)
        body = [f"FROM {v.files[0] if v.files else model.name}"] + [f"PARAMETER {p}" for p in params]
        # printf '%s\\n' with quoted lines: any path (quotes, %, backslashes) survives the shell
        lines.append(f"printf '%s\\n' {' '.join(shlex.quote(x) for x in body)} > Modelfile && "
                     f"ollama create {name} -f Modelfile")
        lines.append(f"ollama run {name}")
    if len(v.files) > 1:
        lines.append("note: Ollama cannot load split GGUF files; merge them first (llama-gguf-split --merge)")
    return lines + notes


def build_commands(model: PlanModel, v: PlanVariant, rec: Recommendation, profile: DeviceProfile,
                   cfg: FitConfig) -> Commands:
    llama, lms = _llama_and_lms(model, v, rec)
    ollama_name = model.ollama_name or _model_flag(model, v)[1]
    ollama = _ollama_lines(model, v, rec, ollama_name)

    bios = None
    if rec.carveout_bytes is not None and profile.carveout is not None:
        bios = (f"UMA frame buffer {fmt_bios_size(rec.carveout_bytes)}, OS keeps {fmt_bios_size(rec.os_keeps_bytes)}\n"
                f"{profile.carveout.how_to_change}")
    cap = rec.cap_change.setting if rec.cap_change else None
    return Commands(llama_server=llama, lm_studio=lms, ollama=ollama, bios=bios, cap=cap)

