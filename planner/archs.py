"""The one registry of architecture quirks that change how llama.cpp sizes memory.

Everything else is read through the generic `{arch}.*` metadata keys (block_count,
attention.head_count[_kv] scalars or per-layer arrays, key_length/value_length, ...) in
planner/model_facts.py. An architecture only appears here when llama.cpp (b11434) applies a rule
that the metadata alone does not express: a default SWA pattern, a gate on the sliding-window key,
which layers are recurrent, layers that reuse another layer's KV, models without a KV cache, and
so on. Each entry names the llama.cpp source it was read from.

Source root: llama.cpp b11434, `src/models/<arch>.cpp` (load_arch_hparams / load_arch_tensors),
`src/llama-model.cpp` (create_memory), `src/llama-arch.cpp` (llm_arch_is_recurrent/_hybrid).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Literal

SwaGate = Literal["always", "window>0", "not-window-0", "n_layer==64", "never"]
RecurrentRule = Literal[
    "none",            # no recurrent layers
    "all",             # llm_arch_is_recurrent: every layer is recurrent, no KV cache at all
    "head_kv_zero",    # a layer is recurrent iff its head_count_kv is 0 (jamba, lfm2, granite-h...)
    "head_kv_ff_zero", # recurrent iff head_count_kv == 0 and feed_forward_length == 0 (nemotron-h)
    "interval",        # attention.recurrent_layers array, else every full_attention_interval-th is attention
    "all_and_attn",    # falcon-h1: every layer has both a recurrent state and a KV cache
]
AttnFilter = Literal["not_recurrent", "not_recurrent_no_ff", "all"]


@dataclass(frozen=True)
class SwaRule:
    """How llama.cpp decides which layers use sliding-window attention.

    pattern: default n_pattern for set_swa_pattern() (llama-hparams.cpp); the GGUF key
      `{arch}.attention.sliding_window_pattern` overrides it (an int = new period, an array =
      per-layer flags). None = the per-layer array key is required.
    dense_first: the full-attention layer opens each period (il % n != 0 is SWA) instead of
      closing it (il % n < n - 1 is SWA).
    gate: when SWA is enabled at all ("window>0": only if sliding_window is present and > 0).
    default_window: n_swa when the sliding_window key is absent.
    forced_window: n_swa set by llama.cpp regardless of the key (llama4: 8192, smallthinker: 4096).
    swa_is_not_recurrent: lfm2 style, every attention (non-recurrent) layer is SWA.
    """

    pattern: int | None
    dense_first: bool = False
    gate: SwaGate = "always"
    default_window: int | None = None
    forced_window: int | None = None
    swa_is_not_recurrent: bool = False


@dataclass(frozen=True)
class ArchRule:
    swa: SwaRule | None = None
    recurrent: RecurrentRule = "none"
    recurrent_interval_default: int = 4     # full_attention_interval default ("interval" rule)
    attn_filter: AttnFilter = "not_recurrent"
    no_kv: bool = False                     # create_memory() returns nullptr: no KV cache at all
    kv_from_start: Callable[[dict, int], int] | None = None  # n_layer_kv_from_start(meta, n_layer_all)
    mla: bool = False                       # reads key_length_mla/value_length_mla (K-only latent cache)
    dsa_indexer: bool = False               # extra K-only lightning-indexer cache (DeepSeek sparse attention)
    indexer_types: bool = False             # attention.indexer.types says which layers have the indexer
    lightning_attention: bool = False       # recurrent state of head_k x head_k per head (MiniMax-01)
    mtp_loaded: bool = False                # nextn (MTP) blocks are loaded even without --mtp
    token_embd_norm_is_output: bool = False  # lfm2 names its output norm token_embd_norm
    no_output_head: bool = False            # encoders: no output matrix, no tied duplicate
    flash_attn_forced_off: bool = False     # llama_init_from_model forces FA off (grok)
    approximate: str | None = None          # llama.cpp uses a cache layout memfit does not model exactly
    source: str = ""

    @property
    def recurrent_only(self) -> bool:
        """llm_arch_is_recurrent: every layer is recurrent, there is no attention and no KV cache."""
        return self.recurrent == "all"

    @property
    def requires_kv_heads(self) -> bool:
        """Whether every layer with query heads must own K/V heads: not where the architecture marks
        its recurrent layers by head_count_kv = 0, nor where it has no KV cache at all."""
        return not self.no_kv and self.recurrent not in ("all", "head_kv_zero", "head_kv_ff_zero")


def _gemma4_kv_from_start(meta: dict, n_layer_all: int) -> int:
    shared = meta.get("gemma4.attention.shared_kv_layers", 0)
    return n_layer_all - int(shared or 0)


_ENCODER = ArchRule(no_kv=True, no_output_head=True, source="llama-model.cpp create_memory: res = nullptr")
_DIFFUSION = ArchRule(no_kv=True, source="llama-model.cpp create_memory: res = nullptr (non-causal diffusion)")

# Only the special architectures are listed; every other name in gguf.MODEL_ARCH_NAMES (and in
# llama.cpp's LLM_ARCH_NAMES) follows the generic rules with `ArchRule()`.
ARCH_RULES: dict[str, ArchRule] = {
    # --- sliding-window attention -------------------------------------------------------------
    "gemma2": ArchRule(swa=SwaRule(pattern=2, default_window=4096), source="models/gemma2.cpp"),
    "gemma3": ArchRule(swa=SwaRule(pattern=6, gate="window>0"), source="models/gemma3.cpp"),
    "gemma3n": ArchRule(swa=SwaRule(pattern=5), kv_from_start=lambda meta, n: 20,
                        source="models/gemma3n.cpp (n_layer_kv_from_start = 20, later layers reuse KV)"),
    "gemma4": ArchRule(swa=SwaRule(pattern=None), kv_from_start=_gemma4_kv_from_start,
                       source="models/gemma4.cpp (shared_kv_layers reuse KV of earlier layers)"),
    "gemma4-assistant": ArchRule(swa=SwaRule(pattern=None),
                                 approximate="its KV cache is shared with the target model's context",
                                 source="models/gemma4-assistant.cpp"),
    "cohere2": ArchRule(swa=SwaRule(pattern=4), source="models/cohere2.cpp"),
    "cohere2moe": ArchRule(swa=SwaRule(pattern=4, dense_first=True), source="models/cohere2moe.cpp"),
    "exaone4": ArchRule(swa=SwaRule(pattern=4, gate="n_layer==64", default_window=4096),
                        source="models/exaone4.cpp (SWA only for the 64-layer 32B)"),
    "exaone-moe": ArchRule(swa=SwaRule(pattern=4, default_window=128), source="models/exaone-moe.cpp"),
    "gpt-oss": ArchRule(swa=SwaRule(pattern=2), source="models/openai-moe.cpp"),
    "llama4": ArchRule(swa=SwaRule(pattern=4, gate="not-window-0", forced_window=8192),
                       source="models/llama4.cpp (chunked attention, 3 chunked : 1 full)"),
    "olmo2": ArchRule(swa=SwaRule(pattern=4, gate="window>0"), source="models/olmo2.cpp"),
    "plamo3": ArchRule(swa=SwaRule(pattern=8, gate="window>0"), source="models/plamo3.cpp"),
    "smallthinker": ArchRule(swa=SwaRule(pattern=4, dense_first=True, gate="window>0", forced_window=4096),
                             source="models/smallthinker.cpp"),
    "afmoe": ArchRule(swa=SwaRule(pattern=4, gate="window>0"), source="models/afmoe.cpp"),
    "mellum": ArchRule(swa=SwaRule(pattern=4, gate="window>0"), source="models/mellum.cpp"),
    "laguna": ArchRule(swa=SwaRule(pattern=4, dense_first=True, gate="window>0"), source="models/laguna.cpp"),
    "muse-glimmer": ArchRule(swa=SwaRule(pattern=4), source="models/muse-glimmer.cpp"),
    "granite_swa": ArchRule(swa=SwaRule(pattern=None), source="models/granite-swa.cpp"),
    "maple": ArchRule(swa=SwaRule(pattern=None), source="models/maple.cpp"),
    "mimo2": ArchRule(swa=SwaRule(pattern=None), source="models/mimo2.cpp"),
    "spark2_5": ArchRule(swa=SwaRule(pattern=None), source="models/spark2-5.cpp"),
    "step35": ArchRule(swa=SwaRule(pattern=None), mtp_loaded=False, source="models/step35.cpp"),
    "phi3": ArchRule(swa=SwaRule(pattern=1, gate="never"), source="models/phi3.cpp (Phi SWA disabled)"),
    # --- recurrent (no KV cache) ---------------------------------------------------------------
    "mamba": ArchRule(recurrent="all", source="llama-arch.cpp llm_arch_is_recurrent"),
    "mamba2": ArchRule(recurrent="all", source="llama-arch.cpp llm_arch_is_recurrent"),
    "rwkv6": ArchRule(recurrent="all", source="llama-arch.cpp llm_arch_is_recurrent"),
    "rwkv6qwen2": ArchRule(recurrent="all", source="llama-arch.cpp llm_arch_is_recurrent"),
    "rwkv7": ArchRule(recurrent="all", source="llama-arch.cpp llm_arch_is_recurrent"),
    "arwkv7": ArchRule(recurrent="all", source="llama-arch.cpp llm_arch_is_recurrent"),
    # --- hybrid: recurrent state + KV on the attention layers ---------------------------------
    "jamba": ArchRule(recurrent="head_kv_zero", source="models/jamba.cpp"),
    "plamo2": ArchRule(recurrent="head_kv_zero", source="models/plamo2.cpp"),
    "granitehybrid": ArchRule(recurrent="head_kv_zero", source="models/granite-hybrid.cpp"),
    "lfm2": ArchRule(recurrent="head_kv_zero", token_embd_norm_is_output=True,
                     swa=SwaRule(pattern=None, gate="window>0", swa_is_not_recurrent=True),
                     source="models/lfm2.cpp"),
    "lfm2moe": ArchRule(recurrent="head_kv_zero", token_embd_norm_is_output=True, source="models/lfm2moe.cpp"),
    "kimi-linear": ArchRule(recurrent="head_kv_zero", mla=True, source="models/kimi-linear.cpp"),
    "falcon-h1": ArchRule(recurrent="all_and_attn", attn_filter="all", source="models/falcon-h1.cpp"),
    "nemotron_h": ArchRule(recurrent="head_kv_ff_zero", attn_filter="not_recurrent_no_ff",
                           source="models/nemotron-h.cpp"),
    "nemotron_h_moe": ArchRule(recurrent="head_kv_ff_zero", attn_filter="not_recurrent_no_ff",
                               mtp_loaded=True, source="models/nemotron-h-moe.cpp (no TENSOR_SKIP for MTP)"),
    "qwen3next": ArchRule(recurrent="interval", source="models/qwen3next.cpp"),
    "qwen35": ArchRule(recurrent="interval", source="models/qwen35.cpp"),
    "qwen35moe": ArchRule(recurrent="interval", source="models/qwen35moe.cpp"),
    "minimax-01": ArchRule(recurrent="interval", recurrent_interval_default=8, lightning_attention=True,
                          source="models/minimax-01.cpp"),
    # --- MLA (latent K only, no V) -------------------------------------------------------------
    "deepseek2": ArchRule(mla=True, source="models/deepseek2.cpp"),
    "mistral4": ArchRule(mla=True, source="models/mistral4 (= deepseek2)"),
    "deepseek32": ArchRule(mla=True, dsa_indexer=True, source="llama-kv-cache-dsa.cpp"),
    "glm-dsa": ArchRule(mla=True, dsa_indexer=True, indexer_types=True,
                       source="models/glm-dsa.cpp + llama-kv-cache-dsa.cpp"),
    # --- no KV cache: encoders, embedding and diffusion models ----------------------------------
    "bert": _ENCODER, "jina-bert-v2": _ENCODER, "jina-bert-v3": _ENCODER, "nomic-bert": _ENCODER,
    "nomic-bert-moe": _ENCODER, "neo-bert": _ENCODER, "eurobert": _ENCODER, "modern-bert": _ENCODER,
    "gemma-embedding": _ENCODER, "wavtokenizer-dec": _ENCODER, "clef": _ENCODER,
    "dream": _DIFFUSION, "llada": _DIFFUSION, "llada-moe": _DIFFUSION, "rnd1": _DIFFUSION,
    # --- others -------------------------------------------------------------------------------
    "grok": ArchRule(flash_attn_forced_off=True, source="llama-context.cpp llama_init_from_model"),
    # cache layouts memfit sizes only approximately (llama.cpp has dedicated cache classes)
    "deepseek4": ArchRule(mla=True, approximate="DeepSeek-V4 compressed caches (llama-kv-cache-dsv4.cpp)"),
    "minimax-m3": ArchRule(approximate="MSA indexer cache (llama-kv-cache-msa.cpp)"),
    "glm5-next": ArchRule(mla=True, recurrent="head_kv_zero",
                          approximate="hybrid KDA + DSA indexer cache (llama-memory-hybrid-idx.cpp)"),
    "hy_v4": ArchRule(approximate="DSA indexer cache on 'full' layers (llama-kv-cache-dsa.cpp)"),
    "dots3note": ArchRule(swa=SwaRule(pattern=None), mla=True,
                          approximate="DSA + SWA cache (llama-kv-cache-dsa-iswa.cpp)"),
    "qwen4exp": ArchRule(recurrent="interval", approximate="QSA indexer cache (llama-memory-hybrid-idx.cpp)"),
    "kimi-k3": ArchRule(recurrent="head_kv_zero", mla=True, approximate="hybrid KDA + MLA layout"),
    "bailingmoe3": ArchRule(recurrent="head_kv_zero", mla=True, approximate="hybrid KDA + MLA layout"),
    "eagle3": ArchRule(approximate="draft model that borrows the target model's embeddings"),
    "dflash": ArchRule(approximate="draft model that borrows the target model's embeddings"),
}

DEFAULT_RULE = ArchRule()

# Non-block tensors: where llama.cpp places them (llama-arch.cpp LLM_TENSOR_INFOS).
INPUT_TENSORS = frozenset({
    "token_embd", "position_embd", "token_types", "per_layer_token_embd",
    "masked_embd_centroids", "masked_embd_ordering",
})
# repeating-layer tensors created with block id 0 (they follow layer 0's device)
LAYER0_TENSORS = frozenset({
    "token_embd_norm", "per_layer_model_proj", "per_layer_proj_norm", "hrm.z_l_init", "conv1d",
})
# created once per layer with TENSOR_DUPLICATED: one copy per device that holds layers
PER_DEVICE_TENSORS = frozenset({"rope_freqs", "rope_factors_long", "rope_factors_short"})



def rule_for(arch: str | None) -> ArchRule:
    return ARCH_RULES.get(arch or "", DEFAULT_RULE)


def is_recurrent_only(arch: str | None) -> bool:
    """A pure recurrent architecture (Mamba, RWKV): no attention layers, no KV cache."""
    return rule_for(arch).recurrent_only


def is_encoder(arch: str | None) -> bool:
    """An embedding (encoder) model: no output head, llama-server serves it with --embeddings."""
    return rule_for(arch).no_output_head


def known_architectures() -> frozenset[str]:
    """Every architecture name memfit treats as known (gguf's list plus llama.cpp's extras)."""
    return frozenset(GGUF_ARCH_NAMES | set(ARCH_RULES) | _LLAMACPP_EXTRA | _installed_gguf_archs())


def is_known_architecture(arch: str) -> bool:
    """`arch in known_architectures()`, without importing the gguf package (numpy) unless the name
    is in none of memfit's own lists."""
    if arch in GGUF_ARCH_NAMES or arch in ARCH_RULES or arch in _LLAMACPP_EXTRA:
        return True
    return arch in _installed_gguf_archs()


