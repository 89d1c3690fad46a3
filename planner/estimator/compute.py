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
  MoE FFN    3 U + n_used E + 5 E, U = n_used * n_ff_exp            (2 U when U > 3.5 E)
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

import re
from dataclasses import dataclass, field

from ..model_facts import ModelFacts
from .context import GGML_TYPE_OF, QUANTIZED_CACHE, RunContext

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

_FFN_UP = re.compile(r"^blk\.\d+\.ffn_(up|gate)\.weight$")
_FFN_UP_EXPS = re.compile(r"^blk\.\d+\.ffn_(up|gate|gate_up)_exps\.weight$")


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


@dataclass(frozen=True)
class _Geometry:
    """Per-token widths of the graph's big intermediates (cached per ModelFacts)."""

    E: int
    Q: int
    K: int
    V: int
    ff_dense: int  # widest dense FFN
    moe_u: int  # n_used * ff_exp
    n_used: int
    d_inner: int
    n_deepstack: int
    max_weight_by_layer: tuple[int, ...]  # largest single tensor of each layer (op_offload copy)
    output_weight: int


def _geometry(f: ModelFacts) -> _Geometry:
    g = f._align_cache.get("compute-geometry")  # cached on the facts object (they never change)
    if g is not None:
        return g
    ff_dense = 0
    ff_exp = 0
    for layer in f.layers:
        if not layer.loaded:
            continue
        names = {t.name.rsplit(".", 2)[-2] for t in layer.tensors}
        # a fused gate+up (phi3 and others: ffn_up of 2 x n_ff, no ffn_gate) feeds the same
        # n_ff-wide activation as separate gate and up tensors (ggml_swiglu splits it)
        fused = "ffn_up" in names and "ffn_gate" not in names and "ffn_down" in names
        for t in layer.tensors:
            if _FFN_UP.match(t.name):
                width = _ne1(t)
                if fused and t.name.endswith("ffn_up.weight"):
                    down = next((d for d in layer.tensors if d.name.endswith("ffn_down.weight")), None)
                    if down is not None and width == 2 * down.ne0:
                        width = down.ne0
                ff_dense = max(ff_dense, width)
            elif _FFN_UP_EXPS.match(t.name):
                width = _ne1(t)
                ff_exp = max(ff_exp, width // 2 if "gate_up" in t.name else width)
    max_w = tuple(max((t.nbytes for t in layer.tensors), default=0) if layer.loaded else 0 for layer in f.layers)
    out_w = 0
    for name in f.output_names:
        out_w = max(out_w, f.nonrepeating[name].nbytes)
    if f.tied_output:
        out_w = max(out_w, f.nonrepeating["token_embd.weight"].nbytes)
    hk = max(f.head_k_full, f.head_k_swa)
    hv = max(f.head_v_full, f.head_v_swa)
    n_head = max((layer.n_head for layer in f.layers), default=0)
    n_kv = max((layer.n_head_kv for layer in f.layers), default=0)
    g = _Geometry(
        E=f.n_embd, Q=n_head * hk, K=n_kv * hk, V=n_kv * hv,
        ff_dense=ff_dense, moe_u=f.n_expert_used * ff_exp, n_used=f.n_expert_used,
        d_inner=f.ssm_d_inner, n_deepstack=f.n_deepstack,
        max_weight_by_layer=max_w, output_weight=out_w,
    )
    f._align_cache["compute-geometry"] = g
    return g


def _ne1(t) -> int:
    return t.ne1


def _ffn_dense(g: _Geometry, e_coef_max: float) -> float:
    if not g.ff_dense:
        return 0.0
    ratio = g.ff_dense / g.E if g.E else 0.0
    c = 3.0 + (e_coef_max - 3.0) * min(max((ratio - 1.0) / 2.5, 0.0), 1.0)
    return 3.0 * g.ff_dense + c * g.E


def _ffn_moe(g: _Geometry, e_coef: float) -> float:
    if not g.moe_u:
        return 0.0
    u = g.moe_u
    act = 3.0 * u if u <= 3.5 * g.E else 2.0 * u
    return act + g.n_used * g.E + e_coef * g.E


def _vulkan_limits(ctx: RunContext, gpu: int, n_head: int, n_kv: int, T: int, notes: list[str]) -> float:
    """Vulkan-only effects of buffer limits (measured with llama.cpp's Vulkan backend): the margin
    they need, and notes saying why."""
    margin = 0.0
    if gpu > VULKAN_BLOCK:
        margin = VULKAN_CHUNK_MARGIN
        notes.append(f"Vulkan compute buffer above 1 GiB ({gpu / 2**30:.1f} GiB): ggml-vulkan caps one buffer at "
                     f"1 GiB and the graph allocator's chunks fragment, so llama.cpp may reserve up to about twice "
                     f"this (measured +0-96%); a smaller -ub keeps it under 1 GiB")
    kq = n_kv * T * n_head * F32
    if not ctx.flash_attn and kq > VULKAN_MAX_BUFFER:
        notes.append(f"without flash attention the attention score matrix is {kq / 2**30:.1f} GiB, above the "
                     f"4 GiB buffer limit of many Vulkan drivers: llama.cpp then runs it on the CPU and the host "
                     f"compute buffer grows by about twice that; use -fa on")
    return margin


_QUANT_TYPES = frozenset(int(GGML_TYPE_OF[t]) for t in QUANTIZED_CACHE)
_F16 = 2


def _cuda_fa_f16_copies(f: ModelFacts, ctx: RunContext) -> int:
    """Bytes of the F16 K/V copies ggml-cuda's TILE/MMA flash-attention kernels (prompt batches,
    the reserve graph) allocate with the FA node for a quantized cache: K = n_kv x n_embd_k_gqa x
    n_stream halves, V likewise unless V is a view of K (MLA); the largest layer on the GPU counts
    (the node dies before the next layer's)."""
    if ctx.backend.name not in ("cuda", "rocm") or not ctx.flash_attn:
        return 0
    best = 0
    for il, layer in enumerate(f.layers):
        if not layer.has_attn_kv or not (ctx.layer_on_gpu[il] and ctx.kv_on_gpu):
            continue
        swa = layer.is_swa and f.swa_enabled
        cells = ctx.swa_cells if (swa and not ctx.swa_full) else ctx.n_ctx_seq
        tk = ctx.swa_type_k if (swa and ctx.swa_type_k >= 0) else ctx.type_k
        tv = ctx.swa_type_v if (swa and ctx.swa_type_v >= 0) else ctx.type_v
        size = 0
        if tk in _QUANT_TYPES:
            size += cells * layer.k_width * ctx.n_stream * _F16
        if layer.v_width and tv in _QUANT_TYPES:
            size += cells * layer.v_width * ctx.n_stream * _F16
        best = max(best, size)
    return best


def compute_buffers(f: ModelFacts, ctx: RunContext) -> ComputeResult:
    g = _geometry(f)
    T = ctx.n_tokens
    O = ctx.n_outputs
    E = g.E
    gpu_backend = ctx.backend.is_gpu
    notes: list[str] = []

    kv_layers = [layer for layer in f.layers if layer.has_attn_kv]
    has_full = any(not (layer.is_swa and f.swa_enabled) for layer in kv_layers)
    has_swa = any(layer.is_swa and f.swa_enabled for layer in kv_layers)
    mask_elt = 2 if ctx.flash_attn else 4
    mask_bytes = 0
    if has_full:
        mask_bytes += ctx.n_ctx_seq * T * mask_elt
    if has_swa:
        mask_bytes += ctx.swa_cells * T * mask_elt
    # the largest KQ matrix (FA off): n_kv (per stream) x tokens x heads, f32
    n_kv_max = ctx.n_ctx_seq if has_full else (ctx.swa_cells if has_swa else 0)
    n_head = max((layer.n_head for layer in kv_layers), default=0)

    def phases(e_off: float, gpu: bool = False) -> dict[str, float]:
        """Floats per token of each phase; e_off = E-sized tensors that live elsewhere (GPU: 2;
        builds before b11401: 2 fewer on the CPU)."""
        out = f.n_vocab * (O / T) + (5.5 - e_off) * E
        qmax = max(E, g.Q)
        if kv_layers:
            if ctx.flash_attn:
                attn = (3 - e_off) * E + 3 * qmax + 0.5 * (g.K + g.V)
            else:
                attn = n_head * n_kv_max + (3 - e_off) * E + 3 * qmax + (g.K + g.V)
        else:
            attn = 0.0
        p = {
            "output": out,
            "attention": attn,
            "ffn": _ffn_dense(g, 5.0 - e_off),
            "moe": _ffn_moe(g, 5.0 - e_off),
            "recurrent": (4.0 * g.d_inner + (3 - e_off) * E) if f.n_recurrent_layers and g.d_inner else 0.0,
        }
        if g.n_deepstack:
            # the mixed-embedding inputs (b11401+) are n_embd_inp = E x (1 + n_deepstack) wide on the CPU;
            # on a GPU device, and before b11401, deepstack costs 2.5 E (measured: Vulkan, b11393)
            extra = 2.5 * E if (gpu or not ctx.mixed_embd) else 4.0 * (1 + g.n_deepstack) * E
            p = {k: (v + extra if v else v) for k, v in p.items()}
        return p

    small = SMALL_INPUTS_PER_TOKEN * T

    logits = f.n_vocab * O * F32
    slot = E * T * F32  # one E-wide activation (the inputs and the residual stream)
    reuse_doubt: list[tuple[int, int]] = []  # (chosen, other) peaks where the logits' placement is uncertain

    def peak_bytes(ph: dict[str, float], keys: list[str], masks: int) -> int:
        """High-water mark of one device's graph. The masks are graph inputs, allocated first and
        freed after the last attention layer; the layers' peak sits on top of them. The logits are
        the last big tensor: ggml-alloc puts them in the best-fitting freed block when one is large
        enough, and the only large one is the masks' block merged with its free neighbours (the
        E-wide input slots next to it: one assumed, 0-3 measured); otherwise they go on top of the
        live tensors, above the masks."""
        layer = max((ph[k] for k in keys if k != "output"), default=0.0) * T * F32
        a = masks + layer
        if "output" not in keys:
            return int(a)
        out = ph["output"] * T * F32
        if not ctx.mixed_embd:
            # builds before the mixed token/embedding inputs (b11401, runtimes.toml mixed_embd_inputs):
            # nothing long-lived sits above the masks, so their freed block merges with the free top
            # of the buffer and the logits start there (measured on b9453/b11393's CPU backend and
            # in the ROCm log of b9452)
            return int(max(a, out))
        reused = int(a if a >= out else out + masks)  # logits in the freed masks' block
        above = int(max(a, out + masks))  # no freed block holds them
        chosen, other = (reused, above) if logits <= masks + slot else (above, reused)
        if masks < logits <= masks + 3 * slot and other != chosen:
            reuse_doubt.append((chosen, other))
        return chosen

    def doubt_margin(margin: float) -> float:
        """Widen the margin to cover the other placement when the logits are about the masks' size."""
        if not reuse_doubt:
            return margin
        spread = max(abs(o - c) for c, o in reuse_doubt)
        notes.append(
            f"the logits ({logits / 2**20:.0f} MiB) are about the size of the attention masks: whether "
            f"llama.cpp's graph allocator reuses the masks' memory for them depends on the graph's "
            f"layout; the compute buffer may be {spread / 2**20:.0f} MiB "
            f"{'larger' if any(o > c for c, o in reuse_doubt) else 'smaller'} than estimated")
        return max(margin, max(-(-abs(o - c) * 100 // max(c, 1)) / 100 for c, o in reuse_doubt))

    # builds before b11401 lack the two E-wide mixed-embedding inputs every phase carries since
    e_old = 0.0 if ctx.mixed_embd else 2.0
    if not gpu_backend:
        ph = phases(e_old)
        host = peak_bytes(ph, list(ph), mask_bytes) + small
        margin = APPROX_MARGIN if f.approximate or not f.known_graph else CPU_MARGIN
        if not ctx.mixed_embd:
            margin = max(margin, OLD_BUILD_CPU_MARGIN)
        margin = doubt_margin(margin)
        return ComputeResult(gpu=0, host=host, margin=margin, notes=notes,
                             phases={k: int(v * T * F32) for k, v in ph.items()})

    on_gpu = ctx.layer_on_gpu
    any_gpu_layer = any(on_gpu)
    any_cpu_layer = not all(on_gpu)
    experts_off = not all(ctx.experts_on_gpu[i] or not on_gpu[i] for i in range(len(on_gpu)))
    cpu_weights = any_cpu_layer or not ctx.output_on_gpu or experts_off
    ph_gpu = phases(2.0, gpu=True)  # the mixed-embedding inputs are host inputs: the device graph is the same
    fa_copies = _cuda_fa_f16_copies(f, ctx)
    if fa_copies and ph_gpu["attention"]:
        # CUDA/HIP FA with a quantized cache: the FA node's allocation carries F16 copies of the K/V
        # views (ggml-cuda/fattn.cu ggml_cuda_flash_attn_ext_get_alloc_size, TAG_ALLOC_SIZE_EXPAND)
        ph_gpu["attention"] += fa_copies / (T * F32)
        notes.append(f"{ctx.backend.name}: flash attention on a quantized KV cache converts each layer's K/V view to "
                     f"F16 inside the compute buffer (+{fa_copies / 2**20:.0f} MiB at the largest layer; CUDA/HIP "
                     f"unmeasured here)")
    ph_cpu = phases(e_old)
    all_keys = ["attention", "ffn", "moe", "recurrent", "output"]
    # graph inputs (token ids, positions, the masks, the embedding rows) are allocated on the CPU
    # backend and copied to the device: the host keeps the masks and a few E-wide slots
    deepstack_slots = 3 * g.n_deepstack if ctx.mixed_embd else 0  # the wider mixed inputs (b11401+)
    host_inputs = mask_bytes + (HOST_INPUT_SLOTS - int(e_old) + deepstack_slots) * slot + small
    op_offload = T >= OP_OFFLOAD_MIN_BATCH
    if not cpu_weights or op_offload:
        # full offload, or op_offload: the scheduler moves the CPU layers' large matmuls (and the
        # ops between them) to the device, so the device runs the whole graph (measured on Vulkan:
        # the host buffer is the same as with full offload)
        gpu = peak_bytes(ph_gpu, all_keys, mask_bytes) + small
        host = host_inputs
    else:
        gpu_keys: list[str] = []
        host_keys: list[str] = []
        if any_gpu_layer:
            gpu_keys += ["attention", "ffn", "moe", "recurrent"]
        if any_cpu_layer:
            host_keys += ["attention", "ffn", "moe", "recurrent"]
        (gpu_keys if ctx.output_on_gpu else host_keys).append("output")
        gpu = peak_bytes(ph_gpu, gpu_keys, mask_bytes if any_gpu_layer else 0) + small if gpu_keys else 0
        host = max(host_inputs, peak_bytes(ph_cpu, host_keys, mask_bytes) + int(2.0 * E * T * F32) + small) \
            if host_keys else host_inputs
    # op_offload: a CPU-resident weight used by a large matmul is copied into the GPU compute buffer
    if cpu_weights and op_offload:
        biggest = 0
        for il, layer in enumerate(f.layers):
            if not layer.loaded:
                continue
            if not on_gpu[il] or not ctx.experts_on_gpu[il]:
                biggest = max(biggest, g.max_weight_by_layer[il])
        if not ctx.output_on_gpu:
            biggest = max(biggest, g.output_weight)
        gpu += biggest
        notes.append("partial offload: llama.cpp runs the large matrix multiplications of CPU-resident weights "
                     "on the GPU for large batches (op_offload) and copies the weight there; compute buffer "
                     "includes the whole graph and the largest such tensor")
    margin = APPROX_MARGIN if f.approximate or not f.known_graph else GPU_MARGIN
    if g.n_deepstack:
        margin = max(margin, DEEPSTACK_GPU_MARGIN)  # Qwen3-VL on Vulkan: -39% .. -6% measured (short contexts worst)
    if ctx.backend.name == "vulkan":
        margin = max(margin, _vulkan_limits(ctx, gpu, n_head, n_kv_max, T, notes))
    margin = doubt_margin(margin)
    return ComputeResult(gpu=gpu, host=host, margin=margin, notes=notes,
                         phases={k: int(ph_gpu[k] * T * F32) for k in ph_gpu})
