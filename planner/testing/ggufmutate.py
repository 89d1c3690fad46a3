"""Hostile GGUF headers for the reader's corruption tests and fuzzers.

`scan_layout(data)` walks a *valid* GGUF header (written by planner/testing/ggufgen.py) and records where
every field sits: counts, string lengths, value types, tensor dims/types/offsets, and the
section boundaries. The mutators use that map to make the damage a real attacker or a broken
download would make: truncation at a boundary, huge counts and lengths, wrong types, duplicate
keys and tensor names, overlapping or out-of-range offsets, dimensions whose product overflows
64 bits, plus plain bit flips, insertions and deletions. `SparseSource` serves a header followed
by a hole of zeros up to a claimed file size, like the sparse files ggufgen writes.

This is a second, deliberately simple parser: it trusts its input (only ever a valid file).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
_SCALAR_SIZE = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9


@dataclass
class Layout:
    """Offsets of the fields of one valid header."""

    header_end: int = 0
    n_kv: int = 0
    n_tensors: int = 0
    counts: list[int] = field(default_factory=list)  # u64: n_tensors, n_kv, array counts
    lengths: list[int] = field(default_factory=list)  # u64 string lengths (keys, values, names)
    vtypes: list[int] = field(default_factory=list)  # u32 value / array element types
    kv_spans: list[tuple[int, int, str]] = field(default_factory=list)  # start, end, key
    ti_spans: list[tuple[int, int, str]] = field(default_factory=list)
    ndims: list[int] = field(default_factory=list)  # u32
    dims: list[list[int]] = field(default_factory=list)  # u64 offsets per tensor
    ggml_types: list[int] = field(default_factory=list)  # u32
    offsets: list[int] = field(default_factory=list)  # u64 tensor data offsets
    boundaries: list[int] = field(default_factory=list)  # ends of every field

    def sections(self) -> list[int]:
        """Offsets where one section or entry ends and the next begins."""
        cuts = {4, 8, 16, 24, self.header_end}
        for s, e, _ in self.kv_spans + self.ti_spans:
            cuts.update((s, e))
        return sorted(cuts)


def scan_layout(data: bytes, max_strings: int = 4096) -> Layout:
    """Map a valid header. Arrays of more than `max_strings` strings record only their first
    lengths (a 150k vocabulary would drown the field lists)."""
    lay = Layout()
    b = lay.boundaries
    lay.n_tensors, lay.n_kv = U64.unpack_from(data, 8)[0], U64.unpack_from(data, 16)[0]
    lay.counts += [8, 16]
    b += [4, 8, 16, 24]
    p = 24

    def string(p: int, record: bool = True) -> tuple[int, str]:
        n = U64.unpack_from(data, p)[0]
        if record:
            lay.lengths.append(p)
        b.append(p + 8)
        b.append(p + 8 + n)
        return p + 8 + n, data[p + 8 : p + 8 + n].decode("utf-8", "replace")

    def value(p: int, vtype: int, record: bool = True) -> int:
        if vtype in _SCALAR_SIZE:
            return p + _SCALAR_SIZE[vtype]
        if vtype == STRING:
            return string(p, record)[0]
        etype, count = U32.unpack_from(data, p)[0], U64.unpack_from(data, p + 4)[0]
        lay.vtypes.append(p)
        lay.counts.append(p + 4)
        b.append(p + 12)
        p += 12
        if etype in _SCALAR_SIZE:
            return p + count * _SCALAR_SIZE[etype]
        for i in range(count):
            p = value(p, etype, record and i < max_strings)
        return p

    for _ in range(lay.n_kv):
        start = p
        p, key = string(p)
        lay.vtypes.append(p)
        vtype = U32.unpack_from(data, p)[0]
        p = value(p + 4, vtype)
        b.append(p)
        lay.kv_spans.append((start, p, key))
    for _ in range(lay.n_tensors):
        start = p
        p, name = string(p)
        nd = U32.unpack_from(data, p)[0]
        lay.ndims.append(p)
        p += 4
        lay.dims.append([p + 8 * j for j in range(nd)])
        p += 8 * nd
        lay.ggml_types.append(p)
        lay.offsets.append(p + 4)
        p += 12
        b.append(p)
        lay.ti_spans.append((start, p, name))
    lay.header_end = p
    return lay


class SparseSource:
    """A virtual file: `prefix` bytes, then zeros up to `size` (a hole, as in ggufgen's files).
    `report_size=False` hides the size (a server without Content-Length); `read_ahead` picks
    the reader's policy (0: exact local reads, None: remote read-ahead)."""

    def __init__(self, prefix: bytes, size: int | None = None, *, report_size: bool = True,
                 read_ahead: int | None = 0, name: str = "<fuzz>") -> None:
        self.prefix = prefix
        self.total = len(prefix) if size is None else size
        self.name = name
        self._report = report_size
        if read_ahead is not None:
            self.read_ahead = read_ahead
        self.reads = 0
        self.bytes_read = 0

    @property
    def size(self) -> int | None:
        return self.total if self._report else None

    def read(self, offset: int, n: int) -> bytes:
        self.reads += 1
        n = max(0, min(n, self.total - offset))
        head = self.prefix[offset : offset + n]
        if len(head) < n:
            head += bytes(n - len(head))
        self.bytes_read += len(head)
        return head


# --- mutations ------------------------------------------------------------------------------------

HOSTILE_U64 = (0, 1, 2, 7, 0xFF, 1 << 31, (1 << 32) - 1, 1 << 32, 1 << 40, (1 << 62), (1 << 63) - 1,
               1 << 63, (1 << 64) - 2, (1 << 64) - 1)
HOSTILE_U32 = (0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 31, 36, 42, 43, 100, 255, 1 << 16,
               (1 << 31) - 1, 1 << 31, (1 << 32) - 1)


def _put64(data: bytearray, at: int, v: int) -> None:
    if 0 <= at <= len(data) - 8:
        U64.pack_into(data, at, v & ((1 << 64) - 1))


def _get64(data: bytes | bytearray, at: int) -> int:
    return U64.unpack_from(data, at)[0] if 0 <= at <= len(data) - 8 else 0


def _put32(data: bytearray, at: int, v: int) -> None:
    if 0 <= at <= len(data) - 4:
        U32.pack_into(data, at, v & 0xFFFFFFFF)


def _near(rng: random.Random, v: int, size: int) -> int:
    return rng.choice((v + 1, v - 1, v * 2, v + size, size, size + 1, rng.getrandbits(64),
                       rng.choice(HOSTILE_U64)))


@dataclass
class Case:
    """One fuzz input: header bytes, the file size the source claims, and how it is read."""

    data: bytes
    size: int | None
    report_size: bool = True
    read_ahead: int | None = 0
    what: str = ""

    def source(self) -> SparseSource:
        return SparseSource(self.data, self.size, report_size=self.report_size,
                            read_ahead=self.read_ahead, name=f"<fuzz {self.what}>")


def mutate(rng: random.Random, data: bytes, lay: Layout, size: int, corpus: list[bytes] = ()) -> Case:
    """One random hostile variant of a valid header (`size` = its file's real size)."""
    op = rng.choice(MUTATORS if data else (_insert_bytes, _wrong_size))
    buf = bytearray(data)
    new_size: int | None = size
    what = op.__name__
    result = op(rng, buf, lay, size, corpus)
    if result is not None:  # the mutator changed the length of the file itself
        buf, new_size = result
    if buf and rng.random() < 0.15:  # sometimes stack a second, blind mutation
        extra = bytearray(buf)
        _bit_flips(rng, extra, lay, size, corpus)
        buf, what = extra, what + "+flips"
    read_ahead = rng.choice((0, 0, None, 64))
    report = rng.random() > 0.15
    return Case(bytes(buf), new_size, report, read_ahead, what)


def _truncate_at_section(rng, buf, lay, size, corpus):
    cut = rng.choice(lay.sections() + lay.boundaries) + rng.choice((0, 0, -1, 1))
    cut = max(0, min(cut, len(buf)))
    return bytearray(buf[:cut]), cut


def _truncate_anywhere(rng, buf, lay, size, corpus):
    cut = rng.randrange(0, lay.header_end + 64)
    if cut > len(buf):  # past the header: cut the data region instead
        return buf, min(size, cut + rng.randrange(0, max(1, size - cut)))
    return bytearray(buf[:cut]), cut


def _bit_flips(rng, buf, lay, size, corpus):
    for _ in range(rng.choice((1, 1, 2, 4, 16))):
        at = rng.randrange(len(buf))
        buf[at] ^= 1 << rng.randrange(8)


def _byte_set(rng, buf, lay, size, corpus):
    for _ in range(rng.choice((1, 2, 8))):
        buf[rng.randrange(len(buf))] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))


