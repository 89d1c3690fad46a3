"""Text that fits the user's terminal: the width to render at, prose wrapping, and tables that
drop their least important columns (in a stated order) before they would overflow.

Width: `COLUMNS` when set (the shell exports it; tests set it), else the terminal's width when
stdout is a terminal, else 80. Every text renderer takes its width from `text_width()` once and
passes it down, so one run never mixes widths.

The one thing allowed past the width is a word longer than the room on its line (a long path or
URL): it is printed whole after its indent or label, and ends that line (a command's ` \\` aside),
because a broken path or URL no longer pastes. Tables break such words only when a column is
narrower than they are.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap
from typing import Mapping, NamedTuple, Sequence

DEFAULT_WIDTH = 80
MIN_WIDTH = 60  # narrower terminals get 60-column text (wrapping below that helps nobody)
MAX_WIDTH = 160  # wider ones too: long lines are hard to read
SEP = 2  # spaces between table columns
NBSP = "\u00a0"  # joins words that must stay on one line; printed as a plain space
# a number and its unit stay on one line ("2 GB", "106.00 GiB", "256 GB/s", "~70 W", "4,096 tokens")
_VALUE_UNIT = re.compile(r"(\d) (?=(?:[KMGT]i?B(?:/s)?|B|W|tokens|t/s)(?![\w/]))")


def text_width() -> int:
    """The width to render text at (see the module docstring)."""
    env = os.environ.get("COLUMNS", "").strip()
    width = int(env) if env.isdigit() and int(env) > 0 else _terminal_width()
    return max(MIN_WIDTH, min(MAX_WIDTH, width))


def _terminal_width() -> int:
    """The terminal's width when stdout is one, else the default."""
    if sys.stdout is not None and hasattr(sys.stdout, "isatty") and _isatty():
        return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    return DEFAULT_WIDTH


def _isatty() -> bool:
    try:
        return bool(sys.stdout.isatty())
    except (ValueError, OSError):  # a closed or replaced stream
        return False


def unbroken(text: str) -> str:
    """`text` as one unit for `wrap`: its spaces become no-break spaces, printed as spaces."""
    return text.replace(" ", NBSP)


def wrap(text: str, width: int, lead: str = "", cont: str | None = None) -> list[str]:
    """Prose as lines of at most `width`: the first line starts with `lead`, the others with
    `cont` (a hanging indent as wide as `lead` by default). A word longer than the line stays
    whole, and so do a phrase passed through `unbroken` and a number with its unit ("2 GB").
    Newlines in `text` start new lines (with `cont`)."""
    cont = " " * len(lead) if cont is None else cont
    text = _VALUE_UNIT.sub("\\1" + NBSP, text)
    out: list[str] = []
    for i, para in enumerate(text.split("\n")):
        first = lead if i == 0 else cont
        lines = textwrap.wrap(para, width, initial_indent=first, subsequent_indent=cont,
                              break_on_hyphens=False, break_long_words=False)
        out += lines or [first.rstrip()]
    return [line.replace(NBSP, " ") for line in out]


