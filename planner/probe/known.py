"""Tables the probe recognises hardware with (data, not if/else ladders).

Sources: PCI ids from the PCI ID repository (https://pci-ids.ucw.cz; "1002:1586 Strix Halo
[Radeon 8050S / 8060S]", "1002:150e Strix [Radeon 880M / 890M]", "1002:1114 Krackan [Radeon 840M /
860M]", Phoenix 15bf/15c8, Hawk Point 1900/1901); bandwidths from docs/devices.md (research
notes, section 1 and 2); the kernel facts from the ROCm Strix Halo guide (rdna3-5 doc).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..device_schema import GIB
from .facts import Vendor


@dataclass(frozen=True)
class ApuInfo:
    family: str
    name: str
    gfx: str
    bandwidth_gbps: float  # peak with the usual memory (derived: bus width x data rate)


AMD_APUS: dict[str, ApuInfo] = {
    "1002:1586": ApuInfo("strix-halo", "Radeon 8060S / 8050S (Strix Halo)", "gfx1151", 256.0),
    "1002:150e": ApuInfo("strix-point", "Radeon 890M / 880M (Strix Point)", "gfx1150", 120.0),
    "1002:1114": ApuInfo("krackan", "Radeon 860M / 840M (Krackan Point)", "gfx1152", 120.0),
    "1002:15bf": ApuInfo("phoenix", "Radeon 780M / 760M (Phoenix)", "gfx1103", 89.6),
    "1002:15c8": ApuInfo("phoenix", "Radeon 740M (Phoenix2)", "gfx1103", 89.6),
    "1002:1900": ApuInfo("hawk-point", "Radeon 780M (Hawk Point)", "gfx1103", 89.6),
    "1002:1901": ApuInfo("hawk-point", "Radeon 760M (Hawk Point)", "gfx1103", 89.6),
}

VENDORS: dict[str, Vendor] = {"1002": "amd", "10de": "nvidia", "8086": "intel"}

# NVIDIA names (nvidia-smi) -> family; unified-memory parts are marked.
NVIDIA_FAMILIES: list[tuple[str, str, bool]] = [
    (r"\bGB10\b", "gb10", True),
    (r"\bOrin\b", "jetson-orin", True),
    (r"\bThor\b", "jetson-thor", True),
    (r"RTX 50\d0", "rtx-50", False),
    (r"RTX 40\d0", "rtx-40", False),
    (r"RTX 30\d0", "rtx-30", False),
]

# Apple chip -> peak bandwidth (GB/s); where the GPU variant changes it, the lower figure
# (devices.md section 2: M3 Max 300/400, M4 Max 410/546 by GPU cores).
APPLE_BANDWIDTH: list[tuple[str, float]] = [
    (r"M1 Ultra", 800.0), (r"M1 Max", 400.0), (r"M1 Pro", 200.0), (r"M1\b", 68.25),
    (r"M2 Ultra", 800.0), (r"M2 Max", 400.0), (r"M2 Pro", 200.0), (r"M2\b", 100.0),
    (r"M3 Ultra", 819.0), (r"M3 Max", 300.0), (r"M3 Pro", 150.0), (r"M3\b", 100.0),
    (r"M4 Max", 410.0), (r"M4 Pro", 273.0), (r"M4\b", 120.0),
    (r"M5 Max", 614.0),
]

# Installed DRAM sizes machines are sold with (GiB); the OS sees a little less.
STANDARD_RAM_GIB = [4, 8, 12, 16, 18, 24, 32, 36, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024]
RAM_SNAP_TOLERANCE = 0.08  # GB10 shows ~119.7 of 128 GiB (6.5 % less)


def installed_ram_from_visible(visible_bytes: int) -> int:
    """Round what the OS sees up to the DRAM size the machine was sold with."""
    for gib in STANDARD_RAM_GIB:
        size = gib * GIB
        if size >= visible_bytes and (size - visible_bytes) <= RAM_SNAP_TOLERANCE * size:
            return size
    return -(-visible_bytes // GIB) * GIB  # round up to a whole GiB


def apple_bandwidth(chip: str) -> float | None:
    for pattern, bw in APPLE_BANDWIDTH:
        if re.search(pattern, chip):
            return bw
    return None


def nvidia_family(name: str) -> tuple[str | None, bool]:
    for pattern, family, unified in NVIDIA_FAMILIES:
        if re.search(pattern, name, re.IGNORECASE):
            return family, unified
    return None, False


# ----------------------------------------------------------------------------- kernel facts

KERNEL_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:-(\d+))?")


def kernel_version(release: str) -> tuple[int, int, int, int] | None:
    """'6.17.0-19-generic' -> (6, 17, 0, 19); '6.18.4-200.fc43.x86_64' -> (6, 18, 4, 200)."""
    m = KERNEL_RE.match(release.strip())
    if not m:
        return None
    major, minor, patch, local = (int(x) if x else 0 for x in m.groups())
    return major, minor, patch, local


@dataclass(frozen=True)
class KernelVerdict:
    ok: bool
    why: str


# Distribution kernels that carry the Strix Halo fixes (ROCm rdna3-5 doc): (release regex, min ABI).
STRIX_HALO_DISTRO_KERNELS: list[tuple[str, tuple[int, int, int], int, str]] = [
    (r"-generic$", (6, 17, 0), 19, "Ubuntu 24.04 HWE >= 6.17.0-19"),
    (r"-oem$", (6, 14, 0), 1018, "Ubuntu OEM >= 6.14.0-1018"),
]
STRIX_HALO_MAINLINE_MIN = (6, 18, 4)
STRIX_HALO_DISTRO_OK = re.compile(r"\.fc(4[3-9]|[5-9]\d)\b")  # Fedora 43 and later


def _distro_verdict(release: str, v: tuple[int, int, int, int]) -> KernelVerdict | None:
    """A distribution kernel on a base known to carry the fixes from some ABI number on."""
    for pattern, base, min_abi, label in STRIX_HALO_DISTRO_KERNELS:
        if re.search(pattern, release) and v[:3] == base:
            return KernelVerdict(v[3] >= min_abi, label)
    return None


def strix_halo_kernel(release: str) -> KernelVerdict | None:
    """Is this kernel new enough for ROCm on Strix Halo? None when the release cannot be parsed."""
    v = kernel_version(release)
    if v is None:
        return None
    if v[:3] >= STRIX_HALO_MAINLINE_MIN:
        return KernelVerdict(True, f"{release} >= mainline 6.18.4")
    distro = _distro_verdict(release, v)
    if distro is not None:
        return distro
    if STRIX_HALO_DISTRO_OK.search(release):
        return KernelVerdict(True, "Fedora 43+ kernel (listed with the fixes)")
    return KernelVerdict(False, "older than mainline 6.18.4 and not a distribution kernel known to carry the fixes")
