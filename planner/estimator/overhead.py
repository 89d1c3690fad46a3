"""Backend runtime overhead (driver/context constants), read from planner/data/overhead.toml.

Reported as Breakdown.overhead_bytes: memory the process needs beyond the buffers llama.cpp
allocates (llama.cpp prints it as "unaccounted" in its memory breakdown), so it is not part of
total_bytes. Each number's source is in the TOML file.
"""

from __future__ import annotations

import re
import sys
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
def overhead_table() -> dict[str, dict]:
    from ..data import read

    text = read("overhead.toml").decode("utf-8")
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)
    return _parse_simple_toml(text)  # pragma: no cover - Python 3.10 without tomllib


def _parse_simple_toml(text: str) -> dict[str, dict]:
    """The subset overhead.toml uses: [section], key = number, key = \"\"\"multi-line\"\"\"."""
    out: dict[str, dict] = {}
    section: dict = {}
    in_str: list[str] | None = None
    key = ""
    for line in text.splitlines():
        if in_str is not None:
            if line.endswith('"""'):
                in_str.append(line[:-3])
                section[key] = " ".join(x.rstrip("\\").strip() for x in in_str)
                in_str = None
            else:
                in_str.append(line)
            continue
        line = line.split("#", 1)[0].strip() if not line.strip().startswith("source") else line.strip()
        if not line:
            continue
        if m := re.match(r"^\[(\w+)\]$", line):
            section = out.setdefault(m.group(1), {})
        elif m := re.match(r'^(\w+)\s*=\s*"""(.*)$', line):
            key, rest = m.group(1), m.group(2)
            if rest.endswith('"""'):
                section[key] = rest[:-3]
            else:
                in_str = [rest]
        elif m := re.match(r"^(\w+)\s*=\s*([\d.]+)$", line):
            section[m.group(1)] = float(m.group(2))
    return out


def runtime_overhead(backend: str, uses_gpu: bool) -> Overhead:
    row = overhead_table().get(backend) or overhead_table()["cpu"]
    device = int(row.get("device_mib", 0) * MIB) if uses_gpu else 0
    host = int(row.get("host_mib", 0) * MIB)
    return Overhead(bytes=device + host, device_bytes=device, host_bytes=host,
                    margin=float(row.get("margin", 0.5)), source=str(row.get("source", "")).strip())
