"""Windows probes: one PowerShell call with CIM queries (RAM, CPU, GPUs) and the display-class
registry for each adapter's 64-bit memory size (Win32_VideoController.AdapterRAM is 32-bit and
stops at 4 GiB). Only run on Windows."""

from __future__ import annotations

import json
import re

from .env import ProbeEnv
from .facts import GpuFacts, MachineFacts, MemoryModule, Vendor
from .known import AMD_APUS, VENDORS, installed_ram_from_visible, nvidia_family

SCRIPT = (
    "$ErrorActionPreference='SilentlyContinue';"
    "$cs=Get-CimInstance Win32_ComputerSystem;"
    "$os=Get-CimInstance Win32_OperatingSystem;"
    "$cpu=(Get-CimInstance Win32_Processor | Select-Object -First 1).Name;"
    "$dimm=@(Get-CimInstance Win32_PhysicalMemory);"
    "$mem=($dimm | Measure-Object -Property Capacity -Sum).Sum;"
    "$dimms=@($dimm | ForEach-Object {[pscustomobject]@{Capacity=$_.Capacity;Speed=$_.ConfiguredClockSpeed;"
    "DataWidth=$_.DataWidth;Locator=$_.DeviceLocator;Bank=$_.BankLabel;SMBIOSMemoryType=$_.SMBIOSMemoryType}});"
    "$gpus=@(Get-CimInstance Win32_VideoController | ForEach-Object {[pscustomobject]@{Name=$_.Name;"
    "AdapterRAM=$_.AdapterRAM;PNPDeviceID=$_.PNPDeviceID;DriverVersion=$_.DriverVersion}});"
    "$reg=@(Get-ItemProperty 'HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Class\\{4d36e968-e325-11ce-bfc1-08002be10318}\\0*'"
    " | Where-Object {$_.DriverDesc} | ForEach-Object {[pscustomobject]@{DriverDesc=$_.DriverDesc;"
    "MemorySize=$_.'HardwareInformation.qwMemorySize'}});"
    "[pscustomobject]@{Model=$cs.Model;Manufacturer=$cs.Manufacturer;TotalPhysicalMemory=$cs.TotalPhysicalMemory;"
    "InstalledMemory=$mem;FreePhysicalMemoryKB=$os.FreePhysicalMemory;Caption=$os.Caption;Version=$os.Version;"
    "Cpu=$cpu;Gpus=$gpus;Registry=$reg;Dimms=$dimms} | ConvertTo-Json -Depth 4 -Compress"
)
ARGV = ["powershell", "-NoProfile", "-NonInteractive", "-Command", SCRIPT]
PNP_RE = re.compile(r"VEN_([0-9A-Fa-f]{4})&DEV_([0-9A-Fa-f]{4})")


def _int(v: object) -> int | None:
    if v is None or str(v).strip() == "":
        return None
    try:
        return int(str(v).strip()) if not isinstance(v, (int, float)) else int(v)
    except (TypeError, ValueError):
        return None


def _list(v: object) -> list[object]:
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _text(data: dict[str, object], key: str) -> str:
    return str(data.get(key) or "").strip()


def _system(data: dict[str, object], facts: MachineFacts) -> int | None:
    """CPU, model, OS and RAM; returns the RAM Windows sees."""
    facts.cpu_name = _text(data, "Cpu")
    facts.model_name = _text(data, "Model")
    facts.vendor_name = _text(data, "Manufacturer")
    facts.os_version = " ".join(str(data.get(k) or "") for k in ("Caption", "Version")).strip()
    _ram(data, facts)
    return facts.ram_visible_bytes


def _ram(data: dict[str, object], facts: MachineFacts) -> None:
    """The RAM Windows sees, the DIMMs' total (else the size machines are sold with), what is free."""
    visible = _int(data.get("TotalPhysicalMemory"))
    facts.ram_visible_bytes = visible
    facts.ram_installed_bytes = _int(data.get("InstalledMemory")) or (installed_ram_from_visible(visible) if visible else None)
    free_kb = _int(data.get("FreePhysicalMemoryKB"))
    facts.mem_available_bytes = free_kb * 1024 if free_kb is not None else None
    if visible:
        facts.probed.append("RAM: Win32_ComputerSystem.TotalPhysicalMemory, Win32_PhysicalMemory.Capacity")


def _vendor(pci: str | None, name: str) -> Vendor:
    """The vendor from the PCI id, else from the adapter's name."""
    vendor = VENDORS.get(pci.split(":")[0], "unknown") if pci else "unknown"
    return vendor if vendor != "unknown" else (vendor_hint(name) or "unknown")


def _dedicated(raw: dict[str, object], name: str, registry: dict[str, int | None]) -> tuple[int | None, str]:
    """The adapter's dedicated memory: the registry's 64-bit size, else the 32-bit CIM field."""
    found = registry.get(name)
    if found is not None:
        return found, "registry HardwareInformation.qwMemorySize"
    return _int(raw.get("AdapterRAM")), "Win32_VideoController.AdapterRAM (32-bit: at most 4 GiB)"


