"""`memfit devices` (list profiles) and `memfit devices show ID` (explain one in words and tables)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from ..units import GIB
from .device_options import device_options, overrides_from, resolve_devices

if TYPE_CHECKING:
    from ..device_schema import DeviceProfile
    from ..profile_files import Listing

# `memfit devices` must start in a few tens of milliseconds: the list reads the profiles' TOML
# (planner.profile_files) and prints its own plain table; the schema (pydantic) and tabulate load
# only for `devices show`.
OSES = ("linux", "windows", "macos")
USES = ("headless", "desktop", "daily")

ARCH_WORDS = {
    "carveout": "carve-out APU",
    "unified": "unified",
    "discrete": "discrete GPU",
}
OS_WORDS = {"linux": "Linux", "windows": "Windows", "macos": "macOS"}


def gib(n: int | float | None, digits: int = 1) -> str:
    if n is None:
        return "-"
    v = n / GIB
    if v < 1:
        return f"{n / 1024**2:.0f} MiB"
    return f"{v:.{digits}f}".rstrip("0").rstrip(".") + " GiB"


def _options_text(opts: list[int]) -> str:
    if not opts:
        return "-"
    return ",".join(f"{o / GIB:g}" for o in opts) + " GiB"


def plain_table(rows: list[list[str]], headers: list[str]) -> str:
    """Left-aligned columns under a dashed rule, two spaces apart (tabulate's "simple" look for
    text cells, without importing tabulate on the start path)."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


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


