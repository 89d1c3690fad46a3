"""`memfit inspect`'s report: a model's architecture, parameters, variants and projectors as text
within the terminal (planner/report/layout.py): labelled facts wrap under their value column, the
variant and projector tables wrap their tensor types and then drop columns in the orders below,
and the commands to run next go on lines of their own. JSON is the summary itself
(planner/inspect.py's ModelSummary)."""

from __future__ import annotations

from pathlib import Path

from ..inspect import Attention, ModelSummary, PerLayer, Recurrent, TensorTypeCount
from ..units import fmt_bytes, one_line
from .layout import command_lines, kv_lines, render_table, text_width, unbroken, wrap

# Variants: the quant and its size are what a user picks by; the tensor types wrap (to no less
# than 24 columns) before anything goes, then the file count goes, then the tensor types, then bpw.
VARIANT_HEADERS = ["variant", "size", "bpw", "files", "tensor types (by bytes)"]
VARIANT_DROP_ORDER = ["files", "tensor types (by bytes)", "bpw"]
VARIANT_WRAP = {"tensor types (by bytes)": 24}
# Projectors: the file (what --mmproj takes) and its size first.
PROJECTOR_HEADERS = ["file", "size", "projector", "params", "tensor types"]
PROJECTOR_DROP_ORDER = ["params", "tensor types", "projector"]
PROJECTOR_WRAP = {"tensor types": 20}


def _count(n: int | None) -> str:
    if n is None:
        return "-"
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return str(n)


def _types(hist: list[TensorTypeCount], limit: int = 4) -> str:
    total = sum(t.bytes for t in hist) or 1
    parts = [f"{t.type} {t.tensors} ({100 * t.bytes / total:.0f}%)" for t in hist[:limit]]
    if len(hist) > limit:
        parts.append(f"+{len(hist) - limit} more")
    return ", ".join(unbroken(p) for p in parts)  # a table cell wraps between types, not inside one


def _heads(p: PerLayer) -> str:
    return p.text


_RECURRENT_LABEL = {"ssm": "recurrent (SSM)", "rwkv": "recurrent (RWKV)", "shortconv": "recurrent (short conv)"}


def _recurrent_row(r: Recurrent) -> tuple[str, str]:
    """The numbers that size a recurrent state, in the architecture's own terms."""
    parts = _wkv_parts(r)
    for label, value in (("d_state", r.state_size), ("d_inner", r.inner_size), ("conv kernel", r.conv_kernel),
                         ("dt rank", r.time_step_rank), ("groups", r.group_count), ("conv cache", r.conv_cache)):
        if value is not None:
            parts.append(f"{label} {value}")
    if r.state_bytes_per_sequence:
        parts.append(_state_words(r.state_bytes_per_sequence, r.layers))
    return _RECURRENT_LABEL.get(r.kind, "recurrent"), ", ".join(parts)


def _wkv_parts(r: Recurrent) -> list[str]:
    """RWKV's head size (and heads) and token shift."""
    if not r.wkv_head_size:
        return []
    parts = [f"head size {r.wkv_head_size}" + (f" ({r.wkv_heads} heads)" if r.wkv_heads else "")]
    return parts + ([f"token shift {r.token_shift_count}"] if r.token_shift_count else [])


def _state_words(nbytes: int, layers: int | None) -> str:
    in_layers = f", {layers} layers" if layers else ""
    return f"state {fmt_bytes(nbytes, unit='MiB')} per sequence (f32{in_layers})"


def _shown_name(name: str, s: ModelSummary) -> str:
    """A local projector by its path inside the directory given (the model row names that
    directory), so the file column stays narrow; the JSON keeps the full path."""
    if s.source != "local":
        return name
    try:
        return str(Path(name).relative_to(Path(s.ref)))
    except ValueError:  # not under the reference (a file given directly): as it is
        return name


def _parameters(s: ModelSummary) -> str:
    params = _count(s.total_parameters)
    if s.active_parameters is None:
        return params
    params += f" total, {_count(s.active_parameters)} active ({s.expert_used_count} of {s.expert_count} experts"
    return params + (f" + {s.expert_shared_count} shared)" if s.expert_shared_count else ")")


def _swa_text(a: Attention, layers: int | None) -> str:
    swa = f"{a.sliding_window} tokens"
    if a.swa_layers is not None and layers:
        swa += f" on {a.swa_layers} of {layers} layers"
    return swa


def _mla_text(a: Attention) -> str:
    mla = f"kv_lora_rank {a.kv_lora_rank}"
    if a.q_lora_rank:
        mla += f", q_lora_rank {a.q_lora_rank}"
    if a.key_length_mla:
        mla += f", key/value length {a.key_length_mla}/{a.value_length_mla or '-'}"
    return mla


