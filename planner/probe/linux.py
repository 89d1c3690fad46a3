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


_PLACEHOLDER_NAMES = ("default string", "to be filled by o.e.m.")  # what unset DMI fields say


def _read(env: ProbeEnv, path: str) -> str:
    return (env.read(path) or "").strip()


def _kernel_release(env: ProbeEnv) -> str:
    release = _read(env, "/proc/sys/kernel/osrelease")
    if release:
        return release
    res = env.run("uname-r", ["uname", "-r"])
    return res.stdout.strip() if res is not None and res.ok else ""


def _cpu_model(env: ProbeEnv) -> str:
    m = re.search(r"^model name\s*:\s*(.+)$", env.read("/proc/cpuinfo") or "", re.MULTILINE)
    return m.group(1).strip() if m else ""


def _board_names(env: ProbeEnv, dt: str) -> str:
    """The DMI product, family and board names and the device-tree model, each once, placeholders left out."""
    dmi = [_read(env, f"/sys/class/dmi/id/{k}") for k in ("product_name", "product_family", "board_name")]
    return " / ".join(x for x in dict.fromkeys(dmi + [dt]) if x and x.lower() not in _PLACEHOLDER_NAMES)


def probe_identity(env: ProbeEnv, facts: MachineFacts) -> None:
    dt = (env.read("/proc/device-tree/model") or "").replace("\x00", "").strip()
    facts.model_name = _board_names(env, dt)
    facts.vendor_name = _read(env, "/sys/class/dmi/id/sys_vendor")
    facts.cpu_name = _cpu_model(env) or dt
    facts.kernel = _kernel_release(env)
    if not facts.kernel:
        facts.notes.append("kernel release unknown (/proc/sys/kernel/osrelease unreadable)")


def _pci_id(env: ProbeEnv, dev: str) -> tuple[str, str | None]:
    """(vendor, "vendor:device") as sysfs lists them; vendor "" when the card has none."""
    vendor = _read(env, f"{dev}/vendor").lower().removeprefix("0x")
    device = _read(env, f"{dev}/device").lower().removeprefix("0x")
    return vendor, (f"{vendor}:{device}" if device else None)


def _name(env: ProbeEnv, dev: str, g: GpuFacts) -> None:
    """A known APU's name and family, else the driver's product name, else the vendor and PCI id."""
    apu = AMD_APUS.get(g.pci_id or "")
    if apu is not None:
        g.family, g.name, g.kind = apu.family, apu.name, "integrated"
        return
    vendor_word = {"amd": "AMD", "nvidia": "NVIDIA", "intel": "Intel"}.get(g.vendor, "unknown")
    g.name = _read(env, f"{dev}/product_name") or f"{vendor_word} GPU {g.pci_id}"


def _memory(env: ProbeEnv, dev: str, g: GpuFacts) -> None:
    g.vram_total_bytes = _int(env.read(f"{dev}/mem_info_vram_total"))
    g.vram_used_bytes = _int(env.read(f"{dev}/mem_info_vram_used"))
    g.gtt_total_bytes = _int(env.read(f"{dev}/mem_info_gtt_total"))
    g.gtt_used_bytes = _int(env.read(f"{dev}/mem_info_gtt_used"))


def _amd_kind(env: ProbeEnv, dev: str, g: GpuFacts) -> None:
    """An AMD GPU we do not know: a small VRAM next to a much larger GTT is an APU (amdgpu lists
    both); a large VRAM with a product name is a card."""
    vram, gtt = g.vram_total_bytes, g.gtt_total_bytes
    if (g.vendor, g.kind) != ("amd", "unknown") or vram is None or not gtt:
        return
    if vram < 4 * 1024**3:
        g.kind = "integrated" if gtt > 2 * vram else g.kind
    elif env.exists(f"{dev}/product_name"):
        g.kind = "discrete"


def _carveout_options(env: ProbeEnv, dev: str, g: GpuFacts) -> None:
    """amdgpu's uma/carveout_options (the BIOS choices) and which one is in effect."""
    opts_text = env.read(f"{dev}/uma/carveout_options")
    if not opts_text:
        return
    opts = parse_carveout_options(opts_text)
    g.carveout_options_bytes = [size for _, _, size in opts]
    indices = [i for i, _, _ in opts]
    idx = _int(env.read(f"{dev}/uma/carveout"))
    if idx is not None and idx in indices:
        g.carveout_index = indices.index(idx)


