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
from .context import RunContext, pad

F32 = 4


@dataclass
class RecurrentResult:
    per_layer: list[int]
    total: int
    gpu: int
    host: int


def recurrent_state(facts: ModelFacts, ctx: RunContext) -> RecurrentResult:
    rows = max(1, ctx.n_seq)
    per_layer: list[int] = []
    total = gpu = host = 0
    for il, layer in enumerate(facts.layers):
        if not layer.is_recurrent or il >= facts.n_layer:
            per_layer.append(0)
            continue
        on_gpu = ctx.kv_on_gpu and ctx.layer_on_gpu[il]
        align = ctx.backend.alignment if on_gpu else 32
        size = pad(facts.n_embd_r * rows * F32, align) if facts.n_embd_r else 0
        size += pad(facts.n_embd_s * rows * F32, align) if facts.n_embd_s else 0
        per_layer.append(size)
        total += size
        if on_gpu:
            gpu += size
        else:
            host += size
    return RecurrentResult(per_layer, total, gpu, host)
