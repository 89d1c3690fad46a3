"""`memfit doctor`'s judgement: what the probe found, what each backend will report, and the
findings (each with the fix and its source). Pure functions over MachineFacts + DeviceProfile."""

from __future__ import annotations

from typing import Callable, Literal

from pydantic import BaseModel, Field

from ..device_schema import GIB, MIB, DeviceProfile, gtt_pages
from ..units import fmt_auto
from .build import Recognition
from .facts import MachineFacts
from .known import kernel_version, strix_halo_kernel

Level = Literal["ok", "info", "warn", "problem"]

SRC_ROCM_STRIX = "https://rocm.docs.amd.com/en/latest/how-to/system-optimization/strixhalo.html"
SRC_AUTO = "ggml-org/llama.cpp#26089; lmstudio-ai/lms#589"
APU_FAMILIES = {"strix-halo", "strix-point", "krackan", "phoenix", "hawk-point", "amd-apu"}


class Finding(BaseModel):
    id: str
    level: Level
    title: str
    detail: str = ""
    fix: str | None = None
    source: str = ""


class BackendView(BaseModel):
    backend: str
    reports_bytes: int | None
    how: str
    max_alloc_bytes: int | None = None


class Diagnosis(BaseModel):
    facts: MachineFacts
    recognised: str | None
    recognition: str
    profile_id: str | None
    profile_name: str | None
    os: str
    carveout_bytes: int | None = None
    gpu_cap_bytes: int | None = None
    gpu_cap_is_default: bool | None = None
    gpu_total_bytes: int | None = None
    backends: list[BackendView] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)


Check = Callable[[MachineFacts, DeviceProfile, list[Finding]], None]


def _apu(facts: MachineFacts):
    return facts.integrated_amd()


def _is_apu(p: DeviceProfile) -> bool:
    return p.memory_architecture == "carveout"


def _ttm_key(facts: MachineFacts) -> str:
    return "amdttm.pages_limit" if facts.amdttm_loaded else "ttm.pages_limit"


