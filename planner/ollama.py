"""Ollama models as references: the local Ollama store first, else the Ollama registry.

    ollama:qwen3:32b           library model qwen3, tag 32b
    ollama:qwen3               tag latest
    ollama:user/model:tag      a user's namespace on the registry
    ollama:host/ns/model:tag   another registry
    qwen3:32b, gpt-oss:120b    the same without the prefix, when the name is not a short name
                               memfit knows (planner/data/aliases.toml) and not owner/repo:TAG

Names follow Ollama's own rules (ollama types/model/name.go): [host/][namespace/]model[:tag],
defaults registry.ollama.ai, library and latest; parts of letters, digits, `_`, `-`, `.` (no `.`
in a namespace).

The local store (ollama envconfig.Models: $OLLAMA_MODELS, else ~/.ollama/models, which is
%USERPROFILE%\\.ollama\\models on Windows; the Linux service install keeps it in
/usr/share/ollama/.ollama/models) holds manifests/<host>/<namespace>/<model>/<tag> (the JSON
manifest) and blobs/sha256-<hex> (every layer). A model found there is read from its blob file,
without any network.

The registry speaks the Docker registry v2 API as Ollama's client uses it (server/images.go):
`GET /v2/<namespace>/<model>/manifests/<tag>` with `Accept: application/vnd.docker.distribution.
manifest.v2+json`, then `GET /v2/<namespace>/<model>/blobs/<digest>` (a redirect to the blob
store). memfit reads the small config blob (file_type: the quant) and the model blob's GGUF header
with range requests (planner.hub's range source: resumed retries, token never sent), never the
weights.

Layers used: `application/vnd.ollama.image.model` (the GGUF), `application/vnd.ollama.image.
projector` (a vision projector GGUF, when present), the config (`application/vnd.docker.container.
image.v1+json`: `file_type`, `remote_host` for cloud models). A manifest without a model layer is
an error that says what it is instead (a cloud model, safetensors tensor layers, an adapter).

Cache (planner.cache, same guarantees as Hub entries): the manifest and config per
registry/name/tag, trusted for MEMFIT_REF_TTL seconds like a Hub branch (any age offline); parsed
headers per blob digest (content-addressed, so the registry and the local store share them).
`HF_HUB_OFFLINE=1` (memfit's one offline switch) keeps the registry out of it.
MEMFIT_OLLAMA_REGISTRY replaces https://registry.ollama.ai (a mirror; the tests' fake registry).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import hub
from .cache import Cache, default_cache
from .errors import MemfitError, RegistryError, ResolveError
from .header import GGUFHeader, ModelHeaders
from .reader import parse_header
from .ollama_names import REGISTRY_ENV, OllamaName
from .parallel import run_parallel
from .resolved import ProjectorFile, ResolvedModel, Variant
from .sources import LocalFileSource
from .variants import normalize_tag, tag_key

log = logging.getLogger("memfit.ollama")

MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"
MODEL_LAYER = "application/vnd.ollama.image.model"
PROJECTOR_LAYER = "application/vnd.ollama.image.projector"
MAX_JSON_BYTES = 1 << 20  # manifests and configs are a few hundred bytes
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")

# What a manifest without a model layer is instead, by the media types it has (prefix -> words).
NOT_GGUF_LAYERS: dict[str, str] = {
    "application/vnd.ollama.image.tensor": "stores its weights as safetensors tensor layers (Ollama's "
                                           "newer format), not a GGUF file memfit can read",
    "application/vnd.ollama.image.adapter": "is a LoRA adapter, not a model",
    "application/vnd.ollama.image.embed": "holds embeddings only",
}


# --------------------------------------------------------------------------- boundary schemas

class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Layer(_Loose):
    mediaType: str
    digest: str = Field(pattern=_DIGEST_RE.pattern)
    size: int = Field(ge=0)


class Manifest(_Loose):
    """A Docker v2 / OCI image manifest as Ollama writes it."""

    schemaVersion: int | None = None
    mediaType: str | None = None
    config: Layer | None = None
    layers: list[Layer] = Field(default_factory=list)

    def first(self, media_type: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.mediaType.split(";")[0].strip() == media_type), None)


class ModelConfig(_Loose):
    """The config blob (ollama types/model/config.go ConfigV2), the fields memfit uses."""

    model_format: str = ""
    model_family: str = ""
    model_type: str = ""  # parameter size, "32.8B"
    file_type: str = ""  # the quant, "Q4_K_M"
    remote_host: str = ""  # set for cloud models (no local weights)
    remote_model: str = ""


# --------------------------------------------------------------------------- the local store

def store_roots() -> list[Path]:
    """Where Ollama keeps models: $OLLAMA_MODELS (quotes stripped, as Ollama does), else the
    user's ~/.ollama/models, plus the Linux service install's store."""
    env = (os.environ.get("OLLAMA_MODELS") or "").strip().strip("\"'")
    if env:
        return [Path(env).expanduser()]
    roots = [Path.home() / ".ollama" / "models"]
    if sys.platform.startswith("linux"):
        roots.append(Path("/usr/share/ollama/.ollama/models"))
    return roots


def _blob_path(root: Path, digest: str) -> Path:
    return root / "blobs" / digest.replace(":", "-")


def _read_json(path: Path, what: str) -> Any:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except OSError as e:
        raise ResolveError(f"cannot read {what} ({path}): {e.strerror or e}") from None
    if len(data) > MAX_JSON_BYTES:
        raise ResolveError(f"{what} ({path}) is not an Ollama manifest (over 1 MiB)")
    try:
        return json.loads(data)
    except ValueError:
        raise ResolveError(f"{what} ({path}) is not valid JSON",
                           hint="the Ollama store may be damaged: `ollama pull` the model again") from None


def _parse_manifest(raw: Any, where: str) -> Manifest:
    try:
        return Manifest.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ()))
        raise ResolveError(f"{where} is not an Ollama manifest ({loc}: {first.get('msg', 'invalid')})",
                           hint="the model may be damaged: `ollama pull` it again") from None


def _parse_config(raw: Any) -> ModelConfig:
    try:
        return ModelConfig.model_validate(raw if isinstance(raw, dict) else {})
    except ValidationError:
        return ModelConfig()


@dataclass
class Located:
    """A manifest, its config, and where the blobs are (a store root, or the registry)."""

    name: OllamaName
    manifest: Manifest
    config: ModelConfig
    store: Path | None  # None: read from the registry

    @property
    def where(self) -> str:
        return f"the Ollama store ({self.store})" if self.store else f"the Ollama registry ({self.name.registry_base()})"


def find_local(name: OllamaName) -> Located | None:
    """The model in a local store, when its manifest and model blob are there."""
    for root in store_roots():
        path = _manifest_path(root, name)
        if path is None:
            continue
        manifest = _parse_manifest(_read_json(path, f"the Ollama manifest of {name.display}"), str(path))
        model = manifest.first(MODEL_LAYER)
        if model is not None and not _blob_path(root, model.digest).is_file():
            log.info("%s: manifest in %s but its model blob is missing (pull not finished)", name.display, root)
            continue
        return Located(name, manifest, _local_config(root, manifest), root)
    return None


def _manifest_path(root: Path, name: OllamaName) -> Path | None:
    """Where a store keeps the name's manifest (matched case-insensitively), if it has it."""
    path = root / "manifests" / name.host / name.namespace / name.model / name.tag
    if path.is_file():
        return path
    return _case_insensitive(root / "manifests", [name.host, name.namespace, name.model, name.tag])


