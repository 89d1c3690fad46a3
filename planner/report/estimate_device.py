"""`memfit estimate --device`'s section: where this exact breakdown lands on the device as it is
configured now (the carve-out in effect, the GPU cap, the OS reserve): pools, checks, tier, and the
`memfit plan` line for a recommendation; as text within the terminal or as the JSON `device_fit`.
The carve-out and a card's VRAM are in GB as the BIOS and the vendor name them; pools, caps and
reserves in GiB, as memfit computes them. See docs/devices.md "estimate --device".
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from ..units import UNITS_NOTE, fmt_bytes, fmt_vendor_size
from .layout import command_lines, render_table, text_width, unbroken, wrap

if TYPE_CHECKING:
    from ..device_schema import DeviceProfile
    from ..estimate_run import DeviceFit
    from ..fit import FitResult, PoolUse

# the device's pools: the pool and its headroom first
POOL_DROP_ORDER = ["used", "capacity"]
# Profile fields marked `estimated` that matter for speed, not memory (estimate does not show speed).
_SPEED_FIELDS = ("bandwidth_gbps", "host_bandwidth_gbps", "decode_efficiency", "gpu_tflops_fp16")
NO_GPU_TIER = "cpu_only"  # device_fit.tier of a run that uses no GPU (--backend cpu, CPU-only machines)
_TIER_TEXT = {
    "dedicated": "fits in dedicated GPU memory",
    "shared": "fits on the GPU, part of it in shared memory",
    "partial_offload": "fits, with part of the model on the CPU as -ngl/--n-cpu-moe ask",
    "no_fit": "does not fit",
    NO_GPU_TIER: "fits in system RAM, CPU only: no GPU in use",
}
_CHECK_MARKS = {(True, True): "ok ", (True, False): "ok ", (False, True): "NO ", (False, False): "!  "}


def fit_tier(r: FitResult) -> str:
    """The fit solver's tier, except that a run with nothing on a GPU that passes every blocking
    check fits in system RAM (the solver, planning GPUs, calls every GPU-less run no_fit)."""
    if not r.gpu_need_bytes and not r.blocking_failures:
        return NO_GPU_TIER
    return r.tier


def _carveout_source(p: DeviceProfile) -> str:
    if "carveout" in p.overrides:
        return "--carveout"
    if p.live is not None and p.live.carveout_bytes is not None:
        return "in effect on this machine"
    return "factory default" + (", assumed" if "carveout.default_bytes" in p.estimated else "")


def _cap_source(p: DeviceProfile, os_: str) -> str:
    if "gpu_cap" in p.overrides:
        return "--gpu-cap"
    cap = p.os_info(os_).gpu_cap  # type: ignore[arg-type]
    if cap is None:
        return "no limit known: all RAM the OS sees"
    if cap.setting_bytes is not None:
        return "as set on this machine" if p.live is not None else "the profile's setting"
    return "OS default"


def _has_gpu_window(p: DeviceProfile, os_: str) -> bool:
    """A carve-out APU or a unified machine with a known GPU limit (the fit solver assumes all RAM
    for a unified machine without one, which on a CPU-only board is no GPU at all)."""
    return p.memory_architecture == "carveout" or (
        p.memory_architecture == "unified" and p.os_info(os_).gpu_cap is not None)  # type: ignore[arg-type]


def shown_pools(r: FitResult) -> list[PoolUse]:
    """The solver's pools, without GPU pools when this run puts nothing on a GPU (a CPU-only run
    or machine has only system RAM to fill; the carve-out still shows in the device line)."""
    if r.gpu_need_bytes:
        return list(r.pools)
    return [pool for pool in r.pools if pool.name == "host"]


def assumptions(p: DeviceProfile) -> list[str]:
    """Profile fields that are assumptions and matter here: memory, not speed; the factory
    carve-out only when it is the one in effect."""
    out = [f for f in p.estimated if f not in _SPEED_FIELDS]
    if _carveout_source(p) != "factory default, assumed":
        out = [f for f in out if f != "carveout.default_bytes"]
    return out


def _cap_name(p: DeviceProfile, os_: str) -> str:
    if p.memory_architecture == "unified":
        return "GPU wired limit" if os_ == "macos" else "GPU-usable memory"
    return {"linux": "GTT cap", "windows": "shared GPU memory cap"}.get(os_, "shared cap")


# --------------------------------------------------------------------------- JSON

def _pools_json(r: FitResult) -> list[dict[str, Any]]:
    return [{"name": p.name, "label": p.label, "capacity_bytes": p.capacity_bytes, "used_bytes": p.used_bytes,
             "headroom_bytes": p.headroom_bytes} for p in shown_pools(r)]


def _checks_json(r: FitResult) -> list[dict[str, Any]]:
    return [{"name": c.name, "ok": c.ok, "blocking": c.blocking, "message": c.message,
             "margin_bytes": c.margin_bytes} for c in r.checks]


def _memory_json(r: FitResult, profile: DeviceProfile) -> dict[str, Any]:
    """The device's memory as the solver read it: RAM, carve-out and GPU cap with their sources."""
    window = _has_gpu_window(profile, r.config.os)
    return {
        "ram_bytes": r.ram_bytes, "carveout_bytes": r.carveout_bytes,
        "carveout_source": _carveout_source(profile) if r.carveout_bytes is not None else None,
        "gpu_cap_bytes": r.gpu_cap_bytes if window else None,
        "gpu_cap_source": _cap_source(profile, r.config.os) if window else None,
        "os_visible_bytes": r.os_visible_bytes, "reserve_bytes": r.reserve_bytes,
        "gpu_capacity_bytes": r.gpu_capacity_bytes, "reported_bytes": r.reported_bytes,
        "gpu_reserve_bytes": r.gpu_reserve_bytes, "spill_bytes": r.spill_bytes, "fast_spare_bytes": r.fast_spare_bytes,
    }


