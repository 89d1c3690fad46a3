"""`memfit devices`: the profile list as a table within the terminal, or its rows as JSON; and the
size words every device report shares (planner/report/device_show.py, planner/report/doctor.py).

`memfit devices` must start in a few tens of milliseconds: the list reads the profiles' TOML
(planner.profile_files) and prints its own plain table; the schema (pydantic) loads only for
`devices show`. Units: installed RAM, a card's VRAM and BIOS carve-out options in GB, as vendors
and the firmware name them; everything memfit computes (what the OS sees, caps, reserves, reports)
in GiB.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..units import GIB, fmt_vendor_size
from .layout import render_table, unbroken, wrap

if TYPE_CHECKING:
    from ..profile_files import Listing

ARCH_WORDS = {
    "carveout": "carve-out APU",
    "unified": "unified",
    "discrete": "discrete GPU",
}
OS_WORDS = {"linux": "Linux", "windows": "Windows", "macos": "macOS"}

# `memfit devices`: the id (what --device takes) and the name (to recognise a machine) first, then
# the memory as sold; the rest is what `devices show` explains. Narrow terminals lose columns in
# this order, and the name wraps (to no less than 30 columns) before any of them goes.
LIST_HEADERS = ["id", "name", "RAM", "VRAM", "memory", "bandwidth", "default OS", "carve-out options"]
LIST_DROP_ORDER = ["carve-out options", "default OS", "bandwidth", "memory"]
LIST_WRAP = {"name": 30}
FACT_KEEP = 32  # a fact up to this long never breaks across lines


def gib(n: int | float | None, digits: int = 1) -> str:
    """A size memfit computed, in GiB (MiB below 1 GiB)."""
    if n is None:
        return "-"
    v = n / GIB
    if v < 1:
        return f"{n / 1024**2:.0f} MiB"
    return f"{v:.{digits}f}".rstrip("0").rstrip(".") + " GiB"


def options_text(opts: list[int]) -> str:
    """The BIOS's carve-out menu, in its own unit."""
    if not opts:
        return "-"
    return ",".join(f"{o / GIB:g}" for o in opts) + " GB"


def facts(items: list[str], sep: str = "; ") -> str:
    """Facts joined for `wrap`, the short ones (a size with its label) kept on one line."""
    return sep.join(unbroken(x) if len(x) <= FACT_KEEP else x for x in items if x)


def list_rows(listing: Listing) -> list[dict[str, Any]]:
    """One row per profile id: what the list shows and its JSON says."""
    rows = []
    for pid in listing.ids():
        p = listing.profiles[pid]
        rows.append({
            "id": p.id, "name": p.name, "memory_architecture": p.memory_architecture,
            "ram_bytes": p.ram_bytes, "vram_bytes": p.vram_bytes,
            "carveout_options_bytes": p.carveout_options_bytes, "default_os": p.default_os,
            "oses": p.oses, "bandwidth_gbps": p.bandwidth_gbps, "origin": p.origin, "path": p.path,
        })
    return rows


def list_json(rows: list[dict[str, Any]], problems: list[str]) -> str:
    return json.dumps({"devices": rows, "problems": problems}, indent=2, allow_nan=False)


def _list_cells(r: dict[str, Any]) -> list[str]:
    return [r["id"] + ("*" if r["origin"] == "user" else ""), r["name"],
            fmt_vendor_size(r["ram_bytes"]), fmt_vendor_size(r["vram_bytes"]) if r["vram_bytes"] else "-",
            ARCH_WORDS.get(r["memory_architecture"], r["memory_architecture"]),
            f"{r['bandwidth_gbps']:g} GB/s", OS_WORDS.get(r["default_os"], r["default_os"]),
            options_text(r["carveout_options_bytes"])]


def list_text(rows: list[dict[str, Any]], width: int) -> str:
    """The profile table within `width` (columns dropped in LIST_DROP_ORDER), with its legend."""
    lines = render_table([_list_cells(r) for r in rows], LIST_HEADERS, width, drop_order=LIST_DROP_ORDER,
                         wrap_min=LIST_WRAP)
    if any(r["origin"] == "user" for r in rows):
        lines += [""] + wrap("* your profile (overrides a shipped one with the same id)", width)
    lines += [""] + wrap("RAM and VRAM as sold, carve-out options as the BIOS lists them (binary sizes, so "
                         "64 GB = 64 GiB).", width)
    lines += wrap("memfit devices show ID explains one; --device auto reads this machine.", width)
    return "\n".join(lines)
