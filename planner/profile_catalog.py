"""Every profile validated: the shipped ones, then the user's (a user profile replaces a shipped
one with the same id), and single files (`--device-file`).

The machine probe recognises a machine against this catalog; `memfit devices` and `--device ID`
use the quicker summaries of planner.profile_files instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DeviceError
from .profile_files import find_named, shipped_profile_files, user_profile_files
from .profile_parse import parse_profile

if TYPE_CHECKING:
    from .device_schema import DeviceProfile


@dataclass(frozen=True)
class ProfileEntry:
    profile: DeviceProfile
    origin: str  # "shipped" | "user" | "file" | "probe"
    path: str


@dataclass
class Catalog:
    entries: dict[str, ProfileEntry] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # user files that failed to load (one line each)

    def ids(self) -> list[str]:
        return sorted(self.entries)

    def find(self, ref: str) -> ProfileEntry | None:
        return find_named(ref, self.entries, lambda e: e.profile.aliases)

    def names(self) -> list[str]:
        out = list(self.entries)
        for entry in self.entries.values():
            out.extend(a.lower() for a in entry.profile.aliases)
        return out

    def add_shipped(self, where: str, content: bytes) -> None:
        """A shipped profile: a broken one, or an id used twice, is a bug and raises."""
        prof = parse_profile(content, where)
        if prof.id in self.entries:
            raise DeviceError(f"{where}: id {prof.id!r} is also used by {self.entries[prof.id].path}")
        self.entries[prof.id] = ProfileEntry(prof, "shipped", where)

    def add_user(self, where: str, content: bytes | OSError) -> None:
        """A user's profile: one that cannot be read or does not validate goes to `problems`, so
        that one typo does not hide every other profile."""
        if isinstance(content, OSError):
            self.problems.append(f"cannot read device file {where}: {content.strerror or content}")
            return
        try:
            prof = parse_profile(content, where)
        except DeviceError as e:
            self.problems.append(e.message)
            return
        self.entries[prof.id] = ProfileEntry(prof, "user", where)


def load_catalog(*, include_user: bool = True) -> Catalog:
    """Shipped profiles, then the user's, every one validated."""
    cat = Catalog()
    for where, content in shipped_profile_files():
        cat.add_shipped(where, content)
    for where, user_content in user_profile_files() if include_user else ():
        cat.add_user(where, user_content)
    return cat


def load_file(path: str | Path) -> DeviceProfile:
    """A profile from a TOML file (`--device-file`), validated."""
    p = Path(path).expanduser()
    try:
        content = p.read_bytes()
    except FileNotFoundError:
        raise DeviceError(f"device file not found: {p}") from None
    except OSError as e:
        raise DeviceError(f"cannot read device file {p}: {e.strerror or e}") from None
    return parse_profile(content, str(p))