def device_fit_json(fit: DeviceFit) -> dict[str, Any]:
    r, profile = fit.result, fit.profile
    tier = fit_tier(r)
    gpu_check = next((c for c in r.checks if c.name == "gpu_memory"), None)
    return {
        "device": profile.id, "ref": fit.ref, "name": profile.name, "based_on": profile.based_on,
        "memory_architecture": r.memory_architecture, "os": r.config.os, "use": r.config.use,
        "backend": r.config.backend, "estimator_backend": fit.backend, "live": profile.live is not None,
        "overrides": dict(profile.overrides),
        **_memory_json(r, profile),
        "tier": tier, "fits": tier != "no_fit",
        "gpu_need_bytes": r.gpu_need_bytes, "overhead_bytes": r.overhead_bytes, "safety_bytes": r.safety_bytes,
        "gpu_headroom_bytes": r.gpu_headroom_bytes,
        "gpu_margin_bytes": gpu_check.margin_bytes if gpu_check is not None else None,
        "host_need_bytes": r.host_need_bytes, "os_free_bytes": r.os_free_bytes,
        "pools": _pools_json(r), "checks": _checks_json(r),
        "warnings": r.warnings, "shared_cost": r.shared_cost or None, "notes": fit.notes,
        "assumed": assumptions(profile),
        "plan_command": fit.plan_command,
    }


# --------------------------------------------------------------------------- text

def _signed(n: int) -> str:
    return fmt_bytes(n) if n >= 0 else f"short {fmt_bytes(-n)}"


def _wrap(text: str, width: int, indent: str = "  ") -> list[str]:
    """A paragraph of the device section: indented, with a hanging indent two deeper."""
    return wrap(text, width, indent, indent + "  ")


def _setup_line(r: FitResult, profile: DeviceProfile) -> str:
    setup = f"{r.config.os}, {r.config.use} use, backend {r.config.backend}"
    if profile.based_on and profile.based_on != profile.id:
        setup = f"profile {profile.based_on}; {setup}"
    if profile.overrides:
        setup += f"; overrides: {', '.join(f'{k}={v}' for k, v in profile.overrides.items())}"
    return setup


