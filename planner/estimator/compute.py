"""Compute buffers: a fitted model of ggml's graph allocator (ggml-alloc.c) for llama.cpp's
worst-case graph reserve (llama-context.cpp sched_reserve).

llama.cpp reserves the compute buffer for a prompt-processing graph of n_tokens = min(n_ctx,
n_ubatch) tokens and n_outputs = min(n_tokens, n_outputs_max) outputs (n_outputs_max defaults to
n_batch; llama-server and llama-cli set it to n_parallel). ggml-alloc reuses memory as tensors
die, so the buffer is the high-water mark of one layer's live intermediates, not a sum. Measured on
the CPU backend (validation/, llama.cpp b11434), the peak is the largest of a few phases, each a
number of f32 values per token times n_tokens, plus the attention masks (inputs that live for the
whole graph):

  output     n_vocab * n_outputs/n_tokens + 5.5 E                   (logits)
  attention  FA off: n_head * n_kv + 3 E + 3 max(E, Q) + (K + V)    (the n_kv x n_tokens x n_head KQ matrix)
             FA on:  3 E + 3 max(E, Q) + (K + V) / 2
  dense FFN  3 FF + c E,  c = 3 .. 5 growing with FF / E            (gate, up, act)
  MoE FFN    3 U + 5 E, U = n_used * n_ff_exp                       (up, gate, GLU product)
             + n_used E when the expert outputs do not fit the block up and gate free (n_used E > 2 U),
             n_used E + 5 E when U <= E (see _ffn_moe)
  recurrent  4 d_inner + 3 E  (Mamba-style scan, estimate)
  masks      n_kv * n_tokens per attention kind (full, SWA), f16 with FA, f32 without

E = n_embd, Q = n_head * head_dim_k, K/V = n_head_kv * head_dim. Models with deepstack inputs
(Qwen3-VL) add 4 (1 + n_deepstack) E. Every term scales with n_tokens, so n_ubatch enters linearly,
the context only through the masks and (FA off) the KQ matrix.

GPU backends (CUDA/ROCm/Vulkan/Metal) run the same graph; the input embedding rows are gathered on
the CPU (token_embd is a host tensor), so the device phases carry 2 E per token less. Measured on
llama.cpp's Vulkan backend (docs/accuracy-gpu.md, validation/results-vulkan/): graph inputs are
allocated on the host (host compute = masks + 4 E-wide slots, 3 more per deepstack layer); with at
least 32 tokens per ubatch the scheduler offloads the CPU layers' large matmuls (op_offload), so a
partial offload runs the whole graph on the device plus a copy of the largest CPU-resident weight.
Vulkan caps one buffer at 1 GiB: a larger compute buffer is split into fragmented chunks (up to 2x
measured), which the margin covers. CUDA/ROCm/Metal are unmeasured (same graph, other kernels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model_facts import LayerFacts, ModelFacts
from ..vocab import QUANTIZED_CACHE
from .context import GGML_TYPE_OF, RunContext
from .graph_shape import GraphShape, graph_shape
from .kv import LayerCache, layer_caches

F32 = 4
SMALL_INPUTS_PER_TOKEN = 40  # token ids, positions, output ids... (measured 0.02 MiB at 512 tokens)

CPU_MARGIN = 0.10
OLD_BUILD_CPU_MARGIN = 0.12  # builds before b11401: b11393's CPU buffers within -11.0..+4.0% (docs/accuracy.md)
GPU_MARGIN = 0.20
APPROX_MARGIN = 0.30
HOST_INPUT_SLOTS = 4  # E-wide f32 inputs kept on the host with a GPU backend (measured on Vulkan;
# deepstack models keep 3 more per deepstack layer)
DEEPSTACK_GPU_MARGIN = 0.40
OP_OFFLOAD_MIN_BATCH = 32  # ggml-cuda/ggml-vulkan offload_op: batches of at least 32 tokens
# ggml-vulkan: one buffer is at most suballocation_block_size (1 GiB unless the driver allows less),
# so ggml-alloc splits a larger compute buffer into chunks and fragments it (measured up to 2x)
VULKAN_BLOCK = 1 << 30
VULKAN_CHUNK_MARGIN = 1.0
VULKAN_MAX_BUFFER = (1 << 32) - 1  # maxBufferSize of RADV / lavapipe; larger tensors run on the CPU

CUDA_BACKENDS = ("cuda", "rocm")  # ggml-cuda, HIP builds included
LAYER_PHASES = ["attention", "ffn", "moe", "recurrent"]
_QUANT_TYPES = frozenset(int(GGML_TYPE_OF[t]) for t in QUANTIZED_CACHE)
_F16 = 2


@dataclass
class ComputeResult:
    gpu: int
    host: int
    margin: float
    notes: list[str] = field(default_factory=list)
    phases: dict[str, int] = field(default_factory=dict)  # bytes of each phase (device graph), for reports

    @property
    def total(self) -> int:
        return self.gpu + self.host


@dataclass
class _Reserve:
    """One graph reserve: the model's shape at these settings, and what the allocation found on the
    way (notes; peaks whose logits placement is in doubt: (chosen, other))."""

    f: ModelFacts
    ctx: RunContext
    g: GraphShape
    T: int  # tokens
    O: int  # outputs
    mask_bytes: int
    mask_blocks: tuple[int, ...]  # each attention kind's mask (full, SWA), bytes
    n_kv_max: int  # the largest KQ matrix's n_kv (per stream)
    n_head: int
    has_attention: bool
    logits: int
    slot: int  # one E-wide activation (the inputs and the residual stream)
    small: int  # token ids, positions, output ids...
    e_old: float  # builds before b11401 lack the two E-wide mixed-embedding inputs every phase carries since
    notes: list[str] = field(default_factory=list)
    reuse_doubt: list[tuple[int, int]] = field(default_factory=list)


def compute_buffers(f: ModelFacts, ctx: RunContext) -> ComputeResult:
    r = _reserve(f, ctx)
    return _gpu_buffers(r) if ctx.backend.is_gpu else _cpu_buffers(r)


def _reserve(f: ModelFacts, ctx: RunContext) -> _Reserve:
    """The attention masks (graph inputs, f16 with FA, f32 without) per attention kind, and the
    largest KQ matrix (FA off): n_kv (per stream) x tokens x heads, f32."""
    g = graph_shape(f)
    T = ctx.n_tokens
    mask_elt = 2 if ctx.flash_attn else 4
    full_mask = ctx.n_ctx_seq * T * mask_elt if g.full_attention else 0
    swa_mask = ctx.swa_cells * T * mask_elt if g.sliding_attention else 0
    return _Reserve(f=f, ctx=ctx, g=g, T=T, O=ctx.n_outputs, mask_bytes=full_mask + swa_mask,
                    mask_blocks=tuple(m for m in (full_mask, swa_mask) if m), n_kv_max=_n_kv_max(g, ctx),
                    n_head=g.attention_heads, has_attention=g.full_attention or g.sliding_attention,
                    logits=f.n_vocab * ctx.n_outputs * F32, slot=g.E * T * F32, small=SMALL_INPUTS_PER_TOKEN * T,
                    e_old=0.0 if ctx.mixed_embd else 2.0)


def _n_kv_max(g: GraphShape, ctx: RunContext) -> int:
    """The most cells a layer attends: the context with full attention, else the window's cells."""
    if g.full_attention:
        return ctx.n_ctx_seq
    return ctx.swa_cells if g.sliding_attention else 0


