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

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from .cache import Cache, default_cache, hub_header_key, listing_key, local_header_key
from .errors import GGUFError, HubError, MemfitError, ResolveError
from .header import GGUFHeader, ModelHeaders
from .parallel import run_parallel
from .plausibility import check_metadata
from .reader import SkipHint, parse_header, skip_hints_from
from .references import ParsedRef, load_aliases, parse_reference, unknown_alias
from .resolved import ProjectorFile, QuantNotFoundError, ResolvedModel, Variant, select_tagged
from .sources import LocalFileSource, path_is
from .units import env_float, one_line
from .variants import (
    FileEntry,
    Grouping,
    VariantGroup,
    group_files,
    is_gguf,
    is_projector,
    is_projector_header,
    normalize_tag,
    quant_tag_from_name,
    tag_key,
)



def _log():  # noqa: ANN202 - logging loads only when there is something to say
    import logging

    return logging.getLogger("memfit.resolver")


class _Hub:
    """planner.hub, imported on first use: a local file needs none of the network side."""

    def __getattr__(self, name: str) -> object:
        from . import hub as real

        globals()["hub"] = real
        return getattr(real, name)


hub = _Hub()


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


@dataclass(frozen=True)
class _Request:
    """One `resolve()` call: the parsed reference and what the flags add to it."""

    ref: str
    parsed: ParsedRef
    tag: str | None  # --quant, else the reference's :TAG
    quant: str | None  # --quant alone (Ollama reads the reference's tag itself)
    revision: str | None  # --revision, else the reference's @REV
    load_headers: bool


# what --revision cannot apply to, by reference kind
_NOT_HUB = {"local": "local files", "ollama": "ollama models", "lmstudio": "lmstudio models"}


def resolve(ref: str, *, revision: str | None = None, quant: str | None = None,
            load_headers: bool = True) -> ResolvedModel:
    """Turn a model reference into its quant variants (and their parsed headers).

    `quant` (or a `:TAG` in the reference) selects one variant; `revision` pins a Hub branch,
    tag or commit. Every failure is a MemfitError with a hint.
    """
    parsed = parse_reference(ref)
    _check_flags(parsed, quant, revision)
    req = _Request(ref, parsed, quant or parsed.tag, quant, revision or parsed.revision, load_headers)
    return _RESOLVERS[parsed.kind](req)


def _check_flags(parsed: ParsedRef, quant: str | None, revision: str | None) -> None:
    """--quant and --revision against what the reference already says."""
    if quant and parsed.tag and tag_key(quant) != tag_key(parsed.tag):
        raise ResolveError(f"the reference asks for {parsed.tag} but --quant says {quant}",
                           hint="give the quant once")
    if revision and parsed.kind in _NOT_HUB:
        raise ResolveError(f"--revision applies to Hub repos, not to {_NOT_HUB[parsed.kind]}")
    if revision and parsed.revision and revision != parsed.revision:
        raise ResolveError(f"the reference pins revision {parsed.revision} but --revision says {revision}",
                           hint="give the revision once")


def _resolve_local_ref(req: _Request) -> ResolvedModel:
    assert req.parsed.path is not None
    return _resolve_local(req.ref, req.parsed.path, req.tag, req.load_headers)


def _resolve_hub_ref(req: _Request) -> ResolvedModel:
    assert req.parsed.repo is not None
    return _resolve_hub(req.ref, req.parsed.repo, req.revision, req.tag, req.load_headers, file=req.parsed.file)


def _resolve_ollama_ref(req: _Request) -> ResolvedModel:
    from .ollama import resolve_ollama

    name = req.parsed.name
    assert name is not None
    alias_hint = None if req.parsed.prefixed else unknown_alias(name.split(":")[0].lower(), load_aliases()).hint
    return resolve_ollama(req.ref, name, req.quant, req.load_headers, explicit=req.parsed.prefixed,
                          alias_hint=alias_hint)


