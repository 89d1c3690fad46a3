"""How llama.cpp runs a recommendation: the llama-server command, LM Studio's settings (each with
why), Ollama's lines (one-off and for the app). Everything here is text built from a
Recommendation, in the syntax of the user's shell (planner/shells.py) and with the flags of the
llama.cpp build planned for (args.py); nothing is decided here. The machine's own lines (BIOS,
GPU cap) are the plan's (planner/plan.py)."""

from __future__ import annotations

import re

from ...archs import is_encoder
from ...plan_types import Commands, PlanModel, PlanVariant, Recommendation, WholeLayerSplit
from ...shells import Shell, ShellName, ollama_persist_lines, shell
from ...vocab import LMSTUDIO_CACHE_NAMES
from .args import no_mmap_flag

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


def _layer_split(rec: Recommendation) -> bool:
    """A split in whole layers (-ngl N): some layers stay on the CPU."""
    return rec.tier == "partial_offload" and rec.n_gpu_layers >= 0


def _gpu_layers(rec: Recommendation) -> int:
    """-ngl for the plan: 0 on the CPU, N for a whole-layer split, 999 (all) otherwise."""
    if rec.tier == "cpu_only":
        return 0
    return rec.n_gpu_layers if _layer_split(rec) else 999


def _run_words(rec: Recommendation) -> list[str]:
    """--n-cpu-moe, flash attention, the cache types that are not f16, and the slots."""
    words = ["--n-cpu-moe", str(rec.n_cpu_moe)] if rec.n_cpu_moe else []
    words += ["-fa", "on" if rec.flash_attn else "off"]
    words += [w for flag, t in (("-ctk", rec.cache_type_k), ("-ctv", rec.cache_type_v)) if t != "f16"
              for w in (flag, t)]
    # always explicit: without -np, llama-server runs 4 slots with a unified KV cache ("auto"),
    # which holds more SWA cells and recurrent states than the plan priced
    return words + ["-np", str(rec.n_parallel)]


def _projector_words(model: PlanModel, rec: Recommendation, sh: Shell) -> list[str]:
    """--mmproj for a local projector the plan sized, --no-mmproj for one it left out (-hf pairs
    a Hub model's projector itself)."""
    if not model.projector:
        return []
    if not rec.mmproj:
        return ["--no-mmproj"]
    return [] if model.repo else ["--mmproj", sh.quote(model.projector.path or model.projector.name)]


def llama_server_words(model: PlanModel, v: PlanVariant, rec: Recommendation, sh: Shell,
                       llama_build: int | None) -> list[str]:
    """The llama-server command as words (flags with their values), valid for `llama_build`."""
    model_args, _ = _model_args(model, v, sh)
    words = ["llama-server", *model_args, "-c", str(rec.ctx), "-ngl", str(_gpu_layers(rec)), *_run_words(rec)]
    if is_encoder(v.headers.architecture):
        words.append("--embeddings")  # an encoder: llama-server serves it on /embedding only
    if rec.no_mmap:
        words += no_mmap_flag(llama_build)
    if rec.rope_flags:
        words += rec.rope_flags.split()
    return words + _projector_words(model, rec, sh)


# --------------------------------------------------------------------------- LM Studio

LmsSetting = tuple[str, str, str]  # (LM Studio's setting, its value, why)
LMS_MOE = "Number of layers for which to force MoE weights onto CPU"


def _lms_offload(rec: Recommendation) -> LmsSetting:
    n = rec.n_layer
    if rec.tier == "cpu_only":
        return "GPU Offload", f"0 / {n} layers", "no GPU in use: the model runs from system RAM"
    if _layer_split(rec):
        return ("GPU Offload", f"{rec.n_gpu_layers} / {n} layers",
                "the rest of the layers do not fit in GPU memory at this context")
    return ("GPU Offload", f"max ({n} / {n} layers)",
            "every layer on the GPU; the experts of some stay on the CPU (below)" if rec.n_cpu_moe
            else "the whole model fits in GPU memory")


def _lms_flash_attn(rec: Recommendation) -> LmsSetting:
    if rec.flash_attn:
        return "Flash Attention", "on", "smaller compute buffers; a quantized V cache needs it"
    return "Flash Attention", "off", "this model or backend runs without it"


def _lms_kv(rec: Recommendation) -> list[LmsSetting]:
    out: list[LmsSetting] = []
    if rec.tier not in ("cpu_only", "no_fit"):
        out.append(("Offload KV Cache to GPU Memory", "on",
                    "the plan keeps the KV cache on the GPU (off would move it to RAM)"))
    if rec.cache_type_k != "f16" or rec.cache_type_v != "f16":
        why = "halves the KV cache so this context fits (an f16 cache does not)"
        out += [(f"{kv} Cache Quantization Type", LMSTUDIO_CACHE_NAMES.get(t, t), why)
                for kv, t in (("K", rec.cache_type_k), ("V", rec.cache_type_v))]
    if rec.n_cpu_moe:
        out.append((LMS_MOE, str(rec.n_cpu_moe),
                    "the experts of these layers stay in system RAM (llama.cpp --n-cpu-moe)"))
    return out