# --------------------------------------------------------------------------- phases


def _phases(r: _Reserve, e_off: float, gpu: bool = False) -> dict[str, float]:
    """Floats per token of each phase; e_off = E-sized tensors that live elsewhere (GPU: 2;
    builds before b11401: 2 fewer on the CPU)."""
    g, E = r.g, r.g.E
    p = {
        "output": r.f.n_vocab * (r.O / r.T) + (5.5 - e_off) * E,
        "attention": _attention_phase(r, e_off),
        "ffn": _ffn_dense(g, 5.0 - e_off),
        # the last layer runs on all tokens only when every token is an output (inp_out_ids)
        "moe": _ffn_moe(g, 5.0 - e_off, [m / (r.T * F32) for m in r.mask_blocks] if r.O >= r.T else []),
        "recurrent": (4.0 * g.d_inner + (3 - e_off) * E) if r.f.n_recurrent_layers and g.d_inner else 0.0,
    }
    if g.n_deepstack:
        # the mixed-embedding inputs (b11401+) are n_embd_inp = E x (1 + n_deepstack) wide on the CPU;
        # on a GPU device, and before b11401, deepstack costs 2.5 E (measured: Vulkan, b11393)
        extra = 2.5 * E if (gpu or not r.ctx.mixed_embd) else 4.0 * (1 + g.n_deepstack) * E
        p = {k: (v + extra if v else v) for k, v in p.items()}
    return p


