"""GGUF header reader: metadata and tensor infos from any ByteSource, never the tensor data.

Why a reader of our own rather than `gguf.GGUFReader`: that one memory-maps the whole file and
decodes every tokenizer string into numpy arrays (seconds for a 150k-token vocabulary), needs a
local file, and fails with assorted exceptions on hostile input. This one reads through a
buffered cursor in a few large reads (one or two HTTP range requests for a typical header),
walks large arrays without decoding them, checks every count and length against the bytes that
can exist before it trusts it, and raises only GGUFError.

Public API: `parse_header(source, skip_hints=None)`, `parse_file(path)` and `skip_hints_from(header)`.
docs/reader.md has the details, including why a hinted jump can never yield a wrong header.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any, Mapping


from planner.counters import Counters
from planner.errors import GGUFError
from planner.ggml_types import GGUFValueType, gguf_version, quant_size, type_name
from planner.header import GGUFHeader, SkippedArray, TensorInfo
from planner.sources import DEFAULT_READ_AHEAD, ByteSource, LocalFileSource

__all__ = ["parse_header", "parse_file", "SkipHint", "skip_hints_from", "HINT_STATS"]

# --- format constants and our limits ----------------------------------------------------------

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)  # v2 and v3 share the layout (64-bit counts); v1 used 32-bit ones
DEFAULT_ALIGNMENT = 32
GGML_MAX_DIMS = 4
GGML_MAX_NAME = 64  # ggml's tensor name buffer including the NUL: names are < 64 bytes
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1

MAX_HEADER_BYTES = 64 << 20  # the largest real headers (262k vocabularies, 400k+ merges) are < 20 MiB
MAX_READ = 16 << 20  # largest single read request
MAX_ARRAY_DEPTH = 8  # arrays of arrays of ... (real files nest at most once)
MAX_KEY_BYTES = 1 << 16  # keys are dotted identifiers of a few dozen bytes
# Caps that bound the time and memory of a parse whatever the file says (all far above real
# files: ~50 keys, < 5k tensors, a few thousand decoded array elements, nested arrays are rare).
MAX_KEYS = 1 << 16
MAX_TENSORS = 1 << 18
MAX_DECODED_ELEMENTS = 1 << 20  # past this budget, arrays are skipped instead of decoded
MAX_NESTED_ARRAYS = 1 << 16  # inner arrays walked in all arrays of arrays
TAIL_STRINGS = 4  # lengths of a skipped string array's last strings, kept to check a hinted jump

# Arrays are decoded only when small; larger ones become SkippedArray(element_type, count).
SMALL_ARRAY_LIMIT = 1024
# Numeric arrays outside the tokenizer (per-layer head counts, SWA patterns, rope sections) are
# decoded up to this many elements: they are per-layer, so small, and the planner needs them.
NUMERIC_ARRAY_LIMIT = 65536
ALWAYS_SKIPPED_KEYS = frozenset(
    {
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.scores",
        "tokenizer.ggml.token_type",
    }
)

_T = GGUFValueType
# value type -> (struct for one value, its size in bytes, format letter for arrays)
_SCALARS: dict[int, tuple[struct.Struct, int, str]] = {
    int(t): (struct.Struct("<" + ch), struct.calcsize("<" + ch), ch)
    for t, ch in (
        (_T.UINT8, "B"),
        (_T.INT8, "b"),
        (_T.UINT16, "H"),
        (_T.INT16, "h"),
        (_T.UINT32, "I"),
        (_T.INT32, "i"),
        (_T.FLOAT32, "f"),
        (_T.BOOL, "?"),  # any non-zero byte is true, as in ggml
        (_T.UINT64, "Q"),
        (_T.INT64, "q"),
        (_T.FLOAT64, "d"),
    )
}
_STRING = int(_T.STRING)
_ARRAY = int(_T.ARRAY)
# smallest encoding of one array element of each type (to bound counts by the bytes left)
_MIN_ELEMENT = {t: size for t, (_, size, _) in _SCALARS.items()} | {_STRING: 8, _ARRAY: 12}
MIN_KV_BYTES = 8 + 1 + 4 + 1  # key length, >= 1 key byte, value type, >= 1 value byte
MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8  # name length, n_dims, type, offset (empty name, 0 dims)

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_ARRAY_HEAD = struct.Struct("<IQ")  # element type, count
_FIXED = struct.Struct("<IQQ")  # version, tensor count, kv count (after the magic)
_TENSOR_TAIL = [struct.Struct(f"<{n}QIQ") for n in range(GGML_MAX_DIMS + 1)]  # dims, type, offset

# ggml type id -> (block size, bytes per block): planner.ggml_types (gguf's tables, without numpy)

# what a file that is not GGUF usually is, by its first bytes
_FOREIGN_MAGICS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"version https://git-lfs", "a Git LFS pointer file, not the model itself (run `git lfs pull`)"),
    (0, b"<!DOCTYPE", "an HTML page (an error or login page saved instead of the file?)"),
    (0, b"<html", "an HTML page (an error or login page saved instead of the file?)"),
    (0, b"{", "JSON text (an error response saved instead of the file?)"),
    (0, b"PK\x03\x04", "a zip archive (a PyTorch checkpoint?)"),
    (0, b"tjgg", "a pre-GGUF GGJT file; convert it to GGUF with a current llama.cpp"),
    (0, b"lmgg", "a pre-GGUF GGML file; convert it to GGUF with a current llama.cpp"),
    (0, b"fmgg", "a pre-GGUF GGMF file; convert it to GGUF with a current llama.cpp"),
    (8, b'{"', "a safetensors file; memfit plans GGUF models"),
)


_CORRUPT_HINT = "The file is incomplete or corrupt: download it again (for split models, every shard)."


# --- skip hints -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SkipHint:
    """What a sibling file's parse learned about one skipped string array, so this file's parse
    may jump over the array instead of walking (and fetching) its length prefixes.

    A jump is taken only when key, element type and count match, and is then verified: the
    strings just before the landing point must have the `tail` lengths, the landing point must
    hold exactly `next_key` (length prefix and bytes), the rest of the header must parse, and
    the tensor data must tile the file exactly. Anything else falls back to the hint-free walk.
    """

    element_type: int
    count: int
    nbytes: int  # encoded length of the elements (after the 12-byte array head)
    next_key: str  # the key that followed the array in the sibling
    tail: tuple[int, ...]  # byte lengths of the array's last strings, in file order


@dataclass
class HintStats(Counters):
    """Debug counters (tests and the bench read them): jumps taken and verified at the landing
    point, landings that did not verify (walked instead), and whole re-parses without hints."""

    jumps: int = 0
    landing_misses: int = 0
    reparses: int = 0


HINT_STATS = HintStats()


def skip_hints_from(header: GGUFHeader) -> dict[str, SkipHint]:
    """Hints for a sibling file from a parsed header: its top-level skipped string arrays that
    know their byte length and are followed by another key (headers cached before lengths were
    recorded give none)."""
    hints: dict[str, SkipHint] = {}
    keys = list(header.metadata)
    for key, next_key in zip(keys, keys[1:]):
        v = header.metadata[key]
        if (isinstance(v, SkippedArray) and v.element_type == _STRING and v.count > 0
                and v.nbytes is not None and v.tail):
            hints[key] = SkipHint(v.element_type, v.count, v.nbytes, next_key, tuple(v.tail))
    return hints


class _HintMismatch(Exception):
    """A hinted parse that did not verify end to end (never leaves parse_header)."""


# --- public API -------------------------------------------------------------------------------


def parse_header(source: ByteSource, skip_hints: Mapping[str, SkipHint] | None = None) -> GGUFHeader:
    """Parse the GGUF header behind `source`. Raises GGUFError for anything malformed;
    errors raised by the source itself (network, I/O) pass through unchanged.

    `skip_hints` (from `skip_hints_from(sibling_header)`) lets the parse jump over string arrays
    the sibling had; a header built with a jump is returned only if it verifies completely,
    otherwise the file is parsed again without hints (counted in HINT_STATS.reparses). Hints
    are ignored when the source cannot tell its size (the final check needs it)."""
    size = source.size
    if not skip_hints or not (isinstance(size, int) and size >= 0):
        return _Parser(source).parse()
    parser = _Parser(source, skip_hints)
    try:
        return parser.parse()
    except (GGUFError, _HintMismatch):
        if not parser.tried:
            raise  # nothing was taken on trust: this is the file's own error
    HINT_STATS.add(reparses=1)
    return _Parser(source).parse()


def parse_file(path: str | os.PathLike[str]) -> GGUFHeader:
    """Parse the header of a local GGUF file (reads only header bytes)."""
    return parse_header(LocalFileSource(path))


# --- the parser -------------------------------------------------------------------------------


class _Parser:
    """One parse: a buffered cursor over the source plus the section walkers.

    The cursor keeps `buf` (bytes starting at absolute offset `base`) and a position `p`
    relative to `buf`. `p` may run past `buf` after a skip; the next `_need` then reads from
    there without fetching the skipped bytes.
    """

    def __init__(self, source: ByteSource, hints: Mapping[str, SkipHint] | None = None) -> None:
        self.src = source
        self.hints = hints or {}
        self.jumped = False  # a hinted jump was taken: the result must pass _check_tiling
        self.tried = False  # bytes were read at a hinted landing point (errors may be the hint's)
        self.name = str(getattr(source, "name", "") or "<gguf>")
        size = source.size
        self.size: int | None = size if isinstance(size, int) and size >= 0 else None
        ahead = getattr(source, "read_ahead", None)
        # exact: read only bytes known to be header (cheap local reads, no tensor data touched)
        self.exact = ahead == 0
        self.chunk = min(ahead, MAX_READ) if isinstance(ahead, int) and ahead > 0 else DEFAULT_READ_AHEAD
        self.buf = b""
        self.base = 0
        self.p = 0
        self.floor = 0  # bytes certainly still to come in the header after the current item
        # where we are, for messages: section, 0-based index, count, item name
        self.section = "fixed"
        self.index = 0
        self.count = 0
        self.label: str | None = None
        self.n_tensors = 0
        self.decode_budget = MAX_DECODED_ELEMENTS
        self.nested_budget = MAX_NESTED_ARRAYS

    # -- messages ------------------------------------------------------------------------------

    def _where(self) -> str:
        if self.section == "kv":
            item = f"metadata key {self.index + 1} of {self.count}"
        elif self.section == "tensor":
            item = f"tensor info {self.index + 1} of {self.count}"
        elif self.section == "end":
            return "the last header field"
        else:
            return "the fixed header (magic, version, counts)"
        return item + (f" ({self.label!r})" if self.label is not None else " (its name)")

    def _fail(self, message: str, hint: str | None = _CORRUPT_HINT) -> GGUFError:
        return GGUFError(f"{self.name}: {message}", hint=hint)

    def _truncated(self, start: int, n: int, detail: str = "") -> GGUFError:
        where = self._where() + (f", {detail}" if detail else "")
        if self.size is not None:
            return self._fail(
                f"truncated in {where}: {n} bytes needed at offset {start}, "
                f"but the file ends at {self.size}"
            )
        return self._fail(f"truncated in {where}: {n} bytes needed at offset {start}, source ended")

    def _too_long(self, detail: str = "") -> GGUFError:
        where = self._where() + (f", {detail}" if detail else "")
        return self._fail(
            f"header runs past {MAX_HEADER_BYTES >> 20} MiB in {where} (no real GGUF header is "
            "that long: corrupt or hostile)"
        )

    def _past_end(self, what: str) -> GGUFError:
        """A declared length or count that the bytes left in the file cannot hold."""
        return self._fail(f"truncated in {self._where()}: {what}")

    def _bytes_left(self) -> int | None:
        return None if self.size is None else self.size - (self.base + self.p)

    # -- the cursor ----------------------------------------------------------------------------

    def _need(self, n: int, detail: str = "") -> None:
        if self.p + n > len(self.buf):
            self._fill(n, self.floor, detail)

    def _fill(self, n: int, floor: int, detail: str = "") -> None:
        """Make buf[p:p+n] available, reading ahead as the source's policy allows."""
        start = self.base + self.p
        end = start + n
        if self.size is not None and end > self.size:
            raise self._truncated(start, n, detail)
        if end > MAX_HEADER_BYTES:
            raise self._too_long(detail)
        have = len(self.buf) - self.p
        parts = [self.buf[self.p :]] if have > 0 else []
        pos = self._read_into(parts, start + max(have, 0), end, self._want_end(end, floor))
        if pos < end:
            raise self._truncated(start, n, detail)
        self.buf = parts[0] if len(parts) == 1 else b"".join(parts)
        self.base = start
        self.p = 0

    def _want_end(self, end: int, floor: int) -> int:
        """Where a read that must reach `end` stops: exact, only bytes known to be header;
        otherwise those plus one read-ahead chunk (never past the file or the header limit)."""
        extra = floor if self.exact else floor + self.chunk
        limit = MAX_HEADER_BYTES if self.size is None else min(self.size, MAX_HEADER_BYTES)
        return max(end, min(end + min(extra, MAX_READ), limit))

    def _read_into(self, parts: list[bytes], pos: int, end: int, want_end: int) -> int:
        """Read from `pos` until `end` (the first read asks for the read-ahead too; later ones
        fill the gap), appending to `parts`; where the reads stopped (short of `end` when the
        source ran out)."""
        while pos < end:
            data = self._read(pos, min(want_end - pos, MAX_READ))
            if not data:
                break
            parts.append(data)
            pos += len(data)
        return pos

    def _read(self, offset: int, n: int) -> bytes:
        try:
            data = self.src.read(offset, n)
        except OSError as e:
            raise self._fail(f"read of {n} bytes at offset {offset} failed: {e}", hint=None) from None
        if not isinstance(data, bytes):
            data = bytes(data)
        return data[:n]

    def _skip(self, n: int, detail: str) -> None:
        """Advance past n bytes without reading them (checked against the file size)."""
        end = self.base + self.p + n
        if self.size is not None and end > self.size:
            raise self._past_end(
                f"{detail} runs past the end of the file ({n} bytes at offset "
                f"{self.base + self.p}, file size {self.size})"
            )
        if end > MAX_HEADER_BYTES:
            raise self._too_long(detail)
        self.p += n
        self._prove_end(detail)

    def _prove_end(self, detail: str) -> None:
        """After skipping bytes unread: with no size to check against, make sure the source
        really holds them (one byte at the end), so a cut file fails where it is cut."""
        if self.size is None and self.p > len(self.buf):
            end = self.base + self.p
            if not self._read(end - 1, 1):
                raise self._truncated(end - 1, 1, detail)

    def _check_count(self, count: int, min_size: int, what: str) -> None:
        """Refuse a declared count whose smallest encoding cannot fit in the bytes left."""
        need = count * min_size
        left = self._bytes_left()
        if left is not None and need > left:
            raise self._past_end(
                f"{what} declares {count} elements, which need at least {need} bytes, but "
                f"only {left} bytes are left in the file"
            )
        if need > MAX_HEADER_BYTES:
            raise self._fail(
                f"{what} in {self._where()} declares {count} elements, more than any real "
                "GGUF header holds (corrupt or hostile)"
            )

    # -- primitives ----------------------------------------------------------------------------

    def _u32(self) -> int:
        self._need(4)
        v = _U32.unpack_from(self.buf, self.p)[0]
        self.p += 4
        return v

    def _string(self, what: str = "string", limit: int = MAX_HEADER_BYTES) -> str:
        self._need(8)
        n = _U64.unpack_from(self.buf, self.p)[0]
        left = self._bytes_left()
        if left is not None and n > left - 8:
            raise self._past_end(f"{what} length {n} runs past the end of the file ({left - 8} bytes left)")
        if n > limit:
            raise self._fail(f"{what} length {n} in {self._where()} is beyond any real GGUF (corrupt or hostile)")
        self._need(8 + n)
        p = self.p + 8
        self.p = p + n
        if n > 65536:  # decode big strings (chat templates, embedded JSON) without a copy
            return str(memoryview(self.buf)[p : p + n], "utf-8", "replace")
        return self.buf[p : p + n].decode("utf-8", "replace")

    # -- sections ------------------------------------------------------------------------------

    def parse(self) -> GGUFHeader:
        version, n_tensors, n_kv = self._fixed_header()
        metadata, types = self._metadata(n_kv)
        tensors = self._tensor_infos(n_tensors)
        header_end = self._header_end()
        alignment = self._alignment(metadata, types)
        data_offset = header_end + (-header_end % alignment)
        self._check_offsets(tensors, alignment, data_offset)
        if self.jumped:
            self._check_tiling(tensors, alignment, data_offset)
        return GGUFHeader(
            version=version,
            metadata=metadata,
            tensors=tensors,
            alignment=alignment,
            data_offset=data_offset,
            file_size=self.size,
            source=self.name,
        )

    def _fixed_header(self) -> tuple[int, int, int]:
        if self.size is not None and self.size < 4:
            raise self._fail(f"not a GGUF file: only {self.size} bytes")
        self.floor = 20
        self._need(4)
        magic = self.buf[:4]
        if magic != MAGIC:
            raise self._foreign(magic)
        self._need(24)
        version, n_tensors, n_kv = _FIXED.unpack_from(self.buf, 4)
        self.p = 24
        self._check_version(version)
        self._check_counts(n_tensors, n_kv)
        self.n_tensors = n_tensors
        return version, n_tensors, n_kv

    def _check_version(self, version: int) -> None:
        if version != 0 and version & 0xFFFF == 0:
            raise self._fail(
                f"big-endian GGUF (version field 0x{version:08x}); memfit reads little-endian "
                "files only",
                hint="Use the little-endian GGUF of this model (the usual one on the Hub).",
            )
        if version == 1:
            raise self._fail(
                "GGUF version 1 is not supported (llama.cpp dropped it too)",
                hint="Convert the model again with a current llama.cpp.",
            )
        if version not in SUPPORTED_VERSIONS:
            raise self._fail(
                f"unsupported GGUF version {version} (supported: 2 and 3)",
                hint="A newer format than this memfit knows, or a corrupt file.",
            )

    def _check_counts(self, n_tensors: int, n_kv: int) -> None:
        """The fixed header's counts: signed 64-bit, room for them in the file, under the caps."""
        for what, n in (("tensor count", n_tensors), ("metadata key count", n_kv)):
            if n > INT64_MAX:
                raise self._fail(f"{what} {n} is negative as a signed 64-bit value")
        min_bytes = n_kv * MIN_KV_BYTES + n_tensors * MIN_TENSOR_INFO_BYTES
        declared = (
            f"it declares {n_tensors} tensors and {n_kv} metadata keys, which need at least "
            f"{min_bytes} bytes"
        )
        left = self._bytes_left()
        if left is not None and min_bytes > left:
            raise self._past_end(f"{declared}, but only {left} bytes follow the fixed header")
        if min_bytes > MAX_HEADER_BYTES:
            raise self._fail(f"corrupt fixed header: {declared}, more than any real GGUF header")
        for what, n, cap in (("metadata keys", n_kv, MAX_KEYS), ("tensors", n_tensors, MAX_TENSORS)):
            if n > cap:
                raise self._fail(
                    f"corrupt fixed header: it declares {n} {what}; memfit accepts at most {cap} "
                    "(real models have far fewer)"
                )

    def _foreign(self, magic: bytes) -> GGUFError:
        self._need_upto(64)
        head = self.buf[:64]
        for at, prefix, what in _FOREIGN_MAGICS:
            if head[at : at + len(prefix)] == prefix:
                return self._fail(f"not a GGUF file: it looks like {what}", hint=None)
        shown = "".join(chr(b) if 32 <= b < 127 else "." for b in magic)
        return self._fail(
            f"not a GGUF file: magic is {magic.hex()} ({shown!r}), expected 47475546 ('GGUF')",
            hint="Check the path; a GGUF file starts with the bytes 'GGUF'.",
        )

    def _need_upto(self, n: int) -> None:
        """Best effort: have up to n bytes from the start buffered (for messages only)."""
        if len(self.buf) < n and (self.size is None or len(self.buf) < self.size):
            want = n if self.size is None else min(n, self.size)
            data = self._read(0, want)
            if len(data) > len(self.buf):
                self.buf, self.base, self.p = data, 0, 0

    def _metadata(self, n_kv: int) -> tuple[dict[str, Any], dict[str, int]]:
        metadata: dict[str, Any] = {}
        types: dict[str, int] = {}
        self.section, self.count = "kv", n_kv
        rest_tensors = self.n_tensors * MIN_TENSOR_INFO_BYTES
        for i in range(n_kv):
            self.index, self.label = i, None
            self.floor = (n_kv - i - 1) * MIN_KV_BYTES + rest_tensors
            key = self._string("key", MAX_KEY_BYTES)
            if not key:
                raise self._fail(f"metadata key {i + 1} of {n_kv} is empty")
            self.label = key
            if key in metadata:
                raise self._fail(f"duplicate metadata key {key!r} (key {i + 1} of {n_kv})")
            vtype = self._u32()
            metadata[key] = self._value(vtype, key, 0)
            types[key] = vtype
        return metadata, types

    def _value(self, vtype: int, key: str, depth: int) -> Any:
        scalar = _SCALARS.get(vtype)
        if scalar is not None:
            st, size, _ = scalar
            self._need(size)
            v = st.unpack_from(self.buf, self.p)[0]
            self.p += size
            return v
        if vtype == _STRING:
            return self._string("string")
        if vtype == _ARRAY:
            return self._array(key, depth)
        raise self._fail(f"unknown value type {vtype} in {self._where()}")

    def _array(self, key: str, depth: int) -> list[Any] | SkippedArray:
        etype, count = self._array_head(depth, "array")
        if count > self.decode_budget or _skipped(key, etype, count, depth):
            return self._skip_array(key, etype, count, depth)
        self.decode_budget -= count
        scalar = _SCALARS.get(etype)
        if scalar is not None:
            _, size, ch = scalar
            n = count * size
            self._need(n)
            values = list(struct.unpack_from(f"<{count}{ch}", self.buf, self.p))
            self.p += n
            return values
        if etype == _STRING:
            return [self._string("array string") for _ in range(count)]
        self._spend_nested(count)
        return [self._array(key, depth + 1) for _ in range(count)]

    def _array_head(self, depth: int, what: str) -> tuple[int, int]:
        """An array's element type and count, checked (nesting depth, known type, room for the
        elements in the bytes left)."""
        if depth >= MAX_ARRAY_DEPTH:
            raise self._fail(f"arrays nested more than {MAX_ARRAY_DEPTH} deep in {self._where()}")
        self._need(12)
        etype, count = _ARRAY_HEAD.unpack_from(self.buf, self.p)
        self.p += 12
        min_size = _MIN_ELEMENT.get(etype)
        if min_size is None:
            raise self._fail(f"unknown array element type {etype} in {self._where()}")
        self._check_count(count, min_size, what)
        return etype, count

    def _skip_array(self, key: str, etype: int, count: int, depth: int) -> SkippedArray:
        """An array counted, not decoded; a top-level string array by a sibling's hint when the
        landing verifies, else walked (its byte length and tail lengths kept for hints)."""
        start = self.base + self.p
        if depth == 0 and etype == _STRING:
            hint = self.hints.get(key)
            if hint is not None and hint.element_type == etype and hint.count == count:
                if self._jump(hint):
                    return SkippedArray(etype, count, hint.nbytes, hint.tail)
            tail: list[int] = []
            self._walk_strings(count, tail)
            return SkippedArray(etype, count, self.base + self.p - start, tuple(tail))
        self._skip_elements(etype, count, depth)
        return SkippedArray(etype, count, self.base + self.p - start)

    def _spend_nested(self, count: int) -> None:
        self.nested_budget -= count
        if self.nested_budget < 0:
            raise self._fail(
                f"more than {MAX_NESTED_ARRAYS} nested arrays (in {self._where()}); no real GGUF "
                "has that many (llama.cpp accepts none)"
            )

    def _skip_elements(self, etype: int, count: int, depth: int) -> None:
        scalar = _SCALARS.get(etype)
        if scalar is not None:
            self._skip(count * scalar[1], f"array of {count} elements")
        elif etype == _STRING:
            self._walk_strings(count)
        else:
            self._spend_nested(count)
            for _ in range(count):
                inner_type, inner_count = self._array_head(depth + 1, "nested array")
                self._skip_elements(inner_type, inner_count, depth + 1)

    def _walk_strings(self, count: int, tail: list[int] | None = None) -> None:
        """Step over `count` length-prefixed strings without decoding them.

        The hot loop of the whole reader (tokens + merges of a 150k vocabulary are ~300k
        strings): one struct unpack and one addition per string. A length prefix that is
        not in the buffer raises struct.error; we then refill and resume at that string.
        The lengths of the last TAIL_STRINGS strings go to `tail` (for SkipHint.tail).
        """
        unpack = _U64.unpack_from
        buf, p, j = self.buf, self.p, 0
        start = self.base + p
        split = count if tail is None else max(0, count - TAIL_STRINGS)
        while True:
            try:
                for j in range(j, split):
                    p += 8 + unpack(buf, p)[0]
                for j in range(max(j, split), count):
                    n = unpack(buf, p)[0]
                    tail.append(n)  # type: ignore[union-attr]  # split < count only with a tail
                    p += 8 + n
                break
            except (struct.error, OverflowError):
                self.p = p
                rest = self._strings_rest(count - j - 1, j, self.base + p - start)
                self._fill(8, rest + self.floor, f"string {j + 1} of {count}")
                buf, p = self.buf, self.p
        self.p = p
        self._check_walked(count)

    def _strings_rest(self, left: int, walked: int, walked_bytes: int) -> int:
        """The bytes the `left` strings still to walk are expected to take: a strict lower bound
        (every string is >= 8 bytes) for exact reads or before any string was walked; remote,
        a guess from the strings so far, so one request covers the array."""
        if self.exact or walked == 0:
            return left * 8
        return left * (walked_bytes // walked)

    def _check_walked(self, count: int) -> None:
        """A walked string array ends inside the file and the header limit."""
        end = self.base + self.p
        if self.size is not None and end > self.size:
            raise self._past_end(
                f"its last string runs past the end of the file (to offset {end}, file size {self.size})"
            )
        if end > MAX_HEADER_BYTES:
            raise self._too_long(f"string {count} of {count}")
        self._prove_end(f"string {count} of {count}")

    def _jump(self, hint: SkipHint) -> bool:
        """Jump over a string array by a sibling's byte length, without reading it, if the
        landing verifies: the bytes before it hold strings of the hinted tail lengths, ending
        exactly where the sibling's next key (its length prefix and bytes) starts. Otherwise
        put the cursor back at the array's first string and return False (the caller walks)."""
        saved = (self.buf, self.base, self.p)
        start = self.base + self.p
        landing = start + hint.nbytes
        anchor = hint.next_key.encode("utf-8")
        anchor = _U64.pack(len(anchor)) + anchor
        tail_bytes = sum(8 + n for n in hint.tail)
        if not self._hint_fits(hint, tail_bytes, landing + len(anchor)):
            HINT_STATS.add(landing_misses=1)
            return False
        self.tried = True  # from here on, an error may come from the hint, not the file
        self.p += hint.nbytes - tail_bytes  # unread: the next read starts past the array
        self._need(tail_bytes + len(anchor), "checking a skip hint")
        q = self._landing(hint.tail, tail_bytes, anchor)
        if q is not None:
            self.p = q
            self.jumped = True
            HINT_STATS.add(jumps=1)
            return True
        self.buf, self.base, self.p = saved
        HINT_STATS.add(landing_misses=1)
        return False

    def _hint_fits(self, hint: SkipHint, tail_bytes: int, anchor_end: int) -> bool:
        """A hint that can hold for this file: its lengths consistent, the file's size known and
        the landing (with the next key) inside it."""
        size = self.size
        return not (hint.nbytes < hint.count * 8 or tail_bytes > hint.nbytes or len(hint.tail) > hint.count
                    or size is None or anchor_end > min(size, MAX_HEADER_BYTES))

    def _landing(self, tail: tuple[int, ...], tail_bytes: int, anchor: bytes) -> int | None:
        """Where the array ends if the bytes before the landing hold strings of the hinted tail
        lengths and the next key starts right there; None otherwise."""
        buf, q = self.buf, self.p
        for n in tail:
            if _U64.unpack_from(buf, q)[0] != n:
                return None
            q += 8 + n
        if q == self.p + tail_bytes and buf[q : q + len(anchor)] == anchor:
            return q
        return None

    def _check_tiling(self, tensors: list[TensorInfo], alignment: int, data_offset: int) -> None:
        """After a hinted jump: the tensors, in offset order, must start at 0 and follow each
        other with only alignment padding, and end (padded) exactly at the end of the file.
        The header's end is then pinned by the tensor data to within one alignment, so a wrong
        jump cannot survive by accident; a file with gaps or trailing bytes is re-parsed."""
        pos = 0
        for t in sorted(tensors, key=lambda t: t.offset):
            if t.offset != pos:
                raise _HintMismatch(f"tensor {t.name!r} at {t.offset}, expected {pos}")
            end = t.offset + t.nbytes
            pos = end + (-end % alignment)
        if self.size is None or data_offset + pos != self.size:
            raise _HintMismatch(f"tensor data ends at {data_offset + pos}, file size {self.size}")

    def _tensor_infos(self, n_tensors: int) -> list[TensorInfo]:
        self.section, self.count = "tensor", n_tensors
        tensors: list[TensorInfo] = []
        seen: set[str] = set()
        for i in range(n_tensors):
            self.index, self.label = i, None
            self.floor = (n_tensors - i - 1) * MIN_TENSOR_INFO_BYTES
            name, n_dims = self._tensor_name_dims()
            tail = _TENSOR_TAIL[n_dims]
            self._need(tail.size)
            *dims, ggml_type, offset = tail.unpack_from(self.buf, self.p)
            self.p += tail.size
            if name in seen:
                raise self._fail(f"duplicate tensor name {name!r} (tensor {i + 1} of {n_tensors})")
            seen.add(name)
            nbytes = self._tensor_nbytes(name, dims, ggml_type)
            tensors.append(TensorInfo(name, tuple(dims), ggml_type, offset, nbytes))
        return tensors

    def _tensor_name_dims(self) -> tuple[str, int]:
        """A tensor info's name and dimension count, within ggml's limits (the name becomes the
        label errors name it by)."""
        self._need(8)
        n = _U64.unpack_from(self.buf, self.p)[0]
        if n >= GGML_MAX_NAME:
            raise self._fail(
                f"tensor name length {n} in {self._where()} is not below ggml's limit of "
                f"{GGML_MAX_NAME} bytes"
            )
        self._need(12 + n)
        p = self.p + 8
        name = self.buf[p : p + n].decode("utf-8", "replace")
        n_dims = _U32.unpack_from(self.buf, p + n)[0]
        self.p = p + n + 4
        self.label = name
        if n_dims > GGML_MAX_DIMS:
            raise self._fail(
                f"tensor {name!r} has {n_dims} dimensions; ggml allows at most {GGML_MAX_DIMS}"
            )
        return name, n_dims

    def _tensor_nbytes(self, name: str, dims: list[int], ggml_type: int) -> int:
        """Byte size of a tensor from the gguf package's block tables, with the checks ggml makes."""
        sizes = quant_size(ggml_type)
        if sizes is None:
            raise self._fail(
                f"tensor {name!r} has unknown ggml type id {ggml_type}",
                hint=(
                    "The file is corrupt, or uses a quantization type newer than the installed "
                    f"gguf package ({gguf_version()}) knows: try `pip install -U gguf`."
                ),
            )
        block, type_size = sizes
        n = self._elements(name, dims)
        row = dims[0] if dims else 1  # a 0-d tensor is one element, as in ggml
        if row % block:
            raise self._fail(
                f"tensor {name!r} of type {type_name(ggml_type) or ggml_type} has rows of "
                f"{row} elements, not a multiple of its block size {block}"
            )
        return n // block * type_size

    def _elements(self, name: str, dims: list[int]) -> int:
        """A tensor's element count; each dimension and the product within signed 64 bits."""
        n = 1
        for d in dims:
            if d > INT64_MAX:
                raise self._fail(f"tensor {name!r} has a dimension of {d}, beyond 64-bit signed range")
            n *= d
        if n > INT64_MAX:
            raise self._fail(
                f"tensor {name!r} has shape {tuple(dims)} whose element count overflows 64 bits"
            )
        return n

    def _header_end(self) -> int:
        """Absolute offset where the last tensor info ends (before alignment padding)."""
        self.section = "end"
        return self.base + self.p

    def _alignment(self, metadata: dict[str, Any], types: dict[str, int]) -> int:
        if "general.alignment" not in metadata:
            return DEFAULT_ALIGNMENT
        value = metadata["general.alignment"]
        if types["general.alignment"] != int(_T.UINT32):
            raise self._fail(
                f"general.alignment must be a uint32, but is a {_type_name(types['general.alignment'])}"
            )
        if value == 0 or value & (value - 1):
            raise self._fail(f"general.alignment {value} is not a power of two")
        return value

    def _check_offsets(self, tensors: list[TensorInfo], alignment: int, data_offset: int) -> None:
        if not tensors:
            return
        size = self.size
        if size is not None and data_offset > size:
            raise self._fail(
                f"tensor data would start at offset {data_offset} (header end padded to "
                f"{alignment}), past the end of the file ({size} bytes)"
            )
        for t in tensors:
            if t.offset % alignment:
                raise self._fail(
                    f"tensor {t.name!r} has offset {t.offset}, not a multiple of the alignment {alignment}"
                )
        self._check_extents(_by_offset(tensors), data_offset)

    def _check_extents(self, ordered: list[TensorInfo], data_offset: int) -> None:
        """Tensors in offset order: none overlaps the one before it, none ends past the file
        (or, with no size known, past any 64-bit offset)."""
        size = self.size
        limit = UINT64_MAX if size is None else size
        prev: TensorInfo | None = None
        prev_end = 0
        for t in ordered:
            if t.nbytes and prev is not None and t.offset < prev_end:  # empty tensors hold no bytes
                raise self._fail(
                    f"tensors {prev.name!r} (offset {prev.offset}, {prev.nbytes} bytes) and "
                    f"{t.name!r} (offset {t.offset}) overlap"
                )
            end = t.offset + t.nbytes
            if data_offset + end > limit:
                raise self._past_file(t, data_offset)
            if end > prev_end or prev is None:
                prev, prev_end = t, end


    def _past_file(self, t: TensorInfo, data_offset: int) -> GGUFError:
        where = f"the end of the file ({self.size} bytes)" if self.size is not None else "any 64-bit offset"
        return self._fail(
            f"tensor {t.name!r} (offset {t.offset}, {t.nbytes} bytes from data start "
            f"{data_offset}) extends past {where}"
        )


def _by_offset(tensors: list[TensorInfo]) -> list[TensorInfo]:
    """The tensors in offset order (the list itself when it already is)."""
    if any(tensors[k].offset > tensors[k + 1].offset for k in range(len(tensors) - 1)):
        return sorted(tensors, key=lambda t: t.offset)
    return tensors


def _skipped(key: str, etype: int, count: int, depth: int) -> bool:
    """Whether an array is counted instead of decoded (see the module limits)."""
    if depth == 0 and key in ALWAYS_SKIPPED_KEYS:
        return True
    if depth == 0 and etype in _SCALARS and not key.startswith("tokenizer."):
        return count > NUMERIC_ARRAY_LIMIT
    return count > SMALL_ARRAY_LIMIT


def _type_name(vtype: int) -> str:
    try:
        return GGUFValueType(vtype).name.lower()
    except ValueError:
        return f"type {vtype}"
