"""GGUF file names -> quant variants: quant tags, shard groups, vision-projector companions.

Repos name their files in a handful of styles, all handled here:
  `Qwen3-30B-A3B-Q4_K_M.gguf`, `llama-2-7b.Q4_K_M.gguf`, `gpt-oss-20b-mxfp4.gguf` (tag in the name),
  `Qwen3-30B-A3B-UD-Q4_K_XL.gguf` (unsloth dynamic quants keep their `UD-` prefix),
  `Q4_K_M/Model-Q4_K_M-00001-of-00002.gguf`, `BF16/Model-00001-of-00002.gguf` (tag in a folder),
  `mmproj-F16.gguf`, `Model-mmproj-BF16.gguf` (vision projectors: companions, never models).
Shards follow llama.cpp's split naming `<prefix>-00001-of-00003.gguf`; a variant is usable only
when every shard is present.

Tags are normalised to llama.cpp's spelling (upper case, `_` inside the tag, `UD-` prefix kept):
`q4_k_m` -> `Q4_K_M`, `ud_iq1_s` -> `UD-IQ1_S`, `fp16` -> `F16`.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

# --- quant tags ----------------------------------------------------------------------------------

# One alternation per family; the separators inside a tag may be `_` or `-` (some repos write
# `q4-k-m`). Longer alternatives first so `Q4_K_XL` is not read as `Q4_K`.
_SEP = r"[_\-]"
_QUANT_CORE = (
    rf"(?:I?Q[1-8]{_SEP}K(?:{_SEP}(?:XXL|XL|XS|L|M|S))?"  # Q4_K_M, Q4_K, Q3_K_XL, Q6_K_L
    rf"|Q[1-8]{_SEP}[01](?:{_SEP}[48]{_SEP}[48])?"  # Q4_0, Q8_0, Q5_1, Q4_0_4_4
    rf"|IQ[1-4]{_SEP}(?:XXS|XS|NL|S|M|L|XL)"  # IQ2_XXS, IQ4_NL, IQ1_M
    rf"|TQ[12]{_SEP}0"  # ternary
    rf"|MXFP4(?:{_SEP}MOE)?|NVFP4"
    rf"|BF16|FP16|FP32|F16|F32)"
)
_TAG_RE = re.compile(
    rf"(?<![A-Za-z0-9])((?:UD{_SEP})?{_QUANT_CORE})(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_SHARD_RE = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_GGUF_RE = re.compile(r"\.gguf$", re.IGNORECASE)

_SPELLING = {"FP16": "F16", "FP32": "F32"}


def normalize_tag(tag: str) -> str:
    """Canonical spelling of a quant tag: upper case, `_` inside, `UD-` prefix with a dash."""
    t = re.sub(r"[\-_.\s]+", "_", tag.strip()).upper()
    ud = t.startswith("UD_")
    if ud:
        t = t[3:]
    t = _SPELLING.get(t, t)
    return f"UD-{t}" if ud else t


def tag_key(tag: str) -> str:
    """Comparison key for user-typed tags: case and separators do not matter."""
    return re.sub(r"[\-_.\s]+", "", tag).upper()


def quant_tag_from_name(path: str) -> str | None:
    """The quant tag of a GGUF path: from the file name, else from the nearest folder.

    The last match wins inside a name (`Qwen2.5-Coder-7B-F16-Q4_K_M.gguf` is a Q4_K_M file); an
    `mmproj` marker is not a tag.
    """
    parts = path.replace("\\", "/").split("/")
    base = _GGUF_RE.sub("", parts[-1])
    m = _SHARD_RE.match(parts[-1])
    if m:
        base = m.group("prefix")
    for segment in [base, *reversed(parts[:-1])]:
        found = _TAG_RE.findall(segment)
        if found:
            return normalize_tag(found[-1])
    return None


# --- quality order -------------------------------------------------------------------------------

# Nominal bits per weight of each llama.cpp quant mix (llama-quantize's own descriptions for an 8B
# model, converted to bpw; ternary/IQ types are their stated bpw). Used only to ORDER quants by
# quality ("best quality that fits"); the estimator uses the real tensor sizes from the headers.
# UD-* (unsloth dynamic) and *_L/_XL (bartowski/unsloth mixes with Q8 embeddings) sit a little
# above their base mix.
QUANT_BPW: dict[str, float] = {
    "F32": 32.0, "F16": 16.0, "BF16": 16.0,
    "Q8_0": 8.5, "Q8_K_XL": 9.0,
    "Q6_K": 6.56, "Q6_K_L": 6.7, "Q6_K_XL": 6.9,
    "Q5_1": 6.0, "Q5_K_M": 5.69, "Q5_K_L": 5.8, "Q5_K_XL": 5.9, "Q5_K_S": 5.54, "Q5_K": 5.69, "Q5_0": 5.5,
    "Q4_1": 5.0, "Q4_K_XL": 5.0, "Q4_K_L": 4.95, "Q4_K_M": 4.89, "Q4_K": 4.89, "Q4_K_S": 4.58,
    "NVFP4": 4.5, "IQ4_NL": 4.5, "Q4_0": 4.5, "Q4_0_4_4": 4.5, "Q4_0_4_8": 4.5, "Q4_0_8_8": 4.5,
    "MXFP4_MOE": 4.3, "MXFP4": 4.25, "IQ4_XS": 4.25,
    "Q3_K_XL": 4.3, "Q3_K_L": 4.27, "Q3_K_M": 3.91, "Q3_K": 3.91, "IQ3_M": 3.66, "Q3_K_S": 3.5,
    "IQ3_S": 3.44, "IQ3_XS": 3.3, "IQ3_XXS": 3.06,
    "Q2_K_XL": 3.2, "Q2_K_L": 3.1, "Q2_K": 2.96, "IQ2_M": 2.7, "Q2_K_S": 2.6, "IQ2_S": 2.5,
    "IQ2_XS": 2.31, "Q2_0": 2.25, "TQ2_0": 2.06, "IQ2_XXS": 2.06,
    "IQ1_M": 1.75, "TQ1_0": 1.69, "IQ1_S": 1.56, "Q1_0": 1.125,
}
_UD_BONUS = 0.05  # UD-Q4_K_XL > Q4_K_XL, UD-Q4_K_M > Q4_K_M: same nominal size, better tensor mix


def quant_bpw(tag: str) -> float | None:
    """Nominal bits per weight of a tag (None when the tag is unknown, e.g. a file stem)."""
    t = normalize_tag(tag)
    ud = t.startswith("UD-")
    bpw = QUANT_BPW.get(t[3:] if ud else t)
    if bpw is None:
        return None
    return bpw + (_UD_BONUS if ud else 0.0)


def quality_key(tag: str, size_bytes: int = 0) -> tuple[float, int]:
    """Sort key, higher is better quality: nominal bpw, then file size (unknown tags: size only)."""
    bpw = quant_bpw(tag)
    return (bpw if bpw is not None else -1.0, size_bytes)


# --- grouping ------------------------------------------------------------------------------------


@dataclass
class FileEntry:
    """One GGUF file as listed (local directory or Hub tree)."""

    path: str  # relative path inside the repo/directory, `/` separated
    size: int
    oid: str | None = None  # content id (LFS sha256) when the Hub gives one


@dataclass
class VariantGroup:
    """A quant variant before headers are read: its shards in order."""

    quant: str
    files: list[FileEntry]
    stem: str  # the shared name without shard suffix and extension (for disambiguation)

    @property
    def size_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class Grouping:
    variants: list[VariantGroup] = field(default_factory=list)
    projectors: list[FileEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # incomplete shard sets, skipped files


def is_projector(path: str) -> bool:
    """Vision/audio projector files by name (`mmproj*.gguf`, `*mmproj*`): companions, not models.
    Only a first guess, made before any header is read; `is_projector_header` decides."""
    return "mmproj" in posixpath.basename(path).lower()


def is_projector_header(metadata: dict) -> bool:
    """A projector by content: `general.architecture` is "clip" (what llama.cpp's mtmd loader
    reads), or the file has `clip.*` keys and no architecture of its own (no `{arch}.block_count`).
    A text model named `mmproj-*.gguf` is a model."""
    arch = metadata.get("general.architecture")
    if arch == "clip":
        return True
    has_clip = any(isinstance(k, str) and k.startswith("clip.") for k in metadata)
    if not has_clip:
        return False
    return not (isinstance(arch, str) and arch and f"{arch}.block_count" in metadata)


def is_gguf(path: str) -> bool:
    return bool(_GGUF_RE.search(path))


@dataclass
class _ShardSet:
    """The files of one `prefix-0000i-of-0000N.gguf` set as listed, before it is checked."""

    folder: str
    prefix: str
    files: dict[int, FileEntry] = field(default_factory=dict)  # shard index -> file
    counts: set[int] = field(default_factory=set)  # the N each file names

    @property
    def shown(self) -> str:
        return posixpath.join(self.folder, self.prefix) if self.folder else self.prefix

    def problem(self) -> str | None:
        """Why the set is not one complete split model (None when it is)."""
        if len(self.counts) != 1:
            return f"{self.shown}: shards disagree on the shard count ({sorted(self.counts)})"
        (count,) = self.counts
        missing = [i for i in range(1, count + 1) if i not in self.files]
        if not (missing or self._extra(count) or count < 1):
            return None
        return f"{self.shown}: incomplete split model, missing {self._names(missing, count)}"

    def _extra(self, count: int) -> list[int]:
        """Shard indexes outside 1..count."""
        return [i for i in self.files if i < 1 or i > count]

    def _names(self, missing: list[int], count: int) -> str:
        """The first few missing shards' file names (and how many more)."""
        names = ", ".join(f"{self.prefix}-{i:05d}-of-{count:05d}.gguf" for i in missing[:3])
        return names + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")

    def group(self) -> VariantGroup:
        files = [self.files[i] for i in sorted(self.files)]
        quant = quant_tag_from_name(files[0].path) or posixpath.basename(self.prefix)
        return VariantGroup(quant=quant, files=files, stem=posixpath.join(self.folder, self.prefix))