def _attention_phase(r: _Reserve, e_off: float) -> float:
    if not r.has_attention:
        return 0.0
    g, E = r.g, r.g.E
    qmax = max(E, g.Q)
    if r.ctx.flash_attn:
        return (3 - e_off) * E + 3 * qmax + 0.5 * (g.K + g.V)
    return r.n_head * r.n_kv_max + (3 - e_off) * E + 3 * qmax + (g.K + g.V)


def _ffn_dense(g: GraphShape, e_coef_max: float) -> float:
    if not g.ff_dense:
        return 0.0
    ratio = g.ff_dense / g.E if g.E else 0.0
    c = 3.0 + (e_coef_max - 3.0) * min(max((ratio - 1.0) / 2.5, 0.0), 1.0)
    # llama-graph.cpp build_ffn: a gated FFN joins gate and up in a GLU op (ggml_swiglu_split /
    # ggml_geglu_split), which ggml-alloc.c ggml_op_can_inplace does not list, so gate, up and the
    # product are live together (3 x n_ff); an ungated one (ggml_gelu / relu / sqr after the up
    # matmul and its bias ADD) runs in place (GGML_OP_UNARY, GGML_OP_ADD, GGML_OP_SQR are listed):
    # one n_ff-wide activation
    acts = 3.0 if g.ff_gated else 1.0
    return acts * g.ff_dense + c * g.E


def _ffn_moe(g: GraphShape, e_coef: float, masks: tuple[float, ...] | list[float] = ()) -> float:
    """The MoE FFN's peak (floats per token) from what llama-graph.cpp build_moe_ffn keeps live and
    where ggml-alloc.c puts it. The expert matmuls (mul_mat_id) give up and gate, U = n_used x n_ff_exp
    each (or one 2 U gate_up, split by views); the GLU (ggml_swiglu_split / geglu / swiglu_oai) is not
    in ggml_op_can_inplace's list, so up, gate and their product are live together (3 U), and up and
    gate are freed right after it; the down matmul (n_used x E per token) is allocated while the
    product is live, and the weights multiply and the adds of its views run in place (GGML_OP_MUL,
    GGML_OP_ADD). ggml_dyn_tallocr_alloc takes the best-fitting freed block, so the down output costs
    nothing when it fits in the block up and gate leave (n_used E <= 2 U) and goes on top of the
    product when it does not. Measured (b11434 CPU, qwen3moe shapes E 1024..4096, 2..8 of 16..128
    experts, n_ff_exp 256..2048; OLMoE, Phi-3.5-MoE on CUDA):
      U <= E            n_used E          (U-wide tensors fit the E-wide blocks freed before)
      n_used E <= 2 U   3 U               (down reuses up's and gate's block)
      otherwise         3 U + n_used E
    `masks`: each mask's size (floats per token), given when the last layer runs on every token
    (n_outputs = n_tokens: no inp_out_ids get_rows before it, src/models/*.cpp). The last attention
    layer frees its mask; a mask block (with the E-wide slot beside it) that holds one U-wide tensor
    but not two takes up alone, gate lands elsewhere, and a down output that needs both blocks
    (U < n_used E <= 2 U) goes on top: 2 U + n_used E."""
    if not g.moe_u:
        return 0.0
    u, down = g.moe_u, g.n_used * g.E
    if u <= g.E:
        act = float(down)
    elif down <= u:
        act = 3.0 * u
    elif down <= 2 * u:
        split = any(u < m + g.E <= 2 * u for m in masks)
        act = 2.0 * u + down if split else 3.0 * u
    else:
        act = 3.0 * u + down
    return act + e_coef * g.E


