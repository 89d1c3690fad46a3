"""The cluster search: for each quant, every -ts ratio on a grid (plus the one proportional to
each member's memory), each member placed with its own profile (every configuration the single
device plan weighs: BIOS carve-outs, GPU cap raises), the pipeline's speed; the best split per
quant. The runtime's own rules (its device order, each device's buffers) come from the engine the
Search holds (`Engine.multi_device`). Nothing here chooses the quant (planner/cluster/plan.py) or
words anything."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

from ..device_schema import DeviceProfile
from ..errors import InputError
from ..estimate_types import Breakdown, DeviceUsage
from ..fit import FitResult
from ..plan_types import PlanVariant
from ..fit import last_fitting
from ..runtime.base import Engine, MultiDevice
from ..search import CTX_STEP, DeviceSetup, Search, fast_slack, placement
from .links import Link
from .speed import F32, pipeline_tps, rpc_overhead_s
from .types import DeviceBuffers, SplitEstimate

GRID = {2: 16, 3: 8, 4: 6}  # ratio steps per member count (more members: a coarser grid)
NEAR_FASTEST = 0.97  # splits within 3% of the fastest count as fast; among them the most headroom wins


@dataclass
class MemberFit:
    setup: DeviceSetup
    buffers: DeviceBuffers
    breakdown: Breakdown | None  # None: the member holds nothing
    fit: FitResult | None


@dataclass
class SplitResult:
    ts: list[float]  # member order
    split: SplitEstimate
    members: list[MemberFit]
    member_s: list[float]
    link_s: float

    allowed: frozenset[str] = frozenset({"fast"})

    @property
    def fits(self) -> bool:
        """Every member holds its share in fast memory (a spill only with --allow-spill)."""
        return all(m.fit is None or placement(m.fit) in self.allowed for m in self.members)

    @property
    def tps(self) -> float:
        return pipeline_tps(self.member_s, self.link_s)

    @property
    def headroom(self) -> float:
        """The tightest member's spare memory as a share of its capacity."""
        return min((m.fit.fast_spare_bytes / max(1, m.fit.gpu_capacity_bytes) for m in self.members if m.fit),
                   default=0.0)

    @property
    def shortfall(self) -> int:
        return sum(m.fit.shortfall_bytes for m in self.members if m.fit and not m.fit.fits)


def multi_device(engine: Engine) -> MultiDevice:
    """The engine's split over several devices; an InputError when it plans one device only."""
    if engine.multi_device is None:
        raise InputError(f"runtime {engine.id} plans one device: it cannot split a model for --cluster / --gpus",
                         hint="plan one device with --device, or the cluster with --runtime llama.cpp")
    return engine.multi_device


def ratio_grid(n: int) -> list[tuple[int, ...]]:
    """Every split of GRID[n] steps into n positive parts."""
    steps = GRID.get(n, n + 2)
    return [c for c in itertools.product(range(1, steps), repeat=n) if sum(c) == steps]


def member_breakdown(bd: Breakdown, buf: DeviceBuffers, host: DeviceBuffers | None) -> Breakdown:
    """One member's share as a breakdown the fit solver and the speed model read: its layers on
    its GPU, the head's host buffers on its host side."""
    gpu0, host0 = bd.device("gpu"), bd.device("host")
    gpu = DeviceUsage(device="gpu", weights_bytes=buf.weights_bytes, kv_bytes=buf.kv_bytes,
                      recurrent_bytes=buf.recurrent_bytes, compute_bytes=buf.compute_bytes,
                      overhead_bytes=gpu0.overhead_bytes)
    h = host or DeviceBuffers(device="host")
    hostu = DeviceUsage(device="host", weights_bytes=h.weights_bytes, compute_bytes=h.compute_bytes,
                        output_bytes=h.output_bytes, overhead_bytes=host0.overhead_bytes if host else 0)
    layers = [replace(bd.layers[i]) for i in buf.layers]
    out_w = buf.weights_bytes - sum(l.weights_bytes for l in layers)
    total = gpu.total_bytes + hostu.total_bytes
    return bd.model_copy(update=dict(
        devices=[gpu, hostu], layers=layers, weights_bytes=gpu.weights_bytes + hostu.weights_bytes,
        kv_bytes=gpu.kv_bytes, recurrent_bytes=gpu.recurrent_bytes,
        compute_bytes=gpu.compute_bytes + hostu.compute_bytes,
        output_bytes=hostu.output_bytes, total_bytes=total, nonrepeating_weights={"output.weight": out_w},
        output_on_gpu=buf.holds_output))


