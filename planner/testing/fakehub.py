"""A local stand-in for the Hugging Face Hub, for tests (no network ever).

Two threaded HTTP servers on 127.0.0.1 with random ports:
- the Hub (`hub.url`, what HF_ENDPOINT points at): model info
  (`/api/models/{repo}` and `/api/models/{repo}/revision/{rev}`, `?blobs=true` adds sizes/LFS),
  the tree API (`/api/models/{repo}/tree/{rev}[/{path}]`, `recursive`, cursor pagination with a
  `Link` header) and `/{repo}/resolve/{rev}/{path}` (GET/HEAD). LFS files (all GGUFs by default)
  answer resolve with a 302 to
- the CDN (`hub.cdn_url`, a different origin), which serves `/blobs/{oid}` with Range support.
Access rules follow the Hub: gated repos list freely but their files need a token with access
(401 without a token, 403 with one that lacks access, `X-Error-Code: GatedRepo`); private or
missing repos answer `RepoNotFound`; bad revisions `RevisionNotFound`; missing files
`EntryNotFound`; an unknown token `Invalid credentials in Authorization header`.

Every request is recorded (server, method, path, status, body bytes actually written, whether an
Authorization header came along) for budget and secrecy assertions, and faults can be injected:

    hub.add_fault("status", status=503, times=2)              # 2 x 503, then normal
    hub.add_fault("status", status=429, retry_after="1")
    hub.add_fault("status", status=503, delay=0.05, after_bytes=9999)  # ... its body trickled
    hub.add_fault("reset", after_bytes=1000)                   # RST mid-body
    hub.add_fault("truncate", after_bytes=1000)                # close early (Content-Length lies)
    hub.add_fault("short_range", after_bytes=4096)             # valid 206 covering fewer bytes
    hub.add_fault("full_body")                                 # ignore Range: 200 + whole file
    hub.add_fault("latency", delay=0.3)                        # slow answer (or a timeout)
    hub.add_fault("trickle", after_bytes=1, delay=0.05)        # a slow body: 1 byte every 0.05 s
    hub.add_fault("redirect", location="file:///etc/passwd")  # a redirect memfit must not follow
    hub.add_fault("call", action=fn)                           # run fn (e.g. replace_content), then answer
Hostile or broken servers beyond faults: `hub.listing_hook = fn(body) -> body` edits every
model-info answer (bad sizes, names, sha); `hub.replace_content(repo, path, data)` swaps a file's
bytes in place under the same commit (a mirror that changes files behind its own listing).
`where` picks the requests a fault applies to: "file" (file bytes, hub or CDN), "cdn",
"resolve", "api", "any"; `path` a substring of the request path; `skip` lets that many matching
requests through first; `times` how many requests it then hits (-1 = all).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .fakeserver import LocalServers, QuietHandler, Readable, RequestRecord


@dataclass
class Fault:
    kind: str  # status | reset | truncate | short_range | full_body | latency
    where: str = "file"
    path: str | None = None
    times: int = 1
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    after_bytes: int = 1024
    skip: int = 0  # let this many matching requests through first
    hits: int = 0
    location: str = ""  # "redirect": where to send the client
    action: Any = None  # "call": run this before answering normally


@dataclass
class Record(RequestRecord):
    """A request to the hub or the CDN ("hub" | "cdn"), with its method and query string."""

    method: str = "GET"
    query: str = ""


@dataclass
class RepoFile(Readable):
    path: str
    size: int
    oid: str  # sha256-like content id
    source: Path | None = None
    data: bytes | None = None
    lfs: bool = True


@dataclass
class Repo:
    repo_id: str
    refs: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, RepoFile]] = field(default_factory=dict)
    gated: bool = False
    private: bool = False


def _content_id(path: Path | None, data: bytes | None, size: int) -> str:
    h = hashlib.sha256(str(size).encode())
    if data is not None:
        h.update(data[: 4 << 20])
    else:
        assert path is not None
        with open(path, "rb") as f:
            h.update(f.read(4 << 20))
    return h.hexdigest()


class FakeHub(LocalServers):
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.tokens: dict[str, set[str]] = {}  # valid token -> gated/private repos it can read
        self.faults: list[Fault] = []
        self.records: list[Record] = []
        self.tree_page_size = 1000
        self.siblings_without_sizes = False
        self.listing_hook: Any = None  # fn(model-info body dict) -> body dict, applied to every answer
        self._commit_counter = 0
        self._blobs: dict[str, RepoFile] = {}
        self._start(("hub", "cdn"))

    # -- set-up ------------------------------------------------------------------------------------

    def add_repos(self, repos: dict[str, dict[str, Any]]) -> None:
        """Several repos at once: repo id -> its files (as add_repo takes them)."""
        for repo_id, files in repos.items():
            self.add_repo(repo_id, files)

    def add_repo(self, repo_id: str, files: dict[str, Any], *, gated: bool = False, private: bool = False,
                 branch: str = "main", lfs: bool = True) -> str:
        """Create (or add a commit to) a repo. files: repo path -> local Path or bytes.
        Returns the new commit sha; `branch` is moved to it."""
        with self._lock:
            repo = self.repos.setdefault(repo_id, Repo(repo_id))
            repo.gated, repo.private = gated, private
            self._commit_counter += 1
            sha = hashlib.sha1(f"{repo_id}:{self._commit_counter}:{sorted(files)}".encode()).hexdigest()
            tree: dict[str, RepoFile] = {}
            for path, value in files.items():
                if isinstance(value, (bytes, bytearray)):
                    data = bytes(value)
                    rf = RepoFile(path, len(data), _content_id(None, data, len(data)), data=data, lfs=lfs)
                else:
                    src = Path(value)
                    size = src.stat().st_size
                    rf = RepoFile(path, size, _content_id(src, None, size), source=src, lfs=lfs)
                tree[path] = rf
                self._blobs[rf.oid] = rf
            repo.commits[sha] = tree
            repo.refs[branch] = sha
            return sha

    def replace_content(self, repo_id: str, path: str, value: Any) -> None:
        """Swap a file's bytes in place, in every commit that has it, keeping the commit ids: a
        broken mirror serving other bytes than its listing says. Old CDN URLs serve the new bytes
        (with the new ETag), as a CDN that was updated underneath would."""
        with self._lock:
            for tree in self.repos[repo_id].commits.values():
                f = tree.get(path)
                if f is None:
                    continue
                old = f.oid
                if isinstance(value, (bytes, bytearray)):
                    f.data, f.source, f.size = bytes(value), None, len(value)
                else:
                    f.source, f.data = Path(value), None
                    f.size = f.source.stat().st_size
                f.oid = _content_id(f.source, f.data, f.size)
                self._blobs[f.oid] = f
                self._blobs[old] = f

    def grant(self, token: str, *repo_ids: str) -> None:
        """Make `token` valid, with access to the given gated/private repos."""
        with self._lock:
            self.tokens.setdefault(token, set()).update(repo_ids)

    def login(self, token: str, *repo_ids: str) -> None:
        """Grant `token` (access to the given gated/private repos) and make it the client's
        HF_TOKEN (through the fixture's monkeypatch, so it is undone after the test)."""
        self.grant(token, *repo_ids)
        self.setenv("HF_TOKEN", token)

    def setenv(self, name: str, value: str) -> None:  # replaced by the fixture with monkeypatch.setenv
        raise RuntimeError("FakeHub.login needs the fake_hub fixture (or assign hub.setenv)")

    def add_fault(self, kind: str, **kw: Any) -> Fault:
        f = Fault(kind=kind, **kw)
        with self._lock:
            self.faults.append(f)
        return f

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def reset_stats(self) -> None:
        with self._lock:
            self.records.clear()

    # -- statistics --------------------------------------------------------------------------------

    def file_records(self) -> list[Record]:
        """Requests that carried file bytes (resolve on the hub, blobs on the CDN)."""
        with self._lock:
            return [r for r in self.records if r.server == "cdn" or "/resolve/" in r.path]

    def request_count(self, server: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.records if server is None or r.server == server)

    def bytes_sent(self, path_contains: str | None = None) -> int:
        with self._lock:
            return sum(r.bytes_sent for r in self.records
                       if path_contains is None or path_contains in r.path)

    def stats_by_path(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for r in self.records:
                d = out.setdefault(f"{r.server}:{r.path}", {"requests": 0, "bytes": 0})
                d["requests"] += 1
                d["bytes"] += r.bytes_sent
        return out

    def authorization_seen(self, server: str) -> list[str]:
        with self._lock:
            return [r.authorization for r in self.records if r.server == server and r.authorization]

    # -- internals ---------------------------------------------------------------------------------

    def _make_server(self, role: str) -> ThreadingHTTPServer:
        hub = self

        class Handler(_Handler):
            server_role = role
            fake = hub

        srv = _QuietServer(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        return srv

    def _take_fault(self, role: str, path: str, is_file: bool) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if not _fault_applies(f, role, path, is_file):
                    continue
                if f.skip > 0:
                    f.skip -= 1
                    continue
                if f.times > 0:
                    f.times -= 1
                f.hits += 1
                return f
        return None

    def _record(self, rec: Record) -> None:
        with self._lock:
            self.records.append(rec)


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (a deadline, a refused file, a test that ends) is no server error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(QuietHandler):
    server_role = "hub"
    fake: FakeHub

    # -- plumbing --

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        self.rec = Record(self.server_role, unquote(parts.path), method=method, query=parts.query,
                          range=self.headers.get("Range"), authorization=self.headers.get("Authorization"))
        self.fake._record(self.rec)
        self.method = method
        self.query = parse_qs(parts.query)
        try:
            if self.server_role == "cdn":
                self._cdn(parts.path)
            else:
                self._hub(parts.path)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    _api_fault: Fault | None = None

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json", trickle: Fault | None = None) -> None:
        if trickle is None or self.method == "HEAD" or not body:
            return super()._send(status, body, headers, content_type)
        self._send_headers(status, {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})})
        self._trickle(body, trickle)

    def _trickle(self, body: bytes, fault: Fault) -> None:
        """Send `body` a few bytes at a time with a pause between: a body that never stalls long
        enough for a read timeout but takes forever."""
        step = max(1, fault.after_bytes)
        for i in range(0, len(body), step):
            if self.fake._stop.is_set():
                return
            self.wfile.write(body[i:i + step])
            self.wfile.flush()
            self.rec.bytes_sent += len(body[i:i + step])
            self.fake._stop.wait(fault.delay)

    def _error(self, status: int, code: str | None, message: str) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    # -- the Hub --

    _API_RE = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/(revision|tree)/([^/]+)(?:/(.*))?)?$")
    _RESOLVE_RE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")

    def _hub(self, raw_path: str) -> None:
        m = self._API_RE.match(raw_path)
        if m:
            fault = self.fake._take_fault("hub", unquote(raw_path), False)
            if fault and self._pre_fault(fault):
                return
            self._api_fault = fault if fault and fault.kind == "trickle" else None
            return self._api(m.group(1), m.group(2), m.group(3), m.group(4))
        m = self._RESOLVE_RE.match(raw_path)
        if m:
            return self._resolve(unquote(m.group(1)), unquote(m.group(2)), unquote(m.group(3)), raw_path)
        self._error(404, None, "Not Found")

    def _api(self, repo_id: str, kind: str | None, rev: str | None, sub: str | None) -> None:
        """The model info or a tree page of a repo at a revision (main by default)."""
        repo = self._repo_or_error(unquote(repo_id))
        if repo is None:
            return
        commit = self._commit_or_error(repo, unquote(rev) if rev else "main")
        if commit is None:
            return
        if kind == "tree":
            return self._tree(repo, commit, unquote(sub) if sub else "")
        return self._model_info(repo, commit)

    def _repo_or_error(self, repo_id: str, *, for_files: bool = False) -> Repo | None:
        token = self._token()
        if token is not None and token not in self.fake.tokens:
            self._error(401, None, "Invalid credentials in Authorization header")
            return None
        repo = self.fake.repos.get(repo_id)
        allowed = token is not None and repo_id in self.fake.tokens.get(token, set())
        if repo is None or (repo.private and not allowed):
            self._error(401 if token is None else 404, "RepoNotFound", "Repository not found")
            return None
        if for_files and repo.gated and not allowed:
            self._gated(repo_id, token)
            return None
        return repo

    def _gated(self, repo_id: str, token: str | None) -> None:
        if token is None:
            self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must have access "
                                          "to it and be authenticated to access it. Please log in.")
        else:
            self._error(403, "GatedRepo", f"Access to model {repo_id} is restricted and you are not in the "
                                          f"authorized list. Visit {self.fake.url}/{repo_id} to ask for access.")

    def _commit_or_error(self, repo: Repo, rev: str) -> str | None:
        if rev in repo.refs:
            return repo.refs[rev]
        if rev in repo.commits:
            return rev
        self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return None

    def _model_info(self, repo: Repo, commit: str) -> None:
        blobs = self.query.get("blobs", ["false"])[0].lower() == "true" and not self.fake.siblings_without_sizes
        siblings = [_sibling(f, blobs) for f in sorted(repo.commits[commit].values(), key=lambda f: f.path)]
        body = {
            "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id, "modelId": repo.repo_id, "author": repo.repo_id.split("/")[0],
            "sha": commit, "private": repo.private, "gated": "manual" if repo.gated else False,
            "disabled": False, "tags": ["gguf"], "library_name": "gguf",
            "lastModified": "2025-01-01T00:00:00.000Z", "createdAt": "2025-01-01T00:00:00.000Z",
            "siblings": siblings,
        }
        if self.fake.listing_hook is not None:
            body = self.fake.listing_hook(body)
        self._send(200, json.dumps(body).encode(), trickle=self._api_fault)

    def _tree(self, repo: Repo, commit: str, sub: str) -> None:
        recursive = self.query.get("recursive", ["false"])[0].lower() == "true"
        prefix = sub.rstrip("/") + "/" if sub else ""
        entries: list[dict[str, Any]] = []
        folders: set[str] = set()
        for f in sorted(repo.commits[commit].values(), key=lambda f: f.path):
            if not f.path.startswith(prefix):
                continue
            rest = f.path[len(prefix):]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            if recursive:
                folders.update(_parent_folders(prefix, rest))
            entries.append(_tree_file(f))
        entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in sorted(folders)]
        cursor = int(self.query.get("cursor", ["0"])[0])
        size = self.fake.tree_page_size
        page = entries[cursor:cursor + size]
        headers = {}
        if cursor + size < len(entries):
            base = self.fake.url + urlsplit(self.path).path
            headers["Link"] = f'<{base}?recursive={str(recursive).lower()}&cursor={cursor + size}>; rel="next"'
        self._send(200, json.dumps(page).encode(), headers)

    def _resolve(self, repo_id: str, rev: str, path: str, raw_path: str) -> None:
        repo = self._repo_or_error(repo_id, for_files=True)
        if repo is None:
            return
        commit = self._commit_or_error(repo, rev)
        if commit is None:
            return
        f = repo.commits[commit].get(path)
        if f is None:
            self._error(404, "EntryNotFound", f"{path} does not exist at {rev}")
            return
        # the Hub's ETag of a file it serves itself is the git blob id (the listing's blobId); an
        # LFS file's content id (sha256) comes as X-Linked-ETag on the redirect to the CDN
        meta = {"X-Repo-Commit": commit, "ETag": f'"{f.oid if f.lfs else f.oid[:40]}"'}
        if f.lfs:
            fault = self.fake._take_fault("hub", unquote(raw_path), False)
            if fault and self._pre_fault(fault):
                return
            location = f"{self.fake.cdn_url}/blobs/{f.oid}?X-Amz-Signature=deadbeef&Expires=9999999999"
            meta.update({"Location": location, "X-Linked-Size": str(f.size), "X-Linked-ETag": f'"{f.oid}"'})
            self._send(302, b"", meta)
            return
        self._serve_file(f, meta, unquote(raw_path))

    # -- the CDN --

    def _cdn(self, raw_path: str) -> None:
        m = re.match(r"^/blobs/([0-9a-f]+)$", raw_path)
        f = self.fake._blobs.get(m.group(1)) if m else None
        if f is None:
            self._send(403, b"<Error><Code>AccessDenied</Code></Error>", content_type="application/xml")
            return
        self._serve_file(f, {"ETag": f'"{f.oid}"'}, raw_path)

    # -- file bytes with ranges and faults --

    def _pre_fault(self, fault: Fault) -> bool:
        """Apply a fault that replaces or delays the answer; True when the answer was sent."""
        if fault.kind == "latency":
            self.fake._stop.wait(fault.delay)
            return False
        if fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            body = json.dumps({"error": f"injected {fault.status}"}).encode()
            if fault.delay > 0:  # an error body trickled a byte at a time (padded to after_bytes)
                body += b" " * fault.after_bytes
                self._send(fault.status, body, headers, trickle=Fault("trickle", after_bytes=1, delay=fault.delay))
                return True
            self._send(fault.status, body, headers)
            return True
        if fault.kind == "redirect":
            self._send(302, b"", {"Location": fault.location})
            return True
        if fault.kind == "call":
            fault.action()
            return False
        return False

    def _byte_range(self, size: int, fault: Fault | None) -> tuple[int, int, bool] | None:
        """Bytes [start, end) the request asks for and whether it asked for a range (a `short_range`
        fault shortens it, `full_body` ignores it); None after answering 416."""
        rng = self.headers.get("Range")
        if not rng or (fault and fault.kind == "full_body"):
            return 0, size, False
        start, end = _range_span(rng, size)
        if start >= size or end <= start:
            self._send(416, b"", {"Content-Range": f"bytes */{size}"})
            return None
        if fault and fault.kind == "short_range":
            end = min(end, start + fault.after_bytes)
        return start, end, True

    def _end_fault(self, fault: Fault | None) -> None:
        """How a `reset` or `truncate` fault ends the body it cut short."""
        if fault and fault.kind == "reset":
            self._reset()
        elif fault and fault.kind == "truncate":
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    def _serve_file(self, f: RepoFile, meta: dict[str, str], path: str) -> None:
        fault = self.fake._take_fault(self.server_role, path, True)
        if fault and self._pre_fault(fault):
            return
        span = self._byte_range(f.size, fault)
        if span is None:
            return
        start, end, partial = span
        self._send_range_headers(start, end, f.size, partial, meta)
        if self.method == "HEAD":
            return
        if fault and fault.kind == "trickle":
            self._trickle(f.read(start, end - start), fault)
            return
        cut = fault is not None and fault.kind in ("reset", "truncate")
        self._stream(f, start, min(end, start + fault.after_bytes) if cut else end)  # type: ignore[union-attr]
        self._end_fault(fault)