def _resolve_lmstudio_ref(req: _Request) -> ResolvedModel:
    from .lmstudio import find_model

    assert req.parsed.name is not None
    found, lms_name = find_model(req.parsed.name)
    model = _resolve_local(req.ref, found, req.tag, req.load_headers)
    model.lmstudio_name = lms_name
    return model


def _resolve_alias(req: _Request) -> ResolvedModel:
    """A short name: its repos in order, the first that has the model (and the quant asked for)."""
    aliases = load_aliases()
    name = req.parsed.name
    assert name is not None
    repos = aliases.get(name)
    if not repos:
        raise unknown_alias(name, aliases)
    cfg = hub.NetConfig.from_env()
    skipped: list[str] = []
    last: MemfitError | None = None
    for repo in repos:
        found = _try_alias_repo(req, repo, cfg, skipped)
        if isinstance(found, ResolvedModel):
            return found
        last = found
    raise _alias_failure(name, repos, skipped, last)


def _try_alias_repo(req: _Request, repo: str, cfg: hub.NetConfig, skipped: list[str]) -> ResolvedModel | MemfitError:
    """One repo of a short name: the model, or why it moves on to the next (noted in `skipped`);
    only "this repo is not there (or not cached)" and "it has no such quant" move on."""
    try:
        listing = hub.get_listing(repo, req.revision, cache=default_cache(), cfg=cfg)
    except (hub.RepoNotFoundError, hub.OfflineMissError) as e:
        skipped.append(f"{repo}: {e.message}")
        return e
    try:
        return _resolve_hub(req.ref, repo, req.revision, req.tag, req.load_headers, listing=listing)
    except QuantNotFoundError as e:
        skipped.append(f"{repo}: no {e.tag}")
        return e


def _alias_failure(name: str, repos: list[str], skipped: list[str], last: MemfitError | None) -> MemfitError:
    assert last is not None
    if isinstance(last, hub.OfflineMissError) and len(skipped) == len(repos):
        return hub.OfflineMissError(f"HF_HUB_OFFLINE is set and none of the repos of '{name}' is cached "
                                    f"({', '.join(repos)})", hint=last.hint)
    return ResolveError(f"'{name}' could not be resolved: " + "; ".join(skipped), hint=last.hint)


_RESOLVERS: dict[str, Callable[[_Request], ResolvedModel]] = {
    "local": _resolve_local_ref, "hub": _resolve_hub_ref, "ollama": _resolve_ollama_ref,
    "lmstudio": _resolve_lmstudio_ref, "alias": _resolve_alias,
}


def _group(entries: list[FileEntry], load_headers: bool) -> Grouping:
    """Files into variants; when only "projectors" are there (by name), what they are is read."""
    grouping = group_files(entries)
    if not grouping.variants and grouping.projectors and load_headers:
        return group_files(entries, name_projectors=False)
    return grouping


def _select_tag(groups: list[VariantGroup], tag: str | None, where: str) -> list[VariantGroup]:
    return groups if tag is None else [select_tagged([g.quant for g in groups], tag, where, groups)]


def _resolve_hub(ref: str, repo: str, rev: str | None, tag: str | None, load_headers: bool,
                 *, file: str | None = None, listing: hub.RepoListing | None = None) -> ResolvedModel:
    cfg = hub.NetConfig.from_env()
    cache = default_cache()
    listing = listing or hub.get_listing(repo, rev, cache=cache, cfg=cfg)
    entries = [FileEntry(f.path, f.size, f.oid) for f in listing.files]
    where = f"{repo}" + (f"@{rev}" if rev else "")
    grouping, explicit = _hub_grouping(entries, file, load_headers)
    if not grouping.variants:
        raise _no_models(where, grouping, _gguf_repo_hint(repo))
    groups = grouping.variants if file is None or explicit else _owning(grouping.variants, file, where)
    model = _hub_model(ref, repo, listing, _select_tag(groups, tag, where), grouping, tag, rev)
    if load_headers:
        _fill_hub_headers(model, listing, cache, cfg, partial_offline=tag is None and file is None, explicit=explicit)
    return model


