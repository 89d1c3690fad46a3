"""`memfit estimate`'s report: the breakdown as text (labelled facts, the component table, the layer
line and notes) or JSON (bytes), followed by the device section when a device was given
(planner/report/estimate_device.py). The text fits the terminal (planner/report/layout.py): the
component table gives up its accuracy label first, then the host and GPU split (the total stays).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..units import fmt_bytes, fmt_ctx, printable
from .layout import kv_lines, render_table, text_width, wrap

if TYPE_CHECKING:
    from ..estimate_run import EstimateReport
    from ..estimate_types import Breakdown, DeviceUsage

COMPONENT_DROP_ORDER = ["accuracy", "host RAM", "GPU"]
_KIND_WORDS = {"none": "without KV cache"}
# (row label, the component's key in Breakdown.estimated/exact, its DeviceUsage attribute); the
# first three always show, the others only when some memory goes to them
COMPONENTS = [("weights", "weights", "weights_bytes"), ("KV cache", "kv", "kv_bytes"),
              ("recurrent state", "recurrent", "recurrent_bytes"), ("compute buffers", "compute", "compute_bytes"),
              ("output (logits)", "output", "output_bytes"), ("vision projector", "mmproj", "mmproj_bytes")]
ALWAYS_SHOWN = ("weights", "kv", "compute")


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


def _context_text(b: Breakdown) -> str:
    s = b.settings
    kv = ", unified KV" if s.kv_unified else (", one KV stream per sequence" if s.n_parallel > 1 else "")
    return f"{b.n_ctx:,} tokens ({fmt_ctx(b.n_ctx)}), {s.n_parallel} sequence(s){kv}"


def _offload_text(b: Breakdown) -> str:
    n_gpu_layers = sum(1 for layer in b.layers if layer.on_gpu)
    text = f"{n_gpu_layers}/{len(b.layers)} layers on the GPU"
    if b.settings.n_cpu_moe:
        text += f"; experts of {_experts_on_cpu(b)} of them kept on the CPU (--n-cpu-moe)"
    return text


def _experts_on_cpu(b: Breakdown) -> int:
    """GPU layers whose experts stay on the CPU."""
    return sum(1 for layer in b.layers if layer.on_gpu and layer.expert_bytes and not layer.experts_on_gpu)


def _head(b: Breakdown, title: str, mmproj_name: str | None) -> list[tuple[str, str]]:
    s = b.settings
    is_gpu = s.backend != "cpu"
    head = [
        ("model", title),
        ("backend", s.backend + ("" if is_gpu else " (everything in system RAM)")),
        ("context", _context_text(b)),
        ("KV cache", _kv_line(b)),
        ("flash attention", _flash_attn_words(b)),
        ("batch", f"-b {s.n_batch} -ub {s.n_ubatch}"),
    ]
    if is_gpu:
        head.append(("offload", _offload_text(b)))
    if mmproj_name:
        head.append(("mmproj", mmproj_name))
    return head


def _flash_attn_words(b: Breakdown) -> str:
    """On or off, and that it was resolved from auto."""
    s = b.settings
    return ("on" if b.flash_attn else "off") + (f" (from {s.flash_attn})" if s.flash_attn == "auto" else "")


def _row(name: str, gpu: int, host: int, label: str, is_gpu: bool) -> list[str]:
    return [name] + ([_size(gpu)] if is_gpu else []) + [_size(host), _size(gpu + host), label]


def _component_rows(b: Breakdown, gpu: DeviceUsage, host: DeviceUsage, is_gpu: bool) -> list[list[str]]:
    rows = [_row(name, getattr(gpu, attr), getattr(host, attr), _label(b, key), is_gpu)
            for name, key, attr in COMPONENTS
            if getattr(gpu, attr) or getattr(host, attr) or key in ALWAYS_SHOWN]
    total = _row("total (llama.cpp buffers)", gpu.total_bytes, host.total_bytes, "", is_gpu)
    total[-2] = _size(b.total_bytes)
    overhead = _row("+ runtime overhead", gpu.overhead_bytes, host.overhead_bytes, _label(b, "overhead"), is_gpu)
    overhead[-2] = _size(b.overhead_bytes)
    return rows + [total, overhead]


def _layer_line(b: Breakdown) -> str:
    kinds: dict[str, int] = {}
    for layer in b.layers:
        kinds[layer.kind] = kinds.get(layer.kind, 0) + 1
    line = ", ".join(f"{n} {_KIND_WORDS.get(k, k)}" for k, n in kinds.items())
    cells = sorted({layer.kv_cells for layer in b.layers if layer.kv_cells})
    if len(cells) > 1:
        line += f"; KV cells per layer: {', '.join(f'{c:,}' for c in cells)}"
    return line


def render_breakdown(b: Breakdown, title: str, mmproj_name: str | None, width: int | None = None) -> str:
    """The breakdown as text within `width` (the terminal's by default)."""
    width = width or text_width()
    is_gpu = b.settings.backend != "cpu"
    out = kv_lines(_head(b, title, mmproj_name), width)
    headers = ["component"] + (["GPU"] if is_gpu else []) + ["host RAM", "total", "accuracy"]
    out.append("")
    out += render_table(_component_rows(b, b.device("gpu"), b.device("host"), is_gpu), headers, width,
                        drop_order=COMPONENT_DROP_ORDER)
    out.append("")
    out += wrap(_layer_line(b), width, "layers: ")
    for w in b.warnings:
        out += wrap(w, width, "note: ")
    return "\n".join(out)


def breakdown_json(b: Breakdown, title: str, quant: str | None, mmproj_name: str | None) -> dict[str, Any]:
    d = b.model_dump(mode="json")
    top = {
        "model": title, "quant": quant, "mmproj": mmproj_name,
        "weights_bytes": b.weights_bytes, "kv_bytes": b.kv_bytes, "recurrent_bytes": b.recurrent_bytes,
        "compute_bytes": b.compute_bytes, "output_bytes": b.output_bytes, "mmproj_bytes": b.mmproj_bytes,
        "total_bytes": b.total_bytes, "overhead_bytes": b.overhead_bytes,
    }
    top.update({k: v for k, v in d.items() if k not in top})
    return top


def render_estimate_json(r: EstimateReport) -> str:
    """The breakdown, the runtime assumed and the device fit (null without a device), as JSON."""
    from .estimate_device import device_fit_json

    d = breakdown_json(r.breakdown, r.title, r.quant, r.mmproj_name)
    rt = r.runtime
    d["runtime"] = {"id": rt.id, "llama_build": rt.llama_build, "conservative": rt.conservative,
                    "statement": rt.statement}
    d["device_fit"] = device_fit_json(r.device) if r.device is not None else None
    return json.dumps(d, indent=2, allow_nan=False)


def render_estimate_text(r: EstimateReport, width: int | None = None) -> str:
    """The breakdown, then (with a device) a blank line and the device section."""
    width = width or text_width()
    text = printable(render_breakdown(r.breakdown, r.title, r.mmproj_name, width))
    if r.device is None:
        return text
    from .estimate_device import render_device_fit

    return f"{text}\n\n{render_device_fit(r.device, width)}"
