"""Hugging Face Hub access: repo listings (cached per commit) and an HTTP range ByteSource.

Everything goes through huggingface-hub's own session and conventions: `HF_ENDPOINT`, the token
from `HF_TOKEN` or `hf auth login`, `HF_HUB_OFFLINE`, `HF_HUB_DOWNLOAD_TIMEOUT`. On top of that:
- bounded retries with exponential backoff on 5xx, 429 (honouring `Retry-After`), timeouts,
  connection resets and truncated bodies; a retry continues from the last byte received;
- redirects are followed by hand so the token is only ever sent to the Hub itself, never to the
  CDN host a file redirects to;
- every failure becomes one `HubError` line with a hint; the token never appears in a message.

Tunables (environment): MEMFIT_HTTP_TIMEOUT (s, default HF_HUB_DOWNLOAD_TIMEOUT or 10),
MEMFIT_HTTP_RETRIES (default 4 retries after the first attempt), MEMFIT_HTTP_BACKOFF (first wait,
default 0.5 s, doubling), MEMFIT_HTTP_MAX_WAIT (cap on one wait incl. Retry-After, default 30 s),
MEMFIT_HUB_WORKERS (parallel file reads per repo, default 8), MEMFIT_REF_TTL (how long a branch
name -> commit resolution is trusted before asking the Hub again, default 3600 s),
MEMFIT_HTTP_CHUNK (read-ahead of a header read, default 1 MiB; it grows by 10% of the bytes
already read, so the bytes fetched past a header's end stay under one chunk + 10%).
"""

from __future__ import annotations

import importlib
import logging
import os
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import quote, urljoin, urlsplit

from huggingface_hub import constants  # settings only (~3 ms); the HTTP stack loads on first use

from . import __version__
from .cache import Cache, default_cache
from .counters import Counters
from .errors import HubError, MemfitError, ResolveError

log = logging.getLogger("memfit.hub")


class _Lazy:
    """A module imported on its first attribute access. huggingface-hub's HTTP client stack
    (httpx2, the API client, the error types) costs ~0.1 s to import and a warm run never sends a
    request; the import lock makes the first access thread-safe."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


httpx2 = _Lazy("httpx2")
_hf = _Lazy("huggingface_hub")
_hf_errors = _Lazy("huggingface_hub.errors")
_hf_utils = _Lazy("huggingface_hub.utils")

# huggingface-hub decorates its User-Agent with an "agent" name looked up in a registry it
# downloads from huggingface.co (whatever HF_ENDPOINT says) about once a day. memfit promises
# that a warm run makes no request at all, and a network that only reaches a mirror would stall
# on it, so memfit opts out of those User-Agent extras. Nothing else changes.
constants.HF_HUB_DISABLE_TELEMETRY = True

T = TypeVar("T")
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_TOKEN_RE = re.compile(r"\bhf_[A-Za-z0-9]{8,}\b")
_ERROR_BODY_LIMIT = 64 * 1024


# --- configuration --------------------------------------------------------------------------------


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ[name])
    except (KeyError, ValueError):
        return default


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in constants.ENV_VARS_TRUE_VALUES


@dataclass(frozen=True)
class NetConfig:
    """Network settings, read from the environment when a command starts (not at import)."""

    endpoint: str
    timeout: float
    retries: int
    backoff: float
    max_wait: float
    workers: int
    ref_ttl: float
    chunk: int = 1 << 20

    @classmethod
    def from_env(cls) -> "NetConfig":
        endpoint = (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
        hf_timeout = _env_float("HF_HUB_DOWNLOAD_TIMEOUT", float(constants.HF_HUB_DOWNLOAD_TIMEOUT))
        return cls(
            endpoint=endpoint,
            timeout=max(0.05, _env_float("MEMFIT_HTTP_TIMEOUT", hf_timeout)),
            retries=max(0, int(_env_float("MEMFIT_HTTP_RETRIES", 4))),
            backoff=max(0.0, _env_float("MEMFIT_HTTP_BACKOFF", 0.5)),
            max_wait=max(0.0, _env_float("MEMFIT_HTTP_MAX_WAIT", 30.0)),
            workers=max(1, int(_env_float("MEMFIT_HUB_WORKERS", 8))),
            ref_ttl=_env_float("MEMFIT_REF_TTL", 3600.0),
            chunk=max(4096, int(_env_float("MEMFIT_HTTP_CHUNK", 1 << 20))),
        )

    def wait_time(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to sleep before retry number `attempt` (1-based)."""
        if retry_after is not None:
            return min(max(0.0, retry_after), self.max_wait)
        base = self.backoff * (2 ** (attempt - 1))
        return min(base * (1.0 + 0.1 * random.random()), self.max_wait)


