"""Offline, a Hub repo cached for some quants only is planned for those, with a note naming the
missing ones (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.testing import ggufgen
from planner.testing.clirun import memfit, plan
from planner.testing.fakehub import FakeHub, model_repo_files
from planner import hub
from planner.resolver import resolve


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("offline_partial")
    return model_repo_files(root, "Qwen3-8B", ["Q4_K_M", "Q6_K", "Q8_0"], arch="qwen3",
                            shape=ggufgen.ModelShape(n_vocab=3000), shards={"Q8_0": 2}, mmproj=True)


def _cache_some(fake_hub: FakeHub, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, *quants: str) -> None:
    fake_hub.add_repo("o/Qwen3-8B-GGUF", files)
    for q in quants:
        resolve(f"o/Qwen3-8B-GGUF:{q}")  # the listing, this quant's header(s) and the projector
    fake_hub.close()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_a_partly_cached_repo_resolves_to_its_cached_quants(fake_hub, files, monkeypatch):
    _cache_some(fake_hub, files, monkeypatch, "Q4_K_M", "Q8_0")
    m = resolve("o/Qwen3-8B-GGUF")
    assert [v.quant for v in m.variants] == ["Q4_K_M", "Q8_0"] and all(v.headers for v in m.variants)
    assert m.mmproj and m.mmproj[0].headers is not None
    assert len(m.problems) == 1
    assert "offline (HF_HUB_OFFLINE)" in m.problems[0] and "not cached: Q6_K" in m.problems[0]


def test_asking_for_an_uncached_quant_still_fails(fake_hub, files, monkeypatch):
    _cache_some(fake_hub, files, monkeypatch, "Q4_K_M")
    with pytest.raises(hub.OfflineMissError, match="Qwen3-8B-Q6_K.gguf"):
        resolve("o/Qwen3-8B-GGUF:Q6_K")


def test_nothing_cached_but_the_listing_is_the_offline_error(fake_hub, files, monkeypatch):
    fake_hub.add_repo("o/Qwen3-8B-GGUF", files)
    resolve("o/Qwen3-8B-GGUF", load_headers=False)
    fake_hub.close()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.OfflineMissError, match="HF_HUB_OFFLINE is set and the header of"):
        resolve("o/Qwen3-8B-GGUF")


def test_an_uncached_projector_is_left_out_with_a_note(fake_hub, files, monkeypatch):
    fake_hub.add_repo("o/Qwen3-8B-GGUF", files)
    resolve("o/Qwen3-8B-GGUF:Q4_K_M")
    from planner.cache import default_cache

    cache = default_cache()
    for entry in (cache.base / "headers").rglob("*.entry"):  # forget the projector's header only
        if b"mmproj-F16.gguf" in entry.read_bytes()[:4096]:  # the key comes first in an entry
            entry.unlink()
    fake_hub.close()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    m = resolve("o/Qwen3-8B-GGUF")
    assert [v.quant for v in m.variants] == ["Q4_K_M"] and m.mmproj == []
    assert any("projector mmproj-F16.gguf not cached" in p for p in m.problems)


def test_plan_offline_plans_the_cached_quants_and_says_which_are_missing(fake_hub, files, monkeypatch):
    _cache_some(fake_hub, files, monkeypatch, "Q4_K_M", "Q8_0")
    res = plan("o/Qwen3-8B-GGUF", "--device", "rtx-4090", "--ctx", "4k", "--json")
    assert res.exit_code in (0, 3), res.output
    data = json.loads(res.output)
    assert sorted(v["quant"] for v in data["variants"]) == ["Q4_K_M", "Q8_0"]
    assert "not cached: Q6_K" in json.dumps(data)
    res = memfit("inspect", "o/Qwen3-8B-GGUF")
    assert res.exit_code == 0 and "not cached: Q6_K" in res.output
