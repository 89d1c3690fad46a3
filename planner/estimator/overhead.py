"""Backend runtime overhead (driver/context constants), read from planner/data/overhead.toml.

Reported as Breakdown.overhead_bytes: memory the process needs beyond the buffers llama.cpp
allocates (llama.cpp prints it as "unaccounted" in its memory breakdown), so it is not part of
total_bytes. Each number's source is in the TOML file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

MIB = 1 << 20


@dataclass(frozen=True)
class Overhead:
    bytes: int  # device + host
    device_bytes: int
    host_bytes: int
    margin: float
    source: str


@lru_cache(maxsize=1)
def overhead_table() -> dict[str, dict[str, float | str]]:
    import tomllib

    from ..data import read

    return tomllib.loads(read("overhead.toml").decode("utf-8"))


def runtime_overhead(backend: str, uses_gpu: bool) -> Overhead:
    row = overhead_table().get(backend) or overhead_table()["cpu"]
    device = int(float(row.get("device_mib", 0)) * MIB) if uses_gpu else 0
    host = int(float(row.get("host_mib", 0)) * MIB)
    return Overhead(bytes=device + host, device_bytes=device, host_bytes=host,
                    margin=float(row.get("margin", 0.5)), source=str(row.get("source", "")).strip())
