"""Read the pixels of a PNG screenshot without an imaging library (numpy comes with gguf): 8-bit
RGB or RGBA, not interlaced, as Chromium writes them. Enough to tell whether a chart was drawn
where the page says it is."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np


@dataclass
class Image:
    width: int
    height: int
    channels: int
    pixels: "np.ndarray"  # (height, width, 3) RGB

    def count(self, color: tuple[int, int, int], box: tuple[int, int, int, int], tol: int = 6) -> int:
        """Pixels within `tol` of `color` (each channel) inside box = (x0, y0, x1, y1)."""
        x0, y0, x1, y1 = (max(0, box[0]), max(0, box[1]), min(self.width, box[2]), min(self.height, box[3]))
        part = self.pixels[y0:y1, x0:x1].astype(np.int16)
        near = np.abs(part - np.array(color, dtype=np.int16)) <= tol
        return int(near.all(axis=2).sum())

    def colors(self, box: tuple[int, int, int, int]) -> int:
        """How many distinct colours the box holds (a blank or flat area has one or two)."""
        x0, y0, x1, y1 = box
        part = self.pixels[y0:y1, x0:x1].reshape(-1, 3)
        return len(np.unique(part, axis=0))


def _unfilter(f: int, line: bytes, prev: "np.ndarray", bpp: int) -> "np.ndarray":
    """One scanline back to pixels: None, Sub and Up vectorised; Average and Paeth depend on the
    pixel to the left, so they run byte by byte (Chromium uses them for a minority of rows)."""
    cur = np.frombuffer(line, dtype=np.uint8).copy()
    if f == 0:
        return cur
    if f == 2:
        return cur + prev
    if f == 1:
        return np.cumsum(cur.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
    out = bytearray(line)
    up = prev.tobytes()
    for i in range(len(out)):
        a = out[i - bpp] if i >= bpp else 0
        b = up[i]
        if f == 3:
            out[i] = (out[i] + ((a + b) >> 1)) & 0xFF
        else:
            c = up[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            out[i] = (out[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    return np.frombuffer(bytes(out), dtype=np.uint8)


def read_png(data: bytes, max_rows: int | None = None) -> Image:
    """Decode a PNG; `max_rows` stops after that many rows (rows depend on the ones above)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, ctype, _, _, interlace = header
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {ctype}, interlace {interlace}")
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    n = height if max_rows is None else min(height, max_rows)
    rows = np.zeros((n, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(n):
        off = y * (stride + 1)
        prev = rows[y] = _unfilter(raw[off], raw[off + 1:off + 1 + stride], prev, bpp)
    return Image(width=width, height=n, channels=bpp, pixels=rows.reshape(n, width, bpp)[:, :, :3])