@click.group("devices", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable list")
@click.pass_context
def devices_command(ctx: click.Context, as_json: bool) -> None:
    """List device profiles (shipped, plus yours in ~/.config/memfit/profiles/).

    \b
    memfit devices                 the table
    memfit devices show ID         one profile explained: pools per OS, caps, reserves, backends, sources
    memfit devices show auto       this machine
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
    table = [[r["id"] + ("*" if r["origin"] == "user" else ""), r["name"],
              ARCH_WORDS.get(r["memory_architecture"], r["memory_architecture"]),
              gib(r["ram_bytes"], 0) + (f" + {gib(r['vram_bytes'], 0)} VRAM" if r["vram_bytes"] else ""),
              _options_text(r["carveout_options_bytes"]), OS_WORDS.get(r["default_os"], r["default_os"]),
              f"{r['bandwidth_gbps']:g} GB/s"]
             for r in rows]
    click.echo(plain_table(table, ["id", "name", "memory", "RAM", "carve-out options", "default OS", "bandwidth"]))
    if any(r["origin"] == "user" for r in rows):
        click.echo("\n* your profile (overrides a shipped one with the same id)")
    click.echo("\nmemfit devices show ID explains one; --device auto reads this machine.")


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


def _os_block(p: DeviceProfile, os: str) -> list[str]:
    from tabulate import tabulate

    info = p.os[os]  # type: ignore[index]
    lines = [f"{OS_WORDS[os]}{' (default)' if os == p.default_os else ''}", "-" * 40]
    rows = pools(p, os)
    use = p.default_use
    backends = info.backends
    if p.memory_architecture == "carveout":
        head = ["carve-out", "OS sees", "shared cap", "GPU total"]
        if info.gpu_cap and info.gpu_cap.max_fraction:
            head += ["cap raised", "GPU total raised"]
        head += [f"RAM left after {use} reserve"] + [f"{b.label} reports" for b in backends if b.name != "cpu"]
        table = []
        for r in rows:
            row = [gib(r["carveout_bytes"]), gib(r["os_visible_bytes"]), gib(r["gpu_cap_bytes"]), gib(r["gpu_total_bytes"])]
            if info.gpu_cap and info.gpu_cap.max_fraction:
                row += [gib(r["gpu_cap_max_bytes"]), gib(r["gpu_total_max_bytes"])]
            left = r["os_left_after_reserve_bytes"]
            row += [gib(left) if left >= 0 else f"short {gib(-left)}"]
            row += [gib(r["reported"][b.label]) for b in backends if b.name != "cpu"]
            if p.carveout and r["carveout_bytes"] == p.current_carveout():
                row[0] += " *"
            table.append(row)
        lines.append(tabulate(table, headers=head, tablefmt="simple"))
        lines.append(f"* = {'in effect' if p.live else 'factory default'}")
    elif p.memory_architecture == "unified":
        r = rows[0]
        lines.append(f"OS sees {gib(r['os_visible_bytes'])}; GPU limit {gib(r['gpu_cap_bytes'])}"
                     + (f" by default, up to {gib(r['gpu_cap_max_bytes'])} raised" if r["gpu_cap_max_bytes"] else ""))
    else:
        r = rows[0]
        lines.append(f"VRAM {gib(p.vram_bytes)} ({gib(p.vram_reserve(os, use))} kept by the desktop, {use} use); "
                     f"host RAM {gib(p.ram_bytes)}"
                     + (f" at {p.host_bandwidth_gbps:g} GB/s" if p.host_bandwidth_gbps else "")
                     + f", {gib(r['os_left_after_reserve_bytes'])} of it left after the OS reserve")
    cap = info.gpu_cap
    if cap is not None:
        frac = f"{cap.default_fraction:.0%} of the RAM the OS sees by default"
        if cap.setting_bytes:
            frac += f"; set to {gib(cap.setting_bytes)} here"
        lines.append(f"GPU cap: {frac}" + (f", safe maximum {cap.max_fraction:.0%}" if cap.max_fraction else
                                          " (not tunable)"))
        if cap.how_to_change:
            lines.append(f"  change: {cap.how_to_change}")
        if cap.knob and cap.max_fraction:
            target = ((p.max_gpu_cap_bytes(os) or 0) // GIB) * GIB  # type: ignore[arg-type]
            where = ", at the current carve-out" if p.carveout is not None else ""
            if target > 0:  # never suggest a cap of 0 (a tiny --ram override)
                lines.append(f"  e.g. {p.cap_setting(os, target)}  ({gib(target)}{where})")  # type: ignore[arg-type]
        if p.memory_architecture == "carveout":
            from ..memory_classes import shared_window

            seen = []
            for b in backends:
                if b.name == "cpu" or b.name in seen:
                    continue
                seen.append(b.name)
                w = shared_window(os, b.name)  # type: ignore[arg-type]
                slow = cap.shared_slowdown or w.slowdown
                lines.append(f"  {w.label} on {b.name}: " + (f"decodes {slow:g}x slower than the carve-out"
                                                              if slow > 1 else "no measured speed cost"))
        if cap.note:
            lines.append(f"  note: {cap.note}")
    gpu_kept = p.memory_architecture != "unified"
    res = [[u, gib(info.reserve_bytes[u])] + ([gib(p.gpu_reserve(os, u))] if gpu_kept else [])  # type: ignore[arg-type]
           for u in USES]
    lines.append("")
    lines.append(tabulate(res, headers=["use", "OS + apps keep"] + (["GPU memory the desktop holds"] if gpu_kept else []),
                          tablefmt="simple"))
    lines.append("")
    bt = [[b.label, gib(p.reported_bytes(b, os)), gib(b.max_alloc_bytes) if b.max_alloc_bytes else "-",  # type: ignore[arg-type]
           gib(b.overhead_bytes) if b.overhead_bytes else "-", b.reports] for b in backends]
    lines.append(tabulate(bt, headers=["backend", "reports now", "max buffer", "runtime overhead", "what it reports"],
                          tablefmt="simple", maxcolwidths=[None, None, None, None, 70]))
    for n in info.notes:
        lines.append(f"  - {n}")
    return lines


def show_text(p: DeviceProfile) -> str:
    lines = [f"{p.id}: {p.name}"]
    if p.based_on and p.based_on != p.id:
        lines.append(f"based on: {p.based_on}")
    facts = [x for x in (p.chip, p.gpu_name, p.form_factor, p.power_w) if x]
    lines.append(" | ".join(facts))
    lines.append("")
    lines.append(_arch_sentence(p))
    ram = f"RAM {gib(p.ram_bytes)}"
    if p.firmware_reserved_bytes:
        ram += f" ({gib(p.firmware_reserved_bytes)} never reaches the OS)"
    lines.append(f"{ram}; peak bandwidth {p.bandwidth_gbps:g} GB/s, decode efficiency {p.decode_efficiency:g} "
                 f"(estimates use {p.bandwidth_gbps * p.decode_efficiency:.0f} GB/s); default: "
                 f"{OS_WORDS[p.default_os]}, {p.default_use} use")
    if p.live is not None:
        lv = p.live
        lines.append(f"Read from this machine: OS sees {gib(lv.os_visible_ram_bytes)}, available "
                     f"{gib(lv.mem_available_bytes)}"
                     + (f", carve-out {gib(lv.carveout_bytes)}" if lv.carveout_bytes is not None else "")
                     + (f", GPU cap {gib(lv.gpu_cap_bytes)}" + (" (default)" if lv.gpu_cap_is_default else "")
                        if lv.gpu_cap_bytes is not None else "")
                     + (f", kernel {lv.kernel}" if lv.kernel else ""))
    if p.overrides:
        lines.append("Overrides: " + ", ".join(f"{k}={v}" for k, v in p.overrides.items()))
    if p.carveout is not None:
        c = p.carveout
        lines.append("")
        lines.append(f"BIOS carve-out options: {_options_text(p.carveout_options())}; factory default {gib(c.default_bytes)}"
                     + (" (estimated)" if "carveout.default_bytes" in p.estimated else "")
                     + ("; reboot to change" if c.reboot_required else ""))
        lines.append(f"  change: {c.how_to_change}")
        if c.options_note:
            lines.append(f"  list: {c.options_note}")
    for os in OSES:
        if os in p.os:
            lines.append("")
            lines.extend(_os_block(p, os))
    if p.estimated:
        lines.append("")
        lines.append("Assumed, not measured: " + ", ".join(p.estimated))
    if p.notes:
        lines.append("")
        lines.append("Notes:")
        lines.extend(f"  - {n}" for n in p.notes)
    if p.sources:
        lines.append("")
        lines.append("Sources:")
        for s in p.sources:
            lines.append(f"  {s.field}: {s.ref}" + (f" ({s.note})" if s.note else ""))
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
