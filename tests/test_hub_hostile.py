"""Hostile and broken servers (issue 12): slow bodies meet a deadline, listings are validated
before any request, redirects leave HTTP at once, and a file that changes between the listing
and the read is reported, never cached as a mix of two versions. All against planner/testing/fakehub.py.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from planner.testing import ggufgen
from planner.testing.fakehub import FakeHub, model_repo_files, seconds_spent
from planner import hub
from planner.cache import default_cache
from planner.errors import HubError, MemfitError
from planner.reader import parse_file
from planner.resolver import resolve

REPO = "o/m-GGUF"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    return model_repo_files(root, "M", ["Q4_K_M", "Q8_0"], shape=ggufgen.ModelShape(n_vocab=3000))


def _bounded(fn: Callable[[], Any], limit: float) -> tuple[Any, BaseException | None, float]:
    """Run fn in a thread; fail the test (instead of hanging it) when fn runs past `limit`."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t0 = time.monotonic()
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(limit)
    took = time.monotonic() - t0
    assert not t.is_alive(), f"still running after {limit} s: no overall deadline"
    return out.get("value"), out.get("error"), took


def _header_entries() -> list[Path]:
    return sorted((default_cache().base / "headers").rglob("*.entry"))


# --- slow bodies: an overall deadline besides the per-read timeout -----------------------------------


def _timed_resolve(fake_hub: FakeHub, files: dict, monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                   fault: dict[str, Any], ref: str = f"{REPO}:Q4_K_M") -> tuple[BaseException | None, float]:
    """With `env` set and `fault` injected, serve the repo and resolve `ref` (given at most 10 s):
    the error it ended with, and how long it took."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    fake_hub.add_fault(**fault)
    fake_hub.add_repo(REPO, files)
    _, err, took = _bounded(lambda: resolve(ref), 10)
    return err, took


def test_a_body_trickling_one_byte_at_a_time_meets_the_deadline(fake_hub: FakeHub, files, monkeypatch) -> None:
    """Before: a server sending a byte per second never tripped the 10 s read timeout."""
    err, took = _timed_resolve(fake_hub, files, monkeypatch, {"MEMFIT_HTTP_DEADLINE": "1.5"},
                               dict(kind="trickle", after_bytes=16, delay=0.05, times=-1, where="cdn"))
    assert isinstance(err, HubError), err
    assert "took longer than the 1.5 s one read may take" in err.message
    spent = seconds_spent(err.message)
    assert "gave up after 1 attempt(s)" in err.message
    assert spent is not None and 1.5 <= spent < took + 0.1, err.message  # the time it really took
    assert "bytes received" in err.message
    assert "MEMFIT_HTTP_DEADLINE" in (err.hint or "")
    assert took < 5


def test_a_trickling_listing_meets_the_deadline(fake_hub: FakeHub, files, monkeypatch) -> None:
    err, took = _timed_resolve(fake_hub, files, monkeypatch, {"MEMFIT_HTTP_DEADLINE": "1"},
                               dict(kind="trickle", after_bytes=8, delay=0.05, times=-1, where="api"), ref=REPO)
    assert isinstance(err, HubError) and "took longer than the 1 s" in err.message, err
    assert took < 4


def test_a_trickled_error_body_meets_the_deadline(fake_hub: FakeHub, files, monkeypatch) -> None:
    err, took = _timed_resolve(fake_hub, files, monkeypatch, {"MEMFIT_HTTP_DEADLINE": "1"},
                               dict(kind="status", status=503, delay=0.05, after_bytes=60000, times=-1, where="cdn"))
    assert isinstance(err, HubError) and "1 s one read may take" in err.message, err
    assert took < 4


def test_retries_stop_at_the_deadline(fake_hub: FakeHub, files, monkeypatch) -> None:
    """Retry-After waits count against the deadline: no sleeping past it."""
    env = {"MEMFIT_HTTP_DEADLINE": "1", "MEMFIT_HTTP_MAX_WAIT": "30"}
    err, took = _timed_resolve(fake_hub, files, monkeypatch, env,
                               dict(kind="status", status=429, retry_after="20", times=-1, where="cdn"))
    assert isinstance(err, HubError) and "gave up after 1 attempt(s)" in err.message, err
    assert took < 3


def test_timeout_message_states_the_time_spent(fake_hub: FakeHub, files, monkeypatch) -> None:
    """Before: 'timed out after 10 s' appeared after 60 s (five attempts and their waits)."""
    env = {"MEMFIT_HTTP_TIMEOUT": "0.2", "MEMFIT_HTTP_RETRIES": "2"}
    err, took = _timed_resolve(fake_hub, files, monkeypatch, env, dict(kind="latency", delay=3, times=-1, where="cdn"))
    assert isinstance(err, HubError), err
    spent = seconds_spent(err.message)
    assert "no data within 0.2 s, gave up after 3 attempt(s)" in err.message
    assert spent is not None and 0.6 <= spent <= took + 0.1


# --- redirects ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://example.invalid/x", "gopher://x/"])
def test_a_non_http_redirect_fails_at_once(fake_hub: FakeHub, files, location: str) -> None:
    """Before: a file:// redirect was retried 5 times."""
    fake_hub.add_repo(REPO, files)
    fake_hub.add_fault("redirect", location=location, times=-1, where="resolve")
    with pytest.raises(HubError, match="not an HTTP\\(S\\) URL"):
        resolve(f"{REPO}:Q4_K_M")
    assert sum(1 for r in fake_hub.records if "/resolve/" in r.path) == 1
    assert hub.STATS.retries == 0


