"""`memfit estimate MODEL`: what llama.cpp will allocate, component by component and per device.

Flags carry llama.cpp's own names and defaults. The defaults mirror llama-server (b11434), the
program people serve models with (llama-cli runs the same server code):
  -c 0 (the model's training context), -b 2048, -ub 512, -fa auto, -ctk/-ctv f16,
  -np auto = 4 slots sharing one unified KV cache (tools/server/server.cpp), logits reserved for one
  token per slot (n_outputs_max = n_parallel, server-context.cpp), -ngl all, mmap on.
`--tool fit-params` switches to llama-fit-params/libllama defaults instead (1 sequence, logits
reserved for the whole batch), which is what validation/ compares against.

`--runtime llama.cpp@N|ollama[@V]|lmstudio[@V]` (or `--llama-build N`) says which llama.cpp the app
runs and which defaults the app passes (planner/runtimes.py, planner/data/runtimes.toml); flags
given on the command line win over the app's defaults. Without either, the default runtime is
conservative over the llama.cpp builds current apps ship (b11434's rules, logits reserved for the
whole ubatch as builds before b9464 do); the report states which runtime was assumed.
A vision projector is sized by default when the model has one (the file llama-server `-hf` would
download, planner/projector.py); `--mmproj none` leaves it out.

With `--device ID|auto|FILE` the backend defaults to the device's first one on its OS and the
report ends with where this exact breakdown lands on the device as it is configured now (the
carve-out in effect, the GPU cap, the OS reserve): pools, tier, headroom, checks. The placement is
planner.fit.place, the same arithmetic `plan` uses; estimate still exits 0 when it does not fit
(it answers a question; `plan` is the command with exit 3). See docs/devices.md "estimate --device".
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any, Callable

import click

from ..errors import InputError, MemfitError
from ..estimate_types import Breakdown, RunSettings
from ..header import ModelHeaders
from ..report.layout import command_lines, kv_lines, render_table, text_width, unbroken, wrap
from ..units import UNITS_NOTE, fmt_bytes, fmt_ctx, fmt_vendor_size, one_line, parse_ctx, printable
from .device_options import device_options, overrides_from, resolve_devices

if TYPE_CHECKING:
    from ..device_schema import BackendInfo, DeviceProfile
    from ..fit import FitResult
    from ..runtimes import Runtime

CACHE_TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]
BACKENDS = ["cpu", "cuda", "rocm", "vulkan", "metal"]
SERVER_AUTO_SLOTS = 4  # tools/server/server.cpp: n_parallel auto -> 4 with a unified KV cache
LLAMA_MAX_SEQ = 256  # src/llama-cparams.h: llama.cpp refuses more sequences than this


def _ctx(text: str) -> int:
    if str(text).strip() == "0":
        return 0
    return parse_ctx(text)


def _int_or(text: str, words: dict[str, int], what: str) -> int:
    t = str(text).strip().lower()
    if t in words:
        return words[t]
    try:
        return int(t)
    except ValueError:
        raise InputError(f"invalid {what} {text!r}: use a number or one of {', '.join(words)}") from None


def build_settings(*, ctx_size: str, flash_attn: str | None, cache_type_k: str, cache_type_v: str,
                   ubatch: int | None, batch: int | None, parallel: str | None, kv_unified: bool | None,
                   n_gpu_layers: str, n_cpu_moe: int, cpu_moe: bool, swa_full: bool, no_kv_offload: bool,
                   no_repack: bool, backend: str, tool: str, with_mmproj: bool,
                   runtime: Runtime | None = None, no_mmap: bool = False) -> RunSettings:
    """CLI flags -> RunSettings, applying the runtime's app defaults (llama-server's unless --runtime
    says otherwise) to the flags not given, or llama-fit-params' defaults with --tool fit-params."""
    from ..runtimes import resolve_runtime

    rt = runtime or resolve_runtime(None)
    app = rt.settings_defaults()
    if tool != "server":  # llama-cli and llama-fit-params use libllama's defaults, not an app's
        app = {**app, "flash_attn": "auto", "n_batch": 2048, "n_ubatch": 512}
    flash_attn = flash_attn or app["flash_attn"]
    ubatch = app["n_ubatch"] if ubatch is None else ubatch
    batch = app["n_batch"] if batch is None else batch
    n_ctx = _ctx(ctx_size)
    if parallel is None:  # the app decides: llama-server auto (4 unified), Ollama 1, LM Studio 4
        parallel = "auto" if rt.app == "llama.cpp" else str(app["n_parallel"])
        if kv_unified is None and rt.app != "llama.cpp":
            kv_unified = app["kv_unified"]
    np_auto = str(parallel).strip().lower() in ("auto", "-1")
    if np_auto and tool == "server":
        n_parallel = SERVER_AUTO_SLOTS
        unified = True if kv_unified is None else kv_unified
    elif np_auto:
        n_parallel = 1  # llama-cli and llama-fit-params: one sequence
        unified = bool(kv_unified)
    else:
        n_parallel = _int_or(parallel, {}, "-np/--parallel")
        if not 1 <= n_parallel <= LLAMA_MAX_SEQ:
            raise InputError(f"invalid -np/--parallel {parallel!r}: must be 1 to {LLAMA_MAX_SEQ} (or auto)")
        unified = bool(kv_unified)
    ngl = _int_or(n_gpu_layers, {"auto": -1, "all": -1}, "-ngl/--n-gpu-layers")
    if ngl < -1:
        ngl = -1
    if ubatch < 1 or batch < 1:
        raise InputError("-b/--batch-size and -ub/--ubatch-size must be at least 1")
    check_v_cache_needs_fa(cache_type_v, flash_attn)
    if tool == "fit-params":
        n_outputs_max = 0  # libllama: logits for the whole batch
    elif app["n_outputs_max"] == 0:
        n_outputs_max = 0  # a build before per-slot outputs (or the conservative default)
    else:
        n_outputs_max = min(n_parallel, batch)  # server-context.cpp server_output_limits
    return RunSettings(
        n_ctx=n_ctx, n_batch=batch, n_ubatch=ubatch, n_parallel=n_parallel, kv_unified=unified,
        n_outputs_max=n_outputs_max,
        flash_attn=flash_attn, cache_type_k=cache_type_k, cache_type_v=cache_type_v,
        n_gpu_layers=ngl, n_cpu_moe=(1 << 20) if cpu_moe else n_cpu_moe, swa_full=swa_full,
        no_kv_offload=no_kv_offload, repack=not no_repack, backend=backend, with_mmproj=with_mmproj,
        use_mmap=app["use_mmap"] and not no_mmap, llama_build=app["llama_build"],
    )


