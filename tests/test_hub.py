"""Hub access against the local fake Hub: listings, revisions, caching, offline mode, access
errors, redirects and the token, and the byte/request budget of a cold and a warm run."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from planner.testing import ggufgen
from planner.testing.fakehub import FakeHub, model_repo_files
from planner import hub, resolver
from planner.cache import cache_root
from planner.cli import run
from planner.errors import HubError, ResolveError
from planner.reader import HINT_STATS, parse_file
from planner.resolver import resolve

TOKEN = "hf_TestTokenAbCdEf0123456789SecretValue"


@pytest.fixture(scope="module")
def repo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub_repo")
    return model_repo_files(root, "Qwen3-8B", ["Q4_K_M", "Q8_0", "UD-Q4_K_XL"], shape=ggufgen.ModelShape(n_vocab=3000),
                            shards={"Q8_0": 2}, mmproj=True)


@pytest.fixture(scope="module")
def big_repo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Headers of real size: a 152k-token vocabulary (~5 MiB per header) in three variants, one
    of them split in two, plus a projector."""
    root = tmp_path_factory.mktemp("big_repo")
    shape = ggufgen.ModelShape(n_vocab=152064, n_layer=8, n_embd=512, n_ff=1024)
    return model_repo_files(root, "Qwen2-7B", ["Q4_K_M", "Q8_0", "UD-Q4_K_XL"], shape=shape,
                            shards={"UD-Q4_K_XL": 2}, mmproj=True)


def _api_calls(h: FakeHub) -> int:
    return sum(1 for r in h.records if r.path.startswith("/api/"))


# --- listings and revisions ------------------------------------------------------------------------


def test_listing_groups_variants_and_is_cached(fake_hub: FakeHub, repo_files: dict[str, Path]) -> None:
    sha = fake_hub.add_repo("Qwen/Qwen3-8B-GGUF", {**repo_files, "README.md": b"# hi"})
    m = resolve("Qwen/Qwen3-8B-GGUF", load_headers=False)
    assert m.source == "hub" and m.repo == "Qwen/Qwen3-8B-GGUF" and m.revision == sha
    assert [v.quant for v in m.variants] == ["Q4_K_M", "UD-Q4_K_XL", "Q8_0"]
    q8 = m.variant("q8_0")
    assert q8.files == ["Qwen3-8B-Q8_0-00001-of-00002.gguf", "Qwen3-8B-Q8_0-00002-of-00002.gguf"]
    assert q8.size_bytes == sum(repo_files[f].stat().st_size for f in q8.files)
    assert [p.name for p in m.mmproj] == ["mmproj-F16.gguf"]
    assert all(v.headers is None for v in m.variants)
    assert _api_calls(fake_hub) == 1 and fake_hub.file_records() == []
    fake_hub.reset_stats()
    resolve("Qwen/Qwen3-8B-GGUF", load_headers=False)
    assert fake_hub.request_count() == 0


def test_tree_api_fallback_with_pagination(fake_hub: FakeHub, repo_files: dict[str, Path]) -> None:
    fake_hub.siblings_without_sizes = True
    fake_hub.tree_page_size = 2
    fake_hub.add_repo("o/r-GGUF", {**repo_files, "README.md": b"x"})
    m = resolve("o/r-GGUF", load_headers=False)
    assert {v.quant for v in m.variants} == {"Q4_K_M", "UD-Q4_K_XL", "Q8_0"}
    assert m.variant("Q4_K_M").size_bytes == repo_files["Qwen3-8B-Q4_K_M.gguf"].stat().st_size
    tree_calls = [r for r in fake_hub.records if "/tree/" in r.path]
    assert len(tree_calls) == 3  # 6 entries (5 GGUFs + README) in pages of 2
    assert all("recursive=true" in r.query.lower() or "cursor=" in r.query for r in tree_calls)


