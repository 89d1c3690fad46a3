"""Which llama.cpp the user's app runs, and what it passes to it by default.

The data lives in planner/data/runtimes.toml: the buffer rules that changed between llama.cpp
builds (each with the build it changed in and its source), flash-attention support per backend,
and each app's defaults (llama-server, Ollama, LM Studio) with the llama.cpp build an app version
bundles where that is published.

    resolve_runtime(None)                 -> the default: conservative over the builds current apps ship
    resolve_runtime("llama.cpp@b9452")    -> llama-server of that build ("llama.cpp@9452", "b9452", "9452" too)
    resolve_runtime("ollama@0.30")        -> Ollama 0.30.x (the newest 0.30 release's build unless exact)
    resolve_runtime("lmstudio")           -> LM Studio 0.4 (build unknown: the conservative rules)

A Runtime gives the settings its app passes (`settings_defaults()`), the llama.cpp build whose rules
the estimator applies (`llama_build`, via RunSettings.llama_build) and whether `-fa auto` turns flash
attention on for a backend and head size (`fa_auto_resolves_on`). `statement` is the one line
reports print.
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field

from ... import data as _data
from ...errors import InputError

AppId = Literal["llama.cpp", "ollama", "lmstudio"]
FlashAttnMode = Literal["on", "off", "auto"]

# The builds current apps ship (Ollama v0.30.0 = b9452 is the oldest llama-server an app runs;
# b11434 is the validated build): the default runtime is conservative over this window.
CURRENT_WINDOW = (9452, 11434)


class Rule(BaseModel):
    """One change of llama.cpp's memory rules (planner/data/runtimes.toml [[rule]])."""

    id: str
    since: int = Field(description="first llama.cpp build with the new behaviour")
    until: int | None = Field(None, description="first build without it again (a reverted change)")
    last_without: int | None = None
    exact: bool
    component: str
    what: str
    before: str
    source: str
    modelled: str
    always: bool = Field(False, description="the estimator applies it to every build (first build unknown)")

    def applies(self, build: int | None) -> bool:
        """Whether the estimator gives a build the new behaviour (None = the validated build, b11434)."""
        if self.always:
            return True
        b = validated_build() if build is None else build
        return b >= self.since and (self.until is None or b < self.until)


class AppDefaults(BaseModel):
    """What an app passes to llama.cpp unless the user changes it."""

    flash_attn: FlashAttnMode
    n_parallel: int
    kv_unified: bool
    use_mmap: bool
    n_batch: int
    n_ubatch: int


class App(BaseModel):
    id: AppId
    name: str
    defaults: AppDefaults
    notes: str
    sources: list[str]
    builds: dict[str, int] = Field(default_factory=dict, description="app version -> bundled llama.cpp build")
    builds_source: str = ""


AppSettings = dict[str, int | bool | str | None]  # RunSettings fields an app sets (Runtime.settings_defaults)


class Runtime(BaseModel):
    """A llama.cpp as some app runs it: the app's defaults and the llama.cpp build's rules."""

    id: str = Field(description='"llama.cpp@b11434", "ollama@0.30", "lmstudio@0.4", "llama.cpp@conservative"')
    app: AppId
    app_version: str | None = None
    llama_build: int | None = Field(description="llama.cpp build whose rules apply; None = b11434's rules")
    conservative: bool = Field(False, description=(
        "the build is unknown or a range: b11434's rules, with logits reserved for the whole ubatch as "
        "builds before b9464 do (the larger of the two)"))
    defaults: AppDefaults
    statement: str = Field(description="one line for reports: which llama.cpp and which defaults are assumed")
    sources: list[str] = Field(default_factory=list)

    def settings_defaults(self) -> AppSettings:
        """What the app sets, as RunSettings fields: flash_attn, n_parallel, kv_unified, use_mmap,
        n_batch, n_ubatch, plus llama_build and (for builds before per-slot outputs, or the
        conservative default) n_outputs_max = 0, i.e. logits for the whole ubatch."""
        d = self.defaults
        per_slot = not self.conservative and rule("server_output_per_slot").applies(self.llama_build)
        return {**d.model_dump(), "llama_build": self.llama_build,
                "n_outputs_max": min(d.n_parallel, d.n_batch) if per_slot else 0}

    def fa_auto_resolves_on(self, backend: str, head_k: int, head_v: int, *, cache_type_k: str = "f16",
                            cache_type_v: str = "f16", gqa_ratio: int = 2) -> bool:
        """Whether `-fa auto` ends with flash attention on for a layer of these head sizes on this
        backend: llama.cpp (builds with the auto mode, ggml-org/llama.cpp#15434) keeps it on only
        when FLASH_ATTN_EXT runs on the layer's device (llama_context::resolve_fused_ops); the
        backends' supports_op rules are in runtimes.toml [fa_support]."""
        if not rule("fa_auto_default").applies(self.llama_build):
            return False
        return fa_supported(backend, head_k, head_v, cache_type_k, cache_type_v, gqa_ratio)

    def rules_in_effect(self) -> list[Rule]:
        return [r for r in rules() if r.applies(self.llama_build)]

    def rules_differing(self) -> list[Rule]:
        """Rules where this runtime's build behaves unlike b11434."""
        return [r for r in rules() if r.applies(self.llama_build) != r.applies(None)]


