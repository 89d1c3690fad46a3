"""Special and malformed cache entries (issue 12): only regular files of a bounded size are read,
and an entry whose checksum is right but whose content is not what its kind holds is damage:
deleted and fetched again, never fatal, never a hang, never gigabytes in memory."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from planner.testing import ggufgen
from planner.testing.fakehub import FakeHub, model_repo_files
from planner.cache import Cache, default_cache, hub_header_key, listing_key, local_header_key, ref_key
from planner.reader import parse_file
from planner.resolver import resolve

REPO = "o/c-GGUF"


def _forge(c: Cache, kind: str, key: str, value: Any) -> Path:
    """An entry with a valid length and checksum, holding whatever `value` is."""
    payload = json.dumps({"key": key, "value": value}).encode()
    head = b"memfit-cache 1 %d %s\n" % (len(payload), hashlib.sha256(payload).hexdigest().encode())
    path = c._path(kind, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + payload)
    return path


def _bounded(fn, limit: float) -> Any:
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(limit)
    assert not t.is_alive(), f"cache read still running after {limit} s"
    if "error" in out:
        raise out["error"]
    return out.get("value")


@pytest.fixture
def repo(fake_hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> str:
    files = model_repo_files(tmp_path_factory.mktemp("c"), "C", ["Q4_K_M"])
    fake_hub.add_repo(REPO, files)
    return REPO


def _entries(kind: str) -> list[Path]:
    return sorted((default_cache().base / kind).rglob("*.entry"))


# --- a ref entry with a valid checksum and a wrong field type ------------------------------------------


@pytest.mark.parametrize("value", [{"commit": "0" * 40, "resolved_at": "yesterday"},
                                   {"commit": "0" * 40, "resolved_at": [1]},
                                   {"commit": 42, "resolved_at": 1.0}, {"commit": "../../x", "resolved_at": 1.0},
                                   ["not", "a", "dict"], {"commit": "0" * 40, "resolved_at": True}])
def test_a_malformed_ref_entry_is_discarded_not_fatal(fake_hub: FakeHub, repo: str, value: Any) -> None:
    """Before: ValueError/TypeError on every run, online too, until the user deleted the cache."""
    c = default_cache()
    path = _forge(c, "refs", ref_key(fake_hub.url, repo, "main"), value)
    m = resolve(repo)
    assert m.variants[0].headers is not None
    ref = c.get_ref(fake_hub.url, repo, "main")
    assert ref is not None and ref[0] == m.revision  # rewritten with the real commit
    assert path.exists()  # the fresh entry, at the same path


def test_malformed_listing_and_header_entries_are_refetched(fake_hub: FakeHub, repo: str) -> None:
    m = resolve(repo)
    c = default_cache()
    assert m.revision is not None
    listing = _forge(c, "listings", listing_key(fake_hub.url, repo, m.revision),
                     {"repo": repo, "commit": m.revision, "files": [["../../x.gguf", 1 << 63, None]]})
    (header,) = _entries("headers")
    header.write_bytes(b"")  # replaced below by a forged, checksummed entry of the wrong shape
    key = next(k for k in [hub_header_key(repo, "C-Q4_K_M.gguf", commit=m.revision, oid=f.oid)
                           for f in _listing_files(fake_hub, repo)])
    _forge(c, "headers", key, {"version": 3, "metadata": ["a", "list"], "tensors": [], "alignment": 32,
                                "data_offset": 0})
    fake_hub.reset_stats()
    again = resolve(repo)
    assert again.variants[0].headers is not None
    assert fake_hub.request_count() > 0  # both were fetched again
    assert c.stats.corrupt >= 2
    assert listing.exists()


def _listing_files(fake_hub: FakeHub, repo: str) -> list:
    from planner import hub

    return hub.fetch_listing(repo, "main", hub.NetConfig.from_env()).files


@pytest.mark.parametrize("value", [
    {"version": 3, "metadata": {}, "tensors": [["t", [1, "x"], 0, 0, 0]], "alignment": 32, "data_offset": 0},
    {"version": 3, "metadata": {"a": {"$skip": 5}}, "tensors": [], "alignment": 32, "data_offset": 0},
    {"version": 3, "metadata": {"a": {"$bytes": "!!"}}, "tensors": [], "alignment": 32, "data_offset": 0},
    {"version": 3.5, "metadata": {}, "tensors": [], "alignment": 32, "data_offset": 0},
    {"version": 3, "metadata": {}, "tensors": [], "alignment": 0, "data_offset": 0},
    {"version": 3, "metadata": {}, "tensors": [], "alignment": 32, "data_offset": -1},
    "a string",
])
def test_a_checksummed_header_of_the_wrong_shape_is_a_miss(tmp_path: Path, value: Any) -> None:
    c = Cache(tmp_path)
    path = _forge(c, "headers", "k", value)
    assert c.get_header("k") is None
    assert not path.exists() and c.stats.corrupt == 1


@pytest.mark.parametrize("payload", [b'{"key": "k", "value": NaN}', b'{"key": "k", "value": Infinity}',
                                     b"[" * 100_000 + b"]" * 100_000])
def test_non_json_constants_and_deep_nesting(tmp_path: Path, payload: bytes) -> None:
    c = Cache(tmp_path)
    path = c._path("headers", "k")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"memfit-cache 1 %d %s\n" % (len(payload), hashlib.sha256(payload).hexdigest().encode())
                     + payload)
    assert c.get("headers", "k") is None and not path.exists()


# --- special files where an entry should be -----------------------------------------------------------


def test_a_fifo_entry_neither_hangs_nor_stays(tmp_path: Path) -> None:
    """Before: a FIFO at an entry's path hung memfit, online and offline."""
    c = Cache(tmp_path)
    path = c._path("headers", "k")
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    assert _bounded(lambda: c.get_header("k"), 5) is None
    assert not path.exists()