def test_a_non_http_redirect_of_the_listing(fake_hub: FakeHub, files) -> None:
    fake_hub.add_repo(REPO, files)
    fake_hub.add_fault("redirect", location="file:///etc/passwd", times=-1, where="api")
    with pytest.raises(HubError, match="not an HTTP\\(S\\) URL"):
        resolve(REPO)
    assert fake_hub.request_count("hub") == 1


# --- listings: names and sizes validated before any request --------------------------------------------


def _edit_sibling(name: str, **changes: Any) -> Callable[[dict], dict]:
    def hook(body: dict) -> dict:
        for s in body["siblings"]:
            if s["rfilename"] == name:
                for k, v in changes.items():
                    if k == "size":
                        s["size"] = v
                        if "lfs" in s:
                            s["lfs"]["size"] = v
                    else:
                        s[k] = v
        return body
    return hook


@pytest.mark.parametrize("size,why", [("1234", "not an integer"), (1 << 63, "9223372036854775808 bytes"),
                                      (-1, "-1 bytes"), (True, "not an integer"), (1.5e9, "not an integer")])
def test_a_listed_size_that_cannot_be_is_skipped_with_a_warning(fake_hub: FakeHub, files, size, why) -> None:
    """Before: a string size crashed (ValueError); 2^63 bytes printed 8,589,934,592 GiB."""
    fake_hub.add_repo(REPO, files)
    fake_hub.listing_hook = _edit_sibling("M-Q8_0.gguf", size=size)
    m = resolve(REPO)
    assert [v.quant for v in m.variants] == ["Q4_K_M"]
    assert any("M-Q8_0.gguf" in p and why in p for p in m.problems), m.problems
    assert not any("Q8_0" in r.path for r in fake_hub.file_records())


@pytest.mark.parametrize("name", ["../../x.gguf", "/etc/x.gguf", "a/../../b.gguf", "a//b.gguf", "a\\b.gguf",
                                  "ok\u202egguf.gguf", "new\nline.gguf"])
