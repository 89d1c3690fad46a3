"""llama.cpp's multi-device capability (planner/runtime/base.py `MultiDevice`): its device order
over RPC, each device's buffers when it splits one model over several devices (-ts, split mode
layer, full offload; the layer rule in tensor_split.py), and the rpc-server / llama-server lines
(rpc_launch.py). The buffers come from the single-device estimate (planner.estimator):

- weights: the device's layers' tensors, plus the output layer's (output.weight, output_norm; a
  tied model's token_embd copy) on the device holding slot n_layer; token_embd stays on the host.
- KV cache and recurrent state: the device's layers' (exact, per layer).
- compute: with more than one device llama.cpp turns on pipeline parallelism (llama-context.cpp:
  n_devices > 1, full offload, split mode layer) and the scheduler keeps GGML_SCHED_MAX_COPIES = 4
  copies of every split's inputs (ggml-backend.c sched n_copies). Measured on b11434 over RPC
  (validation/rpc/results.json): each extra copy adds, on every device, the attention masks and one
  E-wide activation (the hidden state handed over at the split boundary); the first device takes
  four E-wide slots per extra copy (its inputs come from the host), the host two plus the masks.
  The graph's own peak is the single-device one less the phases the device does not run (the
  estimator's phases: attention, FFN / MoE, recurrent, output): the last layer runs its FFN on the
  output rows only (llama.cpp gathers inp_out_ids before it), so a device holding just the last
  layer and the output skips the FFN peak. It does not depend on the ratios otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...cluster.types import DeviceBuffers, SplitEstimate
from ...estimate_types import Breakdown, LayerUsage
from ...estimator import resolve
from ...estimator.compute import compute_buffers
from ...estimator.graph_shape import graph_shape
from ...model_facts import ModelFacts
from .tensor_split import layer_devices

if TYPE_CHECKING:
    from ...cluster.types import ClusterPlan
    from ...plan_types import PlanModel, PlanVariant

SCHED_COPIES = 4  # GGML_SCHED_MAX_COPIES (ggml-backend.c): the pipeline's copies of each split's inputs
F32 = 4
FIRST_DEVICE_SLOTS = 4  # E-wide inputs per extra copy on the first device (measured, b11434 over RPC)
OTHER_DEVICE_SLOTS = 1  # the hidden state handed over at each split boundary
HOST_SLOTS = 2


def _extra_copy_bytes(facts: ModelFacts, bd: Breakdown) -> tuple[int, int]:
    """(the attention masks, one E-wide activation) of one extra copy of the graph's inputs."""
    ctx = resolve(facts, bd.settings)
    g = graph_shape(facts)
    elt = 2 if ctx.flash_attn else 4
    cells = (ctx.n_ctx_seq if g.full_attention else 0) + (ctx.swa_cells if g.sliding_attention else 0)
    return cells * ctx.n_tokens * elt, g.E * ctx.n_tokens * F32


def _phases(facts: ModelFacts, bd: Breakdown) -> dict[str, int]:
    """The single-device graph's phases (bytes without the masks), from the estimator."""
    return compute_buffers(facts, resolve(facts, bd.settings)).phases


def _device_phases(layers: list[LayerUsage], last: int, holds_output: bool) -> set[str]:
    """The phases a device's share of the graph runs (the last layer's FFN runs on one row)."""
    keys = {"attention"} if any(l.kind in ("attention", "swa", "mla") for l in layers) else set()
    keys |= {"recurrent"} if any(l.kind == "recurrent" for l in layers) else set()
    keys |= {("moe" if l.expert_bytes else "ffn") for l in layers if l.index != last}
    return keys | ({"output"} if holds_output else set())


def _peak_saving(phases: dict[str, int], keys: set[str]) -> int:
    """How much lower a device's peak is than the whole graph's: the phases it does not run."""
    whole = max(phases.values(), default=0)
    return max(0, whole - max((phases.get(k, 0) for k in keys), default=0))


def _output_weights(bd: Breakdown) -> int:
    """The device side's weights outside the layers: the output layer (and a tied model's copy)."""
    gpu = bd.device("gpu")
    return max(0, gpu.weights_bytes - sum(l.weights_bytes for l in bd.layers if l.on_gpu))


def _device(i: int, layers: list[LayerUsage], holds_output: bool, bd: Breakdown, compute: int) -> DeviceBuffers:
    return DeviceBuffers(
        device=f"dev{i}", layers=[l.index for l in layers], holds_output=holds_output,
        weights_bytes=sum(l.weights_bytes for l in layers) + (_output_weights(bd) if holds_output else 0),
        kv_bytes=sum(l.kv_bytes for l in layers), recurrent_bytes=sum(l.recurrent_bytes for l in layers),
        compute_bytes=compute)


def split_buffers(facts: ModelFacts, bd: Breakdown, ts: Sequence[float]) -> SplitEstimate:
    """Per-device buffers of a full-offload breakdown (one GPU device) split by `ts` over len(ts)
    devices (ratios in llama.cpp's device order)."""
    n_layer = len(bd.layers)
    slots = layer_devices(n_layer, ts)
    n = len(ts)
    used = sorted(set(slots))
    pipeline = len(used) > 1
    masks, slot = _extra_copy_bytes(facts, bd) if pipeline else (0, 0)
    extra = SCHED_COPIES - 1 if pipeline else 0
    gpu, host = bd.device("gpu"), bd.device("host")
    phases = _phases(facts, bd) if pipeline else {}
    devices = []
    for d in range(n):
        layers = [bd.layers[i] for i in range(n_layer) if slots[i] == d]
        holds_output = slots[n_layer] == d
        if not layers and not holds_output:
            devices.append(DeviceBuffers(device=f"dev{d}"))
            continue
        per_copy = masks + (FIRST_DEVICE_SLOTS if d == used[0] else OTHER_DEVICE_SLOTS) * slot
        own = gpu.compute_bytes - _peak_saving(phases, _device_phases(layers, n_layer - 1, holds_output))
        devices.append(_device(d, layers, holds_output, bd, own + extra * per_copy))
    host_buf = DeviceBuffers(device="host", weights_bytes=host.weights_bytes, kv_bytes=host.kv_bytes,
                             recurrent_bytes=host.recurrent_bytes, output_bytes=host.output_bytes,
                             compute_bytes=host.compute_bytes + extra * (masks + HOST_SLOTS * slot))
    return SplitEstimate(ts=list(ts), pipeline=pipeline, devices=devices, host=host_buf)



class LlamaCppDevices:
    """llama.cpp over several devices: RPC members (`ggml-rpc-server`) or cards in one host, split
    by `-ts` with split mode layer."""

    def device_order(self, n: int, kind: str) -> list[int]:
        """llama.cpp's device index of each member: over RPC the workers' devices come first and the
        head's own GPU last; cards in one host keep their order."""
        return list(range(n)) if kind == "local" else [n - 1] + list(range(n - 1))

    def split(self, facts: ModelFacts, bd: Breakdown, ts: Sequence[float]) -> SplitEstimate:
        return split_buffers(facts, bd, ts)

    def launch(self, model: PlanModel, v: PlanVariant, plan: ClusterPlan) -> list[str]:
        from .rpc_launch import launch_lines

        return launch_lines(model, v, plan)

    def warnings(self, kind: str) -> list[str]:
        from .rpc_launch import rpc_warning

        return [rpc_warning()] if kind == "rpc" else []
