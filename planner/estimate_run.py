"""`memfit estimate`'s driver: the model's variant and projector, the estimator's breakdown under the
runtime's settings, and (with a device) where that exact breakdown lands on the device as it is
configured now, through the fit solver `plan` uses, with the `memfit plan` line that asks for a
recommendation for the same device and run shape. planner/report/estimate*.py render the result.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import InputError, MemfitError
from .runtime.llamacpp.flags import RunFlags, build_settings, check_against_model
from .units import fmt_ctx, one_line
from .vocab import ESTIMATOR_BACKENDS, estimator_backend

if TYPE_CHECKING:
    from .device_schema import BackendInfo, DeviceProfile
    from .estimate_types import Breakdown
    from .fit import FitResult
    from .header import ModelHeaders
    from .model_facts import ModelFacts
    from .resolver import ResolvedModel, Variant
    from .runtime.llamacpp.apps import Runtime

DEFAULT_BACKEND = "cuda"  # without --device or --backend


@dataclass(frozen=True)
class EstimateRequest:
    """What `estimate` was asked: the model reference and the flags that shape the run."""

    model: str
    flags: RunFlags = field(default_factory=RunFlags)
    backend: str | None = None  # --backend as given
    mmproj: str | None = None  # --mmproj as given (None: the default, auto with a note)
    quant: str | None = None
    revision: str | None = None


@dataclass
class DeviceChoice:
    """The device estimate places the breakdown on (loaded with its overrides by the CLI)."""

    profile: DeviceProfile
    ref: str  # what --device or --device-file named
    notes: list[str] = field(default_factory=list)  # what the overrides changed
    plan_args: list[str] = field(default_factory=list)  # device flags a `memfit plan` line carries over


@dataclass
class DeviceFit:
    """Where the breakdown lands on the device, and what to run for a recommendation."""

    result: FitResult
    profile: DeviceProfile
    ref: str
    backend: str  # the backend the estimator sized
    notes: list[str]
    plan_command: str | None


@dataclass
class EstimateReport:
    breakdown: Breakdown
    title: str
    quant: str
    mmproj_name: str | None
    runtime: Runtime
    device: DeviceFit | None = None


# --------------------------------------------------------------------------- backend

def device_backend(profile: DeviceProfile, requested: str | None) -> BackendInfo:
    """--backend on a device: the profile's entry for it (a name, a driver or a label such as
    'vulkan (amdvlk)'); without --backend the device's first backend on its OS (a GPU one first)."""
    from .device_schema import BackendInfo

    os_ = profile.default_os
    listed = profile.backends(os_)
    if requested is None:
        gpu = [b for b in listed if b.name != "cpu"]
        return (gpu or listed)[0]
    found = profile.backend(requested, os_)
    if found is not None:
        return found
    if requested == "cpu":  # every machine can run on the CPU, listed or not
        return BackendInfo(name="cpu")
    labels = sorted({b.label for b in listed} | {"cpu"})
    raise InputError(f"backend {requested!r} is not listed for {profile.id} on {os_}",
                     hint=f"choose one of: {', '.join(labels)} (or drop --backend for the device's default)")


def _backend_without_device(requested: str | None) -> str:
    if requested is None:
        return DEFAULT_BACKEND
    if requested in ESTIMATOR_BACKENDS:
        return requested
    raise InputError(f"invalid --backend {requested!r}: use one of {', '.join(ESTIMATOR_BACKENDS)}",
                     hint="a driver name (amdvlk, radv) picks a backend of a device profile: add --device")


# --------------------------------------------------------------------------- model

def _variant(req: EstimateRequest, resolved: ResolvedModel) -> Variant:
    """The one variant to size: a reference with several needs --quant."""
    if not resolved.variants:
        raise MemfitError(f"no GGUF model found for {req.model!r}")
    if len(resolved.variants) > 1 and not req.quant:
        names = ", ".join(v.quant for v in resolved.variants[:8])
        raise InputError(f"{req.model!r} has {len(resolved.variants)} quant variants ({names}...)",
                         hint="pick one with --quant (or MODEL:QUANT); `memfit inspect` lists them")
    variant = resolved.variants[0]
    if variant.headers is None:
        raise MemfitError(f"could not read the headers of {req.model!r}")
    return variant


def _runtime_note(runtime: Runtime, tool: str) -> str:
    if tool == "server":
        return runtime.statement
    return f"{runtime.statement.split(';')[0]} (--tool {tool}: libllama defaults)"


