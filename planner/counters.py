"""Thread-safe debug counters (network requests, skip-hint jumps) that tests and benches read."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


@dataclass
class Counters:
    """Subclass with int fields; add/reset/as_dict work on all of them under one lock."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def _names(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "_lock"]

    def add(self, **kw: int) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def reset(self) -> None:
        with self._lock:
            for name in self._names():
                setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self._names()}
