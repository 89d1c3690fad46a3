"""Byte sources: anything that can answer "give me bytes [offset, offset+n)".

The header reader only ever talks to a ByteSource, so the same parser serves local files and
HTTP range reads (planner.hub provides the remote one).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable, Protocol

from planner.errors import GGUFError, ResolveError


class ByteSource(Protocol):
    name: str  # path or URL, for error messages

    @property
    def size(self) -> int | None:
        """Total size in bytes, when known (local files, HTTP Content-Length/Content-Range)."""

    def read(self, offset: int, n: int) -> bytes:
        """Up to n bytes at offset; fewer only at end of file. Raises MemfitError on I/O failure."""


# --- Optional hint a source may carry (not part of the protocol, read with getattr) -----------
#
# `read_ahead: int` tells the header reader how many bytes its first read should fetch; later
# reads double it. A remote source sets it to a chunk size that covers a typical header in one
# request (each read is a round trip). `0` means reads are cheap: fetch only bytes the reader
# already knows belong to the header, so nothing past the header (no tensor data) is ever read.
# Sources without the attribute get DEFAULT_READ_AHEAD.

DEFAULT_READ_AHEAD = 1 << 20  # 1 MiB: most headers; 150k-token vocabularies need ~4-8 MiB


def path_is(test: Callable[[Path], bool], p: Path) -> bool:
    """`test` (Path.exists, Path.is_dir, Path.is_file) of p, False where the OS will not say
    (permission denied on a path component, a vanished /proc entry...): such a path is not one
    memfit can read, and a reference or folder walk must not end in a traceback over it."""
    try:
        return test(p)
    except OSError:
        return False


class LocalFileSource:
    """A local file. Every read opens, reads and closes, so no handle outlives a parse.

    `read_ahead = 0`: local reads cost a system call, not a round trip, so the reader asks
    only for header bytes and never touches the tensor data region.
    """

    read_ahead = 0

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = str(path)
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise ResolveError(f"no such file: {self.name}") from None
        except OSError as e:
            raise ResolveError(f"cannot read {self.name}: {e.strerror or e}") from None
        if not stat.S_ISREG(st.st_mode):
            raise ResolveError(f"not a regular file: {self.name}")
        self._size = st.st_size

    @property
    def size(self) -> int | None:
        return self._size

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= self._size:
            return b""
        n = min(n, self._size - offset)  # never ask the OS for a buffer larger than the file
        try:
            with open(self.path, "rb", buffering=0) as f:
                f.seek(offset)
                return f.read(n)
        except OSError as e:
            raise GGUFError(
                f"{self.name}: read of {n} bytes at offset {offset} failed: {e.strerror or e}"
            ) from None

    def __repr__(self) -> str:
        return f"LocalFileSource({self.name!r}, size={self._size})"


class MemorySource:
    """Bytes already in memory (a cached header, a test fixture). `size` is the length of
    the data unless given: a cached header can carry the size of the file it came from, and
    reads past the stored bytes then come back short, as at end of file."""

    read_ahead = 0

    def __init__(self, data: bytes, name: str = "<memory>", size: int | None = -1) -> None:
        self.data = bytes(data)
        self.name = name
        self._size = len(self.data) if size == -1 else size

    @property
    def size(self) -> int | None:
        return self._size

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0:
            return b""
        return self.data[offset : offset + n]