def check_v_cache_needs_fa(cache_type_v: str, flash_attn: str, why_off: str = "") -> None:
    """llama.cpp refuses a quantized V cache without flash attention (llama_init_from_model): a flag
    combination that cannot run, so a usage error (exit 2) like `plan`'s, before any model is read.
    The estimator raises the same refusal as an EstimateError for callers that skip this check."""
    from ..estimator.context import QUANTIZED_CACHE

    if cache_type_v in QUANTIZED_CACHE and flash_attn == "off":
        raise InputError(f"llama.cpp refuses a quantized V cache ({cache_type_v}) with flash attention off{why_off}",
                         hint="use -fa on (or auto), or -ctv f16")


def check_against_model(s: RunSettings, facts: Any) -> tuple[RunSettings, list[str]]:
    """Flags that do not apply to this model: said in a note, not silently priced. --n-cpu-moe on a
    dense model moves nothing (llama.cpp's pattern matches no tensor), so it is dropped. Flags the
    model cannot run with (a quantized V cache where the architecture forces flash attention off)
    are usage errors."""
    if facts.rule.flash_attn_forced_off:
        check_v_cache_needs_fa(s.cache_type_v, "off", f" (llama.cpp always turns it off for {facts.arch})")
    notes: list[str] = []
    if s.n_cpu_moe and not facts.is_moe:
        notes.append("--n-cpu-moe/--cpu-moe ignored: this model has no MoE expert tensors")
        s = s.model_copy(update={"n_cpu_moe": 0})
    per_seq = s.n_ctx if s.kv_unified else s.n_ctx // max(1, s.n_parallel)  # what one sequence can attend to
    if s.n_ctx and facts.n_ctx_train and per_seq > facts.n_ctx_train:
        what = f"-c {s.n_ctx}" if per_seq == s.n_ctx else f"-c {s.n_ctx} / {s.n_parallel} sequences = {per_seq}"
        notes.append(f"{what} is beyond the model's training context ({facts.n_ctx_train}): "
                     "llama.cpp runs it, but answers degrade without RoPE scaling")
    return s, notes


_KIND_WORDS = {"none": "without KV cache"}


def _kv_line(b: Breakdown) -> str:
    s = b.settings
    if not any(layer.kv_cells for layer in b.layers):  # encoders, pure recurrent models
        if b.recurrent_bytes:
            return "none: a recurrent model keeps a fixed state per sequence instead"
        return "none: this architecture keeps no KV cache"
    return f"K {s.cache_type_k} / V {s.cache_type_v}, {b.kv_cells:,} cells per full-attention layer"


def _size(n: int) -> str:
    """GiB in the table; tiny nonzero buffers (logits of one token) would print as 0.00."""
    return "<0.01 GiB" if 0 < n < (1 << 30) // 100 else fmt_bytes(n)


def _label(b: Breakdown, component: str) -> str:
    if component in b.estimated:
        return f"estimate ±{b.estimated[component] * 100:.0f}%"
    if component in b.exact:
        return "exact"
    return ""


# The breakdown table within the terminal: the component and its total first, then where it
# lives; the accuracy label goes first when the terminal is too narrow, then the host and GPU
# split (the total stays).
COMPONENT_DROP_ORDER = ["accuracy", "host RAM", "GPU"]
# the device's pools: the pool and its headroom first
POOL_DROP_ORDER = ["used", "capacity"]


