"""How the candidate settings of a workload are ranked for the set (CRITERIA, first decides), why
the chosen one wins, which ones are dominated, and what a model gives up on a setting against its
own best. Every criterion is one small measure over the candidate's outcomes (higher is better):

1. runs: the most models that run (and meet the speed filters);
2. order: among equal counts, the models listed first keep running (the list is a priority);
3. fast: the most models with every GPU byte in fast memory (the policy's first rule);
4. kv: the most models with the requested KV cache type (the policy quantizes it only to stay fast);
5. usable: the most models that, where they spill or offload, keep at least half the speed of their
   fastest option (the single-model policy's PARTIAL_MIN_SPEED_SHARE for slow options);
6. best_quality: the most models at the best quant they reach on any candidate;
7. quality: the most bits per weight summed over the models (Q8_0 and up count as 8);
8. gpu: the most models fully on the GPU (no layers on the CPU): a tie-break, as in the single-model
   policy, which weighs spilling and partial offload alike;
9. speed: the fastest at the requested context, counted for models that spill or offload;
10. os: the smallest carve-out (the OS keeps the most RAM);
11. cap: no GPU-limit raise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .plan_types import DevicePlan
from .policy import NEAR_LOSSLESS_BPW, PARTIAL_MIN_SPEED_SHARE
from .variants import quality_key
from .workload_settings import SettingSpec
from .workload_types import Placement, Setting

PLACEMENT_ORDER = {"fast": 0, "spill": 1, "partial": 2, "none": 3}
SPEED_LOSS = 0.10  # a model "gives up speed" on a setting when it decodes this much slower than alone
ScoreValue = int | float | tuple[bool, ...]


@dataclass
class Outcome:
    """One model's plan on one setting, reduced to what the ranking compares."""

    plan: DevicePlan
    fits: bool  # runs and meets the speed filters (the plan's `fits`)
    runs: bool  # runs at all (below the speed filters, too)
    placement: Placement
    quality: tuple[float, int]  # quality class (8 bpw and up: one near-lossless class)
    tps: float  # decode at the requested context (0 when unknown)

    @property
    def quant(self) -> str | None:
        return self.plan.recommendation.quant if self.runs else None

    @property
    def kv(self) -> str:
        return self.plan.recommendation.cache_type_k

    def goodness(self) -> tuple[bool, int, tuple[float, int]]:
        """The single-model preference order: runs, then faster memory, then quality."""
        return (self.fits, -PLACEMENT_ORDER[self.placement], self.quality if self.fits else (-1.0, 0))


@dataclass
class Candidate:
    spec: SettingSpec
    outcomes: list[Outcome]
    setting: Setting
    score: dict[str, ScoreValue] = field(default_factory=dict)

    def count(self, key: str) -> int:
        """A criterion that counts models (runs, fast...)."""
        v = self.score[key]
        assert isinstance(v, int), key
        return v


def quality_class(quant: str, size_bytes: int) -> tuple[float, int]:
    bpw, size = quality_key(quant, size_bytes)
    return (NEAR_LOSSLESS_BPW, 0) if bpw >= NEAR_LOSSLESS_BPW else (bpw, size)


def outcome(plan: DevicePlan) -> Outcome:
    r = plan.recommendation
    if r.tier == "no_fit":
        return Outcome(plan=plan, fits=False, runs=False, placement="none", quality=(-1.0, 0), tps=0.0)
    size = next((v.size_bytes for v in plan.variants if v.quant == r.quant), 0)
    return Outcome(plan=plan, fits=plan.fits, runs=True, placement=r.placement,
                   quality=quality_class(r.quant or "", size), tps=r.est_tps_at_ctx or r.est_tps or 0.0)


# --------------------------------------------------------------------------- the criteria


@dataclass(frozen=True)
class Yardsticks:
    """What each model reaches over all candidates (or alone): the measures compare against it."""

    best_quality: list[tuple[float, int]]  # the best quality class it reaches on any candidate
    best_tps: list[float]  # its fastest decode at the requested context on any candidate
    fastest: list[float]  # the fastest option it has at all (alone): what slow options are measured by
    allow_spill: bool

    def ok_places(self) -> set[str]:
        return {"fast", "spill"} if self.allow_spill else {"fast"}