def _local_config(root: Path, manifest: Manifest) -> ModelConfig:
    """The config blob in the store; an empty config when it is missing or unreadable."""
    if manifest.config is not None and _blob_path(root, manifest.config.digest).is_file():
        try:
            return _parse_config(_read_json(_blob_path(root, manifest.config.digest), "an Ollama config"))
        except ResolveError:
            pass
    return ModelConfig()


def _case_insensitive(base: Path, parts: list[str]) -> Path | None:
    """Ollama compares names case-insensitively; the store keeps the case of the first pull."""
    cur = base
    for part in parts:
        try:
            match = next((c for c in cur.iterdir() if c.name.lower() == part.lower()), None)
        except OSError:
            return None
        if match is None:
            return None
        cur = match
    return cur if cur.is_file() else None


# --------------------------------------------------------------------------- the registry

def _manifest_key(name: OllamaName) -> str:
    return f"ollama-manifest\x00{name.registry_base()}\x00{name.namespace}/{name.model}:{name.tag}"


def header_key(digest: str) -> str:
    """Blobs are content-addressed: one cache entry per digest, whoever read it."""
    return f"ollama-header\x00{digest}"


def _offline_missing(what: str) -> RegistryError:
    return RegistryError(f"HF_HUB_OFFLINE is set and {what} is not in the memfit cache",
                         hint="run once with network access (or `ollama pull` the model), or unset HF_HUB_OFFLINE")


