"""What the memory looks like with the model loaded: one bar per physical memory (a card's VRAM and
the system RAM; or the one RAM an APU or a unified machine has), drawn by the reports.

The safety margins the plan keeps free are drawn as their own segment, so "free" is what is left
beyond them and beyond the OS reserve: the same number as the plan's OS spare (and GPU spare).
"""

from __future__ import annotations

from typing import Callable

from .device_schema import DeviceProfile
from .fit_types import FitResult
from .memory_kinds import kind_named
from .plan_types import BarSegment, MemoryBar
from .units import fmt_bios_size, fmt_bytes


def _gpu_segments(r: FitResult) -> list[BarSegment]:
    gpu = r.gpu
    return [
        BarSegment(kind="weights", label="weights", bytes=gpu.weights_bytes),
        BarSegment(kind="mmproj", label="mmproj", bytes=gpu.mmproj_bytes),
        BarSegment(kind="kv", label="KV", bytes=gpu.kv_bytes + gpu.recurrent_bytes),
        BarSegment(kind="compute", label="compute", bytes=gpu.compute_bytes + gpu.output_bytes + r.overhead_bytes),
    ]


def _card_bars(r: FitResult, profile: DeviceProfile) -> list[MemoryBar]:
    """A discrete card: its VRAM (the desktop's share first), and the system RAM of the CPU side."""
    vram = int(profile.vram_bytes or 0)
    room = max(0, r.gpu_capacity_bytes - r.gpu_need_bytes)
    vram_bar = MemoryBar(title=f"VRAM {fmt_bytes(vram)}", total_bytes=vram, segments=[
        BarSegment(kind="reserve", label="desktop", bytes=max(0, vram - r.gpu_capacity_bytes)),
        *_gpu_segments(r),
        BarSegment(kind="safety", label="safety", bytes=min(room, r.safety_bytes)),
        BarSegment(kind="free", label="free", bytes=max(0, room - r.safety_bytes)),
    ])
    host = r.host_need_bytes  # CPU-side buffers + host runtime overhead
    h_room = max(0, r.ram_bytes - r.reserve_bytes - host)
    ram_bar = MemoryBar(title=f"RAM {fmt_bytes(r.ram_bytes)}", total_bytes=r.ram_bytes, segments=[
        BarSegment(kind="reserve", label="OS reserve", bytes=r.reserve_bytes),
        BarSegment(kind="host", label="CPU side", bytes=host),
        BarSegment(kind="safety", label="safety", bytes=min(h_room, r.host_safety_bytes)),
        BarSegment(kind="free", label="free", bytes=max(0, h_room - r.host_safety_bytes)),
    ])
    return [vram_bar, ram_bar]


def _ram_segments(r: FitResult) -> list[BarSegment]:
    """The one RAM in order: the GPU side (filling the carve-out first), the CPU side, the OS reserve,
    and what firmware holds back (DGX Spark: ~8.3 GiB CUDA and Linux never see)."""
    segs = [*_gpu_segments(r), BarSegment(kind="safety", label="safety", bytes=r.safety_bytes), *_carveout_unused(r),
            BarSegment(kind="host", label="CPU side", bytes=r.host_need_bytes),
            BarSegment(kind="safety", label="safety", bytes=r.host_safety_bytes),
            BarSegment(kind="reserve", label="OS reserve", bytes=r.reserve_bytes), *_firmware(r)]
    if sum(s.bytes for s in segs) > r.ram_bytes:  # cannot happen for a plan that fits; keep the bar drawable anyway
        segs = [s.model_copy(update={"bytes": 0}) if s.kind == "safety" else s for s in segs]
    return segs


def _carveout_unused(r: FitResult) -> list[BarSegment]:
    if not r.carveout_bytes:
        return []
    unused = max(0, r.carveout_bytes - r.gpu_need_bytes - r.safety_bytes)
    return [BarSegment(kind="carveout_free", label="carve-out unused", bytes=unused)]


def _firmware(r: FitResult) -> list[BarSegment]:
    """What neither the carve-out nor the OS sees."""
    firmware = max(0, r.ram_bytes - (r.carveout_bytes or 0) - r.os_visible_bytes)
    return [BarSegment(kind="firmware", label="firmware", bytes=firmware)] if firmware else []


def _in_use_now(r: FitResult, profile: DeviceProfile, free: int) -> int:
    """A probed machine with one pool: other programs hold memory now, and the plan counts only what
    is available."""
    live = profile.live
    if not kind_named(r.memory_architecture).one_pool or live is None or live.mem_available_bytes is None:
        return 0
    return max(0, free - max(0, r.os_free_bytes))


def _ram_bar(r: FitResult, profile: DeviceProfile) -> list[MemoryBar]:
    total = r.ram_bytes
    segs = _ram_segments(r)
    free = max(0, total - sum(s.bytes for s in segs))
    busy = _in_use_now(r, profile, free)
    if busy:
        segs.append(BarSegment(kind="reserve", label="in use now", bytes=busy))
    segs.append(BarSegment(kind="free", label="free", bytes=free - busy))
    title = f"RAM {fmt_bytes(total)}"
    marker = r.carveout_bytes or None
    if marker:
        title += f" (carve-out {fmt_bios_size(marker)} | OS {fmt_bios_size(r.os_visible_bytes)})"
    return [MemoryBar(title=title, total_bytes=total, segments=segs, marker_bytes=marker,
                      marker_label="end of carve-out" if marker else "")]


BARS: dict[str, Callable[[FitResult, DeviceProfile], list[MemoryBar]]] = {
    "discrete": _card_bars,
    "carveout": _ram_bar,
    "unified": _ram_bar,
}


def memory_bars(r: FitResult, profile: DeviceProfile) -> list[MemoryBar]:
    return BARS[r.memory_architecture](r, profile)