def _hub_model(ref: str, repo: str, listing: hub.RepoListing, groups: list[VariantGroup], grouping: Grouping,
               tag: str | None, rev: str | None) -> ResolvedModel:
    return ResolvedModel(
        ref=ref, source="hub", repo=repo, revision=listing.commit,
        variants=[Variant(g.quant, [f.path for f in g.files], g.size_bytes) for g in groups],
        mmproj=[ProjectorFile(p.path, p.size) for p in grouping.projectors],
        requested_quant=normalize_tag(tag) if tag else None, revision_name=rev or "main",
        problems=list(listing.skipped) + list(grouping.problems),
    )


def _hub_grouping(entries: list[FileEntry], file: str | None, load_headers: bool) -> tuple[Grouping, bool]:
    """(grouping, explicit): a file named like a projector, asked for by name, is grouped as a
    model candidate and its content decides (explicit)."""
    if file is not None and is_projector(file) and any(e.path == file for e in entries):
        return _named_file_grouping(entries, file), True
    return _group(entries, load_headers), False


def _named_file_grouping(entries: list[FileEntry], file: str) -> Grouping:
    """The named file as the one model candidate; the other projectors as companions."""
    named = group_files([e for e in entries if e.path == file], name_projectors=False)
    others = [p for p in group_files(entries).projectors if p.path != file]
    return Grouping(variants=named.variants, projectors=others)


def _gguf_repo_hint(repo: str) -> str:
    hint = "memfit reads GGUF files; look for a GGUF repo of this model"
    if "gguf" not in repo.lower():
        hint += f" (often named {repo.split('/')[-1]}-GGUF, e.g. by unsloth or bartowski)"
    return hint


def _owning(groups: list[VariantGroup], file: str, where: str) -> list[VariantGroup]:
    """The variant a file named in a Hub URL belongs to."""
    owning = [g for g in groups if any(f.path == file for f in g.files)]
    if not owning:
        raise ResolveError(f"{file} is not a GGUF model file of {where}",
                           hint="available: " + ", ".join(g.quant for g in groups))
    return owning


def _fill_hub_headers(model: ResolvedModel, listing: hub.RepoListing, cache: Cache, cfg: hub.NetConfig, *,
                      partial_offline: bool, explicit: bool) -> None:
    by_path = {f.path: f for f in listing.files}

    def loader(path: str, hints: Hints) -> Callable[[], GGUFHeader]:
        return lambda: _hub_header(listing, by_path[path], cache, cfg, hints)

    _fill_headers(model, loader, cfg.workers, partial_offline=partial_offline, explicit=explicit,
                  peek=lambda path: _cached_hub_header(listing, by_path[path], cache))


def _resolve_local(ref: str, path: Path, tag: str | None, load_headers: bool) -> ResolvedModel:
    path = path.resolve()
    if not path_is(Path.is_dir, path) and not path_is(Path.is_file, path):
        raise ResolveError(f"not a regular file or directory: {ref}",
                           hint="give a .gguf file (or a directory of them); devices, pipes and sockets cannot be read")
    is_dir = path.is_dir()
    grouping = _directory_grouping(path, load_headers) if is_dir else _file_grouping(path)
    model = _local_model(ref, path, path if is_dir else path.parent, grouping, tag)
    if load_headers:
        _fill_local_headers(model, path, is_dir, tag)
    return model


def _local_model(ref: str, path: Path, base: Path, grouping: Grouping, tag: str | None) -> ResolvedModel:
    groups = _select_tag(grouping.variants, tag, str(path))
    return ResolvedModel(
        ref=ref, source="local", repo=None, revision=None,
        variants=[Variant(g.quant, [str(base / f.path) for f in g.files], g.size_bytes) for g in groups],
        mmproj=[ProjectorFile(str(base / p.path), p.size) for p in grouping.projectors],
        requested_quant=normalize_tag(tag) if tag else None, problems=list(grouping.problems),
        local_path=str(path),
    )


