"""The project's own error types.

Every failure a user can cause (bad file, bad reference, network, bad flag value) is raised as a
MemfitError subclass. The CLI prints `error: <message>` (plus `hint: ...` when there is one) and
exits non-zero; nothing else may escape as a traceback.
"""

from __future__ import annotations


class MemfitError(Exception):
    """Base class. `hint` tells the user what to do next (one line, optional)."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class GGUFError(MemfitError):
    """Malformed, truncated, hostile or unsupported GGUF data."""

    kind = "gguf"


class ResolveError(MemfitError):
    """A model reference that names nothing we can find (path, repo, alias, quant tag)."""

    kind = "resolve"


class HubError(MemfitError):
    """The Hub (or the network) refused or failed: gated, 404, offline, timeouts, 5xx."""

    kind = "hub"


class RepoNotFoundError(HubError):
    """No such repo (or private without access): an alias may fall through to its next repo."""


class GatedRepoAccessError(HubError):
    """A gated repo this token (or no token) may not read."""


class OfflineMissError(HubError):
    """HF_HUB_OFFLINE is set and what we need is not cached."""


class FileChangedError(HubError):
    """A file's bytes do not belong to the listing it was read for (size or ETag changed between
    the listing and the read, or between two ranges of one read): reported, never mixed."""


class RegistryError(MemfitError):
    """The Ollama registry (or the network to it) refused or failed, or the offline switch is on
    and what is needed is not cached."""

    kind = "registry"


class CacheError(MemfitError):
    """The header cache could not be read or written (never raised for a corrupt entry:
    a corrupt entry is discarded and refetched)."""

    kind = "cache"


class EstimateError(MemfitError):
    """The estimator cannot size this model at all (not even conservatively)."""

    kind = "estimate"


class DeviceError(MemfitError):
    """Unknown device id, invalid profile file or override."""

    kind = "device"


class DeviceFlagError(DeviceError):
    """A device flag that does not apply to the chosen device or leaves it unusable (--carveout on
    a discrete card, a carve-out that leaves the OS nothing, --os the device does not run):
    a usage error (exit 2), still of kind "device"."""

    exit_code = 2


class InputError(MemfitError):
    """A bad value for a flag (context, size, quant name...). Exit code 2 like click's usage errors."""

    exit_code = 2
    kind = "usage"


# --------------------------------------------------------------------------- internal signals
# Raised and caught inside a network module; they never reach the user (the module turns each
# into a HubError with a message and a hint).


class DeadlineExceeded(Exception):
    """A network read's overall deadline passed (between two chunks of an answer, or before a retry)."""