# --------------------------------------------------------------------------- device fit

def place_on_device(b: Breakdown, profile: DeviceProfile, info: BackendInfo, headers: ModelHeaders) -> FitResult:
    """This exact breakdown on the device as it is configured now (carve-out and GPU cap in effect,
    the profile's OS and use), through the fit solver `plan` uses."""
    from .fit import FitConfig, place
    from .search import largest_gpu_weight_bytes

    cfg = FitConfig(os=profile.default_os, use=profile.default_use, backend=info.label, mmap=b.settings.use_mmap)
    return place(b, profile, cfg, largest_weight_bytes=largest_gpu_weight_bytes(headers))


def has_gpu_backend(p: DeviceProfile) -> bool:
    return any(b.name != "cpu" for b in p.backends(p.default_os))


def _run_shape_args(b: Breakdown) -> list[str]:
    """The plan flags for the breakdown's context, slots, cache types and flash attention
    (defaults left out)."""
    s = b.settings
    args = ["--ctx", fmt_ctx(b.n_ctx)]
    shape = [("-np", str(s.n_parallel), s.n_parallel != 1), ("-ctk", s.cache_type_k, s.cache_type_k != "f16"),
             ("-ctv", s.cache_type_v, s.cache_type_v != "f16"), ("-fa", s.flash_attn, s.flash_attn != "auto")]
    return args + [word for flag, value, given in shape if given for word in (flag, value)]


def plan_hint(req: EstimateRequest, device: DeviceChoice, b: Breakdown, backend: str | None) -> str | None:
    """The `memfit plan` line that asks for a recommendation for the same device and run shape
    (None on a machine without a GPU backend: plan places models on GPUs). Hardware and use flags
    carry over; --carveout/--gpu-cap do not (choosing them is plan's job)."""
    if not has_gpu_backend(device.profile):
        return None
    args = ["memfit", "plan", req.model, *device.plan_args, *_run_shape_args(b)]
    if backend and backend != "cpu":  # plan places models on a GPU
        args += ["--backend", backend]
    if req.mmproj and req.mmproj.lower() != "auto":
        args += ["--mmproj", req.mmproj]
    if req.revision:
        args += ["--revision", req.revision]
    return shlex.join(args)


# --------------------------------------------------------------------------- the run

def _backends(req: EstimateRequest, device: DeviceChoice | None) -> tuple[str | None, BackendInfo | None, str]:
    """(the --backend asked for, the device's backend it picks, the estimator's backend)."""
    requested = req.backend.strip().lower() if req.backend else None
    info = device_backend(device.profile, requested) if device is not None else None
    backend = estimator_backend(info.name) if info is not None else _backend_without_device(requested)
    return requested, info, backend


def _title(facts: ModelFacts, resolved: ResolvedModel) -> str:
    """The model's name in its header, else its repo or reference."""
    return one_line(facts.name) if facts.name else (resolved.repo or resolved.ref)


def run_estimate(req: EstimateRequest, runtime: Runtime, device: DeviceChoice | None) -> EstimateReport:
    """Size the model's variant for the request on the runtime, and place it on the device if any."""
    from .estimator import estimate
    from .inputs import estimate_projector
    from .model_facts import ModelFacts
    from .resolver import resolve

    requested, info, backend = _backends(req, device)
    settings = build_settings(req.flags, backend=backend, runtime=runtime)

    resolved = resolve(req.model, revision=req.revision, quant=req.quant, load_headers=True)
    variant = _variant(req, resolved)
    facts = ModelFacts.from_headers(variant.headers)  # type: ignore[arg-type]
    settings, flag_notes = check_against_model(settings, facts)
    projector = estimate_projector(resolved, req.mmproj, variant)
    if projector.headers is not None:
        settings = settings.model_copy(update={"with_mmproj": True})
    b = estimate(facts, settings, projector.headers)
    b.warnings.insert(0, _runtime_note(runtime, req.flags.tool))
    b.warnings.extend(flag_notes + projector.notes)
    report = EstimateReport(b, f"{_title(facts, resolved)} [{variant.quant}] ({one_line(facts.arch, 40)})",
                            variant.quant, projector.name, runtime)
    if device is not None and info is not None:
        fit = place_on_device(b, device.profile, info, variant.headers)  # type: ignore[arg-type]
        report.device = DeviceFit(fit, device.profile, device.ref, backend, device.notes,
                                  plan_hint(req, device, b, requested))
    return report
