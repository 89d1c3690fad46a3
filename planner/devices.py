"""Device profiles by reference: an id or alias, a TOML file path, or "auto" (read this machine).

Where profiles come from (planner.profile_files): shipped ones, then the user's config directory
($MEMFIT_CONFIG_DIR/profiles/*.toml, else ~/.config/memfit/profiles), later ones overriding
earlier ones with the same id; `--device-file FILE` (planner.profile_catalog.load_file) and
`load_profile("auto")`, which reads the running machine (planner.probe).

A profile is validated by the pydantic schema (DeviceProfile) whenever it is loaded here, i.e.
whenever it is used; finding it by id or alias only reads the TOML (planner.profile_files). An
unknown id is answered with the profiles of the chip it names (planner.device_suggest); the
command-line overrides are planner.device_overrides.

This module sits above the probe (which recognises a machine against the catalog), so that the
probe never imports it: planner.profile_catalog and planner.device_overrides are what it uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from .device_overrides import MAX_CARVEOUT_SHARE, OVERRIDES, apply_overrides  # noqa: F401 - re-exported
from .device_suggest import ChipWords, chip_words, chips_named, suggest_devices, unknown_device_error  # noqa: F401
from .errors import DeviceError, InputError
from .profile_catalog import Catalog, ProfileEntry, load_catalog, load_file  # noqa: F401 - re-exported
from .profile_files import (  # noqa: F401 - re-exported: where profiles live
    Listing,
    ProfileSummary,
    checkout_profiles_dir,
    list_profiles,
    shipped_profile_files,
    user_config_dir,
    user_profile_files,
    user_profiles_dir,
)
from .profile_parse import PROFILE_HINT, parse_profile, parse_toml, validation_line  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from .device_schema import DeviceProfile

AUTO = "auto"
__all__ = ["AUTO", "load_profile", "load_profiles", "apply_overrides", "OVERRIDES", "MAX_CARVEOUT_SHARE", "ChipWords",
           "chip_words", "chips_named", "suggest_devices", "unknown_device_error", "Catalog", "ProfileEntry",
           "load_catalog", "load_file", "Listing", "ProfileSummary", "checkout_profiles_dir", "list_profiles",
           "shipped_profile_files", "user_config_dir", "user_profile_files", "user_profiles_dir", "PROFILE_HINT",
           "parse_profile", "parse_toml", "validation_line"]


def _looks_like_path(ref: str) -> bool:
    return ref.lower().endswith(".toml") or os.sep in ref or "/" in ref or ref.startswith("~")


def _probed(probe_root: str | Path | None) -> DeviceProfile:
    """This machine (or a recorded tree), as `--device auto` reads it."""
    from pydantic import ValidationError

    from .probe import auto_profile

    try:
        return auto_profile(root=probe_root)
    except ValidationError as e:  # a probed value outside the schema's bounds (a broken /proc, driver)
        raise DeviceError(validation_line("this machine (--device auto)", e),
                          hint="pass a profile with --device ID (see `memfit devices`) or --device-file FILE") from None


def load_profile(ref: str, *, probe_root: str | Path | None = None) -> DeviceProfile:
    """A profile by id or alias, a TOML file path, or "auto" (read this machine); validated."""
    ref = (ref or "").strip()
    if not ref:
        raise InputError("empty device id", hint="run `memfit devices` for the list")
    if ref.lower() == AUTO:
        return _probed(probe_root)
    if _looks_like_path(ref):
        return load_file(ref)
    listing = list_profiles(validate_user=False)
    found = listing.find(ref)
    if found is None:
        raise unknown_device_error(ref, listing.profiles.values(), listing.problems)
    return parse_profile(found.content, found.path)


def load_profiles(refs: Iterable[str], device_files: Iterable[str] = ()) -> list[DeviceProfile]:
    out = [load_profile(r) for r in refs]
    out += [load_file(f) for f in device_files]
    return out
