"""The GGUF header reader on broken and hostile files: a corpus of truncations, flipped bytes and
huge counts over realistic headers, and one hand-made file per error, with its message."""

from __future__ import annotations

import random
import struct
import time
import tracemalloc

import pytest

from planner.testing import ggufgen
from planner.testing.ggufgen import ModelShape
from planner.testing.ggufmutate import HOSTILE_U64, SparseSource, header_bytes, scan_layout
from planner.errors import GGUFError
from planner.header import GGUFHeader
from planner.reader import parse_header
from planner.sources import MemorySource

# --- hand-made files ------------------------------------------------------------------------------


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return s(key) + struct.pack("<I", vtype) + payload


def u32(key: str, v: int) -> bytes:
    return kv(key, 4, struct.pack("<I", v))


def ti(name: str, dims: tuple[int, ...], ggml_type: int = 0, offset: int = 0) -> bytes:
    return s(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, ggml_type, offset)


def gguf(kvs: list[bytes] = (), tis: list[bytes] = (), *, version: int = 3, n_kv: int | None = None,
         n_tensors: int | None = None, data: int = 0, align: int = 32) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", version, len(tis) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    head += b"".join(kvs) + b"".join(tis)
    return head + bytes(-len(head) % align) + bytes(data)


def parse(data: bytes, *, size: int | None | str = "len", read_ahead: int | None = 0) -> GGUFHeader:
    src = SparseSource(data, None if size in ("len", None) else size, report_size=size is not None,
                       read_ahead=read_ahead, name="t.gguf")
    return parse_header(src)


def fails(data: bytes, match: str, **kw) -> GGUFError:
    with pytest.raises(GGUFError, match=match) as e:
        parse(data, **kw)
    assert str(e.value).startswith("t.gguf: ")
    return e.value


ARCH = kv("general.architecture", 8, s("llama"))


def test_hand_made_valid_file_parses() -> None:
    h = parse(gguf([ARCH, u32("x", 1)], [ti("a", (32, 2)), ti("b", (8,), 0, 256)], data=288))
    assert [t.name for t in h.tensors] == ["a", "b"] and h.tensors[1].nbytes == 32


# --- one file per error ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "only 0 bytes"),
        (b"GG", "only 2 bytes"),
        (b"GGML" + bytes(40), "magic is 47474d4c"),
        (b"<!DOCTYPE html><html>" + bytes(40), "an HTML page"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n", "Git LFS pointer"),
        (struct.pack("<Q", 100) + b'{"__metadata__": {}}' + bytes(80), "safetensors"),
        (b"tjgg" + bytes(40), "pre-GGUF GGJT"),
        (b"GGUF" + struct.pack(">I", 3) + bytes(16), "big-endian GGUF"),
        (b"GGUF" + struct.pack("<I", 1) + bytes(16), "version 1 is not supported"),
        (b"GGUF" + struct.pack("<I", 4) + bytes(16), "unsupported GGUF version 4"),
        (b"GGUF" + struct.pack("<I", 0) + bytes(16), "unsupported GGUF version 0"),
        (b"GGUF\x03\x00\x00\x00\x00", r"truncated in the fixed header"),
    ],
)
def test_not_gguf_or_bad_fixed_header(data: bytes, message: str) -> None:
    fails(data, message)


def test_counts_beyond_the_file() -> None:
    fails(gguf([ARCH], n_kv=(1 << 63) + 5), "negative as a signed 64-bit")
    fails(gguf([ARCH], n_kv=10**9), r"truncated in the fixed header .*: it declares 0 tensors and 1000000000 "
                                     r"metadata keys, which need at least 14000000000 bytes, but only \d+ bytes follow")
    fails(gguf([ARCH], n_tensors=10**12), "declares 1000000000000 tensors")
    fails(gguf([ARCH], n_kv=10**12), "more than any real|which need at least", size=None)
    # plausible count, unknown size: the reader finds out by running out of bytes
    fails(gguf([ARCH], n_kv=5, align=1), r"truncated in metadata key 2 of 5 \(its name\)", size=None)