def _phase_bytes(r: _Reserve, ph: dict[str, float]) -> dict[str, int]:
    return {k: int(v * r.T * F32) for k, v in ph.items()}


# --------------------------------------------------------------------------- peaks


def _peak_bytes(r: _Reserve, ph: dict[str, float], keys: list[str], masks: int) -> int:
    """High-water mark of one device's graph. The masks are graph inputs, allocated first and
    freed after the last attention layer; the layers' peak sits on top of them. The logits are
    the last big tensor: ggml-alloc puts them in the best-fitting freed block when one is large
    enough, and the only large one is the masks' block merged with its free neighbours (the
    E-wide input slots next to it: one assumed, 0-3 measured); otherwise they go on top of the
    live tensors, above the masks."""
    layer = max((ph[k] for k in keys if k != "output"), default=0.0) * r.T * F32
    a = masks + layer
    if "output" not in keys:
        return int(a)
    out = ph["output"] * r.T * F32
    if not r.ctx.mixed_embd:
        # builds before the mixed token/embedding inputs (b11401, runtimes.toml mixed_embd_inputs):
        # nothing long-lived sits above the masks, so their freed block merges with the free top
        # of the buffer and the logits start there (measured on b9453/b11393's CPU backend and
        # in the ROCm log of b9452)
        return int(max(a, out))
    return _logits_placed(r, a, out, masks)


def _logits_placed(r: _Reserve, a: float, out: float, masks: int) -> int:
    """The peak with the logits in the masks' freed block when they fit there (with one input slot
    beside it), else above the live tensors; a doubt noted when they are about the masks' size."""
    reused = int(a if a >= out else out + masks)  # logits in the freed masks' block
    above = int(max(a, out + masks))  # no freed block holds them
    chosen, other = (reused, above) if r.logits <= masks + r.slot else (above, reused)
    if masks < r.logits <= masks + 3 * r.slot and other != chosen:
        r.reuse_doubt.append((chosen, other))
    return chosen


