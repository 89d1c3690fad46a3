"""`memfit devices` (list profiles) and `memfit devices show ID` (explain one in words and tables).

Both fit the terminal (planner/report/layout.py): prose wraps with a hanging indent and the tables
drop their least important columns first, in the orders below (docs/cli.md lists them too).
Units: installed RAM, a card's VRAM and BIOS carve-out options in GB, as vendors and the firmware
name them; everything memfit computes (what the OS sees, caps, reserves, reports) in GiB.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from ..report.layout import render_table, text_width, unbroken, wrap
from ..units import GIB, UNITS_NOTE, fmt_vendor_size
from .device_options import device_options, overrides_from, resolve_devices
from .help_format import WrappingGroup

if TYPE_CHECKING:
    from ..device_schema import DeviceProfile
    from ..profile_files import Listing

# `memfit devices` must start in a few tens of milliseconds: the list reads the profiles' TOML
# (planner.profile_files) and prints its own plain table; the schema (pydantic) loads only for
# `devices show`.
OSES = ("linux", "windows", "macos")
USES = ("headless", "desktop", "daily")

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

# `devices show`, the carve-out table of a carve-out APU: the BIOS setting, what the GPU may hold
# in all (default and raised cap) and what the OS keeps, before the parts those are sums of; the
# per-backend "reports" columns go first (the backend table below shows them for the setting in
# effect), the non-default backends before the default one.
CARVE_DROP_FIXED = ["cap raised", "shared cap", "OS sees"]
# the backend table: its prose column wraps (to no less than 30 columns); no column is dropped
BACKEND_WRAP = {"what it reports": 30}
FACT_KEEP = 32  # a fact up to this long never breaks across lines


def gib(n: int | float | None, digits: int = 1) -> str:
    """A size memfit computed, in GiB (MiB below 1 GiB)."""
    if n is None:
        return "-"
    v = n / GIB
    if v < 1:
        return f"{n / 1024**2:.0f} MiB"
    return f"{v:.{digits}f}".rstrip("0").rstrip(".") + " GiB"


def _options_text(opts: list[int]) -> str:
    """The BIOS's carve-out menu, in its own unit."""
    if not opts:
        return "-"
    return ",".join(f"{o / GIB:g}" for o in opts) + " GB"


def _facts(items: list[str], sep: str = "; ") -> str:
    """Facts joined for `wrap`, the short ones (a size with its label) kept on one line."""
    return sep.join(unbroken(x) if len(x) <= FACT_KEEP else x for x in items if x)


# --------------------------------------------------------------------------- list

def _list_rows(listing: Listing) -> list[dict]:
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


