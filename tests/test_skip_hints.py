"""Skip hints: a sibling file's skipped string arrays let a parse jump over the same arrays in
another file. The rule under test: a hinted parse returns exactly the hint-free header, or it
falls back (at the landing point, or by a whole re-parse) to the hint-free header; a wrong jump
never produces a returned header."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.testing import ggufgen
from planner.cache import header_from_dict, header_to_dict
from planner.errors import GGUFError
from planner.header import GGUFHeader, SkippedArray
from planner.reader import HINT_STATS, SkipHint, parse_file, parse_header, skip_hints_from
from planner.sources import LocalFileSource, MemorySource

SHAPE = ggufgen.ModelShape(n_vocab=3000, n_layer=2, n_embd=256, n_ff=512)
STRING_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.merges")


class RecordingSource:
    """A local file that logs every read (offset, length)."""

    read_ahead = 0

    def __init__(self, path: Path) -> None:
        self.inner = LocalFileSource(path)
        self.name = self.inner.name
        self.reads: list[tuple[int, int]] = []

    @property
    def size(self) -> int | None:
        return self.inner.size

    def read(self, offset: int, n: int) -> bytes:
        data = self.inner.read(offset, n)
        self.reads.append((offset, len(data)))
        return data

    @property
    def bytes_read(self) -> int:
        return sum(n for _, n in self.reads)


def _write(path: Path, qtype: Q = Q.Q4_K, *, tokens: list[str] | None = None, extra: dict | None = None,
           shape: ggufgen.ModelShape = SHAPE) -> Path:
    meta, tensors = ggufgen.model_spec("qwen2", dataclasses.replace(shape, qtype=qtype, qtype_hi=Q.Q6_K))
    if tokens is not None:
        meta["tokenizer.ggml.tokens"] = ggufgen.typed(tokens, V.ARRAY, V.STRING)
    meta.update(extra or {})
    return ggufgen.write_gguf(path, meta, tensors)


def _tokens(path: Path) -> list[str]:
    from gguf import GGUFReader

    f = GGUFReader(path).fields["tokenizer.ggml.tokens"]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def _same(a: GGUFHeader, b: GGUFHeader) -> None:
    """Equal headers, including the skipped arrays' recorded lengths (equality ignores them)."""
    assert a.metadata == b.metadata and a.tensors == b.tensors
    assert (a.version, a.alignment, a.data_offset, a.file_size) == (b.version, b.alignment, b.data_offset,
                                                                      b.file_size)
    for k, v in a.metadata.items():
        if isinstance(v, SkippedArray):
            w = b.metadata[k]
            assert (v.nbytes, v.tail) == (w.nbytes, w.tail), k


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hints")
    seed = _write(root / "m-Q4_K_M.gguf", Q.Q4_K)
    target = _write(root / "m-Q8_0.gguf", Q.Q8_0)
    toks = _tokens(seed)
    # same count, different lengths: one token longer, another shorter by the same amount
    # (same total: the jump would even land right), and one only longer (lands wrong)
    same_total = list(toks)
    same_total[10] += "xy"
    shrink = next(i for i, t in enumerate(toks) if i > 10 and len(t) > 2 and t[-2:].isascii())
    same_total[shrink] = same_total[shrink][:-2]
    longer = list(toks)
    longer[-10] += "x"
    return {"seed": seed, "target": target,
            "same_total": _write(root / "m-same.gguf", Q.Q8_0, tokens=same_total),
            "longer": _write(root / "m-longer.gguf", Q.Q8_0, tokens=longer),
            "all_longer": _write(root / "m-all.gguf", Q.Q8_0, tokens=[t + "q" for t in toks])}


@pytest.fixture(autouse=True)
def _stats() -> None:
    HINT_STATS.reset()