def _huge_count(rng, buf, lay, size, corpus):
    at = rng.choice(lay.counts)
    _put64(buf, at, _near(rng, _get64(buf, at), size))


def _huge_length(rng, buf, lay, size, corpus):
    if lay.lengths:
        at = rng.choice(lay.lengths)
        _put64(buf, at, _near(rng, _get64(buf, at), size))


def _wrong_type(rng, buf, lay, size, corpus):
    if lay.vtypes:
        _put32(buf, rng.choice(lay.vtypes), rng.choice(HOSTILE_U32 + tuple(range(13))))


def _wrong_ggml_type(rng, buf, lay, size, corpus):
    if lay.ggml_types:
        _put32(buf, rng.choice(lay.ggml_types), rng.choice(HOSTILE_U32 + tuple(range(42))))


def _wrong_ndims(rng, buf, lay, size, corpus):
    if lay.ndims:
        _put32(buf, rng.choice(lay.ndims), rng.choice((0, 1, 2, 3, 4, 5, 8, 64, 1 << 31, (1 << 32) - 1)))


def _overflow_dims(rng, buf, lay, size, corpus):
    dims = [d for d in lay.dims if d]
    if not dims:
        return
    ds = rng.choice(dims)
    big = rng.choice((1 << 32, 1 << 33, 1 << 40, 1 << 62, (1 << 63) - 1, 1 << 63, (1 << 64) - 1))
    for at in rng.sample(ds, k=rng.randint(1, len(ds))):
        _put64(buf, at, big)


