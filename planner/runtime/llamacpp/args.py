"""Which command-line flags a llama.cpp build takes (planner/data/llama_args.toml, read from
common/arg.cpp of published builds by validation/llama_args/extract.py), so every flag memfit
prints exists in the build it prints for: b11003 and later refuse --no-mmap (-lm/--load-mode
replaced it in b10488)."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from typing import Any
from ... import data as _data


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    return tomllib.loads(_data.read("llama_args.toml").decode("utf-8"))


def known_builds() -> list[int]:
    return list(_table()["builds"])


def newest_build() -> int:
    return max(known_builds())


def accepts(flag: str, build: int | None) -> bool | None:
    """Whether `build` (None = the newest known) takes `flag`: True/False where the table is sure,
    None for a flag it has never seen or a build between the last build with the flag and the first
    without it (either answer could be right there)."""
    build = newest_build() if build is None else build
    entry = _table()["flags"].get(flag)
    if entry is None:
        return None
    since = int(entry["since"])
    if entry.get("gone") is None:
        return True if build >= since else _before_known(build, since)
    return _dropped_later(build, since, int(entry["gone"]))


def _dropped_later(build: int, since: int, gone: int) -> bool | None:
    """A flag that build `gone` no longer has: True up to the known build before it, False from it."""
    if since <= build <= _previous(gone):
        return True
    return False if build >= gone else _before_known(build, since)


def _before_known(build: int, since: int) -> bool | None:
    """A build before the first known build with the flag: False from the known build before that
    one down, None in between (and for a flag the oldest known build already has)."""
    if build >= since or since <= min(known_builds()):
        return None
    return None if build > _previous(since) else False


def _previous(build: int) -> int:
    earlier = [b for b in known_builds() if b < build]
    return max(earlier) if earlier else build


def no_mmap_flag(build: int | None) -> list[str]:
    """The words that turn mmap off for this build: `-lm none` where --load-mode exists (b10488
    and later), else `--no-mmap`."""
    return ["-lm", "none"] if accepts("--load-mode", build) else ["--no-mmap"]


def unknown_flags(words: list[str], build: int | None) -> list[str]:
    """The flags among `words` that `build` does not take (or that no known build has)."""
    return [w for w in words if w.startswith("-") and not w.lstrip("-").isdigit() and accepts(w, build) is not True]
