"""`memfit devices show ID`: one profile explained in words and tables (the machine, its memory
architecture, per OS the pools for every carve-out option, the GPU cap and how to change it, OS
reserves, what each backend reports, sources), or the profile with the derived pools as JSON.

The text fits the terminal (planner/report/layout.py): prose wraps with a hanging indent and the
tables drop their least important columns first, in the orders below (docs/cli.md lists them too).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..units import GIB, UNITS_NOTE, fmt_vendor_size
from .devices import OS_WORDS, facts, gib, options_text
from .layout import render_table, text_width, wrap

if TYPE_CHECKING:
    from ..device_schema import DeviceProfile, GpuCap, LiveConfig, Source

OSES = ("linux", "windows", "macos")  # the order OS blocks are shown in
USES = ("headless", "desktop", "daily")

# the carve-out table of a carve-out APU: the BIOS setting, what the GPU may hold in all (default
# and raised cap) and what the OS keeps, before the parts those are sums of; the per-backend
# "reports" columns go first (the backend table below shows them for the setting in effect), the
# non-default backends before the default one.
CARVE_DROP_FIXED = ["cap raised", "shared cap", "OS sees"]
# the backend table: its prose column wraps (to no less than 30 columns); no column is dropped
BACKEND_WRAP = {"what it reports": 30}
ARCH_SENTENCES = {
    "carveout": ("Carve-out APU: the BIOS reserves a UMA frame buffer that only the GPU can use (the OS loses it; "
                 "reboot to change), and the GPU may also map a capped window of the remaining RAM "
                 "(Windows: shared GPU memory; Linux: GTT)."),
    "unified": ("Unified memory: one pool for CPU and GPU; the GPU may use it up to a limit per OS "
                "(below: macOS wired limit, the driver's shared-memory share, or what Linux reports as available)."),
    "unified_cpu_only": "One memory pool used by the CPU backend only (no GPU memory model known).",
    "discrete": ("Discrete GPU: model layers go to the card's VRAM; layers or experts kept on the CPU use system RAM "
                 "at system-RAM speed."),
}


# --------------------------------------------------------------------------- derived pools (JSON)

def _pool(p: DeviceProfile, os: str, c: int | None, raised: bool) -> dict[str, Any]:
    """What the OS and the GPU get at one carve-out option (None: a machine without one)."""
    visible = p.os_visible_ram(c)
    cap_max = p.max_gpu_cap_bytes(os, c) if raised else None  # type: ignore[arg-type]
    total_max = None
    if cap_max is not None:
        total_max = (c or 0) + cap_max if p.memory_architecture == "carveout" else cap_max
    reserve = p.reserve(os, p.default_use)  # type: ignore[arg-type]
    return {
        "carveout_bytes": c, "os_visible_bytes": visible, "gpu_cap_bytes": p.gpu_cap_bytes(os, c),  # type: ignore[arg-type]
        "gpu_cap_max_bytes": cap_max, "gpu_total_bytes": p.gpu_total_bytes(os, c),  # type: ignore[arg-type]
        "gpu_total_max_bytes": total_max, "reserve_bytes": reserve, "os_left_after_reserve_bytes": visible - reserve,
        "reported": {b.label: p.reported_bytes(b, os, c) for b in p.os_info(os).backends},  # type: ignore[arg-type]
    }


def pools(p: DeviceProfile, os: str) -> list[dict[str, Any]]:
    """One row per carve-out option (or one row) with what the OS and the GPU get."""
    info = p.os_info(os)  # type: ignore[arg-type]
    raised = bool(info.gpu_cap and info.gpu_cap.max_fraction)
    carves: list[int | None] = list(p.carveout_options()) if p.carveout else [None]
    return [_pool(p, os, c, raised) for c in carves]


def _cap_setting_for_max(p: DeviceProfile, os: str) -> str | None:
    cap = p.os[os].gpu_cap  # type: ignore[index]
    if cap is None or not cap.knob:
        return None
    return p.cap_setting(os, p.max_gpu_cap_bytes(os) or 0)  # type: ignore[arg-type]


def show_json(p: DeviceProfile) -> dict[str, Any]:
    """The profile and, per OS, its derived pools and the cap setting for the safe maximum."""
    data = p.model_dump(mode="json")
    data["derived"] = {os: {"pools": pools(p, os), "cap_setting_for_max": _cap_setting_for_max(p, os)} for os in p.os}
    return data


def render_show_json(p: DeviceProfile) -> str:
    return json.dumps(show_json(p), indent=2, allow_nan=False)


# --------------------------------------------------------------------------- per OS

def _arch_sentence(p: DeviceProfile) -> str:
    if p.memory_architecture == "unified" and not any(p.os[o].gpu_cap for o in p.os):
        return ARCH_SENTENCES["unified_cpu_only"]
    return ARCH_SENTENCES[p.memory_architecture]


def _carveout_row(p: DeviceProfile, r: dict[str, Any], raised: bool, gpu_labels: list[str]) -> list[str]:
    row = [fmt_vendor_size(r["carveout_bytes"]), gib(r["os_visible_bytes"]), gib(r["gpu_cap_bytes"]),
           gib(r["gpu_total_bytes"])]
    if raised:
        row += [gib(r["gpu_cap_max_bytes"]), gib(r["gpu_total_max_bytes"])]
    left = r["os_left_after_reserve_bytes"]
    row += [gib(left) if left >= 0 else f"short {gib(-left)}"] + [gib(r["reported"][label]) for label in gpu_labels]
    if p.carveout and r["carveout_bytes"] == p.current_carveout():
        row[0] += " *"
    return row


def _carveout_table(p: DeviceProfile, os: str, width: int) -> list[str]:
    """Per BIOS carve-out option: what the OS sees, the GPU's shared cap and total (default and
    raised), what the OS keeps after its reserve, what each backend reports."""
    info = p.os[os]  # type: ignore[index]
    raised = bool(info.gpu_cap and info.gpu_cap.max_fraction)
    gpu_labels = [b.label for b in info.backends if b.name != "cpu"]
    report_heads = [f"{label}\nreports" for label in gpu_labels]
    head = _carveout_head(p, raised, report_heads)
    table = [_carveout_row(p, r, raised, gpu_labels) for r in pools(p, os)]
    lines = render_table(table, head, width, drop_order=list(reversed(report_heads)) + CARVE_DROP_FIXED)
    return lines + wrap(f"* = {'in effect' if p.live else 'factory default'}; carve-out in GB as the BIOS names it, "
                        "the rest in GiB", width)


def _carveout_head(p: DeviceProfile, raised: bool, report_heads: list[str]) -> list[str]:
    head = ["carve-out", "OS sees", "shared cap", "GPU total"] + (["cap raised", "GPU total\nraised"] if raised else [])
    return head + [f"RAM left after\n{p.default_use} reserve"] + report_heads


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


def _cap_example(p: DeviceProfile, os: str, width: int) -> list[str]:
    """The setting for the safe maximum at the current carve-out (never a cap of 0: a tiny --ram)."""
    target = ((p.max_gpu_cap_bytes(os) or 0) // GIB) * GIB  # type: ignore[arg-type]
    if target <= 0:
        return []
    where = ", at the current carve-out" if p.carveout is not None else ""
    return wrap(f"{p.cap_setting(os, target)}  ({gib(target)}{where})", width, "  e.g. ", "    ")  # type: ignore[arg-type]


def _window_speed_lines(p: DeviceProfile, os: str, width: int) -> list[str]:
    """A carve-out APU's shared window: how much slower each GPU backend decodes from it."""
    from ..memory_classes import shared_window

    info = p.os[os]  # type: ignore[index]
    lines: list[str] = []
    for name in dict.fromkeys(b.name for b in info.backends if b.name != "cpu"):
        w = shared_window(os, name)  # type: ignore[arg-type]
        slow = info.gpu_cap.shared_slowdown or w.slowdown  # type: ignore[union-attr]
        lines += wrap(f"{w.label} on {name}: " + _slowdown_words(slow), width, "  ", "    ")
    return lines