def _single_group(e: FileEntry) -> VariantGroup:
    stem = _GGUF_RE.sub("", e.path)
    return VariantGroup(quant=quant_tag_from_name(e.path) or posixpath.basename(stem), files=[e], stem=stem)


def _label_same_tags_by_stem(groups: list[VariantGroup]) -> None:
    """Same tag twice (e.g. `model-Q4_K_M.gguf` and `model-instruct-Q4_K_M.gguf`): label both by stem."""
    by_tag: dict[str, list[VariantGroup]] = {}
    for g in groups:
        by_tag.setdefault(tag_key(g.quant), []).append(g)
    for g in (g for same in by_tag.values() if len(same) > 1 for g in same):
        g.quant = g.stem


def group_files(entries: list[FileEntry], *, name_projectors: bool = True) -> Grouping:
    """Group GGUF files into quant variants (shards joined, projectors set aside).

    Every shard set must be complete (1..N all present, same N); an incomplete set is reported in
    `problems` and left out. Two groups that would get the same tag are told apart by their stem.
    `name_projectors=False`: files named like projectors are grouped as model candidates too (the
    resolver then decides by content, see is_projector_header).
    """
    out = Grouping()
    shard_sets: dict[tuple[str, str], _ShardSet] = {}
    singles: list[FileEntry] = []
    for e in (e for e in entries if is_gguf(e.path)):
        if name_projectors and is_projector(e.path):
            out.projectors.append(e)
        elif not _add_shard(shard_sets, e):
            singles.append(e)
    groups = [_single_group(e) for e in singles] + _complete_sets(shard_sets, out.problems)
    _label_same_tags_by_stem(groups)
    out.variants = sorted(groups, key=lambda g: (g.size_bytes, g.quant))
    out.projectors.sort(key=lambda e: e.path)
    return out


def _complete_sets(shard_sets: dict[tuple[str, str], _ShardSet], problems: list[str]) -> list[VariantGroup]:
    """The complete shard sets as variants; what is wrong with the others goes to `problems`."""
    groups: list[VariantGroup] = []
    for shard_set in shard_sets.values():
        problem = shard_set.problem()
        if problem:
            problems.append(problem)
        else:
            groups.append(shard_set.group())
    return groups


def _add_shard(shard_sets: dict[tuple[str, str], _ShardSet], e: FileEntry) -> bool:
    """File a shard of a split set under its folder and prefix; False for a file that is no shard."""
    folder, name = posixpath.split(e.path)
    m = _SHARD_RE.match(name)
    if not m:
        return False
    shard_set = shard_sets.setdefault((folder, m.group("prefix")), _ShardSet(folder, m.group("prefix")))
    shard_set.files[int(m.group("index"))] = e
    shard_set.counts.add(int(m.group("count")))
    return True
