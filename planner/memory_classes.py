"""Memory classes as data: what the window beyond an APU's carve-out costs per OS and backend,
what the desktop already holds on the GPU, what loading needs, how each memory architecture looks
on each OS, and the knobs that raise a GPU cap (planner/data/memory.toml).

The fit solver asks these questions; the numbers and their sources live in the data file, so a
new measurement changes a table row, not code.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from . import data as _data
from .units import parse_size


@dataclass(frozen=True)
class SharedWindow:
    """The GPU-mapped window of system RAM beyond the carve-out on one OS and backend."""

    os: str
    backend: str
    label: str
    managed_by: str
    slowdown: float  # decode time per byte there / per byte in the carve-out
    source: str

    def cost_text(self) -> str:
        if self.slowdown <= 1.0:
            return f"no speed cost measured for {self.label} on this backend ({_short(self.source)})"
        return (f"bytes in {self.label} decode about {self.slowdown:.1f}x slower than in the carve-out "
                f"on this backend ({_short(self.source)})")


@dataclass(frozen=True)
class LoadRule:
    """What loading needs from the RAM the OS sees, beyond the steady state."""

    staging_share: float
    floor_use: str
    source: str


def _short(source: str) -> str:
    return source.split(":", 1)[0] if ":" in source[:40] else source[:60]


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = _data.read("memory.toml").decode("utf-8")
    return tomllib.loads(text)


@lru_cache(maxsize=64)  # a pure lookup in the table: a plan asks it on every placement
def shared_window(os: str, backend: str) -> SharedWindow:
    """The first table row for this OS and backend (backend name without the driver label)."""
    name = backend.split(" ", 1)[0].strip().lower()
    for row in _table()["shared_window"]:
        if row["os"] in (os, "*") and row["backend"] in (name, "*"):
            return SharedWindow(os=os, backend=name, label=row["label"], managed_by=row["managed_by"],
                                slowdown=float(row["slowdown"]), source=row["source"])
    raise KeyError(f"no shared_window row for {os}/{backend}")  # the table ends with a catch-all row


@lru_cache(maxsize=64)  # a pure lookup in the table: a plan asks it on every placement
def default_gpu_reserve(os: str, use: str) -> int:
    """GPU memory the desktop and driver hold on an APU, per OS and use (bytes)."""
    row = _table()["gpu_reserve"].get(os)
    if row is None:
        return 0
    return parse_size(str(row[use]).replace(" ", ""))


def gpu_reserve_source(os: str) -> str:
    row = _table()["gpu_reserve"].get(os)
    return row["source"] if row else ""


@lru_cache(maxsize=64)  # a pure lookup in the table: a plan asks it on every placement
def windows_carveout_load() -> LoadRule:
    row = _table()["load"]["windows_carveout"]
    return LoadRule(staging_share=float(row["staging_share"]), floor_use=row["floor_use"], source=row["source"])


@dataclass(frozen=True)
class MacWiredDefault:
    before_26: float  # share of RAM the GPU may wire by default before macOS 26
    from_26: float
    source: str


def macos_wired_default(ram_bytes: int) -> MacWiredDefault:
    """The default GPU wired limit as a share of RAM, before and from macOS 26."""
    t = _table()["macos_wired_default"]
    old = t["before_26"]
    before = old["from_36_gib"] if ram_bytes >= 36 * 1024**3 else old["below_36_gib"]
    new = t["from_26"]
    return MacWiredDefault(before_26=float(before), from_26=float(new["fraction"]),
                           source=f"{old['source']}; {new['source']}")


LoadPath = Literal["largest_tensor", "staged_through_os"]


@dataclass(frozen=True)
class OsMemory:
    """One memory architecture on one OS (a `[[os_memory]]` row)."""

    pool_label: str  # the GPU's pool beyond the fast memory: "shared GPU memory", "GTT (shared)", "VRAM"
    prefer_fast: bool  # spill-free placements rank first
    lever: str  # what a user changes here and why, in one line ("" = nothing to say)
    load_path: LoadPath
    page_cache: str  # why a page cache that cannot hold the GPU weights matters here


@lru_cache(maxsize=None)
def os_memory(memory: str, os: str) -> OsMemory:
    """The first `[[os_memory]]` row for this memory architecture and OS."""
    for row in _table()["os_memory"]:
        if row["memory"] == memory and row["os"] in (os, "*"):
            return OsMemory(pool_label=row["pool_label"], prefer_fast=bool(row.get("prefer_fast", True)),
                            lever=row.get("lever", ""), load_path=row.get("load_path", "largest_tensor"),
                            page_cache=row.get("page_cache", "so the kernel evicts it while loading (slow loads)"))
    raise KeyError(f"no os_memory row for {memory}/{os}")  # each architecture ends with an os = "*" row


@dataclass(frozen=True)
class Knob:
    """A setting that raises a GPU cap: its short name, what changing it means, and the reboot."""

    label: str  # "GTT", "wired limit"
    change: str  # "the GTT limit (kernel command line)"
    reboot: bool


def knob(name: str) -> Knob:
    """The `[knob.<name>]` row; an unknown knob is named as it is and taken to need a reboot."""
    row = _table()["knob"].get(name)
    if row is None:
        return Knob(label="GPU limit", change=f"the GPU memory limit ({name})", reboot=True)
    return Knob(label=row["label"], change=row["change"], reboot=bool(row["reboot"]))
