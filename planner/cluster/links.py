"""The link between cluster members, as data (planner/data/links.toml: each number with its
source), and the RPC costs fitted on field data that sit on top of it."""

from __future__ import annotations

import tomllib
from functools import lru_cache

from pydantic import BaseModel, Field

from .. import data as _data
from ..errors import InputError


class Link(BaseModel):
    id: str
    label: str
    aliases: list[str] = Field(default_factory=list)
    gbps: float = Field(gt=0, description="line rate, Gbit/s")
    rtt_us: float = Field(ge=0, description="TCP round trip, microseconds (assumed)")
    source: str
    local: bool = Field(False, description="cards in one host: no RPC, llama.cpp copies between devices")
    default_for: list[str] = Field(default_factory=list, description="device ids whose clusters use it by default")

    @property
    def bytes_per_s(self) -> float:
        return self.gbps * 1e9 / 8


class RpcCosts(BaseModel):
    round_trips_per_token: float = Field(ge=0)
    per_layer_ms: float = Field(ge=0)
    prefill_factor: float = Field(gt=0, le=1)


@lru_cache(maxsize=1)
def _table() -> dict:
    return tomllib.loads(_data.read("links.toml").decode("utf-8"))


def links() -> dict[str, Link]:
    return {k: Link(id=k, **v) for k, v in _table()["links"].items()}


def rpc_costs() -> RpcCosts:
    return RpcCosts(**_table()["rpc"])


def find_link(name: str) -> Link:
    """A link by id or alias (case-insensitive); an InputError naming the choices otherwise."""
    key = name.strip().lower()
    for link in links().values():
        if key == link.id or key in link.aliases:
            return link
    raise InputError(f"unknown link {name!r}", hint=f"choose one of: {', '.join(links())}")


DEFAULT_RPC_LINK = "10gbe"
DEFAULT_LOCAL_LINK = "pcie"


def default_link(kind: str, device_ids: list[str]) -> Link:
    """The link a plan assumes when --link is not given: PCIe for cards in one host; the link every
    member is built for (DGX Spark: its ConnectX-7), else 10 GbE."""
    if kind == "local":
        return find_link(DEFAULT_LOCAL_LINK)
    for link in links().values():
        if link.default_for and all(d in link.default_for for d in device_ids):
            return link
    return find_link(DEFAULT_RPC_LINK)
