"""`memfit plan MODEL --device ID [--device ID2 ...] --ctx 24k` (also the `plan` console script).

Resolves the model (Hub repo, alias or local files; headers only), loads the device profiles with
any command-line overrides, runs the planner and prints the recommendation, the quant table, the
carve-out table and the memory bar (text), a forum-ready version (markdown) or the whole plan (JSON).
Exit codes: 0 = a recommendation that fits, 3 = nothing fits (on any of the devices, or nothing
reaches --min-tps), 1 = error, 2 = usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from ..projector import pick_projector
from ..units import parse_ctx, parse_size, printable

EXIT_OK = 0
EXIT_NO_FIT = 3
KV_TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]


class CtxType(click.ParamType):
    """Context lengths as people write them: 24k, 24K, 24576, 128k; `max` or 0 = the model's
    training context (as llama.cpp's -c 0)."""

    name = "CTX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        if str(value).strip().lower() in ("max", "0"):
            return 0
        try:
            return parse_ctx(value)
        except InputError as e:
            self.fail(e.message, param, ctx)


def _split_list(values: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for v in values:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def _load_projector_file(path: str) -> Any:
    from ..plan_types import PlanProjector
    from ..resolver import load_projector_file

    headers, size = load_projector_file(path)
    return PlanProjector(name=Path(path).name, size_bytes=size, headers=headers, path=str(path))


def _build_model(ref: str, revision: str | None, quants: list[str], mmproj: str) -> Any:
    from ..plan_types import PlanModel, PlanProjector, PlanVariant
    from ..resolver import resolve

    rm = resolve(ref, revision=revision, quant=quants[0] if len(quants) == 1 else None)
    variants = rm.variants
    if len(quants) > 1:
        variants = [rm.variant(q) for q in quants]
    variants = [v for v in variants if v.headers is not None]
    if not variants:
        raise InputError(f"{ref}: no quant variants to plan")
    name = rm.repo or rm.ollama_name or rm.local_path or ref
    plan_variants = [PlanVariant(quant=v.quant, headers=v.headers, size_bytes=v.size_bytes, files=list(v.files))
                     for v in variants]
    projector = None
    if mmproj in ("auto", "none"):  # "none" still notes the projector, so the command can say --no-mmproj
        candidates = [p for p in rm.mmproj if p.headers is not None]
        # one projector for the model: the one llama.cpp pairs with the best-quality variant
        from ..variants import quality_key

        top = max(variants, key=lambda v: quality_key(v.quant, v.size_bytes))
        chosen = pick_projector(candidates, top.quant, top.files[0] if top.files else "")
        if chosen is not None:
            on_disk = rm.source == "local" or (rm.source == "ollama" and rm.local_path is not None)
            path = chosen.name if on_disk else ""
            projector = PlanProjector(name=chosen.name.rsplit("/", 1)[-1], size_bytes=chosen.size_bytes,
                                      headers=chosen.headers, path=path)
    elif mmproj != "none":
        projector = _load_projector_file(mmproj)
    model = PlanModel(name=name, variants=plan_variants, repo=rm.repo if rm.source == "hub" else None,
                      revision=rm.revision_name or None, projector=projector,
                      hf_tag=rm.hf_tag if rm.source == "hub" else None, notes=list(rm.problems),
                      ollama_name=rm.ollama_name, lmstudio_name=rm.lmstudio_name)
    return model, rm


_OS_WORDS = {"linux": "linux", "windows": "windows", "win": "windows", "macos": "macos", "mac": "macos"}
_USE_WORDS = {"headless", "desktop", "daily"}


def _device_suffixes(ref: str) -> tuple[str, str | None, str | None]:
    """`ai-max-395-64g:windows:daily` -> (id, os, use). Only known words are suffixes, so a path
    with a drive letter (C:\\dev.toml) stays whole."""
    os_ = use = None
    parts = ref.split(":")
    while len(parts) > 1 and parts[-1].strip().lower() in (_OS_WORDS.keys() | _USE_WORDS):
        word = parts.pop().strip().lower()
        if word in _USE_WORDS:
            use = use or word
        else:
            os_ = os_ or _OS_WORDS[word]
    return ":".join(parts), os_, use


def _load_devices(devices: tuple[str, ...], device_files: tuple[str, ...], overrides: dict[str, Any]) -> list[Any]:
    """Device profiles with the command-line overrides. Several devices are compared fairly: one use
    (and so one OS reserve rule) for all, the first device's unless --use or a per-device suffix
    (`ID:windows:daily`) says otherwise; --os applies to the devices that have that OS."""
    from ..devices import apply_overrides, load_file, load_profile
    from ..errors import MemfitError

    refs = [_device_suffixes(d) for d in _split_list(devices)]
    loaded = [(load_profile(ref), os_, use) for ref, os_, use in refs] + [(load_file(f), None, None) for f in device_files]
    if not loaded:
        raise click.UsageError("give at least one --device ID (see `memfit devices`), --device auto, "
                               "or --device-file FILE")
    given = {k: v for k, v in overrides.items() if v is not None}
    common_use = given.get("use")
    if common_use is None and len(loaded) > 1:
        first, first_os, first_use = loaded[0]
        common_use = first_use or first.default_use
    out = []
    for profile, os_, use in loaded:
        mine = dict(given)
        if os_:
            mine["os"] = os_
        elif ("os" in mine and str(mine["os"]).lower() not in profile.os and len(loaded) > 1
              and any(str(mine["os"]).lower() in q.os for q, _, _ in loaded)):
            mine.pop("os")  # --os for the others; this device keeps its own (noted below)
        if use or common_use:
            mine["use"] = use or common_use
        try:
            p = apply_overrides(profile, **mine) if mine else profile
        except MemfitError as e:
            if not e.message.startswith(profile.id):
                e.message = f"{profile.id}: {e.message}"
            raise
        if "os" in given and "os" not in mine and not os_:
            note = f"{profile.id} has no {given['os']} profile: planned for {p.default_os}"
            p.override_notes.append(note)
        out.append(p)
    return out


@click.command("plan", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("models", nargs=-1, metavar="MODEL[@CTX]...")
@click.option("--workload", "workload_file", default=None, metavar="FILE",
              help="a TOML file listing the models to plan on one setting (docs/cli.md: Workloads)")
@click.option("--together", is_flag=True,
              help="the models run at the same time (one llama-server each): plan their sum in the same memory")
@click.option("--device", "-d", "devices", multiple=True, metavar="ID",
              help="device profile id (memfit devices), a TOML path, or auto; repeat to compare devices")
@click.option("--device-file", "device_files", multiple=True, metavar="FILE", help="your own device profile (TOML)")
@click.option("--ctx", "-c", "ctx", type=CtxType(), default=None,
              help="context length: 24k, 24576, 128k, or max (= 0: the training context) "
                   "[default: training context, at most 32k]")
@click.option("--os", "os_", type=click.Choice(["linux", "windows", "macos"]), default=None,
              help="operating system [default: the profile's]")
@click.option("--use", type=click.Choice(["headless", "desktop", "daily"]), default=None,
              help="how the machine is used: decides the RAM the OS keeps [default: the profile's]")
@click.option("--backend", default=None, help="llama.cpp backend: vulkan, rocm, cuda, metal, amdvlk... [default: the profile's first]")
@click.option("--ram", default=None, metavar="SIZE", help="override installed RAM, e.g. 96g")
@click.option("--carveout", default=None, metavar="SIZE", help="plan only this BIOS carve-out, e.g. 32g")
@click.option("--gpu-cap", "gpu_cap", default=None, metavar="SIZE", help="plan with this GTT / wired limit, e.g. 100g")
@click.option("--vram", default=None, metavar="SIZE", help="override a discrete card's VRAM")
@click.option("--bandwidth", default=None, metavar="GB/S", help="override the GPU's memory bandwidth (GB/s) for speed estimates")
@click.option("--host-bandwidth", "host_bandwidth", default=None, metavar="GB/S",
              help="override system RAM bandwidth (GB/s): the speed of layers and experts on the CPU "
                   "(DDR4-3200 dual channel 51.2, DDR5-5600 89.6)")
@click.option("--quant", "-q", "quants", multiple=True, metavar="TAG", help="plan only these quants (repeat or comma list)")
@click.option("--kv", "kv", type=click.Choice(KV_TYPES), default=None, help="KV cache type for both K and V")
@click.option("-ctk", "--cache-type-k", "ctk", type=click.Choice(KV_TYPES), default=None, help="K cache type")
@click.option("-ctv", "--cache-type-v", "ctv", type=click.Choice(KV_TYPES), default=None, help="V cache type")
@click.option("-fa", "--flash-attn", "flash_attn", type=click.Choice(["on", "off", "auto"]), default="auto",
              show_default=True, help="flash attention")
@click.option("-np", "--parallel", "n_parallel", type=click.IntRange(1, 256), default=1, show_default=True,
              help="parallel sequences (llama-server slots); -c is shared between them")
@click.option("--mmproj", default="auto", metavar="auto|none|FILE", show_default=True,
              help="vision projector: the repo's (auto), none, or a local mmproj GGUF")
@click.option("--no-mmap", "no_mmap", is_flag=True, help="plan for --no-mmap loading")
@click.option("--prefer", type=click.Choice(["quality", "speed", "balanced"]), default="quality", show_default=True,
              help="quality: best quant that runs on the GPU; balanced: up to Q6_K class; speed: fastest >= 4-bit")
@click.option("--min-tps", "min_tps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="only recommend quants estimated to decode at least this fast at the requested context (t/s)")
@click.option("--min-prefill-tps", "min_prefill_tps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="only recommend quants whose prompt processing is estimated at least this fast (t/s)")
@click.option("--max-ttft", "max_ttft", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="only recommend quants that fill the whole context within this many seconds (est.)")
@click.option("--allow-spill", "allow_spill", is_flag=True,
              help="let a quant that spills into slower shared memory (Windows shared GPU memory) be recommended")
@click.option("--runtime", "runtime_text", metavar="llama.cpp@N|ollama[@V]|lmstudio[@V]", default=None,
              help="which llama.cpp build and app defaults to size for [default: conservative over the builds "
                   "current apps ship]; see planner/data/runtimes.toml")
@click.option("--llama-build", "llama_build", type=click.IntRange(min=1), default=None, metavar="N",
              help="llama.cpp build number whose buffer rules apply; with --runtime, overrides its build")
@click.option("--shell", "shell_name", type=click.Choice(["bash", "zsh", "powershell", "cmd"]), default=None,
              help="write the commands for this shell [default: the planned OS's: PowerShell on Windows, "
                   "bash on Linux, zsh on macOS]")
@click.option("--revision", default=None, help="Hub branch, tag or commit")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json", "html"]), default="text", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="same as --format json")
@click.option("--unicode", is_flag=True, help="draw the memory bar with block characters")
def plan_command(models: tuple[str, ...], workload_file: str | None, together: bool,
                 devices: tuple[str, ...], device_files: tuple[str, ...], ctx: int | None,
                 os_: str | None, use: str | None, backend: str | None, ram: str | None, carveout: str | None,
                 gpu_cap: str | None, vram: str | None, bandwidth: str | None, host_bandwidth: str | None, quants: tuple[str, ...], kv: str | None, ctk: str | None,
                 ctv: str | None, flash_attn: str, n_parallel: int, mmproj: str, no_mmap: bool, prefer: str,
                 min_tps: float | None, min_prefill_tps: float | None, max_ttft: float | None, allow_spill: bool,
                 runtime_text: str | None, llama_build: int | None, shell_name: str | None, revision: str | None, fmt: str, as_json: bool,
                 unicode: bool) -> int:
    """Which quant to download, which BIOS VRAM split to set and how to launch MODEL.

    MODEL: owner/repo, owner/repo:Q4_K_M, a short name (qwen3-vl-32b), a local .gguf or directory,
    an Ollama model (ollama:qwen3:32b, gpt-oss:120b) or lmstudio:publisher/repo[:QUANT].
    MODEL@CTX gives it its own context. Several models (or --workload FILE): one setting for all.

    \b
    Examples:
      memfit plan qwen3-vl-32b --device ai-max-395-64g --ctx 24k
      memfit plan unsloth/Qwen3-30B-A3B-GGUF -c 32k \\
        -d ai-max-395-64g -d ai-max-395-128g-minipc
      memfit plan ./models/ -d rtx-4090 --kv q8_0 --format markdown
      memfit plan glm-4.7-flash@198k qwen3-vl-32b@24k -d ai-max-395-64g

    Exit codes: 0 = the recommendation fits, 3 = nothing fits, 1 = error, 2 = usage error.
    """
    from ..plan import plan_devices
    from ..plan_types import PlanRequest
    from ..report import render_json, render_markdown, render_text

    if as_json:
        fmt = "json"
    if kv and (ctk or ctv):
        raise click.UsageError("give --kv, or -ctk/-ctv, not both")
    cache_k = ctk or kv or "f16"
    cache_v = ctv or kv or "f16"
    if cache_v not in ("f16", "f32", "bf16") and flash_attn == "off":
        raise click.UsageError(f"a {cache_v} V cache needs flash attention: drop -fa off or use -ctv f16")
    mm = mmproj.strip()
    if mm.lower() in ("auto", "none"):
        mm = mm.lower()

    from .plan_workload import parse_models, run_workload

    work = parse_models(models, workload_file, together, ctx)
    profiles = _load_devices(devices, device_files, {"ram": ram, "carveout": carveout, "gpu_cap": gpu_cap,
                                                     "vram": vram, "os": os_, "use": use, "bandwidth": bandwidth,
                                                     "host_bandwidth": host_bandwidth})
    plan_model = None
    if work.single is not None:  # one model: the single-model plan, unchanged
        model, ctx = work.single.ref, work.single.ctx if work.single.ctx is not None else ctx
        plan_model, _resolved = _build_model(model, revision, _split_list(quants), mm)
    request = PlanRequest(
        ctx=ctx, cache_type_k=cache_k, cache_type_v=cache_v, flash_attn=flash_attn,  # type: ignore[arg-type]
        n_parallel=n_parallel, use_mmproj=(plan_model is None or plan_model.projector is not None) and mm != "none",
        prefer=prefer,  # type: ignore[arg-type]
        min_tps=min_tps, backend=backend, mmap=False if no_mmap else None,
        kv_fixed=bool(kv or ctk or ctv), allow_spill=allow_spill, min_prefill_tps=min_prefill_tps,
        max_ttft_s=max_ttft, runtime=runtime_text, llama_build=llama_build, shell=shell_name,  # type: ignore[arg-type]
        ctx_chart=fmt == "html",
        # the setting the user fixed reaches the planner here (the profiles only describe the machine)
        carveout_bytes=parse_size(carveout, what="--carveout") if carveout else None,
        gpu_cap_bytes=parse_size(gpu_cap, what="--gpu-cap") if gpu_cap else None,
    )
    if plan_model is None:
        return run_workload(work.workload, profiles, request, revision=revision, quants=_split_list(quants),
                            mmproj=mm, fmt=fmt)
    multi = plan_devices(plan_model, request, profiles)
    if fmt == "json":
        click.echo(render_json(multi))
    elif fmt == "markdown":
        click.echo(printable(render_markdown(multi)), nl=False)
    elif fmt == "html":
        from ..report.html import render_html

        click.echo(render_html(multi), nl=False)
    else:
        click.echo(printable(render_text(multi, unicode=unicode)))
    return EXIT_OK if multi.fits else EXIT_NO_FIT


COMMANDS = [plan_command]