def test_revisions_branches_and_commits(fake_hub: FakeHub, repo_files: dict[str, Path]) -> None:
    old = fake_hub.add_repo("o/r-GGUF", {"M-Q4_K_M.gguf": repo_files["Qwen3-8B-Q4_K_M.gguf"]})
    dev = fake_hub.add_repo("o/r-GGUF", {"M-Q8_0.gguf": repo_files["Qwen3-8B-UD-Q4_K_XL.gguf"]}, branch="dev")
    assert [v.quant for v in resolve("o/r-GGUF", load_headers=False).variants] == ["Q4_K_M"]
    assert [v.quant for v in resolve("o/r-GGUF", revision="dev", load_headers=False).variants] == ["Q8_0"]
    m = resolve("o/r-GGUF@dev", load_headers=False)
    assert m.revision == dev and m.revision_name == "dev"
    assert resolve(f"https://huggingface.co/o/r-GGUF/tree/{old}", load_headers=False).revision == old
    with pytest.raises(HubError, match="revision 'nope' not found in o/r-GGUF") as e:
        resolve("o/r-GGUF", revision="nope")
    assert e.value.hint and "branch, tag or full commit" in e.value.hint
    with pytest.raises(ResolveError, match="--revision says"):
        resolve("o/r-GGUF@dev", revision="main")