class ClusterSearch:
    """Places one model's splits on the members (one Search: its estimates, setups and speeds)."""

    def __init__(self, search: Search, profiles: list[DeviceProfile], kind: str, link: Link) -> None:
        self.search = search
        self.devices = multi_device(search.engine)
        self.kind = kind
        self.link = link
        self.setups = [search.setup(p) for p in profiles]
        self.order = self.devices.device_order(len(profiles), kind)
        self.allowed = frozenset({"fast", "spill"} if search.req.allow_spill else {"fast"})

    def full(self, v: PlanVariant, ctx: int) -> Breakdown:
        """The single-device full-offload estimate the split starts from (the head's backend)."""
        kv = self.search.req.cache_type_k, self.search.req.cache_type_v
        return self.search.breakdown(v, ctx=ctx, backend=self.setups[0].est_backend, ctk=kv[0], ctv=kv[1],
                                     mmap=self.setups[0].base.mmap)

    def evaluate(self, v: PlanVariant, bd: Breakdown, ts: list[float]) -> SplitResult:
        llama_ts = [0.0] * len(ts)
        for member, dev in enumerate(self.order):
            llama_ts[dev] = ts[member]
        split = self.devices.split(self.search.facts(v), bd, llama_ts)
        members = [self._member(v, bd, split, i) for i in range(len(ts))]
        member_s = [self._member_s(v, m) for m in members]
        remote = [len(m.buffers.layers) + m.buffers.holds_output for i, m in enumerate(members) if i > 0]
        hidden = self.search.facts(v).n_embd * F32
        crossings = len(ts) if self.kind == "rpc" else len(ts) - 1
        return SplitResult(ts=ts, split=split, members=members, member_s=member_s,
                           link_s=rpc_overhead_s(remote, self.link, hidden, crossings), allowed=self.allowed)

    def _member(self, v: PlanVariant, bd: Breakdown, split: SplitEstimate, i: int) -> MemberFit:
        buf = split.devices[self.order[i]]
        setup = self.setups[i]
        if not buf.layers and not buf.holds_output:
            return MemberFit(setup=setup, buffers=buf, breakdown=None, fit=None)
        mbd = member_breakdown(bd, buf, split.host if i == 0 else None)
        options = self.search.place_options(mbd, v, setup)
        best = min(options, key=lambda r: self.search.rank(r, 0.0, setup))
        return MemberFit(setup=setup, buffers=buf, breakdown=mbd, fit=best)

    def _member_s(self, v: PlanVariant, m: MemberFit) -> float:
        if m.breakdown is None or m.fit is None:
            return 0.0
        tps = self.search.speed(m.breakdown, m.fit, m.setup, 0, v).tps
        return 1.0 / tps if tps > 0 else 0.0

    def candidates(self, n: int) -> list[list[float]]:
        """The grid and the split proportional to each member's GPU memory."""
        gib = [max(1, s.profile.ram_bytes // 2**30) for s in self.setups]
        caps = [float(g // math.gcd(*gib)) for g in gib]
        grid = [list(map(float, c)) for c in ratio_grid(n)]
        return [caps] + [g for g in grid if g != caps]

    def best(self, v: PlanVariant, ctx: int) -> SplitResult:
        """The best split for this quant: among those that fit, the most headroom within 3% of the
        fastest; with none fitting, the closest miss."""
        bd = self.full(v, ctx)
        results = [self.evaluate(v, bd, ts) for ts in self.candidates(len(self.setups))]
        fitting = [r for r in results if r.fits]
        if not fitting:
            return min(results, key=lambda r: r.shortfall)
        fastest = max(r.tps for r in fitting)
        return max((r for r in fitting if r.tps >= NEAR_FASTEST * fastest), key=lambda r: r.headroom)

    def max_ctx(self, v: PlanVariant, ts: list[float], ctx: int, limit: int) -> int:
        """The longest context (a multiple of 256, at most `limit`) this split still holds in fast
        memory on every member; `ctx` when it holds no more."""
        def slack(k: int) -> int:
            r = self.evaluate(v, self.full(v, k * CTX_STEP), ts)
            return min((fast_slack(m.fit) if placement(m.fit) in self.allowed else -1
                        for m in r.members if m.fit is not None), default=-1)

        lo, hi = -(-ctx // CTX_STEP), limit // CTX_STEP
        if hi <= lo:
            return ctx
        found = last_fitting(slack, lo, hi)
        return max(ctx, found * CTX_STEP) if found is not None else ctx
