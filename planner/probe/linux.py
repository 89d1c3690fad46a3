"""Linux probes: /proc and /sys (amdgpu sysfs, TTM limits, kernel command line), DMI, device tree."""

from __future__ import annotations

import re

from ..device_schema import PAGE
from .env import ProbeEnv
from .facts import GpuFacts, MachineFacts
from .known import AMD_APUS, VENDORS, nvidia_family

CMDLINE_KEYS = ("ttm.pages_limit", "ttm.page_pool_size", "amdttm.pages_limit", "amdttm.page_pool_size",
                "amdgpu.gttsize", "amdgpu.no_system_mem_limit", "amd_iommu", "iommu")
CARVEOUT_LINE = re.compile(r"^\s*(\d+)\s*:\s*(.*?)\s*\(\s*(\d+(?:\.\d+)?)\s*(MB|GB|MiB|GiB)\s*\)\s*$", re.IGNORECASE)


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    t = text.strip()
    try:
        return int(t, 16) if t.lower().startswith("0x") else int(t)
    except ValueError:
        return None


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo -> bytes (kB fields) or counts (HugePages_*)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+(?:\(\w+\))?):\s+(\d+)(\s+kB)?", line)
        if m:
            out[m.group(1)] = int(m.group(2)) * (1024 if m.group(3) else 1)
    return out


def parse_carveout_options(text: str) -> list[tuple[int, str, int]]:
    """amdgpu uma/carveout_options -> [(index, label, bytes)]; '0 GB' means the 512 MB minimum."""
    out = []
    for line in text.splitlines():
        m = CARVEOUT_LINE.match(line)
        if not m:
            continue
        value = float(m.group(3))
        unit = m.group(4).lower()
        size = int(value * (1024**3 if unit.startswith("g") else 1024**2))
        if size == 0:
            size = 512 * 1024**2
        out.append((int(m.group(1)), m.group(2), size))
    return out


def parse_cmdline(text: str) -> dict[str, str]:
    out = {}
    for token in text.split():
        key, _, value = token.partition("=")
        if key in CMDLINE_KEYS:
            out[key] = value
    return out


def probe_meminfo(env: ProbeEnv, facts: MachineFacts) -> None:
    text = env.read("/proc/meminfo")
    if text is None:
        facts.notes.append("/proc/meminfo unreadable: RAM unknown")
        return
    mi = parse_meminfo(text)
    facts.ram_visible_bytes = mi.get("MemTotal")
    facts.mem_available_bytes = mi.get("MemAvailable")
    facts.mem_free_bytes = mi.get("MemFree")
    facts.swap_free_bytes = mi.get("SwapFree")
    if facts.ram_visible_bytes:
        facts.probed.append("RAM: /proc/meminfo MemTotal, MemAvailable")
    else:
        facts.notes.append("/proc/meminfo has no MemTotal: RAM unknown")


def probe_identity(env: ProbeEnv, facts: MachineFacts) -> None:
    cpuinfo = env.read("/proc/cpuinfo") or ""
    m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    if m:
        facts.cpu_name = m.group(1).strip()
    dmi = [(env.read(f"/sys/class/dmi/id/{k}") or "").strip() for k in ("product_name", "product_family", "board_name")]
    vendor = (env.read("/sys/class/dmi/id/sys_vendor") or "").strip()
    dt = (env.read("/proc/device-tree/model") or "").replace("\x00", "").strip()
    names = [x for x in dict.fromkeys(dmi + [dt]) if x and x.lower() not in ("default string", "to be filled by o.e.m.")]
    facts.model_name = " / ".join(names)
    facts.vendor_name = vendor
    if not facts.cpu_name and dt:
        facts.cpu_name = dt
    release = (env.read("/proc/sys/kernel/osrelease") or "").strip()
    if not release:
        res = env.run("uname-r", ["uname", "-r"])
        release = res.stdout.strip() if res is not None and res.ok else ""
    facts.kernel = release
    if not release:
        facts.notes.append("kernel release unknown (/proc/sys/kernel/osrelease unreadable)")


def _card_facts(env: ProbeEnv, card: str) -> GpuFacts | None:
    dev = f"{card}/device"
    vendor = (env.read(f"{dev}/vendor") or "").strip().lower().removeprefix("0x")
    device = (env.read(f"{dev}/device") or "").strip().lower().removeprefix("0x")
    if not vendor:
        return None
    pci = f"{vendor}:{device}" if device else None
    g = GpuFacts(pci_id=pci, vendor=VENDORS.get(vendor, "unknown"), source=dev)  # type: ignore[arg-type]
    uevent = env.read(f"{dev}/uevent") or ""
    m = re.search(r"^DRIVER=(\S+)", uevent, re.MULTILINE)
    g.driver = m.group(1) if m else ""
    apu = AMD_APUS.get(pci or "")
    if apu is not None:
        g.family, g.name, g.kind = apu.family, apu.name, "integrated"
    else:
        vendor_word = {"amd": "AMD", "nvidia": "NVIDIA", "intel": "Intel"}.get(g.vendor, "unknown")
        g.name = (env.read(f"{dev}/product_name") or "").strip() or f"{vendor_word} GPU {pci}"
    g.vram_total_bytes = _int(env.read(f"{dev}/mem_info_vram_total"))
    g.vram_used_bytes = _int(env.read(f"{dev}/mem_info_vram_used"))
    g.gtt_total_bytes = _int(env.read(f"{dev}/mem_info_gtt_total"))
    g.gtt_used_bytes = _int(env.read(f"{dev}/mem_info_gtt_used"))
    if g.vendor == "amd" and g.kind == "unknown" and g.vram_total_bytes is not None and g.gtt_total_bytes:
        # an APU we do not know: a small VRAM next to a much larger GTT (amdgpu lists both)
        if g.vram_total_bytes < 4 * 1024**3 and g.gtt_total_bytes > 2 * g.vram_total_bytes:
            g.kind = "integrated"
        elif g.vram_total_bytes >= 4 * 1024**3 and env.exists(f"{dev}/product_name"):
            g.kind = "discrete"
    opts_text = env.read(f"{dev}/uma/carveout_options")
    if opts_text:
        opts = parse_carveout_options(opts_text)
        g.carveout_options_bytes = [size for _, _, size in opts]
        idx = _int(env.read(f"{dev}/uma/carveout"))
        if idx is not None and any(i == idx for i, _, _ in opts):
            g.carveout_index = [i for i, _, _ in opts].index(idx)
    return g