def render(b: Breakdown, title: str, mmproj_name: str | None, width: int | None = None) -> str:
    """The breakdown as text within `width` (the terminal's by default)."""
    width = width or text_width()
    s = b.settings
    gpu = b.device("gpu")
    host = b.device("host")
    is_gpu = s.backend != "cpu"
    head = [
        ("model", title),
        ("backend", s.backend + ("" if is_gpu else " (everything in system RAM)")),
        ("context", f"{b.n_ctx:,} tokens ({fmt_ctx(b.n_ctx)}), {s.n_parallel} sequence(s)"
                    + (", unified KV" if s.kv_unified else (", one KV stream per sequence" if s.n_parallel > 1 else ""))),
        ("KV cache", _kv_line(b)),
        ("flash attention", ("on" if b.flash_attn else "off") + (f" (from {s.flash_attn})" if s.flash_attn == "auto" else "")),
        ("batch", f"-b {s.n_batch} -ub {s.n_ubatch}"),
    ]
    if is_gpu:
        n_gpu_layers = sum(1 for layer in b.layers if layer.on_gpu)
        ngl = f"{n_gpu_layers}/{len(b.layers)} layers on the GPU"
        if s.n_cpu_moe:
            n_cpu = sum(1 for layer in b.layers if layer.on_gpu and layer.expert_bytes and not layer.experts_on_gpu)
            ngl += f"; experts of {n_cpu} of them kept on the CPU (--n-cpu-moe)"
        head.append(("offload", ngl))
    if mmproj_name:
        head.append(("mmproj", mmproj_name))
    out = kv_lines(head, width)

    rows: list[list[Any]] = []

    def add(name: str, key: str, attr: str) -> None:
        g = getattr(gpu, attr)
        h = getattr(host, attr)
        if not g and not h and key not in ("weights", "kv", "compute"):
            return
        row = [name]
        if is_gpu:
            row.append(_size(g))
        row += [_size(h), _size(g + h), _label(b, key)]
        rows.append(row)

    add("weights", "weights", "weights_bytes")
    add("KV cache", "kv", "kv_bytes")
    add("recurrent state", "recurrent", "recurrent_bytes")
    add("compute buffers", "compute", "compute_bytes")
    add("output (logits)", "output", "output_bytes")
    add("vision projector", "mmproj", "mmproj_bytes")
    total_row = ["total (llama.cpp buffers)"]
    if is_gpu:
        total_row.append(_size(gpu.total_bytes))
    total_row += [_size(host.total_bytes), _size(b.total_bytes), ""]
    rows.append(total_row)
    ov_row = ["+ runtime overhead"]
    if is_gpu:
        ov_row.append(_size(gpu.overhead_bytes))
    ov_row += [_size(host.overhead_bytes), _size(b.overhead_bytes), _label(b, "overhead")]
    rows.append(ov_row)
    headers = ["component"] + (["GPU"] if is_gpu else []) + ["host RAM", "total", "accuracy"]
    out.append("")
    out += render_table(rows, headers, width, drop_order=COMPONENT_DROP_ORDER)

    kinds: dict[str, int] = {}
    for layer in b.layers:
        kinds[layer.kind] = kinds.get(layer.kind, 0) + 1
    desc = ", ".join(f"{n} {_KIND_WORDS.get(k, k)}" for k, n in kinds.items())
    cells = sorted({layer.kv_cells for layer in b.layers if layer.kv_cells})
    layer_line = desc
    if len(cells) > 1:
        layer_line += f"; KV cells per layer: {', '.join(f'{c:,}' for c in cells)}"
    out.append("")
    out += wrap(layer_line, width, "layers: ")
    for w in b.warnings:
        out += wrap(w, width, "note: ")
    return "\n".join(out)


def to_json(b: Breakdown, title: str, quant: str | None, mmproj_name: str | None) -> dict[str, Any]:
    d = b.model_dump(mode="json")
    top = {
        "model": title, "quant": quant, "mmproj": mmproj_name,
        "weights_bytes": b.weights_bytes, "kv_bytes": b.kv_bytes, "recurrent_bytes": b.recurrent_bytes,
        "compute_bytes": b.compute_bytes, "output_bytes": b.output_bytes, "mmproj_bytes": b.mmproj_bytes,
        "total_bytes": b.total_bytes, "overhead_bytes": b.overhead_bytes,
    }
    top.update({k: v for k, v in d.items() if k not in top})
    return top