def _registry_get(url: str, cfg: hub.NetConfig, *, accept: str | None, what: str, name: OllamaName) -> bytes:
    """One small GET (a manifest or a config) with the same bounded retries as the Hub."""
    attempt = 0
    while True:
        attempt += 1
        retry_after: float | None = None
        try:
            hub.STATS.add(api_requests=1)
            status, body, resp_headers = _get_capped(url, _request_headers(accept), cfg)
            if status == 200:
                return _small_body(body, what, name)
            if status not in hub._RETRY_STATUS or attempt > cfg.retries:
                raise _status_failure(name, status, body, what, attempt)
            retry_after = hub._retry_after(resp_headers)
        except hub._hf_errors.OfflineModeIsEnabled:
            raise _offline_missing(what) from None
        except hub.httpx2.TransportError as e:
            if attempt > hub._retries_for(cfg, e):
                raise _network_failure(name, e, what, attempt) from None
        hub.STATS.add(retries=1)
        wait = cfg.wait_time(attempt, retry_after)
        log.info("retrying %s in %.2f s (attempt %d of %d)", what, wait, attempt + 1, cfg.retries + 1)
        time.sleep(wait)


def _request_headers(accept: str | None) -> dict[str, str]:
    """What a registry GET sends: the Accept asked for and memfit's User-Agent; no credential, ever."""
    headers = {"Accept": accept} if accept else {}
    headers["User-Agent"] = f"memfit/{hub.__version__}"
    return headers


def _small_body(body: bytes, what: str, name: OllamaName) -> bytes:
    """A manifest or config answer, refused when it is over MAX_JSON_BYTES."""
    if len(body) > MAX_JSON_BYTES:
        raise RegistryError(f"the Ollama registry's answer for {what} of {name.display} is over 1 MiB: "
                            "not a manifest or config", hint=f"check {REGISTRY_ENV} if you use a mirror")
    return body


def _get_capped(url: str, headers: dict[str, str], cfg: hub.NetConfig) -> tuple[int, bytes, Any]:
    """(status, at most MAX_JSON_BYTES + 1 bytes of body, headers): a manifest or config is small,
    and a registry that answers with something large (a blob behind a wrong digest) is cut off,
    never downloaded."""
    session = hub._hf_utils.get_session()
    with session.stream("GET", url, headers=headers, timeout=cfg.timeout, follow_redirects=True) as r:
        body = bytearray()
        for chunk in r.iter_bytes():
            body += chunk
            if len(body) > MAX_JSON_BYTES:
                break
        return r.status_code, bytes(body[:MAX_JSON_BYTES + 1]), r.headers


def _error_code(body: bytes) -> str:
    try:
        errors = json.loads(body).get("errors") or []
        return str(errors[0].get("code") or "") if errors else ""
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""


