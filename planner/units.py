"""Parsing and printing of sizes and context lengths, one convention everywhere.

Sizes: `64g`, `64G`, `64GB`, `64GiB`, `512m`, `0.5g` are binary units (vendors say "GB" and mean
GiB: a "64 GB" laptop has 64 GiB of DRAM). A bare number is bytes.
Contexts: `24k` = 24 * 1024 = 24576 tokens (llama.cpp users say 32k for 32768), `24576`, `128K`.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import InputError

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": KIB, "kb": KIB, "kib": KIB,
    "m": MIB, "mb": MIB, "mib": MIB,
    "g": GIB, "gb": GIB, "gib": GIB,
    "t": TIB, "tb": TIB, "tib": TIB,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_CTX_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")

MAX_CTX = 16 * 1024 * 1024  # far beyond any trained context; guards against typos like 24kk


def parse_size(text: str | int, *, what: str = "size") -> int:
    """Parse `64g`, `0.5GiB`, `512m` or a byte count into bytes."""
    if isinstance(text, int):
        return text
    m = _SIZE_RE.match(str(text))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise InputError(f"invalid {what} {text!r}: use a number with a unit, e.g. 64g, 512m, 0.5g")
    value = float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    return int(round(value))


def parse_ctx(text: str | int) -> int:
    """Parse a context length: `24k` -> 24576, `128K` -> 131072, `24576` -> 24576."""
    if isinstance(text, int):
        value = text
    else:
        m = _CTX_RE.match(str(text))
        if not m:
            raise InputError(f"invalid context {text!r}: use tokens like 24576, 24k or 128k")
        mult = {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
        value_f = float(m.group(1)) * mult
        if value_f != int(value_f):
            raise InputError(f"invalid context {text!r}: not a whole number of tokens")
        value = int(value_f)
    if value <= 0:
        raise InputError(f"invalid context {text!r}: must be at least 1 token")
    if value > MAX_CTX:
        raise InputError(f"invalid context {text!r}: larger than {MAX_CTX} tokens")
    return value


def fmt_bytes(n: int | float | None, *, unit: str = "GiB", digits: int = 2) -> str:
    """Format bytes in a fixed binary unit (tables read better with one unit per column)."""
    if n is None:
        return "-"
    if unit == "GiB":  # the common case, without the table
        return f"{n / GIB:.{digits}f} GiB"
    div = {"B": 1, "KiB": KIB, "MiB": MIB, "GiB": GIB}[unit]
    return f"{n / div:.{digits}f} {unit}"


def fmt_auto(n: int | float | None) -> str:
    """Human-friendly size with the unit picked from the magnitude."""
    if n is None:
        return "-"
    for unit, div in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{int(n)} B"


def fmt_ctx(n: int) -> str:
    """24576 -> '24k', 131072 -> '128k', 12800 -> '12.5k' (as `-c 12.5k` wrote it), 5000 -> '5000'.
    Always a form --ctx parses back to the same number."""
    if n % 1024 == 0:
        return f"{n // 1024}k"
    if (n * 10) % 1024 == 0:
        return f"{n * 10 // 1024 / 10:g}k"
    return str(n)


_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """Text for a terminal: control characters (ESC sequences, bells, carriage returns, the
    Unicode line and paragraph separators) from file metadata become '?', so a GGUF cannot
    restyle or rewrite the user's terminal; format characters (Unicode category Cf: the bidi
    controls U+202A-202E, U+2066-2069, U+200E/U+200F and U+061C, zero-width characters, the BOM,
    tag characters...) are removed, so a name cannot display in another order than it is
    written. Newlines stay; tabs become spaces (they break table alignment)."""
    text = _CONTROL_RE.sub("?", text.replace("\t", " "))
    if text.isascii():
        return text
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def one_line(text: str, limit: int = 120) -> str:
    """A name from file metadata on one table line: whitespace runs become one space, control
    characters '?', and anything beyond `limit` characters is cut with an ellipsis."""
    s = printable(" ".join(str(text).split()))
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


# Printed once wherever fmt_vendor_size's GB appear next to computed GiB, so the two read as
# one convention rather than a mix (docs/cli.md "Units").
UNITS_NOTE = ("GB for sizes as vendors and the BIOS name them (memory is sold in binary sizes: 64 GB = "
              "64 GiB), GiB for the sizes memfit computes")


def fmt_vendor_size(n: int | None) -> str:
    """Sizes users compare with a spec sheet or a firmware menu, as those name them: installed
    RAM and a card's VRAM as sold, BIOS carve-out options ('512 MB', '32 GB'). Memory is sold in
    binary sizes, so this GB is 2^30 bytes, the amount memfit's computed sizes call GiB."""
    return fmt_bios_size(n)


def fmt_bios_size(n: int | None) -> str:
    """Carve-out sizes as the BIOS names them: '512 MB', '32 GB' (binary, as vendors mean it)."""
    if n is None:
        return "-"
    if n < GIB:
        return f"{n // MIB} MB"
    g = n / GIB
    return f"{g:.0f} GB" if g == int(g) else f"{g:.1f} GB"


def env_float(name: str, default: float) -> float:
    """A number from the environment; the default when it is unset, not a number or not finite."""
    import math
    import os

    try:
        value = float(os.environ[name])
    except (KeyError, ValueError):
        return default
    return value if math.isfinite(value) else default