def _slowdown_words(slow: float) -> str:
    return f"decodes {slow:g}x slower than the carve-out" if slow > 1 else "no measured speed cost"


def _cap_lines(p: DeviceProfile, os: str, width: int) -> list[str]:
    """The GPU cap: its default, how to change it, an example setting, the shared window's speed."""
    cap = p.os[os].gpu_cap  # type: ignore[index]
    if cap is None:
        return []
    lines = wrap(f"GPU cap: {_cap_words(cap)}", width, "", "  ")
    if cap.how_to_change:
        lines += wrap(cap.how_to_change, width, "  change: ", "    ")
    if cap.knob and cap.max_fraction:
        lines += _cap_example(p, os, width)
    if p.memory_architecture == "carveout":
        lines += _window_speed_lines(p, os, width)
    if cap.note:
        lines += wrap(cap.note, width, "  note: ", "    ")
    return lines


def _cap_words(cap: GpuCap) -> str:
    """The GPU cap's default share, its setting here, and how far it may be raised."""
    frac = f"{cap.default_fraction:.0%} of the RAM the OS sees by default"
    if cap.setting_bytes:
        frac += f"; set to {gib(cap.setting_bytes)} here"
    return frac + (f", safe maximum {cap.max_fraction:.0%}" if cap.max_fraction else " (not tunable)")