def test_truncation_message_names_the_key() -> None:
    kvs = [ARCH] + [u32(f"k.{i}", i) for i in range(2, 17)] + [kv("k.17", 8, s("x" * 100))]
    kvs += [u32("k.18", 1), u32("k.19", 1), u32("k.20", 1)]
    data = gguf(kvs)
    cut = data.index(b"x" * 100) + 50
    err = fails(data[:cut], r"truncated in metadata key 17 of 20 \('k.17'\): string length 100 runs past the "
                             r"end of the file \(50 bytes left\)")
    assert err.hint and "download it again" in err.hint
    fails(data[:cut], r"truncated in metadata key 17 of 20 \('k.17'\): 108 bytes needed at offset \d+, "
                      r"source ended", size=None)


def test_lengths_and_counts_beyond_the_file() -> None:
    fails(gguf([struct.pack("<Q", 1 << 40) + b"k"]), r"truncated in metadata key 1 of 1 \(its name\): key length 1099511627776 runs past")
    fails(gguf([struct.pack("<Q", 1 << 40) + b"k"]), r"key length 1099511627776 in metadata key 1 of 1 \(its name\) is beyond any real", size=None)
    fails(gguf([kv("k", 8, struct.pack("<Q", 10**6) + b"abc")]), r"truncated in metadata key 1 of 1 \('k'\): string length 1000000 runs past")
    fails(gguf([kv("k", 9, struct.pack("<IQ", 4, 10**9))]), r"truncated in metadata key 1 of 1 \('k'\): array declares 1000000000 elements")
    fails(gguf([kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 10**6) + s("a"))]), "declares 1000000 elements")
    # a string array whose lengths walk off the end (skipped, not decoded)
    strings = b"".join(s("tok") for _ in range(10)) + struct.pack("<Q", 1 << 50)
    fails(gguf([kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 12) + strings)]),
          r"truncated in metadata key 1 of 1 \('tokenizer.ggml.tokens'\), string 12 of 12")
    # huge count of nothing when the size is unknown: refused before allocating anything
    fails(gguf([kv("k", 9, struct.pack("<IQ", 4, 1 << 60))]), "more than any real GGUF header", size=None)


def test_bad_types() -> None:
    fails(gguf([kv("k", 13, b"\0" * 8)]), r"unknown value type 13 in metadata key 1 of 1 \('k'\)")
    fails(gguf([kv("k", 99, b"")]), "unknown value type 99")
    fails(gguf([kv("k", 9, struct.pack("<IQ", 77, 1) + b"\0" * 8)]), "unknown array element type 77")
    nested = struct.pack("<IQ", 9, 1) * 9 + struct.pack("<IQ", 4, 0)
    fails(gguf([kv("k", 9, nested)]), "nested more than 8 deep")
    fails(gguf([kv("tokenizer.ggml.merges", 9, nested)]), "nested more than 8 deep")
    fails(gguf([ARCH], [ti("w", (32,), 42)], data=128), r"tensor 'w' has unknown ggml type id 42")
    err = fails(gguf([ARCH], [ti("w", (32,), 4)], data=128), "unknown ggml type id 4")
    assert "gguf" in (err.hint or "")


def test_keys_and_names() -> None:
    fails(gguf([u32("", 1)]), "metadata key 1 of 1 is empty")
    fails(gguf([ARCH, u32("a", 1), u32("a", 2)]), r"duplicate metadata key 'a' \(key 3 of 3\)")
    fails(gguf([ARCH], [ti("w", (32,)), ti("w", (32,), 0, 128)], data=256), "duplicate tensor name 'w'")
    fails(gguf([ARCH], [ti("w" * 64, (32,))], data=128), "tensor name length 64 .* not below ggml's limit")
    parse(gguf([ARCH], [ti("w" * 63, (32,))], data=128))  # 63 is fine


def test_shapes() -> None:
    fails(gguf([ARCH], [ti("w", (1, 1, 1, 1, 1))], data=32), "has 5 dimensions; ggml allows at most 4")
    fails(gguf([ARCH], [ti("w", (1 << 32, 1 << 32))], data=32), r"shape \(4294967296, 4294967296\) .* overflows 64 bits")
    fails(gguf([ARCH], [ti("w", (0, 1 << 63))], data=32), "beyond 64-bit signed range")
    fails(gguf([ARCH], [ti("w", (100, 2), 12)], data=32), "type Q4_K has rows of 100 elements, not a multiple of its block size 256")
    h = parse(gguf([ARCH], [ti("w", (0, 1 << 62))], data=32))  # empty tensors are fine
    assert h.tensors[0].nbytes == 0