# --------------------------------------------------------------------------- data

@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = _data.read("runtimes.toml").decode("utf-8")
    return tomllib.loads(text)


def validated_build() -> int:
    return int(_table()["validated_build"])


@lru_cache(maxsize=1)
def rules() -> tuple[Rule, ...]:
    return tuple(Rule(**r) for r in _table()["rule"])


def rule(rule_id: str) -> Rule:
    for r in rules():
        if r.id == rule_id:
            return r
    raise KeyError(rule_id)


def applies(rule_id: str, build: int | None) -> bool:
    """Whether llama.cpp build `build` (None = b11434) has rule `rule_id`'s new behaviour."""
    return rule(rule_id).applies(build)


@lru_cache(maxsize=1)
def apps() -> dict[str, App]:
    out = {}
    for a in _table()["app"]:
        d = AppDefaults(**{k: a[k] for k in AppDefaults.model_fields})
        out[a["id"]] = App(id=a["id"], name=a["name"], defaults=d, notes=a["notes"], sources=a["sources"],
                           builds=a.get("builds", {}), builds_source=a.get("builds_source", ""))
    return out


FaSupport = dict[str, Any]  # one runtimes.toml [fa_support.<backend>] table


def _vulkan_heads(sup: FaSupport, head_k: int, head_v: int, cache_type_k: str, cache_type_v: str) -> bool:
    """Any head size that is a multiple of `head_multiple`, bf16 for K and V or for neither."""
    m = sup["head_multiple"]
    return head_k % m == 0 and head_v % m == 0 and ((cache_type_k == "bf16") == (cache_type_v == "bf16"))


def _metal_heads(sup: FaSupport, head_k: int, head_v: int) -> bool:
    """Any listed K head with K >= V (72 needs K == V)."""
    return head_k in sup["heads"] and head_k >= head_v and (head_k != 72 or head_v == 72)


def _listed_heads(sup: FaSupport, head_k: int, head_v: int, gqa_ratio: int) -> bool:
    """Equal K/V heads from the list (512 needs the GQA path, gqa_opt_applies), else a listed
    (K, V) pair on the GQA path: ratio >= 2 and a multiple of the pair's `multiple`."""
    if head_k == head_v and head_k in sup["heads"]:
        return head_k != 512 or gqa_ratio >= 2
    return any((head_k, head_v) == (k, v) and gqa_ratio >= 2 and gqa_ratio % multiple == 0
               for k, v, multiple in sup.get("pairs", []))


def _heads_supported(sup: FaSupport, head_k: int, head_v: int, cache_type_k: str, cache_type_v: str,
                     gqa_ratio: int) -> bool:
    if sup.get("any_head"):
        return True
    if "head_multiple" in sup:
        return _vulkan_heads(sup, head_k, head_v, cache_type_k, cache_type_v)
    if sup.get("same_kv_type") and cache_type_k != cache_type_v:
        return False
    if sup.get("k_at_least_v"):
        return _metal_heads(sup, head_k, head_v)
    return _listed_heads(sup, head_k, head_v, gqa_ratio)


