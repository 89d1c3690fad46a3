"""Replay the field rows (validation/field/*.toml) through memfit and compare with what users saw.

For each row: the device (its profile, or a stand-in from machines.toml, with the row's RAM,
carve-out, GTT / wired limit and OS), the model (an exact header from a recorded spec: the quant's
own llama-quantize mix when recorded, else the nearest recorded mix with the weights scaled to the
size the row reports), the run settings (the row's, else the runtime's defaults of that era), then
memfit's own pipeline: estimator -> fit solver -> speed model. Verdicts, per kind of observation:

- load: memfit's tier at the row's configuration says it loads (any tier but no_fit) or not;
- memory: the GPU side as the named tool counts it (Task Manager / rocm-smi: everything on the GPU
  including what the desktop holds; a llama.cpp log: its buffers), within max(0.75 GiB, 8 %);
- decode: within +-30 %;  prefill: within a factor 1.5;
- placement (field A9): which quant still runs in fast memory.

No network: specs are files in the repo. Used by validation/field/run.py (writes
docs/field-evidence.md), validation/field/calibrate.py (fits planner/data/speed.toml) and
tests/test_field_evidence.py.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
from planner.devices import apply_overrides, load_profile
from planner.estimate_types import Breakdown, DeviceUsage, LayerUsage, RunSettings
from planner.fit import FitConfig, FitResult, place
from planner.header import ModelHeaders
from planner.model_compute import model_compute
from planner.speed import SpeedParams, default_params, estimate_prefill, estimate_speed

GIB = 1024**3
DATA_FILES = ("section_a.toml", "section_b.toml", "loads.toml", "speed.toml")
DECODE_BAND = 0.30  # +-30 %
PREFILL_FACTOR = 1.5
MEMORY_ABS = 0.75 * GIB
MEMORY_REL = 0.08
# nominal bits per weight of the quant names rows use, to pick the nearest recorded mix
_BPW = {"Q2_K": 2.6, "Q3_K_S": 3.5, "Q3_K_M": 3.9, "Q3_K_XL": 4.0, "IQ4_XS": 4.3, "IQ4_NL": 4.5, "Q4_0": 4.5,
        "Q4_K_S": 4.6, "Q4_K": 4.8, "Q4_K_M": 4.8, "Q4_K_XL": 5.0, "MXFP4": 4.25, "Q5_K_M": 5.7, "Q5_K_XL": 5.9,
        "Q6_K": 6.6, "Q8_0": 8.5, "Q8_K_XL": 9.0, "F16": 16.0, "BF16": 16.0}


# --------------------------------------------------------------------------- rows


@dataclass
class Row:
    data: dict[str, Any]
    file: str

    @property
    def id(self) -> str:
        return str(self.data["id"])

    def sec(self, name: str) -> dict[str, Any]:
        return self.data.get(name) or {}

    @property
    def kinds(self) -> list[str]:
        return list(self.data.get("kinds") or [])

    @property
    def holdout(self) -> bool:
        return bool(self.data.get("holdout"))


def load_rows(files: tuple[str, ...] = DATA_FILES) -> list[Row]:
    rows: list[Row] = []
    for name in files:
        path = HERE / name
        if not path.exists():
            continue
        for obs in tomllib.loads(path.read_text(encoding="utf-8")).get("obs", []):
            rows.append(Row(obs, name))
    return rows


@lru_cache(maxsize=1)
def _machines_toml() -> dict[str, Any]:
    return tomllib.loads((HERE / "machines.toml").read_text(encoding="utf-8"))


def _machines() -> list[dict[str, Any]]:
    return _machines_toml()["machine"]


def efficiency_class(profile_id: str) -> str:
    """The memory system a shipped profile belongs to (machines.toml [classes])."""
    for prefix, cls in _machines_toml()["classes"].items():
        if profile_id.startswith(prefix):
            return cls
    return profile_id


@lru_cache(maxsize=1)
def _holdouts() -> set[str]:
    path = HERE / "holdout.toml"
    if not path.exists():
        return set()
    return set(tomllib.loads(path.read_text(encoding="utf-8")).get("holdout", {}).get("ids", []))


@lru_cache(maxsize=1)
def explanations() -> dict[str, dict[str, str]]:
    """Reviewed disagreements: id -> {"why": ..., "rule": ...} (validation/field/verdicts.toml)."""
    path = HERE / "verdicts.toml"
    if not path.exists():
        return {}
    return tomllib.loads(path.read_text(encoding="utf-8")).get("row", {})


class NotReplayable(Exception):
    """The row cannot be run through memfit (no model shape, a machine memfit does not plan)."""


# --------------------------------------------------------------------------- devices


def device_for(row: Row) -> tuple[Any, str, str]:
    """(profile, efficiency class, note) for the row's machine."""
    m = row.sec("machine")
    os_ = m.get("os") or ("macos" if row.sec("runtime").get("backend") == "metal" else "linux")
    over: dict[str, Any] = {}
    cls = ""
    entry: dict[str, Any] = {}
    if m.get("profile"):
        profile = load_profile(m["profile"])
        cls = efficiency_class(profile.id)
    else:
        gpu = str(m.get("gpu") or "")
        entry = next((e for e in _machines() if re.search(e["pattern"], gpu, re.I)), None)
        if entry is None:
            raise NotReplayable(f"no memfit profile or stand-in for the machine {gpu!r}")
        if entry.get("skip"):
            raise NotReplayable(entry["skip"])
        base = entry.get(os_) or entry.get("linux") or entry.get("macos")
        profile = load_profile(base)
        cls = entry.get("efficiency_class", profile.family)
        for key in ("bandwidth_gbps", "gpu_tflops_fp16"):
            if key in entry:
                profile = profile.model_copy(update={key: float(entry[key])})
        if entry.get("no_prefill"):
            profile = profile.model_copy(update={"gpu_tflops_fp16": None})
        if "vram_gib" in entry:
            over["vram"] = int(entry["vram_gib"] * GIB)
    if os_ not in profile.os:
        os_ = profile.default_os
    over["os"] = os_
    if m.get("ram_gib"):
        over["ram"] = int(float(m["ram_gib"]) * GIB)
    if m.get("carveout_gib") is not None and profile.carveout is not None:
        over["carveout"] = int(float(m["carveout_gib"]) * GIB)
    elif profile.carveout is not None:
        over["carveout"] = None  # not stated: replay() takes the split memfit's plan would pick
    if m.get("gpu_cap_gib") and profile.os_info(os_).gpu_cap is not None:
        over["gpu_cap"] = int(float(m["gpu_cap_gib"]) * GIB)
    if m.get("vram_gib") and profile.memory_architecture == "discrete":
        over["vram"] = int(float(m["vram_gib"]) * GIB)
    over = {k: v for k, v in over.items() if v is not None}
    profile = apply_overrides(profile, **over)
    if "ram" in over:  # a smaller machine of the family: the probe's rule for its OS reserves
        from planner.probe.generic import scale_reserves

        profile = profile.model_copy(deep=True)
        scale_reserves(profile, over["ram"])
    extra = [int(float(x) * GIB) for x in (entry.get("carveout_options_gib", []) if not m.get("profile") else [])]
    extra = [x for x in extra if x <= 0.75 * profile.ram_bytes]
    if extra and profile.carveout is not None:
        opts = sorted(set(profile.carveout.options_bytes) | set(extra))
        profile = profile.model_copy(update={"carveout": profile.carveout.model_copy(update={"options_bytes": opts})})
    return profile, cls, "" if (m.get("carveout_gib") is not None or profile.carveout is None) else "carve-out not stated"


