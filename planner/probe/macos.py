"""macOS probes: sysctl hw.memsize, iogpu.wired_limit_mb (0 = system default), the chip name."""

from __future__ import annotations

from .env import ProbeEnv
from .facts import GpuFacts, MachineFacts


def _sysctl(env: ProbeEnv, name: str) -> str | None:
    res = env.run(f"sysctl {name}", ["sysctl", "-n", name])
    if res is None or not res.ok:
        return None
    out = res.stdout.strip()
    return out or None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _wired_limit_mb(env: ProbeEnv) -> int | None:
    """iogpu.wired_limit_mb (0: the system default); macOS 13 had debug.iogpu.wired_limit in bytes."""
    wired = _int(_sysctl(env, "iogpu.wired_limit_mb"))
    if wired is not None:
        return wired
    legacy = _int(_sysctl(env, "debug.iogpu.wired_limit"))
    return None if legacy is None else legacy // (1024 * 1024)


def _ram(env: ProbeEnv, facts: MachineFacts) -> None:
    mem = _int(_sysctl(env, "hw.memsize"))
    if mem:
        facts.ram_visible_bytes = facts.ram_installed_bytes = mem
        facts.probed.append("RAM: sysctl hw.memsize")
    else:
        facts.notes.append("sysctl hw.memsize failed: RAM unknown")


def _chip(env: ProbeEnv, facts: MachineFacts) -> str:
    chip = _sysctl(env, "machdep.cpu.brand_string") or ""
    facts.cpu_name = chip
    facts.model_name = _sysctl(env, "hw.model") or ""
    facts.vendor_name = "Apple" if chip.startswith("Apple") else ""
    res = env.run("sw_vers", ["sw_vers", "-productVersion"])
    facts.os_version = res.stdout.strip() if res is not None and res.ok else ""
    return chip


def probe_macos(env: ProbeEnv, facts: MachineFacts) -> None:
    _ram(env, facts)
    chip = _chip(env, facts)
    facts.wired_limit_mb = _wired_limit_mb(env)
    if facts.wired_limit_mb is None:
        facts.notes.append("iogpu.wired_limit_mb unreadable: the GPU working-set limit is assumed to be the default")
    else:
        facts.probed.append("GPU limit: sysctl iogpu.wired_limit_mb")
    if chip.startswith("Apple"):
        facts.gpus.append(GpuFacts(name=f"{chip} GPU", vendor="apple", kind="integrated", driver="metal",
                                   family="apple", source="sysctl machdep.cpu.brand_string"))
    elif chip:
        facts.notes.append(f"{chip}: an Intel Mac; memfit plans Apple Silicon only")
