"""What to offer for a device reference no profile answers: the profiles of the chip it names, or
the ids closest to it in spelling.

Chip words come from planner/data/device_families.toml (the words people use for a chip or a
family), so `--device strix-halo` lists the Strix Halo profiles, never a slower chip whose id
happens to look alike.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from .errors import DeviceError
from .profile_files import ProfileSummary
from .profile_parse import parse_toml
from .units import GIB

_TOKEN_SPLIT = re.compile(r"[^a-z0-9]+")
_RAM_TOKEN = re.compile(r"^(\d+)(g|gb|gib)?$")
# bare numbers read as RAM sizes (GiB) in a device reference; chip numbers (395, 370, 4090) are not
_RAM_SIZES_GIB = frozenset({16, 24, 32, 36, 48, 64, 96, 128, 192, 256, 512})
CHIP_MAX_SUGGESTIONS = 8  # a family has a handful of profiles: offer them all, up to this many
CLOSE_SPELLING = 0.5  # difflib ratio from which an id counts as a likely misspelling


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN_SPLIT.split(text.lower()) if t]


@dataclass(frozen=True)
class ChipWords:
    """One row of planner/data/device_families.toml: the words that name a chip (or a family)."""

    family: str
    chip: str  # substring of the profiles' `chip` field; "" = the whole family
    words: tuple[tuple[str, ...], ...]  # each word as its tokens

    def covers(self, p: ProfileSummary) -> bool:
        return p.family == self.family and self.chip.lower() in p.chip.lower()

    def longest_word_in(self, tokens: list[str]) -> int:
        """Tokens in the longest of this chip's words that `tokens` contains as a run (0: none)."""
        return max((len(w) for w in self.words if _has_run(tokens, w)), default=0)

    def prefix_score(self, tokens: list[str]) -> int:
        """How many tokens of 3+ letters begin one of this chip's words."""
        return sum(any(len(t) >= 3 and w[0].startswith(t) for w in self.words) for t in tokens)


@lru_cache(maxsize=1)
def chip_words() -> tuple[ChipWords, ...]:
    from .data import read

    raw = read("device_families.toml")
    data = parse_toml(raw, "planner/data/device_families.toml")
    return tuple(ChipWords(str(c["family"]), str(c.get("chip", "")), tuple(tuple(_tokens(w)) for w in c["words"]))
                 for c in data.get("chips", []))


def _has_run(tokens: list[str], run: tuple[str, ...]) -> bool:
    n = len(run)
    return n > 0 and any(tuple(tokens[i:i + n]) == run for i in range(len(tokens) - n + 1))


def _top_scorers(scored: list[tuple[int, ChipWords]]) -> list[ChipWords]:
    """The chips with the highest positive score, in table order."""
    top = max((score for score, _ in scored), default=0)
    return [c for score, c in scored if top and score == top]


def chips_named(ref: str) -> list[ChipWords]:
    """The chips a device reference names: the entries whose longest word appears in it as whole
    words (`strix-halo`, `ai-max-395`, `m4-max`, `4090`); failing that, the entries with the most
    tokens of 3+ letters that begin one of their words (`strix` -> Strix Halo and Strix Point,
    `rtx-409` -> RTX 40)."""
    tokens = _tokens(ref)
    hits = _top_scorers([(c.longest_word_in(tokens), c) for c in chip_words()])
    if hits or not tokens:
        return hits
    return _top_scorers([(c.prefix_score(tokens), c) for c in chip_words()])


def _ram_wanted(ref: str) -> int | None:
    """A RAM size in the reference (`strix-halo-64g`, `m4-max-128`) in bytes, if any."""
    for t in _tokens(ref):
        m = _RAM_TOKEN.match(t)
        if m and (m.group(2) or int(m.group(1)) in _RAM_SIZES_GIB):
            return int(m.group(1)) * GIB
    return None


def _closeness(ref: str, p: ProfileSummary) -> float:
    key = ref.strip().lower()
    return max(difflib.SequenceMatcher(None, key, name).ratio() for name in p.names())