def fa_supported(backend: str, head_k: int, head_v: int, cache_type_k: str = "f16", cache_type_v: str = "f16",
                 gqa_ratio: int = 2) -> bool:
    """llama.cpp b11434's supports_op for FLASH_ATTN_EXT on `backend` (runtimes.toml [fa_support])."""
    sup = _table()["fa_support"].get(backend)
    if sup is None or cache_type_k not in sup["kv_types"] or cache_type_v not in sup["kv_types"]:
        return False
    return _heads_supported(sup, head_k, head_v, cache_type_k, cache_type_v, gqa_ratio)


# --------------------------------------------------------------------------- resolution

_BUILD = re.compile(r"^b?(\d{3,6})$", re.I)


def _llama_runtime(build: int) -> Runtime:
    app = apps()["llama.cpp"]
    return Runtime(
        id=f"llama.cpp@b{build}", app="llama.cpp", app_version=f"b{build}", llama_build=build,
        defaults=app.defaults, sources=app.sources,
        statement=f"llama.cpp b{build} llama-server defaults (-np auto = 4 unified slots, -fa auto, -b 2048 -ub 512)"
                  + ("" if build == validated_build() else _differs(build)),
    )


def _differs(build: int | None) -> str:
    diff = [r.id for r in rules() if r.applies(build) != r.applies(None)]
    return f"; rules that differ from b{validated_build()}: {', '.join(diff)}" if diff else ""


def conservative_runtime() -> Runtime:
    app = apps()["llama.cpp"]
    lo, hi = CURRENT_WINDOW
    return Runtime(
        id="llama.cpp@conservative", app="llama.cpp", llama_build=None, conservative=True,
        defaults=app.defaults, sources=app.sources,
        statement=(f"runtime: llama-server defaults, conservative over llama.cpp b{lo}-b{hi} (what Ollama 0.30+, "
                   f"LM Studio 0.4 and current llama.cpp ship): b{hi}'s rules with logits reserved for the whole "
                   f"ubatch as builds before b9464 do; --runtime llama.cpp@N|ollama|lmstudio to choose"),
    )


def _bundled_build(app: App, version: str | None) -> tuple[str | None, int | None]:
    """(the version shown, the llama.cpp build it bundles): the newest release without a version,
    the oldest release of a series (its build allocates at least as much as the later ones)."""
    if not app.builds:
        return version, None
    shown = max(app.builds, key=_vkey) if version is None else _release(app, version)
    return shown, app.builds[shown]


def _release(app: App, version: str) -> str:
    """The release a version names: itself where listed, else the oldest of its series (0.30 ->
    0.30.0)."""
    if version in app.builds:
        return version
    series = [v for v in app.builds if v.startswith(version + ".")]
    if not series:
        raise _unknown_version(app, version)
    return min(series, key=_vkey)


def _unknown_version(app: App, version: str) -> InputError:
    known = sorted({".".join(v.split(".")[:2]) for v in app.builds}, key=_vkey)
    return InputError(f"unknown {app.name} version {version!r}",
                      hint=f"known: {', '.join(known)} (or give the llama.cpp build: --llama-build N)")


def _app_statement(app: App, shown: str | None, build: int | None) -> str:
    label = f"{app.name} {shown}" if shown else app.name
    where = f"llama.cpp b{build}" if build is not None else "llama.cpp build not published: conservative rules"
    stmt = f"runtime: {label} ({where}); its defaults: {_defaults_words(app.defaults)}"
    return stmt + (_differs(build) if build is not None and build < CURRENT_WINDOW[1] else "")


def _defaults_words(d: AppDefaults) -> str:
    """An app's defaults as llama.cpp's flags: "-np 1, -fa auto, -b 512 -ub 512, mmap on"."""
    return (f"-np {d.n_parallel}{' unified' if d.kv_unified else ''}, -fa {d.flash_attn}, -b {d.n_batch} "
            f"-ub {d.n_ubatch}, mmap {'on' if d.use_mmap else 'off'}")


