"""Write GGUF files for tests: a real header (gguf's own writer), a sparse data region.

`write_gguf(path, metadata, tensors)` writes metadata and tensor infos exactly as gguf.GGUFWriter
does, then extends the file with a hole to its full size, so a "20 GB" model costs a few KB of
disk. Values are typed by `typed()` when the default inference (int -> uint32/int32...) is not
what a real converter writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType, GGUFWriter

Q = GGMLQuantizationType


@dataclass(frozen=True)
class typed:
    """A metadata value with an explicit GGUF type (and element type for arrays)."""

    value: Any
    vtype: GGUFValueType
    sub_type: GGUFValueType | None = None


def tensor_nbytes(shape: Sequence[int], qtype: GGMLQuantizationType) -> int:
    block, type_size = GGML_QUANT_SIZES[qtype]
    n = 1
    for d in shape:
        n *= d
    assert shape[0] % block == 0, f"row {shape[0]} not a multiple of block {block} for {qtype.name}"
    return n // block * type_size


def _infer(value: Any) -> tuple[GGUFValueType, GGUFValueType | None]:
    if isinstance(value, bool):
        return GGUFValueType.BOOL, None
    if isinstance(value, int):
        return (GGUFValueType.UINT32 if value >= 0 else GGUFValueType.INT32), None
    if isinstance(value, float):
        return GGUFValueType.FLOAT32, None
    if isinstance(value, str):
        return GGUFValueType.STRING, None
    if isinstance(value, (list, tuple)):
        sub = _infer(value[0])[0] if value else GGUFValueType.UINT32
        return GGUFValueType.ARRAY, sub
    raise TypeError(f"cannot infer GGUF type of {value!r}")


def _add_metadata(w: GGUFWriter, metadata: dict[str, Any]) -> None:
    """Every key but general.architecture (the writer's constructor sets that), typed or inferred."""
    for key, value in metadata.items():
        if key == "general.architecture":
            continue
        if isinstance(value, typed):
            w.add_key_value(key, value.value, value.vtype, value.sub_type)
        else:
            vtype, sub = _infer(value)
            w.add_key_value(key, value, vtype, sub)


def write_gguf(
    path: str | os.PathLike,
    metadata: dict[str, Any],
    tensors: Iterable[tuple[str, Sequence[int], GGMLQuantizationType]],
    *,
    sparse: bool = True,
    alignment: int | None = None,
) -> Path:
    """Write a GGUF whose tensor data region is a hole (sparse) of the exact full size.

    metadata: key -> value or typed(...); `general.architecture` must be present.
    tensors: (name, shape in ggml order (ne0 first), ggml type).
    """
    path = Path(path)
    arch = metadata.get("general.architecture", "llama")
    arch = arch.value if isinstance(arch, typed) else arch
    w = GGUFWriter(str(path), arch=arch)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    _add_metadata(w, metadata)
    total = 0
    for name, shape, qtype in tensors:
        nbytes = tensor_nbytes(shape, qtype)
        # numpy (outer-first) element shape; a non-uint8 dtype makes the writer take it as elements
        w.add_tensor_info(name, list(reversed(shape)), np.dtype(np.float16), nbytes, raw_dtype=qtype)
        total += nbytes
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    # the data region starts at the header end padded to the alignment (the writer pads there
    # before the first tensor), then every tensor padded to the alignment
    align = alignment or 32
    header_end = path.stat().st_size
    data_start = header_end + (-header_end % align)
    size = data_start
    for t in w.tensors[0].values():
        size += t.nbytes + (-t.nbytes % align)
    if sparse:
        with open(path, "r+b") as f:
            f.truncate(size)
    else:
        with open(path, "ab") as f:
            f.write(b"\0" * (size - header_end))
    return path


# --- split models --------------------------------------------------------------------------------


def write_gguf_split(
    path: str | os.PathLike,
    metadata: dict[str, Any],
    tensors: Sequence[tuple[str, Sequence[int], GGMLQuantizationType]],
    n_shards: int,
    *,
    sparse: bool = True,
) -> list[Path]:
    """Write a split model with gguf's own split support (`split.no/count/tensors.count` in
    every shard, the rest of the metadata only in the first), each shard's data region a hole.
    `path` names the model (`x.gguf` -> `x-00001-of-0000N.gguf`, ...); returns the shard paths."""
    path = Path(path)
    per_shard = -(-len(tensors) // n_shards)
    arch = metadata.get("general.architecture", "llama")
    arch = arch.value if isinstance(arch, typed) else arch
    w = GGUFWriter(str(path), arch=arch, split_max_tensors=per_shard)
    _add_metadata(w, metadata)
    for name, shape, qtype in tensors:
        nbytes = tensor_nbytes(shape, qtype)
        w.add_tensor_info(name, list(reversed(shape)), np.dtype(np.float16), nbytes, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    paths = w.format_shard_names(path)
    for shard_path, shard_tensors in zip(paths, w.tensors):
        header_end = shard_path.stat().st_size
        size = header_end + (-header_end % 32)
        for t in shard_tensors.values():
            size += t.nbytes + (-t.nbytes % 32)
        with open(shard_path, "r+b") as f:
            if sparse:
                f.truncate(size)
            else:
                f.seek(header_end)
                f.write(b"\0" * (size - header_end))
    return list(paths)


# --- realistic models ----------------------------------------------------------------------------
# Metadata keys, value types and tensor names as the llama.cpp converters write them, for a few
# architecture families. Dimensions are parameters: tests use tiny ones (fast to fuzz), the
# benchmark a real 7B-class shape with a 152k vocabulary.

V = GGUFValueType


def _token(i: int) -> str:
    """Token i: i in base 26 as letters, some with a BPE space mark or a multi-byte letter."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    word, k = "", i
    while True:
        word += letters[k % 26]
        k //= 26
        if not k:
            break
    return ("Ġ" if i % 3 == 0 else "") + word + ("é" if i % 7 == 0 else "")


def _merges(tokens: list[str]) -> list[str]:
    """About as many merges as tokens (a few hundred fewer), pairs of existing tokens."""
    n_vocab = len(tokens)
    n_merges = max(1, n_vocab - min(n_vocab // 2, 549))
    return [f"{tokens[i % n_vocab]} {tokens[(i * 7 + 1) % n_vocab]}" for i in range(n_merges)]


def tokenizer_metadata(n_vocab: int, *, model: str = "gpt2", merges: bool = True,
                       scores: bool = False) -> dict[str, Any]:
    """A BPE/SPM tokenizer block shaped like a real one: n_vocab distinct tokens of 1-12 bytes
    (some multi-byte UTF-8), about as many merges, token types, optional scores."""
    tokens = [_token(i) for i in range(n_vocab)]
    meta: dict[str, Any] = {
        "tokenizer.ggml.model": model,
        "tokenizer.ggml.pre": "qwen2" if model == "gpt2" else "default",
        "tokenizer.ggml.tokens": typed(tokens, V.ARRAY, V.STRING),
        "tokenizer.ggml.token_type": typed([1] * (n_vocab - 3) + [3] * 3, V.ARRAY, V.INT32),
    }
    if scores:
        meta["tokenizer.ggml.scores"] = typed([-float(i) for i in range(n_vocab)], V.ARRAY, V.FLOAT32)
    if merges:
        meta["tokenizer.ggml.merges"] = typed(_merges(tokens), V.ARRAY, V.STRING)
    meta["tokenizer.ggml.eos_token_id"] = typed(n_vocab - 1, V.UINT32)
    meta["tokenizer.ggml.bos_token_id"] = typed(n_vocab - 2, V.UINT32)
    meta["tokenizer.ggml.add_bos_token"] = False
    meta["tokenizer.chat_template"] = (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
        "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    )
    return meta


@dataclass(frozen=True)
class ModelShape:
    n_vocab: int = 256
    n_layer: int = 2
    n_embd: int = 256
    n_ff: int = 512
    n_head: int = 4
    n_head_kv: int = 2
    n_expert: int = 4
    n_expert_used: int = 2
    n_ff_exp: int = 256
    ctx: int = 4096
    qtype: GGMLQuantizationType = Q.Q4_K
    qtype_hi: GGMLQuantizationType = Q.Q6_K  # attn_v / ffn_down in a *_M mix


# per architecture: family of tensors + extra hyperparameters (suffix -> value or f(shape))
ARCHS: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("dense", {}),
    "qwen2": ("dense_bias", {}),
    "qwen3": ("qk_norm", {"attention.key_length": lambda s: s.n_embd // s.n_head,
                          "attention.value_length": lambda s: s.n_embd // s.n_head}),
    "qwen3moe": ("moe", {"expert_count": lambda s: s.n_expert,
                         "expert_used_count": lambda s: s.n_expert_used,
                         "expert_feed_forward_length": lambda s: s.n_ff_exp}),
    "gemma3": ("dense_post_norm", {"attention.sliding_window": 1024,
                                   "attention.sliding_window_pattern":
                                       lambda s: typed([(i + 1) % 6 != 0 for i in range(s.n_layer)],
                                                       V.ARRAY, V.BOOL)}),
    "deepseek2": ("mla", {"attention.kv_lora_rank": 512, "attention.q_lora_rank": 1536,
                          "attention.key_length": 576, "attention.value_length": 512,
                          "attention.key_length_mla": 192, "attention.value_length_mla": 128,
                          "rope.dimension_count": 64, "leading_dense_block_count": 1,
                          "expert_count": lambda s: s.n_expert,
                          "expert_used_count": lambda s: s.n_expert_used,
                          "expert_shared_count": 1,
                          "expert_feed_forward_length": lambda s: s.n_ff_exp,
                          "expert_weights_scale": typed(2.5, V.FLOAT32)}),
    "gpt-oss": ("moe", {"expert_count": lambda s: s.n_expert,
                        "expert_used_count": lambda s: s.n_expert_used,
                        "expert_feed_forward_length": lambda s: s.n_ff_exp,
                        "attention.sliding_window": 128}),
    "jamba": ("hybrid", {"ssm.conv_kernel": 4, "ssm.inner_size": lambda s: 2 * s.n_embd,
                         "ssm.state_size": 16, "ssm.time_step_rank": lambda s: s.n_embd // 16,
                         "attention.head_count_kv":
                             lambda s: typed([s.n_head_kv if i % 4 == 2 else 0
                                              for i in range(s.n_layer)], V.ARRAY, V.UINT32)}),
    "clip": ("clip", {}),
}


Tensors = list[tuple[str, tuple[int, ...], GGMLQuantizationType]]


def _general_metadata(arch: str, family: str, name: str | None) -> dict[str, Any]:
    return {
        "general.architecture": arch,
        "general.type": "mmproj" if family == "clip" else "model",
        "general.name": name or f"Test {arch}",
        "general.file_type": typed(15, V.UINT32),  # MOSTLY_Q4_K_M
        "general.quantization_version": typed(2, V.UINT32),
        "general.tags": ["text-generation", "test"],
    }


def _clip_spec(meta: dict[str, Any], s: ModelShape) -> tuple[dict[str, Any], Tensors]:
    """A Qwen2-VL-style vision projector (mmproj) of `s`'s width and depth."""
    meta.update({
        "clip.has_vision_encoder": True,
        "clip.projector_type": "qwen2vl_merger",
        "clip.vision.image_size": typed(560, V.UINT32),
        "clip.vision.patch_size": typed(14, V.UINT32),
        "clip.vision.embedding_length": typed(s.n_embd, V.UINT32),
        "clip.vision.feed_forward_length": typed(s.n_ff, V.UINT32),
        "clip.vision.block_count": typed(s.n_layer, V.UINT32),
        "clip.vision.attention.head_count": typed(s.n_head, V.UINT32),
        "clip.vision.attention.layer_norm_epsilon": typed(1e-6, V.FLOAT32),
        "clip.vision.image_mean": typed([0.48145466, 0.4578275, 0.40821073], V.ARRAY, V.FLOAT32),
        "clip.vision.image_std": typed([0.26862954, 0.26130258, 0.27577711], V.ARRAY, V.FLOAT32),
    })
    tensors = [("v.patch_embd.weight", (14, 14, 3, s.n_embd), Q.F16),
               ("v.position_embd.weight", (s.n_embd, 1600), Q.F16)]
    for i in range(s.n_layer):
        b = f"v.blk.{i}"
        tensors += [(f"{b}.ln1.weight", (s.n_embd,), Q.F32), (f"{b}.attn_qkv.weight", (s.n_embd, 3 * s.n_embd), Q.F16),
                    (f"{b}.attn_out.weight", (s.n_embd, s.n_embd), Q.F16), (f"{b}.ln2.weight", (s.n_embd,), Q.F32),
                    (f"{b}.ffn_up.weight", (s.n_embd, s.n_ff), Q.F16), (f"{b}.ffn_down.weight", (s.n_ff, s.n_embd), Q.F16)]
    tensors += [("mm.0.weight", (4 * s.n_embd, 4 * s.n_embd), Q.F16), ("mm.2.weight", (4 * s.n_embd, s.n_embd), Q.F16)]
    return meta, tensors


def _hparams(arch: str, extra: dict[str, Any], s: ModelShape) -> dict[str, Any]:
    """`{arch}.*` hyperparameters: the common ones, then the family's (plain ints as UINT32)."""
    hp = {
        "context_length": s.ctx, "embedding_length": s.n_embd, "block_count": s.n_layer,
        "feed_forward_length": s.n_ff, "attention.head_count": s.n_head,
        "attention.head_count_kv": s.n_head_kv, "rope.freq_base": typed(1_000_000.0, V.FLOAT32),
        "attention.layer_norm_rms_epsilon": typed(1e-6, V.FLOAT32), "vocab_size": s.n_vocab,
    }
    for k, v in extra.items():
        hp[k] = v(s) if callable(v) else v
    return {f"{arch}.{k}": _uint32_if_int(v) for k, v in hp.items()}


def _uint32_if_int(v: Any) -> Any:
    """A plain int as a UINT32 value; anything else (typed already, a float, a bool) as it is."""
    if isinstance(v, typed):
        return v
    return typed(v, V.UINT32) if isinstance(v, int) and not isinstance(v, bool) else v


def _attention(family: str, s: ModelShape, b: str, i: int) -> Tensors:
    """One block's attention (or, on a hybrid's recurrent layers, its SSM) and the family's extras."""
    e, q, hi = s.n_embd, s.qtype, s.qtype_hi
    hd = e // s.n_head
    kv = hd * s.n_head_kv
    attn = [(f"{b}.attn_q.weight", (e, e), q), (f"{b}.attn_k.weight", (e, kv), q),
            (f"{b}.attn_v.weight", (e, kv), hi), (f"{b}.attn_output.weight", (e, e), q)]
    if family == "mla":
        attn = [(f"{b}.attn_q_a.weight", (e, 1536), q), (f"{b}.attn_q_b.weight", (1536, s.n_head * 192), q),
                (f"{b}.attn_kv_a_mqa.weight", (e, 576), q), (f"{b}.attn_kv_a_norm.weight", (512,), Q.F32),
                (f"{b}.attn_k_b.weight", (128, 512, s.n_head), Q.Q8_0), (f"{b}.attn_v_b.weight", (512, 128, s.n_head), Q.Q8_0),
                (f"{b}.attn_output.weight", (s.n_head * 128, e), q)]
    if family == "hybrid" and i % 4 != 2:
        attn = [(f"{b}.ssm_in.weight", (e, 4 * e), q), (f"{b}.ssm_conv1d.weight", (4, 2 * e), Q.F32),
                (f"{b}.ssm_x.weight", (2 * e, e // 16 + 32), Q.F16), (f"{b}.ssm_dt.weight", (e // 16, 2 * e), Q.F16),
                (f"{b}.ssm_a", (16, 2 * e), Q.F32), (f"{b}.ssm_d", (2 * e,), Q.F32),
                (f"{b}.ssm_out.weight", (2 * e, e), q)]
    extras = {
        "dense_bias": [(f"{b}.attn_q.bias", (e,), Q.F32), (f"{b}.attn_k.bias", (kv,), Q.F32), (f"{b}.attn_v.bias", (kv,), Q.F32)],
        "qk_norm": [(f"{b}.attn_q_norm.weight", (hd,), Q.F32), (f"{b}.attn_k_norm.weight", (hd,), Q.F32)],
        "dense_post_norm": [(f"{b}.post_attention_norm.weight", (e,), Q.F32), (f"{b}.post_ffw_norm.weight", (e,), Q.F32)],
    }
    extras["moe"] = extras["qk_norm"]
    return attn + extras.get(family, [])


def _ffn(family: str, s: ModelShape, b: str, i: int) -> Tensors:
    """One block's feed-forward: routed experts (MoE, MLA after its dense first layer; MLA adds a
    shared expert) or a dense FFN."""
    e, q, hi = s.n_embd, s.qtype, s.qtype_hi
    if family not in ("moe", "mla") or (family == "mla" and i == 0):
        return [(f"{b}.ffn_gate.weight", (e, s.n_ff), q), (f"{b}.ffn_up.weight", (e, s.n_ff), q),
                (f"{b}.ffn_down.weight", (s.n_ff, e), hi)]
    t = [(f"{b}.ffn_gate_inp.weight", (e, s.n_expert), Q.F32),
         (f"{b}.ffn_gate_exps.weight", (e, s.n_ff_exp, s.n_expert), q),
         (f"{b}.ffn_up_exps.weight", (e, s.n_ff_exp, s.n_expert), q),
         (f"{b}.ffn_down_exps.weight", (s.n_ff_exp, e, s.n_expert), hi)]
    if family == "mla":
        t += [(f"{b}.ffn_gate_shexp.weight", (e, s.n_ff_exp), q), (f"{b}.ffn_up_shexp.weight", (e, s.n_ff_exp), q),
              (f"{b}.ffn_down_shexp.weight", (s.n_ff_exp, e), hi)]
    return t


def _block(family: str, s: ModelShape, i: int) -> Tensors:
    b = f"blk.{i}"
    return ([(f"{b}.attn_norm.weight", (s.n_embd,), Q.F32)] + _attention(family, s, b, i)
            + [(f"{b}.ffn_norm.weight", (s.n_embd,), Q.F32)] + _ffn(family, s, b, i))


def model_spec(arch: str, shape: ModelShape = ModelShape(), *, tokenizer: bool = True,
               name: str | None = None) -> tuple[dict[str, Any], Tensors]:
    """(metadata, tensors) for a model of `arch` (a key of ARCHS) with dimensions `shape`."""
    family, extra = ARCHS[arch]
    s = shape
    meta = _general_metadata(arch, family, name)
    if family == "clip":
        return _clip_spec(meta, s)
    meta.update(_hparams(arch, extra, s))
    if tokenizer:
        meta.update(tokenizer_metadata(s.n_vocab))
    tensors: Tensors = [("token_embd.weight", (s.n_embd, s.n_vocab), s.qtype), ("output_norm.weight", (s.n_embd,), Q.F32),
                        ("output.weight", (s.n_embd, s.n_vocab), s.qtype_hi)]
    for i in range(s.n_layer):
        tensors += _block(family, s, i)
    return meta, tensors


def write_model(path: str | os.PathLike, arch: str = "qwen2", shape: ModelShape = ModelShape(), *,
                shards: int = 1, **kw: Any) -> list[Path]:
    """Write a realistic model (see model_spec); returns its file(s)."""
    meta, tensors = model_spec(arch, shape, **kw)
    if shards > 1:
        return write_gguf_split(path, meta, tensors, shards)
    return [write_gguf(path, meta, tensors)]


# a 7B-class model with Qwen2's 152k vocabulary: the benchmark's and the speed test's subject
QWEN2_7B_SHAPE = ModelShape(n_vocab=152064, n_layer=28, n_embd=3584, n_ff=18944, n_head=28,
                            n_head_kv=4, ctx=32768)
