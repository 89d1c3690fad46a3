"""How to launch a recommendation: the llama-server command, LM Studio's settings (each with why),
Ollama's lines (one-off and for the app), the BIOS line and the kernel parameter / sysctl.
Everything here is text built from a Recommendation, in the syntax of the user's shell
(planner/shells.py) and with the flags of the llama.cpp build planned for (planner/llama_args.py);
nothing is decided here."""

from __future__ import annotations

import re

from .archs import is_encoder
from .device_schema import DeviceProfile
from .llama_args import no_mmap_flag
from .plan_types import Commands, PlanModel, PlanVariant, Recommendation
from .shells import Shell, ShellName, ollama_persist_lines, shell
from .units import fmt_bios_size
from .vocab import LMSTUDIO_CACHE_NAMES

OLLAMA_NAME_MAX = 80  # ollama types/model/name.go: a model name part is 1..80 of [A-Za-z0-9_.-]


def _model_args(model: PlanModel, v: PlanVariant, sh: Shell) -> tuple[list[str], str | None]:
    """(llama.cpp model arguments, Ollama hf.co name or None for local files)."""
    if model.repo:
        ref = model.hf_tag(v.quant) if model.hf_tag else f"{model.repo}:{v.quant}"
        if ref:
            return ["-hf", sh.quote(ref)], f"hf.co/{ref}"
        return ["--hf-repo", sh.quote(model.repo), "--hf-file", sh.quote(v.files[0])], None
    return ["-m", sh.quote(v.files[0] if v.files else model.name)], None


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


def _gpu_layers(rec: Recommendation) -> int:
    """-ngl for the plan: 0 on the CPU, N for a whole-layer split, 999 (all) otherwise."""
    if rec.tier == "cpu_only":
        return 0
    if rec.tier == "partial_offload" and rec.n_gpu_layers >= 0:
        return rec.n_gpu_layers
    return 999


def llama_server_words(model: PlanModel, v: PlanVariant, rec: Recommendation, sh: Shell,
                       llama_build: int | None) -> list[str]:
    """The llama-server command as words (flags with their values), valid for `llama_build`."""
    model_args, _ = _model_args(model, v, sh)
    words = ["llama-server", *model_args, "-c", str(rec.ctx), "-ngl", str(_gpu_layers(rec))]
    if rec.n_cpu_moe:
        words += ["--n-cpu-moe", str(rec.n_cpu_moe)]
    words += ["-fa", "on" if rec.flash_attn else "off"]
    if rec.cache_type_k != "f16":
        words += ["-ctk", rec.cache_type_k]
    if rec.cache_type_v != "f16":
        words += ["-ctv", rec.cache_type_v]
    # always explicit: without -np, llama-server runs 4 slots with a unified KV cache ("auto"),
    # which holds more SWA cells and recurrent states than the plan priced
    words += ["-np", str(rec.n_parallel)]
    if is_encoder(v.headers.architecture):
        words.append("--embeddings")  # an encoder: llama-server serves it on /embedding only
    if rec.no_mmap:
        words += no_mmap_flag(llama_build)
    if rec.rope_flags:
        words += rec.rope_flags.split()
    if model.projector:
        if rec.mmproj and not model.repo:
            words += ["--mmproj", sh.quote(model.projector.path or model.projector.name)]
        elif not rec.mmproj:
            words.append("--no-mmproj")
    return words


def _lm_studio(model: PlanModel, rec: Recommendation, sh: Shell) -> tuple[dict[str, str], dict[str, str]]:
    """LM Studio's load settings for this plan and, per setting, why."""
    n_layer = rec.n_layer
    s: dict[str, str] = {}
    why: dict[str, str] = {}
    if rec.tier == "cpu_only":
        s["GPU Offload"], why["GPU Offload"] = f"0 / {n_layer} layers", "no GPU in use: the model runs from system RAM"
    elif rec.tier == "partial_offload" and rec.n_gpu_layers >= 0:
        s["GPU Offload"] = f"{rec.n_gpu_layers} / {n_layer} layers"
        why["GPU Offload"] = "the rest of the layers do not fit in GPU memory at this context"
    else:
        s["GPU Offload"] = f"max ({n_layer} / {n_layer} layers)"
        why["GPU Offload"] = ("every layer on the GPU; the experts of some stay on the CPU (below)" if rec.n_cpu_moe
                              else "the whole model fits in GPU memory")
    s["Context Length"], why["Context Length"] = str(rec.ctx), "the context this plan sized the KV cache for"
    s["Flash Attention"] = "on" if rec.flash_attn else "off"
    why["Flash Attention"] = ("smaller compute buffers; a quantized V cache needs it" if rec.flash_attn
                              else "this model or backend runs without it")
    if rec.tier not in ("cpu_only", "no_fit"):
        s["Offload KV Cache to GPU Memory"] = "on"
        why["Offload KV Cache to GPU Memory"] = "the plan keeps the KV cache on the GPU (off would move it to RAM)"
    if rec.cache_type_k != "f16" or rec.cache_type_v != "f16":
        s["K Cache Quantization Type"] = LMSTUDIO_CACHE_NAMES.get(rec.cache_type_k, rec.cache_type_k)
        s["V Cache Quantization Type"] = LMSTUDIO_CACHE_NAMES.get(rec.cache_type_v, rec.cache_type_v)
        why["K Cache Quantization Type"] = why["V Cache Quantization Type"] = \
            "halves the KV cache so this context fits (an f16 cache does not)"
    if rec.n_cpu_moe:
        s["Number of layers for which to force MoE weights onto CPU"] = str(rec.n_cpu_moe)
        why["Number of layers for which to force MoE weights onto CPU"] = \
            "the experts of these layers stay in system RAM (llama.cpp --n-cpu-moe)"
    s["Try mmap()"] = "off" if rec.no_mmap else "on"
    why["Try mmap()"] = ("the file would otherwise pass through a page cache the OS side cannot hold" if rec.no_mmap
                         else "loading through the page cache fits beside the model")
    if rec.keep_in_memory_ok is not None:
        s["Keep Model in Memory"] = "on" if rec.keep_in_memory_ok else "off"
        why["Keep Model in Memory"] = ("it locks a second copy of the weights in RAM (--mlock), which would push the "
                                       "OS under its reserve" if not rec.keep_in_memory_ok else
                                       "its second copy of the weights in RAM still leaves the OS its reserve")
    layers_on_gpu = rec.tier != "partial_offload" or rec.n_gpu_layers < 0
    gpu = "max" if layers_on_gpu else f"{max(0.0, rec.n_gpu_layers / max(1, n_layer)):.2f}"
    if rec.tier == "cpu_only":
        gpu = "off"
    lms_model = sh.quote(model.lmstudio_name) if model.lmstudio_name else "<model>"
    s["lms"] = f"lms load {lms_model} --gpu {gpu} --context-length {rec.ctx}"
    if rec.rope_flags:
        s["note"] = "LM Studio has no YaRN setting: past the trained context run the llama-server line"
    return s, why