def _status_failure(name: OllamaName, status: int, body: bytes, what: str, attempts: int = 1) -> MemfitError:
    code = _error_code(body)
    base = name.registry_base()
    if status == 404 or code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"):
        return _not_found(name, code, what, base)
    if status in (401, 403):
        return RegistryError(f"the Ollama registry refused {what} of {name.display} (HTTP {status})",
                             hint="private models need `ollama pull` with your Ollama account; memfit then reads the local copy")
    if status == 429:
        return RegistryError(f"rate limited by the Ollama registry (HTTP 429) after {attempts} attempt(s) reading {what}",
                             hint="wait a minute and retry")
    if status >= 500:
        return RegistryError(f"the Ollama registry answered HTTP {status} after {attempts} attempt(s) reading {what}",
                             hint=f"the registry ({base}) is having trouble; try again shortly, or `ollama pull` "
                                  "the model and memfit reads it locally")
    return RegistryError(f"unexpected HTTP {status} from the Ollama registry reading {what} of {name.display}",
                         hint=f"check {REGISTRY_ENV} if you use a mirror")


def _not_found(name: OllamaName, code: str, what: str, base: str) -> MemfitError:
    """A registry 404: a blob gone (re-published), or no such model (or tag)."""
    if code == "BLOB_UNKNOWN" or "blob" in what:
        return RegistryError(f"the Ollama registry has no {what} for {name.display}",
                             hint="the model may have been re-published: try again (MEMFIT_REF_TTL=0 refreshes it)")
    known = "no such model" if code == "NAME_UNKNOWN" else "no such model or tag"
    return ResolveError(f"unknown Ollama model {name.display}: {known} in the registry ({base})",
                        hint=f"check the name and tag on {name.library_page()}")


def _network_failure(name: OllamaName, cause: BaseException, what: str, attempts: int) -> RegistryError:
    base = name.registry_base()
    if isinstance(cause, hub.httpx2.TimeoutException):
        return RegistryError(f"timed out after {attempts} attempt(s) waiting for the Ollama registry ({what})",
                             hint="check your network or proxy, or raise MEMFIT_HTTP_TIMEOUT")
    if isinstance(cause, hub.httpx2.ConnectError):
        return RegistryError(f"cannot connect to the Ollama registry at {base} ({what})",
                             hint="check the network and proxy settings (HTTPS_PROXY); a model you have pulled is "
                                  "read from the local Ollama store without network")
    reason = hub.redact(str(cause)).splitlines()[0] if str(cause) else type(cause).__name__
    return RegistryError(f"network error talking to the Ollama registry ({what}): {reason}",
                         hint="try again; if it persists check your connection or proxy")


def _blob_url(name: OllamaName, digest: str) -> str:
    return f"{name.registry_base()}/v2/{name.namespace}/{name.model}/blobs/{digest}"


def find_remote(name: OllamaName, cache: Cache, cfg: hub.NetConfig) -> Located:
    """Manifest and config from the cache (fresh for MEMFIT_REF_TTL, any age offline), else the registry."""
    key = _manifest_key(name)
    offline = hub.is_offline()
    found = _cached_located(name, cache.get("ollama", key), cfg.ref_ttl, any_age=offline)
    if found is not None:
        return found
    if offline:
        raise _offline_missing(f"the manifest of Ollama model {name.display}")
    with cache.lock(key):
        # fetched by another process while we waited
        found = _cached_located(name, cache.get("ollama", key), min(cfg.ref_ttl, 60.0))
        if found is not None:
            return found
        manifest_raw, manifest = _fetch_manifest(name, cfg)
        config_raw = _config_json(name, manifest, cache, cfg)
        cache.put("ollama", key, {"manifest": manifest_raw, "config": config_raw, "resolved_at": time.time()})
    return Located(name, manifest, _parse_config(config_raw), None)


def _cached_located(name: OllamaName, hit: Any, max_age: float, *, any_age: bool = False) -> Located | None:
    """A cached manifest and config younger than `max_age` seconds (or of any age), if valid."""
    if not (isinstance(hit, dict) and (any_age or time.time() - float(hit.get("resolved_at", 0)) < max_age)):
        return None
    try:
        return Located(name, Manifest.model_validate(hit["manifest"]), _parse_config(hit.get("config")), None)
    except (ValidationError, KeyError):
        return None