def test_lengths_are_recorded_and_hints_derived(files: dict[str, Path]) -> None:
    h = parse_file(files["seed"])
    toks = h.metadata["tokenizer.ggml.tokens"]
    names = _tokens(files["seed"])
    assert toks.nbytes == sum(8 + len(t.encode()) for t in names)
    assert toks.tail == tuple(len(t.encode()) for t in names[-4:])
    tt = h.metadata["tokenizer.ggml.token_type"]
    assert tt.nbytes == 4 * tt.count and tt.tail == ()  # numeric: computed, no tail
    hints = skip_hints_from(h)
    assert set(hints) == set(STRING_ARRAYS)
    assert hints["tokenizer.ggml.tokens"].next_key == "tokenizer.ggml.token_type"


def test_hinted_parse_equals_plain_parse_and_skips_the_arrays(files: dict[str, Path]) -> None:
    hints = skip_hints_from(parse_file(files["seed"]))
    plain_src, hinted_src = RecordingSource(files["target"]), RecordingSource(files["target"])
    plain = parse_header(plain_src)
    hinted = parse_header(hinted_src, hints)
    _same(hinted, plain)
    assert (HINT_STATS.jumps, HINT_STATS.landing_misses, HINT_STATS.reparses) == (2, 0, 0)
    # not a byte of the jumped-over arrays is read, except the few strings checked at their end
    skipped = sum(plain.metadata[k].nbytes for k in STRING_ARRAYS)
    assert hinted_src.bytes_read <= plain_src.bytes_read - skipped + 4096
    assert hinted_src.bytes_read < plain_src.bytes_read / 3


def test_numeric_arrays_are_stepped_over_without_hints(files: dict[str, Path]) -> None:
    """token_type (count x 4 bytes) is never walked nor read, hints or not."""
    h = parse_file(files["seed"])
    src = RecordingSource(files["seed"])
    parse_header(src)
    body = h.metadata["tokenizer.ggml.token_type"].nbytes
    assert src.bytes_read <= h.data_offset - body + 8192  # at most the reader's small look-ahead


@pytest.mark.parametrize("delta", [1, -1, 8, -8, 4096, -4096, 13, -24])
def test_a_wrong_byte_length_falls_back(files: dict[str, Path], delta: int) -> None:
    plain = parse_file(files["target"])
    hints = {k: dataclasses.replace(v, nbytes=v.nbytes + delta)
             for k, v in skip_hints_from(parse_file(files["seed"])).items()}
    _same(parse_header(LocalFileSource(files["target"]), hints), plain)
    assert HINT_STATS.jumps == 0 and HINT_STATS.landing_misses == 2


def test_a_wrong_tail_or_next_key_falls_back(files: dict[str, Path]) -> None:
    plain = parse_file(files["target"])
    good = skip_hints_from(parse_file(files["seed"]))
    for bad in ({k: dataclasses.replace(v, tail=(v.tail[0] + 1,) + v.tail[1:]) for k, v in good.items()},
                {k: dataclasses.replace(v, next_key=v.next_key + "x") for k, v in good.items()},
                {k: dataclasses.replace(v, count=v.count + 1) for k, v in good.items()}):
        _same(parse_header(LocalFileSource(files["target"]), bad), plain)
    assert HINT_STATS.jumps == 0


@pytest.mark.parametrize("sibling", ["longer", "all_longer", "same_total"])
def test_sibling_with_other_token_lengths(files: dict[str, Path], sibling: str) -> None:
    """Same token count, other strings: the hint is wrong for the tokens (right for merges,
    which the generator left alone) and must be caught, whichever file gives the hint."""
    for giver, taker in ((files["seed"], files[sibling]), (files[sibling], files["seed"])):
        HINT_STATS.reset()
        hints = skip_hints_from(parse_file(giver))
        _same(parse_header(LocalFileSource(taker), hints), parse_file(taker))
        if sibling == "same_total":  # same total length: the jump is right, and taken
            assert HINT_STATS.jumps == 2
        else:
            assert HINT_STATS.landing_misses == 1 and HINT_STATS.jumps == 1  # merges still jumped