def _bad_offset(rng, buf, lay, size, corpus):
    if not lay.offsets:
        return
    at = rng.choice(lay.offsets)
    cur = _get64(buf, at)
    other = U64.unpack_from(buf, rng.choice(lay.offsets))[0]
    _put64(buf, at, rng.choice((other, other + 32, cur + 1, cur + 16, cur - 32, size, size + 32,
                                size - lay.header_end, (1 << 64) - 32, (1 << 63), 0)))


def _swap_offsets(rng, buf, lay, size, corpus):
    if len(lay.offsets) >= 2:
        a, b = rng.sample(lay.offsets, 2)
        va, vb = _get64(buf, a), _get64(buf, b)
        _put64(buf, a, vb)
        _put64(buf, b, va)


def _duplicate_kv(rng, buf, lay, size, corpus):
    if lay.kv_spans:
        s, e, _ = rng.choice(lay.kv_spans)
        _put64(buf, 16, lay.n_kv + 1)
        return bytearray(buf[:e] + buf[s:e] + buf[e:]), size + (e - s)


def _duplicate_tensor(rng, buf, lay, size, corpus):
    if lay.ti_spans:
        s, e, _ = rng.choice(lay.ti_spans)
        _put64(buf, 8, lay.n_tensors + 1)
        return bytearray(buf[:e] + buf[s:e] + buf[e:]), size + (e - s)


def _drop_entry(rng, buf, lay, size, corpus):
    spans = lay.kv_spans + lay.ti_spans
    if spans:
        s, e, _ = rng.choice(spans)
        return bytearray(buf[:s] + buf[e:]), size - (e - s)


def _insert_bytes(rng, buf, lay, size, corpus):
    at = rng.randrange(len(buf) + 1)
    junk = bytes(rng.randrange(256) for _ in range(rng.choice((1, 4, 8, 13))))
    return bytearray(buf[:at] + junk + buf[at:]), size + len(junk)


def _delete_bytes(rng, buf, lay, size, corpus):
    at = rng.randrange(len(buf))
    n = rng.choice((1, 4, 8, 13))
    return bytearray(buf[:at] + buf[at + n :]), size - min(n, len(buf) - at)


def _splice(rng, buf, lay, size, corpus):
    if corpus:
        other = rng.choice(corpus)
        at = rng.randrange(len(buf))
        src = rng.randrange(len(other))
        n = rng.randrange(1, 64)
        piece = other[src : src + n]
        buf[at : at + len(piece)] = piece


def _wrong_size(rng, buf, lay, size, corpus):
    return buf, rng.choice((0, 4, 24, lay.header_end - 1, lay.header_end, size - 1, size - 32,
                            size + 1, size * 2, 1 << 40))


def _bad_alignment(rng, buf, lay, size, corpus):
    for s, e, key in lay.kv_spans:
        if key == "general.alignment":
            _put32(buf, e - 4, rng.choice((0, 1, 3, 31, 48, 1 << 20, 1 << 31, (1 << 32) - 1)))
            return
    _wrong_type(rng, buf, lay, size, corpus)


MUTATORS = (
    _truncate_at_section, _truncate_anywhere, _bit_flips, _bit_flips, _byte_set, _huge_count,
    _huge_count, _huge_length, _huge_length, _wrong_type, _wrong_ggml_type, _wrong_ndims,
    _overflow_dims, _bad_offset, _bad_offset, _swap_offsets, _duplicate_kv, _duplicate_tensor,
    _drop_entry, _insert_bytes, _delete_bytes, _splice, _wrong_size, _bad_alignment,
)


def header_bytes(path) -> tuple[bytes, int, Layout]:
    """(header bytes, file size, layout) of a valid GGUF file on disk."""
    import os

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(1 << 16)
        while True:
            try:
                lay = scan_layout(head)
                if lay.header_end <= len(head):
                    return head[: lay.header_end], size, lay
            except struct.error:  # header longer than what we read
                pass
            more = f.read(len(head))
            if not more:
                raise ValueError(f"{path}: not a complete GGUF header")
            head += more