def is_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE), as set now or when huggingface-hub was imported."""
    return constants.is_offline_mode() or _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(
        os.environ.get("TRANSFORMERS_OFFLINE"))


def current_token() -> str | None:
    """The token huggingface-hub would send (HF_TOKEN, else the `hf auth login` file)."""
    if _truthy(os.environ.get("HF_HUB_DISABLE_IMPLICIT_TOKEN")):
        return None
    env = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if env and env.strip():
        return env.strip()
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:  # a broken token file or OIDC setup must not crash the planner
        return None


def redact(text: str) -> str:
    """Remove the token (and anything shaped like an HF token) and URL query strings from text."""
    token = current_token()
    if token:
        text = text.replace(token, "***")
    text = _TOKEN_RE.sub("hf_***", text)
    return re.sub(r"(https?://[^\s?#'\"]+)\?[^\s'\"]*", r"\1?…", text)


def _origin(url: str) -> tuple[str, str, int]:
    p = urlsplit(url)
    return (p.scheme, (p.hostname or "").lower(), p.port or {"http": 80, "https": 443}.get(p.scheme, 0))


def _trusted_origins(cfg: NetConfig) -> set[tuple[str, str, int]]:
    """Hosts the token may be sent to: the configured endpoint and the Hub's own hosts."""
    return {_origin(cfg.endpoint), _origin("https://huggingface.co"), _origin("https://hf.co")}


def _headers_for(url: str, cfg: NetConfig) -> dict[str, str]:
    headers = _hf_utils.build_hf_headers(library_name="memfit", library_version=__version__)
    if _origin(url) not in _trusted_origins(cfg):
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
    return headers


# --- statistics (for --verbose and the request/byte budget tests) ---------------------------------


@dataclass
class NetStats(Counters):
    api_requests: int = 0  # listing calls
    range_requests: int = 0  # GETs for file bytes (each redirect hop counts)
    bytes_received: int = 0  # body bytes of file GETs
    retries: int = 0


STATS = NetStats()


# --- errors ---------------------------------------------------------------------------------------


class RepoNotFoundError(HubError):
    """No such repo (or private without access): an alias may fall through to its next repo."""


class GatedRepoAccessError(HubError):
    """A gated repo this token (or no token) may not read."""


class OfflineMissError(HubError):
    """HF_HUB_OFFLINE is set and what we need is not cached."""


def _web(cfg: NetConfig, repo: str) -> str:
    return f"{cfg.endpoint}/{repo}"


def gated_error(cfg: NetConfig, repo: str, *, have_token: bool) -> HubError:
    if have_token:
        return GatedRepoAccessError(
            f"{repo} is a gated repository and your Hugging Face token has no access to it yet",
            hint=f"request access at {_web(cfg, repo)} (approval can take a while), "
                 "or use a token of an account that has access (HF_TOKEN / `hf auth login`)")
    return GatedRepoAccessError(
        f"{repo} is a gated repository: reading it needs an accepted access request and a token",
        hint=f"request access at {_web(cfg, repo)}, then set HF_TOKEN=<your token> or run `hf auth login`")


def repo_not_found(cfg: NetConfig, repo: str) -> HubError:
    hint = f"check the name on {cfg.endpoint} (owner/repo, e.g. unsloth/Qwen3-30B-A3B-GGUF)"
    hint += "; for a private repo use a token with access" if current_token() else \
        "; for a private repo set HF_TOKEN or run `hf auth login`"
    return RepoNotFoundError(f"repository {repo} not found on the Hub", hint=hint)


