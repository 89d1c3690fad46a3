"""Property tests: whatever hostile variant of a valid header the reader gets, it returns a
GGUFHeader or raises GGUFError, quickly, and a header it returns is self-consistent.
(fuzz/fuzz_reader.py runs the same mutators for 100,000+ executions.)"""

from __future__ import annotations

import random
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.testing import ggufgen
from planner.testing.ggufgen import ModelShape
from planner.testing.ggufmutate import Layout, SparseSource, header_bytes, mutate, scan_layout
from planner.errors import GGUFError
from planner.header import GGUFHeader
from planner.reader import parse_header

ARCHS = sorted(ggufgen.ARCHS)
FUZZ = settings(max_examples=250, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, int, Layout]]:
    root = tmp_path_factory.mktemp("fuzz_corpus")
    shape = ModelShape(n_vocab=40, n_layer=2)
    return {a: header_bytes(ggufgen.write_model(root / f"{a}.gguf", a, shape)[0]) for a in ARCHS}


def outcome(src) -> GGUFHeader | GGUFError:
    """Parse; anything but a header or a GGUFError fails the test (as does taking > 1 s)."""
    t = time.perf_counter()
    try:
        result: GGUFHeader | GGUFError = parse_header(src)
    except GGUFError as e:
        assert e.message.startswith(src.name + ": ") and e.message.strip()
        result = e
    assert time.perf_counter() - t < 1.0
    if isinstance(result, GGUFHeader):
        check_consistent(result)
    return result


def check_consistent(h: GGUFHeader) -> None:
    assert h.version in (2, 3)
    assert h.alignment > 0 and h.alignment & (h.alignment - 1) == 0
    assert h.data_offset % h.alignment == 0
    assert len({t.name for t in h.tensors}) == len(h.tensors)
    spans = sorted((t.offset, t.offset + t.nbytes) for t in h.tensors if t.nbytes)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
    for t in h.tensors:
        assert len(t.shape) <= 4 and t.n_elements < 1 << 63 and t.nbytes >= 0
        assert t.offset % h.alignment == 0
        if h.file_size is not None:
            assert h.data_offset + t.offset + t.nbytes <= h.file_size


@FUZZ
@given(arch=st.sampled_from(ARCHS), seed=st.integers(0, 2**32 - 1), rounds=st.integers(1, 3))
def test_structured_mutations(corpus, arch: str, seed: int, rounds: int) -> None:
    """Truncations, bit flips, huge counts/lengths, wrong types, duplicate keys and tensors,
    overlapping and out-of-range offsets, overflowing dims, stacked up to three deep."""
    rng = random.Random(seed)
    data, size, lay = corpus[arch]
    for _ in range(rounds):
        case = mutate(rng, data, lay, size, [c[0] for c in corpus.values()])
        result = outcome(case.source())
        if not isinstance(result, GGUFHeader) or case.size is None:
            break
        # still a valid header (so its layout can be trusted): mutate the mutant
        try:
            lay = scan_layout(case.data)
        except struct.error:  # the header runs on into the zero-filled region
            break
        if lay.header_end > len(case.data):
            break
        data, size = case.data, case.size


@FUZZ
@given(arch=st.sampled_from(ARCHS), data=st.data())
def test_overwrite_any_bytes(corpus, arch: str, data: st.DataObject) -> None:
    header, size, _ = corpus[arch]
    at = data.draw(st.integers(0, len(header) - 1), label="at")
    patch = data.draw(st.binary(min_size=1, max_size=16), label="patch")
    buf = header[:at] + patch + header[at + len(patch):]
    known = data.draw(st.booleans(), label="size known")
    outcome(SparseSource(buf, size, report_size=known, read_ahead=data.draw(st.sampled_from([0, None]))))


@FUZZ
@given(version=st.sampled_from([2, 3]), n_tensors=st.integers(0, 2**64 - 1), n_kv=st.integers(0, 2**64 - 1),
       body=st.binary(max_size=512), pad=st.integers(0, 1 << 20))
def test_arbitrary_bytes_after_a_valid_fixed_header(version, n_tensors, n_kv, body, pad) -> None:
    data = b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + body
    outcome(SparseSource(data, len(data) + pad))
    outcome(SparseSource(data, len(data) + pad, report_size=False, read_ahead=None))


@FUZZ
@given(st.binary(max_size=64))
def test_arbitrary_bytes(data: bytes) -> None:
    for prefix in (b"", b"GGUF", b"GGUF\x03\x00\x00\x00"):
        outcome(SparseSource(prefix + data, len(prefix + data)))
