"""The GGUF header reader on well-formed files: agreement with gguf.GGUFReader, what is skipped,
shards, sizes, read behaviour and speed."""

from __future__ import annotations

import math
import os
import struct
import time
from pathlib import Path
from typing import Any

import gguf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.testing import ggufgen
from planner.testing.ggufgen import ARCHS, ModelShape, Q, V, typed, write_gguf, write_gguf_split, write_model
from planner.errors import GGUFError, ResolveError
from planner.header import GGUFHeader, ModelHeaders, SkippedArray
from planner.reader import parse_file, parse_header
from planner.sources import LocalFileSource, MemorySource


def _pad(n: int, align: int) -> int:
    return n + (-n % align)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _flatten(v: Any) -> list[Any]:
    if isinstance(v, list):
        return [x for item in v for x in _flatten(item)]
    return [v]


def assert_matches_gguf_reader(h: GGUFHeader, path: Path) -> None:
    """Our header says exactly what gguf.GGUFReader says about the same file."""
    r = gguf.GGUFReader(path)
    fields = {k: f for k, f in r.fields.items() if not k.startswith("GGUF.")}
    assert list(h.metadata) == list(fields)
    for key, f in fields.items():
        ours = h.metadata[key]
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            element_type, count = int(f.parts[3][0]), int(f.parts[4][0])
            if isinstance(ours, SkippedArray):
                assert (ours.element_type, ours.count) == (element_type, count), key
                continue
            assert len(ours) == count, key
            if f.types[1] == gguf.GGUFValueType.ARRAY:  # gguf flattens nested arrays
                assert _same(_flatten(ours), f.contents()), key
                continue
        assert _same(ours, f.contents()), (key, ours, f.contents())
    assert h.version == r.fields["GGUF.version"].contents()
    assert h.alignment == r.alignment
    assert h.data_offset == r.data_offset
    assert len(h.tensors) == len(r.tensors)
    for t, rt in zip(h.tensors, r.tensors):
        assert t.name == rt.name
        assert t.shape == tuple(int(d) for d in rt.shape)
        assert t.ggml_type == int(rt.tensor_type)
        assert h.data_offset + t.offset == rt.data_offset
        assert t.nbytes == rt.n_bytes
        assert t.n_elements == rt.n_elements


def assert_sizes_add_up(h: GGUFHeader) -> None:
    """Header + padding + every tensor padded to the alignment == the file size."""
    assert h.data_offset % h.alignment == 0
    assert h.data_offset + sum(_pad(t.nbytes, h.alignment) for t in h.tensors) == h.file_size


# --- realistic models ---------------------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_each_architecture_matches_gguf_reader(arch_models: dict[str, Path], arch: str) -> None:
    path = arch_models[arch]
    h = parse_file(path)
    assert h.architecture == arch
    assert h.file_size == os.path.getsize(path)
    assert h.source == str(path)
    assert_matches_gguf_reader(h, path)
    assert_sizes_add_up(h)


def test_realistic_model_values(arch_models: dict[str, Path]) -> None:
    h = parse_file(arch_models["qwen3moe"])
    m = h.metadata
    assert m["qwen3moe.block_count"] == 2
    assert m["qwen3moe.expert_count"] == 4
    assert m["qwen3moe.rope.freq_base"] == 1_000_000.0
    assert m["general.tags"] == ["text-generation", "test"]
    assert m["tokenizer.ggml.tokens"] == SkippedArray(int(V.STRING), 256)
    assert m["tokenizer.ggml.token_type"] == SkippedArray(int(V.INT32), 256)
    assert isinstance(m["tokenizer.ggml.merges"], SkippedArray)
    assert m["tokenizer.chat_template"].startswith("{% for message in messages %}")
    exps = next(h.iter_tensors("blk.1.ffn_down_exps"))
    assert exps.shape == (256, 256, 4)
    assert exps.ggml_type == int(Q.Q6_K)
    assert exps.nbytes == 256 * 256 * 4 // 256 * 210
    # per-layer arrays are decoded, never skipped
    assert parse_file(arch_models["jamba"]).metadata["jamba.attention.head_count_kv"] == [0, 0]
    assert parse_file(arch_models["gemma3"]).metadata["gemma3.attention.sliding_window_pattern"] == [True, True]


