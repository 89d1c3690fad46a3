"""llama.cpp behind the runtime seam (planner/runtime/base.py `Engine`): the app and build a plan
is for (apps.py), the settings that app passes, the estimator of its buffers (planner/estimator/),
its partial offload (offload.py: -ngl, --n-cpu-moe), its launch lines (launch.py) and its split
over several devices (multi_device.py: -ts, RPC)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...estimate_types import RunSettings
from .apps import AppSettings, Runtime, names_runtime, runtime_for

if TYPE_CHECKING:
    from ...device_schema import DeviceProfile
    from ...estimate_types import Breakdown
    from ...fit_types import FitConfig, FitResult
    from ...header import GGUFHeader, ModelHeaders
    from ...model_facts import ModelFacts
    from ...plan_types import Commands, PlanModel, PlanVariant, Recommendation
    from ...shells import ShellName
    from ..base import EstimateAt, MultiDevice, RunShape


class LlamaCpp:
    """llama.cpp as one app (llama-server, Ollama, LM Studio) and build runs it."""

    name = "llama.cpp"

    def __init__(self, runtime_text: str | None = None, llama_build: int | None = None) -> None:
        self.runtime: Runtime = runtime_for(runtime_text, llama_build)
        self.id: str = self.runtime.id
        self.app: str = self.runtime.app
        self.statement: str = self.runtime.statement
        self._app: AppSettings = self.runtime.settings_defaults()

    @classmethod
    def claims(cls, runtime_text: str) -> bool:
        """--runtime names llama.cpp, one of its builds or an app that runs it (apps.py)."""
        return names_runtime(runtime_text)

    def settings(self, shape: RunShape) -> RunSettings:
        """The llama.cpp settings of one run, as the planned app runs them."""
        app = self._app
        own_batches = self.app == "llama.cpp"  # Ollama and LM Studio pass their own batch sizes
        n_batch, n_ubatch = (shape.n_batch, shape.n_ubatch) if own_batches else (app["n_batch"], app["n_ubatch"])
        return RunSettings.model_validate(dict(
            n_ctx=shape.ctx, n_batch=n_batch, n_ubatch=n_ubatch, n_parallel=shape.n_parallel,
            # llama-server reserves logits for one row per slot (builds since b9464); older builds and
            # the conservative default, for the whole ubatch
            n_outputs_max=min(shape.n_parallel, n_batch) if app["n_outputs_max"] else 0,
            kv_unified=bool(app["kv_unified"]) and self.app == "lmstudio",  # llama-server: -np given
            flash_attn=shape.flash_attn, cache_type_k=shape.cache_type_k, cache_type_v=shape.cache_type_v,
            n_gpu_layers=shape.gpu_layers, n_cpu_moe=shape.cpu_expert_layers,
            use_mmap=shape.mmap and bool(app["use_mmap"]), backend=shape.backend, with_mmproj=shape.with_mmproj,
            llama_build=app["llama_build"],
        ))

    def estimate(self, facts: ModelFacts, settings: RunSettings,
                 mmproj: ModelHeaders | GGUFHeader | None) -> Breakdown:
        from ...estimator import estimate  # imported late: the planner is testable without it

        return estimate(facts, settings, mmproj=mmproj)

    def offload(self, estimate_at: EstimateAt, profile: DeviceProfile, config: FitConfig, *, n_layer: int,
                is_moe: bool, largest_weight_bytes: int = 0) -> FitResult:
        from .offload import solve

        return solve(estimate_at, profile, config, n_layer=n_layer, is_moe=is_moe,
                     largest_weight_bytes=largest_weight_bytes)

    def launch(self, model: PlanModel, v: PlanVariant, rec: Recommendation, os_: str,
               shell_name: ShellName) -> Commands:
        from .launch import build_commands

        return build_commands(model, v, rec, os_, shell_name, self._line_build())

    @property
    def multi_device(self) -> MultiDevice:
        """RPC members and cards in one host, split by -ts (multi_device.py)."""
        from .multi_device import LlamaCppDevices

        return LlamaCppDevices()

    def _line_build(self) -> int | None:
        """The llama.cpp build the llama-server line is written for: the one asked for (--runtime
        llama.cpp@N / --llama-build), else the newest memfit knows (a llama.cpp the user installs
        now; the apps' bundled builds matter for their own lines, not this one)."""
        return self.runtime.llama_build if self.app == "llama.cpp" else None