# --------------------------------------------------------------------------- models


def _spec_paths(spec: str) -> list[tuple[Path, str]]:
    return [(HERE / "models" / f"{spec}.json", "realmodels"), (REPO / "planner" / "testing" / "data" / f"{spec}.json", "realmodels"),
            (REPO / "validation" / "models" / f"{spec}.json", "modelgen")]


@lru_cache(maxsize=None)
def _load_spec(spec: str) -> tuple[dict[str, Any], str] | None:
    import json

    for path, kind in _spec_paths(spec):
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8")), kind
    return None


def _quants_of(spec: dict[str, Any], kind: str) -> list[str]:
    return list(spec["mixes"]) if kind == "realmodels" else [spec["quant"]]


def _norm_quant(q: str | None) -> str:
    if not q:
        return ""
    q = q.upper().replace("I1-", "").strip()
    q = re.sub(r"\s*\(.*$", "", q)
    q = q.removeprefix("UD-")
    if q == "F16":  # gpt-oss "F16" files keep MXFP4 experts: the converter's own BF16-sized mix
        q = "BF16"
    return q


def _bpw(q: str) -> float | None:
    return _BPW.get(_norm_quant(q))


_WORK = Path(tempfile.gettempdir()) / "memfit-field-specs"


@lru_cache(maxsize=None)
def _gguf(spec_id: str, quant: str) -> Path:
    loaded = _load_spec(spec_id)
    assert loaded is not None
    spec, kind = loaded
    out = _WORK / spec_id
    out.mkdir(parents=True, exist_ok=True)
    if kind == "realmodels":
        from planner.testing import realmodels
        from validation.field import make_specs  # its decoder reads the layer-set layouts of hybrid models

        path = out / realmodels.file_name(spec, quant)
        if not path.exists():
            make_specs.write_variant(spec, quant, path)
        return path
    from validation.modelgen import write_model

    path = out / f"{spec_id}-{quant}.gguf"
    if not path.exists():
        write_model(spec, path)
    return path