def test_offsets() -> None:
    fails(gguf([ARCH], [ti("a", (32,)), ti("b", (8,), 0, 129)], data=512), "offset 129, not a multiple of the alignment 32")
    fails(gguf([ARCH], [ti("a", (32,)), ti("b", (8,), 0, 96)], data=512), r"tensors 'a' \(offset 0, 128 bytes\) and 'b' \(offset 96\) overlap")
    fails(gguf([ARCH], [ti("b", (8,), 0, 64), ti("a", (32,), 0, 0)], data=512), "'a' .* and 'b' .* overlap")
    fails(gguf([ARCH], [ti("a", (32,)), ti("b", (32,), 0, 128)], data=200), r"tensor 'b' \(offset 128, 128 bytes.*extends past the end of the file")
    fails(gguf([ARCH], [ti("a", (32,), 0, (1 << 64) - 64)]), "extends past any 64-bit offset", size=None)
    header_only = gguf([ARCH], [ti("a", (32,))])
    fails(header_only[: len(header_only) - 8], "tensor data would start at offset .* past the end of the file")
    # a gap between tensors is allowed (nothing overlaps, everything is inside the file)
    h = parse(gguf([ARCH], [ti("a", (32,)), ti("b", (8,), 0, 1024)], data=1056))
    assert [t.offset for t in h.tensors] == [0, 1024]


def test_alignment_key() -> None:
    fails(gguf([kv("general.alignment", 10, struct.pack("<Q", 32))]), "general.alignment must be a uint32, but is a uint64")
    fails(gguf([u32("general.alignment", 0)]), "general.alignment 0 is not a power of two")
    fails(gguf([u32("general.alignment", 48)], align=16), "general.alignment 48 is not a power of two")
    h = parse(gguf([u32("general.alignment", 64)], [ti("a", (32,))], data=128, align=64))
    assert h.alignment == 64 and h.data_offset % 64 == 0


