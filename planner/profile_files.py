"""Where device profiles live, and a quick summary of each without the pydantic schema.

Why: `memfit devices` lists ids, names, RAM and carve-out options, and `--device ID` needs to find
one file among ~20. Importing the schema and validating every shipped profile costs more than a
whole start should (~60 ms). So listing and lookup read the TOML and take only the fields they
show; a profile is validated (planner.devices, DeviceProfile) whenever it is *used*: planning,
estimating, `devices show`, `--device auto`. Shipped profiles are validated as a set by the test
suite (tests/test_devices.py) and cannot change after installation; user profiles are validated
when listed too, so a broken one is reported at once (the schema loads only then).

Locations, later ones overriding earlier ones with the same id:
1. shipped: the repo's profiles/ directory when running from a checkout, else the installed
   package data `planner.profiles`;
2. the user's config directory: $MEMFIT_CONFIG_DIR/profiles/*.toml, else
   $XDG_CONFIG_HOME/memfit/profiles/*.toml (~/.config/memfit/profiles/*.toml).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, TypeVar

from .errors import DeviceError
from .profile_parse import PROFILE_HINT, parse_profile, parse_toml
from .units import parse_size

if TYPE_CHECKING:
    from pathlib import Path

Origin = Literal["shipped", "user"]
T = TypeVar("T")


@dataclass(frozen=True)
class ProfileFile:
    where: str  # path for messages
    content: bytes
    origin: Origin


def _checkout_dir() -> str | None:
    """profiles/ next to planner/ in a source checkout (pyproject.toml marks the checkout). Plain
    os.path: pathlib alone costs a few ms of a start that has ~40 to spend."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    d = os.path.join(root, "profiles")
    if os.path.isfile(os.path.join(root, "pyproject.toml")) and os.path.isdir(d) and _tomls(d):
        return d
    return None


def _tomls(d: str) -> list[str]:
    try:
        return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".toml"))
    except OSError:
        return []


def checkout_profiles_dir() -> Path | None:
    from pathlib import Path

    d = _checkout_dir()
    return Path(d) if d is not None else None


def shipped_profile_files() -> list[tuple[str, bytes]]:
    """(path-for-messages, content) of every shipped profile."""
    d = _checkout_dir()
    if d is not None:
        out = []
        for path in _tomls(d):
            with open(path, "rb") as f:
                out.append((path, f.read()))
        return out
    from importlib import resources

    try:
        base = resources.files("planner.profiles")
    except (ModuleNotFoundError, TypeError):
        return []
    return [(f"planner.profiles/{p.name}", p.read_bytes())
            for p in sorted(base.iterdir(), key=lambda p: p.name) if p.name.endswith(".toml")]


def _user_profiles_path() -> str:
    env = os.environ.get("MEMFIT_CONFIG_DIR")
    if env:
        base = os.path.expanduser(env)
    else:
        xdg = os.environ.get("XDG_CONFIG_HOME")
        base = os.path.join(os.path.expanduser(xdg) if xdg else os.path.join(os.path.expanduser("~"), ".config"),
                            "memfit")
    return os.path.join(base, "profiles")


def user_config_dir() -> Path:
    """$MEMFIT_CONFIG_DIR, else $XDG_CONFIG_HOME/memfit, else ~/.config/memfit."""
    from pathlib import Path

    return Path(_user_profiles_path()).parent


def user_profiles_dir() -> Path:
    from pathlib import Path

    return Path(_user_profiles_path())


def user_profile_files() -> list[tuple[str, bytes | OSError]]:
    """(path, content or the error reading it) of the user's profiles."""
    d = _user_profiles_path()
    if not os.path.isdir(d):
        return []
    out: list[tuple[str, bytes | OSError]] = []
    for path in _tomls(d):
        try:
            with open(path, "rb") as f:
                out.append((path, f.read()))
        except OSError as e:
            out.append((path, e))
    return out


def find_named(ref: str, by_id: dict[str, T], aliases: Callable[[T], Iterable[str]]) -> T | None:
    """The entry whose id (the key) or one of whose aliases is `ref`, case-insensitive."""
    key = ref.strip().lower()
    if key in by_id:
        return by_id[key]
    return next((item for item in by_id.values() if key in (a.lower() for a in aliases(item))), None)


# --------------------------------------------------------------------------- summaries

