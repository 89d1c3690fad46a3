"""Text that fits the user's terminal: the width to render at, prose wrapping, and tables that
drop their least important columns (in a stated order) before they would overflow.

Width: `COLUMNS` when set (the shell exports it; tests set it), else the terminal's width when
stdout is a terminal, else 80. Every text renderer takes its width from `text_width()` once and
passes it down, so one run never mixes widths.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from typing import Sequence

DEFAULT_WIDTH = 80
MIN_WIDTH = 60  # narrower terminals get 60-column text (wrapping below that helps nobody)
MAX_WIDTH = 160  # wider ones too: long lines are hard to read


def text_width() -> int:
    """The width to render text at (see the module docstring)."""
    env = os.environ.get("COLUMNS", "").strip()
    if env.isdigit() and int(env) > 0:
        width = int(env)
    elif sys.stdout is not None and hasattr(sys.stdout, "isatty") and _isatty():
        width = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    else:
        width = DEFAULT_WIDTH
    return max(MIN_WIDTH, min(MAX_WIDTH, width))


def _isatty() -> bool:
    try:
        return bool(sys.stdout.isatty())
    except (ValueError, OSError):  # a closed or replaced stream
        return False


def wrap(text: str, width: int, lead: str = "", cont: str | None = None) -> list[str]:
    """Prose as lines of at most `width` (a word longer than the line stays whole)."""
    cont = " " * len(lead) if cont is None else cont
    out: list[str] = []
    for i, para in enumerate(text.split("\n")):
        lines = textwrap.wrap(para, width, initial_indent=lead if i == 0 else cont, subsequent_indent=cont,
                              break_on_hyphens=False, break_long_words=False)
        out += lines or [lead if i == 0 else ""]
    return out


def table_width(rows: Sequence[Sequence[str]], headers: Sequence[str], sep: int = 2) -> int:
    cols = list(zip(*([list(headers)] + [list(r) for r in rows]))) if rows else [[h] for h in headers]
    return sum(max(len(str(c)) for c in col) for col in cols) + sep * (len(headers) - 1)


def fit_columns(rows: list[list[str]], headers: list[str], width: int, drop_order: Sequence[str],
                indent: int = 0) -> tuple[list[list[str]], list[str], list[str]]:
    """Drop columns named in `drop_order` (first = least important) until the table fits
    `width - indent`. Returns (rows, headers, dropped header names)."""
    dropped: list[str] = []
    for name in drop_order:
        if table_width(rows, headers) + indent <= width:
            break
        if name not in headers:
            continue
        i = headers.index(name)
        headers = headers[:i] + headers[i + 1:]
        rows = [r[:i] + r[i + 1:] for r in rows]
        dropped.append(name)
    return rows, headers, dropped


def render_table(rows: list[list[str]], headers: list[str], width: int, *, drop_order: Sequence[str] = (),
                 align: Sequence[str] | None = None, indent: int = 0) -> list[str]:
    """A plain table (header, dashes, rows) within `width`: columns from `drop_order` go first,
    then the widest column's cells wrap onto continuation rows. The last line names what was
    dropped, so nothing disappears silently."""
    by_name = dict(zip(headers, align)) if align is not None else {}
    rows, headers, dropped = fit_columns([list(map(str, r)) for r in rows], list(headers), width, drop_order, indent)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    room = width - indent - 2 * (len(headers) - 1)
    while sum(widths) > room:
        j = max(range(len(widths)), key=lambda k: widths[k])
        floor = max(len(headers[j]), 6)
        if widths[j] <= floor:
            break
        widths[j] = max(floor, widths[j] - (sum(widths) - room))
    pad = " " * indent
    aligns = [by_name.get(h, "left") for h in headers]

    def cell(text: str, w: int, a: str) -> str:
        return text.rjust(w) if a == "right" else text.ljust(w)

    out = [pad + "  ".join(cell(h, w, a) for h, w, a in zip(headers, widths, aligns)).rstrip(),
           pad + "  ".join("-" * w for w in widths)]
    for r in rows:
        parts = [textwrap.wrap(c, w, break_on_hyphens=False, break_long_words=len(max(c.split(), key=len, default="")) > w)
                 or [""] if len(c) > w else [c]
                 for c, w in zip(r, widths)]
        for k in range(max(len(p) for p in parts)):
            out.append(pad + "  ".join(cell(p[k] if k < len(p) else "", w, a)
                                       for p, w, a in zip(parts, widths, aligns)).rstrip())
    if dropped:
        out += wrap(f"(left out to fit {width} columns: {', '.join(dropped)}; a wider COLUMNS shows them)",
                    width, pad)
    return out