def revision_not_found(cfg: NetConfig, repo: str, revision: str) -> HubError:
    return HubError(f"revision '{revision}' not found in {repo}",
                    hint=f"use a branch, tag or full commit sha that exists (see {_web(cfg, repo)}/tree/main)")


def offline_missing(what: str) -> HubError:
    return OfflineMissError(f"HF_HUB_OFFLINE is set and {what} is not in the memfit cache",
                    hint="run the same command once with network access (it caches headers), "
                         "or unset HF_HUB_OFFLINE")


def _timeout_error(cfg: NetConfig, what: str) -> HubError:
    return HubError(f"timed out after {cfg.timeout:g} s waiting for the Hub ({what})",
                    hint="check your network or proxy, raise HF_HUB_DOWNLOAD_TIMEOUT, "
                         "or run with HF_HUB_OFFLINE=1 to use cached headers")


def _network_error(cfg: NetConfig, what: str, exc: BaseException) -> HubError:
    if isinstance(exc, httpx2.TimeoutException):
        return _timeout_error(cfg, what)
    if isinstance(exc, httpx2.ConnectError):
        return HubError(f"cannot connect to {cfg.endpoint} ({what})",
                        hint="check the network, proxy settings (HTTPS_PROXY) and HF_ENDPOINT; "
                             "HF_HUB_OFFLINE=1 uses cached headers")
    reason = redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__
    return HubError(f"network error talking to the Hub ({what}): {reason}",
                    hint="try again; if it persists check your connection or proxy")


def _status_error(cfg: NetConfig, status: int, headers: Any, *, repo: str, what: str,
                  revision: str | None = None, attempts: int = 1) -> HubError:
    code = (headers.get("x-error-code") or "") if headers is not None else ""
    if code == "GatedRepo" or (status == 403 and "gated" in (headers.get("x-error-message") or "").lower()):
        return gated_error(cfg, repo, have_token=current_token() is not None)
    if code == "RevisionNotFound":
        return revision_not_found(cfg, repo, revision or "?")
    if code == "RepoNotFound" or (status == 401 and code != "EntryNotFound"):
        if status == 401 and (headers.get("x-error-message") or "").startswith("Invalid credentials"):
            return HubError("the Hub rejected your token (invalid or expired)",
                            hint="create a new token at https://huggingface.co/settings/tokens and set HF_TOKEN, "
                                 "or run `hf auth login`")
        return repo_not_found(cfg, repo)
    if code == "EntryNotFound" or status == 404:
        return HubError(f"{what} not found in {repo}" + (f" at {revision[:12]}" if revision else ""),
                        hint="the file may have been removed; set MEMFIT_REF_TTL=0 to refresh the listing")
    if status == 403:
        return HubError(f"the Hub refused access to {what} in {repo} (HTTP 403)",
                        hint="check that your token (HF_TOKEN / `hf auth login`) has read access to this repo")
    if status == 429:
        return HubError(f"rate limited by the Hub (HTTP 429) after {attempts} attempt(s) reading {what}",
                        hint="wait a minute and retry; logged-in users (HF_TOKEN) get higher limits")
    if status >= 500:
        return HubError(f"the Hub answered HTTP {status} after {attempts} attempt(s) reading {what}",
                        hint="the Hub or a proxy is having trouble; try again shortly (status.huggingface.co)")
    return HubError(f"unexpected HTTP {status} from the Hub reading {what} in {repo}",
                    hint="try again; check HF_ENDPOINT if you use a mirror")


# --- listings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int
    oid: str | None = None  # LFS sha256 (content id) when known


@dataclass
class RepoListing:
    """The GGUF files of one repo at one commit (what the cache stores per commit)."""

    repo: str
    commit: str
    files: list[HubFile]
    gated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"repo": self.repo, "commit": self.commit, "gated": self.gated,
                "files": [[f.path, f.size, f.oid] for f in self.files]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RepoListing":
        return cls(repo=str(d["repo"]), commit=str(d["commit"]), gated=bool(d.get("gated", False)),
                   files=[HubFile(str(p), int(s), None if o is None else str(o)) for p, s, o in d["files"]])


