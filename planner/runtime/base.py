"""The runtime seam: what the fit solver, the search and the plan ask of the runtime that runs
the model, in no runtime's words. llama.cpp (planner/runtime/llamacpp/) is the one runtime; a
second one is a new folder implementing `Engine` and one line in planner/runtime/registry.py.

The contract between a runtime and the rest of memfit stays `Breakdown` (planner/estimate_types.py):
what the runtime allocates, per component and per device, with each layer's bytes and where it
sits. `RunSettings` is llama.cpp's flags and is what a Breakdown records; an engine builds it from
a `RunShape` (its own settings type would be a field of the Breakdown's next version).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    from ..cluster.types import ClusterPlan, SplitEstimate
    from ..device_schema import DeviceProfile
    from ..estimate_types import Breakdown, RunSettings
    from ..fit_types import FitConfig, FitResult
    from ..header import GGUFHeader, ModelHeaders
    from ..model_facts import ModelFacts
    from ..plan_types import Commands, PlanModel, PlanVariant, Recommendation
    from ..shells import ShellName
    from ..vocab import FlashAttn

ALL_LAYERS = -1  # RunShape.gpu_layers: every layer on the GPU


@dataclass(frozen=True, slots=True)
class RunShape:
    """One run as the planner asks for it: the context, the backend, the KV cache, the request's
    batch and sequences, and how much of the model sits on the GPU (whole layers, and layers whose
    MoE experts stay on the CPU). An engine turns it into its settings (`Engine.settings`)."""

    ctx: int
    backend: str  # the estimator's backend name (planner/vocab.py)
    cache_type_k: str
    cache_type_v: str
    flash_attn: FlashAttn
    n_parallel: int
    n_batch: int
    n_ubatch: int
    mmap: bool
    with_mmproj: bool
    gpu_layers: int = ALL_LAYERS
    cpu_expert_layers: int = 0


# (layers on the GPU, layers whose experts stay on the CPU) -> the runtime's Breakdown for them
EstimateAt = Callable[[int, int], "Breakdown"]


class MultiDevice(Protocol):
    """An engine's split of one model over several devices (machines over the network or cards in
    one host), for `plan --cluster / --gpus`; optional: `Engine.multi_device` is None without it."""

    def device_order(self, n: int, kind: str) -> list[int]:
        """The runtime's device index of each of n members in the user's order (kind: "rpc" for
        machines, "local" for cards in one host)."""
        ...

    def split(self, facts: ModelFacts, bd: Breakdown, ratios: Sequence[float]) -> SplitEstimate:
        """Each device's buffers and the host's when the full-offload breakdown `bd` is split by
        `ratios` (one per device, in the runtime's device order)."""
        ...

    def launch(self, model: PlanModel, v: PlanVariant, plan: ClusterPlan) -> list[str]:
        """The lines that start the members and the model (machine settings aside: the BIOS and GPU
        cap lines are the cluster plan's)."""
        ...

    def warnings(self, kind: str) -> list[str]:
        """What the reports say about running this way (an unauthenticated protocol, say)."""
        ...


class Engine(Protocol):
    """A runtime as the planner uses it (one per plan: the app and build the request names)."""

    name: str  # the engine: "llama.cpp"
    id: str  # what is planned for: "llama.cpp@b11434", "ollama@0.30" (plans print it)
    app: str  # the app that runs it ("llama.cpp", "ollama", "lmstudio"): the speed model's key
    statement: str  # one line for reports: which runtime and which defaults are assumed

    def settings(self, shape: RunShape) -> RunSettings:
        """The run settings the app passes for this shape (its defaults where the plan does not say)."""
        ...

    def estimate(self, facts: ModelFacts, settings: RunSettings,
                 mmproj: ModelHeaders | GGUFHeader | None) -> Breakdown:
        """What the runtime allocates for the model under these settings."""
        ...

    def offload(self, estimate_at: EstimateAt, profile: DeviceProfile, config: FitConfig, *, n_layer: int,
                is_moe: bool, largest_weight_bytes: int = 0) -> FitResult:
        """Full offload if it fits, else the runtime's most GPU-resident split that does (is_moe
        False: whole layers only)."""
        ...

    def launch(self, model: PlanModel, v: PlanVariant, rec: Recommendation, os_: str,
               shell_name: ShellName) -> Commands:
        """The lines that run the recommendation, in the shell's syntax (machine settings aside:
        BIOS and GPU cap lines are the plan's)."""
        ...

    @property
    def multi_device(self) -> MultiDevice | None:
        """Its split over several devices, or None: the engine plans one device only."""
        ...