def _doubt_margin(r: _Reserve, margin: float) -> float:
    """Widen the margin to cover the other placement when the logits are about the masks' size."""
    if not r.reuse_doubt:
        return margin
    spread = max(abs(o - c) for c, o in r.reuse_doubt)
    r.notes.append(
        f"the logits ({r.logits / 2**20:.0f} MiB) are about the size of the attention masks: whether "
        f"llama.cpp's graph allocator reuses the masks' memory for them depends on the graph's "
        f"layout; the compute buffer may be {spread / 2**20:.0f} MiB "
        f"{'larger' if any(o > c for c, o in r.reuse_doubt) else 'smaller'} than estimated")
    return max(margin, max(-(-abs(o - c) * 100 // max(c, 1)) / 100 for c, o in r.reuse_doubt))


def _model_margin(f: ModelFacts, fitted: float) -> float:
    """The fitted margin, or a wider one where the compute model was not fitted on the family."""
    return APPROX_MARGIN if f.approximate or not f.known_graph else fitted


# --------------------------------------------------------------------------- CPU backend


def _cpu_buffers(r: _Reserve) -> ComputeResult:
    ph = _phases(r, r.e_old)
    host = _peak_bytes(r, ph, list(ph), r.mask_bytes) + r.small
    margin = _model_margin(r.f, CPU_MARGIN)
    if not r.ctx.mixed_embd:
        margin = max(margin, OLD_BUILD_CPU_MARGIN)
    margin = _doubt_margin(r, margin)
    return ComputeResult(gpu=0, host=host, margin=margin, notes=r.notes, phases=_phase_bytes(r, ph))


# --------------------------------------------------------------------------- GPU backends


def _gpu_buffers(r: _Reserve) -> ComputeResult:
    ctx = r.ctx
    ph_gpu = _device_phases(r)
    cpu_weights = _has_cpu_weights(ctx)
    op_offload = r.T >= OP_OFFLOAD_MIN_BATCH
    if not cpu_weights or op_offload:
        # full offload, or op_offload: the scheduler moves the CPU layers' large matmuls (and the
        # ops between them) to the device, so the device runs the whole graph (measured on Vulkan:
        # the host buffer is the same as with full offload)
        gpu = _peak_bytes(r, ph_gpu, LAYER_PHASES + ["output"], r.mask_bytes) + r.small
        host = _host_inputs(r)
    else:
        gpu, host = _split_graph(r, ph_gpu)
    if cpu_weights and op_offload:
        gpu += _op_offload_copy(r)
    return ComputeResult(gpu=gpu, host=host, margin=_gpu_margin(r, gpu), notes=r.notes,
                         phases=_phase_bytes(r, ph_gpu))


def _has_cpu_weights(ctx: RunContext) -> bool:
    """Any weight the graph reads on the CPU: a layer, its experts (--n-cpu-moe) or the output."""
    on_gpu = ctx.layer_on_gpu
    experts_off = not all(ctx.experts_on_gpu[i] or not on_gpu[i] for i in range(len(on_gpu)))
    return not all(on_gpu) or not ctx.output_on_gpu or experts_off


def _device_phases(r: _Reserve) -> dict[str, float]:
    """The device graph's phases: the mixed-embedding inputs are host inputs, so the same graph;
    CUDA/HIP flash attention on a quantized cache adds F16 copies of the K/V views to the FA node's
    allocation (ggml-cuda/fattn.cu ggml_cuda_flash_attn_ext_get_alloc_size, TAG_ALLOC_SIZE_EXPAND)."""
    ph = _phases(r, 2.0, gpu=True)
    copies = _cuda_fa_f16_copies(r.f, r.ctx)
    if copies and ph["attention"]:
        ph["attention"] += copies / (r.T * F32)
        r.notes.append(f"{r.ctx.backend.name}: flash attention on a quantized KV cache converts each layer's K/V "
                       f"view to F16 inside the compute buffer (+{copies / 2**20:.0f} MiB at the largest layer; "
                       f"CUDA/HIP unmeasured here)")
    return ph


def _host_inputs(r: _Reserve) -> int:
    """Graph inputs (token ids, positions, the masks, the embedding rows) are allocated on the CPU
    backend and copied to the device: the host keeps the masks and a few E-wide slots."""
    deepstack_slots = 3 * r.g.n_deepstack if r.ctx.mixed_embd else 0  # the wider mixed inputs (b11401+)
    return r.mask_bytes + (HOST_INPUT_SLOTS - int(r.e_old) + deepstack_slots) * r.slot + r.small


def _split_graph(r: _Reserve, ph_gpu: dict[str, float]) -> tuple[int, int]:
    """A partial offload of small batches: each device runs its own layers' phases (the output's
    where the output layer is)."""
    ctx = r.ctx
    any_gpu_layer = any(ctx.layer_on_gpu)
    any_cpu_layer = not all(ctx.layer_on_gpu)
    gpu_keys = list(LAYER_PHASES) if any_gpu_layer else []
    host_keys = list(LAYER_PHASES) if any_cpu_layer else []
    (gpu_keys if ctx.output_on_gpu else host_keys).append("output")
    gpu = _peak_bytes(r, ph_gpu, gpu_keys, r.mask_bytes if any_gpu_layer else 0) + r.small if gpu_keys else 0
    host_inputs = _host_inputs(r)
    if not host_keys:
        return gpu, host_inputs
    host_graph = _peak_bytes(r, _phases(r, r.e_old), host_keys, r.mask_bytes) + int(2.0 * r.g.E * r.T * F32) + r.small
    return gpu, max(host_inputs, host_graph)


def _op_offload_copy(r: _Reserve) -> int:
    """op_offload: a CPU-resident weight used by a large matmul is copied into the GPU compute
    buffer; the largest such tensor counts."""
    ctx, g = r.ctx, r.g
    cpu_layers = [il for il, layer in enumerate(r.f.layers)
                  if layer.loaded and (not ctx.layer_on_gpu[il] or not ctx.experts_on_gpu[il])]
    biggest = max((g.max_weight_by_layer[il] for il in cpu_layers), default=0)
    if not ctx.output_on_gpu:
        biggest = max(biggest, g.output_weight)
    r.notes.append("partial offload: llama.cpp runs the large matrix multiplications of CPU-resident weights "
                   "on the GPU for large batches (op_offload) and copies the weight there; compute buffer "
                   "includes the whole graph and the largest such tensor")
    return biggest


def _gpu_margin(r: _Reserve, gpu: int) -> float:
    margin = _model_margin(r.f, GPU_MARGIN)
    if r.g.n_deepstack:
        margin = max(margin, DEEPSTACK_GPU_MARGIN)  # Qwen3-VL on Vulkan: -39% .. -6% measured (short contexts worst)
    if r.ctx.backend.name == "vulkan":
        margin = max(margin, _vulkan_limits(r, gpu))
    return _doubt_margin(r, margin)


def _vulkan_limits(r: _Reserve, gpu: int) -> float:
    """Vulkan-only effects of buffer limits (measured with llama.cpp's Vulkan backend): the margin
    they need, and notes saying why."""
    margin = 0.0
    if gpu > VULKAN_BLOCK:
        margin = VULKAN_CHUNK_MARGIN
        r.notes.append(f"Vulkan compute buffer above 1 GiB ({gpu / 2**30:.1f} GiB): ggml-vulkan caps one buffer at "
                       f"1 GiB and the graph allocator's chunks fragment, so llama.cpp may reserve up to about twice "
                       f"this (measured +0-96%); a smaller -ub keeps it under 1 GiB")
    kq = r.n_kv_max * r.T * r.n_head * F32
    if not r.ctx.flash_attn and kq > VULKAN_MAX_BUFFER:
        r.notes.append(f"without flash attention the attention score matrix is {kq / 2**30:.1f} GiB, above the "
                       f"4 GiB buffer limit of many Vulkan drivers: llama.cpp then runs it on the CPU and the host "
                       f"compute buffer grows by about twice that; use -fa on")
    return margin


def _cuda_fa_f16_copies(f: ModelFacts, ctx: RunContext) -> int:
    """Bytes of the F16 K/V copies ggml-cuda's TILE/MMA flash-attention kernels (prompt batches,
    the reserve graph) allocate with the FA node for a quantized cache: K = n_kv x n_embd_k_gqa x
    n_stream halves, V likewise unless V is a view of K (MLA); the largest layer on the GPU counts
    (the node dies before the next layer's)."""
    if ctx.backend.name not in CUDA_BACKENDS or not ctx.flash_attn:
        return 0
    caches = layer_caches(ctx)
    return max((_f16_copy_bytes(ctx, layer, caches[layer.is_swa and f.swa_enabled]) for il, layer in enumerate(f.layers)
                if layer.has_attn_kv and ctx.state_on_gpu[il]), default=0)


def _f16_copy_bytes(ctx: RunContext, layer: LayerFacts, cache: LayerCache) -> int:
    widths = (layer.k_width if cache.type_k in _QUANT_TYPES else 0,
              layer.v_width if cache.type_v in _QUANT_TYPES else 0)
    return sum(cache.cells * width * ctx.n_stream * _F16 for width in widths)