def _bytes(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError(f"not a size: {v!r}")
    if isinstance(v, (int, float)):
        return int(v)
    return parse_size(str(v).replace(" ", ""))


@dataclass
class ProfileSummary:
    """What the listing and the lookup need from one profile (unvalidated, see module doc)."""

    id: str
    name: str
    family: str
    chip: str
    memory_architecture: str
    ram_bytes: int
    vram_bytes: int | None
    carveout_options_bytes: list[int]
    default_os: str
    oses: list[str]
    bandwidth_gbps: float
    aliases: list[str]
    origin: Origin
    path: str
    content: bytes = field(repr=False, default=b"")

    @classmethod
    def from_toml(cls, data: dict[str, Any], origin: Origin, path: str, content: bytes) -> "ProfileSummary":
        carve = data.get("carveout") or {}
        return cls(
            id=str(data["id"]), name=str(data["name"]), family=str(data.get("family", "")), chip=str(data.get("chip", "")),
            memory_architecture=str(data["memory_architecture"]), ram_bytes=int(_bytes(data["ram_bytes"]) or 0),
            vram_bytes=_bytes(data.get("vram_bytes")),
            carveout_options_bytes=sorted({int(_bytes(o) or 0) for o in carve.get("options_bytes", [])}),
            default_os=str(data["default_os"]), oses=[str(o) for o in data.get("os", {})],
            bandwidth_gbps=float(data["bandwidth_gbps"]), aliases=[str(a) for a in data.get("aliases", [])],
            origin=origin, path=path, content=content,
        )

    def names(self) -> list[str]:
        return [self.id.lower(), *(a.lower() for a in self.aliases)]


@dataclass
class Listing:
    profiles: dict[str, ProfileSummary] = field(default_factory=dict)  # id -> summary, user ones win
    problems: list[str] = field(default_factory=list)  # user files that failed to load (one line each)

    def ids(self) -> list[str]:
        return sorted(self.profiles)

    def find(self, ref: str) -> ProfileSummary | None:
        return find_named(ref, self.profiles, lambda s: s.aliases)

    def add_shipped(self, s: ProfileSummary, where: str) -> None:
        """A shipped profile: an id used twice is a bug and raises."""
        if s.id in self.profiles:
            raise DeviceError(f"{where}: id {s.id!r} is also used by {self.profiles[s.id].path}")
        self.profiles[s.id] = s

    def add_user(self, where: str, content: bytes | OSError, validate: bool) -> None:
        """A user's profile (a broken one goes to `problems`); `validate` runs the schema on it."""
        if isinstance(content, OSError):
            self.problems.append(f"cannot read device file {where}: {content.strerror or content}")
            return
        try:
            s = _summary(content, where, "user")
            if validate:
                parse_profile(content, where)  # the schema, for the user's own files only
        except DeviceError as e:
            self.problems.append(e.message)
            return
        self.profiles[s.id] = s


_TABLE_RE = re.compile(rb"^\[", re.MULTILINE)
_OS_TABLE_RE = re.compile(rb"^\[\[?os\.([a-z]+)[\].]", re.MULTILINE)  # [os.linux], [[os.linux.backends]]


def _quick_toml(content: bytes) -> dict[str, Any] | None:
    """The fields a summary needs, from the top-level keys and the [carveout] table only (a shipped
    profile is ~6 KB, mostly [[sources]]: a quarter of the parsing). None when that cut does not
    parse, and the caller parses the whole file. Only for shipped profiles, which the test suite
    checks against the full parse (tests/test_device_families.py)."""
    first = _TABLE_RE.search(content)
    part = content[:first.start()] if first else content
    i = content.find(b"\n[carveout]\n")
    if i >= 0:
        end = _TABLE_RE.search(content, i + 2)
        part += content[i:end.start() if end else len(content)]
    try:
        data = tomllib.loads(part.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    data["os"] = dict.fromkeys(m.decode() for m in _OS_TABLE_RE.findall(content))
    return data


def _summary(content: bytes, where: str, origin: Origin) -> ProfileSummary:
    quick = _quick_toml(content) if origin == "shipped" else None
    data = quick if quick is not None else parse_toml(content, where)
    try:
        return ProfileSummary.from_toml(data, origin, where, content)
    except KeyError as e:
        raise DeviceError(f"{where}: {e.args[0]}: required field is missing", hint=PROFILE_HINT) from None
    except (TypeError, ValueError, AttributeError) as e:
        msg = getattr(e, "message", None) or str(e)
        raise DeviceError(f"{where}: {msg}", hint=PROFILE_HINT) from None


def list_profiles(*, include_user: bool = True, validate_user: bool = True) -> Listing:
    """Every profile's summary: shipped, then the user's (a user profile replaces a shipped one with
    the same id). A broken shipped profile is a bug and raises; a broken user file is reported in
    `problems` so that one typo does not hide every other profile. `validate_user` runs the full
    schema over the user's files (only they can change after installation)."""
    out = Listing()
    for where, content in shipped_profile_files():
        out.add_shipped(_summary(content, where, "shipped"), where)
    for where, user_content in user_profile_files() if include_user else ():
        out.add_user(where, user_content, validate_user)
    return out
