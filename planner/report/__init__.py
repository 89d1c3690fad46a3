"""Rendering a plan: plain text (tables + memory bar), markdown for forum posts, JSON.

Every renderer takes the pydantic plan objects from planner.plan_types and returns a string; nothing
here computes a fit. Units: GiB everywhere (one unit per column), estimated numbers say "est.".

The renderers load on first use (PEP 562 `__getattr__`): every command imports
planner.report.layout for its terminal width, and that must not pull in the plan renderers and
their dependencies (`memfit --version` imports nothing heavy, docs/performance.md).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["render_text", "render_markdown", "render_json", "render_html", "render_bar"]

_WHERE = {"render_text": ".text", "render_bar": ".text", "render_markdown": ".markdown", "render_json": ".jsonout",
          "render_html": ".html"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