def _fetch_manifest(name: OllamaName, cfg: hub.NetConfig) -> tuple[Any, Manifest]:
    """The registry's manifest: as it came (for the cache) and parsed."""
    raw = _registry_get(f"{name.registry_base()}/v2/{name.namespace}/{name.model}/manifests/{name.tag}", cfg,
                        accept=MANIFEST_ACCEPT, what="the manifest", name=name)
    try:
        manifest_raw = json.loads(raw)
    except ValueError:
        raise RegistryError(f"the Ollama registry's manifest for {name.display} is not JSON",
                            hint=f"check {REGISTRY_ENV} and any proxy between you and the registry") from None
    return manifest_raw, _parse_manifest(manifest_raw, f"the registry's manifest for {name.display}")


def _config_json(name: OllamaName, manifest: Manifest, cache: Cache, cfg: hub.NetConfig) -> Any:
    """The config blob's JSON (content-addressed: fetched once, then from the cache); None when
    the manifest has none, it is too large, or it is not JSON."""
    if manifest.config is None or manifest.config.size > MAX_JSON_BYTES:
        return None
    ckey = f"ollama-config\x00{manifest.config.digest}"
    config_raw = cache.get("ollama", ckey)
    if config_raw is None:
        try:
            config_raw = json.loads(_registry_get(_blob_url(name, manifest.config.digest), cfg, accept=None,
                                                  what="the config blob", name=name))
            cache.put("ollama", ckey, config_raw)
        except ValueError:
            config_raw = None
    return config_raw


class RegistryRangeSource(hub.HttpRangeSource):
    """planner.hub's range source, for a blob of the Ollama registry: the same resumed retries and
    redirect handling (no credential is ever sent), errors worded for the registry."""

    def __init__(self, name: OllamaName, layer: Layer, cfg: hub.NetConfig) -> None:
        super().__init__(_blob_url(name, layer.digest), name=f"ollama://{name.full}@{layer.digest[:19]}",
                         size=layer.size, cfg=cfg, path=f"the model blob of {name.display}")
        self._ollama = name

    def _status_failure(self, status: int, headers: Any, attempts: int = 1) -> MemfitError:
        return _status_failure(self._ollama, status, b"", "the model blob", attempts)

    def _network_failure(self, cause: BaseException, attempts: int) -> MemfitError:
        return _network_failure(self._ollama, cause, "the model blob", attempts)

    def _incomplete_failure(self, reason: str, attempts: int) -> MemfitError:
        return RegistryError(f"incomplete answers from the Ollama registry reading the model blob of "
                             f"{self._ollama.display} after {attempts} attempt(s): {reason}",
                             hint="try again; a proxy may be cutting responses short")


# --------------------------------------------------------------------------- headers

def _header(loc: Located, layer: Layer, cache: Cache, cfg: hub.NetConfig) -> GGUFHeader:
    key = header_key(layer.digest)

    def cached() -> GGUFHeader | None:
        h = cache.get_header(key)
        return h if h is not None and h.file_size == layer.size else None

    h = cached()
    if h is not None:
        return h
    if loc.store is not None:
        path = _blob_path(loc.store, layer.digest)
        h = parse_header(LocalFileSource(path))
        if h.file_size == layer.size:
            cache.put_header(key, h)
        return h
    if hub.is_offline():
        raise _offline_missing(f"the header of Ollama model {loc.name.display}")
    with cache.lock(key):
        h = cached()
        if h is not None:
            return h
        with RegistryRangeSource(loc.name, layer, cfg) as src:
            h = parse_header(src)
        if h.file_size is None:
            h.file_size = layer.size
        cache.put_header(key, h)
    return h


# --------------------------------------------------------------------------- resolution

def _no_model_layer(loc: Located) -> ResolveError:
    name = loc.name.display
    if loc.config.remote_host:
        return ResolveError(f"Ollama model {name} is a cloud model (it runs on {loc.config.remote_host}): "
                            "there are no weights to plan for this machine",
                            hint=f"pick a local tag of the model ({loc.name.library_page()})")
    for layer in loc.manifest.layers:
        for prefix, words in NOT_GGUF_LAYERS.items():
            if layer.mediaType.startswith(prefix):
                return ResolveError(f"Ollama model {name} {words}",
                                    hint="use a GGUF of the same model (a Hugging Face repo or another tag)")
    return ResolveError(f"the manifest of Ollama model {name} has no model layer ({MODEL_LAYER})",
                        hint=f"check the tag on {loc.name.library_page()}")


