"""Model reference -> quant variants with their parsed headers. The one entry point: `resolve()`.

References understood (first match wins):
  ./model.gguf, /models/x.gguf     a local file (a split shard brings its sibling shards along)
  ./models/                        a local directory: every GGUF below it, grouped into variants
  owner/repo                       a Hub repo: every GGUF variant in it
  owner/repo:Q4_K_M                one variant (llama.cpp `-hf` syntax); also hf.co/owner/repo:TAG
                                   (Ollama), https://huggingface.co/owner/repo[/tree/REV],
                                   .../blob/REV/file.gguf, .../resolve/REV/file.gguf, hf://owner/repo
  owner/repo@REV                   a branch, tag or commit (same as --revision REV)
  qwen3-vl-32b[:TAG]               a short name from planner/data/aliases.toml
An existing local path always wins over a Hub name; write hf.co/owner/repo to force the Hub.

Tag matching: case-insensitive, `-`, `_` and `.` are interchangeable (`q4-k-m` = `Q4_K_M`), and
the match is exact: `Q4_K_M` does not silently pick `UD-Q4_K_M` (a different tensor mix, usually
larger); the error then names the close variants. A label made from a file stem (files without a
recognisable tag, or two files with the same tag) is matched the same way.
"""

from __future__ import annotations

import difflib
import logging
import re
import sys
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Mapping