def _directory_grouping(path: Path, load_headers: bool) -> Grouping:
    grouping = _group(_scan_dir(path), load_headers)
    if not grouping.variants:
        raise _no_models(str(path), grouping, "point at a .gguf file or a directory that contains some")
    return grouping


def _file_grouping(path: Path) -> Grouping:
    """One file named by the user: a model, unless its content is a projector; its sibling shards
    come along, no companions from its directory."""
    if is_gguf(path.name):
        grouping = group_files(_shard_siblings(path), name_projectors=False)
    else:
        # named explicitly: read it whatever its name (the GGUF magic decides, with a clear error)
        _log().info("%s does not end in .gguf; reading it as GGUF anyway", path)
        entry = FileEntry(path.name, path.stat().st_size)
        grouping = Grouping(variants=[VariantGroup(quant=quant_tag_from_name(path.name + ".gguf") or path.stem,
                                                   files=[entry], stem=path.stem)])
    if grouping.problems or not grouping.variants:
        raise ResolveError(f"{path.name}: " + "; ".join(grouping.problems or ["not a GGUF model file"]),
                           hint=_SHARD_HINT)
    grouping.projectors = []
    return grouping


def _fill_local_headers(model: ResolvedModel, path: Path, is_dir: bool, tag: str | None) -> None:
    cache = default_cache()

    def loader(p: str, hints: Hints) -> Callable[[], GGUFHeader]:
        return lambda: _local_header(Path(p), cache, hints)

    if is_dir:
        _drop_unreadable(model, path, cache)
    _fill_headers(model, loader, max(1, int(env_float("MEMFIT_HUB_WORKERS", 8))), explicit=not is_dir)  # NetConfig's
    if is_dir and tag is None:
        _check_one_model(model, path)


def _drop_unreadable(model: ResolvedModel, base: Path, cache: Cache) -> None:
    """A directory with a broken download next to good files: leave the broken variant out with a
    note (a single file, or the only variant, still fails with the reader's error)."""
    errors = [_unreadable(v.files, base, cache, model.problems) for v in model.variants]
    kept = [v for v, e in zip(model.variants, errors) if e is None]
    first = next((e for e in errors if e is not None), None)
    if not kept and first is not None:
        raise first
    model.variants = kept
    model.mmproj = [p for p in model.mmproj if _unreadable([p.name], base, cache, model.problems) is None]


def _unreadable(files: list[str], base: Path, cache: Cache, problems: list[str]) -> GGUFError | None:
    """The reader's error for the first of `files` it rejects (noted in `problems`), else None."""
    try:
        for f in files:
            _local_header(Path(f), cache)
    except GGUFError as e:
        problems.append(f"skipped {Path(files[0]).relative_to(base).as_posix()}: {e.message}")
        return e
    return None


def _check_one_model(model: ResolvedModel, path: Path) -> None:
    """The variants of a directory must be quants of one model: a folder of unrelated models
    (~/models) would otherwise be planned as if they were one model's quants."""
    kinds: dict[tuple, list[str]] = {}
    for v in model.variants:
        if v.headers is not None:
            kinds.setdefault(_shape(v.headers), []).append(v.quant)
    if len(kinds) > 1:
        raise ResolveError(f"{path} holds {len(kinds)} different models ({_kinds_listed(kinds)})",
                           hint="point at one .gguf file, or pick one with --quant, or keep one model per directory")