def kv_lines(rows: Sequence[tuple[str, str]], width: int, *, indent: int = 0, gap: int = 2) -> list[str]:
    """`label  value` rows (tabulate's "plain" look) whose values wrap under the value column, so
    a long value never pushes past `width`. Labels wider than a third of the line do not widen
    the value column: their value starts on the next line instead."""
    pad = " " * indent
    fitting = [len(k) for k, _ in rows if len(k) <= (width - indent) // 3]
    col = max(fitting, default=0) + gap
    out: list[str] = []
    for key, value in rows:
        if len(key) + gap > col:
            out.append(pad + key)
            out += wrap(value, width, pad + " " * col)
        else:
            out += wrap(value, width, pad + key.ljust(col), pad + " " * col)
    return out


def _arg_groups(words: Sequence[str]) -> list[str]:
    """Words grouped so that a flag stays with its value (`-c 24576`)."""
    groups: list[str] = []
    for word in words:
        if groups and groups[-1].startswith("-") and " " not in groups[-1] and not word.startswith("-"):
            groups[-1] += " " + word
        else:
            groups.append(word)
    return groups


def command_lines(words: Sequence[str], width: int, *, indent: str = "", cont: str = "    ") -> list[str]:
    """A POSIX shell command (words already quoted, as shlex.join quotes them) on one line when
    it fits, else broken between arguments with ` \\` continuations (a flag stays with its value),
    which paste as one command. Continuation lines start with `indent + cont`."""
    one = indent + " ".join(words)
    if len(one) <= width or not words:
        return [one]
    groups = _arg_groups(words)
    lines: list[str] = []
    line = indent + groups[0]
    for group in groups[1:]:
        if len(line) + 1 + len(group) + 2 > width:  # room for the " \\"
            lines.append(line + " \\")
            line = _continued(group, width, indent, cont)
        else:
            line += " " + group
    lines.append(line)
    return lines


def _continued(group: str, width: int, indent: str, cont: str) -> str:
    """A continuation line's start: `indent + cont`, but an argument too long for that (a long
    path) starts at the command's own indent."""
    return indent + (cont if len(indent + cont + group) + 2 <= width else "") + group


def _head_lines(header: str) -> list[str]:
    return header.split("\n")


def _natural(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> list[int]:
    """Each column's width without wrapping: its longest header line or cell line."""
    return [max([len(h) for h in _head_lines(header)] + [len(line) for r in rows for line in str(r[i]).split("\n")])
            for i, header in enumerate(headers)]


def _floors(rows: Sequence[Sequence[str]], headers: Sequence[str], wrap_min: Mapping[str, int]) -> list[int]:
    """Each column's narrowest width: its wrap minimum (never below its header) when it may wrap,
    else its natural width."""
    natural = _natural(rows, headers)
    return [min(n, max(wrap_min[h], max(len(x) for x in _head_lines(h)))) if h in wrap_min else n
            for n, h in zip(natural, headers)]


def table_width(rows: Sequence[Sequence[str]], headers: Sequence[str], sep: int = SEP,
                wrap_min: Mapping[str, int] | None = None) -> int:
    """The narrowest the table can be drawn: columns named in `wrap_min` at their minimum (they
    wrap), the others at their natural width."""
    widths = _floors(rows, headers, wrap_min or {})
    return sum(widths) + sep * (len(headers) - 1)


def fit_columns(rows: list[list[str]], headers: list[str], width: int, drop_order: Sequence[str],
                indent: int = 0, wrap_min: Mapping[str, int] | None = None,
                ) -> tuple[list[list[str]], list[str], list[str]]:
    """Drop columns named in `drop_order` (first = least important) until the table fits
    `width - indent`, counting the columns in `wrap_min` at their minimum width (a column that
    can wrap is wrapped before any column is dropped). Returns (rows, headers, dropped names)."""
    dropped: list[str] = []
    for name in drop_order:
        if table_width(rows, headers, wrap_min=wrap_min) + indent <= width:
            break
        if name not in headers:
            continue
        i = headers.index(name)
        headers = headers[:i] + headers[i + 1:]
        rows = [r[:i] + r[i + 1:] for r in rows]
        dropped.append(name)
    return rows, headers, dropped


def _shrink(widths: list[int], floors: list[int], headers: Sequence[str], room: int) -> list[int]:
    """Narrow the columns until they fit `room`: wrappable columns first (the one furthest above
    its floor each time), then, if that is not enough, the widest column down to its header."""
    widths = list(widths)
    _shrink_wrappable(widths, floors, room)
    while sum(widths) > room:
        j = max(range(len(widths)), key=lambda k: widths[k])
        floor = max(max(len(x) for x in _head_lines(headers[j])), 6)
        if widths[j] <= floor:
            break
        widths[j] = max(floor, widths[j] - (sum(widths) - room))
    return widths


def _shrink_wrappable(widths: list[int], floors: list[int], room: int) -> None:
    """Narrow the column furthest above its floor, until the columns fit `room` or every one is
    at its floor."""
    while sum(widths) > room:
        j = max(range(len(widths)), key=lambda k: widths[k] - floors[k])
        if widths[j] <= floors[j]:
            break
        widths[j] = max(floors[j], widths[j] - (sum(widths) - room))


def _cell_lines(text: str, w: int) -> list[str]:
    out: list[str] = []
    for part in text.split("\n"):
        out += [part] if len(part) <= w else _wrapped_part(part, w)
    return [line.replace(NBSP, " ") for line in out]


def _wrapped_part(part: str, w: int) -> list[str]:
    """A cell line wider than its column, wrapped (a word breaks only when it is wider than the
    column)."""
    longest = max((len(x) for x in part.split()), default=0)
    return textwrap.wrap(part, w, break_on_hyphens=False, break_long_words=longest > w) or [""]


class _Grid(NamedTuple):
    """Where a table's cells go: column widths and alignments, the left indent."""

    widths: list[int]
    aligns: list[str]
    pad: str

    def line(self, parts: Sequence[str]) -> str:
        cells = (p.rjust(w) if a == "right" else p.ljust(w) for p, w, a in zip(parts, self.widths, self.aligns))
        return (self.pad + (" " * SEP).join(cells)).rstrip()

    def head(self, headers: Sequence[str]) -> list[str]:
        """The header lines (a header may span lines; headers sit on the rule) and the rule."""
        heads, depth = _stacked(headers)
        return [self.line([h[k] for h in heads]) for k in range(depth)] + [
            self.pad + (" " * SEP).join("-" * w for w in self.widths)]

    def row(self, cells: Sequence[str]) -> list[str]:
        """A row, its cells wrapped to their columns."""
        parts = [_cell_lines(c, w) for c, w in zip(cells, self.widths)]
        return [self.line([p[k] if k < len(p) else "" for p in parts]) for k in range(max(len(p) for p in parts))]


def _stacked(headers: Sequence[str]) -> tuple[list[list[str]], int]:
    """Each header's lines, padded at the top so that every header sits on the rule; the depth."""
    heads = [_head_lines(h) for h in headers]
    depth = max((len(h) for h in heads), default=1)
    return [[""] * (depth - len(h)) + h for h in heads], depth


def _dropped_note(dropped: list[str], width: int, pad: str) -> list[str]:
    if not dropped:
        return []
    names = ", ".join(" ".join(d.split()) for d in dropped)
    return wrap(f"(left out to fit {width} columns: {names}; a wider COLUMNS or --json shows "
                f"{'it' if len(dropped) == 1 else 'them'})", width, pad)


def render_table(rows: list[list[str]], headers: list[str], width: int, *, drop_order: Sequence[str] = (),
                 align: Sequence[str] | None = None, indent: int = 0,
                 wrap_min: Mapping[str, int] | None = None) -> list[str]:
    """A plain table (header, dashes, rows) within `width`: columns from `drop_order` go first,
    then the columns in `wrap_min` wrap down to their minimum, then the widest column's cells
    wrap. A header may span lines ("GPU\\ntotal"); `align` is "left" or "right" per header.
    The last line names what was dropped, so nothing disappears silently."""
    by_name = dict(zip(headers, align)) if align is not None else {}
    mins = dict(wrap_min or {})
    rows, headers, dropped = fit_columns([list(map(str, r)) for r in rows], list(headers), width, drop_order,
                                         indent, mins)
    room = width - indent - SEP * (len(headers) - 1)
    widths = _shrink(_natural(rows, headers), _floors(rows, headers, mins), headers, room)
    pad = " " * indent
    grid = _Grid(widths, [by_name.get(h, "left") for h in headers], pad)
    return grid.head(headers) + [x for r in rows for x in grid.row(r)] + _dropped_note(dropped, width, pad)
