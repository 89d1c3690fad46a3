"""On-disk cache of parsed GGUF headers, Hub file listings and revision -> commit refs.

Why: a plan must not cost a network round trip twice, and must work with `HF_HUB_OFFLINE=1`.
What it guarantees:
- every entry is written atomically (temporary file, fsync, rename, fsync of the directory), so
  a reader sees the old entry, the new one, or none; never half of one;
- every entry carries its payload length and SHA-256 and the key it was written for; an entry
  that fails any check (truncated, flipped bytes, another key, unknown format) is deleted and
  reported as a miss, so the caller refetches it instead of trusting it;
- `lock(key)` is an inter-process file lock, so two memfit processes filling the same entry do
  not both fetch it (and cannot corrupt it either way, thanks to the atomic rename).
Nothing secret is stored: entries hold header data, file names, sizes and commit ids.

Layout under `cache_root()` (MEMFIT_CACHE_DIR, else $HF_HOME/memfit, else ~/.cache/huggingface/memfit):
  v1/headers/ab/<sha256(key)>.entry    parsed header (JSON of GGUFHeader)
  v1/listings/ab/<sha256(key)>.entry   GGUF files of a repo at one commit
  v1/refs/ab/<sha256(key)>.entry       revision name -> commit sha, with the time it was seen
  v1/locks/<sha256(key)>.lock
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import math
import os
import re
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .header import GGUFHeader, SkippedArray, TensorInfo


class _Log:
    """logging.getLogger("memfit.cache"), loaded when there is something to say (a warm run has not)."""

    def __getattr__(self, name: str) -> object:
        import logging

        return getattr(logging.getLogger("memfit.cache"), name)


log = _Log()


FORMAT_VERSION = 1
_MAGIC = b"memfit-cache"
_MAX_HEADER_LINE = 256
LOCK_TIMEOUT_S = 120.0  # after this, proceed without the lock (worst case: a duplicate fetch)
STALE_TMP_S = 3600.0  # temp files older than this are leftovers of killed runs
# Largest entry memfit writes or reads. Real entries are far smaller (a 7B model's header: 22 KB;
# a 1,000-tensor MoE header: under 1 MiB); anything bigger is not one of ours and is never read
# into memory (an entry that would be bigger is simply not cached).
MAX_ENTRY_BYTES = 16 << 20
_SHA1_RE = re.compile(r"^[0-9a-f]{40}$")


def cache_root() -> Path:
    """Where memfit keeps its cache; read from the environment on every call (tests change it)."""
    explicit = os.environ.get("MEMFIT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    hf_home = os.environ.get("HF_HOME")
    if hf_home:
        return Path(hf_home).expanduser() / "memfit"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "huggingface" / "memfit"


# --- JSON form of a GGUFHeader --------------------------------------------------------------------


def _encode_skipped(v: SkippedArray) -> dict[str, Any]:
    # nbytes/tail (skip hints for sibling files) sit beside "$skip", so entries written before
    # they existed still load (as None / ()) and older readers ignore them
    out: dict[str, Any] = {"$skip": [int(v.element_type), int(v.count)]}
    if v.nbytes is not None:
        out["nbytes"] = int(v.nbytes)
        out["tail"] = [int(x) for x in v.tail]
    return out


def _encode_float(v: float) -> Any:
    # strict JSON has no NaN/Infinity: a non-finite float (legal in a GGUF) is tagged
    return float(v) if math.isfinite(v) else {"$float": repr(float(v))}


# metadata value types -> their JSON form, checked in this order (bool before int: a subclass)
_ENCODERS: tuple[tuple[type | tuple[type, ...], Callable[[Any], Any]], ...] = (
    (SkippedArray, _encode_skipped),
    ((bool, type(None), str), lambda v: v),
    (int, int),
    (float, _encode_float),
    ((list, tuple), lambda v: [_encode_value(x) for x in v]),
    ((bytes, bytearray), lambda v: {"$bytes": base64.b64encode(bytes(v)).decode("ascii")}),
)


def _encode_value(v: Any) -> Any:
    encode = next((encode for types, encode in _ENCODERS if isinstance(v, types)), None)
    if encode is not None:
        return encode(v)
    if hasattr(v, "item"):  # numpy scalar
        return _encode_value(v.item())
    raise TypeError(f"cannot cache metadata value of type {type(v).__name__}")


def _int(v: Any, lo: int = 0) -> int:
    """An integer field of a cache entry: exactly an int (json gives no other), at least lo."""
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise ValueError(f"bad integer {v!r:.40} in cache entry")
    return v


def _decode_skipped(v: dict[str, Any]) -> SkippedArray:
    etype, count = v["$skip"]
    nbytes = v.get("nbytes")
    tail = v.get("tail", [])
    if not isinstance(tail, list):
        raise ValueError("bad tail in cache entry")
    return SkippedArray(element_type=_int(etype), count=_int(count), nbytes=None if nbytes is None else _int(nbytes),
                        tail=tuple(_int(x) for x in tail))


def _decode_float(v: dict[str, Any]) -> float:
    if v["$float"] not in ("inf", "-inf", "nan"):
        raise ValueError("bad tagged float in cache entry")
    return float(v["$float"])


def _decode_bytes(v: dict[str, Any]) -> bytes:
    if not isinstance(v["$bytes"], str):
        raise ValueError("bad bytes in cache entry")
    return base64.b64decode(v["$bytes"], validate=True)


# tagged values (a JSON object): the first tag present decides
_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "$skip": _decode_skipped, "$float": _decode_float, "$bytes": _decode_bytes,
}


def _decode_value(v: Any) -> Any:
    if isinstance(v, dict):
        return _decode_tagged(v)
    if isinstance(v, list):
        return [_decode_value(x) for x in v]
    return _decode_plain(v)


def _decode_tagged(v: dict[str, Any]) -> Any:
    """A value stored with a tag (a skipped array, bytes...), by its decoder."""
    tag = next((tag for tag in _DECODERS if tag in v), None)
    if tag is None:
        raise ValueError("unknown tagged value in cache entry")
    return _DECODERS[tag](v)


def _decode_plain(v: Any) -> Any:
    """A JSON scalar as it was stored; a non-finite number or any other type is damage."""
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("non-finite number in cache entry")
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise ValueError(f"unexpected {type(v).__name__} in cache entry")


def header_to_dict(h: GGUFHeader) -> dict[str, Any]:
    """JSON-ready form of a header (tensors as compact rows: thousands of them per file)."""
    return {
        "version": h.version,
        "alignment": h.alignment,
        "data_offset": h.data_offset,
        "file_size": h.file_size,
        "source": h.source,
        "metadata": {k: _encode_value(v) for k, v in h.metadata.items()},
        "tensors": [[t.name, list(t.shape), t.ggml_type, t.offset, t.nbytes] for t in h.tensors],
    }


def header_from_dict(d: dict[str, Any]) -> GGUFHeader:
    """The inverse of header_to_dict. Strict: any field of the wrong type or shape is a
    ValueError (the caller then treats the entry as damaged), never a silently coerced value."""
    if not isinstance(d, dict) or not isinstance(d.get("metadata"), dict) or not isinstance(d.get("tensors"), list):
        raise ValueError("not a cached header")
    tensors = [_tensor_row(row) for row in d["tensors"]]
    metadata = {k: _decode_value(v) for k, v in d["metadata"].items()}
    file_size = d.get("file_size")
    source = _source(d)
    return GGUFHeader(
        version=_int(d["version"]),
        metadata=metadata,
        tensors=tensors,
        alignment=_int(d["alignment"], 1),
        data_offset=_int(d["data_offset"]),
        file_size=None if file_size is None else _int(file_size),
        source=source,
    )


def _source(d: dict[str, Any]) -> str:
    source = d.get("source", "")
    if not isinstance(source, str):
        raise ValueError("bad source in cache entry")
    return source


def _tensor_row(row: Any) -> TensorInfo:
    """One cached tensor row, checked: a fast path for the rows json gives (exact types), the
    strict one for anything else (which then raises)."""
    if type(row) is list and len(row) == 5:
        name, shape, ty, off, nb = row
        if (type(name) is str and type(shape) is list and type(ty) is int and type(off) is int and type(nb) is int
                and ty >= 0 and off >= 0 and nb >= 0):
            for x in shape:
                if type(x) is not int or x < 0:
                    break
            else:
                return TensorInfo(name, tuple(shape), ty, off, nb)
    return _tensor_row_checked(row)


def _tensor_row_checked(row: Any) -> TensorInfo:
    if not isinstance(row, list) or len(row) != 5 or not isinstance(row[0], str) or not isinstance(row[1], list):
        raise ValueError("bad tensor row in cache entry")
    name, shape, ty, off, nb = row
    return TensorInfo(name=name, shape=tuple(_int(x) for x in shape), ggml_type=_int(ty), offset=_int(off),
                      nbytes=_int(nb))


# --- keys -----------------------------------------------------------------------------------------


def hub_header_key(repo: str, path: str, *, commit: str, oid: str | None) -> str:
    """A Hub file's header is identified by its content id (LFS sha256) when the listing gives one,
    so a new commit that does not touch the file reuses the entry; else by the commit."""
    return f"hub-header\x00{repo}\x00{path}\x00{oid or 'commit:' + commit}"


def local_header_key(path: Path) -> str:
    """A local file is identified by its absolute path, size and modification time."""
    st = path.stat()
    return f"local-header\x00{path.resolve()}\x00{st.st_size}\x00{st.st_mtime_ns}"


def listing_key(endpoint: str, repo: str, commit: str) -> str:
    return f"listing\x00{endpoint}\x00{repo}\x00{commit}"


def ref_key(endpoint: str, repo: str, revision: str) -> str:
    return f"ref\x00{endpoint}\x00{repo}\x00{revision}"


# --- the store ------------------------------------------------------------------------------------


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0  # entries found broken, deleted and refetched
    writes: int = 0
    write_errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def bump(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Cache:
    """The store. Thread-safe; one instance per process is enough (see `default_cache()`)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()
        self.base = self.root / f"v{FORMAT_VERSION}"
        self.stats = CacheStats()
        self._warned = False

    # -- generic entries --

    def _path(self, kind: str, key: str) -> Path:
        d = _digest(key)
        return self.base / kind / d[:2] / f"{d}.entry"

    def get(self, kind: str, key: str) -> Any | None:
        """The value stored for key, or None (missing, or damaged: then it is deleted).

        Only a regular file of at most MAX_ENTRY_BYTES is read, with that limit: a FIFO, a device,
        a symlink (to /dev/zero or anywhere else) or a huge file at an entry's path is damage,
        never something to block on or read into memory."""
        path = self._path(kind, key)
        raw = _read_entry(path)
        if raw is None:
            self.stats.bump("misses")
            return None
        value = _CORRUPT if raw is _CORRUPT else self._decode(raw, key)  # type: ignore[arg-type]
        if value is _CORRUPT:
            self._discard_path(path)
            return None
        self.stats.bump("hits")
        return value

    def discard(self, kind: str, key: str) -> None:
        """Delete an entry whose content passed the checksum but is not what its kind holds
        (a malformed but checksummed entry is damage too: it is deleted and fetched again)."""
        self._discard_path(self._path(kind, key))

    def _discard_path(self, path: Path) -> None:
        self.stats.bump("corrupt")
        log.warning("memfit cache: discarded a damaged entry (%s); it will be fetched again", path.name)
        with contextlib.suppress(OSError):
            path.unlink()  # a symlink is removed, never what it points to

    def put(self, kind: str, key: str, value: Any) -> bool:
        """Store value atomically. Failure to write only loses the cache, never the run."""
        path = self._path(kind, key)
        try:
            payload = json.dumps({"key": key, "value": value}, separators=(",", ":"),
                                 ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as e:
            log.debug("not caching %s: %s", kind, e)
            return False
        if len(payload) + _MAX_HEADER_LINE > MAX_ENTRY_BYTES:
            log.debug("not caching %s: %d bytes is more than an entry may hold", kind, len(payload))
            return False
        head = b"%s %d %d %s\n" % (_MAGIC, FORMAT_VERSION, len(payload),
                                    hashlib.sha256(payload).hexdigest().encode("ascii"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, head + payload)
        except OSError as e:
            self.stats.bump("write_errors")
            if not self._warned:
                self._warned = True
                log.warning("memfit cache: cannot write under %s (%s); continuing without caching",
                            self.root, e.strerror or e)
            return False
        self.stats.bump("writes")
        _sweep_stale_temps(path.parent)
        return True

    @staticmethod
    def _decode(raw: bytes, key: str) -> Any:
        """The value of an entry whose head line (magic, format, length, SHA-256) and key check
        out; _CORRUPT otherwise."""
        nl = raw.find(b"\n", 0, _MAX_HEADER_LINE)
        payload = raw[nl + 1:]
        if nl < 0 or not _head_matches(raw[:nl].split(b" "), payload):
            return _CORRUPT
        try:
            doc = json.loads(payload, parse_constant=_no_constant)
        except (ValueError, RecursionError):  # RecursionError: a deeply nested document
            return _CORRUPT
        if not isinstance(doc, dict) or doc.get("key") != key or "value" not in doc:
            return _CORRUPT
        return doc["value"]

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Inter-process lock for filling one entry. Never fails the run: if the lock cannot be
        taken (read-only cache dir, timeout), the caller proceeds unlocked."""
        from filelock import FileLock, Timeout  # only on a miss: a warm run never locks (~15 ms import)

        lock_dir = self.base / "locks"
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
            fl = FileLock(str(lock_dir / f"{_digest(key)}.lock"), timeout=LOCK_TIMEOUT_S)
            fl.acquire()
        except (OSError, Timeout) as e:
            log.debug("cache lock unavailable (%s); proceeding without it", e)
            yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fl.release()

    # -- typed helpers --

    def get_header(self, key: str) -> GGUFHeader | None:
        value = self.get("headers", key)
        if value is None:
            return None
        try:
            return header_from_dict(value)
        except Exception:  # noqa: BLE001 - checksum fine but not a header of ours: damaged
            self.discard("headers", key)
            return None

    def put_header(self, key: str, header: GGUFHeader) -> bool:
        try:
            value = header_to_dict(header)
        except TypeError as e:
            log.debug("header not cacheable: %s", e)
            return False
        return self.put("headers", key, value)

    def get_listing(self, endpoint: str, repo: str, commit: str) -> dict | None:
        key = listing_key(endpoint, repo, commit)
        value = self.get("listings", key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.discard("listings", key)
            return None
        return value

    def put_listing(self, endpoint: str, repo: str, commit: str, listing: dict) -> bool:
        return self.put("listings", listing_key(endpoint, repo, commit), listing)

    def get_ref(self, endpoint: str, repo: str, revision: str) -> tuple[str, float] | None:
        """(commit sha, unix time it was resolved) for a branch/tag name, if cached."""
        key = ref_key(endpoint, repo, revision)
        value = self.get("refs", key)
        if value is None:
            return None
        ref = _ref(value)
        if ref is None:
            self.discard("refs", key)
        return ref

    def put_ref(self, endpoint: str, repo: str, revision: str, commit: str) -> bool:
        return self.put("refs", ref_key(endpoint, repo, revision), {"commit": commit, "resolved_at": time.time()})


def _ref(value: Any) -> tuple[str, float] | None:
    """A cached ref entry's (commit, resolved_at), None when it is not one."""
    if not isinstance(value, dict):
        return None
    commit, when = value.get("commit"), value.get("resolved_at", 0.0)
    if not isinstance(commit, str) or not _SHA1_RE.match(commit) or not _is_time(when):
        return None
    return commit, float(when)


def _is_time(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _head_matches(parts: list[bytes], payload: bytes) -> bool:
    """`MAGIC FORMAT LENGTH SHA256` describes this payload."""
    if len(parts) != 4 or parts[0] != _MAGIC or parts[1] != str(FORMAT_VERSION).encode():
        return False
    try:
        length = int(parts[2])
    except ValueError:
        return False
    return len(payload) == length and hashlib.sha256(payload).hexdigest().encode() == parts[3]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_O_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) \
    | getattr(os, "O_BINARY", 0)


def _read_entry(path: Path) -> "bytes | _Corrupt | None":
    """The bytes of the entry at path: None when there is none (or it cannot be read: a cache
    problem, not damage), _CORRUPT when something that is not a regular file of a sane size sits
    there. Opened without following a symlink and without blocking (a FIFO would block)."""
    try:
        fd = os.open(path, _O_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR):
            return _CORRUPT  # a symlink (O_NOFOLLOW), a socket, a directory: not an entry
        log.debug("cache read failed for %s: %s", path, e)
        return None
    try:
        return _read_regular(fd)
    except OSError as e:
        log.debug("cache read failed for %s: %s", path, e)
        return None
    finally:
        os.close(fd)


def _read_regular(fd: int) -> "bytes | _Corrupt":
    """At most MAX_ENTRY_BYTES of a regular file (_CORRUPT for anything else, or more)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ENTRY_BYTES:
        return _CORRUPT
    chunks: list[bytes] = []
    got = 0
    while got <= MAX_ENTRY_BYTES:
        chunk = os.read(fd, min(1 << 20, MAX_ENTRY_BYTES + 1 - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return _CORRUPT if got > MAX_ENTRY_BYTES else b"".join(chunks)  # more: it grew while we read it


class _Corrupt:
    pass


_CORRUPT = _Corrupt()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a unique temp file in the same directory, fsync, rename over path, fsync the dir."""
    import tempfile  # only when writing: a warm run reads (~3 ms of imports)

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _sweep_stale_temps(directory: Path) -> None:
    """Delete temp files left behind by killed runs (they are never read as entries)."""
    now = time.time()
    try:
        for p in directory.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > STALE_TMP_S:
                    p.unlink()
    except OSError:
        pass


_default: Cache | None = None
_default_lock = threading.Lock()


def default_cache() -> Cache:
    """The process-wide cache at `cache_root()` (recreated if the environment moved it)."""
    global _default
    with _default_lock:
        root = cache_root()
        if _default is None or _default.root != root:
            _default = Cache(root)
        return _default
