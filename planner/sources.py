"""Byte sources: anything that can answer "give me bytes [offset, offset+n)".

The header reader only ever talks to a ByteSource, so the same parser serves local files and
HTTP range reads (planner.hub provides the remote one).
"""

from __future__ import annotations

from typing import Protocol


class ByteSource(Protocol):
    name: str  # path or URL, for error messages

    @property
    def size(self) -> int | None:
        """Total size in bytes, when known (local files, HTTP Content-Length/Content-Range)."""

    def read(self, offset: int, n: int) -> bytes:
        """Up to n bytes at offset; fewer only at end of file. Raises MemfitError on I/O failure."""
