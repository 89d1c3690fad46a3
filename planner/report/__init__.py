"""Rendering a plan: plain text (tables + memory bar), markdown for forum posts, JSON.

Every renderer takes the pydantic plan objects from planner.plan_types and returns a string; nothing
here computes a fit. Units: GiB everywhere (one unit per column), estimated numbers say "est.".
"""

from __future__ import annotations

from .jsonout import render_json
from .markdown import render_markdown
from .html import render_html
from .text import render_bar, render_text

__all__ = ["render_text", "render_markdown", "render_json", "render_html", "render_bar"]