def test_big_vocabulary_header(big_vocab_model: Path) -> None:
    h = parse_file(big_vocab_model)
    assert h.metadata["tokenizer.ggml.tokens"] == SkippedArray(int(V.STRING), 152064)
    assert h.metadata["tokenizer.ggml.merges"].count == 152064 - 549
    assert h.metadata["qwen2.embedding_length"] == 3584
    assert len(h.tensors) == 3 + 28 * 12
    assert_sizes_add_up(h)
    assert h.file_size > 4 << 30  # a 7B Q4_K_M-sized (sparse) file


def test_big_vocabulary_is_not_decoded(big_vocab_model: Path) -> None:
    """A guard, not the speed claim (bench/bench_reader.py measures that side by side with
    gguf.GGUFReader: ~27 ms vs 7.5 s). Decoding the 152k-token arrays would take seconds."""
    best = math.inf
    for _ in range(5):  # best of 5: other processes on a 2-core machine add noise, not work
        t = time.perf_counter()
        parse_file(big_vocab_model)
        best = min(best, time.perf_counter() - t)
    assert best < 0.5, f"152k-vocab header took {best * 1000:.0f} ms"


# --- generated files: differential test against gguf.GGUFReader ---------------------------------

_INT_RANGES = {
    V.UINT8: (0, 2**8 - 1), V.INT8: (-(2**7), 2**7 - 1), V.UINT16: (0, 2**16 - 1),
    V.INT16: (-(2**15), 2**15 - 1), V.UINT32: (0, 2**32 - 1), V.INT32: (-(2**31), 2**31 - 1),
    V.UINT64: (0, 2**64 - 1), V.INT64: (-(2**63), 2**63 - 1),
}


def _scalar(vtype: V) -> st.SearchStrategy[Any]:
    if vtype in _INT_RANGES:
        lo, hi = _INT_RANGES[vtype]
        return st.integers(lo, hi)
    if vtype == V.FLOAT32:
        return st.floats(width=32)
    if vtype == V.FLOAT64:
        return st.floats()
    if vtype == V.BOOL:
        return st.booleans()
    return st.text(max_size=40)


_SCALAR_TYPES = [t for t in V if t != V.ARRAY]


@st.composite
def _value(draw: st.DrawFn) -> typed:
    kind = draw(st.sampled_from(["scalar"] * 4 + ["array", "long_array", "nested"]))
    if kind == "scalar":
        vtype = draw(st.sampled_from(_SCALAR_TYPES))
        return typed(draw(_scalar(vtype)), vtype)
    if kind == "nested":  # the writer types inner arrays itself (int -> INT32, str -> STRING)
        inner = draw(st.sampled_from([st.integers(-(2**31), 2**31 - 1), st.text(max_size=8)]))
        return typed(draw(st.lists(st.lists(inner, min_size=1, max_size=5), min_size=1, max_size=5)),
                     V.ARRAY, V.ARRAY)
    etype = draw(st.sampled_from(_SCALAR_TYPES))
    if kind == "long_array":  # around the decode threshold
        n = draw(st.integers(1000, 1100))
        return typed([draw(_scalar(etype))] * n, V.ARRAY, etype)
    return typed(draw(st.lists(_scalar(etype), min_size=1, max_size=12)), V.ARRAY, etype)


@st.composite
def _tensor(draw: st.DrawFn, index: int) -> tuple[str, tuple[int, ...], Q]:
    qtype = draw(st.sampled_from(sorted(gguf.GGML_QUANT_SIZES)))
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    n_dims = draw(st.integers(1, 4))
    shape = (block * draw(st.integers(1, 3)),) + tuple(draw(st.integers(1, 4)) for _ in range(n_dims - 1))
    return f"blk.{index}.{draw(st.sampled_from(['attn_q', 'ffn_up', 'x']))}.weight", shape, qtype


