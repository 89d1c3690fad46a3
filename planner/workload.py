"""A workload: the models one machine should run, each with its own context and optional quant.

Two ways to say it (docs/cli.md "Workloads"):
- on the command line, `plan MODEL[@CTX] MODEL[@CTX] ...`: `glm-4.7-flash@198k qwen3-vl-32b:Q5_K_M@24k`.
  The quant is the reference's own `:TAG`; `@CTX` is taken from the last `@` only when what follows
  reads as a context (24k, 24576, 0.5m, max), so `owner/repo@REV` keeps meaning a Hub revision;
- in a TOML file (`--workload FILE`): `[[model]]` tables with `ref`, and optionally `ctx`, `quant`,
  `mmproj`, `revision`, `name`; a top-level `together = true` says they run at the same time.

Every mistake is one line naming the entry (InputError: exit 2). Nothing here resolves a model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InputError
from .units import fmt_ctx, parse_ctx

MAX_MODELS = 8  # each model costs its header reads and a plan per candidate setting
_CTX_SUFFIX = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[kKmM]?|max)\s*$")
FILE_KEYS = ("ref", "ctx", "quant", "mmproj", "revision", "name")
TOP_KEYS = ("model", "together")


def parse_ctx_value(value: Any, where: str) -> int:
    """A context as people write it (24k, 24576, max = 0: the training context) or one error line."""
    if isinstance(value, bool):
        raise InputError(f"{where}: context {value!r} is not a number of tokens")
    if isinstance(value, int):
        if value < 0:
            raise InputError(f"{where}: context {value} is negative")
        return value
    text = str(value).strip()
    if text.lower() in ("max", "0"):
        return 0
    try:
        return parse_ctx(text)
    except InputError as e:
        raise InputError(f"{where}: {e.message}") from None


class WorkloadEntry(BaseModel):
    """One model of the workload: the reference as `plan MODEL` takes it, and its own settings."""

    model_config = ConfigDict(extra="forbid")

    ref: str = Field(min_length=1)
    ctx: int | None = Field(None, ge=0, description="tokens; 0 = the training context; None = --ctx or the default")
    quant: list[str] = Field(default_factory=list, description="plan only these quants (the file's `quant`)")
    mmproj: str = "auto"  # auto | none | a local projector file
    revision: str | None = None
    name: str | None = None  # the label in tables; default: the reference

    @property
    def label(self) -> str:
        return self.name or self.ref

    def title(self, ctx: int | None) -> str:
        """`glm-4.7-flash @198k`: the label with the context it is planned at."""
        return f"{self.label} @{fmt_ctx(ctx)}" if ctx else self.label

    @field_validator("ref", "name")
    @classmethod
    def _no_blank(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v.strip() if v is not None else v


class Workload(BaseModel):
    """The models to plan together on one setting, and whether they run at the same time."""

    models: list[WorkloadEntry]
    together: bool = False
    source: str = ""  # the file it came from ("" = the command line)


def parse_entry(text: str) -> WorkloadEntry:
    """`MODEL[@CTX]` -> an entry. The quant stays in MODEL as its `:TAG` (the resolver reads it)."""
    raw = text.strip()
    if not raw:
        raise InputError("an empty model reference: give MODEL or MODEL@CTX")
    head, sep, tail = raw.rpartition("@")
    if not sep or not _CTX_SUFFIX.match(tail):
        if raw.endswith("@"):
            raise InputError(f"{raw!r}: nothing after '@': write MODEL@CTX, e.g. qwen3-vl-32b@24k")
        return WorkloadEntry(ref=raw)
    if not head.strip():
        raise InputError(f"{raw!r}: no model before '@{tail.strip()}': write MODEL@CTX, e.g. qwen3-vl-32b@24k")
    return WorkloadEntry(ref=head.strip(), ctx=parse_ctx_value(tail, raw))


def from_cli(models: tuple[str, ...] | list[str], together: bool = False) -> Workload:
    entries = [parse_entry(m) for m in models]
    _check_count(entries, "the command line")
    return Workload(models=entries, together=together)


def _check_count(entries: list[WorkloadEntry], where: str) -> None:
    if not entries:
        raise InputError(f"{where} names no model: give at least one")
    if len(entries) > MAX_MODELS:
        raise InputError(f"{where} names {len(entries)} models; a workload plans at most {MAX_MODELS}")


def _read_toml(path: str | Path, where: str) -> dict[str, Any]:
    import tomllib

    raw = _read_bytes(path, where)
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{where}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{where}: not valid TOML: {e}") from None


def _read_bytes(path: str | Path, where: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{where}: not found") from None
    except IsADirectoryError:
        raise InputError(f"{where}: is a directory, not a TOML file") from None
    except OSError as e:
        raise InputError(f"{where}: cannot be read ({e.strerror or e})") from None


def _unknown_key(table: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r} (expected: {', '.join(known)})")


def _model_tables(data: dict[str, Any], where: str) -> list[dict[str, Any]]:
    tables = data.get("model", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise InputError(f"{where}: write each model as a [[model]] table")
    return tables


def load_file(path: str | Path) -> Workload:
    """The TOML workload file, or one error line saying what is wrong and where."""
    name = str(path)
    where = f"workload file {name}"
    data = _read_toml(path, where)
    _unknown_key(data, TOP_KEYS, where)
    together = data.get("together", False)
    if not isinstance(together, bool):
        raise InputError(f"{where}: together = {together!r}: use true or false")
    entries = [_file_entry(t, f"{where}: model {i}") for i, t in enumerate(_model_tables(data, where), 1)]
    _check_count(entries, where)
    return Workload(models=entries, together=together, source=name)


def _quants(q: object, where: str) -> list[str]:
    """A quant tag or a list of them, each stripped."""
    quants = [q] if isinstance(q, str) else q
    if not isinstance(quants, list) or not quants or not all(isinstance(x, str) and x.strip() for x in quants):
        raise InputError(f"{where}: quant = {q!r}: give a quant tag or a list of them, e.g. \"Q4_K_M\"")
    return [x.strip() for x in quants]


def _entry_fields(table: dict[str, Any], where: str) -> dict[str, Any]:
    """The table's fields checked and normalised (strings, the context, the quant list)."""
    fields = dict(table)
    _check_strings(fields, where)
    if "ctx" in fields:
        fields["ctx"] = parse_ctx_value(fields["ctx"], f"{where} ({table['ref']})")
    if fields.get("quant") is not None:
        fields["quant"] = _quants(fields["quant"], where)
    return fields