def test_a_symlink_to_dev_zero_is_not_read(tmp_path: Path) -> None:
    """Before: the read grew to 7 GB."""
    c = Cache(tmp_path)
    path = c._path("headers", "k")
    path.parent.mkdir(parents=True)
    path.symlink_to("/dev/zero")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert _bounded(lambda: c.get_header("k"), 5) is None
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024  # KiB: < 64 MiB more
    assert not path.is_symlink() and Path("/dev/zero").exists()


def test_a_symlink_to_a_valid_entry_elsewhere_is_not_followed(tmp_path: Path) -> None:
    c = Cache(tmp_path / "c")
    outside = tmp_path / "user-file.txt"
    outside.write_text("the user's own data\n")
    path = c._path("refs", "k")
    path.parent.mkdir(parents=True)
    path.symlink_to(outside)
    assert c.get("refs", "k") is None
    assert outside.read_text() == "the user's own data\n"  # never touched


def test_a_huge_entry_is_discarded_without_being_read(tmp_path: Path) -> None:
    """Before: a 2 GiB damaged entry peaked at 4.3 GB before it was discarded."""
    c = Cache(tmp_path)
    path = c._path("headers", "k")
    path.parent.mkdir(parents=True)
    with open(path, "wb") as f:
        f.write(b"memfit-cache 1 9 x\n")
        f.truncate(2 << 30)  # sparse: 2 GiB that cost no disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    assert c.get_header("k") is None
    assert time.monotonic() - t0 < 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024
    assert not path.exists()


def test_a_directory_where_an_entry_should_be(tmp_path: Path) -> None:
    c = Cache(tmp_path)
    path = c._path("headers", "k")
    path.mkdir(parents=True)
    (path / "keep").write_text("x")
    assert c.get_header("k") is None
    assert (path / "keep").exists()  # a directory is never emptied by memfit
    assert not c.put("headers", "k", {"x": 1})  # cannot replace it: a lost cache entry, not a failure


def test_entries_larger_than_the_bound_are_not_written(tmp_path: Path) -> None:
    from planner.cache import MAX_ENTRY_BYTES

    c = Cache(tmp_path)
    assert not c.put("headers", "k", "x" * MAX_ENTRY_BYTES)
    assert c.put("headers", "k2", "x" * 1000) and c.get("headers", "k2") == "x" * 1000


def test_special_entries_offline(fake_hub: FakeHub, repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A FIFO in place of a header entry offline: a clear 'not in the cache', not a hang."""
    m = resolve(repo)
    (entry,) = _entries("headers")
    entry.unlink()
    os.mkfifo(entry)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from planner.errors import HubError

    with pytest.raises(HubError, match="not in the memfit cache"):
        _bounded(lambda: resolve(repo), 10)
    assert m.revision is not None and not entry.exists()


def test_local_files_still_cache(tmp_path: Path) -> None:
    p = ggufgen.write_model(tmp_path / "m.gguf", "llama")[0]
    c = Cache(tmp_path / "c")
    assert c.put_header(local_header_key(p), parse_file(p))
    assert c.get_header(local_header_key(p)) is not None
