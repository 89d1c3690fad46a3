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
already read, so the bytes fetched past a header's end stay under one chunk + 10%),
MEMFIT_HTTP_DEADLINE (default 60 s: the longest one network read, or one listing request, may take
in all, retries and their waits included; the timeout above bounds each wait for data, this bounds
a server that trickles bytes or keeps failing).

What the Hub says is checked before it is used: listed file names (a name that could leave the
repo's `resolve/` path is skipped with a warning), sizes (integers within MAX_FILE_BYTES), the
commit id; a ranged read checks the Content-Range total and the ETag against the listing, so a
file that changes between the listing and the read is reported (FileChangedError), never mixed.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import random
import re
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import quote, urljoin, urlsplit

from huggingface_hub import constants  # settings only (~3 ms); the HTTP stack loads on first use


class _Lazy:
    """A module imported on its first attribute access. huggingface-hub's HTTP client stack
    (httpx2, the error types, the session) costs ~0.1 s to import and a warm run never sends a
    request; the import lock makes the first access thread-safe."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


httpx2 = _Lazy("httpx2")
_hf_errors = _Lazy("huggingface_hub.errors")
_hf_utils = _Lazy("huggingface_hub.utils")

from . import __version__
from .cache import Cache, default_cache, listing_key
from .counters import Counters
from .errors import DeadlineExceeded as _DeadlineExceeded
from .errors import (FileChangedError, GatedRepoAccessError, HubError, MemfitError, OfflineMissError,  # noqa: F401
                     RepoNotFoundError, ResolveError)
from .units import env_float, one_line

log = logging.getLogger("memfit.hub")

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
_OID_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_CONTENT_RANGE_RE = re.compile(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)")
# A listing answer larger than this is not the Hub's (a repo with 20,000 files lists in ~4 MB).
MAX_LISTING_BYTES = 64 << 20
# The largest size a listed GGUF may claim: a 2-trillion-parameter model in BF16 as one file
# (4 TB). Real files are far smaller (the Hub stores large models split into 50 GB parts).
MAX_FILE_BYTES = 1 << 42
MAX_PATH_CHARS = 1024


# --- configuration --------------------------------------------------------------------------------


_env_float = env_float  # (planner.units: a local file's read needs no network module)


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
    deadline: float = 60.0  # the longest one read (all its attempts and waits) may take

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
            deadline=max(0.1, _env_float("MEMFIT_HTTP_DEADLINE", 60.0)),
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


class _Clock:
    """The time budget of one network read (or one listing request): all attempts, all waits
    between them and every byte of every answer must fit in `cfg.deadline` seconds."""

    def __init__(self, cfg: NetConfig) -> None:
        self.cfg = cfg
        self.start = time.monotonic()
        self.deadline_at = self.start + cfg.deadline

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float:
        return self.deadline_at - time.monotonic()

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline_at

    def op_timeout(self) -> httpx2.Timeout:
        """The per-operation timeout, cut short where the deadline comes first."""
        return httpx2.Timeout(max(0.05, min(self.cfg.timeout, self.remaining())))


def _spent(attempts: int, clock: _Clock | None) -> str:
    """'after 3 attempt(s) in 12.4 s': what a failed read actually cost."""
    took = f" in {clock.elapsed():.1f} s" if clock is not None else ""
    return f"after {attempts} attempt(s){took}"


def _timeout_error(cfg: NetConfig, what: str, attempts: int = 1, clock: _Clock | None = None) -> HubError:
    return HubError(f"timed out waiting for the Hub ({what}): no data within {cfg.timeout:g} s, "
                    f"gave up {_spent(attempts, clock)}",
                    hint="check your network or proxy, raise HF_HUB_DOWNLOAD_TIMEOUT, "
                         "or run with HF_HUB_OFFLINE=1 to use cached headers")


def _deadline_error(cfg: NetConfig, what: str, attempts: int, clock: _Clock, got: int = 0) -> HubError:
    received = f", {got:,} bytes received" if got else ""
    return HubError(f"reading {what} from the Hub took longer than the {cfg.deadline:g} s one read may take: "
                    f"gave up {_spent(attempts, clock)}{received}",
                    hint="the server or a proxy is stalling or very slow; check your network, raise "
                         "MEMFIT_HTTP_DEADLINE, or run with HF_HUB_OFFLINE=1 to use cached headers")


def _network_error(cfg: NetConfig, what: str, exc: BaseException, attempts: int = 1,
                   clock: _Clock | None = None) -> HubError:
    if isinstance(exc, httpx2.TimeoutException):
        return _timeout_error(cfg, what, attempts, clock)
    if isinstance(exc, httpx2.ConnectError):
        return HubError(f"cannot connect to {cfg.endpoint} ({what}; {_spent(attempts, clock)})",
                        hint="check the network, proxy settings (HTTPS_PROXY) and HF_ENDPOINT; "
                             "HF_HUB_OFFLINE=1 uses cached headers")
    reason = redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__
    return HubError(f"network error talking to the Hub ({what}): {reason}; gave up {_spent(attempts, clock)}",
                    hint="try again; if it persists check your connection or proxy")


def _bad_redirect(what: str, location: str) -> HubError:
    return HubError(f"the Hub redirected {what} to {one_line(redact(location), 80)}, which is not an HTTP(S) URL",
                    hint="check HF_ENDPOINT and any proxy between you and the Hub")


def _follow(url: str, location: str, what: str) -> str:
    """The next URL of a redirect; only http(s) targets are followed, anything else fails at once."""
    target = urljoin(url, location)
    if urlsplit(target).scheme not in ("http", "https"):
        raise _bad_redirect(what, target)
    return target


@dataclass(frozen=True)
class _Refusal:
    """An error answer as the Hub words it: the status, X-Error-Code and X-Error-Message, and the
    read it refused."""

    status: int
    code: str
    message: str
    cfg: NetConfig
    repo: str
    what: str
    revision: str | None
    attempts: int
    clock: _Clock | None

    def spent(self) -> str:
        return _spent(self.attempts, self.clock)


def _is_gated(r: _Refusal) -> bool:
    return r.code == "GatedRepo" or (r.status == 403 and "gated" in r.message.lower())


def _repo_refused(r: _Refusal) -> HubError:
    if r.status == 401 and r.message.startswith("Invalid credentials"):
        return HubError("the Hub rejected your token (invalid or expired)",
                        hint="create a new token at https://huggingface.co/settings/tokens and set HF_TOKEN, "
                             "or run `hf auth login`")
    return repo_not_found(r.cfg, r.repo)


def _entry_missing(r: _Refusal) -> HubError:
    return HubError(f"{r.what} not found in {r.repo}" + (f" at {r.revision[:12]}" if r.revision else ""),
                    hint="the file may have been removed; set MEMFIT_REF_TTL=0 to refresh the listing")


def _forbidden(r: _Refusal) -> HubError:
    return HubError(f"the Hub refused access to {r.what} in {r.repo} (HTTP 403)",
                    hint="check that your token (HF_TOKEN / `hf auth login`) has read access to this repo")


def _rate_limited(r: _Refusal) -> HubError:
    return HubError(f"rate limited by the Hub (HTTP 429) {r.spent()} reading {r.what}",
                    hint="wait a minute and retry; logged-in users (HF_TOKEN) get higher limits")


def _server_trouble(r: _Refusal) -> HubError:
    return HubError(f"the Hub answered HTTP {r.status} {r.spent()} reading {r.what}",
                    hint="the Hub or a proxy is having trouble; try again shortly (status.huggingface.co)")


# (does it apply, the error): the first rule that applies words the refusal
_REFUSALS: tuple[tuple[Callable[[_Refusal], bool], Callable[[_Refusal], HubError]], ...] = (
    (_is_gated, lambda r: gated_error(r.cfg, r.repo, have_token=current_token() is not None)),
    (lambda r: r.code == "RevisionNotFound", lambda r: revision_not_found(r.cfg, r.repo, r.revision or "?")),
    (lambda r: r.code == "RepoNotFound" or (r.status == 401 and r.code != "EntryNotFound"), _repo_refused),
    (lambda r: r.code == "EntryNotFound" or r.status == 404, _entry_missing),
    (lambda r: r.status == 403, _forbidden),
    (lambda r: r.status == 429, _rate_limited),
    (lambda r: r.status >= 500, _server_trouble),
)


def _status_error(cfg: NetConfig, status: int, headers: Any, *, repo: str, what: str,
                  revision: str | None = None, attempts: int = 1, clock: _Clock | None = None) -> HubError:
    def header(name: str) -> str:
        return (headers.get(name) or "") if headers is not None else ""

    r = _Refusal(status, header("x-error-code"), header("x-error-message"), cfg, repo, what, revision, attempts, clock)
    words = next((error for applies, error in _REFUSALS if applies(r)), None)
    if words is not None:
        return words(r)
    return HubError(f"unexpected HTTP {status} from the Hub reading {what} in {repo}",
                    hint="try again; check HF_ENDPOINT if you use a mirror")


# --- listings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int
    oid: str | None = None  # LFS sha256 (content id) when known, else the git blob id


@dataclass
class RepoListing:
    """The GGUF files of one repo at one commit (what the cache stores per commit).
    `skipped`: listed files left out because their name or size cannot be right (one line each)."""

    repo: str
    commit: str
    files: list[HubFile]
    gated: bool = False
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"repo": self.repo, "commit": self.commit, "gated": self.gated,
                "files": [[f.path, f.size, f.oid] for f in self.files], "skipped": list(self.skipped)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RepoListing":
        """Strict: a cached listing of the wrong shape, or with a name or size the Hub could not
        have listed, is a ValueError (the caller discards the entry and asks the Hub again)."""
        if not isinstance(d, dict) or not isinstance(d.get("files"), list):
            raise ValueError("not a cached listing")
        repo, commit, gated = d.get("repo"), d.get("commit"), d.get("gated", False)
        skipped = d.get("skipped", [])
        if not (isinstance(repo, str) and _is_commit(commit) and isinstance(gated, bool) and _is_text_list(skipped)):
            raise ValueError("bad listing fields")
        return cls(repo=repo, commit=commit, gated=gated, files=[_cached_file(row) for row in d["files"]],
                   skipped=skipped)


def _is_commit(v: object) -> bool:
    return isinstance(v, str) and bool(_SHA_RE.match(v))


def _is_text_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_oid(v: object) -> bool:
    return v is None or (isinstance(v, str) and bool(_OID_RE.match(v)))


def _cached_file(row: object) -> HubFile:
    """One [path, size, oid] row of a cached listing, as the Hub could have listed it."""
    if not isinstance(row, list) or len(row) != 3:
        raise ValueError("bad listing row")
    path, size, oid = row
    if path_problem(path) or size_problem(size) or not _is_oid(oid):
        raise ValueError("bad listing row")
    return HubFile(path, size, oid)


# (what makes a listed name unusable, how the warning says it), checked in this order
_PATH_PROBLEMS: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda p: not p or len(p) > MAX_PATH_CHARS, "an empty or overlong file name"),
    (lambda p: p.startswith("/") or "\\" in p, "a file name that is not a relative repo path"),
    (lambda p: any(seg in ("", ".", "..") for seg in p.split("/")), "a file name with an empty, '.' or '..' segment"),
    (lambda p: any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in p),
     "a file name with control or format characters"),
)


def path_problem(path: Any) -> str | None:
    """Why a listed file name cannot be used (None when it can): memfit builds
    `{endpoint}/{repo}/resolve/{commit}/{path}` from it, so it must stay a plain relative path
    inside the repo (no `..`, no leading `/`, no empty segment, no backslash), and it is printed,
    so no control or format characters (such as a right-to-left override)."""
    if not isinstance(path, str):
        return f"a file name that is not text ({type(path).__name__})"
    return next((problem for applies, problem in _PATH_PROBLEMS if applies(path)), None)


def size_problem(size: Any) -> str | None:
    """Why a listed size cannot be a GGUF's (None when it can)."""
    if not isinstance(size, int) or isinstance(size, bool):
        return f"a size that is not an integer ({one_line(repr(size), 40)})"
    if not 0 <= size <= MAX_FILE_BYTES:
        return f"a size of {size} bytes (at most {MAX_FILE_BYTES:,} is possible)"
    return None


def _listed_file(path: Any, size: Any, oid: Any, skipped: list[str]) -> HubFile | None:
    """One listed GGUF, or None (with a line in `skipped`) when its name or size is not usable."""
    shown = one_line(repr(path), 100) if isinstance(path, str) else "?"
    problem = path_problem(path) or size_problem(size)
    if problem:
        skipped.append(f"skipped {shown}: the listing gives {problem}")
        log.warning("memfit: skipped %s from the Hub listing: %s", shown, problem)
        return None
    if not (isinstance(oid, str) and _OID_RE.match(oid)):
        oid = None  # no usable content id: the cache keys the header by the commit instead
    return HubFile(path, size, oid)


@dataclass(frozen=True)
class _ApiCall:
    """One Hub API request being retried: what it reads, and its time budget."""

    cfg: NetConfig
    what: str
    repo: str
    revision: str | None
    clock: _Clock


def _with_retries(cfg: NetConfig, what: str, repo: str, fn: Callable[[_Clock], T], *,
                  revision: str | None = None) -> T:
    """Call fn (one Hub API request) with bounded retries within one deadline; map every failure
    to HubError."""
    call = _ApiCall(cfg, what, repo, revision, _Clock(cfg))
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn(call.clock)
        except Exception as e:  # each kind is mapped to a HubError, retried, or raised as it is
            retry_after = _after_api_failure(e, call, attempt)
        wait = cfg.wait_time(attempt, retry_after)
        if wait >= call.clock.remaining():
            raise _deadline_error(cfg, what, attempt, call.clock) from None
        STATS.add(retries=1)
        log.info("retrying %s in %.2f s (attempt %d of %d)", what, wait, attempt + 1, cfg.retries + 1)
        time.sleep(wait)


def _final_api_error(e: Exception, call: _ApiCall) -> MemfitError | None:
    """huggingface-hub's errors that no retry changes (gated, no such revision or repo, offline,
    an invalid repo id), as memfit's; None for any other failure."""
    if isinstance(e, _hf_errors.OfflineModeIsEnabled):
        return offline_missing(call.what)
    if isinstance(e, _hf_errors.GatedRepoError):  # before RepositoryNotFoundError: a subclass of it
        return gated_error(call.cfg, call.repo, have_token=current_token() is not None)
    if isinstance(e, _hf_errors.RevisionNotFoundError):
        return revision_not_found(call.cfg, call.repo, call.revision or "main")
    if isinstance(e, _hf_errors.RepositoryNotFoundError):
        return repo_not_found(call.cfg, call.repo)
    if isinstance(e, _hf_errors.HFValidationError):
        return ResolveError(f"'{call.repo}' is not a valid Hub repository id: {redact(str(e)).splitlines()[0]}",
                            hint="use owner/name, e.g. unsloth/Qwen3-30B-A3B-GGUF")
    return None


def _after_transport_error(e: httpx2.TransportError, call: _ApiCall, attempt: int) -> None:
    """A network failure: retried (no Retry-After) until the retries or the deadline run out."""
    if attempt > _retries_for(call.cfg, e):
        raise _network_error(call.cfg, call.what, e, attempt, call.clock) from None
    if call.clock.expired():
        raise _deadline_error(call.cfg, call.what, attempt, call.clock) from None
    return None


def _after_api_failure(e: Exception, call: _ApiCall, attempt: int) -> float | None:
    """The Retry-After to honour when attempt `attempt` failed in a way worth retrying; raises the
    HubError for every other failure (the exception itself when it is not a network one)."""
    final = _final_api_error(e, call)
    if final is not None:
        raise final from None
    if isinstance(e, _hf_errors.HfHubHTTPError):
        return _http_retry_after(e, call, attempt)
    if isinstance(e, _DeadlineExceeded):
        raise _deadline_error(call.cfg, call.what, attempt, call.clock) from None
    if isinstance(e, httpx2.TransportError):
        return _after_transport_error(e, call, attempt)
    if isinstance(e, (ValueError, KeyError, TypeError, RecursionError)):  # a 200 whose body is not the Hub's JSON
        raise _not_the_hubs_answer(call.what) from None
    raise e


def _http_retry_after(e: Exception, call: _ApiCall, attempt: int) -> float | None:
    response = getattr(e, "response", None)
    status = response.status_code if response is not None else 0
    if status not in _RETRY_STATUS or attempt > call.cfg.retries:
        raise _status_error(call.cfg, status, response.headers if response is not None else None, repo=call.repo,
                            what=call.what, revision=call.revision, attempts=attempt, clock=call.clock) from None
    return _retry_after(response.headers)


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


def _api_get(url: str, params: dict[str, Any] | None, cfg: NetConfig, clock: _Clock, what: str,
             limit: int = MAX_LISTING_BYTES) -> httpx2.Response:
    """One GET of a Hub API URL: redirects followed by hand (http(s) only, the token only to the
    Hub's own hosts), the body streamed within the read's deadline and at most `limit` bytes,
    then huggingface-hub's own status checks (hf_raise_for_status). Returns the complete answer."""
    for _hop in range(_MAX_REDIRECTS + 1):
        STATS.add(api_requests=1)
        request = _hf_utils.get_session().build_request("GET", url, params=params, headers=_headers_for(url, cfg),
                                              timeout=clock.op_timeout())
        response = _hf_utils.get_session().send(request, stream=True, follow_redirects=False)
        if response.status_code in _REDIRECT_STATUS and "location" in response.headers:
            response.close()
            url, params = _follow(url, response.headers["location"], what), None
            continue
        try:
            body = bytearray()
            for chunk in response.iter_raw():
                body += chunk
                if len(body) > limit:
                    raise HubError(f"the Hub's answer for {what} is larger than {limit >> 20} MiB, "
                                   "which no listing is", hint="check HF_ENDPOINT and any proxy between you and the Hub")
                if clock.expired():
                    raise _DeadlineExceeded()
        finally:
            response.close()
        full = httpx2.Response(response.status_code, headers=response.headers, content=bytes(body), request=request)
        _hf_utils.hf_raise_for_status(full)
        return full
    raise HubError(f"too many redirects reading {what}", hint="check HF_ENDPOINT or your proxy")


def _json(response: httpx2.Response) -> Any:
    """The JSON body of an API answer; NaN/Infinity and other non-JSON constants are refused."""
    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(response.content, parse_constant=no_constant)


_NOT_THE_HUB_HINT = "check HF_ENDPOINT and any proxy between you and the Hub"


def _not_the_hubs_answer(what: str) -> HubError:
    return HubError(f"the Hub's answer for {what} is not what the Hub API returns", hint=_NOT_THE_HUB_HINT)


def fetch_listing(repo: str, revision: str, cfg: NetConfig) -> RepoListing:
    """Ask the Hub for the repo's commit and GGUF files at `revision` (one request, plus the tree
    API only if the model-info answer lacks file sizes). What the answer says is validated: the
    commit id, and per GGUF file its name and size (a file with an impossible name or size is
    skipped with a warning; the rest of the repo stays usable)."""
    url = f"{cfg.endpoint}/api/models/{repo}/revision/{quote(revision, safe='')}"
    what = f"the file list of {repo}"

    def call(clock: _Clock) -> Any:
        _hf_utils.validate_repo_id(repo)
        return _json(_api_get(url, {"blobs": True}, cfg, clock, what))

    info = _with_retries(cfg, what, repo, call, revision=revision)
    if not isinstance(info, dict) or "sha" not in info or "id" not in info and "modelId" not in info:
        raise _not_the_hubs_answer(what)
    commit = info.get("sha")
    if not _is_commit(commit):
        raise HubError(f"the Hub did not return a commit id for {repo}@{revision}",
                       hint="try again; check HF_ENDPOINT if you use a mirror")
    listed = _sibling_files(info.get("siblings"))
    files, skipped = listed if listed is not None else _tree_listing(repo, commit, cfg)
    gated = info.get("gated") not in (None, False, "false", "False", "")
    return RepoListing(repo=repo, commit=commit, files=sorted(files, key=lambda f: f.path), gated=gated,
                       skipped=skipped)


def _sibling_files(siblings: Any) -> tuple[list[HubFile], list[str]] | None:
    """The GGUF files of a model-info answer's `siblings`, with the lines of those skipped; None
    when a GGUF's size is missing (then the tree API has to be asked)."""
    files: list[HubFile] = []
    skipped: list[str] = []
    for s in siblings if isinstance(siblings, list) else []:
        name = _gguf_name(s)
        if name is None:
            continue
        size, oid = _size_and_oid(s)
        if size is None:
            return None
        f = _listed_file(name, size, oid, skipped)
        if f is not None:
            files.append(f)
    return files, skipped


def _gguf_name(s: Any) -> str | None:
    """A sibling's file name when it is a GGUF."""
    name = s.get("rfilename") if isinstance(s, dict) else None
    return name if isinstance(name, str) and name.lower().endswith(".gguf") else None


def _size_and_oid(s: dict[str, Any]) -> tuple[Any, Any]:
    """A sibling's size and content id: the LFS pointer's when there is one, else the git blob's."""
    lfs = s.get("lfs") if isinstance(s.get("lfs"), dict) else None
    if lfs is not None:
        return lfs.get("size"), lfs.get("sha256")
    return s.get("size"), s.get("blobId")


MAX_TREE_PAGES = 1000


def _tree_listing(repo: str, commit: str, cfg: NetConfig) -> tuple[list[HubFile], list[str]]:
    """GGUF files with sizes from the paginated tree API (recursive), at a fixed commit."""
    url: str | None = f"{cfg.endpoint}/api/models/{repo}/tree/{quote(commit, safe='')}"
    params: dict[str, Any] | None = {"recursive": True, "expand": False}
    out: list[HubFile] = []
    skipped: list[str] = []
    what = f"the file tree of {repo}"
    pages = 0
    while url:
        pages += 1
        if pages > MAX_TREE_PAGES:
            raise HubError(f"the Hub's {what} runs past {MAX_TREE_PAGES} pages", hint="check HF_ENDPOINT")

        def call(clock: _Clock, u: str = url, p: Any = params) -> httpx2.Response:
            return _api_get(u, p, cfg, clock, what)

        r = _with_retries(cfg, what, repo, call, revision=commit)
        out += _tree_page_files(_tree_entries(r, what), skipped)
        nxt = r.links.get("next", {}).get("url") if r.links else None
        url = _follow(url, nxt, what) if nxt else None
        params = None
    return out, skipped


def _tree_entries(r: httpx2.Response, what: str) -> list[Any]:
    try:
        entries = _json(r)
    except (ValueError, RecursionError):
        entries = None
    if not isinstance(entries, list):
        raise _not_the_hubs_answer(what)
    return entries


def _tree_page_files(entries: list[Any], skipped: list[str]) -> list[HubFile]:
    """The GGUF files of one page of the tree API (usable ones; the others noted in `skipped`)."""
    files = (_tree_file(entry, skipped) for entry in entries if isinstance(entry, dict) and entry.get("type") == "file")
    return [f for f in files if f is not None]


def _tree_file(entry: dict[str, Any], skipped: list[str]) -> HubFile | None:
    path = entry.get("path")
    if not isinstance(path, str) or not path.lower().endswith(".gguf"):
        return None
    lfs = entry.get("lfs") if isinstance(entry.get("lfs"), dict) else {}
    return _listed_file(path, lfs.get("size", entry.get("size")), lfs.get("oid") or entry.get("oid"), skipped)


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
    offline = is_offline()
    hit = _cached_listing(cache, cfg, repo, rev, offline)
    if hit is not None:
        return hit
    if offline:
        raise offline_missing(f"the file list of {repo}@{rev}")
    with cache.lock(f"listing\x00{cfg.endpoint}\x00{repo}\x00{rev}"):
        hit = _cached_listing(cache, cfg, repo, rev, offline)  # another process may have filled it while we waited
        if hit is not None:
            return hit
        listing = _fetch_and_keep(cache, cfg, repo, rev)
    return listing


def _fetch_and_keep(cache: Cache, cfg: NetConfig, repo: str, rev: str) -> RepoListing:
    """The listing from the Hub, cached by commit (and the branch or tag's resolution with it)."""
    listing = fetch_listing(repo, rev, cfg)
    cache.put_listing(cfg.endpoint, repo, listing.commit, listing.to_dict())
    if not _is_commit(rev):
        cache.put_ref(cfg.endpoint, repo, rev, listing.commit)
    return listing


def _cached_commit(cache: Cache, cfg: NetConfig, repo: str, rev: str, offline: bool) -> str | None:
    """The commit `rev` names, as far as the cache can tell: a full sha names itself; a branch or
    tag resolution is trusted for MEMFIT_REF_TTL (offline: always)."""
    if _is_commit(rev):
        return rev
    ref = cache.get_ref(cfg.endpoint, repo, rev)
    if ref is not None and (offline or time.time() - ref[1] < cfg.ref_ttl):
        return ref[0]
    return None


def _cached_listing(cache: Cache, cfg: NetConfig, repo: str, rev: str, offline: bool) -> RepoListing | None:
    commit = _cached_commit(cache, cfg, repo, rev, offline)
    d = cache.get_listing(cfg.endpoint, repo, commit) if commit is not None else None
    if commit is None or d is None:
        return None
    try:
        return RepoListing.from_dict(d)
    except (KeyError, TypeError, ValueError):  # checksummed but malformed: damaged, ask again
        cache.discard("listings", listing_key(cfg.endpoint, repo, commit))
        return None


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
        """Up to n bytes; fewer only when the body ended cleanly (or failed: `error` says how,
        a passed deadline included: a server trickling bytes never trips the per-read timeout)."""
        out = bytearray(self._pending[:n])
        self._pending = self._pending[n:]
        while len(out) < n and not self.done:
            clock = self._source._clock
            if clock is not None and clock.expired():
                self.error = _DeadlineExceeded()
                self.done = True
                break
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
                 repo: str = "", revision: str | None = None, path: str = "", chunk: int | None = None,
                 oid: str | None = None) -> None:
        self.name = name
        self._url = url
        self._target: str | None = None  # where the Hub redirected us (CDN), reused for later reads
        self._size = size
        # what the listing says the file is: every answer must agree (Content-Range total,
        # Content-Length of a whole body, X-Linked-Size/-ETag of the Hub's redirect, its ETag)
        self._listed_size = size
        self._oid = oid if oid and _OID_RE.match(oid) else None
        self._etags: dict[tuple[str, str, int], str] = {}  # ETag seen per origin (CDN, Hub)
        self._clock: _Clock | None = None  # the budget of the read in progress
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
        buf_end = self._buf_start + len(self._buf)
        if not (self._buf_start <= offset and offset + n <= buf_end):
            self._fill(offset, offset + n, buf_end)
        lo = offset - self._buf_start
        return bytes(self._buf[lo:lo + n])

    def _fill(self, offset: int, end: int, buf_end: int) -> None:
        """Fetch what the buffer lacks of [offset, end), and a read-ahead of one chunk plus 10% of
        what this file has cost so far: few round trips for long headers, and never more than
        chunk + 10% fetched past the header's end."""
        continuing = bool(self._buf) and self._buf_start <= offset <= buf_end
        start = buf_end if continuing else offset
        fetch_end = max(end, start + self._chunk + self.bytes_received // 10)
        if self._size is not None:
            fetch_end = min(fetch_end, self._size)
        data = self._fetch(start, fetch_end)
        if continuing:
            self._buf += data  # continue where the last range ended
        else:
            self._buf = bytearray(data)  # the reader skipped a region (a large array): jump over it
            self._buf_start = offset

    # -- fetching --

    def _fetch(self, start: int, end: int) -> bytes:
        """Bytes [start, end) (fewer only at end of file), with bounded retries within one
        deadline (cfg.deadline); a retry resumes after the last byte received."""
        got = bytearray()
        attempt = 0
        clock = self._clock = _Clock(self._cfg)
        while start + len(got) < end:
            try:
                if clock.expired():
                    raise _Retryable("deadline passed", cause=_DeadlineExceeded())
                chunk, eof = self._get(start + len(got), end)
                got += chunk
                if eof:
                    break
                if not chunk:
                    raise _Retryable("empty response body")
            except _Retryable as r:
                got += r.partial
                attempt += 1
                self._pause_before_retry(r, attempt, clock, start, len(got))
        return bytes(got)

    def _pause_before_retry(self, r: _Retryable, attempt: int, clock: _Clock, start: int, received: int) -> None:
        """Wait before attempt `attempt` + 1 (which resumes at start + received), or raise when the
        failure, the retry count or the deadline says the read is over."""
        what = self._path or self.name
        if isinstance(r.cause, _DeadlineExceeded):
            raise _deadline_error(self._cfg, what, attempt, clock, received) from None
        if attempt > _retries_for(self._cfg, r.cause):
            raise self._give_up(r, attempt) from None
        wait = self._cfg.wait_time(attempt, r.retry_after)
        if wait >= clock.remaining():
            raise _deadline_error(self._cfg, what, attempt, clock, received) from None
        self.retries += 1
        STATS.add(retries=1)
        log.info("%s: %s; retry %d/%d in %.2f s from byte %d", self.name, r.reason, attempt,
                 self._cfg.retries, wait, start + received)
        time.sleep(wait)

    # Error wording: a subclass for another server (planner.ollama's registry) overrides these three.

    def _status_failure(self, status: int, headers: Any, attempts: int = 1) -> MemfitError:
        return _status_error(self._cfg, status, headers, repo=self._repo, what=self._path or self.name,
                             revision=self._revision, attempts=attempts, clock=self._clock)

    def _network_failure(self, cause: BaseException, attempts: int) -> MemfitError:
        return _network_error(self._cfg, self._path or self.name, cause, attempts, self._clock)

    def _incomplete_failure(self, reason: str, attempts: int) -> MemfitError:
        return HubError(f"incomplete answers from the Hub reading {self._path or self.name} "
                        f"{_spent(attempts, self._clock)}: {reason}",
                        hint="try again; a proxy may be cutting responses short")

    def _give_up(self, r: _Retryable, attempts: int) -> MemfitError:
        if r.status:
            return self._status_failure(r.status, r.headers, attempts)
        if r.cause is not None:
            return self._network_failure(r.cause, attempts)
        return self._incomplete_failure(r.reason, attempts)

    # -- what the listing promised --

    def _changed(self, detail: str) -> FileChangedError:
        what = self._path or self.name
        at = f" at {self._revision[:12]}" if self._revision else ""
        return FileChangedError(
            f"{what} changed on the Hub while memfit read it: the listing{at} {detail}",
            hint="run the command again (memfit then asks for a fresh listing); if it keeps happening, "
                 "the server behind HF_ENDPOINT serves files that do not match its own listing")

    def _check_size(self, total: int | None, how: str) -> None:
        if total is not None and self._listed_size is not None and total != self._listed_size:
            raise self._changed(f"says {self._listed_size:,} bytes, the server now sends a file of "
                                f"{total:,} bytes ({how})")

    def _check_etag(self, url: str, headers: Any, *, linked: bool = False) -> None:
        """The ETag of an answer: the Hub's own (X-Linked-ETag of an LFS redirect, the ETag of a
        file it serves itself) must be the listing's content id when both are hex ids of one kind;
        every data answer from one origin must carry the ETag its first answer carried."""
        tag = _etag(headers.get("x-linked-etag") if linked else headers.get("etag"))
        if tag is None:
            return
        if linked or _origin(url) == _origin(self._url):
            self._check_content_id(tag)
        if not linked:
            self._check_same_version(url, tag)

    def _check_content_id(self, tag: str) -> None:
        if self._oid is not None and _OID_RE.match(tag) and len(tag) == len(self._oid) and tag != self._oid:
            raise self._changed(f"gives content id {self._oid[:12]}…, the server now sends {tag[:12]}… (ETag)")

    def _check_same_version(self, url: str, tag: str) -> None:
        seen = self._etags.setdefault(_origin(url), tag)
        if seen != tag:
            raise self._changed(f"read started on a file with ETag {seen[:16]}…, a later range came with "
                                f"{tag[:16]}… (two versions would be mixed)")

    def _get(self, start: int, end: int) -> tuple[bytes, bool]:
        """One attempt: returns (bytes from start, reached end of file)."""
        if self._full is not None:
            if start >= self._full_pos:
                return self._read_full(start, end)
            self.close()
        url = self._target or self._url
        for _hop in range(_MAX_REDIRECTS + 1):
            response = self._send(url, start, end)
            if response.status_code in _REDIRECT_STATUS and "location" in response.headers:
                url = self._redirected(url, response)
                continue
            return self._answered(response, url, start, end)
        raise HubError(f"too many redirects reading {self._path or self.name}",
                       hint="check HF_ENDPOINT or your proxy")

    def _send(self, url: str, start: int, end: int) -> httpx2.Response:
        """One ranged GET, streamed, redirects not followed (the token goes to the Hub only)."""
        headers = _headers_for(url, self._cfg)
        headers["Range"] = f"bytes={start}-{end - 1}"
        headers["Accept-Encoding"] = "identity"
        self.requests += 1
        STATS.add(range_requests=1)
        timeout = self._clock.op_timeout() if self._clock is not None else httpx2.Timeout(self._cfg.timeout)
        try:
            request = _hf_utils.get_session().build_request("GET", url, headers=headers, timeout=timeout)
            return _hf_utils.get_session().send(request, stream=True, follow_redirects=False)
        except _hf_errors.OfflineModeIsEnabled:
            raise offline_missing(f"the header of {self._path or self.name}") from None
        except httpx2.TransportError as e:
            raise _Retryable(type(e).__name__, cause=e) from None

    def _redirected(self, url: str, response: httpx2.Response) -> str:
        """Where a redirect leads; the Hub's own redirect names the file it serves (size, ETag),
        which must be the listing's."""
        response.close()
        if _origin(url) == _origin(self._url):
            linked = response.headers.get("x-linked-size", "")
            self._check_size(int(linked) if linked.isdigit() else None, "X-Linked-Size")
            self._check_etag(url, response.headers, linked=True)
        return _follow(url, response.headers["location"], self._path or self.name)

    def _answered(self, response: httpx2.Response, url: str, start: int, end: int) -> tuple[bytes, bool]:
        status = response.status_code
        if status == 206:
            return self._read_partial(response, url, start, end)
        if status == 200:
            return self._start_full(response, url, start, end)
        if status == 416:
            response.close()
            return b"", True
        raise self._refused(response, url)

    def _refused(self, response: httpx2.Response, url: str) -> Exception:
        """An error answer: worth another attempt (a retryable status, or an expired signed CDN URL:
        back to the Hub once), else the error that ends the read."""
        status, headers = response.status_code, response.headers
        _drain_small(response, self._clock)
        if status in _RETRY_STATUS:
            return _Retryable(f"HTTP {status}", status=status, headers=headers, retry_after=_retry_after(headers))
        if self._target is not None and url == self._target and status in (401, 403, 404, 410):
            self._target = None
            return _Retryable(f"redirect target answered HTTP {status}", status=status, headers=headers)
        return self._status_failure(status, headers)

    def _remember_target(self, url: str) -> None:
        if url != self._url:
            self._target = url

    def _read_partial(self, response: httpx2.Response, url: str, start: int, end: int) -> tuple[bytes, bool]:
        first, last, total = self._content_range(response, url, start)
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

    def _content_range(self, response: httpx2.Response, url: str, start: int) -> tuple[int, int, int | None]:
        """(first, last, total) of a 206 answer, checked against the listing and the request."""
        m = _CONTENT_RANGE_RE.match(response.headers.get("content-range", ""))
        if not m:
            response.close()
            raise _Retryable("206 answer without a valid Content-Range")
        first, last = int(m.group(1)), int(m.group(2))
        total = None if m.group(3) == "*" else int(m.group(3))
        self._check_answer(response, url, total, "Content-Range")
        if total is not None:
            self._size = total
        if first > start or last < first:
            response.close()
            raise _Retryable(f"server sent bytes {first}-{last} for a request starting at {start}")
        return first, last, total

    def _check_answer(self, response: httpx2.Response, url: str, total: int | None, how: str) -> None:
        """The answer's file size and ETag are the listing's (else the body is closed unread)."""
        try:
            self._check_size(total, how)
            self._check_etag(url, response.headers)
        except FileChangedError:
            response.close()
            raise

    def _start_full(self, response: httpx2.Response, url: str, start: int, end: int) -> tuple[bytes, bool]:
        """The server ignored Range: keep the body open and read it only as far as needed."""
        length = response.headers.get("content-length")
        self._check_answer(response, url, int(length) if length and length.isdigit() else None,
                           "Content-Length of a whole-file answer")
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


def _etag(raw: str | None) -> str | None:
    """An ETag without its weak marker and quotes, lower case; None when absent."""
    if not raw:
        return None
    tag = raw.strip()
    if tag[:2] in ("W/", "w/"):
        tag = tag[2:]
    return tag.strip('"').strip().lower() or None


def _drain_small(response: httpx2.Response, clock: _Clock | None = None) -> None:
    """Read at most a small error body, then close (never a whole file, never past the deadline)."""
    try:
        got = 0
        for chunk in response.iter_raw():  # as received: a re-chunker would wait for 16 KiB
            got += len(chunk)
            if got >= _ERROR_BODY_LIMIT or (clock is not None and clock.expired()):
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
        chunk=min(cfg.chunk, HINTED_CHUNK) if hinted else None, oid=file.oid,
    )