def _kinds_listed(kinds: dict[tuple, list[str]]) -> str:
    """The first few models of a mixed directory, each with a few of its quants."""
    shown = list(kinds.items())[:4]
    listed = "; ".join(f"{one_line(k[0], 40)}: {', '.join(q[:3])}{' ...' if len(q) > 3 else ''}" for k, q in shown)
    if len(kinds) > len(shown):
        listed += f"; and {len(kinds) - len(shown)} more"
    return listed


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
            if path_is(Path.is_dir, c) and depth < max_depth:
                try:
                    walk(c, depth + 1)
                except ResolveError as e:  # an unreadable subfolder: skip it, the rest may do
                    _log().info("%s", e.message)
            elif c.name.lower().endswith(".gguf") and path_is(Path.is_file, c):
                try:
                    out.append(FileEntry(c.relative_to(root).as_posix(), c.stat().st_size))
                except OSError as e:
                    _log().info("skipped %s: %s", c, e.strerror or e)

    walk(root, 0)
    return out


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
    variants, paths = _wanted(model, quants)
    headers = _peeked(paths, peek)
    reads = _Reads(loader, workers, offline_tolerant=partial_offline and hub.is_offline())
    reads.load(variants, paths, headers)
    if reads.misses:
        _leave_out_uncached(model, variants, headers, reads.misses[0])
        variants = [v for v in variants if all(p in headers for p in v.files)]
    _merge_variants(model, variants, headers, singled_out=model.requested_quant is not None or quants is not None)
    _merge_projectors(model, headers)
    _sort_by_content(model, variants, explicit=explicit, all_variants=quants is None)


def _wanted(model: ResolvedModel, quants: set[str] | None) -> tuple[list[Variant], list[str]]:
    """The variants whose headers are wanted (all, or `quants`) and every file to read for them
    and the projectors."""
    variants = [v for v in model.variants if quants is None or v.quant in quants]
    return variants, [p for v in variants for p in v.files] + [p.name for p in model.mmproj]


def _peeked(paths: list[str], peek: Callable[[str], GGUFHeader | None] | None) -> dict[str, GGUFHeader]:
    """The headers a cache already holds (no thread pool, no reads)."""
    if peek is None:
        return {}
    found = {p: peek(p) for p in paths}
    return {p: h for p, h in found.items() if h is not None}


class _Reads:
    """Header reads of one model: a seed first (its tokenizer gives the others skip hints), the
    rest in parallel; offline misses collected instead of raised when the caller tolerates them."""

    def __init__(self, loader: Loader, workers: int, *, offline_tolerant: bool) -> None:
        self.loader = loader
        self.workers = workers
        self.offline_tolerant = offline_tolerant
        self.misses: list[hub.OfflineMissError] = []

    def task(self, path: str, hints: Hints) -> Callable[[], GGUFHeader | None]:
        task = self.loader(path, hints)
        if not self.offline_tolerant:
            return task

        def run() -> GGUFHeader | None:
            try:
                return task()
            except hub.OfflineMissError as e:
                self.misses.append(e)
                return None
        return run

    def load(self, variants: list[Variant], paths: list[str], headers: dict[str, GGUFHeader]) -> None:
        seed, hints = self._seed(variants, paths, headers)
        rest = [p for p in paths if p not in headers and p != seed]
        for p, h in zip(rest, run_parallel([self.task(p, hints) for p in rest], self.workers)):
            if h is not None:
                headers[p] = h

    def _seed(self, variants: list[Variant], paths: list[str], headers: dict[str, GGUFHeader]) -> tuple[str | None, Hints]:
        """The smallest variant's first shard, read first; its skip hints unless they would save
        less than the round trips they cost (a small tokenizer)."""
        if len(variants) <= 1 or all(p in headers for p in paths):
            return None, None
        seed = min(variants, key=lambda v: v.size_bytes).files[0]
        first = headers.get(seed) or self.task(seed, None)()
        if first is None:
            return seed, None
        headers[seed] = first
        return seed, _worth_hinting(skip_hints_from(first))


def _worth_hinting(hints: dict[str, SkipHint]) -> Hints:
    """Skip hints that spare at least MIN_HINTED_BYTES, else none."""
    return hints if sum(h.nbytes for h in hints.values()) >= MIN_HINTED_BYTES else None


def _merge_variants(model: ResolvedModel, variants: list[Variant], headers: dict[str, GGUFHeader], *,
                    singled_out: bool) -> None:
    """Each variant's shards merged and checked. One broken variant among several the user did
    not single out is left out with a note (like an unreadable file in a directory); a variant
    asked for, or the only one, fails."""
    failed = _failed_merges(variants, headers)
    if failed and (singled_out or len(failed) == len(variants)):
        raise failed[0][1]
    for v, e in failed:
        model.variants.remove(v)
        variants.remove(v)
        model.problems.append(f"skipped {e.message}")