@st.composite
def _gguf_spec(draw: st.DrawFn) -> tuple[dict[str, Any], list, int | None]:
    keys = draw(st.lists(st.text("abcdefghijklmnopqrstuvwxyz._", min_size=1, max_size=16),
                         max_size=10, unique=True))
    meta: dict[str, Any] = {"general.architecture": draw(st.sampled_from(sorted(ARCHS)))}
    for k in keys:
        if k not in meta and k != "general.alignment":
            meta[k] = draw(_value())
    n = draw(st.integers(0, 8))
    tensors = [draw(_tensor(i)) for i in range(n)]
    alignment = draw(st.sampled_from([None, 1, 8, 32, 64, 256]))
    return meta, tensors, alignment


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(spec=_gguf_spec())
def test_differential_against_gguf_reader(tmp_path: Path, spec: tuple) -> None:
    meta, tensors, alignment = spec
    path = write_gguf(tmp_path / "x.gguf", meta, tensors, alignment=alignment)
    h = parse_file(path)
    assert_matches_gguf_reader(h, path)
    if tensors:
        assert_sizes_add_up(h)
    # the same bytes through other sources give the same header
    data = path.read_bytes()
    for src in (MemorySource(data, "m"), MemorySource(data, "m", size=None)):
        other = parse_header(src)
        assert (other.metadata.keys(), other.tensors, other.data_offset) == (h.metadata.keys(), h.tensors, h.data_offset)


# --- value decoding and skipping ------------------------------------------------------------------


def test_every_scalar_type_decodes_exactly(tmp_path: Path) -> None:
    values = {
        "u8": typed(255, V.UINT8), "i8": typed(-128, V.INT8), "u16": typed(65535, V.UINT16),
        "i16": typed(-32768, V.INT16), "u32": typed(2**32 - 1, V.UINT32), "i32": typed(-(2**31), V.INT32),
        "f32": typed(0.1, V.FLOAT32), "b": typed(True, V.BOOL), "s": typed("héllo ✓", V.STRING),
        "u64": typed(2**64 - 1, V.UINT64), "i64": typed(-(2**63), V.INT64), "f64": typed(0.1, V.FLOAT64),
        "empty": typed("", V.STRING),
    }
    h = parse_file(write_gguf(tmp_path / "s.gguf", {"general.architecture": "llama", **values}, []))
    m = h.metadata
    assert m["u8"] == 255 and m["i8"] == -128 and m["u16"] == 65535 and m["i16"] == -32768
    assert m["u32"] == 2**32 - 1 and m["i32"] == -(2**31)
    assert m["u64"] == 2**64 - 1 and m["i64"] == -(2**63)
    assert m["f32"] == struct.unpack("<f", struct.pack("<f", 0.1))[0] and m["f64"] == 0.1
    assert m["b"] is True and m["s"] == "héllo ✓" and m["empty"] == ""
    assert h.tensors == [] and h.data_offset % 32 == 0


def test_nested_arrays_decode_and_skip_per_level(tmp_path: Path) -> None:
    big_inner = list(range(2000))
    meta = {
        "general.architecture": "llama",
        "x.nested": typed([[1, 2], [3], [4, 5, 6]], V.ARRAY, V.ARRAY),
        "x.strings": typed([["a", "b"], ["c"]], V.ARRAY, V.ARRAY),
        "x.mixed": typed([[1], big_inner], V.ARRAY, V.ARRAY),
    }
    path = write_gguf(tmp_path / "n.gguf", meta, [])
    m = parse_file(path).metadata
    assert m["x.nested"] == [[1, 2], [3], [4, 5, 6]]
    assert m["x.strings"] == [["a", "b"], ["c"]]
    assert m["x.mixed"] == [[1], SkippedArray(int(V.INT32), 2000)]  # inner arrays obey the limit too
    del meta["x.mixed"]
    path = write_gguf(tmp_path / "n2.gguf", meta, [])
    assert_matches_gguf_reader(parse_file(path), path)


