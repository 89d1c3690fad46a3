"""`estimate`'s llama.cpp flags -> RunSettings, with the defaults of the app that runs llama.cpp.

The flags carry llama.cpp's own names; a flag not given takes the runtime's app default
(llama-server's unless --runtime says otherwise, apps.py), or libllama's with
`--tool cli|fit-params`. Flags that cannot run together are refused here, before any model is read;
flags that do not apply to the model are noted once it is read (`check_against_model`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import InputError
from ...estimate_types import RunSettings
from ...units import parse_ctx
from ...vocab import CacheType, v_cache_conflict

if TYPE_CHECKING:
    from ...model_facts import ModelFacts
    from .apps import AppSettings, Runtime

SERVER_AUTO_SLOTS = 4  # tools/server/server.cpp: n_parallel auto -> 4 with a unified KV cache
LLAMA_MAX_SEQ = 256  # src/llama-cparams.h: llama.cpp refuses more sequences than this
ALL_EXPERTS_ON_CPU = 1 << 20  # --cpu-moe: --n-cpu-moe for every layer
# llama-cli and llama-fit-params run libllama's defaults, not an app's
LIBLLAMA_DEFAULTS = {"flash_attn": "auto", "n_batch": 2048, "n_ubatch": 512}


@dataclass(frozen=True)
class RunFlags:
    """estimate's llama.cpp flags as given (None: the runtime's default)."""

    ctx_size: str = "0"
    flash_attn: str | None = None
    cache_type_k: CacheType = "f16"
    cache_type_v: CacheType = "f16"
    ubatch: int | None = None
    batch: int | None = None
    parallel: str | None = None
    kv_unified: bool | None = None
    n_gpu_layers: str = "all"
    n_cpu_moe: int = 0
    cpu_moe: bool = False
    swa_full: bool = False
    no_kv_offload: bool = False
    no_repack: bool = False
    no_mmap: bool = False
    tool: str = "server"


def _ctx(text: str) -> int:
    return 0 if str(text).strip() == "0" else parse_ctx(text)


def _int_or(text: str, words: dict[str, int], what: str) -> int:
    t = str(text).strip().lower()
    if t in words:
        return words[t]
    try:
        return int(t)
    except ValueError:
        raise InputError(f"invalid {what} {text!r}: use a number or one of {', '.join(words)}") from None


def _app_defaults(rt: Runtime, tool: str) -> AppSettings:
    app = rt.settings_defaults()
    return app if tool == "server" else {**app, **LIBLLAMA_DEFAULTS}


def _explicit_sequences(parallel: str, kv_unified: bool | None) -> tuple[int, bool]:
    n_parallel = _int_or(parallel, {}, "-np/--parallel")
    if not 1 <= n_parallel <= LLAMA_MAX_SEQ:
        raise InputError(f"invalid -np/--parallel {parallel!r}: must be 1 to {LLAMA_MAX_SEQ} (or auto)")
    return n_parallel, bool(kv_unified)


def _sequences(f: RunFlags, rt: Runtime, app: AppSettings) -> tuple[int, bool]:
    """(-np, unified KV): the app decides without -np (llama-server auto = 4 unified slots, Ollama
    1, LM Studio 4); llama-cli and llama-fit-params run one sequence."""
    parallel, kv_unified = f.parallel, f.kv_unified
    if parallel is None:
        parallel = "auto" if rt.app == "llama.cpp" else str(app["n_parallel"])
        if kv_unified is None and rt.app != "llama.cpp":
            kv_unified = app["kv_unified"]
    if str(parallel).strip().lower() not in ("auto", "-1"):
        return _explicit_sequences(parallel, kv_unified)
    if f.tool == "server":
        return SERVER_AUTO_SLOTS, True if kv_unified is None else kv_unified
    return 1, bool(kv_unified)


def _gpu_layers(text: str) -> int:
    return max(-1, _int_or(text, {"auto": -1, "all": -1}, "-ngl/--n-gpu-layers"))


def _n_outputs_max(tool: str, app: AppSettings, n_parallel: int, batch: int) -> int:
    """Logits reserved: the whole batch (0) for libllama and builds before per-slot outputs (or the
    conservative default), else one row per slot (server-context.cpp server_output_limits)."""
    if tool == "fit-params" or app["n_outputs_max"] == 0:
        return 0
    return min(n_parallel, batch)


def _given(flag: int | None, default: int) -> int:
    """A flag as given, else the app's default."""
    return default if flag is None else flag