def probe_drm(env: ProbeEnv, facts: MachineFacts) -> None:
    cards = [c for c in env.glob("/sys/class/drm", "card*") if re.search(r"/card\d+$", c)]
    if not cards:
        facts.notes.append("no GPU in /sys/class/drm (no DRM driver loaded, or a container without /sys)")
        return
    for card in cards:
        g = _card_facts(env, card)
        if g is None:
            continue
        facts.gpus.append(g)
        if g.vendor == "amd" and g.vram_total_bytes is not None:
            facts.probed.append(f"GPU memory: {card}/device/mem_info_vram_total, mem_info_gtt_total")
        elif g.vendor == "amd":
            facts.notes.append(f"{card}: amdgpu memory files missing (old kernel or no amdgpu): carve-out/GTT unknown")


def probe_ttm(env: ProbeEnv, facts: MachineFacts) -> None:
    facts.amdttm_loaded = env.exists("/sys/module/amdttm")
    for module in (("amdttm", "ttm") if facts.amdttm_loaded else ("ttm",)):
        limit = _int(env.read(f"/sys/module/{module}/parameters/pages_limit"))
        if limit:
            facts.ttm_module, facts.ttm_pages_limit = module, limit
            facts.probed.append(f"GTT limit: /sys/module/{module}/parameters/pages_limit")
            break
    gtt = _int(env.read("/sys/module/amdgpu/parameters/gttsize"))
    facts.amdgpu_gttsize_mib = gtt
    nsml = (env.read("/sys/module/amdgpu/parameters/no_system_mem_limit") or "").strip().upper()
    truth = {"Y": True, "1": True, "N": False, "0": False}
    facts.amdgpu_no_system_mem_limit = truth.get(nsml)
    cmdline = env.read("/proc/cmdline")
    if cmdline is not None:
        facts.cmdline = parse_cmdline(cmdline)
        arg = facts.cmdline.get("amdgpu.no_system_mem_limit", "").upper()
        if facts.amdgpu_no_system_mem_limit is None and arg:
            facts.amdgpu_no_system_mem_limit = truth.get(arg)
    for conf in env.glob("/etc/modprobe.d", "*.conf"):
        text = env.read(conf) or ""
        m = re.search(r"^\s*options\s+(?:amd)?ttm\s+.*\bpages_limit=(\d+)", text, re.MULTILINE)
        if m:
            facts.modprobe_pages_limit = int(m.group(1))
            facts.probed.append(f"TTM setting: {conf}")


def probe_unified_nvidia_by_name(env: ProbeEnv, facts: MachineFacts) -> None:
    """Jetson (nvgpu, no PCI GPU) and GB10 without nvidia-smi: recognise them by the board's model name
    (/proc/device-tree/model, DMI). nvidia-smi, probed next, replaces this entry when it answers."""
    if any(g.vendor == "nvidia" for g in facts.gpus if g.kind == "integrated"):
        return
    family, unified = nvidia_family(facts.model_name)
    if family is None and re.search(r"DGX Spark", facts.model_name, re.IGNORECASE):
        family, unified = "gb10", True
    if family is None or not unified:
        return
    facts.gpus = [g for g in facts.gpus if g.vendor != "nvidia"]
    name = {"gb10": "NVIDIA GB10"}.get(family, facts.model_name)
    facts.gpus.append(GpuFacts(name=name, vendor="nvidia", kind="integrated", driver="nvidia", family=family,
                               memory_not_reported=True, source="board model name"))
    facts.probed.append(f"GPU: recognised from the board model ({facts.model_name})")


def probe_memory_modules(env: ProbeEnv, facts: MachineFacts) -> None:
    """RAM modules from `dmidecode -t memory` (the SMBIOS tables are readable by root only)."""
    from .dmi import parse_dmidecode

    res = env.run("dmidecode-memory", ["dmidecode", "-t", "memory"])
    if res is None or not res.ok:
        facts.notes.append("RAM modules unknown (dmidecode missing or not run as root): RAM bandwidth is an estimate")
        return
    facts.memory_modules = parse_dmidecode(res.stdout)
    if facts.memory_modules:
        facts.memory_modules_source = "dmidecode -t memory"
        facts.probed.append(f"RAM modules: dmidecode -t memory ({len(facts.memory_modules)} populated)")


def probe_linux(env: ProbeEnv, facts: MachineFacts) -> None:
    probe_meminfo(env, facts)
    probe_identity(env, facts)
    probe_drm(env, facts)
    probe_ttm(env, facts)
    probe_unified_nvidia_by_name(env, facts)
    probe_memory_modules(env, facts)


def gtt_pages_to_bytes(pages: int) -> int:
    return pages * PAGE