@click.group("devices", cls=WrappingGroup, invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable list")
@click.pass_context
def devices_command(ctx: click.Context, as_json: bool) -> None:
    """List device profiles (shipped, plus yours in ~/.config/memfit/profiles/).

    \b
    memfit devices            the table
    memfit devices show ID    one profile explained: pools per OS, caps,
                              reserves, backends, sources
    memfit devices show auto  this machine
    """
    from ..profile_files import list_profiles

    if ctx.invoked_subcommand is not None:
        return
    listing = list_profiles()
    rows = _list_rows(listing)
    for problem in listing.problems:
        click.echo(f"warning: skipped {problem}", err=True)
    if as_json:
        click.echo(json.dumps({"devices": rows, "problems": listing.problems}, indent=2, allow_nan=False))
        return
    click.echo(list_text(rows, text_width()))


def list_text(rows: list[dict], width: int) -> str:
    """The profile table within `width` (columns dropped in LIST_DROP_ORDER), with its legend."""
    table = [[r["id"] + ("*" if r["origin"] == "user" else ""), r["name"],
              fmt_vendor_size(r["ram_bytes"]), fmt_vendor_size(r["vram_bytes"]) if r["vram_bytes"] else "-",
              ARCH_WORDS.get(r["memory_architecture"], r["memory_architecture"]),
              f"{r['bandwidth_gbps']:g} GB/s", OS_WORDS.get(r["default_os"], r["default_os"]),
              _options_text(r["carveout_options_bytes"])]
             for r in rows]
    lines = render_table(table, LIST_HEADERS, width, drop_order=LIST_DROP_ORDER, wrap_min=LIST_WRAP)
    if any(r["origin"] == "user" for r in rows):
        lines += [""] + wrap("* your profile (overrides a shipped one with the same id)", width)
    lines += [""] + wrap("RAM and VRAM as sold, carve-out options as the BIOS lists them (binary sizes, so "
                         "64 GB = 64 GiB).", width)
    lines += wrap("memfit devices show ID explains one; --device auto reads this machine.", width)
    return "\n".join(lines)


# --------------------------------------------------------------------------- show

def pools(p: DeviceProfile, os: str) -> list[dict]:
    """One row per carve-out option (or one row) with what the OS and the GPU get."""
    info = p.os_info(os)  # type: ignore[arg-type]
    use = p.default_use
    carves: list[int | None] = list(p.carveout_options()) if p.carveout else [None]
    out = []
    for c in carves:
        visible = p.os_visible_ram(c)
        cap = p.gpu_cap_bytes(os, c)  # type: ignore[arg-type]
        cap_max = p.max_gpu_cap_bytes(os, c) if info.gpu_cap and info.gpu_cap.max_fraction else None  # type: ignore[arg-type]
        total = p.gpu_total_bytes(os, c)  # type: ignore[arg-type]
        total_max = None
        if cap_max is not None:
            total_max = (c or 0) + cap_max if p.memory_architecture == "carveout" else cap_max
        out.append({
            "carveout_bytes": c, "os_visible_bytes": visible, "gpu_cap_bytes": cap, "gpu_cap_max_bytes": cap_max,
            "gpu_total_bytes": total, "gpu_total_max_bytes": total_max,
            "reserve_bytes": p.reserve(os, use), "os_left_after_reserve_bytes": visible - p.reserve(os, use),  # type: ignore[arg-type]
            "reported": {b.label: p.reported_bytes(b, os, c) for b in info.backends},  # type: ignore[arg-type]
        })
    return out


def _show_json(p: DeviceProfile) -> dict:
    data = p.model_dump(mode="json")
    data["derived"] = {
        os: {"pools": pools(p, os), "cap_setting_for_max": p.cap_setting(os, p.max_gpu_cap_bytes(os) or 0)  # type: ignore[arg-type]
             if p.os[os].gpu_cap is not None and p.os[os].gpu_cap.knob else None}  # type: ignore[union-attr]
        for os in p.os
    }
    return data


def _arch_sentence(p: DeviceProfile) -> str:
    if p.memory_architecture == "carveout":
        return ("Carve-out APU: the BIOS reserves a UMA frame buffer that only the GPU can use (the OS loses it; "
                "reboot to change), and the GPU may also map a capped window of the remaining RAM "
                "(Windows: shared GPU memory; Linux: GTT).")
    if p.memory_architecture == "unified":
        if not any(p.os[o].gpu_cap for o in p.os):
            return "One memory pool used by the CPU backend only (no GPU memory model known)."
        return ("Unified memory: one pool for CPU and GPU; the GPU may use it up to a limit per OS "
                "(below: macOS wired limit, the driver's shared-memory share, or what Linux reports as available).")
    return ("Discrete GPU: model layers go to the card's VRAM; layers or experts kept on the CPU use system RAM "
            "at system-RAM speed.")


def _carveout_table(p: DeviceProfile, os: str, width: int) -> list[str]:
    """Per BIOS carve-out option: what the OS sees, the GPU's shared cap and total (default and
    raised), what the OS keeps after its reserve, what each backend reports."""
    info = p.os[os]  # type: ignore[index]
    use = p.default_use
    raised = bool(info.gpu_cap and info.gpu_cap.max_fraction)
    gpu_backends = [b for b in info.backends if b.name != "cpu"]
    left_head = f"RAM left after\n{use} reserve"
    head = ["carve-out", "OS sees", "shared cap", "GPU total"]
    if raised:
        head += ["cap raised", "GPU total\nraised"]
    report_heads = [f"{b.label}\nreports" for b in gpu_backends]
    head += [left_head] + report_heads
    table = []
    for r in pools(p, os):
        row = [fmt_vendor_size(r["carveout_bytes"]), gib(r["os_visible_bytes"]), gib(r["gpu_cap_bytes"]),
               gib(r["gpu_total_bytes"])]
        if raised:
            row += [gib(r["gpu_cap_max_bytes"]), gib(r["gpu_total_max_bytes"])]
        left = r["os_left_after_reserve_bytes"]
        row += [gib(left) if left >= 0 else f"short {gib(-left)}"]
        row += [gib(r["reported"][b.label]) for b in gpu_backends]
        if p.carveout and r["carveout_bytes"] == p.current_carveout():
            row[0] += " *"
        table.append(row)
    drop = list(reversed(report_heads)) + CARVE_DROP_FIXED
    lines = render_table(table, head, width, drop_order=drop)
    lines += wrap(f"* = {'in effect' if p.live else 'factory default'}; carve-out in GB as the BIOS names it, "
                  "the rest in GiB", width)
    return lines


def _pool_sentence(p: DeviceProfile, os: str) -> str:
    """Unified and discrete machines: their one or two pools in a sentence."""
    r = pools(p, os)[0]
    if p.memory_architecture == "unified":
        return (f"OS sees {gib(r['os_visible_bytes'])}; GPU limit {gib(r['gpu_cap_bytes'])}"
                + (f" by default, up to {gib(r['gpu_cap_max_bytes'])} raised" if r["gpu_cap_max_bytes"] else ""))
    use = p.default_use
    return (f"VRAM {fmt_vendor_size(p.vram_bytes)} as sold ({gib(p.vram_reserve(os, use))} kept by the desktop, "  # type: ignore[arg-type]
            f"{use} use); host RAM {fmt_vendor_size(p.ram_bytes)}"
            + (f" at {p.host_bandwidth_gbps:g} GB/s" if p.host_bandwidth_gbps else "")
            + f", {gib(r['os_left_after_reserve_bytes'])} of it left after the OS reserve")


def _cap_lines(p: DeviceProfile, os: str, width: int) -> list[str]:
    """The GPU cap: its default, how to change it, an example setting, the shared window's speed."""
    info = p.os[os]  # type: ignore[index]
    cap = info.gpu_cap
    if cap is None:
        return []
    frac = f"{cap.default_fraction:.0%} of the RAM the OS sees by default"
    if cap.setting_bytes:
        frac += f"; set to {gib(cap.setting_bytes)} here"
    lines = wrap(f"GPU cap: {frac}" + (f", safe maximum {cap.max_fraction:.0%}" if cap.max_fraction else
                                       " (not tunable)"), width, "", "  ")
    if cap.how_to_change:
        lines += wrap(cap.how_to_change, width, "  change: ", "    ")
    if cap.knob and cap.max_fraction:
        target = ((p.max_gpu_cap_bytes(os) or 0) // GIB) * GIB  # type: ignore[arg-type]
        where = ", at the current carve-out" if p.carveout is not None else ""
        if target > 0:  # never suggest a cap of 0 (a tiny --ram override)
            lines += wrap(f"{p.cap_setting(os, target)}  ({gib(target)}{where})", width, "  e.g. ", "    ")  # type: ignore[arg-type]
    if p.memory_architecture == "carveout":
        from ..memory_classes import shared_window

        seen: list[str] = []
        for b in info.backends:
            if b.name == "cpu" or b.name in seen:
                continue
            seen.append(b.name)
            w = shared_window(os, b.name)  # type: ignore[arg-type]
            slow = cap.shared_slowdown or w.slowdown
            lines += wrap(f"{w.label} on {b.name}: " + (f"decodes {slow:g}x slower than the carve-out"
                                                         if slow > 1 else "no measured speed cost"), width, "  ", "    ")
    if cap.note:
        lines += wrap(cap.note, width, "  note: ", "    ")
    return lines


def _os_block(p: DeviceProfile, os: str, width: int) -> list[str]:
    info = p.os[os]  # type: ignore[index]
    title = f"{OS_WORDS[os]}{' (default)' if os == p.default_os else ''}"
    lines = [title, "-" * min(40, width)]
    if p.memory_architecture == "carveout":
        lines += _carveout_table(p, os, width)
    else:
        lines += wrap(_pool_sentence(p, os), width, "", "  ")
    lines += _cap_lines(p, os, width)
    gpu_kept = p.memory_architecture != "unified"
    res = [[u, gib(info.reserve_bytes[u])] + ([gib(p.gpu_reserve(os, u))] if gpu_kept else [])  # type: ignore[arg-type]
           for u in USES]
    lines.append("")
    lines += render_table(res, ["use", "OS + apps keep"] + (["GPU memory the\ndesktop holds"] if gpu_kept else []), width)
    lines.append("")
    bt = [[b.label, gib(p.reported_bytes(b, os)), gib(b.max_alloc_bytes) if b.max_alloc_bytes else "-",  # type: ignore[arg-type]
           gib(b.overhead_bytes) if b.overhead_bytes else "-", b.reports] for b in info.backends]
    lines += render_table(bt, ["backend", "reports\nnow", "max\nbuffer", "runtime\noverhead", "what it reports"],
                          width, wrap_min=BACKEND_WRAP)
    for n in info.notes:
        lines += wrap(n, width, "  - ", "    ")
    return lines


def show_text(p: DeviceProfile, width: int | None = None) -> str:
    """One profile in words and tables, within `width` (the terminal's by default)."""
    width = width or text_width()
    lines = wrap(f"{p.id}: {p.name}", width, "", "  ")
    if p.based_on and p.based_on != p.id:
        lines += wrap(f"based on: {p.based_on}", width, "", "  ")
    lines += wrap(_facts([x for x in (p.chip, p.gpu_name, p.form_factor, p.power_w) if x], " | "), width)
    lines.append("")
    lines += wrap(_arch_sentence(p), width)
    ram = f"RAM {fmt_vendor_size(p.ram_bytes)} as sold"
    if p.firmware_reserved_bytes:
        ram += f" ({gib(p.firmware_reserved_bytes)} never reaches the OS)"
    lines += wrap(_facts([ram, f"peak bandwidth {p.bandwidth_gbps:g} GB/s, decode efficiency {p.decode_efficiency:g} "
                               f"(estimates use {p.bandwidth_gbps * p.decode_efficiency:.0f} GB/s)",
                          f"default: {OS_WORDS[p.default_os]}, {p.default_use} use"]), width, "", "  ")
    lines += wrap(f"Units: {UNITS_NOTE}.", width, "", "  ")
    if p.live is not None:
        lv = p.live
        facts = [f"OS sees {gib(lv.os_visible_ram_bytes)}", f"available {gib(lv.mem_available_bytes)}"]
        if lv.carveout_bytes is not None:
            facts.append(f"carve-out {fmt_vendor_size(lv.carveout_bytes)}")
        if lv.gpu_cap_bytes is not None:
            facts.append(f"GPU cap {gib(lv.gpu_cap_bytes)}" + (" (default)" if lv.gpu_cap_is_default else ""))
        if lv.kernel:
            facts.append(f"kernel {lv.kernel}")
        lines += wrap("Read from this machine: " + _facts(facts, ", "), width, "", "  ")
    if p.overrides:
        lines += wrap("Overrides: " + ", ".join(f"{k}={v}" for k, v in p.overrides.items()), width, "", "  ")
    if p.carveout is not None:
        c = p.carveout
        lines.append("")
        lines += wrap(_facts([f"BIOS carve-out options: {_options_text(p.carveout_options())}",
                              f"factory default {fmt_vendor_size(c.default_bytes)}"
                              + (" (estimated)" if "carveout.default_bytes" in p.estimated else "")]
                             + (["reboot to change"] if c.reboot_required else [])), width, "", "  ")
        lines += wrap(c.how_to_change, width, "  change: ", "    ")
        if c.options_note:
            lines += wrap(c.options_note, width, "  list: ", "    ")
    for os in OSES:
        if os in p.os:
            lines.append("")
            lines.extend(_os_block(p, os, width))
    if p.estimated:
        lines.append("")
        lines += wrap("Assumed, not measured: " + ", ".join(p.estimated), width, "", "  ")
    if p.notes:
        lines.append("")
        lines.append("Notes:")
        for n in p.notes:
            lines += wrap(n, width, "  - ", "    ")
    if p.sources:
        lines.append("")
        lines.append("Sources:")
        for src in p.sources:
            lines += wrap(f"{src.field}: {src.ref}" + (f" ({src.note})" if src.note else ""), width, "  ", "    ")
    return "\n".join(lines)


@devices_command.command("show")
@click.argument("device_id")
@click.option("--json", "as_json", is_flag=True, help="the profile and the derived pools as JSON")
@click.option("--root", type=click.Path(file_okay=False, exists=True), hidden=True,
              help="with 'auto': read a recorded machine tree instead of this machine")
@device_options(multiple=False, with_device=False)
def show_command(device_id: str, as_json: bool, root: str | None, **kw) -> None:
    """Explain one profile (an id, a .toml file, or auto): memory pools per OS and carve-out,
    caps and how to change them, OS reserves, what each backend reports, sources."""
    from ..devices import apply_overrides, load_profile

    if device_id.lower() == "auto" and root:
        profile = load_profile("auto", probe_root=root)
        over = overrides_from(kw)
        if any(v is not None for v in over.values()):
            profile = apply_overrides(profile, **over)
    else:
        kw["device"] = device_id
        profile = resolve_devices(kw)[0]
    if as_json:
        click.echo(json.dumps(_show_json(profile), indent=2, allow_nan=False))
    else:
        click.echo(show_text(profile))


COMMANDS = [devices_command]
