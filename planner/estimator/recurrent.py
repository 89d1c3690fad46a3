"""Recurrent state (Mamba/Mamba2 SSM, RWKV, gated delta net, LFM2 short conv, KDA, lightning attn).

src/llama-memory-recurrent.cpp: for each trunk layer the filter keeps (all layers for pure
recurrent archs; the recurrent ones of hybrids), two f32 tensors are created:
r = [n_embd_r, mem_size * (1 + n_rs_seq)] and s = [n_embd_s, mem_size * (1 + n_rs_seq)], with
mem_size = max(1, n_seq_max) (llama-model.cpp create_memory) and n_rs_seq = 0 unless speculative
rollback is requested. n_embd_r / n_embd_s come from llama-hparams.cpp (see model_facts). The
size does not depend on the context length.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model_facts import ModelFacts
from .context import HOST_ALIGNMENT, RunContext, pad

F32 = 4


@dataclass
class RecurrentResult:
    per_layer: list[int]
    total: int
    gpu: int
    host: int


def recurrent_state(facts: ModelFacts, ctx: RunContext) -> RecurrentResult:
    size = {True: _state_bytes(facts, ctx, ctx.backend.alignment), False: _state_bytes(facts, ctx, HOST_ALIGNMENT)}
    per_layer = [0] * len(facts.layers)
    for il in facts.derived("recurrent-trunk-layers", _recurrent_trunk_layers):
        per_layer[il] = size[ctx.state_on_gpu[il]]
    gpu, host = ctx.state_by_device(per_layer)
    return RecurrentResult(per_layer, gpu + host, gpu, host)


def _recurrent_trunk_layers(facts: ModelFacts) -> tuple[int, ...]:
    """The layers the recurrent memory walks: the recurrent ones of the trunk (il < n_layer)."""
    return tuple(il for il, layer in enumerate(facts.layers) if layer.is_recurrent and il < facts.n_layer)


def _state_bytes(facts: ModelFacts, ctx: RunContext, alignment: int) -> int:
    """The r and s tensors of one recurrent trunk layer, each padded to its buffer's alignment."""
    rows = max(1, ctx.n_seq)
    return sum(pad(width * rows * F32, alignment) for width in (facts.n_embd_r, facts.n_embd_s) if width)
