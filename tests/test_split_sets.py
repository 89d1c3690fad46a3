"""Split models are checked as llama.cpp's loader checks them (issue 12), and projectors are
recognised by their content, not their file name.

Before: a tensor repeated in two shards was counted twice, a shard with no tensors, a wrong
`split.tensors.count` or a wrong `split.no` were accepted, and a text model named
`mmproj-*.gguf` was planned as a 4.9 GB projector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gguf import GGUFValueType as V

from planner.testing import ggufgen
from planner.testing.clirun import logical_lines, memfit
from planner.testing.fakehub import FakeHub
from planner.testing.ggufgen import typed
from planner.errors import GGUFError, InputError, ResolveError
from planner.header import ModelHeaders
from planner.reader import parse_file
from planner.resolver import resolve

SHAPE = ggufgen.ModelShape()


def _split(tmp: Path, name: str, parts: list[list[int]], *, split_no: list[int] | None = None,
           count: int | None = None, tensors_count: int | None = None,
           extra: dict[int, dict[str, Any]] | None = None) -> list[Path]:
    """A split set by hand: parts[i] = indexes (into the model's tensor list) shard i holds."""
    meta, tensors = ggufgen.model_spec("llama", SHAPE)
    n = len(parts)
    total = len({i for p in parts for i in p}) if tensors_count is None else tensors_count
    paths = []
    for i, idx in enumerate(parts):
        m: dict[str, Any] = dict(meta) if i == 0 else {"general.architecture": "llama"}
        m["split.no"] = typed((split_no or list(range(n)))[i], V.UINT16)
        m["split.count"] = typed(count or n, V.UINT16)
        m["split.tensors.count"] = typed(total, V.INT32)
        m.update((extra or {}).get(i, {}))
        paths.append(ggufgen.write_gguf(tmp / f"{name}-{i + 1:05d}-of-{n:05d}.gguf", m, [tensors[j] for j in idx]))
    return paths


def _n_tensors() -> int:
    return len(ggufgen.model_spec("llama", SHAPE)[1])


def test_a_good_split_set_merges(tmp_path: Path) -> None:
    n = _n_tensors()
    paths = _split(tmp_path, "ok", [list(range(0, n // 2)), list(range(n // 2, n))])
    m = resolve(str(paths[1]))
    assert len(m.variants[0].headers.tensors) == n  # type: ignore[union-attr]
    # gguf-split --no-tensor-first-split: a metadata-only first shard is legal
    paths = _split(tmp_path, "meta-first", [[], list(range(n))])
    assert len(resolve(str(paths[0])).variants[0].headers.tensors) == n  # type: ignore[union-attr]


@pytest.mark.parametrize("case,needle", [
    ("duplicate", "is in shard 1 and again in shard 2"),
    ("empty_shard", "shard 3 of 3 holds no tensors"),
    ("tensors_count", "says the model has 99 tensors"),
    ("split_no", "shard 2 of 2 says it is part 1"),
    ("first_not_0", "shard 1 of 2 says it is part 2"),
    ("no_split_no", "shard 2 of 2 has no split.no"),
    ("count_disagrees", "shard 2 says the model has 3 parts"),
    ("split_no_float", "split.no = 1.0, not an integer"),
])
def test_split_sets_llama_cpp_refuses_are_refused(tmp_path: Path, case: str, needle: str) -> None:
    n = _n_tensors()
    a, b = list(range(0, n // 2)), list(range(n // 2, n))
    paths = {
        "duplicate": lambda: _split(tmp_path, case, [a + [n - 1], b], tensors_count=n),
        "empty_shard": lambda: _split(tmp_path, case, [a, b, []]),
        "tensors_count": lambda: _split(tmp_path, case, [a, b], tensors_count=99),
        "split_no": lambda: _split(tmp_path, case, [a, b], split_no=[0, 0]),
        "first_not_0": lambda: _split(tmp_path, case, [a, b], split_no=[1, 1]),
        "no_split_no": lambda: _split(tmp_path, case, [a, b], extra={1: {"split.no": typed("x", V.STRING)}}),
        "count_disagrees": lambda: _split(tmp_path, case, [a, b], extra={1: {"split.count": typed(3, V.UINT16)}}),
        "split_no_float": lambda: _split(tmp_path, case, [a, b], extra={1: {"split.no": typed(1.0, V.FLOAT32)}}),
    }[case]()
    if case == "no_split_no":  # drop the key altogether (the writer above put a string there)
        meta, tensors = ggufgen.model_spec("llama", SHAPE)
        ggufgen.write_gguf(paths[1], {"general.architecture": "llama", "split.count": typed(2, V.UINT16),
                                      "split.tensors.count": typed(n, V.INT32)}, [tensors[j] for j in b])
        needle = "shard 2 of 2 has no split.no"
    with pytest.raises(GGUFError) as e:
        ModelHeaders.merge([parse_file(p) for p in paths])
    assert needle in e.value.message, e.value.message
    result = memfit("estimate", str(paths[0]))
    assert result.exit_code == 1 and "internal error" not in result.output
    lines = logical_lines(result.stderr.strip())  # error and hint, each wrapped to 80 columns
    assert len(lines) == 2 and needle in lines[0], lines


def test_duplicated_tensors_were_counted_twice(tmp_path: Path) -> None:
    """The defect itself: the weights of a repeated tensor were added twice."""
    n = _n_tensors()
    paths = _split(tmp_path, "dup", [list(range(n)), [n - 1]], tensors_count=n)
    with pytest.raises(GGUFError, match="duplicated"):
        resolve(str(paths[0]))


def test_a_lone_file_with_split_keys_and_shards_without_them(tmp_path: Path) -> None:
    from planner.header import check_split_set

    h = parse_file(ggufgen.write_model(tmp_path / "one.gguf", "llama")[0])
    check_split_set([h])
    with pytest.raises(GGUFError, match="does not say it is part of a split model"):
        check_split_set([h, h])


# --- projectors by content ----------------------------------------------------------------------------


def test_a_text_model_named_mmproj_is_a_model(tmp_path: Path) -> None:
    path = ggufgen.write_model(tmp_path / "mmproj-text-Q4_K_M.gguf", "llama")[0]
    m = resolve(str(path))
    assert [v.quant for v in m.variants] == ["Q4_K_M"] and m.variants[0].headers.architecture == "llama"


def test_in_a_directory_a_misnamed_model_is_not_priced_as_a_projector(tmp_path: Path) -> None:
    d = tmp_path / "repo"
    d.mkdir()
    ggufgen.write_model(d / "M-Q4_K_M.gguf", "llama")
    ggufgen.write_model(d / "mmproj-M-Q8_0.gguf", "llama", ggufgen.ModelShape(qtype=ggufgen.Q.Q8_0))
    ggufgen.write_model(d / "vision-encoder.gguf", "clip")  # a projector without "mmproj" in its name
    m = resolve(str(d))
    assert sorted(v.quant for v in m.variants) == ["Q4_K_M", "Q8_0"]
    assert [Path(p.name).name for p in m.mmproj] == ["vision-encoder.gguf"]
    assert any("named like a vision projector but holds a llama model" in p for p in m.problems)
    # another model's weights under a projector's name: left out, never priced as a projector
    ggufgen.write_model(d / "mmproj-other.gguf", "qwen3")
    m = resolve(str(d))
    assert all(Path(p.name).name != "mmproj-other.gguf" for p in m.mmproj)
    assert any("mmproj-other.gguf" in p and "not used as a projector" in p for p in m.problems)


def test_a_real_projector_named_as_a_model_is_still_no_model(tmp_path: Path) -> None:
    path = ggufgen.write_model(tmp_path / "vision-F16.gguf", "clip")[0]
    with pytest.raises(ResolveError, match="is a vision projector"):
        resolve(str(path))


def test_hub_projectors_by_content(fake_hub: FakeHub, tmp_path: Path) -> None:
    model = ggufgen.write_model(tmp_path / "M-Q4_K_M.gguf", "llama")[0]
    text = ggufgen.write_model(tmp_path / "t.gguf", "llama", ggufgen.ModelShape(qtype=ggufgen.Q.Q8_0))[0]
    proj = ggufgen.write_model(tmp_path / "p.gguf", "clip")[0]
    fake_hub.add_repo("o/M-GGUF", {"M-Q4_K_M.gguf": model, "mmproj-Q8_0.gguf": text, "mmproj-F16.gguf": proj})
    m = resolve("o/M-GGUF")
    assert sorted(v.quant for v in m.variants) == ["Q4_K_M", "Q8_0"]
    assert [p.name for p in m.mmproj] == ["mmproj-F16.gguf"]
    with pytest.raises(ResolveError, match="is a vision projector"):
        resolve(f"{fake_hub.url}/o/M-GGUF/blob/main/mmproj-F16.gguf")
    m = resolve(f"{fake_hub.url}/o/M-GGUF/blob/main/mmproj-Q8_0.gguf")
    assert [v.quant for v in m.variants] == ["Q8_0"]


def test_mmproj_flag_checks_the_file(tmp_path: Path) -> None:
    import os

    from planner.resolver import load_projector_file

    model = str(ggufgen.write_model(tmp_path / "m.gguf", "llama")[0])
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    for cmd in (("estimate", model), ("plan", model, "--device", "ai-max-395-64g")):
        result = memfit(*cmd, "--mmproj", str(fifo))  # before: "no such file"
        assert result.exit_code == 2 and "a pipe, not a regular file" in result.stderr, result.output
        result = memfit(*cmd, "--mmproj", str(tmp_path))
        assert result.exit_code == 2 and "a directory, not a regular file" in result.stderr
        result = memfit(*cmd, "--mmproj", model)
        assert result.exit_code == 2 and "not a vision projector (it holds a llama model)" in result.stderr
    with pytest.raises(InputError, match="no such file"):
        load_projector_file(str(tmp_path / "missing.gguf"))
    headers, size = load_projector_file(str(ggufgen.write_model(tmp_path / "p.gguf", "clip")[0]))
    assert headers.architecture == "clip" and size > 0