def _pick_mmproj(resolved: Any, mmproj: str | None, variant: Any) -> tuple[ModelHeaders | None, str | None, list[str]]:
    """The projector to size: none for `--mmproj none`; a file; or (default and `auto`) the one
    llama-server `-hf` downloads with this variant (planner/projector.py, the rule `plan` uses)."""
    from ..projector import pick_projector

    notes: list[str] = []
    if mmproj is not None and mmproj.lower() == "none":
        return None, None, notes
    if mmproj is None or mmproj.lower() == "auto":
        projs = [p for p in getattr(resolved, "mmproj", []) if p.headers is not None]
        chosen = pick_projector(projs, variant.quant, variant.files[0] if variant.files else "")
        if chosen is None:
            if mmproj is not None:
                notes.append("--mmproj auto: no projector file next to this model")
            return None, None, notes
        if mmproj is None:
            notes.append(f"vision projector {chosen.name.rsplit('/', 1)[-1]} sized (llama-server -hf loads it; "
                         "--mmproj none leaves it out)")
        return chosen.headers, chosen.name, notes
    from ..resolver import load_projector_file

    headers, _size = load_projector_file(mmproj)
    return headers, mmproj, notes


# --------------------------------------------------------------------------- --device

# The shared device flags estimate takes; --bandwidth is left out (estimate reports memory, not speed).
_DEVICE_FLAGS = {"device": "--device", "device_file": "--device-file", "ram": "--ram", "carveout": "--carveout",
                 "os_name": "--os", "vram": "--vram", "gpu_cap": "--gpu-cap", "use": "--use"}
# The estimator sizes SYCL (Intel) buffers like Vulkan's, as `plan` does.
_ESTIMATOR_BACKEND = {"sycl": "vulkan"}
# Profile fields marked `estimated` that matter for speed, not memory (estimate does not show speed).
_SPEED_FIELDS = ("bandwidth_gbps", "host_bandwidth_gbps", "decode_efficiency", "gpu_tflops_fp16")
NO_GPU_TIER = "cpu_only"  # device_fit.tier of a run that uses no GPU (--backend cpu, CPU-only machines)
_TIER_TEXT = {
    "dedicated": "fits in dedicated GPU memory",
    "shared": "fits on the GPU, part of it in shared memory",
    "partial_offload": "fits, with part of the model on the CPU as -ngl/--n-cpu-moe ask",
    "no_fit": "does not fit",
    NO_GPU_TIER: "fits in system RAM, CPU only: no GPU in use",
}


def _device_flags(f: Callable) -> Callable:
    """device_options(multiple=False) without --bandwidth."""
    f = device_options(multiple=False)(f)
    f.__click_params__ = [p for p in f.__click_params__ if p.name in _DEVICE_FLAGS]  # type: ignore[attr-defined]
    return f


def load_device(kw: dict[str, Any]) -> tuple[DeviceProfile | None, list[str]]:
    """The profile named by --device/--device-file with the overrides applied, and the notes the
    overrides added (None without a device; override flags without a device are a usage error)."""
    if not kw.get("device") and not kw.get("device_file"):
        used = [flag for key, flag in _DEVICE_FLAGS.items() if kw.get(key) is not None]
        if used:
            verb = "describes" if len(used) == 1 else "describe"
            raise click.UsageError(f"{', '.join(used)} {verb} a device: add --device ID|auto|FILE")
        return None, []
    if kw.get("device") and kw.get("device_file"):
        raise click.UsageError("give --device or --device-file, not both")
    from ..devices import apply_overrides  # the device schema loads only with a device

    base = resolve_devices({"device": kw.get("device"), "device_file": kw.get("device_file")})[0]
    over = {k: v for k, v in overrides_from(kw).items() if v is not None}
    if not over:
        return base, []
    profile = apply_overrides(base, **over)
    return profile, [n for n in profile.notes if n not in base.notes]


def device_backend(profile: DeviceProfile, requested: str | None) -> BackendInfo:
    """--backend on a device: the profile's entry for it (a name, a driver or a label such as
    'vulkan (amdvlk)'); without --backend the device's first backend on its OS (a GPU one first)."""
    from ..device_schema import BackendInfo

    os_ = profile.default_os
    listed = profile.backends(os_)
    if requested is None:
        gpu = [b for b in listed if b.name != "cpu"]
        return (gpu or listed)[0]
    found = profile.backend(requested, os_)
    if found is not None:
        return found
    if requested == "cpu":  # every machine can run on the CPU, listed or not
        return BackendInfo(name="cpu")
    labels = sorted({b.label for b in listed} | {"cpu"})
    raise InputError(f"backend {requested!r} is not listed for {profile.id} on {os_}",
                     hint=f"choose one of: {', '.join(labels)} (or drop --backend for the device's default)")


def estimator_backend(info: BackendInfo) -> str:
    return _ESTIMATOR_BACKEND.get(info.name, info.name)


def place_on_device(b: Breakdown, profile: DeviceProfile, info: BackendInfo, headers: ModelHeaders) -> FitResult:
    """This exact breakdown on the device as it is configured now (carve-out and GPU cap in effect,
    the profile's OS and use), through the fit solver `plan` uses."""
    from ..fit import FitConfig, place
    from ..plan import largest_gpu_weight_bytes

    cfg = FitConfig(os=profile.default_os, use=profile.default_use, backend=info.label, mmap=b.settings.use_mmap)
    return place(b, profile, cfg, largest_weight_bytes=largest_gpu_weight_bytes(headers))


