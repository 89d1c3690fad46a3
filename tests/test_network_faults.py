"""Every injected network fault ends in the right outcome: a correct header after a bounded
number of retries, or one clear HubError line with a hint, within a bounded time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from planner.testing import ggufgen
from planner.testing.clirun import logical_lines
from planner.testing.fakehub import FakeHub, model_repo_files, seconds_spent
from planner import hub
from planner.cli import run
from planner.errors import HubError
from planner.reader import parse_file
from planner.resolver import resolve

RETRIES = 3  # the fake_hub fixture sets MEMFIT_HTTP_RETRIES=3: at most 4 attempts per read


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One variant with a ~1.2 MiB header (several ranges with the default 1 MiB chunk)."""
    root = tmp_path_factory.mktemp("faults")
    return model_repo_files(root, "M", ["Q4_K_M"], shape=ggufgen.ModelShape(n_vocab=40000))


@pytest.fixture
def repo(fake_hub: FakeHub, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MEMFIT_HTTP_CHUNK", str(256 * 1024))  # several range requests per header
    fake_hub.add_repo("o/m-GGUF", files)
    return "o/m-GGUF"


def _expected(files: dict[str, Path]):
    return parse_file(files["M-Q4_K_M.gguf"])


def _check_ok(ref: str, files: dict[str, Path]) -> None:
    m = resolve(ref)
    got = m.variants[0].headers.shards[0]  # type: ignore[union-attr]
    want = _expected(files)
    assert got.metadata == want.metadata and got.tensors == want.tensors and got.data_offset == want.data_offset


def _cdn(h: FakeHub) -> list:
    return [r for r in h.records if r.server == "cdn"]


def _retry_reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Why each retry of a file read happened, from memfit's own log line
    ("<file>: <reason>; retry n/N in ..."), so a failing count says what caused it."""
    return [r.getMessage().split(": ", 1)[1].split("; retry ", 1)[0]
            for r in caplog.records if r.name == "memfit.hub" and "; retry " in r.getMessage()]


_TIMEOUTS = ("ReadTimeout", "ConnectTimeout", "WriteTimeout", "PoolTimeout", "TimeoutException")


# --- recovered faults ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_then_success(fake_hub: FakeHub, repo: str, files: dict[str, Path], status: int,
                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="memfit.hub")
    fake_hub.add_fault("status", status=status, times=2, where="cdn")
    _check_ok(repo, files)
    reasons = _retry_reasons(caplog)
    assert reasons.count(f"HTTP {status}") == 2, reasons
    assert hub.STATS.retries == len(reasons)
    assert [r.status for r in _cdn(fake_hub)][:3] == [status, status, 206]


def test_429_retry_after_is_honoured(fake_hub: FakeHub, repo: str, files: dict[str, Path],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMFIT_HTTP_MAX_WAIT", "5")
    fake_hub.add_fault("status", status=429, retry_after="1", times=1, where="cdn")
    t0 = time.monotonic()
    _check_ok(repo, files)
    elapsed = time.monotonic() - t0
    assert elapsed >= 1.0  # waited the 1 s the server asked for (backoff alone is 0.01 s)
    assert hub.STATS.retries == 1


def test_429_on_the_listing(fake_hub: FakeHub, repo: str, files: dict[str, Path]) -> None:
    fake_hub.add_fault("status", status=429, retry_after="0", times=2, where="api")
    _check_ok(repo, files)
    assert sum(1 for r in fake_hub.records if r.path.startswith("/api/")) == 3


def test_reset_mid_body_resumes_from_the_last_byte(fake_hub: FakeHub, repo: str, files: dict[str, Path]) -> None:
    fake_hub.add_fault("reset", after_bytes=100_000, times=1, where="cdn")
    _check_ok(repo, files)
    cdn = _cdn(fake_hub)
    first, second = cdn[0], cdn[1]
    assert first.range.startswith("bytes=0-")  # type: ignore[union-attr]
    resumed_at = int(second.range.split("=")[1].split("-")[0])  # type: ignore[union-attr]
    assert resumed_at == 100_000  # continued after what arrived, never from byte 0
    assert all(not r.range.startswith("bytes=0-") for r in cdn[1:])  # type: ignore[union-attr]
    assert hub.STATS.retries == 1


def test_truncated_range_answer_resumes(fake_hub: FakeHub, repo: str, files: dict[str, Path]) -> None:
    fake_hub.add_fault("truncate", after_bytes=50_000, times=2, where="cdn")
    _check_ok(repo, files)
    assert hub.STATS.retries == 2
    starts = [int(r.range.split("=")[1].split("-")[0]) for r in _cdn(fake_hub)]  # type: ignore[union-attr]
    assert starts[:3] == [0, 50_000, 100_000]


def test_short_but_valid_range_answer_is_not_an_error(fake_hub: FakeHub, repo: str, files: dict[str, Path],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A 206 that covers fewer bytes than asked is a valid answer: the read goes on from where it
    ended, never as a retry (a retry here would name the short answer as its reason)."""
    caplog.set_level("INFO", logger="memfit.hub")
    fake_hub.add_fault("short_range", after_bytes=4096, times=3, where="cdn")
    _check_ok(repo, files)
    reasons = _retry_reasons(caplog)
    assert not [r for r in reasons if not r.endswith(_TIMEOUTS + ("RemoteProtocolError",))], reasons
    assert sum(1 for r in _cdn(fake_hub) if r.status == 206) >= 4  # three short answers, then the rest


def test_latency_below_the_timeout(fake_hub: FakeHub, repo: str, files: dict[str, Path],
                                   monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Every answer 0.1 s late under a 5 s timeout: the read succeeds and no wait is taken for a
    timeout (a retry for another cause, a kept-alive connection a busy CI machine lost, is not
    this test's subject; its reason is printed when the count is wrong)."""
    caplog.set_level("INFO", logger="memfit.hub")
    monkeypatch.setenv("MEMFIT_HTTP_TIMEOUT", "5")
    fake_hub.add_fault("latency", delay=0.1, times=-1, where="any")
    _check_ok(repo, files)
    reasons = _retry_reasons(caplog)
    assert not [r for r in reasons if r.endswith(_TIMEOUTS)], reasons
    assert hub.STATS.retries == len(reasons)


def test_range_ignored_200_whole_body(fake_hub: FakeHub, tmp_path: Path) -> None:
    """A proxy that answers ranges with 200 + the whole (1.5 GB, sparse) file: read the header
    and stop; the open body serves the following reads, no second request."""
    big = model_repo_files(tmp_path, "B", ["Q8_0"], shape=ggufgen.ModelShape(
        n_vocab=40000, n_layer=8, n_embd=4096, n_ff=11008))
    fake_hub.add_repo("o/big-GGUF", big)
    fake_hub.add_fault("full_body", times=-1, where="cdn")
    _check_ok("o/big-GGUF", {"M-Q4_K_M.gguf": big["B-Q8_0.gguf"]})
    cdn = _cdn(fake_hub)
    assert len(cdn) == 1 and cdn[0].status == 200
    header = parse_file(big["B-Q8_0.gguf"]).data_offset
    size = big["B-Q8_0.gguf"].stat().st_size
    assert size > 500 * header
    sent = fake_hub.bytes_sent("/blobs/")
    assert sent < header + 16 * 1024 * 1024, (sent, header)  # socket buffers, not the file


def test_expired_cdn_url_goes_back_to_the_hub(fake_hub: FakeHub, repo: str, files: dict[str, Path]) -> None:
    """Later ranges go straight to the CDN URL the Hub redirected to; when that signed URL has
    expired (403), the source asks the Hub again for a fresh one."""
    fake_hub.add_fault("status", status=403, where="cdn", skip=1, times=1)
    _check_ok(repo, files)
    hops = [r for r in fake_hub.records if "/resolve/" in r.path]
    assert len(hops) == 2
    assert [r.status for r in _cdn(fake_hub)][:3] == [206, 403, 206]


def test_cdn_refusing_a_fresh_url_is_an_error(fake_hub: FakeHub, repo: str) -> None:
    fake_hub.add_fault("status", status=403, where="cdn", times=-1)
    with pytest.raises(HubError, match="HTTP 403"):
        resolve(repo)


# --- failures that must end cleanly ------------------------------------------------------------------


def test_5xx_forever_gives_up_after_bounded_attempts(fake_hub: FakeHub, repo: str) -> None:
    fake_hub.add_fault("status", status=503, times=-1, where="cdn")
    t0 = time.monotonic()
    with pytest.raises(HubError, match=r"HTTP 503 after 4 attempt") as e:
        resolve(repo)
    assert time.monotonic() - t0 < 5
    assert len(_cdn(fake_hub)) == RETRIES + 1
    assert "try again" in (e.value.hint or "")


def test_listing_500_forever(fake_hub: FakeHub, repo: str) -> None:
    fake_hub.add_fault("status", status=500, times=-1, where="api")
    with pytest.raises(HubError, match=r"HTTP 500 after 4 attempt"):
        resolve(repo)
    assert sum(1 for r in fake_hub.records if r.path.startswith("/api/models")) == RETRIES + 1


def test_listing_answer_that_is_not_the_hub_api(fake_hub: FakeHub, repo: str) -> None:
    fake_hub.add_fault("status", status=200, times=-1, where="api")  # 200 with {"error": ...}
    with pytest.raises(HubError, match="not what the Hub API returns") as e:
        resolve(repo)
    assert "HF_ENDPOINT" in (e.value.hint or "")


def test_429_forever(fake_hub: FakeHub, repo: str) -> None:
    fake_hub.add_fault("status", status=429, retry_after="0", times=-1, where="cdn")
    with pytest.raises(HubError, match="rate limited") as e:
        resolve(repo)
    assert "HF_TOKEN" in (e.value.hint or "")
    assert len(_cdn(fake_hub)) == RETRIES + 1


def test_resets_forever(fake_hub: FakeHub, repo: str) -> None:
    fake_hub.add_fault("reset", after_bytes=1000, times=-1, where="cdn")
    with pytest.raises(HubError, match="after 4 attempt"):
        resolve(repo)
    assert len(_cdn(fake_hub)) == RETRIES + 1


def test_timeout_is_bounded(fake_hub: FakeHub, repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMFIT_HTTP_TIMEOUT", "0.2")
    monkeypatch.setenv("MEMFIT_HTTP_RETRIES", "1")
    fake_hub.add_fault("latency", delay=3, times=-1, where="cdn")
    t0 = time.monotonic()
    with pytest.raises(HubError, match=r"timed out waiting for the Hub \(M-Q4_K_M.gguf\): no data within 0.2 s, "
                                       r"gave up after 2 attempt\(s\) in \d+\.\d s") as e:
        resolve(repo)  # the message says what the read really cost (it said "after 0.2 s")
    took = time.monotonic() - t0
    assert took < 2.0
    spent = seconds_spent(e.value.message)
    assert spent is not None and 0.4 <= spent <= took + 0.05  # two 0.2 s waits, no more than the read took
    assert "HF_HUB_DOWNLOAD_TIMEOUT" in (e.value.hint or "")
    assert len(_cdn(fake_hub)) == 2


def test_listing_timeout(fake_hub: FakeHub, repo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMFIT_HTTP_TIMEOUT", "0.2")
    monkeypatch.setenv("MEMFIT_HTTP_RETRIES", "0")
    fake_hub.add_fault("latency", delay=3, times=-1, where="api")
    with pytest.raises(HubError, match="timed out"):
        resolve(repo)


def test_cli_prints_one_line_and_exit_code_1(fake_hub: FakeHub, repo: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    fake_hub.add_fault("status", status=502, times=-1, where="cdn")
    assert run(["inspect", repo]) == 1
    out, err = capsys.readouterr()
    lines = logical_lines(err.strip())  # error and hint, each wrapped to 80 columns
    assert out == "" and len(lines) == 2
    assert lines[0].startswith("error: the Hub answered HTTP 502") and lines[1].startswith("hint: ")
    assert "Traceback" not in err
    assert run(["inspect", repo, "--json"]) == 1
    out, _ = capsys.readouterr()
    assert '"kind": "hub"' in out