def _failed_merges(variants: list[Variant], headers: dict[str, GGUFHeader]) -> list[tuple[Variant, GGUFError]]:
    """Merge each variant's shards into its headers; the variants that failed, with why."""
    failed: list[tuple[Variant, GGUFError]] = []
    for v in variants:
        try:
            v.headers = _merge([headers[p] for p in v.files], _label(v.files[0], len(v.files)))
        except GGUFError as e:  # a broken split set or an implausible header
            failed.append((v, e))
    return failed


def _merge_projectors(model: ResolvedModel, headers: dict[str, GGUFHeader]) -> None:
    for p in list(model.mmproj):
        try:
            p.headers = _merge([headers[p.name]], _label(p.name, 1))
        except GGUFError as e:  # a broken projector never costs the model its plan
            model.mmproj.remove(p)
            model.problems.append(f"skipped {e.message}")


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
        _projector_from_variants(model, v, explicit)
    shapes = {_shape(v.headers) for v in model.variants if v.headers is not None}
    for p in [p for p in model.mmproj if p.headers is not None and not is_projector_header(p.headers.metadata)]:
        _model_from_projectors(model, p, shapes, all_variants)
    model.variants.sort(key=lambda v: (v.size_bytes, v.quant))
    model.mmproj.sort(key=lambda p: p.name)
    if not model.variants:
        raise _only_projectors(model)


def _only_projectors(model: ResolvedModel) -> ResolveError:
    names = ", ".join(_label(p.name, 1) for p in model.mmproj[:3])
    return ResolveError(f"no GGUF model files in {model._where()}: only vision projectors ({names}), "
                        "which are loaded next to a model",
                        hint="add the model GGUF (memfit plans the projector as its companion)")


def _projector_from_variants(model: ResolvedModel, v: Variant, explicit: bool) -> None:
    """A "variant" that holds a projector: a companion (a single file), never a model."""
    name = _label(v.files[0], len(v.files))
    if explicit:
        raise ResolveError(f"{name} is a vision projector (mmproj), not a model",
                           hint="give the model file; memfit plans the projector as its companion")
    model.variants.remove(v)
    if len(v.files) == 1:
        model.mmproj.append(ProjectorFile(v.files[0], v.size_bytes, v.headers))
        if not is_projector(v.files[0]):
            model.problems.append(f"{name} holds a vision projector (clip): used as a projector, not as a model")


def _model_from_projectors(model: ResolvedModel, p: ProjectorFile, shapes: set[tuple[object, ...]],
                           all_variants: bool) -> None:
    """A "projector" that holds a text model: a variant when no quant was asked for and it is the
    same model as the others, else left out; said either way."""
    assert p.headers is not None
    model.mmproj.remove(p)
    stated = (f"{_label(p.name, 1)} is named like a vision projector but holds a "
              f"{one_line(p.headers.architecture or 'unknown', 40)} model")
    same = not shapes or _shape(p.headers) in shapes
    if not (model.requested_quant is None and all_variants and same):
        model.problems.append(stated + ": not used as a projector")
        return
    model.variants.append(Variant(_new_label(model, p.name), [p.name], p.size_bytes, headers=p.headers))
    model.problems.append(stated + ": planned as a model")


def _new_label(model: ResolvedModel, name: str) -> str:
    """A file's quant tag as a variant's label, or its stem when a variant already has that tag."""
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    quant = quant_tag_from_name(name) or stem
    return stem if any(tag_key(v.quant) == tag_key(quant) for v in model.variants) else quant


# what a path that is not a regular file is, by its mode
_FILE_KINDS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a pipe"), (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
)


def _not_a_file(mode: int) -> str:
    return next((what for is_kind, what in _FILE_KINDS if is_kind(mode)), "not a file")