@lru_cache(maxsize=None)
def _mmproj(spec_id: str) -> ModelHeaders | None:
    loaded = _load_spec(spec_id)
    if loaded is None or loaded[1] != "realmodels" or not loaded[0].get("mmproj"):
        return None
    from planner.testing import realmodels
    from planner.reader import parse_file

    spec = loaded[0]
    path = _WORK / spec_id / spec["mmproj"]["file"]
    if not path.exists():
        realmodels.write_mmproj(spec, path)
    return ModelHeaders.merge([parse_file(path)])


@lru_cache(maxsize=None)
def _facts(spec_id: str, quant: str) -> tuple[Any, int]:
    from planner.model_facts import ModelFacts
    from planner.reader import parse_file

    h = ModelHeaders.merge([parse_file(_gguf(spec_id, quant))])
    return ModelFacts.from_headers(h), h.total_tensor_bytes if hasattr(h, "total_tensor_bytes") else sum(t.nbytes for t in h.tensors)


@dataclass
class ModelPick:
    spec: str
    quant: str  # the recorded mix used
    exact: bool  # the row's own quant mix
    scale: float  # weights scaled by this to the size the row reports (1.0 = as recorded)
    note: str = ""


_NAME_TO_SPEC = [
    (r"gpt-oss-120b", "gpt-oss-120b"), (r"gpt-oss-20b", "gpt-oss-20b"), (r"glm-4\.7-flash", "glm-4.7-flash"),
    (r"qwen3-vl-32b", "qwen3-vl-32b"), (r"qwen3-coder-30b|qwen3-30b-a3b", "qwen3-30b-a3b"), (r"qwen3-32b", "qwen3-32b"),
    (r"llama-3\.3-70b|llama-3-70b|llama-3\.1-70b", "llama-3.3-70b"), (r"llama-3\.1-8b|llama-3-8b", "llama-3.1-8b"),
    (r"qwen3\.6-27b", "qwen3.6-27b"), (r"qwen3\.6-35b", "qwen3.6-35b-a3b"),
]


def model_for(row: Row) -> ModelPick:
    m = row.sec("model")
    spec_id = m.get("spec")
    if not spec_id:
        name = str(m.get("name") or "").lower()
        spec_id = next((s for pat, s in _NAME_TO_SPEC if re.search(pat, name)), None)
    if not spec_id or _load_spec(spec_id) is None:
        raise NotReplayable(f"no recorded model shape for {m.get('name')!r} (validation/field/make_specs.py)")
    spec, kind = _load_spec(spec_id)  # type: ignore[misc]
    recorded = _quants_of(spec, kind)
    want = _norm_quant(m.get("quant"))
    if want == "MXFP4":
        want = next((q for q in recorded if q.startswith("MXFP4")), want)
    exact = want in recorded
    if exact:
        quant = want
    else:
        bpw = _bpw(want) if want else None
        if bpw is None:
            quant = min(recorded, key=lambda q: abs((_bpw(q) or 4.8) - 4.8))
        else:
            quant = min(recorded, key=lambda q: abs((_bpw(q) or 99) - bpw))
    _, base_bytes = _facts(spec_id, quant)
    target = None
    if m.get("size_gib"):
        target = float(m["size_gib"]) * GIB
    elif m.get("file_gb") and not m.get("mmproj"):
        target = float(m["file_gb"]) * 1e9
    scale = 1.0
    note = ""
    if target and not exact:
        scale = target / base_bytes
        note = f"weights of the {quant} mix scaled x{scale:.3f} to the reported size"
    elif not exact:
        note = f"no size reported: the recorded {quant} mix stands in for {m.get('quant')!r}"
    if exact and target and abs(target / base_bytes - 1) > 0.03:
        scale = target / base_bytes  # a differently mixed file of the same name (imatrix, other converter)
        note = f"recorded {quant} mix scaled x{scale:.3f} to the reported size"
    return ModelPick(spec=spec_id, quant=quant, exact=exact and scale == 1.0, scale=scale, note=note)