def _reserve_table(p: DeviceProfile, os: str, width: int) -> list[str]:
    """What the OS and apps keep per use (and the GPU memory the desktop holds, but on unified)."""
    info = p.os[os]  # type: ignore[index]
    gpu_kept = p.memory_architecture != "unified"
    rows = [[u, gib(info.reserve_bytes[u])] + ([gib(p.gpu_reserve(os, u))] if gpu_kept else [])  # type: ignore[arg-type]
            for u in USES]
    return render_table(rows, ["use", "OS + apps keep"] + (["GPU memory the\ndesktop holds"] if gpu_kept else []), width)


def _backend_table(p: DeviceProfile, os: str, width: int) -> list[str]:
    info = p.os[os]  # type: ignore[index]
    rows = [[b.label, gib(p.reported_bytes(b, os)), gib(b.max_alloc_bytes) if b.max_alloc_bytes else "-",  # type: ignore[arg-type]
             gib(b.overhead_bytes) if b.overhead_bytes else "-", b.reports] for b in info.backends]
    return render_table(rows, ["backend", "reports\nnow", "max\nbuffer", "runtime\noverhead", "what it reports"],
                        width, wrap_min=BACKEND_WRAP)


def _os_block(p: DeviceProfile, os: str, width: int) -> list[str]:
    title = f"{OS_WORDS[os]}{' (default)' if os == p.default_os else ''}"
    lines = [title, "-" * min(40, width)]
    if p.memory_architecture == "carveout":
        lines += _carveout_table(p, os, width)
    else:
        lines += wrap(_pool_sentence(p, os), width, "", "  ")
    lines += _cap_lines(p, os, width) + [""] + _reserve_table(p, os, width) + [""] + _backend_table(p, os, width)
    for n in p.os[os].notes:  # type: ignore[index]
        lines += wrap(n, width, "  - ", "    ")
    return lines


# --------------------------------------------------------------------------- the machine

def _hanging(text: str, width: int) -> list[str]:
    return wrap(text, width, "", "  ")