def _ollama_settings(rec: Recommendation) -> tuple[dict[str, str], list[str], list[str]]:
    """(server environment, model parameters, notes): what differs from the llama-server line is
    said, since Ollama has no per-expert CPU offload (whole layers only, num_gpu), no rope-scaling
    flags, no split GGUFs, and splits layers by its own estimate unless num_gpu pins it."""
    env: dict[str, str] = {}
    if rec.flash_attn:
        env["OLLAMA_FLASH_ATTENTION"] = "1"
    if rec.cache_type_k != "f16":
        env["OLLAMA_KV_CACHE_TYPE"] = rec.cache_type_k
    env["OLLAMA_CONTEXT_LENGTH"] = str(rec.ctx)
    env["OLLAMA_NUM_PARALLEL"] = str(rec.n_parallel)  # each parallel slot is priced, so pin it
    params = [f"num_ctx {rec.ctx}"]
    notes: list[str] = []
    whole = rec.whole_layer_split
    if rec.n_cpu_moe and whole is not None:
        if whole.n_gpu_layers > 0:
            params.append(f"num_gpu {whole.n_gpu_layers}")
            speed = (f" (~{whole.est_tps:.0f} t/s instead of ~{rec.est_tps_at_ctx or rec.est_tps or 0:.0f})"
                     if whole.est_tps else "")
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
    return env, params, notes


def _ollama_lines(model: PlanModel, v: PlanVariant, rec: Recommendation, ollama_name: str | None,
                  sh: Shell) -> list[str]:
    env, params, notes = _ollama_settings(rec)
    lines = [sh.env_run(env, "ollama serve")]
    if ollama_name:
        lines.append(f"ollama run {sh.quote(ollama_name)}")
        lines.append("in the session: " + "; ".join(f"/set parameter {p}" for p in params))
    else:
        name = _ollama_name(v)
        body = [f"FROM {v.files[0] if v.files else model.name}"] + [f"PARAMETER {p}" for p in params]
        lines.append(sh.write_lines("Modelfile", body) + sh.then + f"ollama create {name} -f Modelfile")
        lines.append(f"ollama run {name}")
    if len(v.files) > 1:
        lines.append("note: Ollama cannot load split GGUF files; merge them first (llama-gguf-split --merge)")
    return lines + notes


def build_commands(model: PlanModel, v: PlanVariant, rec: Recommendation, profile: DeviceProfile, os_: str,
                   shell_name: ShellName, llama_build: int | None) -> Commands:
    sh = shell(shell_name)
    llama = " ".join(llama_server_words(model, v, rec, sh, llama_build))
    lms, lms_why = _lm_studio(model, rec, sh)
    ollama_name = model.ollama_name or _model_args(model, v, sh)[1]
    ollama = _ollama_lines(model, v, rec, ollama_name, sh)
    env, _, _ = _ollama_settings(rec)
    ollama_app = ollama_persist_lines(os_, env)

    bios = None
    if rec.carveout_bytes is not None and profile.carveout is not None:
        bios = (f"UMA frame buffer {fmt_bios_size(rec.carveout_bytes)}, OS keeps {fmt_bios_size(rec.os_keeps_bytes)}\n"
                f"{profile.carveout.how_to_change}")
    cap = rec.cap_change.setting if rec.cap_change else None
    return Commands(llama_server=llama, lm_studio=lms, lm_studio_why=lms_why, ollama=ollama, ollama_app=ollama_app,
                    bios=bios, cap=cap, shell=shell_name)