from . import hub
from .cache import Cache, default_cache, hub_header_key, listing_key, local_header_key
from .errors import GGUFError, HubError, MemfitError, ResolveError
from .header import GGUFHeader, ModelHeaders
from .plausibility import check_metadata
from .reader import SkipHint, parse_header, skip_hints_from
from .sources import LocalFileSource
from .units import one_line
from .variants import (
    FileEntry,
    Grouping,
    VariantGroup,
    group_files,
    is_gguf,
    is_projector,
    is_projector_header,
    normalize_tag,
    quant_bpw,
    quant_tag_from_name,
    tag_key,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the tomli backport
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None  # type: ignore[assignment]

log = logging.getLogger("memfit.resolver")

# --- result types (the planner codes against these names) ----------------------------------------


@dataclass
class Variant:
    quant: str  # tag as llama.cpp spells it (Q4_K_M, UD-Q4_K_XL) or a file stem when untagged
    files: list[str]  # repo/dir-relative paths (local: absolute), shards in order
    size_bytes: int
    headers: ModelHeaders | None = None

    @property
    def bpw_nominal(self) -> float | None:
        return quant_bpw(self.quant)


@dataclass
class ProjectorFile:
    name: str  # repo/dir-relative path (local: absolute)
    size_bytes: int
    headers: ModelHeaders | None = None


@dataclass
class ResolvedModel:
    """What a reference names. `source`: "hub" (files are repo paths), "local" (absolute paths;
    also LM Studio's models folder), "ollama" (files are the model blob's path in the local
    Ollama store, or its digest when it is read from the registry; `local_path` is set only in
    the first case)."""

    ref: str
    source: Literal["local", "hub", "ollama"]
    repo: str | None
    revision: str | None  # commit sha for the Hub; the model blob's digest for Ollama
    variants: list[Variant]  # sorted by size, ascending
    mmproj: list[ProjectorFile] = field(default_factory=list)
    requested_quant: str | None = None  # the tag the user asked for (variants then holds just it)
    revision_name: str | None = None  # what the user asked for (branch/tag), before resolution
    problems: list[str] = field(default_factory=list)  # incomplete shard sets and the like
    local_path: str | None = None
    ollama_name: str | None = None  # the name `ollama run` takes ("qwen3:32b"), for Ollama models
    lmstudio_name: str | None = None  # publisher/repo in LM Studio's models folder, for its models

    def hf_tag(self, quant: str) -> str | None:
        """`owner/repo:QUANT` for llama.cpp's -hf / Ollama's hf.co/ (None for local models or
        labels that are not quant tags)."""
        if self.source != "hub" or self.repo is None:
            return None
        if quant_tag_from_name(quant + ".gguf") != normalize_tag(quant):
            return None
        return f"{self.repo}:{quant}"

    def variant(self, quant: str) -> Variant:
        return _select([v.quant for v in self.variants], quant, self._where(), self.variants)

    def _where(self) -> str:
        if self.ollama_name:
            return f"Ollama model {self.ollama_name}"
        return self.repo if self.repo else (self.local_path or self.ref)


# --- reference parsing ----------------------------------------------------------------------------


@dataclass
class ParsedRef:
    kind: Literal["local", "hub", "alias", "ollama", "lmstudio"]
    text: str
    path: Path | None = None
    repo: str | None = None
    name: str | None = None  # alias
    tag: str | None = None
    revision: str | None = None
    file: str | None = None  # a specific file inside the repo (blob/resolve URLs)
    prefixed: bool = True  # ollama: the reference said `ollama:` (False: a bare name:tag)


_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*$")
_HUB_HOSTS = ("huggingface.co", "hf.co", "www.huggingface.co")
_ALIAS_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*$")


def _split_tag(text: str) -> tuple[str, str | None]:
    if ":" in text:
        head, tag = text.rsplit(":", 1)
        if tag and "/" not in tag:
            return head, tag
    return text, None


# app prefixes: `ollama:qwen3:32b`, `lmstudio:publisher/repo[:QUANT]` (name = what follows)
_APP_PREFIXES: dict[str, Literal["ollama", "lmstudio"]] = {"ollama:": "ollama", "lmstudio:": "lmstudio"}


def parse_reference(ref: str) -> ParsedRef:
    """Classify a reference without touching the network."""
    text = ref.strip()
    if not text:
        raise ResolveError("empty model reference", hint="give a .gguf path, owner/repo or a short name")
    for prefix, kind in _APP_PREFIXES.items():
        if text.lower().startswith(prefix):
            rest = text[len(prefix):].strip()
            if not rest:
                raise ResolveError(f"{text!r} names no model",
                                   hint="e.g. ollama:qwen3:32b or lmstudio:lmstudio-community/Qwen3-32B-GGUF")
            if kind == "lmstudio":
                name, tag = _split_tag(rest)
                return ParsedRef(kind, text, name=name, tag=tag)
            return ParsedRef(kind, text, name=rest)
    expanded = Path(text).expanduser()
    if _exists(expanded):
        return ParsedRef("local", text, path=expanded)

    rest = _strip_hub_prefix(text)
    forced_hub = rest is not None
    rest = text if rest is None else rest
    if forced_hub or _looks_like_repo(rest):
        return _parse_hub(text, rest)
    if text.startswith(("/", "./", "../", "~")) or text.lower().endswith(".gguf") or "\\" in text:
        raise ResolveError(f"no such file or directory: {text}",
                           hint="check the path; for a Hub repo write owner/repo")
    name, tag = _split_tag(text)
    if tag is not None and _is_ollama_name(name, tag):
        return ParsedRef("ollama", text, name=text, prefixed=False)
    if _ALIAS_RE.match(name):
        return ParsedRef("alias", text, name=name.lower(), tag=tag)
    raise ResolveError(f"cannot understand the model reference {text!r}",
                       hint="use a .gguf path, a directory, owner/repo[:QUANT] or a short name like qwen3-32b")


def _is_ollama_name(name: str, tag: str) -> bool:
    """`qwen3:32b`, `gpt-oss:120b`: a name:tag that is not a short name memfit knows with a quant
    tag (`qwen3-vl-32b:Q4_K_M`) reads as an Ollama name."""
    from .ollama import looks_like_name

    if not looks_like_name(f"{name}:{tag}"):
        return False
    if name.lower() in load_aliases():
        return quant_tag_from_name(tag + ".gguf") is None
    return True


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except OSError:
        return False


def _strip_hub_prefix(text: str) -> str | None:
    """The part after a Hub URL / hf.co prefix, or None when text has no such prefix."""
    if text.startswith("hf://"):
        return text[5:]
    m = re.match(r"^(?:https?://)?([^/]+)/(.*)$", text)
    if not m:
        return None
    host = m.group(1).lower()
    endpoint_host = (hub.NetConfig.from_env().endpoint.split("://", 1)[-1]).lower()
    if host in _HUB_HOSTS or (text.startswith(("http://", "https://")) and host == endpoint_host):
        rest = m.group(2)
        return rest[len("models/"):] if rest.startswith("models/") else rest
    return None


def _looks_like_repo(text: str) -> bool:
    head, _ = _split_tag(text)
    head = head.split("@", 1)[0]
    return bool(_REPO_RE.match(head))


def _parse_hub(text: str, rest: str) -> ParsedRef:
    rest = rest.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    parts = rest.split("/")
    if len(parts) < 2:
        raise ResolveError(f"{text!r} does not name a Hub repository", hint="use owner/repo")
    owner, name = parts[0], parts[1]
    tail = parts[2:]
    revision = file = None
    if tail and tail[0] in ("tree", "blob", "resolve") and len(tail) >= 2:
        revision = tail[1]
        if tail[0] in ("blob", "resolve") and len(tail) > 2:
            file = "/".join(tail[2:])
    elif tail:
        raise ResolveError(f"cannot read the Hub URL {text!r}",
                           hint="use owner/repo, owner/repo:QUANT or a /tree/, /blob/ or /resolve/ URL")
    name, tag = _split_tag(name)
    if "@" in name:
        name, revision = name.split("@", 1)
    if file is not None:
        file, ftag = _split_tag(file)
        tag = tag or ftag
    repo = f"{owner}/{name}"
    if not _REPO_RE.match(repo):
        raise ResolveError(f"{repo!r} is not a valid Hub repository id", hint="use owner/repo")
    return ParsedRef("hub", text, repo=repo, tag=tag, revision=revision, file=file)


# --- aliases --------------------------------------------------------------------------------------


def load_aliases() -> dict[str, list[str]]:
    """Short name -> repos (official first), from planner/data/aliases.toml."""
    if tomllib is None:  # pragma: no cover
        raise ResolveError("short model names need Python >= 3.11 (or the 'tomli' package)",
                           hint="pip install tomli, or use owner/repo")
    from .data import read

    raw = read("aliases.toml")
    data = tomllib.loads(raw.decode("utf-8"))
    return {str(k).lower(): [str(r) for r in v] for k, v in data.get("aliases", {}).items()}


def _unknown_alias(name: str, aliases: dict[str, list[str]]) -> ResolveError:
    close = difflib.get_close_matches(name, list(aliases), n=3, cutoff=0.6)
    hint = "use a Hub repo as owner/repo (e.g. unsloth/Qwen3-32B-GGUF) or a local .gguf path"
    if close:
        hint = f"did you mean {', '.join(close)}? Otherwise " + hint
    return ResolveError(f"unknown model name '{name}'", hint=hint)


# --- selection ------------------------------------------------------------------------------------


class QuantNotFoundError(ResolveError):
    """The model exists but has no variant with the requested tag."""

    def __init__(self, message: str, *, tag: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.tag = tag


def _select(labels: list[str], tag: str, where: str, items: list) -> Variant:
    key = tag_key(tag)
    hits = [item for label, item in zip(labels, items) if tag_key(label) == key]
    if len(hits) == 1:
        return hits[0]
    available = ", ".join(labels) or "none"
    if len(hits) > 1:  # cannot happen after grouping (labels are unique); kept as a guard
        raise ResolveError(f"'{tag}' matches several variants in {where}: {available}")
    near = [label for label in labels if tag_key(label).endswith(key) or key.endswith(tag_key(label))]
    near += [m for m in difflib.get_close_matches(normalize_tag(tag), labels, n=3, cutoff=0.6) if m not in near]
    hint = f"did you mean {' or '.join(near[:3])}?" if near else "pick one of the available quants"
    raise QuantNotFoundError(f"no {normalize_tag(tag)} variant in {where}; available: {available}",
                             tag=normalize_tag(tag), hint=hint)


# --- header loading -------------------------------------------------------------------------------


Hints = Mapping[str, SkipHint] | None
# Skip hints are used only when they would spare at least this many bytes per file: each jump
# starts a new range request, which for a small tokenizer costs more time than the bytes it saves.
MIN_HINTED_BYTES = 1 << 20
# path, skip hints from a sibling -> a task that returns that file's header
Loader = Callable[[str, Hints], Callable[[], GGUFHeader]]


def _local_header(path: Path, cache: Cache, hints: Hints = None) -> GGUFHeader:
    try:
        key = local_header_key(path)
        size = path.stat().st_size
    except OSError as e:
        raise ResolveError(f"cannot read {path}: {e.strerror or e}") from None
    h = cache.get_header(key)
    if h is not None and h.file_size == size:
        return h
    h = parse_header(LocalFileSource(path), hints)
    cache.put_header(key, h)
    return h


def _cached_hub_header(listing: hub.RepoListing, f: hub.HubFile, cache: Cache) -> GGUFHeader | None:
    h = cache.get_header(hub_header_key(listing.repo, f.path, commit=listing.commit, oid=f.oid))
    return h if h is not None and h.file_size == f.size else None


def _hub_header(listing: hub.RepoListing, f: hub.HubFile, cache: Cache, cfg: hub.NetConfig,
                hints: Hints = None) -> GGUFHeader:
    key = hub_header_key(listing.repo, f.path, commit=listing.commit, oid=f.oid)

    def cached() -> GGUFHeader | None:
        return _cached_hub_header(listing, f, cache)

    h = cached()
    if h is not None:
        return h
    if hub.is_offline():
        raise hub.offline_missing(f"the header of {f.path} ({listing.repo}@{listing.commit[:12]})")
    with cache.lock(key):
        h = cached()  # filled by another process while we waited
        if h is not None:
            return h
        try:
            with hub.open_file(listing, f, cfg, hinted=bool(hints)) as src:
                h = parse_header(src, hints)
        except hub.FileChangedError:
            # the listing no longer describes the repo: forget it, so the next run lists afresh
            cache.discard("listings", listing_key(cfg.endpoint, listing.repo, listing.commit))
            raise
        if h.file_size is None:
            h.file_size = f.size
        cache.put_header(key, h)
    return h


_SHARD_HINT = "download every shard of a split model into the same directory"


def _no_models(where: str, grouping: Grouping, hint: str) -> ResolveError:
    """Nothing to plan in a directory or repo: say what is there instead (incomplete split
    models, vision projectors only) and what to do about it."""
    msg = f"no GGUF model files in {where}"
    if grouping.problems:
        return ResolveError(msg + " (" + "; ".join(grouping.problems) + ")", hint=_SHARD_HINT)
    if grouping.projectors:
        names = ", ".join(p.path for p in grouping.projectors[:3])
        return ResolveError(f"{msg}: only vision projectors ({names}), which are loaded next to a model",
                            hint="add the model GGUF (memfit plans the projector as its companion)")
    return ResolveError(msg, hint=hint)


def _run_parallel(tasks: list[Callable[[], GGUFHeader]], workers: int) -> list[GGUFHeader]:
    """Run header loads in a thread pool; the first failure cancels the rest and is raised."""
    if len(tasks) <= 1 or workers <= 1:
        return [t() for t in tasks]
    pool = ThreadPoolExecutor(max_workers=min(workers, len(tasks)), thread_name_prefix="memfit-hdr")
    try:
        futures: list[Future[GGUFHeader]] = [pool.submit(t) for t in tasks]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
        if failed:
            for f in pending:
                f.cancel()
            exc = failed[0].exception()
            assert exc is not None
            raise exc
        return [f.result() for f in futures]
    except BaseException:
        # Ctrl-C (or a failed read): do not sit waiting for the reads still in flight
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=False)


def _merge(shards: list[GGUFHeader], label: str) -> ModelHeaders:
    """Shards -> one model: the split-set checks llama.cpp makes (planner.header.check_split_set),
    then the plausibility of every header value memfit computes with (planner.plausibility)."""
    merged = ModelHeaders.merge(shards, label)
    try:
        check_metadata(merged.metadata)
    except GGUFError as e:
        e.message = f"{label}: {e.message}"
        e.args = (e.message,)
        raise
    return merged


# --- resolution -----------------------------------------------------------------------------------


def resolve(ref: str, *, revision: str | None = None, quant: str | None = None,
            load_headers: bool = True) -> ResolvedModel:
    """Turn a model reference into its quant variants (and their parsed headers).

    `quant` (or a `:TAG` in the reference) selects one variant; `revision` pins a Hub branch,
    tag or commit. Every failure is a MemfitError with a hint.
    """
    parsed = parse_reference(ref)
    if quant and parsed.tag and tag_key(quant) != tag_key(parsed.tag):
        raise ResolveError(f"the reference asks for {parsed.tag} but --quant says {quant}",
                           hint="give the quant once")
    tag = quant or parsed.tag
    if parsed.kind == "local":
        assert parsed.path is not None
        if revision:
            raise ResolveError("--revision applies to Hub repos, not to local files")
        return _resolve_local(ref, parsed.path, tag, load_headers)
    if revision and parsed.revision and revision != parsed.revision:
        raise ResolveError(f"the reference pins revision {parsed.revision} but --revision says {revision}",
                           hint="give the revision once")
    rev = revision or parsed.revision
    if parsed.kind == "hub":
        assert parsed.repo is not None
        return _resolve_hub(ref, parsed.repo, rev, tag, load_headers, file=parsed.file)
    if parsed.kind in ("ollama", "lmstudio") and revision:
        raise ResolveError(f"--revision applies to Hub repos, not to {parsed.kind} models")
    if parsed.kind == "ollama":
        from .ollama import resolve_ollama

        assert parsed.name is not None
        alias_hint = None if parsed.prefixed else \
            _unknown_alias(parsed.name.split(":")[0].lower(), load_aliases()).hint
        return resolve_ollama(ref, parsed.name, quant, load_headers, explicit=parsed.prefixed,
                              alias_hint=alias_hint)
    if parsed.kind == "lmstudio":
        from .lmstudio import find_model

        assert parsed.name is not None
        found, lms_name = find_model(parsed.name)
        model = _resolve_local(ref, found, tag, load_headers)
        model.lmstudio_name = lms_name
        return model
    return _resolve_alias(ref, parsed, rev, tag, load_headers)


def _resolve_alias(ref: str, parsed: ParsedRef, rev: str | None, tag: str | None,
                   load_headers: bool) -> ResolvedModel:
    aliases = load_aliases()
    assert parsed.name is not None
    repos = aliases.get(parsed.name)
    if not repos:
        raise _unknown_alias(parsed.name, aliases)
    cfg = hub.NetConfig.from_env()
    skipped: list[str] = []
    last: MemfitError | None = None
    for repo in repos:
        # only "this repo is not there (or not cached)" and "it has no such quant" move on
        try:
            listing = hub.get_listing(repo, rev, cache=default_cache(), cfg=cfg)
        except (hub.RepoNotFoundError, hub.OfflineMissError) as e:
            skipped.append(f"{repo}: {e.message}")
            last = e
            continue
        try:
            return _resolve_hub(ref, repo, rev, tag, load_headers, listing=listing)
        except QuantNotFoundError as e:
            skipped.append(f"{repo}: no {e.tag}")
            last = e
    assert last is not None
    if isinstance(last, hub.OfflineMissError) and len(skipped) == len(repos):
        raise hub.OfflineMissError(f"HF_HUB_OFFLINE is set and none of the repos of '{parsed.name}' is cached "
                                   f"({', '.join(repos)})", hint=last.hint)
    raise ResolveError(f"'{parsed.name}' could not be resolved: " + "; ".join(skipped), hint=last.hint)


def _resolve_hub(ref: str, repo: str, rev: str | None, tag: str | None, load_headers: bool,
                 *, file: str | None = None, listing: hub.RepoListing | None = None) -> ResolvedModel:
    cfg = hub.NetConfig.from_env()
    cache = default_cache()
    listing = listing or hub.get_listing(repo, rev, cache=cache, cfg=cfg)
    by_path = {f.path: f for f in listing.files}
    entries = [FileEntry(f.path, f.size, f.oid) for f in listing.files]
    grouping = group_files(entries)
    where = f"{repo}" + (f"@{rev}" if rev else "")
    explicit = False
    if file is not None and is_projector(file) and any(e.path == file for e in entries):
        # a file named like a projector, asked for by name: its content decides (below)
        grouping = Grouping(variants=group_files([e for e in entries if e.path == file],
                                                 name_projectors=False).variants,
                            projectors=grouping.projectors)
        grouping.projectors = [p for p in grouping.projectors if p.path != file]
        explicit = True
    elif not grouping.variants and grouping.projectors and load_headers:
        grouping = group_files(entries, name_projectors=False)  # only "projectors": read what they are
    if not grouping.variants:
        hint = "memfit reads GGUF files; look for a GGUF repo of this model"
        if "gguf" not in repo.lower():
            hint += f" (often named {repo.split('/')[-1]}-GGUF, e.g. by unsloth or bartowski)"
        raise _no_models(where, grouping, hint)
    groups = grouping.variants
    if file is not None and not explicit:
        owning = [g for g in groups if any(f.path == file for f in g.files)]
        if not owning:
            raise ResolveError(f"{file} is not a GGUF model file of {where}",
                               hint="available: " + ", ".join(g.quant for g in groups))
        groups = owning
    if tag is not None:
        groups = [_select([g.quant for g in groups], tag, where, groups)]
    model = ResolvedModel(
        ref=ref, source="hub", repo=repo, revision=listing.commit,
        variants=[Variant(g.quant, [f.path for f in g.files], g.size_bytes) for g in groups],
        mmproj=[ProjectorFile(p.path, p.size) for p in grouping.projectors],
        requested_quant=normalize_tag(tag) if tag else None, revision_name=rev or "main",
        problems=list(listing.skipped) + list(grouping.problems),
    )
    if load_headers:

        def loader(path: str, hints: Hints) -> Callable[[], GGUFHeader]:
            return lambda: _hub_header(listing, by_path[path], cache, cfg, hints)

        _fill_headers(model, loader, cfg.workers, partial_offline=tag is None and file is None, explicit=explicit,
                      peek=lambda path: _cached_hub_header(listing, by_path[path], cache))
    return model


def _resolve_local(ref: str, path: Path, tag: str | None, load_headers: bool) -> ResolvedModel:
    path = path.resolve()
    if not _is_dir(path) and not _is_file(path):
        raise ResolveError(f"not a regular file or directory: {ref}",
                           hint="give a .gguf file (or a directory of them); devices, pipes and sockets cannot be read")
    explicit = False
    if path.is_dir():
        entries = _scan_dir(path)
        grouping = group_files(entries)
        base = path
        if not grouping.variants and grouping.projectors and load_headers:
            grouping = group_files(entries, name_projectors=False)  # only "projectors": read what they are
        if not grouping.variants:
            raise _no_models(str(path), grouping, "point at a .gguf file or a directory that contains some")
    else:
        explicit = True  # one file named by the user: a model, unless its content is a projector
        base = path.parent
        if not is_gguf(path.name):
            # named explicitly: read it whatever its name (the GGUF magic decides, with a clear error)
            log.info("%s does not end in .gguf; reading it as GGUF anyway", path)
            entry = FileEntry(path.name, path.stat().st_size)
            grouping = Grouping(variants=[VariantGroup(quant=quant_tag_from_name(path.name + ".gguf") or path.stem,
                                                       files=[entry], stem=path.stem)])
        else:
            grouping = group_files(_shard_siblings(path), name_projectors=False)
        if grouping.problems or not grouping.variants:
            raise ResolveError(f"{path.name}: " + "; ".join(grouping.problems or ["not a GGUF model file"]),
                               hint=_SHARD_HINT)
        grouping.projectors = []  # a single file: no companions picked up from its directory
    groups = grouping.variants
    if tag is not None:
        groups = [_select([g.quant for g in groups], tag, str(path), groups)]
    model = ResolvedModel(
        ref=ref, source="local", repo=None, revision=None,
        variants=[Variant(g.quant, [str(base / f.path) for f in g.files], g.size_bytes) for g in groups],
        mmproj=[ProjectorFile(str(base / p.path), p.size) for p in grouping.projectors],
        requested_quant=normalize_tag(tag) if tag else None, problems=list(grouping.problems),
        local_path=str(path),
    )
    if load_headers:
        cache = default_cache()

        def loader(p: str, hints: Hints) -> Callable[[], GGUFHeader]:
            return lambda: _local_header(Path(p), cache, hints)

        if path.is_dir():
            _drop_unreadable(model, base, cache)
        _fill_headers(model, loader, hub.NetConfig.from_env().workers, explicit=explicit)
        if path.is_dir() and tag is None:
            _check_one_model(model, path)
    return model


def _drop_unreadable(model: ResolvedModel, base: Path, cache: Cache) -> None:
    """A directory with a broken download next to good files: leave the broken variant out with a
    note (a single file, or the only variant, still fails with the reader's error)."""
    kept: list[Variant] = []
    first: GGUFError | None = None
    for v in model.variants:
        try:
            for f in v.files:
                _local_header(Path(f), cache)
            kept.append(v)
        except GGUFError as e:
            first = first or e
            model.problems.append(f"skipped {Path(v.files[0]).relative_to(base).as_posix()}: {e.message}")
    if not kept and first is not None:
        raise first
    model.variants = kept
    projectors: list[ProjectorFile] = []
    for proj in model.mmproj:
        try:
            _local_header(Path(proj.name), cache)
            projectors.append(proj)
        except GGUFError as e:
            model.problems.append(f"skipped {Path(proj.name).relative_to(base).as_posix()}: {e.message}")
    model.mmproj = projectors


def _check_one_model(model: ResolvedModel, path: Path) -> None:
    """The variants of a directory must be quants of one model: a folder of unrelated models
    (~/models) would otherwise be planned as if they were one model's quants."""
    kinds: dict[tuple, list[str]] = {}
    for v in model.variants:
        if v.headers is None:
            continue
        arch = v.headers.architecture or "?"
        meta = v.headers.metadata
        shape = (arch, meta.get(f"{arch}.block_count"), meta.get(f"{arch}.embedding_length"))
        kinds.setdefault(shape, []).append(v.quant)
    if len(kinds) > 1:
        shown = list(kinds.items())[:4]
        listed = "; ".join(f"{one_line(k[0], 40)}: {', '.join(q[:3])}{' ...' if len(q) > 3 else ''}" for k, q in shown)
        if len(kinds) > len(shown):
            listed += f"; and {len(kinds) - len(shown)} more"
        raise ResolveError(f"{path} holds {len(kinds)} different models ({listed})",
                           hint="point at one .gguf file, or pick one with --quant, or keep one model per directory")


def _scan_dir(root: Path, max_depth: int = 3) -> list[FileEntry]:
    """GGUF files below root (a few levels: unsloth-style quant subfolders), relative paths."""
    out: list[FileEntry] = []

    def walk(d: Path, depth: int) -> None:
        try:
            children = sorted(d.iterdir())
        except OSError as e:
            raise ResolveError(f"cannot list {d}: {e.strerror or e}") from None
        for c in children:
            if c.name.startswith("."):
                continue
            if _is_dir(c) and depth < max_depth:
                try:
                    walk(c, depth + 1)
                except ResolveError as e:  # an unreadable subfolder: skip it, the rest may do
                    log.info("%s", e.message)
            elif c.name.lower().endswith(".gguf") and _is_file(c):
                try:
                    out.append(FileEntry(c.relative_to(root).as_posix(), c.stat().st_size))
                except OSError as e:
                    log.info("skipped %s: %s", c, e.strerror or e)

    walk(root, 0)
    return out


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:  # permission denied on a path component, a vanished /proc entry...
        return False


def _is_file(p: Path) -> bool:
    try:
        return p.is_file()
    except OSError:
        return False


def _shard_siblings(path: Path) -> list[FileEntry]:
    """The file itself, plus its sibling shards when it is one shard of a split model."""
    m = re.match(r"^(?P<prefix>.+)-(\d{5})-of-(?P<count>\d{5})\.gguf$", path.name, re.IGNORECASE)
    if not m:
        return [FileEntry(path.name, path.stat().st_size)]
    pattern = re.compile(rf"^{re.escape(m.group('prefix'))}-\d{{5}}-of-\d{{5}}\.gguf$", re.IGNORECASE)
    return [FileEntry(c.name, c.stat().st_size) for c in sorted(path.parent.iterdir())
            if c.is_file() and pattern.match(c.name)]


def _fill_headers(model: ResolvedModel, loader: Loader, workers: int, quants: set[str] | None = None,
                  *, partial_offline: bool = False, explicit: bool = False,
                  peek: Callable[[str], GGUFHeader | None] | None = None) -> None:
    """Load every needed file's header, then merge shards per variant.

    With several variants, the smallest variant's first shard is read first and its skipped
    string arrays (tokenizer tokens and merges, most of a header's bytes) become skip hints for
    all the other files, which are then read in parallel: variants of one model nearly always
    carry byte-identical tokenizers, so their reads jump over those arrays. A hint that does
    not hold for a file costs that file a hint-free parse, never a wrong header
    (planner.reader.parse_header).

    `partial_offline`: with HF_HUB_OFFLINE set, variants (and projectors) whose headers are not
    cached are left out with a note naming them, instead of failing the whole model; only when
    none is cached does the offline error stand.

    `peek`: the cached header of a path, or None; cached files are taken first in this thread, so
    a warm run starts no thread pool, and a partly warm one reads only the rest."""
    variants = [v for v in model.variants if quants is None or v.quant in quants]
    paths = [p for v in variants for p in v.files] + [p.name for p in model.mmproj]
    headers: dict[str, GGUFHeader] = {}
    if peek is not None:
        for p in paths:
            h = peek(p)
            if h is not None:
                headers[p] = h
    misses: list[hub.OfflineMissError] = []

    def tolerant(task: Callable[[], GGUFHeader]) -> Callable[[], GGUFHeader | None]:
        def run() -> GGUFHeader | None:
            try:
                return task()
            except hub.OfflineMissError as e:
                misses.append(e)
                return None
        return run

    wrap = tolerant if partial_offline and hub.is_offline() else (lambda task: task)
    hints: Hints = None
    seed: str | None = None
    if len(variants) > 1 and any(p not in headers for p in paths):
        seed = min(variants, key=lambda v: v.size_bytes).files[0]
        first = headers.get(seed) or wrap(loader(seed, None))()
        if first is not None:
            headers[seed] = first
            hints = skip_hints_from(first)
            if sum(h.nbytes for h in hints.values()) < MIN_HINTED_BYTES:
                hints = None  # a small tokenizer: jumping would save less than it costs in round trips
    rest = [p for p in paths if p not in headers and p != seed]
    for p, h in zip(rest, _run_parallel([wrap(loader(p, hints)) for p in rest], workers)):  # type: ignore[arg-type]
        if h is not None:
            headers[p] = h
    if misses:
        _leave_out_uncached(model, variants, headers, misses[0])
        variants = [v for v in variants if all(p in headers for p in v.files)]
    failed: list[tuple[Variant, GGUFError]] = []
    for v in variants:
        try:
            v.headers = _merge([headers[p] for p in v.files], _label(v.files[0], len(v.files)))
        except GGUFError as e:  # a broken split set or an implausible header
            failed.append((v, e))
    if failed:
        # one broken variant among several the user did not single out: leave it out with a note
        # (like an unreadable file in a directory); a variant asked for, or the only one, fails
        if model.requested_quant is not None or quants is not None or len(failed) == len(variants):
            raise failed[0][1]
        for v, e in failed:
            model.variants.remove(v)
            variants.remove(v)
            model.problems.append(f"skipped {e.message}")
    for p in list(model.mmproj):
        try:
            p.headers = _merge([headers[p.name]], _label(p.name, 1))
        except GGUFError as e:  # a broken projector never costs the model its plan
            model.mmproj.remove(p)
            model.problems.append(f"skipped {e.message}")
    _sort_by_content(model, variants, explicit=explicit, all_variants=quants is None)


def _label(path: str, n_files: int) -> str:
    """A file as error messages name it: its name (and how many shards it leads)."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return name + (f" (and {n_files - 1} more shards)" if n_files > 1 else "")


def _shape(h: ModelHeaders) -> tuple:
    arch = h.architecture or "?"
    return (arch, h.metadata.get(f"{arch}.block_count"), h.metadata.get(f"{arch}.embedding_length"))


def _sort_by_content(model: ResolvedModel, loaded: list[Variant], *, explicit: bool, all_variants: bool) -> None:
    """File names only guess what a file is: a projector is a GGUF whose content says so
    (`general.architecture` = clip, planner.variants.is_projector_header). A single-file
    "variant" that holds a projector becomes a companion; a text model named `mmproj-*.gguf`
    becomes a variant (when no quant was asked for and it is the same model as the others),
    else it is left out with a note. Never is a text model priced as a projector."""
    for v in [v for v in loaded if v.headers is not None and is_projector_header(v.headers.metadata)]:
        name = _label(v.files[0], len(v.files))
        if explicit:
            raise ResolveError(f"{name} is a vision projector (mmproj), not a model",
                               hint="give the model file; memfit plans the projector as its companion")
        model.variants.remove(v)
        if len(v.files) == 1:
            model.mmproj.append(ProjectorFile(v.files[0], v.size_bytes, v.headers))
            if not is_projector(v.files[0]):
                model.problems.append(f"{name} holds a vision projector (clip): used as a projector, not as a model")
    shapes = {_shape(v.headers) for v in model.variants if v.headers is not None}
    for p in [p for p in model.mmproj if p.headers is not None and not is_projector_header(p.headers.metadata)]:
        model.mmproj.remove(p)
        name = _label(p.name, 1)
        arch = one_line(p.headers.architecture or "unknown", 40)
        same = not shapes or _shape(p.headers) in shapes
        if model.requested_quant is None and all_variants and same:
            quant = quant_tag_from_name(p.name) or p.name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            if any(tag_key(v.quant) == tag_key(quant) for v in model.variants):
                quant = p.name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            model.variants.append(Variant(quant, [p.name], p.size_bytes, headers=p.headers))
            model.problems.append(f"{name} is named like a vision projector but holds a {arch} model: "
                                  "planned as a model")
        else:
            model.problems.append(f"{name} is named like a vision projector but holds a {arch} model: "
                                  "not used as a projector")
    model.variants.sort(key=lambda v: (v.size_bytes, v.quant))
    model.mmproj.sort(key=lambda p: p.name)
    if not model.variants:
        names = ", ".join(_label(p.name, 1) for p in model.mmproj[:3])
        raise ResolveError(f"no GGUF model files in {model._where()}: only vision projectors ({names}), "
                           "which are loaded next to a model",
                           hint="add the model GGUF (memfit plans the projector as its companion)")


def load_projector_file(path: str, flag: str = "--mmproj") -> tuple[ModelHeaders, int]:
    """A vision projector named on the command line: (its checked headers, its size in bytes).
    Usage errors (exit 2) for a path that is missing, not a regular file (a pipe, a device, a
    directory) or not a projector by content; the reader's and the plausibility errors otherwise."""
    from .errors import InputError
    from .sources import LocalFileSource

    p = Path(path).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(f"{flag} {path}: no such file", hint=f"use {flag} auto or a path to an mmproj GGUF") from None
    except OSError as e:
        raise InputError(f"{flag} {path}: cannot read it ({e.strerror or e})",
                         hint=f"use {flag} auto or a path to an mmproj GGUF") from None
    import stat as _stat

    if not _stat.S_ISREG(st.st_mode):
        what = "a directory" if _stat.S_ISDIR(st.st_mode) else "a pipe" if _stat.S_ISFIFO(st.st_mode) else \
            "a socket" if _stat.S_ISSOCK(st.st_mode) else "a device" if (_stat.S_ISCHR(st.st_mode)
                                                                         or _stat.S_ISBLK(st.st_mode)) else "not a file"
        raise InputError(f"{flag} {path}: {what}, not a regular file (memfit reads a projector's header from a file)",
                         hint=f"give the path of the mmproj .gguf file, or {flag} auto")
    headers = _merge([parse_header(LocalFileSource(p))], _label(str(p), 1))
    if not is_projector_header(headers.metadata):
        arch = one_line(headers.architecture or "unknown", 40)
        raise InputError(f"{flag} {path}: not a vision projector (it holds a {arch} model)",
                         hint="pass the model as MODEL and its mmproj-*.gguf (general.architecture = clip) here")
    return headers, st.st_size


def _leave_out_uncached(model: ResolvedModel, variants: list[Variant], headers: dict[str, GGUFHeader],
                        first_miss: hub.OfflineMissError) -> None:
    """Offline: drop what the cache cannot answer, say which, fail only when nothing is left."""
    missing = [v for v in variants if any(p not in headers for p in v.files)]
    if len(missing) == len(variants):
        raise first_miss
    notes = []
    if missing:
        model.variants = [v for v in model.variants if v not in missing]
        notes.append(f"offline (HF_HUB_OFFLINE): planned the {len(variants) - len(missing)} quant(s) whose headers "
                     f"are cached; not cached: {', '.join(v.quant for v in missing)} (run once online to add them)")
    gone = [p for p in model.mmproj if p.name not in headers]
    if gone:
        model.mmproj = [p for p in model.mmproj if p.name in headers]
        notes.append(f"offline: vision projector {', '.join(p.name for p in gone)} not cached, left out")
    model.problems.extend(notes)


def load_headers(model: ResolvedModel, quants: list[str] | None = None) -> ResolvedModel:
    """Fill headers of a model resolved with load_headers=False (all variants, or `quants`)."""
    wanted = None if quants is None else {model.variant(q).quant for q in quants}
    if model.source == "ollama":
        from .ollama import fill_headers

        return fill_headers(model)
    cfg = hub.NetConfig.from_env()
    cache = default_cache()
    if model.source == "hub":
        assert model.repo is not None and model.revision is not None
        listing = hub.get_listing(model.repo, model.revision, cache=cache, cfg=cfg)
        by_path = {f.path: f for f in listing.files}

        def loader(path: str, hints: Hints) -> Callable[[], GGUFHeader]:
            return lambda: _hub_header(listing, by_path[path], cache, cfg, hints)
    else:

        def loader(path: str, hints: Hints) -> Callable[[], GGUFHeader]:
            return lambda: _local_header(Path(path), cache, hints)

    _fill_headers(model, loader, cfg.workers, wanted)
    return model


__all__ = ["ResolvedModel", "Variant", "ProjectorFile", "ParsedRef", "QuantNotFoundError", "resolve",
           "parse_reference", "load_aliases", "load_headers", "load_projector_file", "HubError"]
