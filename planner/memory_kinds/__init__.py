"""Memory kinds as a table: one small module per memory architecture, chosen by the profile's
`memory_architecture`, answering every memory-model question the planner asks (the pools of a
configuration and their capacities, the fast memory, the OS side's share, the BIOS splits and GPU
caps to weigh, how to read a placement). What differs per OS (Windows shared GPU memory, Linux
GTT, the macOS wired limit) is data: planner/data/memory.toml.

    kind = kind_of(profile)            # CarveoutMemory, UnifiedMemory or DiscreteMemory
    pools = kind.pools(profile, config, need, safety)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import MachineSetting, MemoryKind, Pools
from .carveout import CarveoutMemory
from .discrete import DiscreteMemory
from .unified import UNIFIED_RAISE_ROOM, UnifiedMemory

if TYPE_CHECKING:
    from ..device_schema import DeviceProfile, MemoryArchitecture

KINDS: dict[str, MemoryKind] = {
    "carveout": CarveoutMemory(),
    "unified": UnifiedMemory(),
    "discrete": DiscreteMemory(),
}


def kind_of(profile: DeviceProfile) -> MemoryKind:
    return KINDS[profile.memory_architecture]


def kind_named(arch: MemoryArchitecture | str) -> MemoryKind:
    return KINDS[arch]


__all__ = ["KINDS", "kind_of", "kind_named", "MemoryKind", "MachineSetting", "Pools", "CarveoutMemory",
           "UnifiedMemory", "DiscreteMemory", "UNIFIED_RAISE_ROOM"]
