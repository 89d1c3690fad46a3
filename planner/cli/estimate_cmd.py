"""`memfit estimate MODEL`: what llama.cpp will allocate, component by component and per device.

Flags carry llama.cpp's own names and defaults. The defaults mirror llama-server (b11434), the
program people serve models with (llama-cli runs the same server code):
  -c 0 (the model's training context), -b 2048, -ub 512, -fa auto, -ctk/-ctv f16,
  -np auto = 4 slots sharing one unified KV cache (tools/server/server.cpp), logits reserved for one
  token per slot (n_outputs_max = n_parallel, server-context.cpp), -ngl all, mmap on.
`--tool fit-params` switches to llama-fit-params/libllama defaults instead (1 sequence, logits
reserved for the whole batch), which is what validation/ compares against.
"""

from __future__ import annotations

import json
from typing import Any

import click
from tabulate import tabulate

from ..errors import InputError, MemfitError
from ..estimate_types import Breakdown, RunSettings
from ..header import ModelHeaders
from ..units import fmt_bytes, fmt_ctx, parse_ctx

CACHE_TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]
BACKENDS = ["cpu", "cuda", "rocm", "vulkan", "metal"]
SERVER_AUTO_SLOTS = 4  # tools/server/server.cpp: n_parallel auto -> 4 with a unified KV cache


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


def build_settings(*, ctx_size: str, flash_attn: str, cache_type_k: str, cache_type_v: str, ubatch: int,
                   batch: int, parallel: str, kv_unified: bool | None, n_gpu_layers: str, n_cpu_moe: int,
                   cpu_moe: bool, swa_full: bool, no_kv_offload: bool, no_repack: bool, backend: str,
                   tool: str, with_mmproj: bool) -> RunSettings:
    """CLI flags -> RunSettings, applying llama-server's (or llama-fit-params') defaults."""
    n_ctx = _ctx(ctx_size)
    np_auto = str(parallel).strip().lower() in ("auto", "-1")
    if np_auto and tool == "server":
        n_parallel = SERVER_AUTO_SLOTS
        unified = True if kv_unified is None else kv_unified
    elif np_auto:
        n_parallel = 1  # llama-cli and llama-fit-params: one sequence
        unified = bool(kv_unified)
    else:
        n_parallel = _int_or(parallel, {}, "-np/--parallel")
        if n_parallel < 1:
            raise InputError(f"invalid -np/--parallel {parallel!r}: must be at least 1 (or auto)")
        unified = bool(kv_unified)
    ngl = _int_or(n_gpu_layers, {"auto": -1, "all": -1}, "-ngl/--n-gpu-layers")
    if ngl < -1:
        ngl = -1
    if ubatch < 1 or batch < 1:
        raise InputError("-b/--batch-size and -ub/--ubatch-size must be at least 1")
    return RunSettings(
        n_ctx=n_ctx, n_batch=batch, n_ubatch=ubatch, n_parallel=n_parallel, kv_unified=unified,
        n_outputs_max=0 if tool == "fit-params" else n_parallel,
        flash_attn=flash_attn, cache_type_k=cache_type_k, cache_type_v=cache_type_v,
        n_gpu_layers=ngl, n_cpu_moe=(1 << 20) if cpu_moe else n_cpu_moe, swa_full=swa_full,
        no_kv_offload=no_kv_offload, repack=not no_repack, backend=backend, with_mmproj=with_mmproj,
    )


def _size(n: int) -> str:
    """GiB in the table; tiny nonzero buffers (logits of one token) would print as 0.00."""
    return "<0.01 GiB" if 0 < n < (1 << 30) // 100 else fmt_bytes(n)


def _label(b: Breakdown, component: str) -> str:
    if component in b.estimated:
        return f"estimate ±{b.estimated[component] * 100:.0f}%"
    if component in b.exact:
        return "exact"
    return ""


def render(b: Breakdown, title: str, mmproj_name: str | None) -> str:
    s = b.settings
    gpu = b.device("gpu")
    host = b.device("host")
    is_gpu = s.backend != "cpu"
    head = [
        ("model", title),
        ("backend", s.backend + ("" if is_gpu else " (everything in system RAM)")),
        ("context", f"{b.n_ctx:,} tokens ({fmt_ctx(b.n_ctx)}), {s.n_parallel} sequence(s)"
                    + (", unified KV" if s.kv_unified else (", one KV stream per sequence" if s.n_parallel > 1 else ""))),
        ("KV cache", f"K {s.cache_type_k} / V {s.cache_type_v}, {b.kv_cells:,} cells per full-attention layer"),
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
    out = [tabulate(head, tablefmt="plain")]

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
    out.append(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))

    kinds: dict[str, int] = {}
    for layer in b.layers:
        kinds[layer.kind] = kinds.get(layer.kind, 0) + 1
    desc = ", ".join(f"{n} {k}" for k, n in kinds.items())
    cells = sorted({layer.kv_cells for layer in b.layers if layer.kv_cells})
    layer_line = f"layers: {desc}"
    if len(cells) > 1:
        layer_line += f"; KV cells per layer: {', '.join(f'{c:,}' for c in cells)}"
    out.append("")
    out.append(layer_line)
    for w in b.warnings:
        out.append(f"note: {w}")
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