def _with_retries(cfg: NetConfig, what: str, repo: str, fn: Callable[[], T], *,
                  revision: str | None = None) -> T:
    """Call fn (one Hub API request) with bounded retries; map every failure to HubError."""
    attempt = 0
    while True:
        attempt += 1
        retry_after: float | None = None
        try:
            return fn()
        except _hf_errors.OfflineModeIsEnabled:
            raise offline_missing(what) from None
        except _hf_errors.GatedRepoError:
            raise gated_error(cfg, repo, have_token=current_token() is not None) from None
        except _hf_errors.RevisionNotFoundError:
            raise revision_not_found(cfg, repo, revision or "main") from None
        except _hf_errors.RepositoryNotFoundError:
            raise repo_not_found(cfg, repo) from None
        except _hf_errors.HFValidationError as e:
            raise ResolveError(f"'{repo}' is not a valid Hub repository id: {redact(str(e)).splitlines()[0]}",
                               hint="use owner/name, e.g. unsloth/Qwen3-30B-A3B-GGUF") from None
        except _hf_errors.HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else 0
            if status not in _RETRY_STATUS or attempt > cfg.retries:
                raise _status_error(cfg, status, e.response.headers if e.response is not None else None,
                                    repo=repo, what=what, revision=revision, attempts=attempt) from None
            retry_after = _retry_after(e.response.headers)
        except httpx2.TransportError as e:
            if attempt > _retries_for(cfg, e):
                raise _network_error(cfg, what, e) from None
        except (ValueError, KeyError, TypeError):  # a 200 whose body is not the Hub's JSON
            raise HubError(f"the Hub's answer for {what} is not what the Hub API returns",
                           hint="check HF_ENDPOINT and any proxy between you and the Hub") from None
        STATS.add(retries=1)
        wait = cfg.wait_time(attempt, retry_after)
        log.info("retrying %s in %.2f s (attempt %d of %d)", what, wait, attempt + 1, cfg.retries + 1)
        time.sleep(wait)


def _retries_for(cfg: NetConfig, cause: BaseException | None) -> int:
    """How many retries a failure deserves: a host that cannot be reached at all (DNS failure,
    connection refused) gets one more try, not the full backoff schedule."""
    return min(cfg.retries, 1) if isinstance(cause, httpx2.ConnectError) else cfg.retries


def _retry_after(headers: Any) -> float | None:
    value = (headers.get("retry-after") or "").strip() if headers is not None else ""
    try:
        return float(value) if value else None
    except ValueError:
        return None


def fetch_listing(repo: str, revision: str, cfg: NetConfig) -> RepoListing:
    """Ask the Hub for the repo's commit and GGUF files at `revision` (one request, plus the tree
    API only if the model-info answer lacks file sizes)."""
    api = _hf.HfApi(endpoint=cfg.endpoint, library_name="memfit", library_version=__version__)

    def call() -> Any:
        STATS.add(api_requests=1)
        return api.model_info(repo, revision=revision, files_metadata=True, timeout=cfg.timeout)

    info = _with_retries(cfg, f"the file list of {repo}", repo, call, revision=revision)
    commit = info.sha or ""
    if not _SHA_RE.match(commit):
        raise HubError(f"the Hub did not return a commit id for {repo}@{revision}",
                       hint="try again; check HF_ENDPOINT if you use a mirror")
    files: list[HubFile] = []
    need_tree = False
    for s in info.siblings or []:
        if not s.rfilename.lower().endswith(".gguf"):
            continue
        size = s.lfs.size if s.lfs is not None else s.size
        if size is None:
            need_tree = True
            break
        files.append(HubFile(s.rfilename, int(size), s.lfs.sha256 if s.lfs is not None else s.blob_id))
    if need_tree:
        files = _tree_listing(repo, commit, cfg)
    gated = bool(info.gated) and info.gated != "false"
    return RepoListing(repo=repo, commit=commit, files=sorted(files, key=lambda f: f.path), gated=gated)