def fit_tier(r: FitResult) -> str:
    """The fit solver's tier, except that a run with nothing on a GPU that passes every blocking
    check fits in system RAM (the solver, planning GPUs, calls every GPU-less run no_fit)."""
    if not r.gpu_need_bytes and not r.blocking_failures:
        return NO_GPU_TIER
    return r.tier


def _carveout_source(p: DeviceProfile) -> str:
    if "carveout" in p.overrides:
        return "--carveout"
    if p.live is not None and p.live.carveout_bytes is not None:
        return "in effect on this machine"
    return "factory default" + (", assumed" if "carveout.default_bytes" in p.estimated else "")


def _cap_source(p: DeviceProfile, os_: str) -> str:
    if "gpu_cap" in p.overrides:
        return "--gpu-cap"
    cap = p.os_info(os_).gpu_cap  # type: ignore[arg-type]
    if cap is None:
        return "no limit known: all RAM the OS sees"
    if cap.setting_bytes is not None:
        return "as set on this machine" if p.live is not None else "the profile's setting"
    return "OS default"


def _has_gpu_window(p: DeviceProfile, os_: str) -> bool:
    """A carve-out APU or a unified machine with a known GPU limit (the fit solver assumes all RAM
    for a unified machine without one, which on a CPU-only board is no GPU at all)."""
    return p.memory_architecture == "carveout" or (
        p.memory_architecture == "unified" and p.os_info(os_).gpu_cap is not None)  # type: ignore[arg-type]


def shown_pools(r: FitResult, p: DeviceProfile) -> list[Any]:
    """The solver's pools, without GPU pools when this run puts nothing on a GPU (a CPU-only run
    or machine has only system RAM to fill; the carve-out still shows in the device line)."""
    if r.gpu_need_bytes:
        return list(r.pools)
    return [pool for pool in r.pools if pool.name == "host"]


def assumptions(p: DeviceProfile) -> list[str]:
    """Profile fields that are assumptions and matter here: memory, not speed; the factory
    carve-out only when it is the one in effect."""
    out = [f for f in p.estimated if f not in _SPEED_FIELDS]
    if _carveout_source(p) != "factory default, assumed":
        out = [f for f in out if f != "carveout.default_bytes"]
    return out


def has_gpu_backend(p: DeviceProfile) -> bool:
    return any(b.name != "cpu" for b in p.backends(p.default_os))


def _cap_name(p: DeviceProfile, os_: str) -> str:
    if p.memory_architecture == "unified":
        return "GPU wired limit" if os_ == "macos" else "GPU-usable memory"
    return {"linux": "GTT cap", "windows": "shared GPU memory cap"}.get(os_, "shared cap")


def plan_hint(model: str, kw: dict[str, Any], b: Breakdown, backend: str | None, mmproj: str | None,
              revision: str | None, profile: DeviceProfile) -> str | None:
    """The `memfit plan` line that asks for a recommendation for the same device and run shape
    (None on a machine without a GPU backend: plan places models on GPUs). Hardware and use flags
    carry over; --carveout/--gpu-cap do not (choosing them is plan's job)."""
    if not has_gpu_backend(profile):
        return None
    s = b.settings
    args = ["memfit", "plan", model]
    args += ["--device", kw["device"]] if kw.get("device") else ["--device-file", kw["device_file"]]
    for key in ("os_name", "use", "ram", "vram"):
        if kw.get(key) is not None:
            args += [_DEVICE_FLAGS[key], str(kw[key])]
    args += ["--ctx", fmt_ctx(b.n_ctx)]
    if s.n_parallel != 1:
        args += ["-np", str(s.n_parallel)]
    if s.cache_type_k != "f16":
        args += ["-ctk", s.cache_type_k]
    if s.cache_type_v != "f16":
        args += ["-ctv", s.cache_type_v]
    if s.flash_attn != "auto":
        args += ["-fa", s.flash_attn]
    if backend and backend != "cpu":  # plan places models on a GPU
        args += ["--backend", backend]
    if mmproj and mmproj.lower() != "auto":
        args += ["--mmproj", mmproj]
    if revision:
        args += ["--revision", revision]
    return shlex.join(args)


