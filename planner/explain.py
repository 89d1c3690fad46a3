"""Words for the planner's facts: one function per fact code, so the text and markdown reports say
what the JSON's `facts[]` hold, in the same order. Nothing here decides anything."""

from __future__ import annotations

from typing import Callable

from .plan_types import Fact
from .units import fmt_bios_size, fmt_bytes, fmt_ctx

_WHERE = {
    "fast": "fully on the GPU",
    "spill": "fully on the GPU, part of it in slower shared memory",
    "partial": "with part of it on the CPU",
}
_POLICY = {
    "quality": "the best-quality quant that runs",
    "balanced": "the best quant up to Q6_K class that runs",
    "speed": "the fastest quant (4-bit class or better) that runs",
}


def ctx_words(n: int) -> str:
    """24576 -> '24k'; 113408 -> '110.8k (113408 tokens)'."""
    return fmt_ctx(n) if n % 1024 == 0 else f"{n / 1024:.1f}k ({n} tokens)"


FactValues = dict[str, float | int | str | bool | None]


def _b(v: object) -> str:
    return fmt_bytes(int(v)) if isinstance(v, (int, float)) else "?"


def _tps(v: object) -> str:
    return f"{float(v):.1f}" if isinstance(v, (int, float)) else "?"


def _where(v: FactValues) -> str:
    """Where the chosen option's bytes live, in words."""
    if v.get("tier") == "cpu_only":
        return "on the CPU from system RAM"
    if v["placement"] == "fast" and v.get("memory_architecture") == "carveout" and v.get("tier") == "dedicated":
        return "fully in the carve-out (dedicated GPU memory)"
    if v["placement"] == "fast" and v.get("memory_architecture") == "unified":
        return "fully on the GPU (unified memory)"
    return _WHERE.get(str(v["placement"]), "")


def _room(v: FactValues) -> str:
    if v.get("tier") == "cpu_only":
        return f"{_b(v['spare_bytes'])} of RAM to spare"
    margin = "estimate margin" if v["placement"] == "fast" and v.get("fast_label") == "carve-out" else "safety margin"
    return f"{_b(v['spare_bytes'])} to spare beyond a {_b(v['safety_bytes'])} {margin}"


def _chosen(f: Fact) -> str:
    v = f.values
    pool = v.get("pool")
    policy = _POLICY.get(str(v["prefer"]), "")
    if pool == "fast" and v.get("tier") != "cpu_only":
        policy = policy.replace("that runs", "that runs at full speed")
    kv = f" with a {v['kv']} KV cache" if pool == "fast-kv" else ""
    return f"{f.quant} is {policy}: {_where(v)}{kv} at {fmt_ctx(int(v['ctx']))} context, {_room(v)}"


def _against(v: FactValues, words: str) -> str:
    """`words` with the option's and the choice's t/s filled in, when both are known ("" otherwise)."""
    if v.get("est_tps") is None or v.get("chosen_tps") is None:
        return ""
    return words.format(est=_tps(v["est_tps"]), chosen=_tps(v["chosen_tps"]))


def _next_spills(f: Fact) -> str:
    v = f.values
    speed = _against(v, " (est. {est} t/s against {chosen} for the choice)")
    return (f"{f.quant} (next in quality) does not fit in fast memory: about {_b(v['spill_bytes'])} would spill into "
            f"{v['spill_label']}, {float(v['slowdown']):.1f}x slower to read{speed}; --allow-spill recommends it anyway")


def _next_blocked(f: Fact) -> str:
    v = f.values
    where = []
    if v.get("carveout_bytes") is not None:
        where.append(f"UMA frame buffer {fmt_bios_size(int(v['carveout_bytes']))}")
    if v.get("gpu_cap_bytes"):
        where.append(f"GPU cap raised to {fmt_bytes(int(v['gpu_cap_bytes']), digits=0)}")
    closest = f" (closest: {', '.join(where)})" if where else ""
    return f"{f.quant} (next in quality) does not fit{closest}: {v['message']}"