def _tree_listing(repo: str, commit: str, cfg: NetConfig) -> list[HubFile]:
    """GGUF files with sizes from the paginated tree API (recursive), at a fixed commit."""
    url: str | None = f"{cfg.endpoint}/api/models/{repo}/tree/{quote(commit, safe='')}"
    params: dict[str, Any] | None = {"recursive": True, "expand": False}
    out: list[HubFile] = []
    while url:
        def call(u: str = url, p: Any = params) -> httpx2.Response:
            STATS.add(api_requests=1)
            r = _hf_utils.get_session().get(u, params=p, headers=_headers_for(u, cfg), timeout=cfg.timeout)
            _hf_utils.hf_raise_for_status(r)
            return r

        r = _with_retries(cfg, f"the file tree of {repo}", repo, call, revision=commit)
        for entry in r.json():
            if entry.get("type") != "file" or not str(entry.get("path", "")).lower().endswith(".gguf"):
                continue
            lfs = entry.get("lfs") or {}
            out.append(HubFile(str(entry["path"]), int(lfs.get("size", entry.get("size", 0))),
                               lfs.get("oid") or entry.get("oid")))
        url = r.links.get("next", {}).get("url") if r.links else None
        params = None
    return out


def get_listing(repo: str, revision: str | None = None, *, cache: Cache | None = None,
                cfg: NetConfig | None = None) -> RepoListing:
    """The repo's GGUF files at `revision` (default main), from the cache when possible.

    A full commit sha is immutable, so its cached listing is always used. A branch or tag name is
    re-resolved when its cached resolution is older than MEMFIT_REF_TTL; offline, any cached
    resolution is used (and the error says what is missing if there is none).
    """
    cfg = cfg or NetConfig.from_env()
    cache = cache or default_cache()
    rev = revision or constants.DEFAULT_REVISION
    pinned = bool(_SHA_RE.match(rev))
    offline = is_offline()

    def cached() -> RepoListing | None:
        commit = rev if pinned else None
        if commit is None:
            ref = cache.get_ref(cfg.endpoint, repo, rev)
            if ref is not None and (offline or time.time() - ref[1] < cfg.ref_ttl):
                commit = ref[0]
        if commit is None:
            return None
        d = cache.get_listing(cfg.endpoint, repo, commit)
        try:
            return RepoListing.from_dict(d) if d is not None else None
        except (KeyError, TypeError, ValueError):
            return None

    hit = cached()
    if hit is not None:
        return hit
    if offline:
        raise offline_missing(f"the file list of {repo}@{rev}")
    with cache.lock(f"listing\x00{cfg.endpoint}\x00{repo}\x00{rev}"):
        hit = cached()  # another process may have filled it while we waited
        if hit is not None:
            return hit
        listing = fetch_listing(repo, rev, cfg)
        cache.put_listing(cfg.endpoint, repo, listing.commit, listing.to_dict())
        if not pinned:
            cache.put_ref(cfg.endpoint, repo, rev, listing.commit)
    return listing


def file_url(repo: str, commit: str, path: str, cfg: NetConfig) -> str:
    """The Hub's resolve URL, as `hf_hub_url` builds it but from the endpoint configured now
    (hf_hub_url starts from the endpoint huggingface-hub saw at import time)."""
    return f"{cfg.endpoint}/{repo}/resolve/{quote(commit, safe='')}/{quote(path)}"


# --- HTTP range source ----------------------------------------------------------------------------