Measure = Callable[[list[Outcome], Yardsticks], ScoreValue]


def _usable(i: int, o: Outcome, y: Yardsticks) -> bool:
    """It runs, in fast memory or at least PARTIAL_MIN_SPEED_SHARE as fast as its fastest option."""
    yardstick = y.fastest[i] if y.fastest else y.best_tps[i]
    est = o.plan.recommendation.est_tps or 0.0
    return o.runs and (o.placement in y.ok_places() or est >= PARTIAL_MIN_SPEED_SHARE * yardstick)


def _slow_speed(outs: list[Outcome], y: Yardsticks) -> float:
    """Speed against each model's best, summed over the models that spill or offload."""
    return round(sum(o.tps / y.best_tps[i] for i, o in enumerate(outs)
                     if o.runs and o.placement != "fast" and y.best_tps[i] > 0), 2)


# runs/order count models that meet the speed filters; the rest also weigh models that run too
# slowly for them (as the single-model policy shows the fastest option when none meets them)
MEASURES: dict[str, Measure] = {
    "runs": lambda outs, y: sum(o.fits for o in outs),
    "order": lambda outs, y: tuple(o.fits for o in outs),
    "fast": lambda outs, y: sum(o.runs and o.placement in y.ok_places() for o in outs),
    "kv": lambda outs, y: sum(o.runs and o.kv == o.plan.cache_type_k for o in outs),
    "usable": lambda outs, y: sum(_usable(i, o, y) for i, o in enumerate(outs)),
    "best_quality": lambda outs, y: sum(o.runs and o.quality >= y.best_quality[i] for i, o in enumerate(outs)),
    "quality": lambda outs, y: round(sum(max(0.0, o.quality[0]) for o in outs if o.runs), 2),
    "gpu": lambda outs, y: sum(o.runs and o.placement in ("fast", "spill") for o in outs),
    "speed": _slow_speed,
}


@dataclass(frozen=True)
class Criterion:
    key: str
    words: str  # "it {words}": what the chosen setting does on this criterion ({v} = its value)
    counted: bool = True  # say how many settings do the same


CRITERIA: tuple[Criterion, ...] = (
    Criterion("runs", "runs {v} models"),
    Criterion("order", "keeps the models listed first running (the list order is the priority)"),
    Criterion("fast", "runs {v} models with every GPU byte in fast memory ({fast_label})"),
    Criterion("kv", "keeps the requested KV cache type for {v} models"),
    Criterion("usable", "keeps {v} models at least half as fast as their fastest option where they spill or offload"),
    Criterion("best_quality", "gives {v} models the best quant they reach on any setting"),
    Criterion("quality", "gives the most bits per weight over all models"),
    # the single-model policy weighs a spilling and a partly offloaded option alike (by speed and
    # quality), so "fully on the GPU" only breaks ties
    Criterion("gpu", "runs {v} models fully on the GPU (no layers on the CPU)"),
    Criterion("speed", "is the fastest where a model spills or offloads"),
    Criterion("os", "leaves the OS the most RAM (the smallest carve-out)", counted=False),
    Criterion("cap", "needs no GPU memory limit change", counted=False),
)


def score(c: Candidate, y: Yardsticks) -> dict[str, ScoreValue]:
    """The ranking keys of one candidate (higher is better), for every criterion."""
    out = {key: measure(c.outcomes, y) for key, measure in MEASURES.items()}
    out["os"] = -(c.spec.carveout_bytes or 0)
    out["cap"] = 0 if c.setting.cap_change is not None else 1
    return out


def rank_key(c: Candidate) -> tuple[ScoreValue, ...]:
    return tuple(c.score[k.key] for k in CRITERIA)


def of_n(v: int, n: int) -> str:
    """'both', 'all 3', '1 of 2' (models)."""
    return both(n) if v == n and n > 1 else f"{v} of {n}"