def _machine_lines(p: DeviceProfile, width: int) -> list[str]:
    """Who the machine is, its memory architecture, RAM and bandwidth, its defaults."""
    lines = _hanging(f"{p.id}: {p.name}", width)
    if p.based_on and p.based_on != p.id:
        lines += _hanging(f"based on: {p.based_on}", width)
    lines += wrap(facts([x for x in (p.chip, p.gpu_name, p.form_factor, p.power_w) if x], " | "), width)
    lines += [""] + wrap(_arch_sentence(p), width)
    lines += _hanging(facts([_ram_words(p), f"peak bandwidth {p.bandwidth_gbps:g} GB/s, decode efficiency {p.decode_efficiency:g} "
                                  f"(estimates use {p.bandwidth_gbps * p.decode_efficiency:.0f} GB/s)",
                             f"default: {OS_WORDS[p.default_os]}, {p.default_use} use"]), width)
    return lines + _hanging(f"Units: {UNITS_NOTE}.", width)


def _ram_words(p: DeviceProfile) -> str:
    ram = f"RAM {fmt_vendor_size(p.ram_bytes)} as sold"
    if p.firmware_reserved_bytes:
        ram += f" ({gib(p.firmware_reserved_bytes)} never reaches the OS)"
    return ram


def _live_lines(p: DeviceProfile, width: int) -> list[str]:
    """What `--device auto` read from this machine."""
    lv = p.live
    if lv is None:
        return []
    read = [f"OS sees {gib(lv.os_visible_ram_bytes)}", f"available {gib(lv.mem_available_bytes)}",
            f"carve-out {fmt_vendor_size(lv.carveout_bytes)}" if lv.carveout_bytes is not None else "",
            _live_cap_words(lv), f"kernel {lv.kernel}" if lv.kernel else ""]
    return _hanging("Read from this machine: " + facts(read, ", "), width)


def _live_cap_words(lv: LiveConfig) -> str:
    if lv.gpu_cap_bytes is None:
        return ""
    return f"GPU cap {gib(lv.gpu_cap_bytes)}" + (" (default)" if lv.gpu_cap_is_default else "")


def _carveout_lines(p: DeviceProfile, width: int) -> list[str]:
    """The BIOS carve-out menu, its factory default and how to change it."""
    c = p.carveout
    if c is None:
        return []
    default = f"factory default {fmt_vendor_size(c.default_bytes)}" + (
        " (estimated)" if "carveout.default_bytes" in p.estimated else "")
    items = [f"BIOS carve-out options: {options_text(p.carveout_options())}", default]
    lines = [""] + _hanging(facts(items + (["reboot to change"] if c.reboot_required else [])), width)
    lines += wrap(c.how_to_change, width, "  change: ", "    ")
    return lines + (wrap(c.options_note, width, "  list: ", "    ") if c.options_note else [])


def _tail_lines(p: DeviceProfile, width: int) -> list[str]:
    """Assumptions, notes and sources."""
    lines = ([""] + _hanging("Assumed, not measured: " + ", ".join(p.estimated), width)) if p.estimated else []
    if p.notes:
        lines += ["", "Notes:"] + [x for n in p.notes for x in wrap(n, width, "  - ", "    ")]
    if p.sources:
        lines += ["", "Sources:"] + [x for src in p.sources for x in wrap(_source_words(src), width, "  ", "    ")]
    return lines


def _source_words(src: Source) -> str:
    return f"{src.field}: {src.ref}" + (f" ({src.note})" if src.note else "")


def show_text(p: DeviceProfile, width: int | None = None) -> str:
    """One profile in words and tables, within `width` (the terminal's by default)."""
    width = width or text_width()
    lines = _machine_lines(p, width) + _live_lines(p, width)
    if p.overrides:
        lines += _hanging("Overrides: " + ", ".join(f"{k}={v}" for k, v in p.overrides.items()), width)
    lines += _carveout_lines(p, width)
    for os in (o for o in OSES if o in p.os):
        lines += [""] + _os_block(p, os, width)
    return "\n".join(lines + _tail_lines(p, width))
