"""The facts a plan states beside the policy's (planner/policy.py): why nothing runs and what would,
how a partial offload splits, the GPU cap to raise, the carve-out in effect now, --no-mmap and Keep
Model in Memory. Each is a Fact with its code, numbers and sentence."""

from __future__ import annotations

from .device_schema import DeviceProfile
from .explain import ctx_words
from .fit_types import FitResult
from .plan_tables import split_text
from .plan_types import CapChange, Fact
from .policy import PARTIAL_MIN_SPEED_SHARE, tps0
from .search import DeviceSetup, Evaluation, Search, cap_raised, placement
from .units import fmt_bios_size, fmt_bytes, fmt_ctx
from .vocab import QUANTIZED_KV


# --------------------------------------------------------------------------- nothing runs


def _blockers(search: Search, smallest: Evaluation, dev: DeviceSetup, ctx: int) -> list[Fact]:
    """Why the smallest quant does not run, naming what really blocks. With a discrete GPU the
    full-offload failure is the GPU, but partial offload moves the model into host RAM: when even
    every layer on the CPU does not fit there, host RAM is the blocker, not the GPU."""
    facts = [Fact(code=f"blocked_{c.name}", quant=smallest.quant, values={"margin_bytes": c.margin_bytes}, text=c.message)
             for c in smallest.best.blocking_failures]
    if not dev.kind.host_ram_apart or dev.est_backend == "cpu":
        return facts
    kv = smallest.kv
    on_cpu = search.breakdown(smallest.variant, ctx=ctx, backend=dev.est_backend, ctk=kv, ctv=kv, ngl=0,
                              mmap=dev.base.mmap)
    least_gpu = search.place(on_cpu, smallest.variant, dev, dev.base)
    host = next((c for c in least_gpu.blocking_failures if c.name == "os_reserve"), None)
    if host is None:
        return facts
    return [Fact(code="blocked_host_ram", quant=smallest.quant, values={"margin_bytes": host.margin_bytes},
                 text=f"host RAM is what blocks: even with every layer on the CPU, {host.message}")]