def both(n: int) -> str:
    """'both' for two, 'all 3' for more."""
    return "both" if n == 2 else f"all {n}"


def _clause(k: Criterion, chosen: Candidate, left: int, pool: int, n: int, fast_label: str) -> str:
    v = chosen.score[k.key]
    text = k.words.format(v=of_n(v, n) if isinstance(v, int) else v, fast_label=fast_label or "fast memory")
    if not k.counted:
        return text
    return text + (" (the only one)" if left == 1 else f" ({left} of {pool} settings do)")


def reason(chosen: Candidate, cands: list[Candidate], n: int, fast_label: str) -> str:
    """Why this setting, as the criteria that narrowed the candidates down to it, each with how many
    settings still tied: "it runs 2 of 2 models (9 of 10 settings do); of those, it runs 2 of 2
    models with every GPU byte in fast memory (carve-out) (the only one)"."""
    if len(cands) == 1:
        return "the only setting to weigh on this device"
    clauses = _narrowing(chosen, cands, n, fast_label)
    return "; ".join(clauses) if clauses else "every setting weighed gives the same result; this is the first of them"


def _narrowing(chosen: Candidate, cands: list[Candidate], n: int, fast_label: str) -> list[str]:
    """The criteria that narrowed the candidates down to the chosen one, each as a clause."""
    pool = list(cands)
    clauses: list[str] = []
    for k in CRITERIA:
        left = [c for c in pool if c.score[k.key] == chosen.score[k.key]]
        if len(left) < len(pool):
            clause = _clause(k, chosen, len(left), len(pool), n, fast_label)
            clauses.append(("it " if not clauses else "of those, it ") + clause)
            pool = left
    return clauses


def dominated(rows: list[Candidate]) -> list[bool]:
    """A candidate is dominated when another is at least as good for every model (the single-model
    order: runs, memory class, quality) and better for one, or equal for all and ranked higher."""
    order = sorted(range(len(rows)), key=lambda i: rank_key(rows[i]), reverse=True)
    position = {i: k for k, i in enumerate(order)}
    goods = [[o.goodness() for o in r.outcomes] for r in rows]

    def beats(j: int, i: int) -> bool:
        at_least = all(y >= x for x, y in zip(goods[i], goods[j]))
        return at_least and (goods[j] != goods[i] or position[j] < position[i])

    return [any(beats(j, i) for j in range(len(rows)) if j != i) for i in range(len(rows))]


# --------------------------------------------------------------------------- losses


def _placement_loss(o: Outcome, best: Outcome) -> str:
    if PLACEMENT_ORDER[o.placement] <= PLACEMENT_ORDER[best.placement]:
        return ""
    return {"spill": "spills into slower shared memory", "partial": "runs partly on the CPU"}.get(o.placement, o.placement)


def _speed_loss(o: Outcome, best: Outcome) -> str:
    slower = best.tps > 0 and o.tps < (1 - SPEED_LOSS) * best.tps
    return f"{o.tps:.1f} t/s instead of {best.tps:.1f}" if slower else ""


# what a model may give up against its own best, in the order the words list them
LOSSES: dict[str, Callable[[Outcome, Outcome], str]] = {
    "placement": _placement_loss,
    "quality": lambda o, best: f"{o.quant} instead of {best.quant}" if o.quality < best.quality else "",
    "kv": lambda o, best: f"a {o.kv} KV cache" if o.kv != best.kv else "",
    "speed": _speed_loss,
}


def loss(o: Outcome, best: Outcome) -> tuple[list[str], str]:
    """What a model gives up on a setting against its own best (codes, words)."""
    if not o.runs:
        return ["no_fit"], "does not run" if best.runs else "does not run (on no setting)"
    if not o.fits and best.fits:
        return ["speed"], f"{o.quant} at {o.tps:.1f} t/s misses the speed filters"
    if not best.fits:
        return [], ""
    found = {code: words for code, fn in LOSSES.items() if (words := fn(o, best))}
    return list(found), ", ".join(found.values())