def test_skip_rules(tmp_path: Path) -> None:
    meta = {
        "general.architecture": "llama",
        "tokenizer.ggml.tokens": typed(["a", "b", "c"], V.ARRAY, V.STRING),  # skipped even when small
        "tokenizer.ggml.precompiled_charsmap": typed([7] * 5000, V.ARRAY, V.UINT8),
        "general.many_strings": typed(["s"] * 1025, V.ARRAY, V.STRING),
        "general.few_strings": typed(["s"] * 1024, V.ARRAY, V.STRING),
        "llama.per_layer": typed(list(range(3000)), V.ARRAY, V.UINT32),  # numbers: decoded
        "llama.too_many_numbers": typed([1] * 70000, V.ARRAY, V.UINT8),
    }
    m = parse_file(write_gguf(tmp_path / "k.gguf", meta, [("t", (32,), Q.F32)])).metadata
    assert m["tokenizer.ggml.tokens"] == SkippedArray(int(V.STRING), 3)
    assert m["tokenizer.ggml.precompiled_charsmap"] == SkippedArray(int(V.UINT8), 5000)
    assert m["general.many_strings"] == SkippedArray(int(V.STRING), 1025)
    assert m["general.few_strings"] == ["s"] * 1024
    assert m["llama.per_layer"] == list(range(3000))
    assert m["llama.too_many_numbers"] == SkippedArray(int(V.UINT8), 70000)
    assert len(m["tokenizer.ggml.tokens"]) == 3


def test_empty_array_and_v2(tmp_path: Path) -> None:
    # the gguf writer refuses empty arrays; build one by hand
    body = (
        struct.pack("<Q", 6) + b"x.none" + struct.pack("<IIQ", 9, 4, 0)
        + struct.pack("<Q", 1) + b"t" + struct.pack("<IQIQ", 1, 32, 0, 0)
    )
    for version in (2, 3):
        data = b"GGUF" + struct.pack("<IQQ", version, 1, 1) + body
        data += bytes(-len(data) % 32) + bytes(128)
        h = parse_header(MemorySource(data))
        assert h.version == version
        assert h.metadata == {"x.none": []}
        assert h.tensors[0].nbytes == 128 and h.data_offset == len(data) - 128


def test_custom_alignment(tmp_path: Path) -> None:
    for align in (1, 8, 64, 4096):
        path = write_gguf(tmp_path / f"a{align}.gguf", {"general.architecture": "llama"},
                          [("a", (33 if align == 1 else 32, 3), Q.F32), ("b", (64,), Q.Q8_0)], alignment=align)
        h = parse_file(path)
        assert h.alignment == align
        assert_sizes_add_up(h)
        assert_matches_gguf_reader(h, path)


def test_vocab_only_file_has_no_tensors(tmp_path: Path) -> None:
    meta = {"general.architecture": "llama", **ggufgen.tokenizer_metadata(5000)}
    path = write_gguf(tmp_path / "vocab.gguf", meta, [])
    h = parse_file(path)
    assert h.tensors == [] and h.tensor_bytes == 0
    assert h.metadata["tokenizer.ggml.tokens"].count == 5000
    assert_matches_gguf_reader(h, path)


# --- shards ---------------------------------------------------------------------------------------


