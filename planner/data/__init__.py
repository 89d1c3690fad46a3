"""Data tables shipped with memfit (aliases, runtime overheads, chip-family words).

`read(name)` opens them next to this file: the package is always installed as files (pip, an
editable checkout), and importlib.resources costs ~4 ms of a start that has ~40 to spend."""

from __future__ import annotations

import os


def read(name: str) -> bytes:
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name), "rb") as f:
        return f.read()