def device_fit_json(r: FitResult, profile: DeviceProfile, ref: str, est_backend: str, notes: list[str],
                    hint: str | None) -> dict[str, Any]:
    tier = fit_tier(r)
    gpu_check = next((c for c in r.checks if c.name == "gpu_memory"), None)
    window = _has_gpu_window(profile, r.config.os)
    return {
        "device": profile.id, "ref": ref, "name": profile.name, "based_on": profile.based_on,
        "memory_architecture": r.memory_architecture, "os": r.config.os, "use": r.config.use,
        "backend": r.config.backend, "estimator_backend": est_backend, "live": profile.live is not None,
        "overrides": dict(profile.overrides),
        "ram_bytes": r.ram_bytes, "carveout_bytes": r.carveout_bytes,
        "carveout_source": _carveout_source(profile) if r.carveout_bytes is not None else None,
        "gpu_cap_bytes": r.gpu_cap_bytes if window else None,
        "gpu_cap_source": _cap_source(profile, r.config.os) if window else None,
        "os_visible_bytes": r.os_visible_bytes, "reserve_bytes": r.reserve_bytes,
        "gpu_capacity_bytes": r.gpu_capacity_bytes, "reported_bytes": r.reported_bytes,
        "gpu_reserve_bytes": r.gpu_reserve_bytes, "spill_bytes": r.spill_bytes, "fast_spare_bytes": r.fast_spare_bytes,
        "tier": tier, "fits": tier != "no_fit",
        "gpu_need_bytes": r.gpu_need_bytes, "overhead_bytes": r.overhead_bytes, "safety_bytes": r.safety_bytes,
        "gpu_headroom_bytes": r.gpu_headroom_bytes,
        "gpu_margin_bytes": gpu_check.margin_bytes if gpu_check is not None else None,
        "host_need_bytes": r.host_need_bytes, "os_free_bytes": r.os_free_bytes,
        "pools": [{"name": p.name, "label": p.label, "capacity_bytes": p.capacity_bytes, "used_bytes": p.used_bytes,
                   "headroom_bytes": p.headroom_bytes} for p in shown_pools(r, profile)],
        "checks": [{"name": c.name, "ok": c.ok, "blocking": c.blocking, "message": c.message,
                    "margin_bytes": c.margin_bytes} for c in r.checks],
        "warnings": r.warnings, "shared_cost": r.shared_cost or None, "notes": notes,
        "assumed": assumptions(profile),
        "plan_command": hint,
    }


def _signed(n: int) -> str:
    return fmt_bytes(n) if n >= 0 else f"short {fmt_bytes(-n)}"


def _wrap(text: str, width: int, indent: str = "  ") -> list[str]:
    """A paragraph of the device section: indented, with a hanging indent two deeper."""
    return wrap(text, width, indent, indent + "  ")


def render_device(r: FitResult, profile: DeviceProfile, notes: list[str], hint: str | None,
                  width: int | None = None) -> str:
    """Where the breakdown lands on the device, within `width` (the terminal's by default). The
    carve-out and a card's VRAM are in GB as the BIOS and the vendor name them; pools, caps and
    reserves in GiB, as memfit computes them."""
    width = width or text_width()
    os_ = r.config.os
    title = f"on {profile.id}" + (f" ({profile.name})" if profile.name and profile.name != profile.id else "")
    out = _wrap(title, width, "")
    setup = f"{os_}, {r.config.use} use, backend {r.config.backend}"
    if profile.based_on and profile.based_on != profile.id:
        setup = f"profile {profile.based_on}; {setup}"
    if profile.overrides:
        setup += f"; overrides: {', '.join(f'{k}={v}' for k, v in profile.overrides.items())}"
    out += _wrap(setup, width)
    facts = []
    vendor_sizes = False
    if r.carveout_bytes is not None:
        facts.append(f"carve-out {fmt_vendor_size(r.carveout_bytes)} ({_carveout_source(profile)})")
        vendor_sizes = True
    if r.memory_architecture == "discrete":
        kept = profile.vram_reserve(os_, r.config.use)  # type: ignore[arg-type]
        facts.append(f"VRAM {fmt_vendor_size(profile.vram_bytes)}" + (f" ({fmt_bytes(kept)} kept by the desktop)" if kept else ""))
        vendor_sizes = True
    elif r.gpu_cap_bytes is not None and _has_gpu_window(profile, os_):
        facts.append(f"{_cap_name(profile, os_)} {fmt_bytes(r.gpu_cap_bytes)} ({_cap_source(profile, os_)})")
    facts.append(f"OS sees {fmt_bytes(r.os_visible_bytes)}")
    facts.append(f"OS reserve {fmt_bytes(r.reserve_bytes)}")
    out += _wrap(" · ".join(unbroken(f) for f in facts), width)
    if r.memory_architecture == "carveout" and r.carveout_bytes == 0:
        out += _wrap("! the carve-out reads 0 (BIOS 'Auto'): runtimes may see no dedicated VRAM; "
                     "`memfit doctor` explains", width)
    rows = [[p.label, fmt_bytes(p.capacity_bytes), fmt_bytes(p.used_bytes), _signed(p.headroom_bytes)]
            for p in shown_pools(r, profile)]
    out.append("")
    out += render_table(rows, ["pool", "capacity", "used", "headroom"], width, drop_order=POOL_DROP_ORDER,
                        align=["left", "right", "right", "right"], indent=2)
    out.append("")
    for c in r.checks:
        mark = "ok " if c.ok else ("NO " if c.blocking else "!  ")
        out += wrap(c.message, width, f"  {mark} ", " " * 6)
    tier = fit_tier(r)
    verdict = f"=> {_TIER_TEXT[tier]} (tier {tier})"
    if tier == "no_fit" and r.blocking_failures:
        verdict += f": {r.short_reason}"
    out += _wrap(verdict, width)
    if r.shared_cost:
        out += _wrap(f"shared memory: {r.shared_cost}", width)
    for n in notes:
        out += _wrap(f"note: {n}", width)
    assumed = assumptions(profile)
    if assumed:
        out += _wrap(f"assumed, not measured: {', '.join(assumed)}", width)
    if vendor_sizes:
        out += _wrap(f"units: {UNITS_NOTE}", width)
    if hint:
        out += _wrap("for a recommendation (quant, memory split, launch flags):", width)
        out += command_lines([shlex.quote(w) for w in shlex.split(hint)], width, indent="    ", cont="    ")
    else:
        out += _wrap("no GPU backend on this device: `memfit plan` has nothing to place on a GPU here", width)
    return "\n".join(out)