def load_projector_file(path: str, flag: str = "--mmproj") -> tuple[ModelHeaders, int]:
    """A vision projector named on the command line: (its checked headers, its size in bytes).
    Usage errors (exit 2) for a path that is missing, not a regular file (a pipe, a device, a
    directory) or not a projector by content; the reader's and the plausibility errors otherwise."""
    from .errors import InputError

    p = Path(path).expanduser()
    st = _projector_stat(p, path, flag)
    headers = _merge([parse_header(LocalFileSource(p))], _label(str(p), 1))
    if not is_projector_header(headers.metadata):
        arch = one_line(headers.architecture or "unknown", 40)
        raise InputError(f"{flag} {path}: not a vision projector (it holds a {arch} model)",
                         hint="pass the model as MODEL and its mmproj-*.gguf (general.architecture = clip) here")
    return headers, st.st_size


def _projector_stat(p: Path, path: str, flag: str) -> os.stat_result:
    """The stat of a projector path named on the command line; usage errors for a missing path
    or one that is not a regular file."""
    from .errors import InputError

    hint = f"use {flag} auto or a path to an mmproj GGUF"
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(f"{flag} {path}: no such file", hint=hint) from None
    except OSError as e:
        raise InputError(f"{flag} {path}: cannot read it ({e.strerror or e})", hint=hint) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{flag} {path}: {_not_a_file(st.st_mode)}, not a regular file (memfit reads a "
                         "projector's header from a file)", hint=f"give the path of the mmproj .gguf file, or {flag} auto")
    return st


def _leave_out_uncached(model: ResolvedModel, variants: list[Variant], headers: dict[str, GGUFHeader],
                        first_miss: hub.OfflineMissError) -> None:
    """Offline: drop what the cache cannot answer, say which, fail only when nothing is left."""
    missing = [v for v in variants if any(p not in headers for p in v.files)]
    if len(missing) == len(variants):
        raise first_miss
    if missing:
        model.variants = [v for v in model.variants if v not in missing]
        model.problems.append(f"offline (HF_HUB_OFFLINE): planned the {len(variants) - len(missing)} quant(s) whose "
                              f"headers are cached; not cached: {', '.join(v.quant for v in missing)} (run once "
                              "online to add them)")
    _leave_out_uncached_projectors(model, headers)


def _leave_out_uncached_projectors(model: ResolvedModel, headers: dict[str, GGUFHeader]) -> None:
    gone = [p for p in model.mmproj if p.name not in headers]
    if gone:
        model.mmproj = [p for p in model.mmproj if p.name in headers]
        model.problems.append(f"offline: vision projector {', '.join(p.name for p in gone)} not cached, left out")


def load_headers(model: ResolvedModel, quants: list[str] | None = None) -> ResolvedModel:
    """Fill headers of a model resolved with load_headers=False (all variants, or `quants`)."""
    wanted = None if quants is None else {model.variant(q).quant for q in quants}
    if model.source == "ollama":
        from .ollama import fill_headers

        return fill_headers(model)
    cfg = hub.NetConfig.from_env()
    _fill_headers(model, _loader(model, default_cache(), cfg), cfg.workers, wanted)
    return model


def _loader(model: ResolvedModel, cache: Cache, cfg: hub.NetConfig) -> Loader:
    """How a file of a Hub or local model is read."""
    if model.source == "hub":
        assert model.repo is not None and model.revision is not None
        listing = hub.get_listing(model.repo, model.revision, cache=cache, cfg=cfg)
        by_path = {f.path: f for f in listing.files}

        def loader(path: str, hints: Hints) -> Callable[[], GGUFHeader]:
            return lambda: _hub_header(listing, by_path[path], cache, cfg, hints)
    else:

        def loader(path: str, hints: Hints) -> Callable[[], GGUFHeader]:
            return lambda: _local_header(Path(path), cache, hints)
    return loader


__all__ = ["ResolvedModel", "Variant", "ProjectorFile", "ParsedRef", "QuantNotFoundError", "resolve",
           "parse_reference", "load_aliases", "load_headers", "load_projector_file", "HubError"]