def test_skipped_numeric_array_past_end_with_unknown_size() -> None:
    # the skipped bytes are never read, so the reader must still prove the file holds them
    data = gguf([kv("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 100) + bytes(400))], align=1)
    assert parse(data, size=None).metadata["tokenizer.ggml.scores"].count == 100
    fails(data[:-60], r"truncated in metadata key 1 of 1 \('tokenizer.ggml.scores'\), array of 100 elements",
          size=None)
    fails(data[:-60], r"truncated in metadata key 1 of 1 \('tokenizer.ggml.scores'\): array declares 100 "
                      r"elements, which need at least 400 bytes, but only 340")


# --- the corpus -----------------------------------------------------------------------------------

SMALL = ModelShape(n_vocab=48, n_layer=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, int]]:
    """Headers of small realistic models of several architectures: (header bytes, file size)."""
    root = tmp_path_factory.mktemp("corrupt")
    out = {}
    for arch in ("llama", "qwen3moe", "gemma3", "deepseek2", "jamba", "clip"):
        path = ggufgen.write_model(root / f"{arch}.gguf", arch, SMALL)[0]
        data, size, _ = header_bytes(path)
        out[arch] = (data, size)
    return out


def _outcome(src) -> GGUFHeader | GGUFError:
    t = time.perf_counter()
    try:
        result: GGUFHeader | GGUFError = parse_header(src)
    except GGUFError as e:
        result = e
    assert time.perf_counter() - t < 2.0, f"{src.name}: parse took too long"
    return result


def test_truncation_at_every_section_boundary(corpus: dict[str, tuple[bytes, int]]) -> None:
    for arch, (data, size) in corpus.items():
        lay = scan_layout(data)
        cuts = sorted(set(lay.sections() + lay.boundaries) - {lay.header_end})
        for cut in cuts:
            for read_ahead in (0, None):
                for known in (True, False):
                    src = SparseSource(data[:cut], cut, report_size=known, read_ahead=read_ahead)
                    err = _outcome(src)
                    assert isinstance(err, GGUFError), (arch, cut)
                    assert any(w in err.message for w in ("truncated", "past the end", "not a GGUF")), err.message
        # inside entry k, the message names entry k (size unknown: found where the bytes end;
        # with the size known the reader may refuse a count or length before it gets there)
        for k, (start, end, key) in enumerate(lay.kv_spans):
            err = _outcome(SparseSource(data[: end - 1], end - 1, report_size=False))
            assert f"truncated in metadata key {k + 1} of {lay.n_kv} ({key!r})" in err.message
        for k, (start, end, name) in enumerate(lay.ti_spans):
            err = _outcome(SparseSource(data[: end - 1], end - 1, report_size=False))
            assert f"truncated in tensor info {k + 1} of {lay.n_tensors} ({name!r})" in err.message
        # cuts inside the tensor data: the header is whole, the tensors are not
        for cut in (lay.header_end, lay.header_end + 1, size // 2, size - 1):
            err = _outcome(SparseSource(data, cut))
            assert isinstance(err, GGUFError) and "past the end of the file" in err.message
        assert isinstance(_outcome(SparseSource(data, size)), GGUFHeader)


def test_truncation_at_every_offset(corpus: dict[str, tuple[bytes, int]]) -> None:
    data, size = corpus["llama"]
    for cut in range(len(data)):
        assert isinstance(_outcome(MemorySource(data[:cut], "t")), GGUFError), cut
    step = max(1, len(data) // 300)
    for cut in range(0, len(data), step):
        assert isinstance(_outcome(SparseSource(data[:cut], None, report_size=False, read_ahead=None)), GGUFError)


def _check_invariants(h: GGUFHeader) -> None:
    assert h.data_offset % h.alignment == 0
    spans = sorted((t.offset, t.offset + t.nbytes) for t in h.tensors if t.nbytes)
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a1 <= b0
    for t in h.tensors:
        assert t.offset % h.alignment == 0 and t.nbytes >= 0 and len(t.shape) <= 4
        if h.file_size is not None:
            assert h.data_offset + t.offset + t.nbytes <= h.file_size
    assert len({t.name for t in h.tensors}) == len(h.tensors)


def test_flipped_bytes(corpus: dict[str, tuple[bytes, int]]) -> None:
    rng = random.Random(6)
    parsed = failed = 0
    for arch, (data, size) in corpus.items():
        positions = range(len(data)) if arch == "llama" else rng.sample(range(len(data)), 400)
        for at in positions:
            for mask in (0xFF, 1 << rng.randrange(8)):
                buf = bytearray(data)
                buf[at] ^= mask
                out = _outcome(SparseSource(bytes(buf), size))
                if isinstance(out, GGUFHeader):
                    _check_invariants(out)
                    parsed += 1
                else:
                    failed += 1
    assert parsed > 100 and failed > 1000  # both outcomes are exercised


def test_huge_counts_and_lengths_in_every_field(corpus: dict[str, tuple[bytes, int]]) -> None:
    for arch in ("llama", "deepseek2", "clip"):
        data, size = corpus[arch]
        lay = scan_layout(data)
        fields = lay.counts + lay.lengths[:: max(1, len(lay.lengths) // 30)] + [d for ds in lay.dims for d in ds]
        fields += lay.offsets
        for at in fields:
            for value in HOSTILE_U64 + (size, size - at, len(data)):
                buf = bytes(struct.pack_into("<Q", b := bytearray(data), at, value) or b)
                # size known + local reads; size unknown + remote read-ahead
                for out in (_outcome(SparseSource(buf, size)),
                            _outcome(SparseSource(buf, size, report_size=False, read_ahead=None))):
                    if isinstance(out, GGUFHeader):
                        _check_invariants(out)


def test_memory_is_not_proportional_to_declared_counts(corpus: dict[str, tuple[bytes, int]]) -> None:
    data, size = corpus["llama"]
    lay = scan_layout(data)
    tracemalloc.start()
    try:
        for at in lay.counts + lay.lengths[:: max(1, len(lay.lengths) // 6)]:
            for value in (1 << 27, 1 << 40, (1 << 64) - 1):
                buf = bytearray(data)
                struct.pack_into("<Q", buf, at, value)
                for known in (True, False):
                    before = tracemalloc.get_traced_memory()[0]
                    tracemalloc.reset_peak()
                    try:  # (not _outcome: a kept exception would keep its parse's buffers alive)
                        parse_header(SparseSource(bytes(buf), 1 << 40, report_size=known, read_ahead=None))
                    except GGUFError:
                        pass
                    grew = tracemalloc.get_traced_memory()[1] - before
                    # read-ahead buffers (<= 2 x 16 MiB), not the declared size (GiBs to EiBs here)
                    assert grew < 40 << 20, (at, value, grew)
    finally:
        tracemalloc.stop()


def test_duplicated_entries(corpus: dict[str, tuple[bytes, int]]) -> None:
    data, size = corpus["qwen3moe"]
    lay = scan_layout(data)
    for start, end, key in lay.kv_spans:
        buf = bytearray(data[:end] + data[start:end] + data[end:])
        struct.pack_into("<Q", buf, 16, lay.n_kv + 1)
        err = _outcome(SparseSource(bytes(buf), size + end - start))
        assert isinstance(err, GGUFError) and f"duplicate metadata key {key!r}" in err.message
    for start, end, name in lay.ti_spans:
        buf = bytearray(data[:end] + data[start:end] + data[end:])
        struct.pack_into("<Q", buf, 8, lay.n_tensors + 1)
        err = _outcome(SparseSource(bytes(buf), size + end - start))
        assert isinstance(err, GGUFError) and f"duplicate tensor name {name!r}" in err.message


def test_overlapping_and_out_of_range_offsets(corpus: dict[str, tuple[bytes, int]]) -> None:
    data, size = corpus["deepseek2"]
    lay = scan_layout(data)
    offsets = [struct.unpack_from("<Q", data, at)[0] for at in lay.offsets]
    for i, at in enumerate(lay.offsets[1:], 1):
        buf = bytearray(data)
        struct.pack_into("<Q", buf, at, offsets[i - 1])  # same start as the previous tensor
        err = _outcome(SparseSource(bytes(buf), size))
        assert isinstance(err, GGUFError) and "overlap" in err.message
    last = lay.offsets[-1]
    for value in (size, offsets[-1] + 32 * 1024, (1 << 64) - 32):
        buf = bytearray(data)
        struct.pack_into("<Q", buf, last, value)
        err = _outcome(SparseSource(bytes(buf), size))
        assert isinstance(err, GGUFError) and "past the end of the file" in err.message


def test_dimension_overflow_in_every_tensor(corpus: dict[str, tuple[bytes, int]]) -> None:
    data, size = corpus["qwen3moe"]
    lay = scan_layout(data)
    for dims in lay.dims:
        if len(dims) < 2:
            continue
        buf = bytearray(data)
        for at in dims:
            struct.pack_into("<Q", buf, at, 1 << 32)
        err = _outcome(SparseSource(bytes(buf), size))
        assert isinstance(err, GGUFError) and "overflows 64 bits" in err.message


def test_caps_bound_time_and_memory_whatever_the_file_says() -> None:
    huge = 1 << 30  # a virtual file big enough to hold what is declared
    fails(gguf([ARCH], n_kv=70000), "declares 70000 metadata keys; memfit accepts at most 65536", size=huge)
    fails(gguf([ARCH], n_tensors=300000), "declares 300000 tensors; memfit accepts at most 262144", size=huge)
    many_inner = struct.pack("<IQ", 9, 70000) + struct.pack("<IQ", 4, 0) * 70000
    fails(gguf([kv("x.nested", 9, many_inner)]), "more than 65536 nested arrays")
    fails(gguf([kv("tokenizer.x", 9, many_inner)]), "more than 65536 nested arrays")  # skipped ones too
    # past a total of 2**20 decoded elements, arrays are counted instead of decoded
    kvs = [kv(f"x.k{i}", 9, struct.pack("<IQ", 0, 1000) + bytes(1000)) for i in range(1100)]
    m = parse(gguf(kvs)).metadata
    assert m["x.k0"] == [0] * 1000
    assert m["x.k1099"].count == 1000 and len([v for v in m.values() if isinstance(v, list)]) == 1048
