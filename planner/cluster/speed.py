"""The pipeline's speed (estimates). One sequence decodes through the members one after another:
each member reads its share of the weights and KV cache at its own bandwidth (planner.speed on the
member's breakdown), then hands the hidden state (n_embd floats) to the next over the link. Over
RPC every remote member adds round trips per token (set inputs, graph_compute, fetch) and a cost
per remote layer (graph serialization) -- data/links.toml [rpc], fitted on field data
(docs/accuracy.md). Prefill runs the ubatches through the members the same way (no overlap for one
sequence), with the RPC path's measured factor."""

from __future__ import annotations

from collections.abc import Sequence

from .links import Link, rpc_costs

F32 = 4


def rpc_overhead_s(remote_layers: Sequence[int], link: Link, hidden_bytes: int, crossings: int) -> float:
    """Seconds per decoded token the link and the RPC protocol add: per remote member its round
    trips and per-layer cost, per crossing the hidden state's transfer (plus a round trip on a
    local PCIe boundary, where there is no RPC)."""
    transfer = crossings * hidden_bytes / link.bytes_per_s
    if link.local:
        return transfer + crossings * link.rtt_us * 1e-6
    c = rpc_costs()
    per_member = c.round_trips_per_token * link.rtt_us * 1e-6
    return transfer + sum(per_member + n * c.per_layer_ms * 1e-3 for n in remote_layers if n)


def pipeline_tps(member_s: Sequence[float], overhead_s: float) -> float:
    total = sum(member_s) + overhead_s
    return round(1.0 / total, 2) if total > 0 else 0.0


def prefill_seconds(member_s: Sequence[float], link: Link, hidden_bytes: int, ubatches: int, n_ubatch: int,
                    crossings: int) -> float:
    """The members' prompt times one after another, the hidden states of every ubatch across the
    link, and the RPC path's own factor (1 on a local link)."""
    transfer = ubatches * crossings * (n_ubatch * hidden_bytes / link.bytes_per_s + link.rtt_us * 1e-6)
    factor = 1.0 if link.local else rpc_costs().prefill_factor
    return sum(member_s) / factor + transfer


def field_check(single_tps: float, remote_layers: Sequence[int], link: Link, hidden_bytes: int,
                crossings: int, returned_bytes: int = 0) -> float:
    """What the model predicts over the cluster from a measured single-box speed (identical
    members: the members' read times add up to the single box's); returned_bytes: what else comes
    back over the link per token (the logits, when the output layer is remote)."""
    extra = returned_bytes / link.bytes_per_s
    return pipeline_tps([1.0 / single_tps], rpc_overhead_s(remote_layers, link, hidden_bytes, crossings) + extra)


def assumptions(link: Link) -> list[str]:
    c = rpc_costs()
    out = [f"link {link.label}: {link.gbps:g} Gbit/s, {link.rtt_us:g} us round trip ({link.source})",
           "decode: members one after another (one sequence), each at its own bandwidth"]
    if link.local:
        out.append("cards in one host: llama.cpp copies the hidden state between devices (no RPC)")
    else:
        out.append(f"RPC: {c.round_trips_per_token:g} round trips per token per remote member and "
                   f"{c.per_layer_ms:g} ms per remote layer (fitted on field data, docs/accuracy.md)")
        out.append(f"prefill over RPC at {c.prefill_factor:g}x the members' sum (two DGX Sparks, measured)")
    return out
