"""One profile's text -> a validated DeviceProfile; every failure is one line naming the file and
the field.

A module of its own so that the listing (planner.profile_files, which validates the user's files)
and the catalog (planner.profile_catalog) share it without importing each other. Importing it is
cheap: tomllib only; pydantic and the schema load on the first parse_profile call.
"""

from __future__ import annotations

import tomllib
from typing import TYPE_CHECKING, Any, Iterable

from .errors import DeviceError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from .device_schema import DeviceProfile

PROFILE_HINT = "see docs/devices.md 'Adding a device profile' for a commented example"
SCHEMA_HINT = "see docs/devices.md 'Adding a device profile' for the fields"


def parse_toml(content: bytes | str, where: str) -> dict[str, Any]:
    """A profile's TOML as a dict; a syntax error is one DeviceError line naming the file."""
    text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DeviceError(f"{where}: TOML syntax error: {e}", hint=PROFILE_HINT) from None


def _loc(loc: Iterable[object]) -> str:
    parts: list[str] = []
    for p in loc:
        parts.append(f"[{p}]" if isinstance(p, int) else ("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


# pydantic error types whose own message would not help someone editing a profile by hand
_PLAIN_MESSAGES = {
    "extra_forbidden": "unknown field (check the spelling against docs/devices.md)",
    "missing": "required field is missing",
}


def validation_line(where: str, err: ValidationError) -> str:
    """The first schema error as `where: field.path: message (and N more problems)`."""
    errors = err.errors()
    first = errors[0]
    msg = _PLAIN_MESSAGES.get(str(first.get("type")), first.get("msg", "invalid"))
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{where}: {_loc(first.get('loc', ()))}: {msg}{more}"


def parse_profile(content: bytes | str, where: str) -> DeviceProfile:
    """Parse and validate one profile; every failure is a one-line DeviceError naming file and field."""
    from pydantic import ValidationError

    from .device_schema import DeviceProfile

    data = parse_toml(content, where)
    try:
        return DeviceProfile.model_validate(data)
    except ValidationError as e:
        raise DeviceError(validation_line(where, e), hint=SCHEMA_HINT) from None