def _app_runtime(app_id: AppId, version: str | None) -> Runtime:
    app = apps()[app_id]
    shown, build = _bundled_build(app, version)
    return Runtime(id=f"{app_id}@{shown}" if shown else app_id, app=app_id, app_version=shown, llama_build=build,
                   conservative=build is None, defaults=app.defaults, statement=_app_statement(app, shown, build),
                   sources=app.sources + [app.builds_source])


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


_ALIASES: dict[str, AppId] = {
    "llama.cpp": "llama.cpp", "llamacpp": "llama.cpp", "llama-server": "llama.cpp", "llama": "llama.cpp",
    "ollama": "ollama", "lmstudio": "lmstudio", "lm-studio": "lmstudio", "lms": "lmstudio"}
_DEFAULT_WORDS = ("default", "conservative")


def _llama_cpp(version: str | None) -> Runtime:
    """llama.cpp (the validated build), llama.cpp@conservative, llama.cpp@N / @bN."""
    if version is None:
        return _llama_runtime(validated_build())
    if version.lower() in _DEFAULT_WORDS:
        return conservative_runtime()
    mb = _BUILD.match(version)
    if not mb:
        raise InputError(f"invalid llama.cpp build {version!r}", hint="give a build number such as b11434")
    return _llama_runtime(int(mb.group(1)))


def _lmstudio(version: str | None) -> Runtime:
    """LM Studio: the 0.4 line's defaults (its llama.cpp build is not published)."""
    if version is not None and not re.match(r"^0\.[0-9]+(\.[0-9]+)?$", version):
        raise InputError(f"invalid LM Studio version {version!r}", hint="e.g. lmstudio@0.4")
    if version is not None and _vkey(version) < (0, 4):
        raise InputError(f"LM Studio {version}: memfit knows the 0.4 line's defaults only",
                         hint="use lmstudio (0.4) or give the llama.cpp build with --llama-build N")
    rt = _app_runtime("lmstudio", None)
    shown = version or "0.4"
    return rt.model_copy(update={"id": f"lmstudio@{shown}", "app_version": shown,
                                 "statement": rt.statement.replace("LM Studio (llama.cpp engine)", f"LM Studio {shown}")})


_BY_APP: dict[AppId, Callable[[str | None], Runtime]] = {
    "llama.cpp": _llama_cpp,
    "lmstudio": _lmstudio,
    "ollama": lambda version: _app_runtime("ollama", version),
}


def names_runtime(text: str) -> bool:
    """Whether `--runtime` text names llama.cpp, a build of it or an app that runs it."""
    t = text.strip()
    return bool(_BUILD.match(t)) or t.partition("@")[0].strip().lower() in _ALIASES


def resolve_runtime(text: str | None) -> Runtime:
    """`--runtime` text -> Runtime. None = the conservative default. Accepts llama.cpp@N,
    llama.cpp@bN, bN, N, llama.cpp (= the validated build), ollama[@0.30[.1]], lmstudio[@0.4]."""
    t = str(text or "").strip()
    if not t or t.lower() in _DEFAULT_WORDS:
        return conservative_runtime()
    m = _BUILD.match(t)
    if m:
        return _llama_runtime(int(m.group(1)))
    name, _, version = t.partition("@")
    app = _ALIASES.get(name.strip().lower())
    if app is None:
        raise InputError(f"unknown runtime {text!r}",
                         hint="use llama.cpp@BUILD (e.g. llama.cpp@b11434), ollama[@0.30], lmstudio[@0.4] or a build number")
    return _BY_APP[app](version.strip() or None)


def runtime_for(runtime_text: str | None, llama_build: int | None) -> Runtime:
    """--runtime / --llama-build -> Runtime. --llama-build alone is llama-server
    of that build; with --runtime it replaces the app's bundled build."""
    if llama_build is not None and runtime_text is None:
        return resolve_runtime(f"llama.cpp@b{llama_build}")
    rt = resolve_runtime(runtime_text)
    if llama_build is not None:
        rt = rt.model_copy(update={"llama_build": llama_build, "conservative": False,
                                   "statement": f"{rt.statement.split(';')[0].split(' (')[0]} with llama.cpp b{llama_build} "
                                                f"(--llama-build)"})
    return rt