def _memory_facts(r: FitResult, profile: DeviceProfile) -> tuple[list[str], bool]:
    """The device's memory in short facts, and whether any is in vendor GB (carve-out, VRAM)."""
    os_ = r.config.os
    facts = []
    if r.carveout_bytes is not None:
        facts.append(f"carve-out {fmt_vendor_size(r.carveout_bytes)} ({_carveout_source(profile)})")
    if r.memory_architecture == "discrete":
        kept = profile.vram_reserve(os_, r.config.use)  # type: ignore[arg-type]
        facts.append(f"VRAM {fmt_vendor_size(profile.vram_bytes)}" + (f" ({fmt_bytes(kept)} kept by the desktop)" if kept else ""))
    elif r.gpu_cap_bytes is not None and _has_gpu_window(profile, os_):
        facts.append(f"{_cap_name(profile, os_)} {fmt_bytes(r.gpu_cap_bytes)} ({_cap_source(profile, os_)})")
    vendor_sizes = r.carveout_bytes is not None or r.memory_architecture == "discrete"
    return facts + [f"OS sees {fmt_bytes(r.os_visible_bytes)}", f"OS reserve {fmt_bytes(r.reserve_bytes)}"], vendor_sizes


def _pool_table(r: FitResult, width: int) -> list[str]:
    rows = [[p.label, fmt_bytes(p.capacity_bytes), fmt_bytes(p.used_bytes), _signed(p.headroom_bytes)]
            for p in shown_pools(r)]
    return render_table(rows, ["pool", "capacity", "used", "headroom"], width, drop_order=POOL_DROP_ORDER,
                        align=["left", "right", "right", "right"], indent=2)


def _checks(r: FitResult, width: int) -> list[str]:
    out = []
    for c in r.checks:
        out += wrap(c.message, width, f"  {_CHECK_MARKS[(c.ok, c.blocking)]} ", " " * 6)
    return out


def _verdict(r: FitResult) -> str:
    tier = fit_tier(r)
    verdict = f"=> {_TIER_TEXT[tier]} (tier {tier})"
    if tier == "no_fit" and r.blocking_failures:
        verdict += f": {r.short_reason}"
    return verdict


def _paragraphs(fit: DeviceFit, vendor_sizes: bool) -> list[str]:
    """The lines after the verdict: shared-memory cost, notes, assumptions, units."""
    r, assumed = fit.result, assumptions(fit.profile)
    out = [f"shared memory: {r.shared_cost}"] if r.shared_cost else []
    out += [f"note: {n}" for n in fit.notes]
    out += [f"assumed, not measured: {', '.join(assumed)}"] if assumed else []
    return out + ([f"units: {UNITS_NOTE}"] if vendor_sizes else [])


def _plan_lines(hint: str | None, width: int) -> list[str]:
    if not hint:
        return _wrap("no GPU backend on this device: `memfit plan` has nothing to place on a GPU here", width)
    out = _wrap("for a recommendation (quant, memory split, launch flags):", width)
    return out + command_lines([shlex.quote(w) for w in shlex.split(hint)], width, indent="    ", cont="    ")


def _zero_carveout_lines(r: FitResult, width: int) -> list[str]:
    """A carve-out APU whose carve-out reads 0 (BIOS 'Auto'): said, with where to look."""
    if r.memory_architecture == "carveout" and r.carveout_bytes == 0:
        return _wrap("! the carve-out reads 0 (BIOS 'Auto'): runtimes may see no dedicated VRAM; "
                     "`memfit doctor` explains", width)
    return []


def render_device_fit(fit: DeviceFit, width: int | None = None) -> str:
    """Where the breakdown lands on the device, within `width` (the terminal's by default)."""
    width = width or text_width()
    r, profile = fit.result, fit.profile
    title = f"on {profile.id}" + (f" ({profile.name})" if profile.name and profile.name != profile.id else "")
    facts, vendor_sizes = _memory_facts(r, profile)
    out = _wrap(title, width, "") + _wrap(_setup_line(r, profile), width)
    out += _wrap(" · ".join(unbroken(f) for f in facts), width) + _zero_carveout_lines(r, width)
    out += [""] + _pool_table(r, width) + [""] + _checks(r, width) + _wrap(_verdict(r), width)
    for paragraph in _paragraphs(fit, vendor_sizes):
        out += _wrap(paragraph, width)
    return "\n".join(out + _plan_lines(fit.plan_command, width))