def _attention_rows(s: ModelSummary) -> list[tuple[str, str]]:
    rows = [("attention", "none (recurrent: a fixed-size state per sequence, no KV cache)")] if s.attention_free else []
    a = s.attention
    if a is None:
        return rows
    rows += [("attention heads", _heads(a.head_count)), ("KV heads", _heads(a.head_count_kv)),
             ("head dim (K / V)", f"{a.key_length or '-'} / {a.value_length or '-'}")]
    if a.sliding_window:
        rows.append(("sliding window", _swa_text(a, s.layers)))
    if a.kv_lora_rank:
        rows.append(("MLA", _mla_text(a)))
    return rows


def _context_text(s: ModelSummary) -> str:
    ctx = f"{s.context_length:,} tokens" if s.context_length else "-"
    if s.context_length and s.attention_free:
        ctx += " (as declared: a recurrent model has no context limit of its own)"
    return ctx


def _fact_rows(s: ModelSummary) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [("model", _model_words(s)), ("architecture", s.architecture or "-"),
                                   ("parameters", _parameters(s)),
                                   ("layers", str(s.layers) if s.layers is not None else "-"),
                                   ("embedding / FFN", f"{s.embedding_length or '-'} / {s.feed_forward_length or '-'}")]
    rows += _attention_rows(s)
    if s.recurrent is not None:
        rows.append(_recurrent_row(s.recurrent))
    return rows + [("training context", _context_text(s)),
                   ("vocabulary", f"{s.vocab_size:,} tokens" if s.vocab_size else "-")]


def _model_words(s: ModelSummary) -> str:
    """The model's name and where it comes from (the repo at its commit, else the reference)."""
    title = one_line(s.name) if s.name else s.ref
    where = f"{s.repo} @ {s.revision[:12]}" if s.repo and s.revision else s.ref
    return f"{title}  ({where})"


def _variant_table(s: ModelSummary, width: int) -> list[str]:
    rows = [[v.quant, fmt_bytes(v.size_bytes), f"{v.bits_per_weight:.2f}" if v.bits_per_weight else "-",
             str(len(v.files)), _types(v.tensor_types)] for v in s.variants]
    return render_table(rows, VARIANT_HEADERS, width, drop_order=VARIANT_DROP_ORDER, wrap_min=VARIANT_WRAP,
                        align=["left", "left", "right", "right", "left"])


def _projector_lines(s: ModelSummary, width: int) -> list[str]:
    if not s.projectors:
        return []
    rows = [[_shown_name(p.name, s), fmt_bytes(p.size_bytes), p.projector_type or "-", _count(p.parameters),
             _types(p.tensor_types)] for p in s.projectors]
    out = [""] + wrap("companions (vision/audio projectors, loaded with --mmproj):", width)
    return out + render_table(rows, PROJECTOR_HEADERS, width, drop_order=PROJECTOR_DROP_ORDER, wrap_min=PROJECTOR_WRAP)


def _next_commands(s: ModelSummary, width: int) -> list[str]:
    """What to run next for a Hub model: plan (no quant picked here: which one fits is `plan`'s
    question) and llama-server -hf (without a tag it takes Q4_K_M)."""
    tagged = [v for v in s.variants if v.hf_tag]
    if not tagged:
        return []
    repo = tagged[0].hf_tag.rsplit(":", 1)[0]  # type: ignore[union-attr]
    out = [""] + wrap("which quant fits your machine:", width)
    out += command_lines(["memfit", "plan", repo, "--device", "ID"], width, indent="  ")
    if len(tagged) == 1:
        return (out + wrap("use with llama.cpp:", width)
                + command_lines(["llama-server", "-hf", tagged[0].hf_tag], width, indent="  "))  # type: ignore[list-item]
    default = any(v.quant.upper() == "Q4_K_M" for v in tagged)
    out += wrap("use with llama.cpp" + (" (without :QUANT llama.cpp takes Q4_K_M)" if default else "") + ":", width)
    return out + command_lines(["llama-server", "-hf", f"{repo}:QUANT"], width, indent="  ")


def render(s: ModelSummary, width: int | None = None) -> str:
    """The summary as text within `width` (the terminal's by default)."""
    width = width or text_width()
    out = kv_lines(_fact_rows(s), width) + [""] + _variant_table(s, width)
    out += _projector_lines(s, width) + _next_commands(s, width)
    for p in s.problems:
        out += wrap(p, width, "note: ")
    return "\n".join(out)


def verbose_footer() -> str:
    """The network and cache activity of this run (inspect -v)."""
    from .. import hub
    from ..cache import default_cache

    n = hub.STATS.as_dict()
    c = default_cache().stats
    return (f"network: {n['api_requests']} API request(s), {n['range_requests']} range request(s), "
            f"{fmt_bytes(n['bytes_received'], unit='MiB')} received, {n['retries']} retr{'y' if n['retries'] == 1 else 'ies'}; "
            f"cache: {c.hits} hit(s), {c.misses} miss(es), {c.corrupt} damaged entr{'y' if c.corrupt == 1 else 'ies'} "
            f"replaced, at {default_cache().root}")