def check_v_cache_needs_fa(cache_type_v: str, flash_attn: str, why_off: str = "") -> None:
    """llama.cpp refuses a quantized V cache without flash attention (llama_init_from_model): a flag
    combination that cannot run, so an error before any model is read (planner.vocab has the rule).
    The estimator raises the same refusal as an EstimateError for callers that skip this check."""
    if v_cache_conflict(cache_type_v, flash_attn):
        raise InputError(f"llama.cpp refuses a quantized V cache ({cache_type_v}) with flash attention off{why_off}",
                         hint="use -fa on (or auto), or -ctv f16")


def build_settings(f: RunFlags, *, backend: str, runtime: Runtime, with_mmproj: bool = False) -> RunSettings:
    """The flags -> RunSettings, applying the runtime's app defaults to the flags not given (or
    libllama's with --tool cli|fit-params)."""
    app = _app_defaults(runtime, f.tool)
    flash_attn = f.flash_attn or app["flash_attn"]
    ubatch, batch = _given(f.ubatch, app["n_ubatch"]), _given(f.batch, app["n_batch"])
    n_ctx = _ctx(f.ctx_size)
    n_parallel, unified = _sequences(f, runtime, app)
    ngl = _gpu_layers(f.n_gpu_layers)
    if ubatch < 1 or batch < 1:
        raise InputError("-b/--batch-size and -ub/--ubatch-size must be at least 1")
    check_v_cache_needs_fa(f.cache_type_v, flash_attn)
    return RunSettings(
        n_ctx=n_ctx, n_batch=batch, n_ubatch=ubatch, n_parallel=n_parallel, kv_unified=unified,
        n_outputs_max=_n_outputs_max(f.tool, app, n_parallel, batch),
        flash_attn=flash_attn, cache_type_k=f.cache_type_k, cache_type_v=f.cache_type_v,
        n_gpu_layers=ngl, n_cpu_moe=ALL_EXPERTS_ON_CPU if f.cpu_moe else f.n_cpu_moe, swa_full=f.swa_full,
        no_kv_offload=f.no_kv_offload, repack=not f.no_repack, backend=backend, with_mmproj=with_mmproj,
        use_mmap=app["use_mmap"] and not f.no_mmap, llama_build=app["llama_build"],
    )


def _beyond_training_note(s: RunSettings, n_ctx_train: int | None) -> str | None:
    per_seq = s.n_ctx if s.kv_unified else s.n_ctx // max(1, s.n_parallel)  # what one sequence can attend to
    if not (s.n_ctx and n_ctx_train and per_seq > n_ctx_train):
        return None
    what = f"-c {s.n_ctx}" if per_seq == s.n_ctx else f"-c {s.n_ctx} / {s.n_parallel} sequences = {per_seq}"
    return (f"{what} is beyond the model's training context ({n_ctx_train}): "
            "llama.cpp runs it, but answers degrade without RoPE scaling")


def check_against_model(s: RunSettings, facts: ModelFacts) -> tuple[RunSettings, list[str]]:
    """Flags that do not apply to this model: said in a note, not silently priced. --n-cpu-moe on a
    dense model moves nothing (llama.cpp's pattern matches no tensor), so it is dropped. Flags the
    model cannot run with (a quantized V cache where the architecture forces flash attention off)
    are errors."""
    if facts.rule.flash_attn_forced_off:
        check_v_cache_needs_fa(s.cache_type_v, "off", f" (llama.cpp always turns it off for {facts.arch})")
    notes: list[str] = []
    if s.n_cpu_moe and not facts.is_moe:
        notes.append("--n-cpu-moe/--cpu-moe ignored: this model has no MoE expert tensors")
        s = s.model_copy(update={"n_cpu_moe": 0})
    beyond = _beyond_training_note(s, facts.n_ctx_train)
    if beyond:
        notes.append(beyond)
    return s, notes