def test_split_model_shards_merge(tmp_path: Path) -> None:
    shape = ModelShape(n_layer=4)
    single = parse_file(write_model(tmp_path / "one.gguf", "qwen3moe", shape)[0])
    paths = write_model(tmp_path / "m.gguf", "qwen3moe", shape, shards=3)
    assert [p.name for p in paths] == [f"m-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    shards = [parse_file(p) for p in paths]
    for i, (h, p) in enumerate(zip(shards, paths)):
        assert h.metadata["split.no"] == i and h.metadata["split.count"] == 3
        assert h.metadata["split.tensors.count"] == len(single.tensors)
        assert h.file_size == os.path.getsize(p)
        assert_sizes_add_up(h)
        assert_matches_gguf_reader(h, p)
    assert "general.architecture" not in shards[1].metadata  # only the first shard has it
    model = ModelHeaders.merge(shards)
    assert model.architecture == "qwen3moe"
    assert [t.name for t in model.tensors] == [t.name for t in single.tensors]
    assert model.tensor_bytes == single.tensor_bytes
    assert model.file_size == sum(os.path.getsize(p) for p in paths)


def test_split_by_hand_with_uneven_shards(tmp_path: Path) -> None:
    meta, tensors = ggufgen.model_spec("llama", ModelShape(n_layer=3))
    paths = write_gguf_split(tmp_path / "h.gguf", meta, tensors, 2)
    merged = ModelHeaders.merge([parse_file(p) for p in paths])
    assert len(merged.tensors) == len(tensors)
    assert merged.tensor_bytes == sum(ggufgen.tensor_nbytes(s, q) for _, s, q in tensors)


# --- how bytes are read ---------------------------------------------------------------------------


class RecordingSource(LocalFileSource):
    def __init__(self, path: Path, read_ahead: int | None = None) -> None:
        super().__init__(path)
        if read_ahead is not None:
            self.read_ahead = read_ahead
        self.reads: list[tuple[int, int, int]] = []  # offset, asked, got

    def read(self, offset: int, n: int) -> bytes:
        data = super().read(offset, n)
        self.reads.append((offset, n, len(data)))
        return data


def _header_end(h: GGUFHeader) -> int:
    """Where the last tensor info ends (before the padding)."""
    from planner.testing.ggufmutate import scan_layout

    with open(h.source, "rb") as f:
        return scan_layout(f.read(h.data_offset)).header_end


def test_local_reads_never_touch_tensor_data(arch_models: dict[str, Path], big_vocab_model: Path) -> None:
    for path in [*arch_models.values(), big_vocab_model]:
        src = RecordingSource(path)
        h = parse_header(src)
        furthest = max(o + got for o, _, got in src.reads)
        assert furthest == _header_end(h), path.name
        assert furthest <= h.data_offset


def test_remote_style_reads_are_few_and_big(big_vocab_model: Path, arch_models: dict[str, Path]) -> None:
    src = RecordingSource(big_vocab_model, read_ahead=1 << 20)
    h = parse_header(src)
    fetched = sum(got for *_, got in src.reads)
    assert len(src.reads) <= 4
    assert src.reads[0][1] >= 1 << 20
    # the skipped token-type array is never fetched; over-read is at most one read-ahead chunk
    assert fetched <= h.data_offset + (1 << 20)
    small = RecordingSource(arch_models["llama"], read_ahead=1 << 20)
    parse_header(small)
    assert len(small.reads) == 1  # a small header: a single request


def test_source_read_ahead_hint_is_honoured(big_vocab_model: Path) -> None:
    src = RecordingSource(big_vocab_model, read_ahead=4096)
    parse_header(src)
    assert 4096 <= src.reads[0][1] <= 4096 + 64
    assert len(src.reads) < 40


def test_unknown_size_source_gives_same_header(big_vocab_model: Path) -> None:
    class NoSize(LocalFileSource):
        read_ahead = 1 << 20

        @property
        def size(self) -> int | None:
            return None

    h = parse_header(NoSize(big_vocab_model))
    ref = parse_file(big_vocab_model)
    assert h.file_size is None
    assert (h.metadata, h.tensors, h.data_offset) == (ref.metadata, ref.tensors, ref.data_offset)


def test_source_errors_pass_through_and_oserror_becomes_gguf_error(arch_models: dict[str, Path]) -> None:
    from planner.errors import HubError

    class Failing(LocalFileSource):
        def __init__(self, path: Path, exc: Exception) -> None:
            super().__init__(path)
            self.exc = exc

        def read(self, offset: int, n: int) -> bytes:
            raise self.exc

    with pytest.raises(HubError):
        parse_header(Failing(arch_models["llama"], HubError("gated")))
    with pytest.raises(GGUFError, match="read of"):
        parse_header(Failing(arch_models["llama"], OSError(5, "Input/output error")))


def test_local_file_source_errors(tmp_path: Path) -> None:
    with pytest.raises(ResolveError, match="no such file"):
        parse_file(tmp_path / "missing.gguf")
    with pytest.raises(ResolveError, match="not a regular file"):
        LocalFileSource(tmp_path)
    src = LocalFileSource(write_gguf(tmp_path / "x.gguf", {"general.architecture": "llama"}, []))
    assert src.read(src.size, 10) == b"" and src.read(0, 0) == b""
    assert src.read(0, 1 << 62)[:4] == b"GGUF"  # never asks the OS for more than the file
