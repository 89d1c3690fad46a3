"""`memfit inspect MODEL`: architecture, parameters and quant variants of a GGUF model."""

from __future__ import annotations

import logging
import sys

import click
from tabulate import tabulate

from ..inspect import ModelSummary, PerLayer, Recurrent, TensorTypeCount, summarize
from ..resolver import resolve
from ..units import fmt_bytes, one_line, printable


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
    return ", ".join(parts)


def _heads(p: PerLayer) -> str:
    return p.text


_RECURRENT_LABEL = {"ssm": "recurrent (SSM)", "rwkv": "recurrent (RWKV)", "shortconv": "recurrent (short conv)"}


def _recurrent_row(r: Recurrent) -> tuple[str, str]:
    """The numbers that size a recurrent state, in the architecture's own terms."""
    parts: list[str] = []
    if r.wkv_head_size:
        parts.append(f"head size {r.wkv_head_size}" + (f" ({r.wkv_heads} heads)" if r.wkv_heads else ""))
        if r.token_shift_count:
            parts.append(f"token shift {r.token_shift_count}")
    for label, value in (("d_state", r.state_size), ("d_inner", r.inner_size), ("conv kernel", r.conv_kernel),
                         ("dt rank", r.time_step_rank), ("groups", r.group_count), ("conv cache", r.conv_cache)):
        if value is not None:
            parts.append(f"{label} {value}")
    if r.state_bytes_per_sequence:
        layers = f", {r.layers} layers" if r.layers else ""
        parts.append(f"state {fmt_bytes(r.state_bytes_per_sequence, unit='MiB')} per sequence (f32{layers})")
    return _RECURRENT_LABEL.get(r.kind, "recurrent"), ", ".join(parts)


def render(s: ModelSummary) -> str:
    title = one_line(s.name) if s.name else s.ref
    where = f"{s.repo} @ {s.revision[:12]}" if s.repo and s.revision else s.ref
    rows: list[tuple[str, str]] = [("model", f"{title}  ({where})"), ("architecture", s.architecture or "-")]
    params = _count(s.total_parameters)
    if s.active_parameters is not None:
        params += f" total, {_count(s.active_parameters)} active ({s.expert_used_count} of {s.expert_count} experts"
        params += f" + {s.expert_shared_count} shared)" if s.expert_shared_count else ")"
    rows.append(("parameters", params))
    rows.append(("layers", str(s.layers) if s.layers is not None else "-"))
    rows.append(("embedding / FFN", f"{s.embedding_length or '-'} / {s.feed_forward_length or '-'}"))
    a = s.attention
    if s.attention_free:
        rows.append(("attention", "none (recurrent: a fixed-size state per sequence, no KV cache)"))
    if a is not None:
        rows.append(("attention heads", _heads(a.head_count)))
        rows.append(("KV heads", _heads(a.head_count_kv)))
        rows.append(("head dim (K / V)", f"{a.key_length or '-'} / {a.value_length or '-'}"))
        if a.sliding_window:
            swa = f"{a.sliding_window} tokens"
            if a.swa_layers is not None and s.layers:
                swa += f" on {a.swa_layers} of {s.layers} layers"
            rows.append(("sliding window", swa))
        if a.kv_lora_rank:
            mla = f"kv_lora_rank {a.kv_lora_rank}"
            if a.q_lora_rank:
                mla += f", q_lora_rank {a.q_lora_rank}"
            if a.key_length_mla:
                mla += f", key/value length {a.key_length_mla}/{a.value_length_mla or '-'}"
            rows.append(("MLA", mla))
    if s.recurrent is not None:
        rows.append(_recurrent_row(s.recurrent))
    ctx = f"{s.context_length:,} tokens" if s.context_length else "-"
    if s.context_length and s.attention_free:
        ctx += " (as declared: a recurrent model has no context limit of its own)"
    rows.append(("training context", ctx))
    rows.append(("vocabulary", f"{s.vocab_size:,} tokens" if s.vocab_size else "-"))
    out = [tabulate(rows, tablefmt="plain")]

    vrows = [(v.quant, fmt_bytes(v.size_bytes), f"{v.bits_per_weight:.2f}" if v.bits_per_weight else "-",
              len(v.files), _types(v.tensor_types)) for v in s.variants]
    out.append("")
    out.append(tabulate(vrows, headers=["variant", "size", "bpw", "files", "tensor types (by bytes)"],
                        tablefmt="simple"))
    if s.projectors:
        prow = [(p.name, fmt_bytes(p.size_bytes), p.projector_type or "-", _count(p.parameters),
                 _types(p.tensor_types)) for p in s.projectors]
        out.append("")
        out.append("companions (vision/audio projectors, loaded with --mmproj):")
        out.append(tabulate(prow, headers=["file", "size", "projector", "params", "tensor types"],
                            tablefmt="simple"))
    tagged = [v for v in s.variants if v.hf_tag]
    if tagged:
        # no quant picked here: which one fits is `plan`'s question; -hf without a tag takes Q4_K_M
        repo = tagged[0].hf_tag.rsplit(":", 1)[0]
        default = next((v for v in tagged if v.quant.upper() == "Q4_K_M"), None)
        out.append("")
        out.append(f"which quant fits your machine: memfit plan {repo} --device ID")
        if len(tagged) == 1:
            out.append(f"use with llama.cpp: llama-server -hf {tagged[0].hf_tag}")
        else:
            out.append(f"use with llama.cpp: llama-server -hf {repo}:QUANT"
                       + (" (without :QUANT llama.cpp takes Q4_K_M)" if default else ""))
    for p in s.problems:
        out.append(f"note: {p}")
    return "\n".join(out)


def _verbose_footer() -> str:
    from .. import hub
    from ..cache import default_cache

    n = hub.STATS.as_dict()
    c = default_cache().stats
    return (f"network: {n['api_requests']} API request(s), {n['range_requests']} range request(s), "
            f"{fmt_bytes(n['bytes_received'], unit='MiB')} received, {n['retries']} retr{'y' if n['retries'] == 1 else 'ies'}; "
            f"cache: {c.hits} hit(s), {c.misses} miss(es), {c.corrupt} damaged entr{'y' if c.corrupt == 1 else 'ies'} "
            f"replaced, at {default_cache().root}")


@click.command("inspect")
@click.argument("model")
@click.option("--revision", metavar="REV", help="Hub branch, tag or commit (default: main).")
@click.option("--quant", metavar="QUANT", help="Only this quant variant (e.g. Q4_K_M).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Log network and cache activity to stderr.")
def inspect_command(model: str, revision: str | None, quant: str | None, as_json: bool, verbose: bool) -> None:
    """Show a model's architecture, parameters and quant variants from its GGUF headers.

    \b
    MODEL: a .gguf file or directory, owner/repo[:QUANT], hf.co/owner/repo:QUANT,
    a Hub URL, a short name (qwen3-vl-32b, gpt-oss-20b, ...), an Ollama model
    (ollama:qwen3:32b, gpt-oss:120b) or lmstudio:publisher/repo[:QUANT].
    Only header bytes are read (HTTP range requests); results are cached.
    """
    logger = logging.getLogger("memfit")
    handler: logging.Handler | None = None
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("memfit: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        resolved = resolve(model, revision=revision, quant=quant, load_headers=True)
        summary = summarize(resolved)
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)
    if as_json:
        click.echo(summary.model_dump_json(indent=2))
    else:
        click.echo(printable(render(summary)))
    if verbose:
        click.echo(_verbose_footer(), err=True)


COMMANDS = [inspect_command]
