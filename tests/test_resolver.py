"""Model references: local files and directories, split models, Hub repos and tags, URLs,
short names, and the errors each one gives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from planner.testing import ggufgen
from planner.testing.fakehub import FakeHub, model_repo_files
from planner.errors import GGUFError, HubError, ResolveError
from planner.reader import parse_file
from planner.resolver import load_aliases, load_headers, parse_reference, resolve


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """unsloth-style download: quants in files and in subfolders, a split variant, projectors."""
    root = tmp_path_factory.mktemp("local_models")
    files = model_repo_files(root / "src", "Qwen3-VL-8B", ["Q4_K_M", "Q8_0", "UD-Q4_K_XL"],
                             shape=ggufgen.ModelShape(n_vocab=2000), shards={"Q8_0": 3}, mmproj=True)
    d = root / "Qwen3-VL-8B-GGUF"
    for rel, src in files.items():
        dest = d / ("Q8_0/" + rel if "Q8_0" in rel else rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dest)
    return d


# --- parsing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("ref, repo, tag, rev, file", [
    ("unsloth/Qwen3-30B-A3B-GGUF", "unsloth/Qwen3-30B-A3B-GGUF", None, None, None),
    ("unsloth/Qwen3-30B-A3B-GGUF:Q4_K_M", "unsloth/Qwen3-30B-A3B-GGUF", "Q4_K_M", None, None),
    ("hf.co/unsloth/Qwen3-30B-A3B-GGUF:UD-Q4_K_XL", "unsloth/Qwen3-30B-A3B-GGUF", "UD-Q4_K_XL", None, None),
    ("huggingface.co/bartowski/x-GGUF", "bartowski/x-GGUF", None, None, None),
    ("https://huggingface.co/unsloth/Qwen3-30B-A3B-GGUF", "unsloth/Qwen3-30B-A3B-GGUF", None, None, None),
    ("https://huggingface.co/o/r-GGUF/tree/dev", "o/r-GGUF", None, "dev", None),
    ("https://huggingface.co/o/r-GGUF/blob/main/sub/r-Q8_0.gguf", "o/r-GGUF", None, "main", "sub/r-Q8_0.gguf"),
    ("https://hf.co/o/r-GGUF/resolve/abc123/r-Q8_0.gguf?download=true", "o/r-GGUF", None, "abc123", "r-Q8_0.gguf"),
    ("hf://o/r-GGUF", "o/r-GGUF", None, None, None),
    ("o/r-GGUF@v1.0:q4_k_m", "o/r-GGUF", "q4_k_m", "v1.0", None),
])
def test_hub_references(ref: str, repo: str, tag: str | None, rev: str | None, file: str | None) -> None:
    p = parse_reference(ref)
    assert (p.kind, p.repo, p.tag, p.revision, p.file) == ("hub", repo, tag, rev, file)


def test_short_names_and_paths() -> None:
    p = parse_reference("Qwen3-VL-32B:Q4_K_M")
    assert (p.kind, p.name, p.tag) == ("alias", "qwen3-vl-32b", "Q4_K_M")
    for bad in ("./missing.gguf", "/nope/model.gguf", "missing.gguf", "~/x.gguf"):
        with pytest.raises(ResolveError, match="no such file"):
            parse_reference(bad)
    with pytest.raises(ResolveError, match="empty"):
        parse_reference("  ")


def test_existing_local_path_wins_over_a_repo_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "owner" / "repo").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert parse_reference("owner/repo").kind == "local"
    assert parse_reference("hf.co/owner/repo").kind == "hub"


def test_aliases_file() -> None:
    aliases = load_aliases()
    assert len(aliases) >= 30
    assert aliases["qwen3-vl-32b"][0] == "Qwen/Qwen3-VL-32B-Instruct-GGUF"
    assert aliases["gpt-oss-120b"][0] == "ggml-org/gpt-oss-120b-GGUF"
    for name in ("glm-4.7-flash", "llama-3.1-8b", "qwen3-30b-a3b", "qwen3-32b", "gemma-3-27b", "gemma-3-12b",
                 "gemma-3-4b", "deepseek-v2-lite", "qwen3-next-80b-a3b", "lfm2", "mistral-small", "gpt-oss-20b"):
        assert aliases[name], name
    for repos in aliases.values():
        assert all(parse_reference(r).kind == "hub" for r in repos)


# --- local ------------------------------------------------------------------------------------------


def test_local_directory(local_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMFIT_CACHE_DIR", str(tmp_path / "cache"))
    m = resolve(str(local_dir))
    assert m.source == "local" and m.repo is None and m.hf_tag("Q4_K_M") is None
    assert [v.quant for v in m.variants] == ["Q4_K_M", "UD-Q4_K_XL", "Q8_0"]
    q8 = m.variant("Q8_0")
    assert [Path(f).name for f in q8.files] == [f"Qwen3-VL-8B-Q8_0-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert q8.headers is not None and len(q8.headers.shards) == 3
    assert len(q8.headers.tensors) == sum(len(parse_file(f).tensors) for f in q8.files)
    assert q8.headers.metadata["general.architecture"] == "qwen2"
    assert not any(k.startswith("split.") for k in q8.headers.metadata)
    assert q8.size_bytes == sum(Path(f).stat().st_size for f in q8.files)
    assert [Path(p.name).name for p in m.mmproj] == ["mmproj-F16.gguf"]
    assert m.mmproj[0].headers is not None and m.mmproj[0].headers.architecture == "clip"


def test_local_shard_brings_its_siblings(local_dir: Path) -> None:
    m = resolve(str(local_dir / "Q8_0" / "Qwen3-VL-8B-Q8_0-00002-of-00003.gguf"))
    assert len(m.variants) == 1 and len(m.variants[0].files) == 3
    assert m.mmproj == []


def test_local_incomplete_split(local_dir: Path, tmp_path: Path) -> None:
    for i in (1, 3):
        name = f"Qwen3-VL-8B-Q8_0-0000{i}-of-00003.gguf"
        os.link(local_dir / "Q8_0" / name, tmp_path / name)
    with pytest.raises(ResolveError, match="missing Qwen3-VL-8B-Q8_0-00002-of-00003.gguf") as e:
        resolve(str(tmp_path / "Qwen3-VL-8B-Q8_0-00001-of-00003.gguf"))
    assert "every shard" in (e.value.hint or "")


def test_local_single_file_and_quant(local_dir: Path) -> None:
    f = local_dir / "Qwen3-VL-8B-Q4_K_M.gguf"
    m = resolve(str(f))
    assert [v.quant for v in m.variants] == ["Q4_K_M"] and m.variants[0].files == [str(f)]
    assert m.variants[0].headers.shards[0].tensors == parse_file(f).tensors  # type: ignore[union-attr]
    assert [v.quant for v in resolve(str(local_dir), quant="ud-q4_k_xl").variants] == ["UD-Q4_K_XL"]
    assert resolve(str(local_dir), load_headers=False).variants[0].headers is None


def test_local_projector_is_not_a_model(local_dir: Path) -> None:
    with pytest.raises(ResolveError, match="vision projector"):
        resolve(str(local_dir / "mmproj-F16.gguf"))


def test_local_not_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "x-Q4_K_M.gguf"
    bad.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    with pytest.raises(GGUFError, match="Git LFS pointer"):
        resolve(str(bad))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResolveError, match="no GGUF model files"):
        resolve(str(tmp_path / "empty"))


def test_split_count_mismatch(tmp_path: Path) -> None:
    """Shards named -of-00002 whose metadata says 3 parts: refuse instead of under-counting."""
    meta, tensors = ggufgen.model_spec("qwen2")
    paths = ggufgen.write_gguf_split(tmp_path / "m.gguf", meta, tensors, 3)
    os.rename(paths[0], tmp_path / "m-00001-of-00002.gguf")
    os.rename(paths[1], tmp_path / "m-00002-of-00002.gguf")
    paths[2].unlink()
    with pytest.raises(GGUFError, match="says the model has 3 parts"):
        resolve(str(tmp_path / "m-00001-of-00002.gguf"))


def test_revision_on_a_local_path(local_dir: Path) -> None:
    with pytest.raises(ResolveError, match="--revision applies to Hub repos"):
        resolve(str(local_dir), revision="main")


# --- Hub tags -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resolver_hub")
    return model_repo_files(root, "M", ["Q4_K_M", "UD-Q4_K_XL", "Q8_0", "IQ4_XS"],
                            shape=ggufgen.ModelShape(n_vocab=1000), shards={"Q8_0": 2}, subfolders=True)


def test_tags_are_case_and_separator_insensitive(fake_hub: FakeHub, hub_files: dict[str, Path]) -> None:
    fake_hub.add_repo("o/M-GGUF", hub_files)
    for tag in ("Q4_K_M", "q4_k_m", "q4-k-m", "Q4.K.M"):
        m = resolve(f"o/M-GGUF:{tag}", load_headers=False)
        assert [v.quant for v in m.variants] == ["Q4_K_M"] and m.requested_quant == "Q4_K_M"
    m = resolve("hf.co/o/M-GGUF:ud_q4_k_xl")
    assert m.variants[0].files == ["UD-Q4_K_XL/M-UD-Q4_K_XL.gguf"]
    assert m.hf_tag("UD-Q4_K_XL") == "o/M-GGUF:UD-Q4_K_XL"
    assert m.variants[0].headers is not None


def test_missing_quant_lists_what_exists(fake_hub: FakeHub, hub_files: dict[str, Path]) -> None:
    fake_hub.add_repo("o/M-GGUF", hub_files)
    with pytest.raises(ResolveError) as e:
        resolve("o/M-GGUF:Q5_K_M")
    assert "no Q5_K_M variant in o/M-GGUF; available: IQ4_XS, Q4_K_M, UD-Q4_K_XL, Q8_0" in e.value.message
    # Q4_K_XL is not silently taken to mean UD-Q4_K_XL, but suggested
    with pytest.raises(ResolveError) as e:
        resolve("o/M-GGUF:Q4_K_XL")
    assert "UD-Q4_K_XL" in (e.value.hint or "")
    assert fake_hub.file_records() == []


def test_quant_given_twice(fake_hub: FakeHub, hub_files: dict[str, Path]) -> None:
    fake_hub.add_repo("o/M-GGUF", hub_files)
    assert resolve("o/M-GGUF:Q8_0", quant="q8_0", load_headers=False).variants[0].quant == "Q8_0"
    with pytest.raises(ResolveError, match="--quant says"):
        resolve("o/M-GGUF:Q8_0", quant="Q4_K_M")


def test_blob_url_selects_its_variant(fake_hub: FakeHub, hub_files: dict[str, Path]) -> None:
    fake_hub.add_repo("o/M-GGUF", hub_files)
    m = resolve(f"{fake_hub.url}/o/M-GGUF/blob/main/Q8_0/M-Q8_0-00002-of-00002.gguf", load_headers=False)
    assert [v.quant for v in m.variants] == ["Q8_0"] and len(m.variants[0].files) == 2
    with pytest.raises(ResolveError, match="is not a GGUF model file"):
        resolve("https://huggingface.co/o/M-GGUF/blob/main/nothing.gguf", load_headers=False)


def test_headers_loaded_later_for_chosen_variants(fake_hub: FakeHub, hub_files: dict[str, Path]) -> None:
    fake_hub.add_repo("o/M-GGUF", hub_files)
    m = resolve("o/M-GGUF", load_headers=False)
    assert fake_hub.file_records() == []
    load_headers(m, ["Q8_0"])
    assert m.variant("Q8_0").headers is not None and m.variant("Q4_K_M").headers is None
    assert len({r.path for r in fake_hub.file_records() if "/resolve/" in r.path}) == 2  # the two shards
    load_headers(m)
    assert all(v.headers is not None for v in m.variants)


# --- short names -----------------------------------------------------------------------------------


def test_alias_takes_the_official_repo_first(fake_hub: FakeHub, hub_files: dict[str, Path]) -> None:
    fake_hub.add_repo("ggml-org/gpt-oss-20b-GGUF", {"gpt-oss-20b-Q8_0.gguf": hub_files["Q8_0/M-Q8_0-00001-of-00002.gguf"]})
    fake_hub.add_repo("unsloth/gpt-oss-20b-GGUF", hub_files)
    m = resolve("gpt-oss-20b", load_headers=False)
    assert m.repo == "ggml-org/gpt-oss-20b-GGUF"
    assert m.hf_tag("Q8_0") == "ggml-org/gpt-oss-20b-GGUF:Q8_0"


def test_alias_falls_through_missing_repos_and_quants(fake_hub: FakeHub, hub_files: dict[str, Path]) -> None:
    # the official repo does not exist here: the next one is used
    fake_hub.add_repo("unsloth/Qwen3-VL-32B-Instruct-GGUF", hub_files)
    assert resolve("qwen3-vl-32b", load_headers=False).repo == "unsloth/Qwen3-VL-32B-Instruct-GGUF"
    # the official repo exists but lacks the UD quant: the community repo has it
    fake_hub.add_repo("Qwen/Qwen3-VL-32B-Instruct-GGUF", {"Qwen3-VL-32B-Q4_K_M.gguf": hub_files["Q4_K_M/M-Q4_K_M.gguf"]})
    assert resolve("qwen3-vl-32b:Q4_K_M", load_headers=False).repo == "Qwen/Qwen3-VL-32B-Instruct-GGUF"
    assert resolve("Qwen3-VL-32B:UD-Q4_K_XL", load_headers=False).repo == "unsloth/Qwen3-VL-32B-Instruct-GGUF"
    with pytest.raises(ResolveError, match="'qwen3-vl-32b' could not be resolved"):
        resolve("qwen3-vl-32b:Q2_K", load_headers=False)


def test_alias_with_no_repo_on_the_hub(fake_hub: FakeHub) -> None:
    with pytest.raises(ResolveError, match="glm-4.7-flash' could not be resolved.*not found"):
        resolve("glm-4.7-flash", load_headers=False)


def test_unknown_short_name_suggests(fake_hub: FakeHub) -> None:
    with pytest.raises(ResolveError, match="unknown model name 'qwen3-vl-23b'") as e:
        resolve("qwen3-vl-23b")
    assert "qwen3-vl-32b" in (e.value.hint or "") and "owner/repo" in (e.value.hint or "")
    with pytest.raises(ResolveError) as e:
        resolve("totally-unheard-of")
    assert "did you mean" not in (e.value.hint or "") and "owner/repo" in (e.value.hint or "")
    assert fake_hub.request_count() == 0


def test_offline_alias_names_the_missing_header_not_the_next_repo(fake_hub: FakeHub, hub_files: dict[str, Path],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub.add_repo("ggml-org/gpt-oss-20b-GGUF", hub_files)
    resolve("gpt-oss-20b", load_headers=False)  # listing cached, no header
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve("gpt-oss-20b", load_headers=False).repo == "ggml-org/gpt-oss-20b-GGUF"
    with pytest.raises(HubError, match="the header of .*ggml-org/gpt-oss-20b-GGUF"):
        resolve("gpt-oss-20b:Q4_K_M")
    with pytest.raises(HubError, match="none of the repos of 'gpt-oss-120b' is cached"):
        resolve("gpt-oss-120b")