def scaled(bd: Breakdown, k: float) -> Breakdown:
    """The breakdown with every weight byte multiplied by k (a nearby quant standing in)."""
    if k == 1.0:
        return bd
    devices = [d.model_copy(update={"weights_bytes": int(d.weights_bytes * k)}) for d in bd.devices]
    layers = [dataclasses.replace(l, weights_bytes=int(l.weights_bytes * k), expert_bytes=int(l.expert_bytes * k))
              for l in bd.layers]
    nr = {n: int(b * k) for n, b in bd.nonrepeating_weights.items()}
    w = int(bd.weights_bytes * k)
    return bd.model_copy(update={"devices": devices, "layers": layers, "nonrepeating_weights": nr,
                                 "weights_bytes": w, "total_bytes": bd.total_bytes - bd.weights_bytes + w})


# --------------------------------------------------------------------------- runtimes of the rows


def _flash_attn(row: Row, facts: Any, backend: str) -> str:
    """The row's -fa, else what its runtime did: llama-bench defaulted to -fa 0 until it followed
    llama.cpp's auto; LM Studio of early 2026 ran GLM-4.7-Flash (MLA, K 576 / V 512) without flash
    attention (inferred from field A1/A2/A4/A5: memory and the 512 MB failure agree only with FA
    off), Ollama refused FA when K and V head sizes differ until 0.30 (runtime_facts.md)."""
    s = row.sec("settings")
    fa = str(s.get("fa", "unknown")).lower()
    if fa in ("on", "1", "true"):
        return "on"
    if fa in ("off", "0", "false"):
        return "off"
    app = str(row.sec("runtime").get("app", "")).lower()
    mla = bool(getattr(facts, "is_mla", False))
    if app in ("lmstudio", "ollama") and mla:
        return "off"
    # llama.cpp's -fa defaulted to off until -fa auto became the default (September 2025)
    build = re.match(r"b?(\d{3,5})", str(row.sec("runtime").get("llama_build") or ""))
    if app in ("llama.cpp", "") and ((build and int(build.group(1)) < FA_AUTO_BUILD)
                                     or (not build and str(row.data.get("source_date", "9999")) < FA_AUTO_DATE)):
        return "off"
    return "auto"


def settings_for(row: Row, facts: Any, backend: str, n_layer: int) -> RunSettings:
    s = row.sec("settings")
    o = row.sec("outcome")
    depth = int(o.get("decode_depth") or 0)
    pp = int(o.get("prefill_tokens") or 0) + int(o.get("prefill_depth") or 0)
    ctx = int(s.get("ctx") or max(4096, depth + 512, pp))
    kv = str(s.get("ctk") or "f16").lower()
    kvv = str(s.get("ctv") or kv).lower()
    ngl = s.get("ngl")
    ngl_i = -1 if ngl in (None, "all", "max") or (isinstance(ngl, int) and ngl >= n_layer + 1) else int(ngl)
    app = str(row.sec("runtime").get("app", "")).lower()
    np_ = int(s.get("np") or 1)
    return RunSettings(
        n_ctx=ctx, n_batch=int(s.get("batch") or (512 if app in ("lmstudio", "ollama") else 2048)),
        n_ubatch=int(s.get("ubatch") or 512), n_parallel=np_, n_outputs_max=np_,
        flash_attn=_flash_attn(row, facts, backend), cache_type_k=kv, cache_type_v=kvv,  # type: ignore[arg-type]
        n_gpu_layers=ngl_i, n_cpu_moe=int(s.get("n_cpu_moe") or 0),
        use_mmap=s.get("mmap") is not False, backend=backend if backend in ("cpu", "cuda", "rocm", "vulkan", "metal") else "vulkan",  # type: ignore[arg-type]
        with_mmproj=bool(row.sec("model").get("mmproj")),
    )


# --------------------------------------------------------------------------- replay