def _check_strings(fields: dict[str, Any], where: str) -> None:
    bad = next((key for key in ("ref", "mmproj", "revision", "name") if key in fields and not isinstance(fields[key], str)),
               None)
    if bad is not None:
        raise InputError(f"{where}: {bad} = {fields[bad]!r}: must be a string")


def _file_entry(table: dict[str, Any], where: str) -> WorkloadEntry:
    _unknown_key(table, FILE_KEYS, where)
    if "ref" not in table:
        raise InputError(f"{where}: no ref: give the model as ref = \"owner/repo\" (or a short name or path)")
    try:
        return WorkloadEntry(**_entry_fields(table, where))
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ())) or "entry"
        raise InputError(f"{where}: {loc}: {err.get('msg', 'invalid')}") from None


class ParsedRequest(BaseModel):
    """What the command line asked for: one model (the single-model plan) or a workload."""

    workload: Workload
    single: WorkloadEntry | None = None  # set when the plan is the single-model one


def _workload(models: tuple[str, ...] | list[str], workload_file: str | None, together: bool) -> Workload:
    if workload_file is not None and models:
        raise InputError("give the models on the command line or in --workload FILE, not both")
    work = load_file(workload_file) if workload_file is not None else from_cli(models)
    work.together = work.together or together
    if work.together and len(work.models) < 2:
        raise InputError("--together plans models that run at the same time: give two or more")
    return work


def _single(entry: WorkloadEntry, ctx: int | None) -> WorkloadEntry:
    """The one model of a single-model plan; its own @CTX and --ctx may not both give the context."""
    if entry.ctx is not None and ctx is not None:
        raise InputError(f"{entry.ref}@{fmt_ctx(entry.ctx) if entry.ctx else 'max'} and --ctx both give the "
                         "context: give it once")
    return entry


def parse_request(models: tuple[str, ...] | list[str], workload_file: str | None, together: bool,
                  ctx: int | None) -> ParsedRequest:
    """The MODEL arguments and --workload / --together as one request, or one usage error line
    (no model at all is the command line's own error: planner/cli/plan_workload.py)."""
    work = _workload(models, workload_file, together)
    one_model = workload_file is None and len(work.models) == 1 and not work.together
    return ParsedRequest(workload=work, single=_single(work.models[0], ctx) if one_model else None)