def _lms_memory(rec: Recommendation) -> list[LmsSetting]:
    out = [("Try mmap()", "off", "the file would otherwise pass through a page cache the OS side cannot hold")
           if rec.no_mmap else ("Try mmap()", "on", "loading through the page cache fits beside the model")]
    if rec.keep_in_memory_ok is True:
        out.append(("Keep Model in Memory", "on",
                    "its second copy of the weights in RAM still leaves the OS its reserve"))
    elif rec.keep_in_memory_ok is False:
        out.append(("Keep Model in Memory", "off", "it locks a second copy of the weights in RAM (--mlock), which "
                                                   "would push the OS under its reserve"))
    return out


def _lms_gpu(rec: Recommendation) -> str:
    """`lms load --gpu`: off, max, or the fraction of layers on the GPU."""
    if rec.tier == "cpu_only":
        return "off"
    return f"{max(0.0, rec.n_gpu_layers / max(1, rec.n_layer)):.2f}" if _layer_split(rec) else "max"


def _lm_studio(model: PlanModel, rec: Recommendation, sh: Shell) -> tuple[dict[str, str], dict[str, str]]:
    """LM Studio's load settings for this plan and, per setting, why."""
    settings = [_lms_offload(rec), ("Context Length", str(rec.ctx), "the context this plan sized the KV cache for"),
                _lms_flash_attn(rec), *_lms_kv(rec), *_lms_memory(rec)]
    s = {name: value for name, value, _ in settings}
    why = {name: reason for name, _, reason in settings}
    lms_model = sh.quote(model.lmstudio_name) if model.lmstudio_name else "<model>"
    s["lms"] = f"lms load {lms_model} --gpu {_lms_gpu(rec)} --context-length {rec.ctx}"
    if rec.rope_flags:
        s["note"] = "LM Studio has no YaRN setting: past the trained context run the llama-server line"
    return s, why


# --------------------------------------------------------------------------- Ollama

def _ollama_env(rec: Recommendation) -> dict[str, str]:
    env: dict[str, str] = {}
    if rec.flash_attn:
        env["OLLAMA_FLASH_ATTENTION"] = "1"
    if rec.cache_type_k != "f16":
        env["OLLAMA_KV_CACHE_TYPE"] = rec.cache_type_k
    env["OLLAMA_CONTEXT_LENGTH"] = str(rec.ctx)
    env["OLLAMA_NUM_PARALLEL"] = str(rec.n_parallel)  # each parallel slot is priced, so pin it
    return env


def _ollama_whole_layers(rec: Recommendation, whole: WholeLayerSplit) -> tuple[list[str], list[str]]:
    """(parameters, notes) for a plan that offloads experts: Ollama has whole layers only."""
    if whole.n_gpu_layers <= 0:
        return [], ["note: Ollama has no per-expert CPU offload (--n-cpu-moe) and no whole-layer split "
                    "fits here: use the llama-server line"]
    speed = (f" (~{whole.est_tps:.0f} t/s instead of ~{rec.est_tps_at_ctx or rec.est_tps or 0:.0f})"
             if whole.est_tps else "")
    return [f"num_gpu {whole.n_gpu_layers}"], [f"note: Ollama has no per-expert CPU offload (--n-cpu-moe); num_gpu "
                                               f"{whole.n_gpu_layers} keeps whole layers on the GPU instead{speed}"]


def _ollama_num_gpu(rec: Recommendation) -> list[str]:
    if _layer_split(rec):
        return [f"num_gpu {rec.n_gpu_layers}"]
    if rec.tier == "cpu_only":
        return ["num_gpu 0"]
    # Ollama's own estimator may keep layers on the CPU where this plan fits them all
    # (an M3 Pro 36 GB ran gpt-oss:20b at 131072 split 16%/84% CPU/GPU): pin every layer
    return [] if rec.tier == "no_fit" else ["num_gpu 999"]


def _ollama_settings(rec: Recommendation) -> tuple[dict[str, str], list[str], list[str]]:
    """(server environment, model parameters, notes): what differs from the llama-server line is
    said, since Ollama has no per-expert CPU offload (whole layers only, num_gpu), no rope-scaling
    flags, no split GGUFs, and splits layers by its own estimate unless num_gpu pins it."""
    whole = rec.whole_layer_split
    if rec.n_cpu_moe and whole is not None:
        params, notes = _ollama_whole_layers(rec, whole)
    else:
        params, notes = _ollama_num_gpu(rec), []
    if rec.rope_flags:
        notes.append("note: Ollama takes no YaRN flags: past the trained context use the llama-server line")
    return _ollama_env(rec), [f"num_ctx {rec.ctx}", *params], notes


def _ollama_lines(model: PlanModel, v: PlanVariant, rec: Recommendation, ollama_name: str | None,
                  sh: Shell) -> list[str]:
    _, params, notes = _ollama_settings(rec)
    lines = [sh.env_run(_ollama_env(rec), "ollama serve")]
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


def build_commands(model: PlanModel, v: PlanVariant, rec: Recommendation, os_: str, shell_name: ShellName,
                   llama_build: int | None) -> Commands:
    """llama.cpp's lines for the recommendation: llama-server, LM Studio, Ollama (and its app)."""
    sh = shell(shell_name)
    lms, lms_why = _lm_studio(model, rec, sh)
    ollama_name = model.ollama_name or _model_args(model, v, sh)[1]
    return Commands(llama_server=" ".join(llama_server_words(model, v, rec, sh, llama_build)), lm_studio=lms,
                    lm_studio_why=lms_why, ollama=_ollama_lines(model, v, rec, ollama_name, sh),
                    ollama_app=ollama_persist_lines(os_, _ollama_env(rec)), shell=shell_name)