@dataclass
class Prediction:
    id: str
    fits: bool | None = None
    why: str = ""
    tier: str = ""
    placement: str = ""
    gpu_gib: float | None = None  # memory as the row's tool counts it
    decode_tps: float | None = None
    prefill_tps: float | None = None
    spill: bool = False
    model: ModelPick | None = None
    device: str = ""
    efficiency_class: str = ""
    backend: str = ""
    family: str = ""
    notes: list[str] = field(default_factory=list)
    fit: FitResult | None = None
    breakdown: Breakdown | None = None
    compute: Any = None
    profile: Any = None


def memory_comparable(tool: str) -> bool:
    """Only readings of what the model side uses compare with memfit's GPU side: not free or total
    memory reported by a backend, not MemAvailable, not whole-system RAM use (the OS is in it)."""
    t = tool.lower()
    if any(k in t for k in ("free", "memavailable", "capacity", "total", "ram used", "whole system ram")):
        return False
    return any(k in t for k in ("used", "peak", "task manager", "buffer", "log", "nvidia-smi"))


def app_of(row: Row) -> str:
    app = str(row.sec("runtime").get("app") or "llama.cpp").lower().replace(" ", "")
    return app if app in ("lmstudio", "ollama") else "llama.cpp"


def _tool_counts_desktop(tool: str) -> bool:
    t = tool.lower()
    return any(k in t for k in ("task manager", "rocm-smi", "amdgpu_top", "radeontop", "nvidia-smi", "whole system",
                                "vram+gtt", "vram + gtt", "activity monitor"))


def replay(row: Row, params: SpeedParams | None = None) -> Prediction:
    from planner.estimator import estimate

    params = params or default_params()
    profile, cls, device_note = device_for(row)
    pick = model_for(row)
    facts, _ = _facts(pick.spec, pick.quant)
    rt = row.sec("runtime")
    os_ = profile.default_os
    backend_name = str(rt.get("backend") or "").lower() or profile.backends(os_)[0].name
    driver = str(rt.get("driver") or "").lower()
    info = profile.backend("amdvlk", os_) if "amdvlk" in driver else None
    info = info or profile.backend(backend_name, os_)
    if info is None:  # a backend the stand-in profile does not list (e.g. ROCm on a Windows Strix Point)
        info = next((b for b in profile.backends(os_) if b.name != "cpu"), profile.backends(os_)[0])
        backend_label = backend_name
    else:
        backend_label = info.label
    s = settings_for(row, facts, backend_name, facts.n_layer)
    mmproj = _mmproj(pick.spec) if s.with_mmproj else None
    # verdicts compare memfit's point estimate: the plan adds safety margins on top, the replay does not
    bd = scaled(estimate(facts, s, mmproj=mmproj), pick.scale).model_copy(update={"estimated": {}})
    set_ = row.sec("settings")
    keep = set_.get("keep_in_memory")
    if keep is None and str(rt.get("app", "")).lower() == "lmstudio":
        keep = None  # unknown: LM Studio's default is on (mlock), but owners of small splits turn it off
    # whether it loads is a question of the OS's floor (its headless reserve), not of comfort; what the
    # desktop holds on the GPU is there on a machine in daily use (Task Manager rows)
    use = "daily" if os_ == "windows" else ("desktop" if os_ == "macos" else "headless")
    cfg = FitConfig(os=os_, use=use, backend=backend_label, mmap=s.use_mmap, keep_in_memory=bool(keep),
                    reserve_bytes=profile.reserve(os_, "headless"), fit_target_bytes=0)
    r = place(bd, profile, cfg)
    if device_note == "carve-out not stated":
        # the split memfit's plan would take: the smallest one that keeps it all in fast memory
        tried = [place(bd, profile, cfg.model_copy(update={"carveout_bytes": c})) for c in profile.carveout_options()]
        fast = [x for x in tried if x.fits and x.tier != "partial_offload" and not (x.tier == "shared" and x.shared_slowdown > 1)]
        r = fast[0] if fast else r
    comp = model_compute(facts)
    pred = Prediction(id=row.id, fits=r.fits, tier=r.tier, placement=("spill" if r.spill_bytes else r.tier),
                      model=pick, device=profile.id, efficiency_class=cls, backend=backend_name, family=comp.family,
                      fit=r, breakdown=bd, compute=comp, profile=profile)
    if not r.fits:
        pred.why = "; ".join(c.short or c.message for c in r.blocking_failures)
    gpu = r.gpu_need_bytes
    o = row.sec("outcome")
    tool = str(o.get("memory_tool") or "")
    if o.get("memory_gib") is not None and memory_comparable(tool):
        counted = gpu + (r.gpu_reserve_bytes if _tool_counts_desktop(tool) else 0)
        if "log" in tool.lower() or "llama.cpp" in tool.lower() or "buffer" in tool.lower():
            counted = bd.device("gpu").total_bytes
        pred.gpu_gib = counted / GIB
    if o.get("decode_tps") is not None:
        sp = estimate_speed(bd, r if r.fits else r.model_copy(update={"tier": "dedicated"}), profile,
                            ratio=comp.expert_ratio, depth=int(o.get("decode_depth") or 0), compute=comp, params=params,
                            app=app_of(row))
        pred.decode_tps = sp.tps
    if o.get("prefill_tps") is not None and o.get("prefill_tokens"):
        pf = estimate_prefill(bd, r, profile, comp, tokens=int(o["prefill_tokens"]),
                              depth=int(o.get("prefill_depth") or 0), params=params)
        pred.prefill_tps = pf.tps if pf else None
    pred.spill = bool(r.spill_bytes) or (r.tier == "shared" and r.shared_slowdown > 1.0)
    if pick.note:
        pred.notes.append(pick.note)
    return pred