def _next_same_class(f: Fact) -> str:
    slower = _against(f.values, " and decodes at {est} vs {chosen} t/s est.")
    return (f"{f.quant} fits too, but above 8 bits per weight quality is within noise (llama.cpp's quantize "
            f"table: Q8_0 +0.0026 ppl vs F16 +0.0020){slower}: --quant {f.quant} to take it anyway")


def _split(f: Fact) -> str:
    v = f.values
    desk = ""
    if v.get("desktop_gpu_bytes"):
        desk = f"; the desktop holds about {_b(v['desktop_gpu_bytes'])} of GPU memory"
    return (f"UMA frame buffer {fmt_bios_size(int(v['carveout_bytes']))}: OS keeps "
            f"{fmt_bios_size(int(v['os_keeps_bytes']))}, {_b(v['os_free_bytes'])} above its {_b(v['reserve_bytes'])} "
            f"reserve ({v['os']}, {v['use']} use){desk}")


def _larger_blocked(f: Fact) -> str:
    v = f.values
    return f"a larger split is not advised: at UMA {fmt_bios_size(int(v['carveout_bytes']))} {v['message']}"


def _filters(f: Fact) -> str:
    v = f.values
    asked = []
    if v.get("min_tps"):
        asked.append(f"--min-tps {float(v['min_tps']):g} at the requested context")
    if v.get("min_prefill_tps"):
        asked.append(f"--min-prefill-tps {float(v['min_prefill_tps']):g}")
    if v.get("max_ttft_s"):
        asked.append(f"--max-ttft {float(v['max_ttft_s']):g}s")
    return f"nothing reaches {' and '.join(asked)} (est.); this is the fastest that fits"


WORDING: dict[str, Callable[[Fact], str]] = {
    "chosen": _chosen,
    "kv_quantized_to_stay_fast": lambda f: (
        f"with a {f.values['requested']} KV cache nothing runs fully in fast memory at this context; a "
        f"{f.values['kv']} KV cache halves the KV memory at a small quality cost (--kv {f.values['requested']} keeps it)"),
    "next_quality_spills": _next_spills,
    "next_quality_blocked": _next_blocked,
    "next_quality_partial": lambda f: f"{f.quant} (next in quality) would need part of the model on the CPU",
    "next_quality_same_class": _next_same_class,
    "next_quality_too_slow": lambda f: (
        f"{f.quant} (next in quality) is estimated at {_tps(f.values['est_tps_at_ctx'])} t/s at this context, "
        f"under --min-tps {float(f.values['min_tps']):g}"),
    "kv_q8_unlocks": lambda f: (
        f"{f.quant} would run in fast memory with a {f.values['kv']} KV cache (--kv {f.values['kv']}: half the KV "
        f"memory, a small quality cost)"),
    "faster_alternative": lambda f: (
        f"{f.quant} decodes about {float(f.values['ratio']):.1f}x faster ({_tps(f.values['est_tps'])} vs "
        f"{_tps(f.values['chosen_tps'])} t/s est.) at a quality loss that is hard to notice: --prefer balanced"),
    "split": _split,
    "os_lever": lambda f: str(f.values["text"]),
    "larger_split_blocked": _larger_blocked,
    "unified_reserve": lambda f: (
        f"the OS keeps {_b(f.values['os_free_bytes'])} above its {_b(f.values['reserve_bytes'])} reserve "
        f"({f.values['os']}, {f.values['use']} use)"),
    "spill_cost": lambda f: f"uses {_b(f.values['spill_bytes'])} of {f.values['label']}: {f.values['text']}",
    "shared_no_cost": lambda f: f"uses {_b(f.values['shared_bytes'])} of shared memory: {f.values['text']}",
    "filters_unmet": _filters,
    "speed_uncalibrated": lambda f: (
        f"speed estimates for {f.values['family']} models on {f.values['backend']} rest on fewer than 3 measured "
        f"rows: treat them as uncalibrated (docs/speed.md)"),
}


def word(f: Fact) -> str:
    """The sentence for one fact (a fact with its own text keeps it)."""
    if f.text:
        return f.text
    fn = WORDING.get(f.code)
    return fn(f) if fn else f.code


def render(facts: list[Fact]) -> list[Fact]:
    """The facts with their sentences filled in."""
    return [f.model_copy(update={"text": word(f)}) for f in facts]
