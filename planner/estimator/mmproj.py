"""Vision projector (mmproj) memory: weights (exact sum of its tensors) and an estimate of the
encoder's compute buffer for one image. Labelled as an estimate (Breakdown.estimated["mmproj"]).

tools/mtmd/clip.cpp reserves the encoder graph once at load ("warmup") for a square image of
hparams.warmup_image_size pixels; llama-server adds exactly that (mtmd_get_memory_usage) to the
fit margin of the device the projector runs on. The warmup size per projector type:
  - image_size (clip.vision.image_size) by default (llava/mlp 336, gemma3 896, ...);
  - Qwen2/2.5/3-VL mergers, dots.ocr, MiniMax-M3, MiMo-VL: set_warmup_n_tokens(46*46) output
    tokens, i.e. 46 * patch_size * spatial_merge_size pixels per side (1472 px for Qwen3-VL);
  - pixtral, kimivl, lightonocr, gemma4v, LFM2, idefics3-like: 256 tokens; phi4: 16*16.
The ViT runs on (side / patch_size)^2 patches P. Its peak is modelled like the text graph:
P * 4 * max(3 FF + 5 D, 7 D) bytes (D = embedding_length, FF = feed_forward_length) with flash
attention, plus the P x P x n_head f32 attention matrix without it (clip.cpp enables FA when the
backend supports it; CPU and CUDA do). Images larger than the warmup size grow the buffer at run
time (up to the projector's max image tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import isqrt

from ..header import Metadata, ModelHeaders, SkippedArray
from .context import HOST_ALIGNMENT, RunContext, pad

MARGIN = 0.5

# projector type -> warmup output tokens (n*n) set by clip.cpp; absent = warmup at image_size
_WARMUP_TOKENS: dict[str, int] = {
    "qwen2vl_merger": 46 * 46, "qwen2.5vl_merger": 46 * 46, "qwen3vl_merger": 46 * 46, "ling3vl": 46 * 46,
    "dots_ocr": 46 * 46, "dots3note_v": 46 * 46, "minimax_m3": 46 * 46, "mimovl": 46 * 46,
    "glm4v": 46 * 46, "glm5v": 46 * 46, "youtuvl": 46 * 46, "paddleocr": 28 * 28,
    "pixtral": 256, "kimivl": 256, "lightonocr": 256, "gemma4v": 256, "gemma4uv": 256,
    "lfm2": 256, "kimik25": 256, "phi4": 16 * 16, "hunyuanvl": 32 * 32,
}
# default spatial merge when the GGUF has no spatial_merge_size / projector.scale_factor
_DEFAULT_MERGE: dict[str, int] = {
    "qwen2vl_merger": 2, "qwen2.5vl_merger": 2, "qwen3vl_merger": 2, "ling3vl": 2, "minimax_m3": 2,
    "gemma4v": 3, "youtuvl": 2, "mimovl": 2, "dots_ocr": 2, "glm4v": 2,
}


@dataclass
class MmprojResult:
    gpu: int
    host: int
    margin: float
    weights: int = 0
    compute: int = 0
    patches: int = 0
    notes: list[str] = field(default_factory=list)


def _get(meta: Metadata, key: str, default: int = 0) -> int:
    v = meta.get(key)
    try:
        return int(v) if v is not None and not isinstance(v, (list, tuple, SkippedArray)) else default
    except (TypeError, ValueError):
        return default


_WEIGHTS: dict[tuple[int, int], tuple[ModelHeaders, int]] = {}


def _weights_bytes(h: ModelHeaders, align: int) -> int:
    """The projector's padded weight bytes: the same for every context a plan probes, so summed once
    per projector and alignment (the headers are kept with the sum, so the id stays theirs)."""
    key = (id(h), align)
    hit = _WEIGHTS.get(key)
    if hit is None or hit[0] is not h:
        hit = _WEIGHTS[key] = (h, sum(pad(t.nbytes, align) for t in h.tensors))
    return hit[1]


def mmproj_usage(h: ModelHeaders, ctx: RunContext) -> MmprojResult:
    meta = h.metadata
    notes: list[str] = []
    align = ctx.backend.alignment if ctx.backend.is_gpu else HOST_ALIGNMENT
    weights = _weights_bytes(h, align)
    compute, patches = _encoder_compute(meta, ctx.flash_attn, notes)
    total = weights + compute
    gpu, host = (total, 0) if ctx.backend.is_gpu else (0, total)
    return MmprojResult(gpu=gpu, host=host, margin=MARGIN, weights=weights, compute=compute,
                        patches=patches, notes=notes)


def _encoder_compute(meta: Metadata, flash_attn: bool, notes: list[str]) -> tuple[int, int]:
    """(compute buffer bytes, patches) of the projector's vision encoder; (0, 0) without one."""
    if not (bool(meta.get("clip.has_vision_encoder", True)) and "clip.vision.embedding_length" in meta):
        notes.append("mmproj: no vision encoder found (audio-only projectors are not sized)")
        return 0, 0
    proj = str(meta.get("clip.projector_type") or meta.get("clip.vision.projector_type") or "")
    if not proj:
        notes.append("mmproj: unknown projector type; vision compute estimated from image_size")
    return _vision_compute(meta, proj, flash_attn)


def _warmup_side(meta: Metadata, proj: str, patch: int) -> int:
    """The side in pixels of the warmup image clip.cpp reserves the encoder graph for."""
    tokens = _WARMUP_TOKENS.get(proj)
    if not tokens:
        return _get(meta, "clip.vision.image_size", 336) or 336
    merge = (_get(meta, "clip.vision.spatial_merge_size") or _get(meta, "clip.vision.projector.scale_factor")
             or _DEFAULT_MERGE.get(proj, 1))
    return isqrt(tokens) * patch * merge


def _vision_compute(meta: Metadata, proj: str, flash_attn: bool) -> tuple[int, int]:
    """(compute buffer bytes, patches) of the vision encoder at its warmup image."""
    d = _get(meta, "clip.vision.embedding_length")
    ff = _get(meta, "clip.vision.feed_forward_length", 4 * d)
    heads = _get(meta, "clip.vision.attention.head_count", max(1, d // 64))
    patch = _get(meta, "clip.vision.patch_size", 14) or 14
    patches = (_warmup_side(meta, proj, patch) // patch) ** 2
    compute = patches * 4 * max(3 * ff + 5 * d, 7 * d)
    if not flash_attn:
        compute += patches * patches * heads * 4  # the P x P x n_head f32 attention matrix
    return compute, patches
