"""Tensor lists per architecture, as llama.cpp b11434's loader expects them (src/models/<arch>.cpp,
load_arch_tensors) and as convert_hf_to_gguf.py names them.

Shapes are in ggml order (ne0, the contiguous row, first). Each function reads the hyperparameters
from the GGUF metadata, the way the loader does, so a wrong shape here makes llama.cpp refuse the
file ("tensor has wrong shape") and an extra or missing tensor makes it refuse it too ("wrong number
of tensors" / "missing tensor"): loading is the check that these lists are exact.

`source_type` reproduces the converter's rule for the type of each tensor in a BF16 conversion
(conversion/base.py): 1-D tensors, norms, routers, convolution kernels and biases stay F32.
"""

from __future__ import annotations

from typing import Callable, Sequence

Tensor = tuple[str, tuple[int, ...]]


class Hp:
    """Metadata accessor with llama.cpp's names."""

    def __init__(self, meta: dict, n_vocab: int, options: dict | None = None):
        self.meta = meta
        self.options = options or {}  # per-model tensor choices the metadata does not record
        self.arch = meta["general.architecture"][0]
        self.n_vocab = n_vocab

    def get(self, key: str, default=None):
        v = self.meta.get(f"{self.arch}.{key}")
        return default if v is None else v[0]

    @property
    def n_layer(self) -> int:
        return self.get("block_count")

    @property
    def n_embd(self) -> int:
        return self.get("embedding_length")

    @property
    def n_head(self) -> int:
        return self.get("attention.head_count")

    def n_head_kv(self, il: int = 0) -> int:
        v = self.get("attention.head_count_kv", self.n_head)
        return v[il] if isinstance(v, list) else v

    @property
    def head_k(self) -> int:
        return self.get("attention.key_length", self.n_embd // self.n_head)

    @property
    def head_v(self) -> int:
        return self.get("attention.value_length", self.n_embd // self.n_head)

    @property
    def n_ff(self) -> int:
        return self.get("feed_forward_length")


def _blk(i: int, name: str) -> str:
    return f"blk.{i}.{name}"


def _embd_and_output(hp: Hp, tied: bool, norm_name: str = "output_norm.weight") -> tuple[list[Tensor], list[Tensor]]:
    head = [("token_embd.weight", (hp.n_embd, hp.n_vocab))]
    tail = [(norm_name, (hp.n_embd,))]
    if not tied:
        tail.append(("output.weight", (hp.n_embd, hp.n_vocab)))
    return head, tail


def _attn_qkvo(hp: Hp, i: int, n_q: int, n_k: int, n_v: int, n_o_in: int, bias: bool = False) -> list[Tensor]:
    t = [
        (_blk(i, "attn_q.weight"), (hp.n_embd, n_q)),
        (_blk(i, "attn_k.weight"), (hp.n_embd, n_k)),
        (_blk(i, "attn_v.weight"), (hp.n_embd, n_v)),
    ]
    if bias:
        t += [(_blk(i, "attn_q.bias"), (n_q,)), (_blk(i, "attn_k.bias"), (n_k,)), (_blk(i, "attn_v.bias"), (n_v,))]
    t.append((_blk(i, "attn_output.weight"), (n_o_in, hp.n_embd)))
    return t


def _gqa_attn(hp: Hp, i: int, bias: bool = False) -> list[Tensor]:
    """The common GQA block: Q/O over all heads, K/V over the KV heads, per-layer head dims."""
    return _attn_qkvo(hp, i, hp.head_k * hp.n_head, hp.head_k * hp.n_head_kv(), hp.head_v * hp.n_head_kv(),
                      hp.head_k * hp.n_head, bias=bias)


def _dense_ffn(hp: Hp, i: int, n_ff: int) -> list[Tensor]:
    return [
        (_blk(i, "ffn_gate.weight"), (hp.n_embd, n_ff)),
        (_blk(i, "ffn_up.weight"), (hp.n_embd, n_ff)),
        (_blk(i, "ffn_down.weight"), (n_ff, hp.n_embd)),
    ]


def _experts(hp: Hp, i: int, n_ff_exp: int, n_expert: int) -> list[Tensor]:
    return [
        (_blk(i, "ffn_gate_inp.weight"), (hp.n_embd, n_expert)),
        (_blk(i, "ffn_gate_exps.weight"), (hp.n_embd, n_ff_exp, n_expert)),
        (_blk(i, "ffn_up_exps.weight"), (hp.n_embd, n_ff_exp, n_expert)),
        (_blk(i, "ffn_down_exps.weight"), (n_ff_exp, hp.n_embd, n_expert)),
    ]


def _norm(i: int, name: str, n: int) -> Tensor:
    return (_blk(i, f"{name}.weight"), (n,))


def _qk_norms(i: int, n: int) -> list[Tensor]:
    return [_norm(i, "attn_q_norm", n), _norm(i, "attn_k_norm", n)]


def _shared_expert(hp: Hp, i: int, n_ff_sh: int) -> list[Tensor]:
    return [
        (_blk(i, "ffn_gate_shexp.weight"), (hp.n_embd, n_ff_sh)),
        (_blk(i, "ffn_up_shexp.weight"), (hp.n_embd, n_ff_sh)),
        (_blk(i, "ffn_down_shexp.weight"), (n_ff_sh, hp.n_embd)),
    ]


def _stack(hp: Hp, layer: Callable[[int], list[Tensor]], *, tied: bool, first: Sequence[Tensor] = ()) -> list[Tensor]:
    """token_embd (and `first`, global tensors the loader reads next), every layer's tensors, then
    the output norm and, untied, the output matrix."""
    head, tail = _embd_and_output(hp, tied=tied)
    return head + list(first) + [t for i in range(hp.n_layer) for t in layer(i)] + tail


def llama(hp: Hp) -> list[Tensor]:
    """Options: `tied` (no output.weight: Llama-3.2-1B/3B), `rope_freqs` (default True: the llama3
    rope scaling tensor of Llama 3.x; False for Llama 2, which has no rope scaling)."""
    rope = [("rope_freqs.weight", (hp.get("rope.dimension_count", hp.head_k) // 2,))] if hp.options.get("rope_freqs", True) else []
    return _stack(hp, lambda i: [_norm(i, "attn_norm", hp.n_embd), *_gqa_attn(hp, i), _norm(i, "ffn_norm", hp.n_embd),
                                 *_dense_ffn(hp, i, hp.n_ff)],
                  tied=hp.options.get("tied", False), first=rope)


def internlm2(hp: Hp) -> list[Tensor]:
    """models/internlm2.cpp and models/exaone.cpp: the llama block (create_tensor_qkv accepts the
    separate attn_q/k/v the converters write; InternLM2's fused wqkv is split), untied output, no
    rope_freqs (EXAONE's, written only for llama3 rope scaling, is TENSOR_NOT_REQUIRED)."""
    return _stack(hp, lambda i: [_norm(i, "attn_norm", hp.n_embd), *_gqa_attn(hp, i), _norm(i, "ffn_norm", hp.n_embd),
                                 *_dense_ffn(hp, i, hp.n_ff)],
                  tied=False)


def seed_oss(hp: Hp) -> list[Tensor]:
    """models/seed-oss.cpp: GQA with q/k/v biases (none on the output), attn_norm and
    post_attention_norm (LLM_TENSOR_ATTN_POST_NORM) before the FFN, untied output."""
    return _stack(hp, lambda i: [*_gqa_attn(hp, i, bias=True), _norm(i, "attn_norm", hp.n_embd),
                                 _norm(i, "post_attention_norm", hp.n_embd), *_dense_ffn(hp, i, hp.n_ff)],
                  tied=False)


def qwen3(hp: Hp) -> list[Tensor]:
    """qwen3 and qwen3vl (the VL text model has the same tensors); small Qwen3 models tie the output
    to token_embd (layout option `tied`)."""
    return _stack(hp, lambda i: [_norm(i, "attn_norm", hp.n_embd), *_gqa_attn(hp, i), *_qk_norms(i, hp.head_k),
                                 _norm(i, "ffn_norm", hp.n_embd), *_dense_ffn(hp, i, hp.n_ff)],
                  tied=bool(hp.options.get("tied", False)))


def qwen3moe(hp: Hp) -> list[Tensor]:
    return _stack(hp, lambda i: [_norm(i, "attn_norm", hp.n_embd), *_gqa_attn(hp, i), *_qk_norms(i, hp.head_k),
                                 _norm(i, "ffn_norm", hp.n_embd),
                                 *_experts(hp, i, hp.get("expert_feed_forward_length"), hp.get("expert_count"))],
                  tied=False)


def gpt_oss(hp: Hp) -> list[Tensor]:
    head, tail = _embd_and_output(hp, tied=False)
    n_rot = hp.head_k
    n_exp, n_ff_exp = hp.get("expert_count"), hp.get("expert_feed_forward_length")
    out = head
    for i in range(hp.n_layer):
        out.append(_norm(i, "attn_norm", hp.n_embd))
        out += _attn_qkvo(hp, i, hp.n_head * n_rot, hp.n_head_kv() * n_rot, hp.n_head_kv() * n_rot, hp.n_head * n_rot, bias=True)
        out.append((_blk(i, "attn_output.bias"), (hp.n_embd,)))
        out.append((_blk(i, "attn_sinks.weight"), (hp.n_head,)))
        out.append(_norm(i, "post_attention_norm", hp.n_embd))
        out += _experts(hp, i, n_ff_exp, n_exp)
        out += [
            (_blk(i, "ffn_gate_inp.bias"), (n_exp,)),
            (_blk(i, "ffn_gate_exps.bias"), (n_ff_exp, n_exp)),
            (_blk(i, "ffn_up_exps.bias"), (n_ff_exp, n_exp)),
            (_blk(i, "ffn_down_exps.bias"), (hp.n_embd, n_exp)),
        ]
    return out + tail


def _gemma_layer(hp: Hp, i: int, qk_norm: bool) -> list[Tensor]:
    """Gemma 2/3: attention (Gemma 3 with q/k norms) and FFN, each between a pre- and a post-norm."""
    return ([_norm(i, "attn_norm", hp.n_embd), *_gqa_attn(hp, i)] + (_qk_norms(i, hp.head_k) if qk_norm else [])
            + [_norm(i, "post_attention_norm", hp.n_embd), _norm(i, "ffn_norm", hp.n_embd),
               *_dense_ffn(hp, i, hp.n_ff), _norm(i, "post_ffw_norm", hp.n_embd)])


def gemma3(hp: Hp) -> list[Tensor]:
    return _stack(hp, lambda i: _gemma_layer(hp, i, qk_norm=True), tied=True)


def deepseek2(hp: Hp) -> list[Tensor]:
    """MLA with the split k_b/v_b tensors (modern converter). Without `attention.q_lora_rank` the
    query is one matrix (DeepSeek-V2-Lite); with it, a LoRA pair attn_q_a/attn_q_b and its norm
    (GLM-4.7-Flash, DeepSeek-V3 family). `exp_probs_b.bias` is the router's score-correction bias
    (e_score_correction_bias of noaux_tc routers); llama.cpp loads it when present."""
    head, tail = _embd_and_output(hp, tied=False)
    n_head = hp.n_head
    k_mla, v_mla = hp.get("attention.key_length_mla"), hp.get("attention.value_length_mla")
    rope = hp.get("rope.dimension_count")
    nope = k_mla - rope
    kv_lora = hp.get("attention.kv_lora_rank")
    q_lora = hp.get("attention.q_lora_rank", 0)
    n_dense = hp.get("leading_dense_block_count", 0)
    n_exp, n_ff_exp, n_shared = hp.get("expert_count"), hp.get("expert_feed_forward_length"), hp.get("expert_shared_count")
    out = head
    for i in range(hp.n_layer):
        out.append(_norm(i, "attn_norm", hp.n_embd))
        if q_lora:
            out.append(_norm(i, "attn_q_a_norm", q_lora))
        out.append(_norm(i, "attn_kv_a_norm", kv_lora))
        if q_lora:
            out.append((_blk(i, "attn_q_a.weight"), (hp.n_embd, q_lora)))
            out.append((_blk(i, "attn_q_b.weight"), (q_lora, n_head * k_mla)))
        else:
            out.append((_blk(i, "attn_q.weight"), (hp.n_embd, n_head * k_mla)))
        out.append((_blk(i, "attn_kv_a_mqa.weight"), (hp.n_embd, kv_lora + rope)))
        out.append((_blk(i, "attn_k_b.weight"), (nope, kv_lora, n_head)))
        out.append((_blk(i, "attn_v_b.weight"), (kv_lora, v_mla, n_head)))
        out.append((_blk(i, "attn_output.weight"), (n_head * v_mla, hp.n_embd)))
        out.append(_norm(i, "ffn_norm", hp.n_embd))
        if i < n_dense:
            out += _dense_ffn(hp, i, hp.n_ff)
        else:
            out += _experts(hp, i, n_ff_exp, n_exp)
            if hp.options.get("exp_probs_b"):
                out.append((_blk(i, "exp_probs_b.bias"), (n_exp,)))
            out += _shared_expert(hp, i, n_ff_exp * n_shared)
    return out + tail


def lfm2(hp: Hp) -> list[Tensor]:
    head, tail = _embd_and_output(hp, tied=True, norm_name="token_embd_norm.weight")
    head_dim = hp.n_embd // hp.n_head
    l_cache = hp.get("shortconv.l_cache")
    out = head
    for i in range(hp.n_layer):
        out.append(_norm(i, "attn_norm", hp.n_embd))
        if hp.n_head_kv(i) > 0:
            out += [_norm(i, "attn_q_norm", head_dim), _norm(i, "attn_k_norm", head_dim)]
            out += _attn_qkvo(hp, i, hp.n_embd, head_dim * hp.n_head_kv(i), head_dim * hp.n_head_kv(i), hp.n_embd)
        else:
            out += [
                (_blk(i, "shortconv.conv.weight"), (l_cache, hp.n_embd)),
                (_blk(i, "shortconv.in_proj.weight"), (hp.n_embd, 3 * hp.n_embd)),
                (_blk(i, "shortconv.out_proj.weight"), (hp.n_embd, hp.n_embd)),
            ]
        out.append(_norm(i, "ffn_norm", hp.n_embd))
        out += _dense_ffn(hp, i, hp.n_ff)
    return out + tail


def _gated_attn(hp: Hp, i: int) -> list[Tensor]:
    """Gated full attention (Qwen3-Next, Qwen3.5): q carries the gate (2 x n_head x head_dim), q/k norms."""
    return _attn_qkvo(hp, i, hp.head_k * hp.n_head * 2, hp.head_k * hp.n_head_kv(), hp.head_v * hp.n_head_kv(),
                      hp.head_k * hp.n_head) + _qk_norms(i, hp.head_k)


def _delta_net(hp: Hp, i: int, beta_alpha: list[Tensor]) -> list[Tensor]:
    """A Gated DeltaNet layer: fused qkv + gate, the convolution, decay, norm and output around the
    beta/alpha projections (one fused ssm_ba in Qwen3-Next, two in Qwen3.5)."""
    d_state, dt_rank = hp.get("ssm.state_size"), hp.get("ssm.time_step_rank")
    key_dim, value_dim = d_state * hp.get("ssm.group_count"), d_state * dt_rank
    return [
        (_blk(i, "attn_qkv.weight"), (hp.n_embd, key_dim * 2 + value_dim)),
        (_blk(i, "attn_gate.weight"), (hp.n_embd, value_dim)),
        (_blk(i, "ssm_conv1d.weight"), (hp.get("ssm.conv_kernel"), key_dim * 2 + value_dim)),
        (_blk(i, "ssm_dt.bias"), (dt_rank,)),
        (_blk(i, "ssm_a"), (dt_rank,)),
        *beta_alpha,
        (_blk(i, "ssm_norm.weight"), (d_state,)),
        (_blk(i, "ssm_out.weight"), (value_dim, hp.n_embd)),
    ]


def _gated_shared_expert(hp: Hp, i: int, n_ff_sh: int) -> list[Tensor]:
    return [(_blk(i, "ffn_gate_inp_shexp.weight"), (hp.n_embd,))] + _shared_expert(hp, i, n_ff_sh)


def qwen3next(hp: Hp) -> list[Tensor]:
    interval = hp.get("full_attention_interval", 4)
    dt_rank = hp.get("ssm.time_step_rank")
    n_exp, n_ff_exp = hp.get("expert_count"), hp.get("expert_feed_forward_length")
    n_ff_sh = hp.get("expert_shared_feed_forward_length")

    def layer(i: int) -> list[Tensor]:
        mixer = (_gated_attn(hp, i) if (i + 1) % interval == 0
                 else _delta_net(hp, i, [(_blk(i, "ssm_ba.weight"), (hp.n_embd, dt_rank * 2))]))
        return ([_norm(i, "attn_norm", hp.n_embd), _norm(i, "post_attention_norm", hp.n_embd)] + mixer
                + _experts(hp, i, n_ff_exp, n_exp) + _gated_shared_expert(hp, i, n_ff_sh))

    return _stack(hp, layer, tied=False)


def granitehybrid(hp: Hp) -> list[Tensor]:
    """Granite-4.0-H (models/granite-hybrid.cpp): a layer is Mamba2 iff its head_count_kv is 0,
    every layer has an FFN (routed experts + shared expert when expert_count > 0, else dense);
    tied embeddings; no RoPE (NoPE), so no rope_freqs."""
    head, tail = _embd_and_output(hp, tied=True)
    d_conv, d_inner = hp.get("ssm.conv_kernel"), hp.get("ssm.inner_size")
    d_state, n_ssm_head, n_group = hp.get("ssm.state_size"), hp.get("ssm.time_step_rank"), hp.get("ssm.group_count")
    d_in_proj = 2 * d_inner + 2 * n_group * d_state + n_ssm_head
    conv_ch = d_inner + 2 * n_group * d_state
    head_dim = hp.n_embd // hp.n_head
    n_exp = hp.get("expert_count", 0)
    n_ff_sh = hp.get("expert_shared_feed_forward_length", 0)
    out = head
    for i in range(hp.n_layer):
        out.append(_norm(i, "attn_norm", hp.n_embd))
        if hp.n_head_kv(i) == 0:
            out += [
                (_blk(i, "ssm_in.weight"), (hp.n_embd, d_in_proj)),
                (_blk(i, "ssm_conv1d.weight"), (d_conv, conv_ch)),
                (_blk(i, "ssm_conv1d.bias"), (conv_ch,)),
                (_blk(i, "ssm_dt.bias"), (n_ssm_head,)),
                (_blk(i, "ssm_a"), (1, n_ssm_head)),
                (_blk(i, "ssm_d"), (1, n_ssm_head)),
                (_blk(i, "ssm_norm.weight"), (d_inner // n_group, n_group)),
                (_blk(i, "ssm_out.weight"), (d_inner, hp.n_embd)),
            ]
        else:
            kv = head_dim * hp.n_head_kv(i)
            out += _attn_qkvo(hp, i, head_dim * hp.n_head, kv, kv, head_dim * hp.n_head)
        out.append(_norm(i, "ffn_norm", hp.n_embd))
        if n_exp:
            out += _experts(hp, i, hp.n_ff, n_exp)
            if n_ff_sh:
                out += _shared_expert(hp, i, n_ff_sh)
        else:
            out += _dense_ffn(hp, i, hp.n_ff)
    return out + tail


def qwen2(hp: Hp) -> list[Tensor]:
    """Qwen2 / Qwen2.5 (models/qwen2.cpp): the llama block with q/k/v biases, no rope_freqs;
    option `tied` for the small releases that tie the embeddings."""
    return _stack(hp, lambda i: [_norm(i, "attn_norm", hp.n_embd), *_gqa_attn(hp, i, bias=True),
                                 _norm(i, "ffn_norm", hp.n_embd), *_dense_ffn(hp, i, hp.n_ff)],
                  tied=hp.options.get("tied", False))


def _nextn(hp: Hp, i: int, embed: bool, head: bool) -> list[Tensor]:
    """The MTP block's own tensors (blk.<n_layer>.nextn.*); llama.cpp skips them unless asked to
    load the MTP head. `embed` / `head`: the checkpoint carries its own embedding / LM head copy."""
    out = [(_blk(i, "nextn.eh_proj.weight"), (2 * hp.n_embd, hp.n_embd)),
           _norm(i, "nextn.enorm", hp.n_embd), _norm(i, "nextn.hnorm", hp.n_embd)]
    if embed:
        out.append((_blk(i, "nextn.embed_tokens.weight"), (hp.n_embd, hp.n_vocab)))
    if head:
        out.append((_blk(i, "nextn.shared_head_head.weight"), (hp.n_embd, hp.n_vocab)))
    out.append(_norm(i, "nextn.shared_head_norm", hp.n_embd))
    return out


def glm4moe(hp: Hp) -> list[Tensor]:
    """GLM-4.5 / 4.5-Air (models/glm4-moe.cpp): GQA with q/k/v biases (q/k norms optional, option
    `qk_norm`), post-attention norm, the first `leading_dense_block_count` layers dense, then
    routed experts + score-correction bias + shared expert (n_ff_exp * expert_shared_count). The
    last `nextn_predict_layers` blocks are the MTP head: a full block plus nextn.* tensors (option
    `nextn_embed_head`: it also carries embed_tokens / shared_head_head copies)."""
    head, tail = _embd_and_output(hp, tied=False)
    n_main = hp.n_layer - hp.get("nextn_predict_layers", 0)
    n_dense = hp.get("leading_dense_block_count", 0)
    n_exp, n_ff_exp = hp.get("expert_count"), hp.get("expert_feed_forward_length")
    n_ff_sh = n_ff_exp * hp.get("expert_shared_count", 0)
    out = head
    for i in range(hp.n_layer):
        out.append(_norm(i, "attn_norm", hp.n_embd))
        out += _gqa_attn(hp, i, bias=hp.options.get("attn_bias", True))
        if hp.options.get("qk_norm", False):
            out += _qk_norms(i, hp.head_k)
        out.append(_norm(i, "post_attention_norm", hp.n_embd))
        if i < n_dense:
            out += _dense_ffn(hp, i, hp.n_ff)
        else:
            out += _experts(hp, i, n_ff_exp, n_exp)
            out.append((_blk(i, "exp_probs_b.bias"), (n_exp,)))
            if n_ff_sh:
                out += _shared_expert(hp, i, n_ff_sh)
        if i >= n_main:
            both = hp.options.get("nextn_embed_head", False)
            out += _nextn(hp, i, embed=both, head=both)
    return out + tail


def qwen35(hp: Hp) -> list[Tensor]:
    """Qwen3.5 / 3.6 (models/qwen35.cpp, qwen35moe.cpp): hybrid of Gated DeltaNet layers (fused
    qkv + gate, separate beta/alpha projections) and gated full attention (q carries the gate:
    2 x n_head x head_dim), the layer kind from `attention.recurrent_layers` (else every
    full_attention_interval-th layer is attention). Dense FFN (qwen35) or routed experts + gated
    shared expert (qwen35moe). The last `nextn_predict_layers` blocks are the MTP head: a
    full-attention block (dense or MoE FFN) plus nextn.* tensors."""
    head, tail = _embd_and_output(hp, tied=hp.options.get("tied", False))
    n_main = hp.n_layer - hp.get("nextn_predict_layers", 0)
    recurrent = hp.get("attention.recurrent_layers")
    interval = hp.get("full_attention_interval", 4)
    dt_rank = hp.get("ssm.time_step_rank")
    n_exp = hp.get("expert_count", 0)
    out = head
    for i in range(hp.n_layer):
        is_recr = recurrent[i] if recurrent else (i < n_main and (i + 1) % interval != 0)
        out.append(_norm(i, "attn_norm", hp.n_embd))
        out.append(_norm(i, "post_attention_norm", hp.n_embd))
        if not is_recr:
            out += _gated_attn(hp, i)
        else:
            out += _delta_net(hp, i, [(_blk(i, "ssm_beta.weight"), (hp.n_embd, dt_rank)),
                                      (_blk(i, "ssm_alpha.weight"), (hp.n_embd, dt_rank))])
        if n_exp:
            n_ff_sh = hp.get("expert_shared_feed_forward_length", hp.n_ff)
            out += _experts(hp, i, hp.get("expert_feed_forward_length"), n_exp)
            out += _gated_shared_expert(hp, i, n_ff_sh)
        else:
            out += _dense_ffn(hp, i, hp.n_ff)
        if i >= n_main:
            out += _nextn(hp, i, embed=False, head=False)
    return out + tail


def gemma4(hp: Hp) -> list[Tensor]:
    """Gemma 4 (models/gemma4.cpp): per-layer attention geometry from the sliding-window pattern
    (SWA layers: key_length_swa and the SWA KV-head count; full layers: key_length and their own
    KV-head count), q/k norms, post-attention and post-FFN norms, a per-layer output scale, one
    shared rope_freqs tensor (proportional rope of the full layers). Option `k_eq_v`: full layers
    have no attn_v (attention_k_eq_v). With experts (26B-A4B) every layer also has the router (+ its
    input scale), extra norms, fused gate_up experts and a per-expert down scale; the dense FFN
    runs in parallel as the shared expert. Tied embeddings."""
    swa = hp.get("attention.sliding_window_pattern")
    hd_full, hd_swa = hp.get("attention.key_length"), hp.get("attention.key_length_swa")
    n_exp, n_ff_exp = hp.get("expert_count", 0), hp.get("expert_feed_forward_length", 0)
    out = [("token_embd.weight", (hp.n_embd, hp.n_vocab)), ("rope_freqs.weight", (hd_full // 2,))]
    for i in range(hp.n_layer):
        hd = hd_swa if swa[i] else hd_full
        kv = hd * hp.n_head_kv(i)
        out.append(_norm(i, "attn_norm", hp.n_embd))
        out.append((_blk(i, "attn_q.weight"), (hp.n_embd, hd * hp.n_head)))
        out.append((_blk(i, "attn_k.weight"), (hp.n_embd, kv)))
        if swa[i] or not hp.options.get("k_eq_v", False):
            out.append((_blk(i, "attn_v.weight"), (hp.n_embd, kv)))
        out.append((_blk(i, "attn_output.weight"), (hd * hp.n_head, hp.n_embd)))
        out += _qk_norms(i, hd)
        out.append(_norm(i, "post_attention_norm", hp.n_embd))
        out.append((_blk(i, "layer_output_scale.weight"), (1,)))
        out.append(_norm(i, "ffn_norm", hp.n_embd))
        out += _dense_ffn(hp, i, hp.n_ff)
        out.append(_norm(i, "post_ffw_norm", hp.n_embd))
        if n_exp:
            out += [
                (_blk(i, "ffn_gate_inp.weight"), (hp.n_embd, n_exp)),
                (_blk(i, "ffn_gate_inp.scale"), (hp.n_embd,)),
                _norm(i, "pre_ffw_norm_2", hp.n_embd),
                _norm(i, "post_ffw_norm_1", hp.n_embd),
                _norm(i, "post_ffw_norm_2", hp.n_embd),
                (_blk(i, "ffn_gate_up_exps.weight"), (hp.n_embd, 2 * n_ff_exp, n_exp)),
                (_blk(i, "ffn_down_exps.weight"), (n_ff_exp, hp.n_embd, n_exp)),
                (_blk(i, "ffn_down_exps.scale"), (n_exp,)),
            ]
    return out + [("output_norm.weight", (hp.n_embd,))]


def gemma2(hp: Hp) -> list[Tensor]:
    """models/gemma2.cpp: like gemma3 without q/k norms; output tied to token_embd."""
    return _stack(hp, lambda i: _gemma_layer(hp, i, qk_norm=False), tied=True)


def olmoe(hp: Hp) -> list[Tensor]:
    """models/olmoe.cpp: full-width q/k norms, experts without a shared one."""
    return _stack(hp, lambda i: [_norm(i, "attn_norm", hp.n_embd), *_gqa_attn(hp, i), *_qk_norms(i, hp.n_embd),
                                 _norm(i, "ffn_norm", hp.n_embd), *_experts(hp, i, hp.n_ff, hp.get("expert_count"))],
                  tied=False)


def granitemoe(hp: Hp) -> list[Tensor]:
    """models/granite-moe.cpp (Granite 3.x MoE): the llama attention block, routed experts of n_ff
    without a shared one (no expert_shared_feed_forward_length), output tied to token_embd."""
    return _stack(hp, lambda i: [_norm(i, "attn_norm", hp.n_embd), *_gqa_attn(hp, i), _norm(i, "ffn_norm", hp.n_embd),
                                 *_experts(hp, i, hp.n_ff, hp.get("expert_count"))],
                  tied=True)


def stablelm(hp: Hp) -> list[Tensor]:
    """models/stablelm.cpp (StableLM 2): LayerNorms with biases, q/k/v biases (use_qkv_bias), the
    output projection without; ffn_norm present (sequential residuals); untied output."""
    def ln(i: int, name: str) -> list[Tensor]:
        return [_norm(i, name, hp.n_embd), (_blk(i, f"{name}.bias"), (hp.n_embd,))]
    head, tail = _embd_and_output(hp, tied=False)
    layers = [t for i in range(hp.n_layer)
              for t in [*ln(i, "attn_norm"), *_gqa_attn(hp, i, bias=True), *ln(i, "ffn_norm"), *_dense_ffn(hp, i, hp.n_ff)]]
    return head + layers + [("output_norm.bias", (hp.n_embd,))] + tail


def starcoder2(hp: Hp) -> list[Tensor]:
    """models/starcoder2.cpp: LayerNorms with biases, biases on q/k/v/o and on the two-matrix GELU
    FFN (ffn_up, ffn_down; no gate); output optional (tied to token_embd when absent)."""
    def ln(i: int, name: str) -> list[Tensor]:
        return [_norm(i, name, hp.n_embd), (_blk(i, f"{name}.bias"), (hp.n_embd,))]

    def layer(i: int) -> list[Tensor]:
        return [*ln(i, "attn_norm"), *_gqa_attn(hp, i, bias=True), (_blk(i, "attn_output.bias"), (hp.n_embd,)),
                *ln(i, "ffn_norm"), (_blk(i, "ffn_up.weight"), (hp.n_embd, hp.n_ff)), (_blk(i, "ffn_up.bias"), (hp.n_ff,)),
                (_blk(i, "ffn_down.weight"), (hp.n_ff, hp.n_embd)), (_blk(i, "ffn_down.bias"), (hp.n_embd,))]
    head, tail = _embd_and_output(hp, tied=bool(hp.options.get("tied", False)))
    return head + [t for i in range(hp.n_layer) for t in layer(i)] + [("output_norm.bias", (hp.n_embd,))] + tail


def phi3(hp: Hp) -> list[Tensor]:
    """models/phi3.cpp: fused QKV, fused gate+up (2 x n_ff), LongRoPE factors (layer 0, the rest
    TENSOR_DUPLICATED)."""
    head, tail = _embd_and_output(hp, tied=False)
    out = head
    n_qkv = hp.n_embd + 2 * hp.head_k * hp.n_head_kv()
    n_rot = hp.get("rope.dimension_count", hp.head_k)
    for i in range(hp.n_layer):
        out.append(_norm(i, "attn_norm", hp.n_embd))
        out += [(_blk(i, "attn_qkv.weight"), (hp.n_embd, n_qkv)), (_blk(i, "attn_output.weight"), (hp.n_embd, hp.n_embd))]
        out.append(_norm(i, "ffn_norm", hp.n_embd))
        out += [(_blk(i, "ffn_up.weight"), (hp.n_embd, 2 * hp.n_ff)), (_blk(i, "ffn_down.weight"), (hp.n_ff, hp.n_embd))]
    out += [("rope_factors_long.weight", (n_rot // 2,)), ("rope_factors_short.weight", (n_rot // 2,))]
    return out + tail


def phimoe(hp: Hp) -> list[Tensor]:
    """models/phimoe.cpp: LayerNorms with biases, separate q/k/v (optional biases, written: the
    release has attention biases, the loader requires attn_output.bias), routed experts without a
    shared one, output with bias (required), LongRoPE factors."""
    def ln(i: int, name: str) -> list[Tensor]:
        return [_norm(i, name, hp.n_embd), (_blk(i, f"{name}.bias"), (hp.n_embd,))]

    n_rot = hp.get("rope.dimension_count", hp.head_k)
    layers = [t for i in range(hp.n_layer)
              for t in [*ln(i, "attn_norm"), *_gqa_attn(hp, i, bias=True), (_blk(i, "attn_output.bias"), (hp.n_embd,)),
                        *ln(i, "ffn_norm"), *_experts(hp, i, hp.n_ff, hp.get("expert_count"))]]
    head, tail = _embd_and_output(hp, tied=False)
    return (head + layers + [("rope_factors_long.weight", (n_rot // 2,)), ("rope_factors_short.weight", (n_rot // 2,)),
                             ("output_norm.bias", (hp.n_embd,)), ("output.bias", (hp.n_vocab,))] + tail)


def exaone4(hp: Hp) -> list[Tensor]:
    """models/exaone4.cpp: post-norms only (attn_post_norm, ffn_post_norm), per-head q/k norms, the
    llama3 rope_freqs (layer 0, TENSOR_NOT_REQUIRED) when the config has llama3 rope scaling; option
    `tied` (no output.weight)."""
    rope = [("rope_freqs.weight", (hp.get("rope.dimension_count", hp.head_k) // 2,))] if hp.options.get("rope_freqs") else []
    return _stack(hp, lambda i: [*_gqa_attn(hp, i), _norm(i, "post_attention_norm", hp.n_embd), *_qk_norms(i, hp.head_k),
                                 *_dense_ffn(hp, i, hp.n_ff), _norm(i, "post_ffw_norm", hp.n_embd)],
                  tied=bool(hp.options.get("tied", False)), first=rope)


def ernie4_5_moe(hp: Hp) -> list[Tensor]:
    """models/ernie4-5-moe.cpp: GQA; the first leading_dense_block_count layers dense, the rest
    (interleave step 1) routed experts with the score-correction bias (exp_probs_b) and a shared
    expert of expert_shared_feed_forward_length; output optional (option `tied`)."""
    n_exp, n_dense = hp.get("expert_count"), hp.get("leading_dense_block_count", 0)

    def layer(i: int) -> list[Tensor]:
        out = [_norm(i, "attn_norm", hp.n_embd), *_gqa_attn(hp, i), _norm(i, "ffn_norm", hp.n_embd)]
        if i < n_dense:
            return out + _dense_ffn(hp, i, hp.n_ff)
        return (out + _experts(hp, i, hp.get("expert_feed_forward_length"), n_exp)
                + [(_blk(i, "exp_probs_b.bias"), (n_exp,))]
                + _shared_expert(hp, i, hp.get("expert_shared_feed_forward_length")))
    return _stack(hp, layer, tied=bool(hp.options.get("tied", False)))


LAYOUTS: dict[str, Callable[[Hp], list[Tensor]]] = {
    "qwen2": qwen2,
    "qwen2vl": qwen2,  # models/qwen2vl.cpp: qwen2's tensors (q/k/v biases); M-RoPE is metadata only
    "gemma2": gemma2,
    "olmoe": olmoe,
    "phi3": phi3,
    "llama": llama,
    "internlm2": internlm2,
    "seed_oss": seed_oss,
    "granitemoe": granitemoe,
    "stablelm": stablelm,
    "starcoder2": starcoder2,
    "phimoe": phimoe,
    "exaone4": exaone4,
    "ernie4_5-moe": ernie4_5_moe,
    "exaone": internlm2,
    "qwen3": qwen3,
    "qwen3vl": qwen3,
    "qwen3moe": qwen3moe,
    "qwen3vlmoe": qwen3moe,  # models/qwen3vlmoe.cpp: qwen3moe's tensors; deepstack is metadata only
    "gpt-oss": gpt_oss,
    "gemma3": gemma3,
    "deepseek2": deepseek2,
    "lfm2": lfm2,
    "qwen3next": qwen3next,
    "granitehybrid": granitehybrid,
    "qwen2": qwen2,
    "glm4moe": glm4moe,
    "qwen35": qwen35,
    "qwen35moe": qwen35,
    "gemma4": gemma4,
}

# tensor name fragments the converter keeps in F32 whatever the output type (conversion/base.py)
_F32_NAMES = ("ffn_gate_inp.", "ffn_gate_inp_shexp.", "ssm_conv1d.", "shortconv.conv.", "position_embd.", "token_types.")


def source_type(arch: str, name: str, shape: tuple[int, ...]) -> str:
    """The type convert_hf_to_gguf.py --outtype bf16 gives a tensor (gpt-oss keeps experts in MXFP4)."""
    if len(shape) <= 1 or name.endswith("_norm.weight"):
        return "F32"
    if any(f in name for f in _F32_NAMES) or not name.endswith(".weight"):
        return "F32"
    if arch == "gpt-oss" and "_exps.weight" in name:
        return "MXFP4"
    return "BF16"


def tensor_list(meta: dict, n_vocab: int, options: dict | None = None) -> list[Tensor]:
    hp = Hp(meta, n_vocab, options)
    return LAYOUTS[hp.arch](hp)
