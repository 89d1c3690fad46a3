"""Host-side output buffer (logits, optional embeddings).

src/llama-context.cpp output_reserve(n_seq_max): n_outputs_max = n_seq_max at context creation;
the buffer holds n_vocab * n_outputs_max floats of logits (+ n_embd_out * n_outputs_max when
embeddings are requested). It lives in host memory (the output device's pinned host buffer type
when there is one, else the CPU buffer type) and is not part of llama_get_memory_breakdown().
n_vocab is the tokenizer's token count (vocab.n_tokens()).
"""

from __future__ import annotations

from ..model_facts import ModelFacts
from .context import RunContext

F32 = 4


def output_buffer(facts: ModelFacts, ctx: RunContext, embeddings: bool = False) -> int:
    n_out = max(1, ctx.n_seq)
    size = facts.n_vocab * n_out * F32
    if embeddings:
        size += facts.n_embd_out * n_out * F32
    if ctx.output_on_gpu:  # then it lives in the GPU backend's pinned host buffer type
        size += ctx.backend.host_buffer_extra
    return size
