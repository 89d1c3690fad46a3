"""`memfit doctor`'s judgement: what the probe found, what each backend will report, and the
findings (each with the fix and its source). Pure functions over MachineFacts + DeviceProfile."""

from __future__ import annotations

from typing import Callable, Literal

from pydantic import BaseModel, Field

from ..device_schema import GIB, MIB, OS, PAGE, DeviceProfile, LiveConfig, gtt_pages
from ..units import fmt_auto, fmt_bios_size
from .build import Recognition
from .facts import GpuFacts, MachineFacts
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


class GttAdvice(BaseModel):
    """The one GTT setup doctor recommends on a Linux APU, so that every finding naming a
    pages_limit agrees: the recommended carve-out + GTT, and the most GTT that is safe if the user
    keeps the carve-out in effect. A ttm.pages_limit the amdttm module ignores is the user's own
    choice: it is kept (renamed) when it is safe at the recommended carve-out."""

    key: str  # the kernel parameter the loaded TTM module reads: ttm.pages_limit or amdttm.pages_limit
    carveout_now_bytes: int
    keep_gtt_bytes: int  # safe maximum GTT with the current carve-out (whole GiB)
    carveout_bytes: int  # recommended carve-out (the smallest option when the current one is large)
    gtt_bytes: int  # recommended GTT at carveout_bytes
    safe_gtt_bytes: int  # safe maximum GTT at carveout_bytes (whole GiB)
    user_pages: int | None = None  # ttm.pages_limit from the kernel command line, ignored by amdttm
    uses_user_value: bool = False  # gtt_bytes is the user's own pages_limit

    @property
    def shrink(self) -> bool:
        return self.carveout_bytes < self.carveout_now_bytes

    def param(self, gtt_bytes: int) -> str:
        return f"{self.key}={gtt_pages(gtt_bytes)}"

    @property
    def recommended(self) -> str:
        """'amdttm.pages_limit=27787264 (106 GiB)', with the carve-out when it has to change."""
        own = ", your own value" if self.uses_user_value else ""
        text = f"{self.param(self.gtt_bytes)} ({fmt_auto(self.gtt_bytes)}{own})"
        return f"a {fmt_bios_size(self.carveout_bytes)} carve-out with {text}" if self.shrink else text


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
    gtt_advice: GttAdvice | None = None  # Linux APUs: the GTT setup the findings recommend
    findings: list[Finding] = Field(default_factory=list)


Check = Callable[[MachineFacts, DeviceProfile, list[Finding]], None]


def _apu(facts: MachineFacts) -> GpuFacts | None:
    return facts.integrated_amd()


def _is_apu(p: DeviceProfile) -> bool:
    return p.memory_architecture == "carveout"


def _ttm_key(facts: MachineFacts) -> str:
    return "amdttm.pages_limit" if facts.amdttm_loaded else "ttm.pages_limit"


OS_MIN_FREE = 4 * GIB  # freezes are reported when a GPU load leaves Linux less (gtt-too-high)
LARGE_CARVEOUT = 4 * GIB  # above this, a Linux carve-out is RAM taken from the OS for nothing


