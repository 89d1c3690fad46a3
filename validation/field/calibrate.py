"""Fit the speed model's few parameters on the field rows, and report fit and held-out errors.

    python -m validation.field.calibrate            # fit, print, write planner/data/speed.toml
    python -m validation.field.calibrate --check    # print the errors of the current parameters only

Parameters (each with a physical meaning, planner/speed.py):
- decode efficiency per memory system (eta: the share of peak bandwidth a big dense model reads at),
- per-layer dispatch latency per backend, the dispatch units of an MoE layer and of a recurrent layer,
- decode factors for Windows' drivers (Vulkan, ROCm) and for ROCm elsewhere,
- the CPU's share of its RAM bandwidth (layers offloaded to the CPU),
- prefill efficiency per backend (share of the FP16 peak), the MFLOPs per expert call at which an
  MoE layer's matmuls reach half speed, and the exponent of that saturation curve.
Rows listed in validation/field/holdout.toml are never used to fit; the printout gives both errors.
Minimised: the mean squared log error of decode (and prefill, weighted) over the fit rows, by
coordinate descent in log space (no extra dependency; 20-odd parameters, a few hundred rows).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
from planner.speed import SpeedParams, default_params, estimate_prefill, estimate_speed
from validation.field import harness as H

SPEED_TOML = H.REPO / "planner" / "data" / "speed.toml"
PREFILL_WEIGHT = 1.0
# Section A rows are first-hand, on the machine this project is for, with known settings: they
# weigh as much as several second-hand rows (the target is that every one of them agrees).
SECTION_A_WEIGHT = 6.0
# Tried: fitting the Windows shared-memory factor as a bandwidth factor. It settles at 1.81, between
# GLM-4.7-Flash (A1/A2 want 2.48) and Qwen3-VL-32B (A7/A8 want ~2), and breaks A1; the measured
# 2.48 (A2 / A1, the same model and runtime) stays, a direct measurement rather than a fit.
FIT_SHARED = False
FIT_MOE_HALF = True  # tested: a per-expert batch-size term fits worse than the weight-read bound alone


@dataclass
class Case:
    row: H.Row
    pred: H.Prediction
    kind: str  # decode | prefill
    observed: float
    holdout: bool


def cases() -> tuple[list[Case], list[tuple[str, str]]]:
    out: list[Case] = []
    skipped: list[tuple[str, str]] = []
    for row in H.load_rows():
        o = row.sec("outcome")
        if o.get("decode_tps") is None and o.get("prefill_tps") is None:
            continue
        try:
            pred = H.replay(row)
        except H.NotReplayable as e:
            skipped.append((row.id, str(e)))
            continue
        hold = H.is_holdout(row)
        why_not = H.excluded(row)
        if o.get("decode_tps") is not None and "decode" not in why_not:
            out.append(Case(row, pred, "decode", float(o["decode_tps"]), hold))
        if (o.get("prefill_tps") is not None and o.get("prefill_tokens") and pred.profile.gpu_tflops_fp16
                and "prefill" not in why_not):
            out.append(Case(row, pred, "prefill", float(o["prefill_tps"]), hold))
    return out, skipped


# --------------------------------------------------------------------------- parameter vector


def vector(p: SpeedParams, classes: list[str]) -> dict[str, float]:
    v = {f"lat.{k}": p.layer_latency_s.get(k, 40e-6) for k in ("cuda", "vulkan", "rocm", "metal")}
    v["units.moe"] = p.layer_units.get("moe", 2.0)
    v["units.recurrent"] = p.layer_units.get("recurrent", 1.0)
    v["units.mla"] = p.layer_units.get("mla", 1.0)
    for k in ("cuda", "vulkan", "rocm", "metal"):
        v[f"fa.{k}"] = p.attention_efficiency.get(k, 0.2)
    for k in ("lmstudio/vulkan", "lmstudio/rocm", "ollama/*"):
        v[f"be.{k}"] = p.backend_efficiency.get(k, 1.0)
    v["cpu"] = p.cpu_efficiency
    for k in ("cuda", "vulkan", "rocm", "metal", "vulkan-amdvlk"):
        v[f"pp.{k}"] = p.prefill_efficiency.get(k, 0.3)
    if FIT_MOE_HALF:
        v["pp.moe_half"] = p.moe_tokens_half or 200.0
        v["pp.moe_power"] = p.moe_saturation_power
    for c in classes:
        v[f"eta.{c}"] = p.device_efficiency.get(c, 0.8)
    for t in DECODE_TYPES:
        v[f"td.{t}"] = p.type_decode.get(t, 1.0)
    if FIT_SHARED:
        v["shared.windows/vulkan"] = SHARED.get("windows/vulkan", 2.48)
    return v


# quant types whose decode kernels get an efficiency of their own (q4_K = 1): Q6_K's unpacking is the
# known slow one (field A2 vs A6: 1.68x the time for 1.36x the bytes). Tried and dropped: a factor for
# every type, and per-type prefill factors: they fit noise (held-out prefill 81 % -> 76 %).
DECODE_TYPES = ("q6_k",)


# the Windows shared-memory penalty as a bandwidth factor (planner/data/memory.toml holds the result)
SHARED: dict[str, float] = {}


def params_of(v: dict[str, float], base: SpeedParams) -> SpeedParams:
    SHARED["windows/vulkan"] = v.get("shared.windows/vulkan", SHARED.get("windows/vulkan", 2.48))
    return replace(
        base,
        layer_latency_s={**base.layer_latency_s, **{k[4:]: x for k, x in v.items() if k.startswith("lat.")}},
        layer_units={**base.layer_units, "moe": v["units.moe"], "recurrent": v["units.recurrent"], "mla": v["units.mla"]},
        attention_efficiency={k[3:]: x for k, x in v.items() if k.startswith("fa.")},
        backend_efficiency={k[3:]: x for k, x in v.items() if k.startswith("be.")},
        cpu_efficiency=v["cpu"],
        prefill_efficiency={**base.prefill_efficiency, **{k[3:]: x for k, x in v.items() if k.startswith("pp.") and k not in ("pp.moe_half", "pp.moe_power")}},
        moe_tokens_half=v.get("pp.moe_half", 0.0),
        moe_saturation_power=v.get("pp.moe_power", 1.0),
        device_efficiency={k[4:]: x for k, x in v.items() if k.startswith("eta.")},
        type_decode={k[3:]: x for k, x in v.items() if k.startswith("td.")},
        type_prefill={k[3:]: x for k, x in v.items() if k.startswith("tp.")},
    )


BOUNDS = {"lat.": (0.0, 400e-6), "units.": (0.0, 8.0), "fa.": (0.01, 1.0), "td.": (0.4, 2.5), "shared.": (1.0, 8.0), "tp.": (0.2, 5.0), "be.": (0.1, 1.5), "cpu": (0.1, 1.0), "pp.": (0.02, 1.0),
          "pp.moe_half": (1.0, 20000.0), "pp.moe_power": (0.3, 4.0), "eta.": (0.2, 1.0)}


def _bounds(name: str) -> tuple[float, float]:
    for prefix in sorted(BOUNDS, key=len, reverse=True):
        if name.startswith(prefix):
            return BOUNDS[prefix]
    return (1e-6, 1e6)


def predict(c: Case, p: SpeedParams) -> float | None:
    pred = c.pred
    prof = pred.profile
    eta = p.device_efficiency.get(pred.efficiency_class)
    if eta is not None:
        prof = prof.model_copy(update={"decode_efficiency": eta})
    o = c.row.sec("outcome")
    fit = pred.fit if pred.fit.fits else pred.fit.model_copy(update={"tier": "dedicated"})
    if FIT_SHARED and fit.shared_slowdown > 1.0 and fit.config.os == "windows" and SHARED:
        fit = fit.model_copy(update={"shared_slowdown": SHARED["windows/vulkan"]})
    if c.kind == "decode":
        s = estimate_speed(pred.breakdown, fit, prof, ratio=pred.compute.expert_ratio,
                           depth=int(o.get("decode_depth") or 0), compute=pred.compute, params=p,
                           app=H.app_of(c.row))
        return s.tps or None
    pf = estimate_prefill(pred.breakdown, fit, prof, pred.compute, tokens=int(o["prefill_tokens"]),
                          depth=int(o.get("prefill_depth") or 0), params=p)
    return pf.tps if pf else None


def loss(cs: list[Case], p: SpeedParams) -> float:
    total = 0.0
    for c in cs:
        y = predict(c, p)
        if not y:
            total += 4.0
            continue
        e = math.log(y / c.observed) ** 2
        w = SECTION_A_WEIGHT if c.row.file == "section_a.toml" else 1.0
        total += e * w * (PREFILL_WEIGHT if c.kind == "prefill" else 1.0)
    return total / max(1, len(cs))


def residuals(cs: list[Case], p: SpeedParams) -> list[float]:
    """Weighted log errors, one per case (the least-squares residual vector)."""
    out = []
    for c in cs:
        y = predict(c, p)
        e = math.log(y / c.observed) if y else 2.0
        w = SECTION_A_WEIGHT if c.row.file == "section_a.toml" else 1.0
        out.append(e * math.sqrt(w * (PREFILL_WEIGHT if c.kind == "prefill" else 1.0)))
    return out


OFFSET = 20.0


def fit_lsq(cs: list[Case], base: SpeedParams, classes: list[str]) -> SpeedParams:
    """Trust-region least squares on log parameters (scipy, a dev-only dependency of this script)."""
    from scipy.optimize import least_squares

    v0 = vector(base, classes)
    names = list(v0)
    # x = log(value) + OFFSET: scipy's finite differences misbehave at exactly x = 0 (a value of 1.0)
    lo = [math.log(max(_bounds(n)[0], 1e-7)) + OFFSET for n in names]
    hi = [math.log(_bounds(n)[1]) + OFFSET for n in names]
    x0 = [min(max(math.log(max(v0[n], 1e-7)) + OFFSET, a + 1e-6), b - 1e-6) for n, a, b in zip(names, lo, hi)]
    train = [c for c in cs if not c.holdout]

    def f(x: list[float]) -> list[float]:
        return residuals(train, params_of(dict(zip(names, (math.exp(t - OFFSET) for t in x))), base))

    res = least_squares(f, x0, bounds=(lo, hi), loss="huber", f_scale=0.3, diff_step=1e-3, x_scale="jac",
                        ftol=1e-8, xtol=1e-8, gtol=1e-8, max_nfev=60)
    print(f"least squares: {res.nfev} evaluations, cost {res.cost:.4f}", file=sys.stderr)
    return params_of(dict(zip(names, (math.exp(t - OFFSET) for t in res.x))), base)


def fit(cs: list[Case], base: SpeedParams, classes: list[str], sweeps: int = 6) -> SpeedParams:
    try:
        return fit_lsq(cs, base, classes)
    except ImportError:  # no scipy: the coordinate descent below
        pass
    v = vector(base, classes)
    train = [c for c in cs if not c.holdout]
    best = loss(train, params_of(v, base))
    for sweep in range(sweeps):
        step = 0.5 / (1 + sweep)
        for k in list(v):
            lo, hi = _bounds(k)
            for direction in (1, -1):
                improved = True
                while improved:
                    improved = False
                    trial = dict(v)
                    cur = v[k] if v[k] > 0 else 1e-6
                    trial[k] = min(hi, max(lo, cur * math.exp(direction * step)))
                    val = loss(train, params_of(trial, base))
                    if val < best - 1e-9:
                        v, best, improved = trial, val, True
        print(f"sweep {sweep + 1}: loss {best:.4f}", file=sys.stderr)
    return params_of(v, base)


# --------------------------------------------------------------------------- reporting


def errors(cs: list[Case], p: SpeedParams) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for kind in ("decode", "prefill"):
        for split in ("fit", "held-out"):
            sel = [c for c in cs if c.kind == kind and c.holdout == (split == "held-out")]
            if not sel:
                continue
            ratios = [(predict(c, p) or 0) / c.observed for c in sel]
            within = sum(1 for r in ratios if (abs(r - 1) <= 0.30 if kind == "decode" else 1 / 1.5 <= r <= 1.5))
            logs = [abs(math.log(r)) for r in ratios if r > 0]
            out[f"{kind}/{split}"] = {"rows": len(sel), "within": within, "share": within / len(sel),
                                      "median_abs_err": statistics.median([abs(r - 1) for r in ratios]),
                                      "rms_log": math.sqrt(sum(x * x for x in logs) / max(1, len(logs)))}
    return out


def evidence(cs: list[Case]) -> dict[str, int]:
    ev: dict[str, int] = {}
    for c in cs:
        if c.holdout:
            continue
        key = f"{c.pred.backend}/{c.pred.family if c.kind == 'decode' else 'prefill'}"
        ev[key] = ev.get(key, 0) + 1
    return dict(sorted(ev.items()))


def write_toml(p: SpeedParams, ev: dict[str, int], errs: dict[str, dict[str, float]]) -> None:
    lines = [
        "# Speed-model parameters (planner/speed.py), fitted by validation/field/calibrate.py on the",
        "# calibration rows of validation/field/*.toml (rows in holdout.toml never used). docs/speed.md",
        "# lists each parameter with the rows that fix it, and the fit and held-out errors. Regenerate:",
        "#   python -m validation.field.calibrate",
        'source = "fitted on validation/field (calibrate.py); ' + "; ".join(
            f"{k}: {v['within']}/{v['rows']} within band" for k, v in errs.items()) + '"',
        "", "[decode]", f"cpu_efficiency = {p.cpu_efficiency:.3f}",
        "", "[decode.layer_latency_us]",
    ]
    for k in ("cuda", "vulkan", "rocm", "metal"):
        lines.append(f"{k} = {p.layer_latency_s[k] * 1e6:.1f}")
    lines += [f"cpu = {p.layer_latency_s.get('cpu', 0.0) * 1e6:.1f}",
              f"default = {max(p.layer_latency_s[k] for k in ('cuda', 'vulkan', 'rocm', 'metal')) * 1e6:.1f}",
              "", "[decode.layer_units]", "dense = 1.0", f"moe = {p.layer_units['moe']:.3f}",
              f"recurrent = {p.layer_units['recurrent']:.3f}", f"mla = {p.layer_units['mla']:.3f}", "",
              "[decode.backend_efficiency]"]
    for k, x in sorted(p.backend_efficiency.items()):
        lines.append(f'"{k}" = {x:.3f}')
    lines += ["", "[prefill]", f"pcie_gbps = {p.pcie_gbps:g}", f"moe_tokens_half = {p.moe_tokens_half:.1f}",
              f"moe_saturation_power = {p.moe_saturation_power:.3f}", "",
              "[prefill.efficiency]"]
    for k in ("cuda", "vulkan", "rocm", "metal"):
        lines.append(f"{k} = {p.prefill_efficiency[k]:.3f}")
    lines.append(f'"vulkan-amdvlk" = {p.prefill_efficiency["vulkan-amdvlk"]:.3f}')
    lines += [f"default = {min(p.prefill_efficiency[k] for k in ('cuda', 'vulkan', 'rocm', 'metal')):.3f}",
              "", "[prefill.attention_efficiency]"] + [f"{k} = {p.attention_efficiency[k]:.3f}"
                                                       for k in ("cuda", "vulkan", "rocm", "metal")]
    lines += [
              "", "# decode efficiency per memory system (written into the profiles' decode_efficiency)",
              "[device_efficiency]"]
    for k, x in sorted(p.device_efficiency.items()):
        lines.append(f'"{k}" = {x:.3f}')
    lines += ["", "# kernel efficiency per quant type relative to q4_K (decode reads, prefill matmuls)", "[type_decode]"]
    lines += [f"{k} = {x:.3f}" for k, x in sorted(p.type_decode.items())]
    lines += ["", "[type_prefill]"] + [f"{k} = {x:.3f}" for k, x in sorted(p.type_prefill.items())]
    lines += ["", "# calibration rows per backend/family (decode) and backend/prefill: under 3 = uncalibrated",
              "[evidence]"]
    for k, n in ev.items():
        lines.append(f'"{k}" = {n}')
    SPEED_TOML.write_text("\n".join(lines) + "\n", encoding="utf-8")


MEMORY_TOML = H.REPO / "planner" / "data" / "memory.toml"
SPEED_DOC = H.REPO / "docs" / "speed.md"


def write_doc(p: SpeedParams, errs: dict[str, dict[str, float]], ev: dict[str, int], n_skipped: int) -> None:
    """The fitted block of docs/speed.md: parameters, errors, rows per cell."""
    v = vector(p, sorted(p.device_efficiency))
    meaning = {
        "lat.": "dispatch latency per layer unit (us)", "units.": "dispatch units of a layer kind (dense = 1)",
        "fa.": "flash-attention share of the FP16 peak", "be.": "runtime decode factor (app/backend)",
        "cpu": "CPU's share of its RAM bandwidth", "pp.moe_half": "MFLOPs per expert call at half speed",
        "pp.moe_power": "steepness of the expert matmuls' saturation curve (1 = plain half-saturation)",
        "pp.": "prefill matmul share of the FP16 peak", "eta.": "decode eta of the memory system",
        "td.": "decode kernel efficiency of the quant type (q4_K = 1)",
    }
    rows = []
    for k, x in sorted(v.items()):
        what = next((m for pre, m in sorted(meaning.items(), key=lambda t: -len(t[0])) if k.startswith(pre)), "")
        shown = f"{x * 1e6:.1f}" if k.startswith("lat.") else f"{x:.3f}"
        rows.append(f"| `{k}` | {shown} | {what} |")
    err = [f"| {k} | {e['rows']} | {e['within']} ({e['share']:.0%}) | {e['median_abs_err']:.0%} | {e['rms_log']:.3f} |"
           for k, e in errs.items()]
    cells = [f"| {k} | {n} |" for k, n in ev.items()]
    block = ["<!-- fitted:begin -->", "", "### Fitted parameters (planner/data/speed.toml)", "",
             "| parameter | value | meaning |", "|---|---|---|", *rows, "",
             "### Errors", "", "Decode within +-30 %, prefill within a factor 1.5; \"fit\" rows were used to fit, "
             "\"held-out\" rows were not.", "",
             "| rows | n | within band | median error | rms log error |", "|---|---|---|---|---|", *err, "",
             f"Speed rows memfit cannot replay yet: {n_skipped} (docs/field-evidence.md says why).", "",
             "### Fitted rows per backend and model family", "",
             "| backend/family | rows |", "|---|---|", *cells, "", "<!-- fitted:end -->"]
    text = SPEED_DOC.read_text(encoding="utf-8")
    a, b = text.index("<!-- fitted:begin -->"), text.index("<!-- fitted:end -->") + len("<!-- fitted:end -->")
    SPEED_DOC.write_text(text[:a] + "\n".join(block) + text[b:], encoding="utf-8")
PROFILES = H.REPO / "profiles"


def write_profiles(eta: dict[str, float], rows: dict[str, int]) -> None:
    """Each shipped profile's decode_efficiency becomes its memory system's fitted eta, with the
    fit named as its source (the speed model reads the profile)."""
    import re

    for path in sorted(PROFILES.glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        pid = re.search(r'^id = "([^"]+)"', text, re.M).group(1)  # type: ignore[union-attr]
        cls = H.efficiency_class(pid)
        if cls not in eta:
            continue
        text = re.sub(r"^decode_efficiency = [0-9.]+.*$",
                      f"decode_efficiency = {eta[cls]:.3f}          # fitted on the field rows ({cls}): docs/speed.md",
                      text, count=1, flags=re.M)
        note = (f"fitted by validation/field/calibrate.py: the decode eta of the {cls} memory system over "
                f"{rows.get(cls, 0)} field rows (planner/data/speed.toml [device_efficiency]); with the per-layer "
                f"dispatch term, this is the share of peak bandwidth a big dense model reads at")
        text = re.sub(r'(\[\[sources\]\]\nfield = "decode_efficiency"\nref = )"[^"]*"(\nnote = "[^"]*")?',
                      lambda m: f'{m.group(1)}"validation/field/*.toml (docs/field-evidence.md)"\nnote = "{note}"', text)
        path.write_text(text, encoding="utf-8")


def write_shared(slowdown: float) -> None:
    """The fitted Windows shared-memory factor into planner/data/memory.toml (the windows/vulkan
    row and the windows/* row that borrows it)."""
    import re

    text = MEMORY_TOML.read_text(encoding="utf-8")
    text = re.sub(r'(backend = "(?:vulkan|\*)"\nlabel = "Windows shared GPU memory"\nmanaged_by = "WDDM"\nslowdown = )[0-9.]+',
                  lambda m: f"{m.group(1)}{slowdown:.2f}", text)
    MEMORY_TOML.write_text(text, encoding="utf-8")
    print(f"wrote {MEMORY_TOML.relative_to(H.REPO)} (Windows shared memory, Vulkan: {slowdown:.2f}x)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report the errors of the current parameters only")
    ap.add_argument("--sweeps", type=int, default=6)
    args = ap.parse_args(argv)
    cs, skipped = cases()
    classes = sorted({c.pred.efficiency_class for c in cs if c.pred.efficiency_class})
    current = default_params()
    # the fit always starts from the same place (not from the last fit), so it is reproducible:
    # neutral factors, and the same eta (0.8) for every memory system
    start = replace(current, layer_latency_s={k: 40e-6 for k in ("cuda", "vulkan", "rocm", "metal")} | {"cpu": 0.0},
                    layer_units={"dense": 1.0, "moe": 2.0, "recurrent": 1.0, "mla": 1.0},
                    attention_efficiency={k: 0.2 for k in ("cuda", "vulkan", "rocm", "metal")},
                    backend_efficiency={}, cpu_efficiency=0.6,
                    prefill_efficiency={k: 0.3 for k in ("cuda", "vulkan", "rocm", "metal", "vulkan-amdvlk")},
                    moe_tokens_half=200.0, moe_saturation_power=1.0, type_decode={}, type_prefill={},
                    device_efficiency={c: 0.8 for c in classes})
    p = current if args.check else fit(cs, start, classes, args.sweeps)
    errs = errors(cs, p)
    for k, v in errs.items():
        print(f"{k:18} {v['within']:3}/{v['rows']:<3} within band ({v['share']:.0%}); median |err| "
              f"{v['median_abs_err']:.0%}; rms log {v['rms_log']:.3f}")
    print(f"not replayable: {len(skipped)} speed rows")
    if not args.check:
        write_toml(p, evidence(cs), errs)
        print(f"wrote {SPEED_TOML.relative_to(H.REPO)}")
        if FIT_SHARED:
            write_shared(SHARED["windows/vulkan"])
        per_class: dict[str, int] = {}
        for c in cs:
            if not c.holdout and c.kind == "decode":
                per_class[c.pred.efficiency_class] = per_class.get(c.pred.efficiency_class, 0) + 1
        write_profiles(p.device_efficiency, per_class)
        write_doc(p, errs, evidence(cs), len(skipped))
        for k, x in sorted(vector(p, classes).items()):
            print(f"  {k:22} {x * 1e6 if k.startswith('lat.') else x:.4g}{' us' if k.startswith('lat.') else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