def _shorter_ctx(evals: list[Evaluation], kv: str) -> tuple[int, list[Fact]]:
    """The longest context any quant reaches (the best quality among equals), as a fact to try."""
    n, e = max(((e.longest(kv), e) for e in evals), key=lambda t: (t[0], t[1].quality))
    if not n:
        return 0, []
    try_ctx = fmt_ctx(n // 1024 * 1024) if n >= 1024 else str(n)
    where = "runs fully on the GPU" if e.max_ctx_mode == "gpu" else "runs"
    return n, [Fact(code="shorter_ctx_fits", quant=e.quant, values={"max_ctx": n},
                    text=f"{e.quant} {where} up to {ctx_words(n)} context: try --ctx {try_ctx}")]


def q8_hint(evals: list[Evaluation], ctx: int, f16_max: int) -> list[Fact]:
    """What --kv q8_0 buys: the best quant that then runs at the requested context, else the
    longest context any quant reaches with it (never just the smallest quant's number)."""
    best = max((e for e in evals if e.longest(QUANTIZED_KV) >= ctx), key=lambda e: e.quality, default=None)
    if best is not None:
        return [Fact(code="kv_q8_longer_ctx", quant=best.quant, values={"max_ctx": best.longest(QUANTIZED_KV)},
                     text=f"with a q8_0 KV cache (--kv q8_0) {best.quant} runs at {fmt_ctx(ctx)} context")]
    n, longest = max(((e.longest(QUANTIZED_KV), e) for e in evals), key=lambda t: (t[0], t[1].quality))
    return [] if n <= f16_max else [
        Fact(code="kv_q8_longer_ctx", quant=longest.quant, values={"max_ctx": n},
             text=f"with a q8_0 KV cache (--kv q8_0) {longest.quant} runs up to {ctx_words(n)} context")]


def no_fit_facts(search: Search, smallest: Evaluation, evals: list[Evaluation], dev: DeviceSetup,
                 ctx: int) -> list[Fact]:
    """Nothing fits: what the smallest quant needs, what blocks it, and what would run instead."""
    r = smallest.best
    need = r.total_need_bytes
    facts = [Fact(code="nothing_fits", quant=smallest.quant, values={"ctx": ctx, "needs_bytes": need},
                  text=(f"{dev.profile.id}: nothing fits at {fmt_ctx(ctx)} context: the smallest quant, "
                        f"{smallest.quant}, needs {fmt_bytes(need)}"))]
    facts += _blockers(search, smallest, dev, ctx)
    longest, shorter = _shorter_ctx(evals, search.req.cache_type_k)
    facts += shorter
    if search.req.cache_type_k == "f16":
        facts += q8_hint(evals, ctx, longest)
    return facts


# --------------------------------------------------------------------------- partial offload


def _partial_split(search: Search, chosen: Evaluation, partial: list[Evaluation], n_layer: int) -> Fact:
    """How the chosen quant splits, and (when it is not the fastest) why it is worth the speed."""
    r = chosen.best
    split = split_text(r, n_layer)
    room = (f"{fmt_bytes(r.gpu_headroom_bytes - r.safety_bytes)} to spare on the GPU beyond a "
            f"{fmt_bytes(r.safety_bytes)} safety margin")
    values: dict[str, float | int | str | bool | None] = {"n_gpu_layers": r.n_gpu_layers, "n_cpu_moe": r.n_cpu_moe}
    fastest = max(partial, key=tps0, default=None)
    if search.req.prefer == "speed" or fastest is None or fastest.quant == chosen.quant or not fastest.speed0:
        return Fact(code="partial_split", quant=chosen.quant, values=values, text=f"{chosen.quant} runs with {split}: {room}")
    return Fact(code="partial_split", quant=chosen.quant, values={**values, "fastest": fastest.quant, "fastest_tps": tps0(fastest)},
                text=(f"{chosen.quant} is the best quality that keeps at least {PARTIAL_MIN_SPEED_SHARE:.0%} of the speed of "
                      f"the fastest option ({fastest.quant}, {tps0(fastest):.1f} t/s est.): {split}, {room}"))


def _best_quality_cost(chosen: Evaluation, partial: list[Evaluation], n_layer: int) -> list[Fact]:
    best_q = max(partial, key=lambda e: e.quality, default=None)
    if best_q is None or best_q.quant == chosen.quant or not best_q.speed0 or not chosen.speed0:
        return []
    return [Fact(code="partial_best_quality_cost", quant=best_q.quant, values={"est_tps": tps0(best_q)},
                 text=(f"{best_q.quant} would run at {tps0(best_q):.1f} t/s (est.) with "
                       f"{split_text(best_q.best, n_layer)}, against {tps0(chosen):.1f} t/s for {chosen.quant}"))]


def _fully_on_gpu_shorter(evals: list[Evaluation], kv: str, ctx: int) -> list[Fact]:
    enough = max(4096, ctx // 4)
    shorter = [e for e in evals if e.longest(kv) >= enough]
    if not shorter:
        return []
    e = max(shorter, key=lambda e: e.quality)
    n = e.longest(kv)
    return [Fact(code="shorter_ctx_fits", quant=e.quant, values={"max_ctx": n},
                 text=f"{e.quant} runs fully on the GPU up to {ctx_words(n)} context (--ctx {fmt_ctx(n // 1024 * 1024)})")]


def partial_facts(search: Search, chosen: Evaluation, evals: list[Evaluation], ctx: int) -> list[Fact]:
    """Nothing runs fully on the GPU: say so, why this quant (quality against speed), what the
    best quality would cost, and what would put a model fully on the GPU (a shorter context)."""
    n_layer = len(chosen.best_bd.layers)
    partial = [e for e in evals if e.placement == "partial" and e.speed0]
    return [Fact(code="partial_nothing_fast", values={"ctx": ctx},
                 text=(f"no quant runs fully on the GPU at {fmt_ctx(ctx)} context: each step up in quality moves "
                       f"more of the model to the CPU and costs speed")),
            _partial_split(search, chosen, partial, n_layer),
            *_best_quality_cost(chosen, partial, n_layer),
            *_fully_on_gpu_shorter(evals, search.req.cache_type_k, ctx)]


# --------------------------------------------------------------------------- the setting and the app


def cap_change_fact(change: CapChange, dev: DeviceSetup) -> Fact:
    return Fact(code="cap_change", values={"from_bytes": change.default_bytes, "to_bytes": change.cap_bytes,
                                           "setting": change.setting},
                text=(f"raise the GPU cap from {fmt_bytes(change.default_bytes)} to {fmt_bytes(change.cap_bytes)}"
                      f"{dev.kind.cap_raise_words}: {change.setting}"))


def _in_effect_option(chosen: Evaluation, profile: DeviceProfile) -> FitResult | None:
    """The chosen quant's option at the carve-out in effect now (--device auto), when that is
    another split than the recommended one."""
    live = profile.live
    now = live.carveout_bytes if live is not None else None
    r = chosen.best
    if now is None or r.carveout_bytes in (None, now):
        return None
    return next((o for o in chosen.options if o.carveout_bytes == now), None)


def current_setup_fact(chosen: Evaluation, profile: DeviceProfile) -> Fact | None:
    """With --device auto: whether the carve-out in effect now already runs the chosen quant in the
    same class of memory without raising the cap (no BIOS change, no reboot)."""
    now = _in_effect_option(chosen, profile)
    if now is None or placement(now) != chosen.placement or cap_raised(now):
        return None
    gain = chosen.best.os_visible_bytes - now.os_visible_bytes
    more = f"; the recommended split gives the OS {fmt_bytes(gain)} more RAM" if gain > 0 else ""
    return Fact(code="current_setup", text=(f"the UMA frame buffer in effect now ({fmt_bios_size(now.carveout_bytes)}) "
                                            f"already runs {chosen.quant} fully on the GPU without a reboot{more}"))


def no_mmap_fact(r: FitResult) -> Fact | None:
    if not r.suggest_no_mmap:
        return None
    msg = next((c.message for c in r.checks if c.name == "page_cache"), "")
    return Fact(code="no_mmap", text=msg or "--no-mmap: the file would otherwise pass through a page cache the OS side "
                                            "cannot hold")


def keep_in_memory_fact(weights_bytes: int) -> Fact:
    return Fact(code="keep_in_memory_off", values={"copy_bytes": weights_bytes},
                text=(f"in LM Studio turn Keep Model in Memory off: it locks a second {fmt_bytes(weights_bytes)} "
                      f"copy of the weights in RAM (--mlock), which would push the OS under its reserve"))