def _with_ram(pool: list[ProfileSummary], ram: int | None) -> list[ProfileSummary]:
    """Only the profiles with the RAM asked for, when there are any."""
    exact = [p for p in pool if ram is not None and p.ram_bytes == ram]
    return exact or pool


def _chip_profiles(ref: str, chips: list[ChipWords], profs: list[ProfileSummary], n: int) -> list[str]:
    """The named chips' profiles, all of them up to CHIP_MAX_SUGGESTIONS: only those with the RAM
    the reference mentions when there are any, else those first."""
    ram = _ram_wanted(ref)
    pool = _with_ram([p for p in profs if any(c.covers(p) for c in chips)], ram)
    pool.sort(key=lambda p: (ram is not None and p.ram_bytes != ram, p.family, p.ram_bytes, -_closeness(ref, p), p.id))
    return [p.id for p in pool[:max(n, CHIP_MAX_SUGGESTIONS)]]


def _close(ref: str, profs: list[ProfileSummary]) -> list[ProfileSummary]:
    """The profiles close in spelling, closest first; failing any, those whose id contains every
    token ("395 64" -> ai-max-395-64g)."""
    scored = sorted(((_closeness(ref, p), p) for p in profs), key=lambda x: (-x[0], x[1].id))
    return [p for score, p in scored if score >= CLOSE_SPELLING] or _containing_tokens(ref, profs)


def _containing_tokens(ref: str, profs: list[ProfileSummary]) -> list[ProfileSummary]:
    tokens = _tokens(ref)
    return [p for p in profs if all(t in p.id for t in tokens)] if tokens else []


def _spelled_like(ref: str, profs: list[ProfileSummary], n: int) -> list[str]:
    """The ids closest in spelling, the best match's family first."""
    close = _close(ref, profs)
    if not close:
        return []
    first = close[0].family
    ordered = sorted(close, key=lambda p: p.family != first)  # stable: closeness order within each group
    return [p.id for p in ordered[:n]]


def suggest_devices(ref: str, profiles: Iterable[ProfileSummary], n: int = 4) -> tuple[list[str], list[ChipWords]]:
    """Profile ids to offer for an unknown reference, and the chips it names.

    A reference that names a chip gets only that chip's profiles; one that names no chip gets the
    closest ids by spelling. A chip without a shipped profile gets no suggestions at all."""
    profs = list(profiles)
    chips = chips_named(ref)
    if chips:
        return _chip_profiles(ref, chips, profs, n), chips
    return _spelled_like(ref, profs, n), []


def _unknown_words(ref: str, ids: list[str], chips: list[ChipWords]) -> tuple[str, str]:
    """(message, hint) for an unknown reference: a chip name, a chip with no profile, or a typo."""
    tokens = tuple(_tokens(ref))
    if ids and any(tokens in c.words for c in chips):
        return (f"'{ref}' names a chip, not one device: pick the profile with your RAM and form factor",
                f"{', '.join(ids)} (see `memfit devices`), or --device auto on the machine itself")
    if chips and not ids:
        return _no_family_profile(ref, chips)
    return (f"unknown device {ref!r}",
            (f"did you mean {', '.join(ids)}? " if ids else "")
            + "run `memfit devices` for the list, or pass --device-file FILE / --device auto")


def _no_family_profile(ref: str, chips: list[ChipWords]) -> tuple[str, str]:
    """A chip memfit knows of, with no profile shipped for its family."""
    names = " / ".join(sorted({c.family for c in chips}))
    return (f"unknown device {ref!r}: no shipped profile for the {names} family",
            "run --device auto on that machine, or describe it with --device-file FILE (docs/devices.md)")


def unknown_device_error(ref: str, profiles: Iterable[ProfileSummary], problems: list[str] | None = None) -> DeviceError:
    ids, chips = suggest_devices(ref, profiles)
    message, hint = _unknown_words(ref, ids, chips)
    if problems:
        hint += f" ({len(problems)} user profile(s) failed to load: {problems[0]})"
    return DeviceError(message, hint=hint)