@lru_cache(maxsize=1)
def _installed_gguf_archs() -> frozenset[str]:
    try:
        from gguf.constants import MODEL_ARCH_NAMES
    except Exception:  # pragma: no cover - gguf is a hard dependency
        return frozenset()
    return frozenset(MODEL_ARCH_NAMES.values())


# gguf.constants.MODEL_ARCH_NAMES of gguf 0.19.0, as data: importing gguf costs ~70 ms (numpy).
# tests/test_ggml_types.py checks the installed gguf package lists nothing that is missing here.
GGUF_ARCH_NAMES = frozenset({
    "afmoe", "apertus", "arcee", "arctic", "arwkv7", "baichuan", "bailingmoe", "bailingmoe2",
    "bert", "bitnet", "bloom", "chameleon", "chatglm", "clip", "codeshell", "cogvlm", "cohere2",
    "command-r", "dbrx", "deci", "deepseek", "deepseek2", "deepseek2-ocr", "dots1", "dream",
    "ernie4_5", "ernie4_5-moe", "eurobert", "exaone", "exaone-moe", "exaone4", "falcon",
    "falcon-h1", "gemma", "gemma-embedding", "gemma2", "gemma3", "gemma3n", "gemma4", "glm-dsa",
    "glm4", "glm4moe", "gpt-oss", "gpt2", "gptj", "gptneox", "granite", "granitehybrid",
    "granitemoe", "grok", "grovemoe", "hunyuan-dense", "hunyuan-moe", "hunyuan_vl", "internlm2",
    "jais", "jais2", "jamba", "jina-bert-v2", "jina-bert-v3", "kimi-linear", "lfm2", "lfm2moe",
    "llada", "llada-moe", "llama", "llama-embed", "llama4", "maincoder", "mamba", "mamba2",
    "mimo2", "minicpm", "minicpm3", "minimax-m2", "mistral3", "mistral4", "modern-bert", "mpt",
    "nemotron", "nemotron_h", "nemotron_h_moe", "neo-bert", "nomic-bert", "nomic-bert-moe",
    "olmo", "olmo2", "olmoe", "openelm", "orion", "paddleocr", "pangu-embedded", "phi2", "phi3",
    "phimoe", "plamo", "plamo2", "plamo3", "plm", "qwen", "qwen2", "qwen2moe", "qwen2vl",
    "qwen3", "qwen35", "qwen35moe", "qwen3moe", "qwen3next", "qwen3vl", "qwen3vlmoe", "refact",
    "rnd1", "rwkv6", "rwkv6qwen2", "rwkv7", "seed_oss", "smallthinker", "smollm3", "stablelm",
    "starcoder", "starcoder2", "step35", "t5", "t5encoder", "wavtokenizer-dec", "xverse"
})


# architectures llama.cpp b11434 knows that the installed gguf package may not list
_LLAMACPP_EXTRA = frozenset({
    "clef", "qwen4exp", "gemma4-assistant", "maple", "cohere2moe", "muse-glimmer", "deepseek32",
    "deepseek4", "graniteswitch", "granite_swa", "dots3note", "laguna", "hy_v3", "hy_v4",
    "minimax-01", "hrm_text", "minimax-m3", "eagle3", "dflash", "spark2_5", "kimi-k3", "glm5-next",
    "talkie", "mellum", "nanbeige", "qwen3tts", "pockettts", "bailingmoe3",
})