@click.command("estimate")
@click.argument("model")
@click.option("-c", "--ctx-size", "ctx_size", default="0", show_default=True, metavar="N",
              help="Context size (24576, 24k, 128k); 0 = the model's training context.")
@click.option("-fa", "--flash-attn", "flash_attn", type=click.Choice(["on", "off", "auto"]), default=None,
              help="Flash attention (auto = on where supported, as llama.cpp resolves it) [default: the runtime's: auto].")
@click.option("-ctk", "--cache-type-k", "cache_type_k", type=click.Choice(CACHE_TYPES), default="f16", show_default=True)
@click.option("-ctv", "--cache-type-v", "cache_type_v", type=click.Choice(CACHE_TYPES), default="f16", show_default=True)
@click.option("-ub", "--ubatch-size", "ubatch", type=int, default=None,
              help="Physical batch size [default: the runtime's: 512].")
@click.option("-b", "--batch-size", "batch", type=int, default=None,
              help="Logical batch size [default: the runtime's: llama-server 2048, Ollama/LM Studio 512].")
@click.option("-np", "--parallel", "parallel", default=None, metavar="N|auto",
              help="Sequences (server slots); auto = 4 slots with a unified KV cache (llama-server) "
                   "[default: the runtime's: llama-server auto, Ollama 1, LM Studio 4].")
@click.option("-kvu/-no-kvu", "--kv-unified/--no-kv-unified", "kv_unified", default=None,
              help="One KV buffer shared by all sequences (default: on when -np is auto).")
@click.option("-ngl", "--n-gpu-layers", "--gpu-layers", "n_gpu_layers", default="all", show_default=True,
              metavar="N|all", help="Layers on the GPU; the output layer counts as one (llama.cpp semantics).")
@click.option("-ncmoe", "--n-cpu-moe", "n_cpu_moe", type=click.IntRange(min=0), default=0, show_default=True,
              help="Keep the MoE expert weights of the first N layers on the CPU.")
@click.option("-cmoe", "--cpu-moe", "cpu_moe", is_flag=True, help="Keep all MoE expert weights on the CPU.")
@click.option("--swa-full", is_flag=True, help="Full-size cache for sliding-window layers.")
@click.option("-nkvo", "--no-kv-offload", "no_kv_offload", is_flag=True, help="Keep the KV cache in system RAM.")
@click.option("-nr", "--no-repack", "no_repack", is_flag=True, help="Disable CPU weight repacking (CPU backend).")
@click.option("--mmproj", metavar="FILE|auto|none",
              help="Vision projector to size: a file, auto, or none [default: auto when the model has one, "
                   "the file llama-server -hf downloads].")
@click.option("--no-mmap", "no_mmap", is_flag=True, help="Load weights without mmap (--no-mmap).")
@click.option("--runtime", "runtime_text", metavar="llama.cpp@N|ollama[@V]|lmstudio[@V]", default=None,
              help="Which llama.cpp and app defaults to assume [default: conservative over the builds current "
                   "apps ship]; see planner/data/runtimes.toml.")
@click.option("--llama-build", "llama_build", type=click.IntRange(min=1), default=None, metavar="N",
              help="llama.cpp build number whose buffer rules apply (e.g. 9452); with --runtime, overrides its build.")
@click.option("--backend", metavar="|".join(BACKENDS), default=None,
              help="ggml backend family the model runs on [default: cuda; with --device the device's first "
                   "backend on its OS, and a driver it lists (amdvlk) also works].")
@click.option("--tool", type=click.Choice(["server", "cli", "fit-params"]), default="server", show_default=True,
              help="Whose defaults to mirror: llama-server, llama-cli (1 slot) or llama-fit-params/libllama.")
