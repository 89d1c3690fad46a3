"""Planning inputs from what a command names: the model with its variants and projector (`plan`,
its workloads, `estimate`) and the device profiles with their overrides (`plan`).

Two projector rules, on purpose: `estimate` sizes one variant, so it takes the projector llama-server
`-hf` downloads with that variant; `plan` compares variants with one projector, the one llama.cpp
pairs with the best-quality variant (planner/projector.py is the pairing rule itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError

if TYPE_CHECKING:
    from .device_schema import DeviceProfile
    from .header import ModelHeaders
    from .plan_types import PlanModel, PlanProjector
    from .resolver import ProjectorFile, ResolvedModel, Variant
    from .workload import Workload
    from .workload_plan import WorkItem

# --mmproj words: "auto" pairs the repo's projector, "none" leaves it out; anything else is a file
PROJECTOR_WORDS = ("auto", "none")


def mmproj_choice(text: str) -> str:
    """--mmproj as given: "auto"/"none" in any case, or a file path as written."""
    word = text.strip()
    return word.lower() if word.lower() in PROJECTOR_WORDS else word


# --------------------------------------------------------------------------- plan's model

def load_projector_file(path: str) -> PlanProjector:
    """A projector file named by --mmproj FILE, checked and read."""
    from .plan_types import PlanProjector
    from .resolver import load_projector_file as read_projector

    headers, size = read_projector(path)
    return PlanProjector(name=Path(path).name, size_bytes=size, headers=headers, path=str(path))


def _plannable_variants(rm: ResolvedModel, ref: str, quants: list[str]) -> list[Variant]:
    """The variants asked for (all without --quant) whose headers could be read."""
    variants = [rm.variant(q) for q in quants] if len(quants) > 1 else rm.variants
    variants = [v for v in variants if v.headers is not None]
    if not variants:
        raise InputError(f"{ref}: no quant variants to plan")
    return variants


def _paired_projector(rm: ResolvedModel, variants: list[Variant]) -> PlanProjector | None:
    """The repo's projector llama.cpp pairs with the best-quality variant (one for the model)."""
    from .plan_types import PlanProjector
    from .projector import pick_projector
    from .variants import quality_key

    candidates = [p for p in rm.mmproj if p.headers is not None]
    top = max(variants, key=lambda v: quality_key(v.quant, v.size_bytes))
    chosen = pick_projector(candidates, top.quant, top.files[0] if top.files else "")
    if chosen is None:
        return None
    on_disk = rm.source == "local" or (rm.source == "ollama" and rm.local_path is not None)
    return PlanProjector(name=chosen.name.rsplit("/", 1)[-1], size_bytes=chosen.size_bytes,
                         headers=chosen.headers, path=chosen.name if on_disk else "")


def _plan_projector(rm: ResolvedModel, variants: list[Variant], mmproj: str) -> PlanProjector | None:
    """--mmproj auto and none both note the repo's projector (so that `plan` can say --no-mmproj);
    a file is read as given."""
    if mmproj in PROJECTOR_WORDS:
        return _paired_projector(rm, variants)
    return load_projector_file(mmproj)


def build_plan_model(ref: str, revision: str | None, quants: list[str], mmproj: str) -> tuple[PlanModel, ResolvedModel]:
    """The model `plan` weighs: its variants (only `quants` when given), the projector it pairs
    (`mmproj`: auto, none or a file), and how to name and launch it."""
    from .plan_types import PlanModel, PlanVariant
    from .resolver import resolve

    rm = resolve(ref, revision=revision, quant=quants[0] if len(quants) == 1 else None)
    variants = _plannable_variants(rm, ref, quants)
    hub = rm.source == "hub"
    model = PlanModel(
        name=rm.repo or rm.ollama_name or rm.local_path or ref,
        variants=[PlanVariant(quant=v.quant, headers=v.headers, size_bytes=v.size_bytes, files=list(v.files))
                  for v in variants],
        repo=rm.repo if hub else None, revision=rm.revision_name or None,
        projector=_plan_projector(rm, variants, mmproj), hf_tag=rm.hf_tag if hub else None,
        notes=list(rm.problems), ollama_name=rm.ollama_name, lmstudio_name=rm.lmstudio_name)
    return model, rm


def build_work_items(workload: Workload, mmproj: str) -> list[WorkItem]:
    """One planned model per workload entry; an entry's own mmproj wins over --mmproj, except
    that --mmproj none turns every projector off."""
    from .workload_plan import WorkItem

    items = []
    for entry in workload.models:
        mm = mmproj_choice(entry.mmproj)
        if mm == "auto":
            mm = mmproj
        entry = entry.model_copy(update={"mmproj": mm})
        model, _ = build_plan_model(entry.ref, entry.revision, entry.quant, mm)
        items.append(WorkItem(entry=entry, model=model))
    return items


# --------------------------------------------------------------------------- estimate's projector

@dataclass
class ProjectorPick:
    """The projector `estimate` sizes (headers None: none), its name, and what to tell the user."""

    headers: ModelHeaders | None = None
    name: str | None = None
    notes: list[str] = field(default_factory=list)