def test_landing_on_a_forged_key_is_caught(tmp_path: Path) -> None:
    """A vocabulary crafted so that a wrong jump lands on a token spelling the next key, after
    strings of the hinted tail lengths: the landing check passes, so the rest of the header or
    the tensor tiling must fail, and the file is parsed again without hints."""
    n, a = 200, "abcd"
    seed = _write(tmp_path / "seed.gguf", tokens=[a] * n)
    # 8 + len(b) = 2 * (8 + len(a)) keeps the first n-1 strings' bytes where the seed's n were
    forged = ["b" * (8 + 2 * len(a))] + [a] * (n - 2) + ["tokenizer.ggml.token_type"]
    target = _write(tmp_path / "forged.gguf", tokens=forged)
    hints = skip_hints_from(parse_file(seed))
    h = hints["tokenizer.ggml.tokens"]
    assert h.next_key == "tokenizer.ggml.token_type" and h.tail == (4, 4, 4, 4)
    _same(parse_header(LocalFileSource(target), hints), parse_file(target))
    assert HINT_STATS.jumps >= 1 and HINT_STATS.reparses == 1


def test_untiled_file_is_reparsed(files: dict[str, Path], tmp_path: Path) -> None:
    """After a jump the tensor data must tile the file exactly; trailing bytes (accepted by the
    plain parse) only cost a re-parse."""
    data = files["target"].read_bytes()
    hints = skip_hints_from(parse_file(files["seed"]))
    src = MemorySource(data + b"\0" * 64, name="trailing")
    _same(parse_header(src, hints), parse_header(MemorySource(data + b"\0" * 64, name="trailing")))
    assert HINT_STATS.reparses == 1


def test_errors_are_the_files_own(files: dict[str, Path]) -> None:
    """A file cut inside the tokens: with hints the error is the hint-free one."""
    data = files["target"].read_bytes()
    hints = skip_hints_from(parse_file(files["seed"]))
    cut = data[:3000]
    with pytest.raises(GGUFError) as plain:
        parse_header(MemorySource(cut, name="cut"))
    with pytest.raises(GGUFError) as hinted:
        parse_header(MemorySource(cut, name="cut"), hints)
    assert hinted.value.message == plain.value.message
    unknown_size = MemorySource(data, name="nosize", size=None)
    _same(parse_header(unknown_size, hints), parse_header(MemorySource(data, name="nosize", size=None)))
    assert HINT_STATS.jumps == 0


def test_hints_survive_the_cache_and_old_entries_give_none(files: dict[str, Path]) -> None:
    h = parse_file(files["seed"])
    back = header_from_dict(header_to_dict(h))
    _same(back, h)
    assert skip_hints_from(back) == skip_hints_from(h)
    old = header_to_dict(h)
    for v in old["metadata"].values():
        if isinstance(v, dict) and "$skip" in v:
            v.pop("nbytes", None)
            v.pop("tail", None)
    legacy = header_from_dict(old)
    assert legacy.metadata == h.metadata and skip_hints_from(legacy) == {}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(STRING_ARRAYS), delta=st.integers(-6000, 6000),
       tail_edit=st.integers(-2, 2), which=st.integers(0, 3))
def test_any_corrupted_hint_gives_the_plain_header(files: dict[str, Path], key: str, delta: int,
                                                   tail_edit: int, which: int) -> None:
    plain = parse_file(files["target"])
    hints = skip_hints_from(parse_file(files["seed"]))
    h = hints[key]
    tail = list(h.tail)
    tail[which % len(tail)] = max(0, tail[which % len(tail)] + tail_edit)
    hints[key] = SkipHint(h.element_type, h.count, h.nbytes + delta, h.next_key, tuple(tail))
    _same(parse_header(LocalFileSource(files["target"]), hints), plain)