@click.option("--quant", metavar="QUANT", help="Quant variant of a multi-variant reference (e.g. Q4_K_M).")
@click.option("--revision", metavar="REV", help="Hub branch, tag or commit.")
@click.option("--json", "as_json", is_flag=True, help="Print the breakdown as JSON (bytes).")
@_device_flags
def estimate_command(model: str, ctx_size: str, flash_attn: str | None, cache_type_k: str, cache_type_v: str,
                     ubatch: int | None, batch: int | None, parallel: str | None, kv_unified: bool | None,
                     n_gpu_layers: str, n_cpu_moe: int, cpu_moe: bool, swa_full: bool, no_kv_offload: bool,
                     no_repack: bool, mmproj: str | None, no_mmap: bool, runtime_text: str | None,
                     llama_build: int | None, backend: str | None, tool: str, quant: str | None,
                     revision: str | None, as_json: bool, **device_kw: Any) -> None:
    """Estimate the memory llama.cpp allocates for MODEL: weights, KV cache, recurrent state,
    compute buffers, output buffer (and a vision projector), per device.

    MODEL: a .gguf file, owner/repo[:QUANT], a Hub URL, a short name, ollama:NAME[:TAG] (or
    name:tag) or lmstudio:publisher/repo[:QUANT]; only headers are read.

    \b
    Examples:
      memfit estimate ./Llama-3.1-8B-Q4_K_M.gguf -c 24k
      memfit estimate unsloth/Qwen3-30B-A3B-GGUF:Q4_K_M -c 32k \\
          -ngl 30 --n-cpu-moe 10
      memfit estimate qwen3-vl-32b --quant Q4_K_M --backend vulkan --json
      memfit estimate qwen3-vl-32b --quant Q4_K_M -c 24k --device auto

    With --device (an id, a profile .toml or auto): the backend defaults to the device's, and the
    report adds whether this breakdown fits the device as configured now. The exit code stays 0
    when it does not fit; `memfit plan` recommends a setup (and exits 3 when nothing fits).
    """
    from ..estimator import estimate
    from ..model_facts import ModelFacts
    from ..resolver import resolve

    from ..runtimes import runtime_for

    runtime = runtime_for(runtime_text, llama_build)
    requested = backend.strip().lower() if backend else None
    profile, device_notes = load_device(device_kw)
    info = None
    if profile is not None:
        info = device_backend(profile, requested)
        backend = estimator_backend(info)
    elif requested is None:
        backend = "cuda"
    elif requested in BACKENDS:
        backend = requested
    else:
        raise InputError(f"invalid --backend {requested!r}: use one of {', '.join(BACKENDS)}",
                         hint="a driver name (amdvlk, radv) picks a backend of a device profile: add --device")

    settings = build_settings(
        ctx_size=ctx_size, flash_attn=flash_attn, cache_type_k=cache_type_k, cache_type_v=cache_type_v,
        ubatch=ubatch, batch=batch, parallel=parallel, kv_unified=kv_unified, n_gpu_layers=n_gpu_layers,
        n_cpu_moe=n_cpu_moe, cpu_moe=cpu_moe, swa_full=swa_full, no_kv_offload=no_kv_offload,
        no_repack=no_repack, backend=backend, tool=tool, with_mmproj=False, runtime=runtime, no_mmap=no_mmap)

    resolved = resolve(model, revision=revision, quant=quant, load_headers=True)
    if not resolved.variants:
        raise MemfitError(f"no GGUF model found for {model!r}")
    if len(resolved.variants) > 1 and not quant:
        names = ", ".join(v.quant for v in resolved.variants[:8])
        raise InputError(f"{model!r} has {len(resolved.variants)} quant variants ({names}...)",
                         hint="pick one with --quant (or MODEL:QUANT); `memfit inspect` lists them")
    variant = resolved.variants[0]
    if variant.headers is None:
        raise MemfitError(f"could not read the headers of {model!r}")
    facts = ModelFacts.from_headers(variant.headers)
    settings, flag_notes = check_against_model(settings, facts)

    mm_headers, mm_name, mm_notes = _pick_mmproj(resolved, mmproj, variant)
    if mm_headers is not None:
        settings = settings.model_copy(update={"with_mmproj": True})
    b = estimate(facts, settings, mm_headers)
    b.warnings.insert(0, runtime.statement if tool == "server" else
                      f"{runtime.statement.split(';')[0]} (--tool {tool}: libllama defaults)")
    if mm_notes or flag_notes:
        b.warnings.extend(flag_notes + mm_notes)
    title = one_line(facts.name) if facts.name else (resolved.repo or resolved.ref)
    title = f"{title} [{variant.quant}] ({one_line(facts.arch, 40)})"
    fit = None
    hint: str | None = None
    if profile is not None and info is not None:
        fit = place_on_device(b, profile, info, variant.headers)
        hint = plan_hint(model, device_kw, b, requested, mmproj, revision, profile)
    if as_json:
        d = to_json(b, title, variant.quant, mm_name)
        d["runtime"] = {"id": runtime.id, "llama_build": runtime.llama_build, "conservative": runtime.conservative,
                        "statement": runtime.statement}
        d["device_fit"] = None
        if fit is not None and profile is not None:
            ref = device_kw.get("device") or device_kw.get("device_file") or profile.id
            d["device_fit"] = device_fit_json(fit, profile, ref, backend, device_notes, hint)
        click.echo(json.dumps(d, indent=2, allow_nan=False))
    else:
        width = text_width()
        click.echo(printable(render(b, title, mm_name, width)))
        if fit is not None and profile is not None:
            click.echo("")
            click.echo(render_device(fit, profile, device_notes, hint, width))


COMMANDS = [estimate_command]