def test_branch_resolution_is_trusted_for_the_ttl(fake_hub: FakeHub, repo_files: dict[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    first = fake_hub.add_repo("o/r-GGUF", {"M-Q4_K_M.gguf": repo_files["Qwen3-8B-Q4_K_M.gguf"]})
    assert resolve("o/r-GGUF").revision == first
    second = fake_hub.add_repo("o/r-GGUF", {"M-Q8_0.gguf": repo_files["Qwen3-8B-UD-Q4_K_XL.gguf"]})
    fake_hub.reset_stats()
    assert resolve("o/r-GGUF").revision == first  # within MEMFIT_REF_TTL: no request
    assert fake_hub.request_count() == 0
    monkeypatch.setenv("MEMFIT_REF_TTL", "0")
    m = resolve("o/r-GGUF")
    assert m.revision == second and [v.quant for v in m.variants] == ["Q8_0"]
    assert _api_calls(fake_hub) == 1


def test_content_id_reuses_headers_across_commits(fake_hub: FakeHub, repo_files: dict[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A new commit that does not touch a GGUF (a README edit) costs one listing, no header bytes."""
    files = {"M-Q4_K_M.gguf": repo_files["Qwen3-8B-Q4_K_M.gguf"]}
    fake_hub.add_repo("o/r-GGUF", files)
    resolve("o/r-GGUF")
    fake_hub.add_repo("o/r-GGUF", {**files, "README.md": b"edited"})
    monkeypatch.setenv("MEMFIT_REF_TTL", "0")
    fake_hub.reset_stats()
    resolve("o/r-GGUF")
    assert _api_calls(fake_hub) == 1 and fake_hub.file_records() == []


# --- range reads -----------------------------------------------------------------------------------


def test_range_reads_continue_and_never_restart(fake_hub: FakeHub, big_repo_files: dict[str, Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMFIT_HUB_WORKERS", "1")
    fake_hub.add_repo("o/big-GGUF", {"M-Q4_K_M.gguf": big_repo_files["Qwen2-7B-Q4_K_M.gguf"]})
    m = resolve("o/big-GGUF")
    expect = parse_file(big_repo_files["Qwen2-7B-Q4_K_M.gguf"])
    got = m.variants[0].headers.shards[0]  # type: ignore[union-attr]
    assert got.metadata == expect.metadata and got.tensors == expect.tensors
    ranges = [r.range for r in fake_hub.records if r.server == "cdn"]
    spans = [tuple(int(x) for x in r.split("=")[1].split("-")) for r in ranges]  # type: ignore[union-attr]
    assert spans[0][0] == 0 and len(spans) >= 3
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert b0 > a1, "each range starts after the previous one (continuation or a skipped array)"
    # one trip to the Hub for the redirect, then straight to the CDN
    assert sum(1 for r in fake_hub.records if "/resolve/" in r.path) == 1


def test_redirect_keeps_the_token_on_the_hub(fake_hub: FakeHub, repo_files: dict[str, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub.add_repo("o/gated-GGUF", repo_files, gated=True)
    fake_hub.login(TOKEN, "o/gated-GGUF")
    m = resolve("o/gated-GGUF")
    assert all(v.headers is not None for v in m.variants)
    assert fake_hub.authorization_seen("hub") and all(TOKEN in a for a in fake_hub.authorization_seen("hub"))
    assert fake_hub.authorization_seen("cdn") == []
    assert any(r.server == "cdn" for r in fake_hub.records)


def test_non_lfs_files_are_served_by_the_hub_itself(fake_hub: FakeHub, repo_files: dict[str, Path]) -> None:
    fake_hub.add_repo("o/r-GGUF", {"M-Q4_K_M.gguf": repo_files["Qwen3-8B-Q4_K_M.gguf"]}, lfs=False)
    m = resolve("o/r-GGUF")
    assert m.variants[0].headers is not None
    assert not any(r.server == "cdn" for r in fake_hub.records)


# --- access errors ---------------------------------------------------------------------------------


def test_gated_without_token(fake_hub: FakeHub, repo_files: dict[str, Path]) -> None:
    fake_hub.add_repo("google/gemma-GGUF", repo_files, gated=True)
    with pytest.raises(hub.GatedRepoAccessError) as e:
        resolve("google/gemma-GGUF:Q4_K_M")
    assert "gated" in e.value.message
    assert "HF_TOKEN" in (e.value.hint or "") and f"{fake_hub.url}/google/gemma-GGUF" in (e.value.hint or "")
    assert fake_hub.file_records() == []  # known from the listing: no file request was wasted


def test_gated_with_token_but_no_access(fake_hub: FakeHub, repo_files: dict[str, Path],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub.add_repo("google/gemma-GGUF", repo_files, gated=True)
    fake_hub.grant(TOKEN)  # a valid token, without access to this repo
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(hub.GatedRepoAccessError, match="no access") as e:
        resolve("google/gemma-GGUF:Q4_K_M")
    assert "request access" in (e.value.hint or "")
    assert TOKEN not in e.value.message + (e.value.hint or "")


def test_missing_and_private_repos(fake_hub: FakeHub, repo_files: dict[str, Path],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(hub.RepoNotFoundError, match="repository nobody/nothing-GGUF not found") as e:
        resolve("nobody/nothing-GGUF")
    assert "HF_TOKEN" in (e.value.hint or "")
    fake_hub.add_repo("me/private-GGUF", repo_files, private=True)
    with pytest.raises(hub.RepoNotFoundError):
        resolve("me/private-GGUF", load_headers=False)
    fake_hub.grant(TOKEN, "me/private-GGUF")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert len(resolve("me/private-GGUF").variants) == 3


def test_invalid_token(fake_hub: FakeHub, repo_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub.add_repo("o/r-GGUF", repo_files)
    monkeypatch.setenv("HF_TOKEN", "hf_notAValidTokenAtAll123456")
    with pytest.raises(HubError, match="rejected your token") as e:
        resolve("o/r-GGUF")
    assert "settings/tokens" in (e.value.hint or "")


def test_file_gone_from_the_hub(fake_hub: FakeHub, repo_files: dict[str, Path]) -> None:
    sha = fake_hub.add_repo("o/r-GGUF", repo_files)
    resolve("o/r-GGUF", load_headers=False)
    del fake_hub.repos["o/r-GGUF"].commits[sha]["Qwen3-8B-Q4_K_M.gguf"]
    with pytest.raises(HubError, match="Qwen3-8B-Q4_K_M.gguf not found in o/r-GGUF"):
        resolve("o/r-GGUF:Q4_K_M")


def test_repo_without_gguf(fake_hub: FakeHub) -> None:
    fake_hub.add_repo("Qwen/Qwen3-8B", {"model.safetensors": b"\0" * 10, "config.json": b"{}"})
    with pytest.raises(ResolveError, match="no GGUF model files in Qwen/Qwen3-8B") as e:
        resolve("Qwen/Qwen3-8B")
    assert "Qwen3-8B-GGUF" in (e.value.hint or "")


def test_cannot_connect(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(HubError, match="cannot connect to http://127.0.0.1:9") as e:
        resolve("o/r-GGUF")
    assert "HF_HUB_OFFLINE" in (e.value.hint or "")


# --- offline ---------------------------------------------------------------------------------------


def test_offline_without_cache_says_what_is_missing(fake_hub: FakeHub, repo_files: dict[str, Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub.add_repo("o/r-GGUF", repo_files)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.OfflineMissError, match="HF_HUB_OFFLINE is set and the file list of o/r-GGUF@main"):
        resolve("o/r-GGUF")
    assert fake_hub.request_count() == 0


def test_offline_uses_the_cache_and_names_missing_headers(fake_hub: FakeHub, repo_files: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub.add_repo("o/r-GGUF", repo_files)
    resolve("o/r-GGUF:Q4_K_M")  # caches the listing and this variant (+ projector)
    fake_hub.close()  # the network is gone for good
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m = resolve("o/r-GGUF:Q4_K_M")
    assert m.variants[0].headers is not None and m.mmproj[0].headers is not None
    assert len(resolve("o/r-GGUF", load_headers=False).variants) == 3
    with pytest.raises(hub.OfflineMissError, match=r"the header of Qwen3-8B-Q8_0-0000[12]-of-00002.gguf"):
        resolve("o/r-GGUF:Q8_0")


# --- secrets ---------------------------------------------------------------------------------------


def test_token_never_leaks(fake_hub: FakeHub, repo_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    fake_hub.add_repo("o/gated-GGUF", repo_files, gated=True)
    fake_hub.add_repo("o/other-GGUF", repo_files, gated=True)
    fake_hub.grant(TOKEN, "o/gated-GGUF")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    fake_hub.add_fault("status", status=503, times=1)  # a retry gets logged in --verbose
    outputs = []
    for args in (["inspect", "o/gated-GGUF", "--verbose"], ["inspect", "o/gated-GGUF", "--json", "-v"],
                 ["inspect", "o/other-GGUF", "-v"], ["inspect", "o/other-GGUF", "--json"],
                 ["inspect", "o/nothing-GGUF", "-v"]):
        code = run(args)
        out, err = capsys.readouterr()
        outputs.append(out + err)
        assert code == (0 if args[1] == "o/gated-GGUF" else 1), out + err
    assert any("retry" in o for o in outputs)  # the verbose output did show network activity
    assert any("gated" in o for o in outputs)
    everything = "\n".join(outputs) + "\n".join(r.getMessage() for r in caplog.records)
    assert TOKEN not in everything
    for path in cache_root().rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    assert fake_hub.authorization_seen("cdn") == []


def test_redact() -> None:
    os.environ["HF_TOKEN"] = TOKEN
    try:
        text = hub.redact(f"failed GET https://cdn.example/x?X-Amz-Signature=abc&t={TOKEN} with {TOKEN} hf_otherTokenValue123")
    finally:
        del os.environ["HF_TOKEN"]
    assert TOKEN not in text and "abc" not in text and "hf_otherTokenValue123" not in text


# --- the budget (issue 2): a cold plan reads header bytes only; a warm one reads nothing -----------


def test_cold_warm_offline_budget(fake_hub: FakeHub, big_repo_files: dict[str, Path],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub.add_repo("Qwen/Qwen2-7B-GGUF", big_repo_files)
    local = {name: parse_file(p) for name, p in big_repo_files.items()}
    header_bytes = sum(h.data_offset for h in local.values())
    n_files = len(big_repo_files)
    chunk = hub.NetConfig.from_env().chunk
    HINT_STATS.reset()

    m = resolve("Qwen/Qwen2-7B-GGUF")
    assert len(m.variants) == 3 and all(v.headers is not None for v in m.variants)
    fetched = sum(r.bytes_sent for r in fake_hub.file_records())
    file_requests = len(fake_hub.file_records())
    assert fake_hub.request_count() == file_requests + 1  # + the listing
    assert fetched <= 1.10 * header_bytes + n_files * chunk  # the issue's budget
    assert hub.STATS.bytes_received == fetched  # the client counted the same bytes
    assert file_requests <= n_files * 8
    # skip hints: only the seed (one ~5 MiB header) is read in full; the two other first shards
    # jump over tokens and merges, and every other file costs a few small ranges
    assert (HINT_STATS.jumps, HINT_STATS.landing_misses, HINT_STATS.reparses) == (4, 0, 0)
    seed = max(h.data_offset for h in local.values())
    assert fetched <= 1.10 * seed + chunk + (n_files - 1) * 6 * hub.HINTED_CHUNK
    assert fetched < 0.5 * header_bytes  # three ~5 MiB headers cost about one and a third
    for v in m.variants:  # and the headers are the ones a full local parse gives
        assert v.headers is not None
        for shard, name in zip(v.headers.shards, v.files):
            assert shard.metadata == local[name].metadata and shard.tensors == local[name].tensors
            assert shard.data_offset == local[name].data_offset

    fake_hub.reset_stats()
    warm = resolve("Qwen/Qwen2-7B-GGUF")
    assert fake_hub.request_count() == 0
    assert [v.headers.tensors for v in warm.variants] == [v.headers.tensors for v in m.variants]  # type: ignore[union-attr]

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = resolve("Qwen/Qwen2-7B-GGUF:UD-Q4_K_XL")
    assert fake_hub.request_count() == 0
    assert offline.variants[0].headers is not None and len(offline.variants[0].headers.shards) == 2


def test_hints_from_a_sibling_with_another_tokenizer(fake_hub: FakeHub, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Variants whose tokens differ in length (same count): the hint misses at the landing
    point, the file is read without it, and every header equals a full local parse."""
    import dataclasses

    from gguf import GGUFValueType as V

    monkeypatch.setattr(resolver, "MIN_HINTED_BYTES", 0)  # hint even this small tokenizer
    shape = ggufgen.ModelShape(n_vocab=3000)
    paths = {}
    for quant, suffix in (("Q4_K_M", ""), ("Q8_0", "x"), ("Q6_K", "")):
        meta, tensors = ggufgen.model_spec("qwen2", dataclasses.replace(shape))
        if suffix:
            toks = [f"tok{i}{suffix * (i % 3)}" for i in range(shape.n_vocab)]
            meta["tokenizer.ggml.tokens"] = ggufgen.typed(toks, V.ARRAY, V.STRING)
        paths[f"M-{quant}.gguf"] = ggufgen.write_gguf(tmp_path / f"M-{quant}.gguf", meta, tensors)
    fake_hub.add_repo("o/mixed-GGUF", paths)
    HINT_STATS.reset()
    m = resolve("o/mixed-GGUF")
    assert HINT_STATS.landing_misses >= 1 and HINT_STATS.jumps >= 1
    for v in m.variants:
        assert v.headers is not None
        want = parse_file(paths[v.files[0]])
        got = v.headers.shards[0]
        assert got.metadata == want.metadata and got.tensors == want.tensors
        assert got.data_offset == want.data_offset


def test_files_of_a_repo_are_read_in_parallel(fake_hub: FakeHub, repo_files: dict[str, Path]) -> None:
    """Every file's bytes are answered 0.3 s late; the fake counts how many such answers are in
    flight at once. Read one after the other that peak is 1; memfit's pool has them all in flight
    (a count, not a stopwatch: a busy CI runner slows both sides alike)."""
    fake_hub.add_repo("o/r-GGUF", repo_files)
    resolve("o/r-GGUF", load_headers=False)  # listing cached
    lock = threading.Lock()
    in_flight = [0, 0]  # now, peak

    def slow_answer() -> None:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        time.sleep(0.3)
        with lock:
            in_flight[0] -= 1

    fake_hub.add_fault("call", action=slow_answer, times=-1, where="file")
    m = resolve("o/r-GGUF")
    n_files = len(repo_files)
    assert all(v.headers is not None for v in m.variants)
    assert len(fake_hub.file_records()) >= n_files
    assert in_flight[1] >= 3, in_flight[1]  # of 5 files; 1 when read one after the other


def test_fake_hub_speaks_huggingface_hub(fake_hub: FakeHub, tmp_path: Path) -> None:
    """The fake is faithful enough for huggingface-hub's own client: tree listing, metadata
    through the CDN redirect (HEAD) and downloads."""
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download

    sha = fake_hub.add_repo("o/tiny", {"a/x.gguf": b"GGUF" + b"\0" * 100, "README.md": b"hello"})
    api = HfApi(endpoint=fake_hub.url)
    paths = sorted(f.path for f in api.list_repo_tree("o/tiny", recursive=True))
    assert paths == ["README.md", "a", "a/x.gguf"]
    meta = get_hf_file_metadata(f"{fake_hub.url}/o/tiny/resolve/main/a/x.gguf")
    assert meta.size == 104 and meta.commit_hash == sha
    got = hf_hub_download("o/tiny", "a/x.gguf", endpoint=fake_hub.url, cache_dir=tmp_path / "hf")
    assert Path(got).read_bytes() == b"GGUF" + b"\0" * 100


def test_token_from_hf_auth_login_file(fake_hub: FakeHub, repo_files: dict[str, Path]) -> None:
    """No HF_TOKEN: the token `hf auth login` stored in the Hugging Face home is used."""
    from huggingface_hub import constants

    fake_hub.add_repo("o/gated-GGUF", repo_files, gated=True)
    fake_hub.grant(TOKEN, "o/gated-GGUF")
    Path(constants.HF_TOKEN_PATH).parent.mkdir(parents=True, exist_ok=True)
    Path(constants.HF_TOKEN_PATH).write_text(TOKEN)
    assert resolve("o/gated-GGUF:Q4_K_M").variants[0].headers is not None
    assert all(TOKEN in a for a in fake_hub.authorization_seen("hub"))