class _Retryable(Exception):
    """A failed attempt worth retrying; `partial` holds the bytes received before it failed."""

    def __init__(self, reason: str, *, partial: bytes = b"", retry_after: float | None = None,
                 status: int = 0, headers: Any = None, cause: BaseException | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial
        self.retry_after = retry_after
        self.status = status
        self.headers = headers
        self.cause = cause


class _Body:
    """Reads exact byte counts from a streamed response, counting what arrives."""

    def __init__(self, response: httpx2.Response, source: "HttpRangeSource") -> None:
        self.response = response
        # no re-chunking: a chunker would hold back bytes that arrived before a failure
        self._it: Iterator[bytes] = response.iter_raw()
        self._pending = b""
        self._source = source
        self.done = False
        self.error: BaseException | None = None

    def read(self, n: int) -> bytes:
        """Up to n bytes; fewer only when the body ended cleanly."""
        out = bytearray(self._pending[:n])
        self._pending = self._pending[n:]
        while len(out) < n and not self.done:
            try:
                chunk = next(self._it)
            except StopIteration:
                self.done = True
                break
            except (httpx2.TransportError, httpx2.StreamError) as e:
                self.error = e  # keep what arrived; the caller retries from there
                self.done = True
                break
            self._source._count_bytes(len(chunk))
            need = n - len(out)
            out += chunk[:need]
            self._pending = chunk[need:]
        return bytes(out)

    def skip(self, n: int) -> int:
        skipped = 0
        while skipped < n:
            got = self.read(min(n - skipped, 1 << 20))
            if not got:
                break
            skipped += len(got)
        return skipped

    def close(self) -> None:
        self.response.close()


class HttpRangeSource:
    """A ByteSource over HTTP range requests, for one file of a Hub repo.

    Bytes already received are kept, so the header reader's growing reads cost one request each,
    and every request starts where the previous one ended (never again at byte 0). A server that
    ignores `Range` and answers 200 with the whole body is read only as far as needed; the open
    body then serves the following reads, and `close()` drops it.
    """

    # The header reader reads exactly the bytes it knows are header (read_ahead = 0, see
    # planner.sources); this source does the read-ahead itself, sized by what it has seen.
    read_ahead = 0

    def __init__(self, url: str, *, name: str, size: int | None = None, cfg: NetConfig | None = None,
                 repo: str = "", revision: str | None = None, path: str = "", chunk: int | None = None) -> None:
        self.name = name
        self._url = url
        self._target: str | None = None  # where the Hub redirected us (CDN), reused for later reads
        self._size = size
        self._cfg = cfg or NetConfig.from_env()
        # read-ahead per request; smaller when the header reader has skip hints (it then jumps
        # over most of the header and every jump starts a new range: see HINTED_CHUNK)
        self._chunk = self._cfg.chunk if chunk is None else max(1, chunk)
        self._repo, self._revision, self._path = repo, revision, path
        self._buf = bytearray()
        self._buf_start = 0
        self._full: _Body | None = None  # open 200 body of a range-ignoring server
        self._full_pos = 0
        self.requests = 0
        self.bytes_received = 0
        self.retries = 0

    @property
    def size(self) -> int | None:
        return self._size

    def __enter__(self) -> "HttpRangeSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._full is not None:
            self._full.close()
            self._full = None

    def _count_bytes(self, n: int) -> None:
        self.bytes_received += n
        STATS.add(bytes_received=n)

    # -- ByteSource --

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0:
            raise ValueError("negative offset or length")
        if self._size is not None:
            n = max(0, min(n, self._size - offset))
        if n == 0:
            return b""
        end = offset + n
        buf_end = self._buf_start + len(self._buf)
        if self._buf_start <= offset and end <= buf_end:
            return bytes(self._buf[offset - self._buf_start:end - self._buf_start])
        continuing = bool(self._buf) and self._buf_start <= offset <= buf_end
        start = buf_end if continuing else offset
        # Read ahead by one chunk plus 10% of what this file has cost so far: few round trips
        # for long headers, and never more than chunk + 10% fetched past the header's end.
        fetch_end = max(end, start + self._chunk + self.bytes_received // 10)
        if self._size is not None:
            fetch_end = min(fetch_end, self._size)
        data = self._fetch(start, fetch_end)
        if continuing:
            self._buf += data  # continue where the last range ended
        else:
            self._buf = bytearray(data)  # the reader skipped a region (a large array): jump over it
            self._buf_start = offset
        lo = offset - self._buf_start
        return bytes(self._buf[lo:lo + n])

    # -- fetching --

    def _fetch(self, start: int, end: int) -> bytes:
        """Bytes [start, end) (fewer only at end of file), with bounded retries; a retry resumes
        after the last byte received."""
        got = bytearray()
        attempt = 0
        while start + len(got) < end:
            pos = start + len(got)
            try:
                chunk, eof = self._get(pos, end)
                got += chunk
                if eof:
                    break
                if not chunk:
                    raise _Retryable("empty response body")
                continue
            except _Retryable as r:
                got += r.partial
                attempt += 1
                if attempt > _retries_for(self._cfg, r.cause):
                    raise self._give_up(r, attempt) from None
                wait = self._cfg.wait_time(attempt, r.retry_after)
                self.retries += 1
                STATS.add(retries=1)
                log.info("%s: %s; retry %d/%d in %.2f s from byte %d", self.name, r.reason, attempt,
                         self._cfg.retries, wait, start + len(got))
                time.sleep(wait)
        return bytes(got)

    # Error wording: a subclass for another server (planner.ollama's registry) overrides these three.

    def _status_failure(self, status: int, headers: Any, attempts: int = 1) -> MemfitError:
        return _status_error(self._cfg, status, headers, repo=self._repo, what=self._path or self.name,
                             revision=self._revision, attempts=attempts)

    def _network_failure(self, cause: BaseException, attempts: int) -> MemfitError:
        err = _network_error(self._cfg, self._path or self.name, cause)
        err.message += f" after {attempts} attempt(s)"
        return err

    def _incomplete_failure(self, reason: str, attempts: int) -> MemfitError:
        return HubError(f"incomplete answers from the Hub reading {self._path or self.name} after {attempts} "
                        f"attempt(s): {reason}", hint="try again; a proxy may be cutting responses short")

    def _give_up(self, r: _Retryable, attempts: int) -> MemfitError:
        if r.status:
            return self._status_failure(r.status, r.headers, attempts)
        if r.cause is not None:
            return self._network_failure(r.cause, attempts)
        return self._incomplete_failure(r.reason, attempts)

    def _get(self, start: int, end: int) -> tuple[bytes, bool]:
        """One attempt: returns (bytes from start, reached end of file)."""
        if self._full is not None:
            if start >= self._full_pos:
                return self._read_full(start, end)
            self.close()
        url = self._target or self._url
        for _hop in range(_MAX_REDIRECTS + 1):
            headers = _headers_for(url, self._cfg)
            headers["Range"] = f"bytes={start}-{end - 1}"
            headers["Accept-Encoding"] = "identity"
            self.requests += 1
            STATS.add(range_requests=1)
            try:
                session = _hf_utils.get_session()
                request = session.build_request("GET", url, headers=headers, timeout=httpx2.Timeout(self._cfg.timeout))
                response = session.send(request, stream=True, follow_redirects=False)
            except _hf_errors.OfflineModeIsEnabled:
                raise offline_missing(f"the header of {self._path or self.name}") from None
            except httpx2.TransportError as e:
                raise _Retryable(type(e).__name__, cause=e) from None
            status = response.status_code
            if status in _REDIRECT_STATUS and "location" in response.headers:
                response.close()
                url = urljoin(url, response.headers["location"])
                continue
            if status == 206:
                return self._read_partial(response, url, start, end)
            if status == 200:
                return self._start_full(response, url, start, end)
            if status == 416:
                response.close()
                return b"", True
            body_headers = response.headers
            _drain_small(response)
            if status in _RETRY_STATUS:
                raise _Retryable(f"HTTP {status}", status=status, headers=body_headers,
                                 retry_after=_retry_after(body_headers))
            if self._target is not None and url == self._target and status in (401, 403, 404, 410):
                self._target = None  # an expired signed CDN URL: go back to the Hub once
                raise _Retryable(f"redirect target answered HTTP {status}", status=status, headers=body_headers)
            raise self._status_failure(status, body_headers)
        raise HubError(f"too many redirects reading {self._path or self.name}",
                       hint="check HF_ENDPOINT or your proxy")

    def _remember_target(self, url: str) -> None:
        if url != self._url:
            self._target = url

    def _read_partial(self, response: httpx2.Response, url: str, start: int, end: int) -> tuple[bytes, bool]:
        m = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)", response.headers.get("content-range", ""))
        if not m:
            response.close()
            raise _Retryable("206 answer without a valid Content-Range")
        first, last = int(m.group(1)), int(m.group(2))
        total = None if m.group(3) == "*" else int(m.group(3))
        if total is not None:
            self._size = total
        if first > start or last < first:
            response.close()
            raise _Retryable(f"server sent bytes {first}-{last} for a request starting at {start}")
        self._remember_target(url)
        body = _Body(response, self)
        try:
            skipped = body.skip(start - first)
            want = min(end, last + 1) - start
            data = body.read(want) if skipped == start - first else b""
        finally:
            body.close()
        if len(data) < want:
            reason = (f"connection broke mid-body ({type(body.error).__name__})" if body.error is not None
                      else f"truncated range answer ({len(data)} of {want} bytes)")
            raise _Retryable(reason, partial=data, cause=body.error)
        eof = total is not None and start + len(data) >= total
        return data, eof

    def _start_full(self, response: httpx2.Response, url: str, start: int, end: int) -> tuple[bytes, bool]:
        """The server ignored Range: keep the body open and read it only as far as needed."""
        length = response.headers.get("content-length")
        if length and length.isdigit():
            self._size = int(length)
        self._remember_target(url)
        self._full = _Body(response, self)
        self._full_pos = 0
        log.info("%s: server ignores Range requests; reading the body only up to the header", self.name)
        return self._read_full(start, end)

    def _read_full(self, start: int, end: int) -> tuple[bytes, bool]:
        body = self._full
        assert body is not None
        self._full_pos += body.skip(start - self._full_pos)
        data = body.read(end - start) if self._full_pos == start else b""
        self._full_pos += len(data)
        if len(data) < end - start:
            error = body.error
            self.close()
            if error is None and self._size is not None and start + len(data) >= self._size:
                return data, True
            reason = (f"connection broke mid-body ({type(error).__name__})" if error is not None
                      else f"truncated answer ({len(data)} of {end - start} bytes)")
            raise _Retryable(reason, partial=data, cause=error)
        return data, self._size is not None and self._full_pos >= self._size


def _drain_small(response: httpx2.Response) -> None:
    """Read at most a small error body, then close (never a whole file)."""
    try:
        got = 0
        for chunk in response.iter_raw(16 * 1024):
            got += len(chunk)
            if got >= _ERROR_BODY_LIMIT:
                break
    except (httpx2.TransportError, httpx2.StreamError):
        pass
    finally:
        response.close()


# Read-ahead for a file read with skip hints from a sibling (planner.reader.SkipHint): the
# reader jumps over the tokenizer's string arrays and steps over its numeric ones, so what it
# needs comes in short runs (the keys before the tokenizer, a key or two between its arrays, the
# keys and tensor infos after it), each starting a new range. A full chunk per run would mostly
# fetch bytes that are then jumped over.
HINTED_CHUNK = 64 << 10


def open_file(listing: RepoListing, file: HubFile, cfg: NetConfig | None = None, *,
              hinted: bool = False) -> HttpRangeSource:
    """A range source for one file of a listed repo, pinned to the listing's commit.
    `hinted`: the reader will have skip hints, so read ahead by HINTED_CHUNK (or less)."""
    cfg = cfg or NetConfig.from_env()
    if listing.gated and current_token() is None:
        raise gated_error(cfg, listing.repo, have_token=False)
    return HttpRangeSource(
        file_url(listing.repo, listing.commit, file.path, cfg),
        name=f"hf://{listing.repo}@{listing.commit[:12]}/{file.path}",
        size=file.size, cfg=cfg, repo=listing.repo, revision=listing.commit, path=file.path,
        chunk=min(cfg.chunk, HINTED_CHUNK) if hinted else None,
    )