def _sibling_projector(resolved: ResolvedModel, variant: Variant, mmproj: str | None) -> ProjectorPick:
    from .projector import pick_projector

    projs: list[ProjectorFile] = [p for p in getattr(resolved, "mmproj", []) if p.headers is not None]
    chosen = pick_projector(projs, variant.quant, variant.files[0] if variant.files else "")
    if chosen is None:
        return ProjectorPick(notes=["--mmproj auto: no projector file next to this model"] if mmproj else [])
    notes = [] if mmproj else [f"vision projector {chosen.name.rsplit('/', 1)[-1]} sized (llama-server -hf "
                               "loads it; --mmproj none leaves it out)"]
    return ProjectorPick(chosen.headers, chosen.name, notes)


def estimate_projector(resolved: ResolvedModel, mmproj: str | None, variant: Variant) -> ProjectorPick:
    """The projector `estimate` sizes: none for `--mmproj none`; a file; or (by default and with
    `auto`) the one llama-server `-hf` downloads with this variant."""
    word = mmproj.lower() if mmproj is not None else None
    if word == "none":
        return ProjectorPick()
    if word is None or word == "auto":
        return _sibling_projector(resolved, variant, mmproj)
    from .resolver import load_projector_file as read_projector

    headers, _size = read_projector(mmproj)  # type: ignore[arg-type]
    return ProjectorPick(headers, mmproj)


# --------------------------------------------------------------------------- plan's devices

_OS_WORDS = {"linux": "linux", "windows": "windows", "win": "windows", "macos": "macos", "mac": "macos"}
_USE_WORDS = {"headless", "desktop", "daily"}


@dataclass(frozen=True)
class DeviceRef:
    """A --device argument: the profile it names and the OS and use its suffixes ask for."""

    ref: str
    os: str | None = None
    use: str | None = None


def device_ref(text: str) -> DeviceRef:
    """`ai-max-395-64g:windows:daily` -> (id, os, use). Only known words are suffixes, so a path
    with a drive letter (C:\\dev.toml) stays whole; the last word of each kind wins."""
    os_ = use = None
    parts = text.split(":")
    while len(parts) > 1 and parts[-1].strip().lower() in (_OS_WORDS.keys() | _USE_WORDS):
        word = parts.pop().strip().lower()
        if word in _USE_WORDS:
            use = use or word
        else:
            os_ = os_ or _OS_WORDS[word]
    return DeviceRef(":".join(parts), os_, use)


@dataclass
class _Loaded:
    profile: DeviceProfile
    ref: DeviceRef


def _common_use(loaded: list[_Loaded], given: dict[str, Any]) -> str | None:
    """One use for a fair comparison: --use, else the first device's (its suffix or its default)."""
    if given.get("use") is not None or len(loaded) < 2:
        return given.get("use")
    first = loaded[0]
    return first.ref.use or first.profile.default_use


def _os_for_others(item: _Loaded, os_given: str, loaded: list[_Loaded]) -> bool:
    """--os names an OS this device has no profile for, but others compared with it have."""
    return (os_given not in item.profile.os and len(loaded) > 1
            and any(os_given in other.profile.os for other in loaded))


def _device_overrides(item: _Loaded, given: dict[str, Any], loaded: list[_Loaded], use: str | None) -> dict[str, Any]:
    """This device's overrides: its suffixes win; --os applies to the devices that have that OS
    (when some of the compared devices have it); one use for all."""
    mine = dict(given)
    if item.ref.os:
        mine["os"] = item.ref.os
    elif "os" in mine and _os_for_others(item, str(mine["os"]).lower(), loaded):
        mine.pop("os")  # --os for the others; this device keeps its own (noted by the caller)
    if item.ref.use or use:
        mine["use"] = item.ref.use or use
    return mine


def _with_overrides(item: _Loaded, mine: dict[str, Any]) -> DeviceProfile:
    from .devices import apply_overrides
    from .errors import MemfitError

    try:
        return apply_overrides(item.profile, **mine) if mine else item.profile
    except MemfitError as e:
        if not e.message.startswith(item.profile.id):
            e.message = f"{item.profile.id}: {e.message}"
        raise


def load_devices(refs: list[str], files: tuple[str, ...], overrides: dict[str, Any]) -> list[DeviceProfile]:
    """Device profiles with the command-line overrides. Several devices are compared fairly: one use
    (and so one OS reserve rule) for all, the first device's unless --use or a per-device suffix
    (`ID:windows:daily`) says otherwise; --os applies to the devices that have that OS."""
    from .devices import load_file, load_profile

    parsed = [device_ref(r) for r in refs]
    loaded = [_Loaded(load_profile(r.ref), r) for r in parsed] + [_Loaded(load_file(f), DeviceRef(f)) for f in files]
    given = {k: v for k, v in overrides.items() if v is not None}
    use = _common_use(loaded, given)
    return [_planned(item, given, _device_overrides(item, given, loaded, use)) for item in loaded]


def _planned(item: _Loaded, given: dict[str, Any], mine: dict[str, Any]) -> DeviceProfile:
    """The device with its overrides, noting when --os did not apply to it."""
    profile = _with_overrides(item, mine)
    if "os" in given and "os" not in mine and not item.ref.os:
        profile.override_notes.append(f"{item.profile.id} has no {given['os']} profile: planned for "
                                      f"{profile.default_os}")
    return profile