def _locate(name: OllamaName) -> Located:
    local = find_local(name)
    if local is not None:
        return local
    return find_remote(name, default_cache(), hub.NetConfig.from_env())


def resolve_ollama(ref: str, text: str, quant: str | None, load_headers: bool, *, explicit: bool = True,
                   alias_hint: str | None = None) -> ResolvedModel:
    """An Ollama name -> a ResolvedModel with one variant (an Ollama tag is one quant) and the
    projector when the manifest has one. `explicit`: the reference said `ollama:`; a bare
    `name:tag` that the registry does not know gets the short-name hint too."""
    name = OllamaName.parse(text)
    loc = _locate_named(name, text, explicit, alias_hint)
    model_layer = loc.manifest.first(MODEL_LAYER)
    if model_layer is None:
        raise _no_model_layer(loc)
    label = normalize_tag(loc.config.file_type) if loc.config.file_type else name.tag
    if quant and tag_key(quant) != tag_key(label):
        raise ResolveError(f"Ollama model {name.display} is {label}; it has no {normalize_tag(quant)} variant",
                           hint=f"an Ollama tag holds one quant: pick the tag with {normalize_tag(quant)} "
                                f"on {name.library_page()}")
    store = loc.store
    files = [_layer_file(store, model_layer)]
    projector_layer = loc.manifest.first(PROJECTOR_LAYER)
    projectors = [] if projector_layer is None else [ProjectorFile(_layer_file(store, projector_layer),
                                                                   projector_layer.size)]
    model = ResolvedModel(
        ref=ref, source="ollama", repo=None, revision=model_layer.digest,
        variants=[Variant(label, files, model_layer.size)], mmproj=projectors,
        requested_quant=normalize_tag(quant) if quant else None,
        local_path=files[0] if store else None, ollama_name=name.display,
    )
    if load_headers:
        _fill(model, loc)
    return model


def _locate_named(name: OllamaName, text: str, explicit: bool, alias_hint: str | None) -> Located:
    """The model's manifest; a bare `name:tag` the registry does not know is said to be neither
    a short name nor an Ollama model."""
    try:
        return _locate(name)
    except ResolveError as e:
        if not explicit and e.message.startswith("unknown Ollama model"):
            raise ResolveError(f"{text!r} is neither a short name memfit knows nor an Ollama model "
                               f"({e.message.split(': ', 1)[-1]})",
                               hint=alias_hint or e.hint) from None
        raise


def _layer_file(store: Path | None, layer: Layer) -> str:
    """A layer as a file: its blob's path in the local store, else its digest (read from the registry)."""
    return str(_blob_path(store, layer.digest)) if store else layer.digest


def fill_headers(model: ResolvedModel) -> ResolvedModel:
    """Headers of a model resolved with load_headers=False (planner.resolver.load_headers)."""
    assert model.ollama_name is not None
    return _fill(model, _locate(OllamaName.parse(model.ollama_name)))


def _fill(model: ResolvedModel, loc: Located) -> ResolvedModel:
    """Read (or take from the cache) the headers of the model blob and the projector, in parallel."""
    cache, cfg = default_cache(), hub.NetConfig.from_env()
    model_layer = loc.manifest.first(MODEL_LAYER)
    if model_layer is None:
        raise _no_model_layer(loc)
    layers = [model_layer]
    proj = loc.manifest.first(PROJECTOR_LAYER)
    if proj is not None and model.mmproj:
        layers.append(proj)
    jobs: list[Callable[[], GGUFHeader]] = [lambda layer=layer: _header(loc, layer, cache, cfg) for layer in layers]
    headers = run_parallel(jobs, cfg.workers)
    for v in model.variants:
        v.headers = ModelHeaders.merge([headers[0]])
    if len(headers) > 1:
        model.mmproj[0].headers = ModelHeaders.merge([headers[1]])
    return model
