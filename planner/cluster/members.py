"""Who takes part: `--cluster 2x dgx-spark` / `--cluster a,b` (machines joined by RPC, the first
one the head that runs llama-server) or `--device ID --gpus N` (N cards in one host). Members are
profile references; each keeps every single-device rule (memory classes, carve-out, OS reserve,
load path) because each is planned with its own profile."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from ..errors import InputError

_ITEM = re.compile(r"^(?:(\d+)\s*[x×*]\s*)?(\S+)$", re.IGNORECASE)
MAX_MEMBERS = 16  # llama.cpp GGML_SCHED_MAX_BACKENDS is 16, the CPU backend included


class ClusterShape(BaseModel):
    """The members' profile references in the user's order (the first is the head), and how they
    are joined: machines over RPC, or cards in one host."""

    refs: list[str] = Field(min_length=2)
    kind: Literal["rpc", "local"]


def parse_cluster(text: str) -> ClusterShape:
    """'2x dgx-spark' -> two dgx-spark members; 'a,b' or 'a, 2x b' -> those members."""
    refs: list[str] = []
    for item in (x.strip() for x in text.split(",")):
        m = _ITEM.match(item)
        if not m:
            raise InputError(f"--cluster {text!r}: cannot read {item!r}",
                             hint="write NxDEVICE (2x dgx-spark) or a comma list of device ids")
        count = int(m.group(1) or 1)
        if count < 1:
            raise InputError(f"--cluster {text!r}: a count of {count} members",
                             hint="give a count of at least 1 per device (2x dgx-spark)")
        refs += [m.group(2)] * count
    return _checked(ClusterShape.model_construct(refs=refs, kind="rpc"), "--cluster", text)


def parse_gpus(device: str, count: int) -> ClusterShape:
    """--device ID --gpus N: N identical cards in one host."""
    if count < 1:
        raise InputError(f"--gpus {count}: give at least 1 card")
    return _checked(ClusterShape.model_construct(refs=[device] * count, kind="local"), "--gpus", str(count))


def _checked(shape: ClusterShape, flag: str, text: str) -> ClusterShape:
    n = len(shape.refs)
    if n < 2:
        raise InputError(f"{flag} {text}: a cluster needs at least two members",
                         hint="give a count (2x dgx-spark) or two device ids (a,b); one machine is plain --device")
    if n > MAX_MEMBERS:
        raise InputError(f"{flag} {text}: {n} members; llama.cpp schedules at most {MAX_MEMBERS} devices")
    return ClusterShape(refs=shape.refs, kind=shape.kind)