def _classify(g: GpuFacts) -> None:
    """Integrated or discrete, and the silicon family where known."""
    apu = AMD_APUS.get(g.pci_id or "")
    if apu is not None:
        g.family, g.kind = apu.family, "integrated"
    elif g.vendor == "nvidia":
        g.family, unified = nvidia_family(g.name)
        g.kind = "integrated" if unified else "discrete"
    elif g.vendor == "intel":
        g.kind = "integrated"


def _gpu(raw: dict[str, object], registry: dict[str, int | None], visible: int | None) -> GpuFacts | None:
    """One Win32_VideoController; None for Microsoft's basic display adapter."""
    name = _text(raw, "Name")
    pci = _pci_id(raw)
    vendor = _vendor(pci, name)
    if vendor == "unknown" and "microsoft basic" in name.lower():
        return None
    dedicated, source = _dedicated(raw, name, registry)
    g = GpuFacts(name=name, vendor=vendor, pci_id=pci, driver=str(raw.get("DriverVersion") or ""),
                 vram_total_bytes=dedicated, source=source)
    _classify(g)
    if visible:
        g.shared_bytes = max(visible // 2, 64 * 1024**2)  # WDDM: max(RAM the OS sees / 2, 64 MB)
    return g


def _pci_id(raw: dict[str, object]) -> str | None:
    """`vendor:device` from the PNP device id (PCI\\VEN_1002&DEV_1586...)."""
    m = PNP_RE.search(str(raw.get("PNPDeviceID") or ""))
    return f"{m.group(1).lower()}:{m.group(2).lower()}" if m else None


def _json_object(stdout: str, facts: MachineFacts) -> dict[str, object] | None:
    try:
        data = json.loads(stdout)
    except ValueError:
        facts.notes.append("PowerShell output was not JSON: RAM and GPU unknown")
        return None
    if not isinstance(data, dict):
        facts.notes.append("PowerShell output had an unexpected shape: RAM and GPU unknown")
        return None
    return data


def parse_windows(stdout: str, facts: MachineFacts) -> None:
    data = _json_object(stdout, facts)
    if data is None:
        return
    visible = _system(data, facts)
    _modules(data, facts)
    registry = _registry_sizes(data)
    for raw in _list(data.get("Gpus")):
        g = _gpu(raw, registry, visible) if isinstance(raw, dict) else None
        if g is not None:
            facts.gpus.append(g)
            facts.probed.append(f"GPU: {g.name} dedicated memory from {g.source}")


def _registry_sizes(data: dict[str, object]) -> dict[str, int | None]:
    """The display drivers' memory sizes in the registry, by driver description."""
    return {_text(r, "DriverDesc"): _int(r.get("MemorySize")) for r in _list(data.get("Registry")) if isinstance(r, dict)}


# SMBIOS memory types (Win32_PhysicalMemory.SMBIOSMemoryType, SMBIOS spec 7.18.2)
SMBIOS_MEMORY_TYPES = {24: "DDR3", 26: "DDR4", 27: "LPDDR", 28: "LPDDR2", 29: "LPDDR3", 30: "LPDDR4",
                       34: "DDR5", 35: "LPDDR5"}


def _module(raw: object) -> MemoryModule | None:
    """One populated Win32_PhysicalMemory entry (None: an empty slot or an unexpected shape)."""
    size = _int(raw.get("Capacity")) if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or not size:
        return None
    return MemoryModule(
        size_bytes=size, speed_mts=_int(raw.get("Speed")), data_width_bits=_int(raw.get("DataWidth")),
        locator=str(raw.get("Locator") or ""), bank_locator=str(raw.get("Bank") or ""),
        type=SMBIOS_MEMORY_TYPES.get(_int(raw.get("SMBIOSMemoryType")) or 0, ""))


def _modules(data: dict[str, object], facts: MachineFacts) -> None:
    """RAM modules from Win32_PhysicalMemory (the SMBIOS type 17 fields dmidecode reads on Linux)."""
    facts.memory_modules += [m for raw in _list(data.get("Dimms")) if (m := _module(raw)) is not None]
    if facts.memory_modules:
        facts.memory_modules_source = "Win32_PhysicalMemory"
        facts.probed.append(f"RAM modules: Win32_PhysicalMemory ({len(facts.memory_modules)} populated)")


_NAME_HINTS: tuple[tuple[str, Vendor], ...] = (("radeon", "amd"), ("amd", "amd"), ("nvidia", "nvidia"),
                                               ("geforce", "nvidia"), ("intel", "intel"), ("arc", "intel"))


def vendor_hint(name: str) -> Vendor | None:
    n = name.lower()
    return next((vendor for key, vendor in _NAME_HINTS if key in n), None)


def probe_windows(env: ProbeEnv, facts: MachineFacts) -> None:
    res = env.run("powershell-cim", ARGV)
    if res is None:
        facts.notes.append("PowerShell not available: RAM and GPU unknown")
        return
    if not res.ok or not res.stdout.strip():
        facts.notes.append(f"PowerShell CIM query failed (exit {res.returncode}): RAM and GPU unknown")
        return
    parse_windows(res.stdout, facts)