def _safe_gtt(p: DeviceProfile, carveout: int) -> int:
    """The profile's safe maximum GTT with this carve-out, in whole GiB, leaving Linux at least
    the 4 GiB the gtt-too-high check asks for (small machines: 0.9 of 13.7 GiB would leave 1.7)."""
    visible = p.os_visible_ram(carveout)
    target = min(p.max_gpu_cap_bytes("linux", carveout) or int(0.9 * visible), visible - OS_MIN_FREE)
    return max(GIB, (target // GIB) * GIB)


def _user_pages(facts: MachineFacts) -> int | None:
    """The ttm.pages_limit the user put on the kernel command line for a module that ignores it."""
    raw = facts.cmdline.get("ttm.pages_limit")
    if not (facts.amdttm_loaded and raw and not facts.cmdline.get("amdttm.pages_limit")):
        return None
    try:
        pages = int(raw, 0)
    except ValueError:
        return None
    return pages if pages > 0 else None


def _carveout_now(facts: MachineFacts, p: DeviceProfile) -> int:
    apu = _apu(facts)
    return apu.vram_total_bytes if apu is not None and apu.vram_total_bytes else p.current_carveout()


def _recommended_carveout(p: DeviceProfile, now: int) -> int:
    """The smallest firmware option (512 MiB when none is listed) when the carve-out in effect is
    large, else the one in effect; never more than that."""
    options = p.carveout_options()
    carve = (min(options) if options else 512 * MIB) if now > LARGE_CARVEOUT else now
    return min(carve, now) if now else carve


def gtt_advice(facts: MachineFacts, p: DeviceProfile) -> GttAdvice | None:
    """The GTT setup for a Linux APU (None elsewhere): AMD's small carve-out + raised GTT when the
    carve-out in effect is large, else a raised GTT at the current carve-out."""
    if facts.system != "linux" or not _is_apu(p):
        return None
    now = _carveout_now(facts, p)
    carve = _recommended_carveout(p, now)
    safe = _safe_gtt(p, carve)
    user = _user_pages(facts)
    use_user = user is not None and user * PAGE <= safe
    return GttAdvice(key=_ttm_key(facts), carveout_now_bytes=now, keep_gtt_bytes=_safe_gtt(p, now),
                     carveout_bytes=carve, gtt_bytes=user * PAGE if use_user and user else safe,
                     safe_gtt_bytes=safe, user_pages=user, uses_user_value=use_user)


def _reads_as_auto(facts: MachineFacts, dedicated: int) -> bool:
    """BIOS UMA "Auto": no dedicated memory at all (Windows: a token few MiB)."""
    return dedicated == 0 or (facts.system == "windows" and dedicated < 256 * MIB)


def check_carveout_zero(facts: MachineFacts, p: DeviceProfile, out: list[Finding]) -> None:
    apu = _apu(facts)
    if apu is None or apu.vram_total_bytes is None or not _is_apu(p):
        return
    if _reads_as_auto(facts, apu.vram_total_bytes):
        out.append(Finding(
            id="carveout-auto", level="problem",
            title=f"the GPU's dedicated memory reads {fmt_auto(apu.vram_total_bytes)} (BIOS UMA 'Auto'?)",
            detail="With BIOS GPU memory set to Auto, llama.cpp (ROCm and Vulkan) reported ~0 usable VRAM and skipped offload.",
            fix="set the BIOS UMA Frame Buffer Size to a fixed value (512 MB on Linux with a raised GTT; "
                "on Windows the carve-out memfit plan recommends)",
            source=SRC_AUTO))


def _carve_read(facts: MachineFacts) -> int:
    """The carve-out amdgpu reports in effect (0: none read)."""
    apu = _apu(facts)
    return (apu.vram_total_bytes or 0) if apu is not None else 0


def _smaller_carveout(facts: MachineFacts, p: DeviceProfile) -> GttAdvice | None:
    """The advice, when it is to shrink the carve-out (None otherwise)."""
    advice = gtt_advice(facts, p)
    return advice if advice is not None and advice.shrink else None


def check_carveout_large_linux(facts: MachineFacts, p: DeviceProfile, out: list[Finding]) -> None:
    carve = _carve_read(facts)
    advice = _smaller_carveout(facts, p) if carve > 4 * GIB else None
    if advice is None:
        return
    own = " (the value of your ttm.pages_limit, renamed)" if advice.uses_user_value else ""
    out.append(Finding(
        id="carveout-large-linux", level="warn",
        title=f"{fmt_bios_size(carve)} carve-out is taken from Linux for good",
        detail="On Linux the GPU reaches GTT memory at the same speed as the carve-out; AMD recommends a small "
               "carve-out (0.5 GB) with a raised GTT so the RAM stays usable by both.",
        fix=f"recommended setup: set the BIOS UMA Frame Buffer Size to {fmt_bios_size(advice.carveout_bytes)} and put "
            f"{advice.param(advice.gtt_bytes)}{own} on the kernel command line, then reboot: the GPU may then use "
            f"{fmt_auto(advice.carveout_bytes + advice.gtt_bytes)} and Linux keeps whatever the GPU does not hold",
        source=SRC_ROCM_STRIX))


def _default_gtt_advice(facts: MachineFacts, p: DeviceProfile) -> GttAdvice | None:
    """The advice for a GTT at the kernel default (None: raised already, or no advice here)."""
    is_default = p.live.gpu_cap_is_default if p.live is not None else None
    return gtt_advice(facts, p) if is_default else None


def _gtt_setting(facts: MachineFacts, advice: GttAdvice | None, gtt: int, visible: int) -> Finding:
    """GTT at the kernel default (and the setup to raise it), or raised already."""
    if advice is None:
        pages = facts.ttm_pages_limit or gtt_pages(gtt)
        return Finding(id="gtt-raised", level="ok",
                       title=f"GTT raised to {fmt_auto(gtt)} ({facts.ttm_module or 'ttm'}.pages_limit={pages})",
                       source=SRC_ROCM_STRIX)
    return Finding(
        id="gtt-default", level="warn",
        title=f"GTT is at the kernel default: {fmt_auto(gtt)} (about half of the {fmt_auto(visible)} Linux sees)",
        detail="The GPU can map only this much of the shared RAM; models beyond it fail to load or spill to the CPU.",
        fix=_raise_gtt_fix(advice, gtt),
        source=f"{SRC_ROCM_STRIX}; drivers/gpu/drm/ttm/ttm_device.c (default 1/2 of RAM)")


def _raise_gtt_fix(advice: GttAdvice, gtt: int) -> str:
    keep = advice.keep_gtt_bytes
    how = "(or `amd-ttm --set {}`, which writes /etc/modprobe.d/ttm.conf), then reboot"
    if not advice.shrink:
        return f"add {advice.recommended} to the kernel command line {how.format(advice.gtt_bytes // GIB)}"
    fix = f"the recommended setup (see the carve-out finding) is {advice.recommended}"
    if keep > gtt:
        fix += (f"; to keep the {fmt_bios_size(advice.carveout_now_bytes)} carve-out instead, add "
                f"{advice.param(keep)} ({fmt_auto(keep)}, the most that is safe with it) to the kernel "
                f"command line {how.format(keep // GIB)}")
    return fix


def _gtt_too_high(key: str, gtt: int, visible: int) -> Finding | None:
    if gtt <= visible - OS_MIN_FREE:
        return None
    return Finding(
        id="gtt-too-high", level="warn",
        title=f"GTT ({fmt_auto(gtt)}) leaves the OS less than 4 GiB of the {fmt_auto(visible)} it sees",
        detail="Freezes are reported when a GPU load leaves Linux under ~4 GiB (swap off).",
        fix=f"lower {key} to {gtt_pages(max(GIB, ((visible - OS_MIN_FREE) // GIB) * GIB))} or keep loads smaller",
        source="Nathanw1014/strix-halo-llamacpp#8")


def _gtt_plus_carveout(key: str, carve: int, gtt: int, installed: int) -> Finding | None:
    if carve + gtt <= installed:
        return None
    return Finding(
        id="gtt-plus-carveout", level="warn",
        title=f"carve-out + GTT ({fmt_auto(carve + gtt)}) exceed the {fmt_auto(installed)} installed",
        detail="Vulkan then reports more memory than can be allocated (a 96 GB carve-out + 105 GB GTT showed "
               "135 GB, of which ~94 GB was allocatable); kernels with the 2026 'cap GTT size to physical RAM' "
               "patch clip GTT themselves.",
        fix=f"lower {key} so carve-out + GTT stay below the RAM, or shrink the carve-out",
        source="GpuZelenograd/memtest_vulkan#66")


def _kfd_limit(facts: MachineFacts, gtt: int, visible: int) -> Finding | None:
    kfd_limit = visible - visible // 64 - GIB
    if gtt <= kfd_limit or facts.amdgpu_no_system_mem_limit:
        return None
    return Finding(
        id="kfd-limit", level="info",
        title=f"ROCm (KFD) stops system-memory allocations at ~{fmt_auto(kfd_limit)}, below this GTT",
        detail="KFD's system-memory limit is RAM - RAM/64 - 1 GiB unless amdgpu.no_system_mem_limit is set.",
        fix="add amdgpu.no_system_mem_limit=1 to the kernel command line if ROCm loads stop short of the GTT size",
        source="drivers/gpu/drm/amd/amdgpu/amdgpu_amdkfd_gpuvm.c amdgpu_amdkfd_gpuvm_init_mem_limits()")


def check_gtt(facts: MachineFacts, p: DeviceProfile, out: list[Finding]) -> None:
    apu = _apu(facts)
    if apu is None or not apu.gtt_total_bytes:
        return
    gtt = apu.gtt_total_bytes
    advice = _default_gtt_advice(facts, p)
    if advice is not None and advice.keep_gtt_bytes <= gtt and not advice.shrink:
        return  # the default already holds what is safe at this carve-out: nothing to say
    out.extend(f for f in _gtt_findings(facts, p, apu, advice, gtt) if f is not None)


def _gtt_findings(facts: MachineFacts, p: DeviceProfile, apu: GpuFacts, advice: GttAdvice | None,
                  gtt: int) -> tuple[Finding | None, ...]:
    """What the GTT size in effect calls for: the setting, too high, with the carve-out past the
    RAM, the KFD limit."""
    visible = facts.ram_visible_bytes or p.os_visible_ram()
    key = _ttm_key(facts)
    return (_gtt_setting(facts, advice, gtt, visible), _gtt_too_high(key, gtt, visible),
            _gtt_plus_carveout(key, apu.vram_total_bytes or 0, gtt, facts.ram_installed_bytes or p.ram_bytes),
            _kfd_limit(facts, gtt, visible))


def check_ttm_module(facts: MachineFacts, p: DeviceProfile, out: list[Finding]) -> None:
    if _ttm_option_ignored(facts):
        out.append(Finding(
            id="amdttm-ignored", level="problem",
            title="ttm.pages_limit is set but the amdgpu-dkms driver uses the amdttm module, which ignores it",
            fix=_amdttm_fix(facts, p),
            source="ROCm/legacy-rocm-build#5595; ROCm/legacy-rocm-build#3648"))
    if facts.cmdline.get("amdgpu.gttsize"):
        out.append(_gttsize_deprecated(facts))


def _ttm_option_ignored(facts: MachineFacts) -> bool:
    """ttm.pages_limit on the command line of a machine whose amdttm module reads only amdttm.*."""
    return facts.amdttm_loaded and bool(facts.cmdline.get("ttm.pages_limit")) and not facts.cmdline.get("amdttm.pages_limit")


def _gttsize_deprecated(facts: MachineFacts) -> Finding:
    newer = (kernel_version(facts.kernel) or (0, 0, 0, 0))[:2] >= (7, 1)
    return Finding(
        id="gttsize-deprecated", level="warn" if newer else "info",
        title=f"amdgpu.gttsize={facts.cmdline['amdgpu.gttsize']} is deprecated",
        detail="The kernel warns 'Configuring gttsize via module parameter is deprecated, please use "
               "ttm.pages_limit'. On Ubuntu 6.8 + ROCm 7.1.1 both were needed; on 7.1 pages_limit alone reaches "
               "the ceiling and setting both is discouraged.",
        fix="remove amdgpu.gttsize and keep ttm.pages_limit" if newer else
            "keep it only if ROCm sees less than the GTT without it; prefer ttm.pages_limit",
        source="amd-gfx 'Mark amdgpu.gttsize parameter as deprecated' (Jan 2025); kyuz0/amd-strix-halo-toolboxes#98; "
               "noamsto/nix-amd-ai#96")


def _amdttm_fix(facts: MachineFacts, p: DeviceProfile) -> str:
    """Rename the ignored option; say when its value only suits the recommended (smaller) carve-out
    or is above the safe maximum, with the value to use instead."""
    raw = facts.cmdline["ttm.pages_limit"]
    advice = gtt_advice(facts, p)
    pool = " (ttm.page_pool_size likewise, if set)"
    if advice is None or advice.user_pages is None:
        return f"rename ttm.pages_limit={raw} to amdttm.pages_limit={raw} on the kernel command line{pool}"
    size = fmt_auto(advice.user_pages * PAGE)
    if not advice.uses_user_value:
        return (f"replace ttm.pages_limit={raw} ({size}) with {advice.recommended}{pool}: {size} is above the "
                f"safe maximum of {fmt_auto(advice.safe_gtt_bytes)} even with a {fmt_bios_size(advice.carveout_bytes)} "
                "carve-out")
    text = f"rename ttm.pages_limit={raw} ({size}) to amdttm.pages_limit={raw} on the kernel command line{pool}"
    if advice.user_pages * PAGE > advice.keep_gtt_bytes:
        text += (f"; {size} of GTT needs the {fmt_bios_size(advice.carveout_bytes)} carve-out of the recommended setup "
                 f"(see the carve-out finding): with the current {fmt_bios_size(advice.carveout_now_bytes)} carve-out use "
                 f"{advice.param(advice.keep_gtt_bytes)} ({fmt_auto(advice.keep_gtt_bytes)}) instead")
    return text


def check_kernel(facts: MachineFacts, p: DeviceProfile, out: list[Finding]) -> None:
    verdict = strix_halo_kernel(facts.kernel) if facts.kernel else None
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
    large = _kernel_large_carveout(facts, p)
    if large is not None:
        out.append(large)


def _kernel_large_carveout(facts: MachineFacts, p: DeviceProfile) -> Finding | None:
    v = kernel_version(facts.kernel) or (0, 0, 0, 0)
    if v[:2] > (6, 15) or _carve_read(facts) <= 16 * GIB:
        return None
    advice = _smaller_carveout(facts, p)
    small = (f"the recommended setup (see the carve-out finding): {advice.recommended}" if advice is not None
             else "a small carve-out with a raised GTT")
    return Finding(
        id="kernel-large-carveout", level="problem",
        title="kernels <= 6.15 with a large carve-out expose only ~15.5 GB to ROCm",
        fix=f"upgrade the kernel (fixed in 6.16.9) or use {small}",
        source="ROCm/legacy-rocm-build#5444")


def check_iommu(facts: MachineFacts, p: DeviceProfile, out: list[Finding]) -> None:
    if facts.cmdline.get("amd_iommu") != "off":
        out.append(Finding(
            id="iommu", level="info", title="amd_iommu is on",
            detail="amd_iommu=off was 5-12 % faster in kyuz0's llama.cpp tests; it also disables the XDNA NPU.",
            fix="optional: add amd_iommu=off to the kernel command line if you do not use the NPU",
            source="kyuz0/amd-strix-halo-toolboxes README.md (issue #66); noamsto/nix-amd-ai README.md"))


def check_hip_memavailable(facts: MachineFacts, p: DeviceProfile, out: list[Finding]) -> None:
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


def check_windows_apu(facts: MachineFacts, p: DeviceProfile, out: list[Finding]) -> None:
    if p.live is None:
        return
    carve = p.current_carveout()
    visible = facts.ram_visible_bytes or p.os_visible_ram()
    shared = p.gpu_cap_bytes("windows") or 0
    out.append(Finding(
        id="windows-shared", level="info",
        title=f"Windows gives the GPU a {fmt_bios_size(carve)} carve-out + {fmt_auto(shared)} shared (half of the "
              f"{fmt_auto(visible)} it sees)",
        detail="Shared GPU memory is fixed by WDDM; the only lever is the carve-out. AMD driver 32.0.31041 exposed "
               "~108-112 GiB on a 128 GB machine at any carve-out, so newer drivers may give more than this.",
        fix="change the split in the BIOS (or Adrenalin VGM) and reboot; `memfit plan` recommends one",
        source="MicrosoftDocs/windows-driver-docs calculating-graphics-memory.md; unslothai/unsloth#10418"))
    starved = _windows_starved(p, visible)
    if starved is not None:
        out.append(starved)


def _windows_starved(p: DeviceProfile, visible: int) -> Finding | None:
    """The carve-out leaves Windows less than its reserve: loading stages weights through that RAM."""
    keep = p.reserve("windows", p.default_use)
    return None if visible >= keep else Finding(
        id="windows-os-starved", level="warn",
        title=f"the carve-out leaves Windows {fmt_auto(visible)}, under its {fmt_auto(keep)} reserve ({p.default_use} use)",
        detail="Loading needs CPU-visible RAM: a 48/16 split on a 64 GB EVO-X2 crashed while loading.",
        fix="lower the BIOS carve-out so Windows keeps at least its reserve",
        source="https://lilting.ch/en/articles/strix-halo-vram-memory-optimization; lemonade-sdk/lemonade#842")


def _wired_raised(limit_mb: int, ram: int) -> Finding:
    too_high = limit_mb * MIB > ram - 6 * GIB
    return Finding(
        id="wired-raised", level="warn" if too_high else "ok",
        title=f"iogpu.wired_limit_mb={limit_mb} ({fmt_auto(limit_mb * MIB)}) is in effect",
        detail="It resets at reboot; apps must be restarted to see it." + (" It leaves macOS less than 6 GiB." if too_high else ""),
        fix="lower it so macOS keeps 6-16 GiB" if too_high else
            "persist it with a launchd job (sysctl.conf is ignored on modern macOS)",
        source="https://ark.marianposaceanu.com/apple_silicon_gpu_memory_blog; antirez/ds4#46")


def _wired_default(p: DeviceProfile) -> Finding:
    target = ((p.max_gpu_cap_bytes("macos") or 0) // GIB) * GIB
    return Finding(
        id="wired-default", level="info",
        title=f"the GPU working set is at the macOS default (~{fmt_auto(p.gpu_cap_bytes('macos'))}"
              " on older macOS; 81-84 % of RAM on macOS 26)",
        fix=f"sudo sysctl iogpu.wired_limit_mb={target // MIB} ({fmt_auto(target)}); no reboot, resets at reboot",
        source="https://ark.marianposaceanu.com/apple_silicon_gpu_memory_blog; antirez/ds4#893")


def check_macos(facts: MachineFacts, p: DeviceProfile, out: list[Finding]) -> None:
    mac = p.os.get("macos")
    if mac is None:
        return
    if facts.wired_limit_mb:
        out.append(_wired_raised(facts.wired_limit_mb, facts.ram_visible_bytes or p.ram_bytes))
    elif mac.gpu_cap is not None:
        out.append(_wired_default(p))
    out.append(Finding(id="metal-mmap", level="info", title="cold loads with mmap (the default) are slow on Metal",
                       detail=("mmap loads ran at ~730 MB/s vs 6.4 GB/s without mmap on an M3 Max; memory use is "
                               "the same either way (Metal maps the file as the GPU buffer), so `plan` keeps mmap: "
                               "add --no-mmap yourself for faster first loads."),
                       source="ggml-org/llama.cpp#9244"))


def check_nvidia_unified(facts: MachineFacts, p: DeviceProfile, out: list[Finding]) -> None:
    g = facts.gpu()
    if g is None or (g.vendor, g.kind) != ("nvidia", "integrated"):
        return
    avail, free = facts.mem_available_bytes, facts.mem_free_bytes
    if avail is None:
        return
    if free is not None and avail - free > 8 * GIB:
        out.append(Finding(
            id="page-cache", level="info",
            title=f"the page cache holds {fmt_auto(avail - free)}: CUDA's free memory (MemFree) is that much lower "
                  "than MemAvailable",
            detail="llama.cpp uses MemAvailable, but vLLM and other tools size from cudaMemGetInfo and under-use the pool.",
            fix="sudo sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches' before loading; prefer --no-mmap",
            source="unslothai/unsloth#10704; https://build.nvidia.com/spark/nemotron/troubleshooting"))
    if avail < 8 * GIB:
        out.append(Finding(
            id="low-available", level="warn", title=f"only {fmt_auto(avail)} available",
            detail="On unified memory an out-of-memory can freeze the whole machine instead of killing the job.",
            fix="stop other processes before loading a model",
            source="natolambert/dgx-spark-setup README; https://huggingface.co/nvidia/GLM-5.3-Flash-FP4-Local/discussions/7"))


def check_memory_in_use(facts: MachineFacts, p: DeviceProfile, out: list[Finding]) -> None:
    """What other programs hold now: on one shared pool it is memory the model cannot have."""
    seen, avail = facts.ram_visible_bytes, facts.mem_available_bytes
    if seen is None or avail is None or p.memory_architecture == "discrete":
        return
    used = seen - avail
    if used <= 0:
        return
    floor = p.reserve(p.default_os, "headless")
    out.append(Finding(
        id="memory-in-use", level="warn" if avail - floor < seen // 2 else "info",
        title=f"{fmt_auto(used)} of the {fmt_auto(seen)} the OS sees is in use now; {fmt_auto(avail)} available",
        detail=(f"plan --device auto plans against what is available now, keeping {fmt_auto(floor)} of it free "
                f"for the OS: {fmt_auto(max(0, avail - floor))} for the model."),
        fix="stop other programs (and drop the page cache on Linux) before loading a large model",
        source="llama.cpp counts MemAvailable as free memory on unified GPUs (ggml-org/llama.cpp#17368)"))


_SYSMEM_FALLBACK = Finding(
    id="sysmem-fallback", level="info",
    title="NVIDIA 'CUDA - Sysmem Fallback Policy' can spill into shared memory instead of failing",
    detail="It is slow; tuning guides turn it off so an over-sized load fails visibly.",
    fix="NVIDIA Control Panel > Manage 3D settings > CUDA - Sysmem Fallback Policy: Prefer No Sysmem Fallback",
    source="microsoft/WSL#11050; ggml-org/llama.cpp#15649")


def _vram_in_use(g: GpuFacts) -> Finding | None:
    used = g.vram_used_bytes
    return None if used is None or used <= GIB else Finding(
        id="vram-in-use", level="info", title=f"{fmt_auto(used)} of {g.name}'s VRAM is already in use",
        detail="The desktop, browser and other processes hold VRAM that llama.cpp cannot use.",
        fix="close GPU-heavy apps, or plan with --use daily to keep room for them",
        source="ollama/ollama#8723; ggml-org/llama.cpp#23999")


def check_discrete(facts: MachineFacts, p: DeviceProfile, out: list[Finding]) -> None:
    g = facts.gpu()
    if g is None or g.kind != "discrete":
        return
    in_use = _vram_in_use(g)
    out.extend([in_use] if in_use is not None else [])
    if facts.system == "windows" and g.vendor == "nvidia":
        out.append(_SYSMEM_FALLBACK.model_copy())


def check_recognised(facts: MachineFacts, p: DeviceProfile, out: list[Finding], rec: Recognition | None = None) -> None:
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


Applies = Callable[[MachineFacts, DeviceProfile], bool]


def _anywhere(facts: MachineFacts, p: DeviceProfile) -> bool:
    return True


def _linux(facts: MachineFacts, p: DeviceProfile) -> bool:
    return facts.system == "linux"


def _linux_apu(facts: MachineFacts, p: DeviceProfile) -> bool:
    return facts.system == "linux" and _is_apu(p)


def _windows_apu(facts: MachineFacts, p: DeviceProfile) -> bool:
    return facts.system == "windows" and _is_apu(p)


def _macos(facts: MachineFacts, p: DeviceProfile) -> bool:
    return facts.system == "macos"


def _strix_halo_linux(facts: MachineFacts, p: DeviceProfile) -> bool:
    return facts.system == "linux" and p.family == "strix-halo"


# every check with the machines it applies to, in the order they run
CHECKS: list[tuple[Applies, Check]] = [
    (_anywhere, check_carveout_zero), (_linux_apu, check_carveout_large_linux), (_linux_apu, check_gtt),
    (_linux, check_ttm_module), (_strix_halo_linux, check_kernel), (_strix_halo_linux, check_iommu),
    (_linux_apu, check_hip_memavailable), (_windows_apu, check_windows_apu), (_macos, check_macos),
    (_linux, check_nvidia_unified), (_anywhere, check_memory_in_use), (_anywhere, check_discrete),
]
LEVEL_ORDER = {"problem": 0, "warn": 1, "info": 2, "ok": 3}
ADVICE_FINDINGS = {"gtt-default", "carveout-large-linux", "amdttm-ignored"}  # the findings that quote gtt_advice


def _memory_view(d: Diagnosis, profile: DeviceProfile, os: OS) -> None:
    """The carve-out, GPU cap and total in effect, and what each backend will report."""
    live = profile.live or LiveConfig(os=os)
    d.carveout_bytes = profile.current_carveout() if profile.carveout is not None else None
    d.gpu_cap_bytes = live.gpu_cap_bytes if live.gpu_cap_bytes is not None else profile.gpu_cap_bytes(os)
    d.gpu_cap_is_default = live.gpu_cap_is_default
    d.gpu_total_bytes = profile.gpu_total_bytes(os)
    if d.carveout_bytes is not None and d.gpu_cap_bytes is not None:
        d.gpu_total_bytes = d.carveout_bytes + d.gpu_cap_bytes
    d.backends = [BackendView(backend=b.label, reports_bytes=profile.reported_bytes(b, os), how=b.reports,
                              max_alloc_bytes=b.max_alloc_bytes) for b in profile.backends(os)]


def _findings(facts: MachineFacts, profile: DeviceProfile, rec: Recognition | None) -> list[Finding]:
    """Every check's findings, the worst first; a check that fails is a finding too, not the end."""
    findings: list[Finding] = []
    check_recognised(facts, profile, findings, rec)
    for applies, check in CHECKS:
        if not applies(facts, profile):
            continue
        try:
            check(facts, profile, findings)
        except Exception as e:  # a check bug must not hide the others
            findings.append(Finding(id=f"{check.__name__}-failed", level="info",
                                    title=f"{check.__name__} failed: {type(e).__name__}: {e}"))
    return sorted(findings, key=lambda f: LEVEL_ORDER[f.level])


def _no_profile(facts: MachineFacts, rec: Recognition | None) -> Diagnosis:
    """The RAM could not be read, so there is no profile to plan with."""
    return Diagnosis(facts=facts, recognised=None, recognition=rec.why if rec else "no profile could be built",
                     os=facts.system, profile_id=None, profile_name=None,
                     findings=[Finding(id="no-ram", level="problem", title="RAM could not be read: nothing to plan with",
                                       detail="; ".join(facts.notes),
                                       fix="pass --device ID or --device-file FILE to plan", source="probe")])


def _diagnosis(facts: MachineFacts, profile: DeviceProfile, rec: Recognition | None) -> Diagnosis:
    """The machine with the profile it was recognised as (and why), before any finding."""
    return Diagnosis(facts=facts, recognised=rec.entry.profile.id if rec and rec.entry else None,
                     recognition=rec.why if rec else "no profile could be built", os=profile.default_os,
                     profile_id=profile.based_on or profile.id, profile_name=profile.name)


def diagnose(facts: MachineFacts, profile: DeviceProfile | None, rec: Recognition | None) -> Diagnosis:
    if profile is None:
        return _no_profile(facts, rec)
    d = _diagnosis(facts, profile, rec)
    _memory_view(d, profile, profile.default_os)
    d.findings = _findings(facts, profile, rec)
    if profile.default_os == "linux" and any(f.id in ADVICE_FINDINGS for f in d.findings):
        d.gtt_advice = gtt_advice(facts, profile)
    return d