def _target_gtt(facts: MachineFacts, p: DeviceProfile) -> int:
    """The GTT memfit suggests: the profile's safe maximum at the current carve-out, in whole GiB."""
    target = p.max_gpu_cap_bytes("linux") or int(0.9 * (facts.ram_visible_bytes or p.os_visible_ram()))
    return max(GIB, (target // GIB) * GIB)


def check_carveout_zero(facts, p, out):
    apu = _apu(facts)
    if facts.system == "windows":
        apu = next((g for g in facts.gpus if g.vendor == "amd" and g.kind == "integrated"), None)
    if apu is None or apu.vram_total_bytes is None or not _is_apu(p):
        return
    if apu.vram_total_bytes == 0 or (facts.system == "windows" and apu.vram_total_bytes < 256 * MIB):
        out.append(Finding(
            id="carveout-auto", level="problem",
            title=f"the GPU's dedicated memory reads {fmt_auto(apu.vram_total_bytes)} (BIOS UMA 'Auto'?)",
            detail="With BIOS GPU memory set to Auto, llama.cpp (ROCm and Vulkan) reported ~0 usable VRAM and skipped offload.",
            fix="set the BIOS UMA Frame Buffer Size to a fixed value (512 MB on Linux with a raised GTT; "
                "on Windows the carve-out memfit plan recommends)",
            source=SRC_AUTO))


def check_carveout_large_linux(facts, p, out):
    apu = _apu(facts)
    if facts.system != "linux" or not _is_apu(p) or apu is None or not apu.vram_total_bytes \
            or apu.vram_total_bytes <= 4 * GIB:
        return
    carve = apu.vram_total_bytes
    small = min(p.carveout_options()) if p.carveout_options() else 512 * MIB
    at_small = p.max_gpu_cap_bytes("linux", small) or 0
    out.append(Finding(
        id="carveout-large-linux", level="warn",
        title=f"{fmt_auto(carve)} carve-out is taken from Linux for good",
        detail="On Linux the GPU reaches GTT memory at the same speed as the carve-out; AMD recommends a small "
               "carve-out (0.5 GB) with a raised GTT so the RAM stays usable by both.",
        fix=f"set the BIOS UMA Frame Buffer Size to {fmt_auto(small)}, then raise GTT with "
            f"{_ttm_key(facts)}={gtt_pages((at_small // GIB) * GIB)} ({fmt_auto((at_small // GIB) * GIB)}); reboot"
            if at_small else f"set the BIOS UMA Frame Buffer Size to {fmt_auto(small)}",
        source=SRC_ROCM_STRIX))


def check_gtt(facts, p, out):
    apu = _apu(facts)
    if facts.system != "linux" or not _is_apu(p) or apu is None or not apu.gtt_total_bytes:
        return
    gtt = apu.gtt_total_bytes
    visible = facts.ram_visible_bytes or p.os_visible_ram()
    is_default = p.live.gpu_cap_is_default if p.live is not None else None
    key = _ttm_key(facts)
    if is_default:
        target = _target_gtt(facts, p)
        if target <= gtt:
            return
        out.append(Finding(
            id="gtt-default", level="warn",
            title=f"GTT is at the kernel default: {fmt_auto(gtt)} (about half of the {fmt_auto(visible)} Linux sees)",
            detail="The GPU can map only this much of the shared RAM; models beyond it fail to load or spill to the CPU.",
            fix=f"add {key}={gtt_pages(target)} ({fmt_auto(target)}) to the kernel command line "
                f"(or `amd-ttm --set {target // GIB}`, which writes /etc/modprobe.d/ttm.conf), then reboot",
            source=f"{SRC_ROCM_STRIX}; drivers/gpu/drm/ttm/ttm_device.c (default 1/2 of RAM)"))
    else:
        pages = facts.ttm_pages_limit or gtt_pages(gtt)
        out.append(Finding(id="gtt-raised", level="ok",
                           title=f"GTT raised to {fmt_auto(gtt)} ({facts.ttm_module or 'ttm'}.pages_limit={pages})",
                           source=SRC_ROCM_STRIX))
    if gtt > visible - 4 * GIB:
        out.append(Finding(
            id="gtt-too-high", level="warn",
            title=f"GTT ({fmt_auto(gtt)}) leaves the OS less than 4 GiB of the {fmt_auto(visible)} it sees",
            detail="Freezes are reported when a GPU load leaves Linux under ~4 GiB (swap off).",
            fix=f"lower {key} to {gtt_pages(max(GIB, ((visible - 4 * GIB) // GIB) * GIB))} or keep loads smaller",
            source="Nathanw1014/strix-halo-llamacpp#8"))
    carve = apu.vram_total_bytes or 0
    installed = facts.ram_installed_bytes or p.ram_bytes
    if carve + gtt > installed:
        out.append(Finding(
            id="gtt-plus-carveout", level="warn",
            title=f"carve-out + GTT ({fmt_auto(carve + gtt)}) exceed the {fmt_auto(installed)} installed",
            detail="Vulkan then reports more memory than can be allocated (a 96 GB carve-out + 105 GB GTT showed "
                   "135 GB, of which ~94 GB was allocatable); kernels with the 2026 'cap GTT size to physical RAM' "
                   "patch clip GTT themselves.",
            fix=f"lower {key} so carve-out + GTT stay below the RAM, or shrink the carve-out",
            source="GpuZelenograd/memtest_vulkan#66"))
    kfd_limit = visible - visible // 64 - GIB
    if gtt > kfd_limit and not facts.amdgpu_no_system_mem_limit:
        out.append(Finding(
            id="kfd-limit", level="info",
            title=f"ROCm (KFD) stops system-memory allocations at ~{fmt_auto(kfd_limit)}, below this GTT",
            detail="KFD's system-memory limit is RAM - RAM/64 - 1 GiB unless amdgpu.no_system_mem_limit is set.",
            fix="add amdgpu.no_system_mem_limit=1 to the kernel command line if ROCm loads stop short of the GTT size",
            source="drivers/gpu/drm/amd/amdgpu/amdgpu_amdkfd_gpuvm.c amdgpu_amdkfd_gpuvm_init_mem_limits()"))


def check_ttm_module(facts, p, out):
    if facts.system != "linux":
        return
    if facts.amdttm_loaded and facts.cmdline.get("ttm.pages_limit") and not facts.cmdline.get("amdttm.pages_limit"):
        out.append(Finding(
            id="amdttm-ignored", level="problem",
            title="ttm.pages_limit is set but the amdgpu-dkms driver uses the amdttm module, which ignores it",
            fix=f"use amdttm.pages_limit={facts.cmdline['ttm.pages_limit']} (and amdttm.page_pool_size) instead",
            source="ROCm/legacy-rocm-build#5595; ROCm/legacy-rocm-build#3648"))
    if facts.cmdline.get("amdgpu.gttsize"):
        v = kernel_version(facts.kernel) or (0, 0, 0, 0)
        newer = v[:2] >= (7, 1)
        out.append(Finding(
            id="gttsize-deprecated", level="warn" if newer else "info",
            title=f"amdgpu.gttsize={facts.cmdline['amdgpu.gttsize']} is deprecated",
            detail="The kernel warns 'Configuring gttsize via module parameter is deprecated, please use "
                   "ttm.pages_limit'. On Ubuntu 6.8 + ROCm 7.1.1 both were needed; on 7.1 pages_limit alone reaches "
                   "the ceiling and setting both is discouraged.",
            fix="remove amdgpu.gttsize and keep ttm.pages_limit" if newer else
                "keep it only if ROCm sees less than the GTT without it; prefer ttm.pages_limit",
            source="amd-gfx 'Mark amdgpu.gttsize parameter as deprecated' (Jan 2025); kyuz0/amd-strix-halo-toolboxes#98; "
                   "noamsto/nix-amd-ai#96"))


def check_kernel(facts, p, out):
    if facts.system != "linux" or p.family != "strix-halo" or not facts.kernel:
        return
    verdict = strix_halo_kernel(facts.kernel)
    if verdict is None:
        return
    if verdict.ok:
        out.append(Finding(id="kernel-ok", level="ok", title=f"kernel {facts.kernel} carries the Strix Halo fixes "
                           f"({verdict.why})", source=SRC_ROCM_STRIX))
        return
    out.append(Finding(
        id="kernel-old", level="warn", title=f"kernel {facts.kernel} predates the Strix Halo fixes ROCm needs",
        detail=verdict.why,
        fix="use mainline >= 6.18.4, Ubuntu 24.04 HWE >= 6.17.0-19, Ubuntu OEM >= 6.14.0-1018, Fedora 43, "
            "Ubuntu 26.04 or Arch 2026.02.01+; avoid linux-firmware-20251125",
        source=f"{SRC_ROCM_STRIX}; kyuz0/amd-strix-halo-toolboxes README.md"))
    v = kernel_version(facts.kernel) or (0, 0, 0, 0)
    apu = _apu(facts)
    if v[:2] <= (6, 15) and apu is not None and (apu.vram_total_bytes or 0) > 16 * GIB:
        out.append(Finding(
            id="kernel-large-carveout", level="problem",
            title="kernels <= 6.15 with a large carve-out expose only ~15.5 GB to ROCm",
            fix="upgrade the kernel (fixed in 6.16.9) or use a small carve-out with a raised GTT",
            source="ROCm/legacy-rocm-build#5444"))


def check_iommu(facts, p, out):
    if facts.system != "linux" or p.family != "strix-halo":
        return
    if facts.cmdline.get("amd_iommu") != "off":
        out.append(Finding(
            id="iommu", level="info", title="amd_iommu is on",
            detail="amd_iommu=off was 5-12 % faster in kyuz0's llama.cpp tests; it also disables the XDNA NPU.",
            fix="optional: add amd_iommu=off to the kernel command line if you do not use the NPU",
            source="kyuz0/amd-strix-halo-toolboxes README.md (issue #66); noamsto/nix-amd-ai README.md"))


def check_hip_memavailable(facts, p, out):
    if facts.system != "linux" or not _is_apu(p):
        return
    apu = _apu(facts)
    if apu is None or not apu.gtt_total_bytes or facts.mem_available_bytes is None:
        return
    if facts.mem_available_bytes < apu.gtt_total_bytes - 4 * GIB:
        out.append(Finding(
            id="hip-memavailable", level="info",
            title=f"llama.cpp HIP builds from Nov 2025 to Aug 2026 will see {fmt_auto(facts.mem_available_bytes)} "
                  f"(MemAvailable), not the {fmt_auto(apu.gtt_total_bytes)} GTT",
            detail="Those builds took free memory from /proc/meminfo on integrated GPUs; later builds use hipMemGetInfo again.",
            fix="use a llama.cpp build with #27083 (Aug 2026) or the Vulkan backend",
            source="ggml-org/llama.cpp#18159; ggml-org/llama.cpp#27083"))


def check_windows_apu(facts, p, out):
    if facts.system != "windows" or not _is_apu(p) or p.live is None:
        return
    carve = p.current_carveout()
    visible = facts.ram_visible_bytes or p.os_visible_ram()
    shared = p.gpu_cap_bytes("windows") or 0
    out.append(Finding(
        id="windows-shared", level="info",
        title=f"Windows gives the GPU {fmt_auto(carve)} dedicated + {fmt_auto(shared)} shared (half of the "
              f"{fmt_auto(visible)} it sees)",
        detail="Shared GPU memory is fixed by WDDM; the only lever is the carve-out. AMD driver 32.0.31041 exposed "
               "~108-112 GiB on a 128 GB machine at any carve-out, so newer drivers may give more than this.",
        fix="change the split in the BIOS (or Adrenalin VGM) and reboot; `memfit plan` recommends one",
        source="MicrosoftDocs/windows-driver-docs calculating-graphics-memory.md; unslothai/unsloth#10418"))
    keep = p.reserve("windows", p.default_use)
    if visible < keep:
        out.append(Finding(
            id="windows-os-starved", level="warn",
            title=f"the carve-out leaves Windows {fmt_auto(visible)}, under its {fmt_auto(keep)} reserve ({p.default_use} use)",
            detail="Loading needs CPU-visible RAM: a 48/16 split on a 64 GB EVO-X2 crashed while loading.",
            fix="lower the BIOS carve-out so Windows keeps at least its reserve",
            source="https://lilting.ch/en/articles/strix-halo-vram-memory-optimization; lemonade-sdk/lemonade#842"))


def check_macos(facts, p, out):
    if facts.system != "macos" or p.os.get("macos") is None:
        return
    cap = p.os["macos"].gpu_cap
    ram = facts.ram_visible_bytes or p.ram_bytes
    if facts.wired_limit_mb:
        level: Level = "warn" if facts.wired_limit_mb * MIB > ram - 6 * GIB else "ok"
        out.append(Finding(
            id="wired-raised", level=level,
            title=f"iogpu.wired_limit_mb={facts.wired_limit_mb} ({fmt_auto(facts.wired_limit_mb * MIB)}) is in effect",
            detail="It resets at reboot; apps must be restarted to see it." +
                   (" It leaves macOS less than 6 GiB." if level == "warn" else ""),
            fix="persist it with a launchd job (sysctl.conf is ignored on modern macOS)" if level == "ok"
                else "lower it so macOS keeps 6-16 GiB",
            source="https://ark.marianposaceanu.com/apple_silicon_gpu_memory_blog; antirez/ds4#46"))
    elif cap is not None:
        target = p.max_gpu_cap_bytes("macos") or 0
        target = (target // GIB) * GIB
        out.append(Finding(
            id="wired-default", level="info",
            title=f"the GPU working set is at the macOS default (~{fmt_auto(p.gpu_cap_bytes('macos'))}"
                  " on older macOS; 81-84 % of RAM on macOS 26)",
            fix=f"sudo sysctl iogpu.wired_limit_mb={target // MIB} ({fmt_auto(target)}); no reboot, resets at reboot",
            source="https://ark.marianposaceanu.com/apple_silicon_gpu_memory_blog; antirez/ds4#893"))
    out.append(Finding(id="metal-mmap", level="info", title="load with --no-mmap on Metal",
                       detail="mmap loads ran at ~730 MB/s vs 6.4 GB/s without mmap on an M3 Max.",
                       source="ggml-org/llama.cpp#9244"))


def check_nvidia_unified(facts, p, out):
    g = facts.gpu()
    if facts.system != "linux" or g is None or g.vendor != "nvidia" or g.kind != "integrated":
        return
    avail, free = facts.mem_available_bytes, facts.mem_free_bytes
    if avail is not None and free is not None and avail - free > 8 * GIB:
        out.append(Finding(
            id="page-cache", level="info",
            title=f"the page cache holds {fmt_auto(avail - free)}: CUDA's free memory (MemFree) is that much lower "
                  "than MemAvailable",
            detail="llama.cpp uses MemAvailable, but vLLM and other tools size from cudaMemGetInfo and under-use the pool.",
            fix="sudo sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches' before loading; prefer --no-mmap",
            source="unslothai/unsloth#10704; https://build.nvidia.com/spark/nemotron/troubleshooting"))
    if avail is not None and avail < 8 * GIB:
        out.append(Finding(
            id="low-available", level="warn", title=f"only {fmt_auto(avail)} available",
            detail="On unified memory an out-of-memory can freeze the whole machine instead of killing the job.",
            fix="stop other processes before loading a model",
            source="natolambert/dgx-spark-setup README; https://huggingface.co/nvidia/GLM-5.3-Flash-FP4-Local/discussions/7"))


def check_discrete(facts, p, out):
    g = facts.gpu()
    if g is None or g.kind != "discrete":
        return
    if g.vram_used_bytes is not None and g.vram_used_bytes > GIB:
        out.append(Finding(
            id="vram-in-use", level="info",
            title=f"{fmt_auto(g.vram_used_bytes)} of {g.name}'s VRAM is already in use",
            detail="The desktop, browser and other processes hold VRAM that llama.cpp cannot use.",
            fix="close GPU-heavy apps, or plan with --use daily to keep room for them",
            source="ollama/ollama#8723; ggml-org/llama.cpp#23999"))
    if facts.system == "windows" and g.vendor == "nvidia":
        out.append(Finding(
            id="sysmem-fallback", level="info",
            title="NVIDIA 'CUDA - Sysmem Fallback Policy' can spill into shared memory instead of failing",
            detail="It is slow; tuning guides turn it off so an over-sized load fails visibly.",
            fix="NVIDIA Control Panel > Manage 3D settings > CUDA - Sysmem Fallback Policy: Prefer No Sysmem Fallback",
            source="microsoft/WSL#11050; ggml-org/llama.cpp#15649"))


def check_recognised(facts, p, out, rec: Recognition | None = None):
    if rec is None:
        return
    if rec.entry is None:
        est = ", ".join(p.estimated) or "nothing"
        out.append(Finding(
            id="not-recognised", level="warn", title="this machine matches no shipped profile",
            detail=f"memfit built a generic profile from what it read; assumed: {est}.",
            fix="pick the closest profile with --device ID (memfit devices) plus --ram/--carveout, or write one "
                "(docs/devices.md, 'Adding a device profile') and pass --device-file",
            source="probe"))
    elif not rec.exact_ram:
        out.append(Finding(id="ram-differs", level="info", title=rec.why, source="probe"))


CHECKS: list[Check] = [check_carveout_zero, check_carveout_large_linux, check_gtt, check_ttm_module, check_kernel,
                       check_iommu, check_hip_memavailable, check_windows_apu, check_macos, check_nvidia_unified,
                       check_discrete]
LEVEL_ORDER = {"problem": 0, "warn": 1, "info": 2, "ok": 3}


def diagnose(facts: MachineFacts, profile: DeviceProfile | None, rec: Recognition | None) -> Diagnosis:
    os = profile.default_os if profile is not None else facts.system
    d = Diagnosis(facts=facts, recognised=rec.entry.profile.id if rec and rec.entry else None,
                  recognition=rec.why if rec else "no profile could be built", os=os,
                  profile_id=profile.based_on or profile.id if profile else None,
                  profile_name=profile.name if profile else None)
    findings: list[Finding] = []
    if profile is None:
        findings.append(Finding(id="no-ram", level="problem", title="RAM could not be read: nothing to plan with",
                                detail="; ".join(facts.notes), fix="pass --device ID or --device-file FILE to plan",
                                source="probe"))
        d.findings = findings
        return d
    d.carveout_bytes = profile.current_carveout() if profile.carveout is not None else None
    live = profile.live
    d.gpu_cap_bytes = live.gpu_cap_bytes if live and live.gpu_cap_bytes is not None else profile.gpu_cap_bytes(os)
    d.gpu_cap_is_default = live.gpu_cap_is_default if live else None
    d.gpu_total_bytes = profile.gpu_total_bytes(os)
    if profile.memory_architecture == "carveout" and d.gpu_cap_bytes is not None:
        d.gpu_total_bytes = (d.carveout_bytes or 0) + d.gpu_cap_bytes
    for b in profile.backends(os):
        d.backends.append(BackendView(backend=b.label, reports_bytes=profile.reported_bytes(b, os),
                                      how=b.reports, max_alloc_bytes=b.max_alloc_bytes))
    check_recognised(facts, profile, findings, rec)
    for check in CHECKS:
        try:
            check(facts, profile, findings)
        except Exception as e:  # a check bug must not hide the others
            findings.append(Finding(id=f"{check.__name__}-failed", level="info",
                                    title=f"{check.__name__} failed: {type(e).__name__}: {e}"))
    d.findings = sorted(findings, key=lambda f: LEVEL_ORDER[f.level])
    return d