def _pick_mmproj(resolved: Any, mmproj: str) -> tuple[ModelHeaders | None, str | None, list[str]]:
    notes: list[str] = []
    if mmproj.lower() == "auto":
        projs = [p for p in getattr(resolved, "mmproj", []) if p.headers is not None]
        if not projs:
            notes.append("--mmproj auto: no projector file next to this model")
            return None, None, notes
        # prefer the full-precision projector llama-server picks by default (F16/BF16), else the first
        projs.sort(key=lambda p: (0 if any(t in p.name.upper() for t in ("F16", "BF16")) else 1, p.size_bytes))
        return projs[0].headers, projs[0].name, notes
    from ..reader import parse_file

    h = parse_file(mmproj)
    return ModelHeaders.merge([h]), mmproj, notes


@click.command("estimate")
@click.argument("model")
@click.option("-c", "--ctx-size", "ctx_size", default="0", show_default=True, metavar="N",
              help="Context size (24576, 24k, 128k); 0 = the model's training context.")
@click.option("-fa", "--flash-attn", "flash_attn", type=click.Choice(["on", "off", "auto"]), default="auto",
              show_default=True, help="Flash attention (auto = on where supported, as llama.cpp resolves it).")
@click.option("-ctk", "--cache-type-k", "cache_type_k", type=click.Choice(CACHE_TYPES), default="f16", show_default=True)
@click.option("-ctv", "--cache-type-v", "cache_type_v", type=click.Choice(CACHE_TYPES), default="f16", show_default=True)
@click.option("-ub", "--ubatch-size", "ubatch", type=int, default=512, show_default=True, help="Physical batch size.")
@click.option("-b", "--batch-size", "batch", type=int, default=2048, show_default=True, help="Logical batch size.")
@click.option("-np", "--parallel", "parallel", default="auto", show_default=True, metavar="N|auto",
              help="Sequences (server slots); auto = 4 slots with a unified KV cache (llama-server).")
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
@click.option("--mmproj", metavar="FILE|auto", help="Also size a vision projector (a file, or auto = the model's own).")
@click.option("--backend", type=click.Choice(BACKENDS), default="cuda", show_default=True,
              help="ggml backend family the model runs on.")
@click.option("--tool", type=click.Choice(["server", "cli", "fit-params"]), default="server", show_default=True,
              help="Whose defaults to mirror: llama-server, llama-cli (1 slot) or llama-fit-params/libllama.")
@click.option("--quant", metavar="QUANT", help="Quant variant of a multi-variant reference (e.g. Q4_K_M).")
@click.option("--revision", metavar="REV", help="Hub branch, tag or commit.")
@click.option("--json", "as_json", is_flag=True, help="Print the breakdown as JSON (bytes).")
def estimate_command(model: str, ctx_size: str, flash_attn: str, cache_type_k: str, cache_type_v: str, ubatch: int,
                     batch: int, parallel: str, kv_unified: bool | None, n_gpu_layers: str, n_cpu_moe: int,
                     cpu_moe: bool, swa_full: bool, no_kv_offload: bool, no_repack: bool, mmproj: str | None,
                     backend: str, tool: str, quant: str | None, revision: str | None, as_json: bool) -> None:
    """Estimate the memory llama.cpp allocates for MODEL: weights, KV cache, recurrent state,
    compute buffers, output buffer (and a vision projector), per device.

    \b
    MODEL: a .gguf file, owner/repo[:QUANT], a Hub URL or a short name; only headers are read.
    Examples:
      memfit estimate ./Llama-3.1-8B-Q4_K_M.gguf -c 24k
      memfit estimate unsloth/Qwen3-30B-A3B-GGUF:Q4_K_M -c 32k -ngl 30 --n-cpu-moe 10
      memfit estimate qwen3-vl-32b --quant Q4_K_M --mmproj auto --backend vulkan --json
    """
    from ..estimator import estimate
    from ..model_facts import ModelFacts
    from ..resolver import resolve

    settings = build_settings(
        ctx_size=ctx_size, flash_attn=flash_attn, cache_type_k=cache_type_k, cache_type_v=cache_type_v,
        ubatch=ubatch, batch=batch, parallel=parallel, kv_unified=kv_unified, n_gpu_layers=n_gpu_layers,
        n_cpu_moe=n_cpu_moe, cpu_moe=cpu_moe, swa_full=swa_full, no_kv_offload=no_kv_offload,
        no_repack=no_repack, backend=backend, tool=tool, with_mmproj=bool(mmproj))

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

    mm_headers, mm_name, mm_notes = (None, None, [])
    if mmproj:
        mm_headers, mm_name, mm_notes = _pick_mmproj(resolved, mmproj)
    b = estimate(facts, settings, mm_headers)
    if mm_notes:
        b.warnings.extend(mm_notes)
    title = facts.name or (resolved.repo or resolved.ref)
    title = f"{title} [{variant.quant}] ({facts.arch})"
    if as_json:
        click.echo(json.dumps(to_json(b, title, variant.quant, mm_name), indent=2))
    else:
        click.echo(render(b, title, mm_name))


COMMANDS = [estimate_command]
