"""A local stand-in for the Ollama registry (registry.ollama.ai), for tests (no network ever).

Two threaded HTTP servers on 127.0.0.1 with random ports, in the style of planner/testing/fakehub.py:
- the registry (`reg.url`, what MEMFIT_OLLAMA_REGISTRY points at) speaks the Docker registry v2
  API the way Ollama's client uses it (ollama server/images.go pullModelManifest, downloadBlob):
  `GET /v2/<namespace>/<model>/manifests/<tag>` answers the manifest JSON (only with the Accept
  header `application/vnd.docker.distribution.manifest.v2+json`, as Ollama sends it; otherwise
  404 MANIFEST_UNKNOWN), unknown names/tags answer 404 with a registry error body
  (`{"errors": [{"code": "MANIFEST_UNKNOWN" | "NAME_UNKNOWN", ...}]}`), and
  `GET /v2/<namespace>/<model>/blobs/sha256:<hex>` answers 307 to
- the blob store (`reg.cdn_url`, another origin, as registry.ollama.ai redirects to its R2 bucket),
  which serves `/blob/<hex>` with Range support.
Every request is recorded (server, path, status, Range, Accept, bytes written) and faults can be
injected: `reg.add_fault("status", status=503, times=2)`, `reg.add_fault("reset", after_bytes=1000)`,
`where` = "manifest" | "blob" (registry blob redirects) | "cdn" | "any".

Digests: a model's blobs are identified by `sha256:<hex>` as in Ollama, but the fixtures make the
hex from the file's path and size, not its content (test files are sparse and gigabytes long);
memfit never hashes a blob, it only uses the digest as a name and a cache key.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .fakeserver import LocalServers, QuietHandler, Readable, RequestRecord

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
MODEL_LAYER = "application/vnd.ollama.image.model"
PROJECTOR_LAYER = "application/vnd.ollama.image.projector"


def fake_digest(seed: str | bytes) -> str:
    return "sha256:" + hashlib.sha256(seed if isinstance(seed, bytes) else seed.encode()).hexdigest()


@dataclass
class Blob(Readable):
    digest: str
    size: int
    source: Path | None = None
    data: bytes | None = None


@dataclass
class RegFault:
    kind: str  # status | reset | latency
    where: str = "any"
    times: int = 1
    status: int = 503
    after_bytes: int = 1024
    delay: float = 0.0
    hits: int = 0


@dataclass
class RegRecord(RequestRecord):
    """A request to the registry or the CDN, with the Accept header it sent."""

    accept: str | None = None


@dataclass
class OllamaModel:
    """What `ollama pull` stores for one name:tag: a manifest and its blobs."""

    manifest: dict[str, Any]
    blobs: dict[str, Blob] = field(default_factory=dict)


def build_model(gguf: Path, *, file_type: str = "Q4_K_M", family: str = "qwen3", projector: Path | None = None,
                extra_layers: list[dict[str, Any]] | None = None, config: dict[str, Any] | None = None,
                model_layer: bool = True) -> OllamaModel:
    """A manifest for a local GGUF (and projector), with a config blob like Ollama's
    (types/model/config.go: model_format, model_family, model_type, file_type, ...)."""
    cfg = {"model_format": "gguf", "model_family": family, "model_families": [family], "model_type": "32.8B",
           "file_type": file_type, "architecture": "amd64", "os": "linux",
           "rootfs": {"type": "layers", "diff_ids": []}}
    cfg.update(config or {})
    cfg_bytes = json.dumps(cfg).encode()
    blobs: dict[str, Blob] = {}
    cfg_blob = Blob(fake_digest(cfg_bytes), len(cfg_bytes), data=cfg_bytes)
    blobs[cfg_blob.digest] = cfg_blob
    layers: list[dict[str, Any]] = []
    for path, media in ((gguf if model_layer else None, MODEL_LAYER), (projector, PROJECTOR_LAYER)):
        if path is None:
            continue
        size = path.stat().st_size
        b = Blob(fake_digest(f"{path.resolve()}:{size}"), size, source=path)
        blobs[b.digest] = b
        layers.append({"mediaType": media, "digest": b.digest, "size": size})
    for extra in extra_layers or []:
        data = extra.get("data", b"{}")
        b = Blob(fake_digest(data), len(data), data=data)
        blobs[b.digest] = b
        layers.append({"mediaType": extra["mediaType"], "digest": b.digest, "size": len(data)})
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST_V2,
                "config": {"mediaType": CONFIG_TYPE, "digest": cfg_blob.digest, "size": cfg_blob.size},
                "layers": layers}
    return OllamaModel(manifest, blobs)


def write_store(root: Path, name: str, model: OllamaModel, *, host: str = "registry.ollama.ai",
                link_blobs: bool = True) -> Path:
    """Lay `model` out as Ollama's local store does: manifests/<host>/<ns>/<model>/<tag> and
    blobs/sha256-<hex> (blob files are symlinks to the sparse test files unless link_blobs=False,
    which leaves them out: a pull that never finished)."""
    ns, model_name, tag = _split(name)
    mpath = root / "manifests" / host / ns / model_name / tag
    mpath.parent.mkdir(parents=True, exist_ok=True)
    mpath.write_text(json.dumps(model.manifest))
    blobs = root / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    if link_blobs:
        for b in model.blobs.values():
            dest = blobs / b.digest.replace(":", "-")
            if dest.exists() or dest.is_symlink():
                continue
            if b.data is not None:
                dest.write_bytes(b.data)
            else:
                assert b.source is not None
                dest.symlink_to(b.source.resolve())
    return mpath


def _split(name: str) -> tuple[str, str, str]:
    model, _, tag = name.partition(":")
    ns, _, model_name = model.rpartition("/")
    return ns or "library", model_name, tag or "latest"


class FakeRegistry(LocalServers):
    def __init__(self) -> None:
        self.models: dict[tuple[str, str, str], OllamaModel] = {}
        self.blobs: dict[str, Blob] = {}
        self.faults: list[RegFault] = []
        self.records: list[RegRecord] = []
        self._start(("registry", "cdn"))

    def add_model(self, name: str, model: OllamaModel) -> OllamaModel:
        """Serve `model` as name[:tag] (namespace library unless given)."""
        self.models[_split(name)] = model
        self.blobs.update(model.blobs)
        return model

    def add_fault(self, kind: str, **kw: Any) -> RegFault:
        f = RegFault(kind, **kw)
        with self._lock:
            self.faults.append(f)
        return f

    def requests(self, server: str | None = None, path: str | None = None) -> list[RegRecord]:
        with self._lock:
            return [r for r in self.records if (server is None or r.server == server)
                    and (path is None or path in r.path)]

    def bytes_sent(self) -> int:
        return sum(r.bytes_sent for r in self.requests())

    def reset_stats(self) -> None:
        with self._lock:
            self.records.clear()

    def _make_server(self, role: str) -> ThreadingHTTPServer:
        fake = self

        class Handler(_Handler):
            server_role = role

        Handler.fake = fake
        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        return srv

    def _take_fault(self, where: str) -> RegFault | None:
        with self._lock:
            for f in self.faults:
                if f.where in (where, "any") and (f.times < 0 or f.hits < f.times):
                    f.hits += 1
                    return f
        return None


class _Handler(QuietHandler):
    server_role = "registry"
    fake: FakeRegistry

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        self.rec = RegRecord(self.server_role, path, range=self.headers.get("Range"),
                             accept=self.headers.get("Accept"), authorization=self.headers.get("Authorization"))
        with self.fake._lock:
            self.fake.records.append(self.rec)
        try:
            if self.server_role == "cdn":
                self._cdn(path)
            else:
                self._registry(path)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode())

    def _fault(self, where: str) -> RegFault | None:
        f = self.fake._take_fault(where)
        if f is None:
            return None
        if f.kind == "latency":
            self.fake._stop.wait(f.delay)
            return None
        if f.kind == "status":
            self._send(f.status, json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "injected"}]}).encode())
        return f

    _MANIFEST_RE = re.compile(r"^/v2/(.+)/([^/]+)/manifests/([^/]+)$")
    _BLOB_RE = re.compile(r"^/v2/(.+)/([^/]+)/blobs/(sha256:[0-9a-f]{64})$")

    def _registry(self, path: str) -> None:
        m = self._MANIFEST_RE.match(path)
        if m:
            return self._manifest((m.group(1), m.group(2), m.group(3)))
        m = self._BLOB_RE.match(path)
        if m:
            return self._blob_redirect(m.group(3))
        self._error(404, "NOT_FOUND", "not found")

    def _faulted(self, where: str) -> bool:
        """An injected status fault answered the request."""
        f = self._fault(where)
        return f is not None and f.kind == "status"

    def _manifest(self, key: tuple[str, str, str]) -> None:
        if self._faulted("manifest"):
            return
        model = self.fake.models.get(key)
        if MANIFEST_V2 not in (self.headers.get("Accept") or ""):
            return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown (send Accept: " + MANIFEST_V2 + ")")
        if model is None:
            known = any(k[:2] == key[:2] for k in self.fake.models)
            code = "MANIFEST_UNKNOWN" if known else "NAME_UNKNOWN"
            return self._error(404, code, "manifest unknown" if known else "repository name not known to registry")
        return self._send(200, json.dumps(model.manifest).encode(), content_type=MANIFEST_V2)

    def _blob_redirect(self, digest: str) -> None:
        """A blob: redirected to the CDN with a signed URL, as the real registry does."""
        if self._faulted("blob"):
            return
        blob = self.fake.blobs.get(digest)
        if blob is None:
            return self._error(404, "BLOB_UNKNOWN", "blob unknown to registry")
        hexdigest = blob.digest.split(":", 1)[1]
        location = f"{self.fake.cdn_url}/blob/{hexdigest}?X-Amz-Signature=cafe&X-Amz-Expires=86400"
        return self._send(307, b"", {"Location": location})

    def _byte_range(self, size: int) -> tuple[int, int, bool] | None:
        """Bytes [start, end) asked for (`bytes=N-` or `bytes=N-M`) and whether a range was asked
        for; None after answering 416."""
        rng = self.headers.get("Range")
        if not rng:
            return 0, size, False
        m = re.match(r"^bytes=(\d+)-(\d*)$", rng.strip())
        start = int(m.group(1)) if m else size
        if start >= size:
            self._send(416, b"", {"Content-Range": f"bytes */{size}"})
            return None
        return start, min(size, int(m.group(2)) + 1) if m and m.group(2) else size, True

    def _cdn(self, path: str) -> None:
        m = re.match(r"^/blob/([0-9a-f]{64})$", path)
        blob = self.fake.blobs.get("sha256:" + m.group(1)) if m else None
        if blob is None:
            return self._send(403, b"<Error><Code>AccessDenied</Code></Error>", content_type="application/xml")
        fault = self._fault("cdn")
        if fault is not None and fault.kind == "status":
            return
        span = self._byte_range(blob.size)
        if span is None:
            return
        start, end, partial = span
        self._send_range_headers(start, end, blob.size, partial)
        reset = fault is not None and fault.kind == "reset"
        self._stream(blob, start, min(end, start + fault.after_bytes) if reset else end)  # type: ignore[union-attr]
        if reset:
            self._reset()