def _fault_applies(f: Fault, role: str, path: str, is_file: bool) -> bool:
    """A fault with uses left, for this path (when it names one) and this kind of request."""
    if f.times == 0 or (f.path is not None and f.path not in path):
        return False
    return {
        "any": True,
        "file": is_file,
        "cdn": role == "cdn",
        "resolve": role == "hub" and "/resolve/" in path,
        "api": role == "hub" and path.startswith("/api/"),
    }.get(f.where, False)


def _sibling(f: RepoFile, blobs: bool) -> dict[str, Any]:
    """A file in the model info's siblings (sizes and ids only when asked for with blobs=true)."""
    s: dict[str, Any] = {"rfilename": f.path}
    if blobs:
        s["size"] = f.size
        s["blobId"] = f.oid[:40]
        if f.lfs:
            s["lfs"] = {"size": f.size, "sha256": f.oid, "pointerSize": 134}
    return s


def _tree_file(f: RepoFile) -> dict[str, Any]:
    e: dict[str, Any] = {"type": "file", "oid": f.oid[:40], "size": f.size, "path": f.path}
    if f.lfs:
        e["lfs"] = {"oid": f.oid, "size": f.size, "pointerSize": 134}
    return e


def _parent_folders(prefix: str, rest: str) -> list[str]:
    """Every folder between `prefix` and the file at `rest` below it."""
    parts = rest.split("/")[:-1]
    return [prefix + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _range_span(rng: str, size: int) -> tuple[int, int]:
    """[start, end) of a Range header: `bytes=N-[M]`, the last N bytes (`bytes=-N`), or
    (size, size) when it cannot be parsed."""
    m = re.match(r"^bytes=(\d*)-(\d*)$", rng.strip())
    if m and m.group(1):
        return int(m.group(1)), min(size, int(m.group(2)) + 1) if m.group(2) else size
    if m and m.group(2):
        return max(0, size - int(m.group(2))), size
    return size, size


# --- model files for Hub tests -------------------------------------------------------------------

# quant tag -> (type of the big matrices, type of the "sensitive" ones: attn_v / ffn_down / output)
QUANT_MIX: dict[str, tuple[str, str]] = {
    "Q2_K": ("Q2_K", "Q3_K"), "Q3_K_M": ("Q3_K", "Q4_K"), "Q4_0": ("Q4_0", "Q4_0"),
    "Q4_K_S": ("Q4_K", "Q4_K"), "Q4_K_M": ("Q4_K", "Q6_K"), "UD-Q4_K_XL": ("Q4_K", "Q8_0"),
    "IQ4_XS": ("IQ4_XS", "IQ4_XS"), "IQ2_XXS": ("IQ2_XXS", "Q4_K"), "Q5_K_M": ("Q5_K", "Q6_K"),
    "Q6_K": ("Q6_K", "Q6_K"), "Q8_0": ("Q8_0", "Q8_0"), "MXFP4_MOE": ("MXFP4", "Q8_0"),
    "BF16": ("BF16", "BF16"), "F16": ("F16", "F16"),
}


def model_repo_files(root: Path, stem: str, quants: list[str], *, arch: str = "qwen2", shape: Any = None,
                     shards: dict[str, int] | None = None, mmproj: bool = False,
                     subfolders: bool = False) -> dict[str, Path]:
    """GGUF files for a fake repo: `{stem}-{QUANT}.gguf` per quant (split into
    `{stem}-{QUANT}-0000i-of-0000n.gguf` when shards[quant] = n, inside a `{QUANT}/` folder when
    subfolders, as unsloth lays out big models), plus `mmproj-F16.gguf` when asked.
    Returns repo path -> local file, ready for FakeHub.add_repo."""
    import dataclasses

    import gguf

    from . import ggufgen

    shape = shape or ggufgen.ModelShape()
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for q in quants:
        big, hi = (gguf.GGMLQuantizationType[t] for t in QUANT_MIX[q])
        qshape = dataclasses.replace(shape, qtype=big, qtype_hi=hi)
        n = (shards or {}).get(q, 1)
        local = root / f"{stem}-{q}.gguf"
        paths = ggufgen.write_model(local, arch, qshape, shards=n)
        folder = f"{q}/" if subfolders else ""
        for p in paths:
            files[folder + p.name] = p
    if mmproj:
        files["mmproj-F16.gguf"] = ggufgen.write_model(root / "mmproj-F16.gguf", "clip", shape)[0]
    return files


_SPENT_RE = re.compile(r"gave up after \d+ attempt\(s\) in (\d+\.\d+) s")


def seconds_spent(message: str) -> float | None:
    """The time a failed Hub read says it cost ("... gave up after 2 attempt(s) in 0.4 s"), for
    tests that hold it against the time the read really took; None when the message says none."""
    m = _SPENT_RE.search(message)
    return float(m.group(1)) if m else None