def test_a_listed_name_that_could_leave_the_repo_is_skipped(fake_hub: FakeHub, files, name: str) -> None:
    """Before: `../../x.gguf` made memfit request a path outside /resolve/, and one bad name
    failed the whole repo."""
    fake_hub.add_repo(REPO, files)

    def hook(body: dict) -> dict:
        body["siblings"].append({"rfilename": name, "size": 1000, "blobId": "0" * 40,
                                 "lfs": {"size": 1000, "sha256": "1" * 64, "pointerSize": 134}})
        return body

    fake_hub.listing_hook = hook
    m = resolve(REPO)
    assert sorted(v.quant for v in m.variants) == ["Q4_K_M", "Q8_0"]
    assert any(p.startswith("skipped ") and "the listing gives a file name" in p for p in m.problems), m.problems
    for r in fake_hub.records:
        assert r.server == "cdn" or r.path.startswith("/api/models/o/m-GGUF") \
            or r.path.startswith("/o/m-GGUF/resolve/"), r.path
        assert ".." not in r.path and "etc" not in r.path


def test_a_listing_with_a_bad_commit_or_shape(fake_hub: FakeHub, files) -> None:
    fake_hub.add_repo(REPO, files)
    fake_hub.listing_hook = lambda body: {**body, "sha": "../../x"}
    with pytest.raises(HubError, match="did not return a commit id"):
        resolve(REPO)
    fake_hub.listing_hook = lambda body: {**body, "siblings": {"not": "a list"}}
    with pytest.raises(MemfitError, match="no GGUF model files"):
        resolve("o/m-GGUF@main", revision=None)


# --- a file that changes between the listing and the read ----------------------------------------------


def test_a_file_replaced_after_the_listing_is_reported_not_cached(fake_hub: FakeHub, files, tmp_path) -> None:
    """Before: accepted and cached (neither Content-Range total nor ETag was checked)."""
    fake_hub.add_repo(REPO, files)
    m = resolve(f"{REPO}:Q4_K_M", load_headers=False)  # the listing is now cached
    other = ggufgen.write_model(tmp_path / "other.gguf", "llama", ggufgen.ModelShape(n_layer=3))[0]
    fake_hub.replace_content(REPO, "M-Q4_K_M.gguf", other)
    with pytest.raises(hub.FileChangedError, match="M-Q4_K_M.gguf changed on the Hub while memfit read it"):
        resolve(f"{REPO}:Q4_K_M")
    assert _header_entries() == []
    assert m.revision is not None
    # the next run lists afresh (the stale listing was dropped) and reads the new bytes consistently
    again = resolve(f"{REPO}:Q4_K_M")
    assert again.variants[0].headers.metadata == parse_file(other).metadata  # type: ignore[union-attr]


def test_a_file_changing_between_two_ranges_of_one_read(fake_hub: FakeHub, files, tmp_path, monkeypatch) -> None:
    """Same size, other bytes, mid-read: the second range carries another ETag."""
    monkeypatch.setenv("MEMFIT_HTTP_CHUNK", "4096")  # several ranges per header
    fake_hub.add_repo(REPO, files)
    src = files["M-Q4_K_M.gguf"]
    changed = bytearray(src.read_bytes())
    changed[-1] ^= 0xFF  # a byte of the data region: same size, another content id
    fake_hub.add_fault("call", where="cdn", skip=1, times=1,
                       action=lambda: fake_hub.replace_content(REPO, "M-Q4_K_M.gguf", bytes(changed)))
    with pytest.raises(hub.FileChangedError, match="two versions would be mixed"):
        resolve(f"{REPO}:Q4_K_M")
    assert _header_entries() == []


def test_a_listing_whose_content_id_is_not_the_files(fake_hub: FakeHub, files) -> None:
    """A regular (non-LFS) file served by the Hub itself: its ETag is the listing's blob id."""
    fake_hub.add_repo(REPO, files, lfs=False)
    fake_hub.listing_hook = _edit_sibling("M-Q8_0.gguf", blobId="ab" * 20)
    assert resolve(f"{REPO}:Q4_K_M").variants[0].headers is not None
    with pytest.raises(hub.FileChangedError, match="content id abababababab"):
        resolve(f"{REPO}:Q8_0")