def _card_facts(env: ProbeEnv, card: str) -> GpuFacts | None:
    dev = f"{card}/device"
    vendor, pci = _pci_id(env, dev)
    if not vendor:
        return None
    g = GpuFacts(pci_id=pci, vendor=VENDORS.get(vendor, "unknown"), source=dev)
    m = re.search(r"^DRIVER=(\S+)", env.read(f"{dev}/uevent") or "", re.MULTILINE)
    g.driver = m.group(1) if m else ""
    _name(env, dev, g)
    _memory(env, dev, g)
    _amd_kind(env, dev, g)
    _carveout_options(env, dev, g)
    return g


def probe_drm(env: ProbeEnv, facts: MachineFacts) -> None:
    cards = [c for c in env.glob("/sys/class/drm", "card*") if re.search(r"/card\d+$", c)]
    if not cards:
        facts.notes.append("no GPU in /sys/class/drm (no DRM driver loaded, or a container without /sys)")
        return
    for card in cards:
        g = _card_facts(env, card)
        if g is not None:
            facts.gpus.append(g)
            _note_amd_memory(facts, card, g)


def _note_amd_memory(facts: MachineFacts, card: str, g: GpuFacts) -> None:
    if g.vendor != "amd":
        return
    if g.vram_total_bytes is not None:
        facts.probed.append(f"GPU memory: {card}/device/mem_info_vram_total, mem_info_gtt_total")
    else:
        facts.notes.append(f"{card}: amdgpu memory files missing (old kernel or no amdgpu): carve-out/GTT unknown")


_TRUTH = {"Y": True, "1": True, "N": False, "0": False}


def _ttm_limit(env: ProbeEnv, facts: MachineFacts) -> None:
    """The GTT limit in effect: amdttm's (amdgpu-dkms) when loaded, else ttm's."""
    facts.amdttm_loaded = env.exists("/sys/module/amdttm")
    for module in (("amdttm", "ttm") if facts.amdttm_loaded else ("ttm",)):
        limit = _int(env.read(f"/sys/module/{module}/parameters/pages_limit"))
        if limit:
            facts.ttm_module, facts.ttm_pages_limit = module, limit
            facts.probed.append(f"GTT limit: /sys/module/{module}/parameters/pages_limit")
            return


def _kernel_parameters(env: ProbeEnv, facts: MachineFacts) -> None:
    """amdgpu's module parameters, and the memory-related kernel command line."""
    facts.amdgpu_gttsize_mib = _int(env.read("/sys/module/amdgpu/parameters/gttsize"))
    facts.amdgpu_no_system_mem_limit = _TRUTH.get(_read(env, "/sys/module/amdgpu/parameters/no_system_mem_limit").upper())
    cmdline = env.read("/proc/cmdline")
    if cmdline is None:
        return
    facts.cmdline = parse_cmdline(cmdline)
    arg = facts.cmdline.get("amdgpu.no_system_mem_limit", "").upper()
    if facts.amdgpu_no_system_mem_limit is None and arg:
        facts.amdgpu_no_system_mem_limit = _TRUTH.get(arg)


def _modprobe_limits(env: ProbeEnv, facts: MachineFacts) -> None:
    for conf in env.glob("/etc/modprobe.d", "*.conf"):
        m = re.search(r"^\s*options\s+(?:amd)?ttm\s+.*\bpages_limit=(\d+)", env.read(conf) or "", re.MULTILINE)
        if m:
            facts.modprobe_pages_limit = int(m.group(1))
            facts.probed.append(f"TTM setting: {conf}")


def probe_ttm(env: ProbeEnv, facts: MachineFacts) -> None:
    _ttm_limit(env, facts)
    _kernel_parameters(env, facts)
    _modprobe_limits(env, facts)


def _unified_nvidia_board(model_name: str) -> str | None:
    """The unified-memory NVIDIA family a board's model name names (a DGX Spark is a GB10)."""
    family, unified = nvidia_family(model_name)
    if family is None and re.search(r"DGX Spark", model_name, re.IGNORECASE):
        return "gb10"
    return family if unified else None


def probe_unified_nvidia_by_name(env: ProbeEnv, facts: MachineFacts) -> None:
    """Jetson (nvgpu, no PCI GPU) and GB10 without nvidia-smi: recognise them by the board's model name
    (/proc/device-tree/model, DMI). nvidia-smi, probed next, replaces this entry when it answers."""
    if any((g.vendor, g.kind) == ("nvidia", "integrated") for g in facts.gpus):
        return
    family = _unified_nvidia_board(facts.model_name)
    if family is None:
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
