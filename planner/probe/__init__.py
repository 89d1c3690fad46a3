"""Read the running machine (`--device auto`, `memfit doctor`).

Each probe is a small function over a ProbeEnv (a root directory + a command runner), so tests and
`memfit doctor --root DIR` can point it at a recorded tree. Missing files or commands become
notes ("unknown"), never exceptions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..device_schema import DeviceProfile
from .env import COMMANDS_FILE, ProbeEnv, RecordingEnv
from .facts import GpuFacts, MachineFacts


def probe_machine(env: ProbeEnv | None = None) -> MachineFacts:
    """Everything the probes can read on this (or a recorded) machine."""
    from .build import installed_ram
    from .linux import probe_linux
    from .macos import probe_macos
    from .nvidia import probe_nvidia
    from .windows import probe_windows

    env = env or ProbeEnv()
    facts = MachineFacts(system=env.system if env.system in ("linux", "macos", "windows") else "unknown")
    steps = {"linux": (probe_linux, probe_nvidia), "macos": (probe_macos,), "windows": (probe_windows, probe_nvidia)}
    for step in steps.get(facts.system, ()):
        _run_step(step, env, facts)
    if facts.system == "unknown":
        facts.notes.append("operating system not recognised: nothing probed")
    if facts.ram_installed_bytes is None:
        facts.ram_installed_bytes = installed_ram(facts)
    return facts


def _run_step(step: Callable[[ProbeEnv, MachineFacts], None], env: ProbeEnv, facts: MachineFacts) -> None:
    """One probe; a probe bug must not take the command down: it is recorded instead."""
    try:
        step(env, facts)
    except Exception as e:
        facts.notes.append(f"{step.__name__} failed: {type(e).__name__}: {e}")


PROBE_ROOT_ENV = "MEMFIT_PROBE_ROOT"  # point `--device auto` at a recorded tree (tests, bug reports)


def env_for(root: str | Path | None) -> ProbeEnv:
    """A live env, or a recorded tree under `root` (or $MEMFIT_PROBE_ROOT)."""
    import os

    root = root if root is not None else (os.environ.get(PROBE_ROOT_ENV) or None)
    return ProbeEnv() if root is None else ProbeEnv.from_root(root)


def auto_profile(root: str | Path | None = None) -> DeviceProfile:
    """`--device auto`: a profile of this machine (or of a recorded tree under `root`)."""
    from .build import build_profile

    profile, _ = build_profile(probe_machine(env_for(root)))
    return profile


__all__ = ["probe_machine", "auto_profile", "env_for", "ProbeEnv", "RecordingEnv", "MachineFacts", "GpuFacts",
           "COMMANDS_FILE"]