# --------------------------------------------------------------------------- verdicts


@dataclass
class Verdict:
    id: str
    kind: str
    observed: Any
    predicted: Any
    agree: bool | None  # None: not comparable
    detail: str = ""


def verdicts(row: Row, pred: Prediction) -> list[Verdict]:
    o = row.sec("outcome")
    out: list[Verdict] = []
    if "loaded" in o and pred.fits is not None:
        out.append(Verdict(row.id, "load", "loaded" if o["loaded"] else "failed",
                           "loads" if pred.fits else f"fails ({pred.why})", bool(o["loaded"]) == pred.fits))
    if o.get("memory_gib") is not None and pred.gpu_gib is not None:
        obs = float(o["memory_gib"])
        tol = max(MEMORY_ABS / GIB, MEMORY_REL * obs)
        out.append(Verdict(row.id, "memory", round(obs, 2), round(pred.gpu_gib, 2), abs(pred.gpu_gib - obs) <= tol,
                           f"+-{tol:.2f} GiB"))
    if o.get("decode_tps") is not None and pred.decode_tps:
        obs = float(o["decode_tps"])
        err = pred.decode_tps / obs - 1
        out.append(Verdict(row.id, "decode", obs, round(pred.decode_tps, 2), abs(err) <= DECODE_BAND, f"{err:+.0%}"))
    if o.get("prefill_tps") is not None and pred.prefill_tps:
        obs = float(o["prefill_tps"])
        ratio = pred.prefill_tps / obs
        out.append(Verdict(row.id, "prefill", obs, round(pred.prefill_tps, 1),
                           1 / PREFILL_FACTOR <= ratio <= PREFILL_FACTOR, f"x{ratio:.2f}"))
    if "spills" in o:
        out.append(Verdict(row.id, "placement", "spills" if o["spills"] else "fits in fast memory",
                           "spills" if pred.spill else "fast", bool(o["spills"]) == pred.spill))
    return out


FA_AUTO_BUILD = 6400  # llama.cpp made -fa auto the default around b6400 (September 2025)
FA_AUTO_DATE = "2025-09"
OLDEST_PREFILL_BUILD = 6100  # prefill kernels changed several-fold before (field rows L3 vs S43, L1 vs S41)


def excluded(row: Row) -> dict[str, str]:
    """Kinds of this row kept out of calibration, with the reason: a reviewed row of verdicts.toml
    (`calibrate = false`), or a prefill measured on a llama.cpp build older than b6100, whose
    prompt-processing kernels were up to 4.6x slower on the same machine (L3 vs S43: b5863 with and
    without hipBLASLt). They are still replayed and reported."""
    out: dict[str, str] = {}
    ex = explanations().get(row.id, {})
    for kind in ex.get("exclude", []):
        out[kind] = ex.get("why", "reviewed")
    build = str(row.sec("runtime").get("llama_build") or "")
    m = re.match(r"b?(\d{3,5})", build)
    if m and int(m.group(1)) < OLDEST_PREFILL_BUILD and row.sec("outcome").get("prefill_tps") is not None:
        out.setdefault("prefill", f"llama.cpp build {build} predates b{OLDEST_PREFILL_BUILD}: prefill kernels changed since")
    return out


def is_holdout(row: Row) -> bool:
    return row.holdout or row.id in _holdouts()
