"""RAM modules from the firmware's SMBIOS tables (DMI type 17 "Memory Device"), and the peak RAM
bandwidth they add up to: what a CPU-only machine decodes at, and what a discrete card's
offloaded layers run at.

Sources: Linux `dmidecode -t memory` (reads /sys/firmware/dmi/tables, root only; without root
the bandwidth stays an estimate, labelled as one), Windows Win32_PhysicalMemory
(ConfiguredClockSpeed, DataWidth, DeviceLocator, BankLabel: the same SMBIOS fields).

Peak bandwidth = sum over memory channels of (data width / 8) x transfers per second. Modules are
grouped into channels by their locators ("P0 CHANNEL A", "ChannelB-DIMM0", "DIMM_A1"); two DIMMs
in one channel share its width. When no locator names a channel, every module counts as its own
channel (soldered LPDDR packages, one DIMM per channel), and the note says so.
"""

from __future__ import annotations

import re

from .facts import MemoryModule

_SIZE_UNITS = {"KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_SIZE_RE = re.compile(r"^(\d+)\s*(KB|MB|GB|TB)$", re.IGNORECASE)
_SPEED_RE = re.compile(r"^(\d+)\s*(MT/s|MHz)$", re.IGNORECASE)
_WIDTH_RE = re.compile(r"^(\d+)\s*bits$", re.IGNORECASE)

# How firmware names a module's channel, most specific first (the captured group is the channel).
CHANNEL_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"CHANNEL\s*([A-Z0-9]+)\b", re.IGNORECASE),  # "P0 CHANNEL A", "ChannelB-DIMM0"
    re.compile(r"\bCH(?:AN)?[_\s-]?([A-Z0-9])\b", re.IGNORECASE),  # "CH A", "CHAN_1"
    re.compile(r"DIMM[_\s-]?([A-Z])\d", re.IGNORECASE),  # "DIMM_A1", "DIMM B2"
)


def _value(line: str) -> str:
    return line.split(":", 1)[1].strip() if ":" in line else ""


_SPEED_KEYS = ("Configured Memory Speed", "Configured Clock Speed", "Speed")  # first one that reads


def _speed(fields: dict[str, str]) -> int | None:
    hits = (_SPEED_RE.match(fields.get(key, "")) for key in _SPEED_KEYS)
    return next((int(m.group(1)) for m in hits if m), None)


def _module(block: str) -> MemoryModule | None:
    """One "Memory Device" block; None for another block, an empty slot or an unknown size."""
    lines = [x.strip() for x in block.splitlines()]
    if "Memory Device" not in lines:
        return None
    fields = {x.split(":", 1)[0].strip(): _value(x) for x in lines if ":" in x}
    size = _SIZE_RE.match(fields.get("Size", ""))
    if size is None:  # "No Module Installed", "Unknown"
        return None
    width = _WIDTH_RE.match(fields.get("Data Width", ""))
    return MemoryModule(
        size_bytes=int(size.group(1)) * _SIZE_UNITS[size.group(2).upper()], speed_mts=_speed(fields),
        data_width_bits=int(width.group(1)) if width else None, locator=fields.get("Locator", ""),
        bank_locator=fields.get("Bank Locator", ""), type=fields.get("Type", ""),
    )


def parse_dmidecode(text: str) -> list[MemoryModule]:
    """Populated modules from `dmidecode -t memory` (empty slots and unreadable blocks left out)."""
    return [m for m in (_module(block) for block in re.split(r"\n\s*\n", text)) if m is not None]


def channel_of(m: MemoryModule) -> str | None:
    text = f"{m.bank_locator} {m.locator}"
    for pattern in CHANNEL_PATTERNS:
        hit = pattern.search(text)
        if hit:
            return hit.group(1).upper()
    return None


def _peak(m: MemoryModule) -> int:
    """Bits per transfer x transfers per second: the faster module of a channel counts."""
    return (m.data_width_bits or 0) * (m.speed_mts or 0)


def _channels(usable: list[MemoryModule], named: bool) -> dict[str, MemoryModule]:
    """One module per channel (the faster of two in one channel); every module its own channel
    when no locator names one."""
    channels: dict[str, MemoryModule] = {}
    for i, m in enumerate(usable):
        key = (channel_of(m) if named else None) or str(i)
        have = channels.get(key)
        if have is None or _peak(m) > _peak(have):
            channels[key] = m
    return channels


def _distinct(values: list[int | str | None]) -> str:
    """"64/128", "DDR5/LPDDR5": the distinct values, sorted."""
    return "/".join(str(v) for v in sorted({v for v in values if v}))


def _how(channels: dict[str, MemoryModule], usable: list[MemoryModule], named: bool) -> str:
    ms = list(channels.values())
    how = (f"{len(channels)} channel(s) x {_distinct([m.data_width_bits for m in ms])}-bit x "
           f"{_distinct([m.speed_mts for m in ms])} MT/s {_distinct([m.type for m in usable]) or 'RAM'}")
    return how + (" (channels from the module locators)" if named else
                  " (one channel per module assumed: no locator names a channel)")


def ram_bandwidth(modules: list[MemoryModule]) -> tuple[float, str] | None:
    """(peak GB/s, how it was derived) from the modules, None when speed or width is missing."""
    usable = [m for m in modules if m.speed_mts and m.data_width_bits]
    if not usable or len(usable) < len(modules):
        return None
    named = all(channel_of(m) is not None for m in usable)
    channels = _channels(usable, named)
    gbps = sum(_peak(m) / 8 for m in channels.values()) / 1000
    return round(gbps, 1), _how(channels, usable, named)
