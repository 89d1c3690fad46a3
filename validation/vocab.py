"""Full-size tokenizer arrays that llama.cpp's vocab loader accepts, generated from a compact spec.

Memory only depends on the token count (it sizes the embedding check, the logits and the output
buffer), so the token texts are placeholders. They are still shaped like the real thing so the
loader's checks pass: BPE vocabularies start with the 256 byte-level symbols (llama.cpp tokenizes
"\\n" at load time) and carry a few merges; SentencePiece vocabularies carry <unk>/<s>/</s> and
the 256 <0xNN> byte tokens with scores. A spec looks like
{"model": "gpt2", "pre": "qwen2", "n_tokens": 151936, "special": {"bos": 151643, ...}}.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from gguf import GGUFValueType

# token types as llama.cpp defines them (llama_token_type)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


@lru_cache(maxsize=1)
def _byte_level_symbols() -> tuple[str, ...]:
    """GPT-2's byte -> printable unicode map, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    mapping = dict(zip(printable, codes))
    return tuple(chr(mapping[b]) for b in range(256))


def _bpe_arrays(n_tokens: int, special_ids: set[int]) -> dict[str, Any]:
    tokens = list(_byte_level_symbols())
    tokens += [f"t{i}" for i in range(len(tokens), n_tokens)]
    types = [NORMAL] * n_tokens
    for i in special_ids:
        tokens[i] = f"<|special_{i}|>"
        types[i] = CONTROL
    merges = ["Ġ Ġ", "Ġ t", "t 0", "Ġ a", "i n"]
    return {
        "tokenizer.ggml.tokens": (tokens, GGUFValueType.STRING),
        "tokenizer.ggml.token_type": (types, GGUFValueType.INT32),
        "tokenizer.ggml.merges": (merges, GGUFValueType.STRING),
    }


def _spm_arrays(n_tokens: int, special_ids: set[int]) -> dict[str, Any]:
    tokens = ["<pad>", "</s>", "<s>", "<unk>"]
    types = [CONTROL, CONTROL, CONTROL, UNKNOWN]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [BYTE] * 256
    tokens += [f"▁t{i}" for i in range(len(tokens), n_tokens)]
    types += [NORMAL] * (n_tokens - len(types))
    for i in special_ids:
        if types[i] == NORMAL:
            tokens[i] = f"<special_{i}>"
            types[i] = CONTROL
    scores = [0.0 if t != NORMAL else -float(i) for i, t in enumerate(types)]
    return {
        "tokenizer.ggml.tokens": (tokens, GGUFValueType.STRING),
        "tokenizer.ggml.scores": (scores, GGUFValueType.FLOAT32),
        "tokenizer.ggml.token_type": (types, GGUFValueType.INT32),
    }


_BUILDERS = {"gpt2": _bpe_arrays, "llama": _spm_arrays}


def vocab_metadata(spec: dict[str, Any]) -> dict[str, tuple[Any, GGUFValueType, GGUFValueType | None]]:
    """GGUF tokenizer keys for a vocab spec: key -> (value, type, element type for arrays)."""
    model = spec["model"]
    n_tokens = int(spec["n_tokens"])
    special = {k: int(v) for k, v in spec.get("special", {}).items()}
    arrays = _BUILDERS[model](n_tokens, set(special.values()))
    out: dict[str, tuple[Any, GGUFValueType, GGUFValueType | None]] = {
        "tokenizer.ggml.model": (model, GGUFValueType.STRING, None),
        "tokenizer.ggml.pre": (spec.get("pre", "default"), GGUFValueType.STRING, None),
    }
    for key, (values, sub) in arrays.items():
        out[key] = (values, GGUFValueType.ARRAY, sub)
    for name, token_id in special.items():
        out[f"tokenizer.ggml.{name}_token_id"] = (token_id, GGUFValueType.UINT32, None)
    for flag in ("add_bos_token", "add_eos_token"):
        if flag in spec:
            out[f"tokenizer.ggml.{flag}"] = (bool(spec[flag]), GGUFValueType.BOOL, None)
    return out
