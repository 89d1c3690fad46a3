"""llama.cpp's layer -> device assignment for a tensor split (-ts), as llama-model.cpp load_tensors
does it: the split fractions are summed into cumulative float32 fractions; layer il goes to the
first device whose cumulative fraction is above il / (n_layer + 1) (std::upper_bound), and the
output layer is slot n_layer. The input embedding always stays on the host (CPU) buffer."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from ...errors import InputError


def _f32(x: float) -> float:
    """Round to float32, as llama.cpp's `std::vector<float> splits` holds them."""
    return float(struct.unpack("f", struct.pack("f", x))[0])


def cumulative_fractions(ts: Sequence[float]) -> list[float]:
    """-ts 3,1 -> [0.75, 1.0] (float32 arithmetic, as llama.cpp computes them)."""
    if not ts or any(t < 0 for t in ts) or sum(ts) <= 0:
        raise InputError(f"tensor split {','.join(f'{t:g}' for t in ts)} is not a split",
                         hint="give one non-negative ratio per device, at least one above 0")
    sums: list[float] = []
    total = 0.0
    for t in ts:
        total = _f32(total + _f32(t))
        sums.append(total)
    return [_f32(s / total) for s in sums]


def layer_devices(n_layer: int, ts: Sequence[float]) -> list[int]:
    """Device index of each of the n_layer + 1 slots (the last one: the output layer), full offload
    (-ngl above n_layer) with split mode layer."""
    fractions = cumulative_fractions(ts)
    slots = n_layer + 1
    out = []
    for il in range(slots):
        x = _f32(il / slots)
        out.append(min(next((d for d, f in enumerate(fractions) if f > x), len(ts) - 1), len(ts) - 1))
    return out


def layers_per_device(n_layer: int, ts: Sequence[float]) -> list[int]:
    """How many of the n_layer + 1 slots each device holds."""
    counts = [0] * len(ts)
    for d in layer_devices(n_layer, ts):
        counts[d] += 1
    return counts
