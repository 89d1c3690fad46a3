"""NVIDIA GPUs through nvidia-smi (Linux and Windows)."""

from __future__ import annotations

from .env import ProbeEnv
from .facts import GpuFacts, MachineFacts
from .known import nvidia_family

QUERY = ["nvidia-smi", "--query-gpu=name,memory.total,memory.used", "--format=csv,noheader,nounits"]
NOT_REPORTED = {"[n/a]", "n/a", "not supported", "[not supported]", ""}


def _mib(text: str) -> int | None:
    t = text.strip().lower()
    if t in NOT_REPORTED:
        return None
    try:
        return int(float(t) * 1024 * 1024)
    except ValueError:
        return None


def _gpu(line: str) -> GpuFacts | None:
    """One CSV line: name, memory.total, memory.used (MiB); None for a blank line."""
    name, total_text, used_text = ([p.strip() for p in line.split(",")] + ["", ""])[:3]
    if not name:
        return None
    total, used = _mib(total_text), _mib(used_text)
    family, unified = nvidia_family(name)
    return GpuFacts(
        name=name, vendor="nvidia", kind="integrated" if unified else "discrete", driver="nvidia", family=family,
        vram_total_bytes=None if unified else total, vram_used_bytes=None if unified else used,
        memory_not_reported=total is None, source="nvidia-smi --query-gpu")


def parse_nvidia_smi(stdout: str) -> list[GpuFacts]:
    return [g for g in (_gpu(line) for line in stdout.splitlines()) if g is not None]


def probe_nvidia(env: ProbeEnv, facts: MachineFacts) -> None:
    res = env.run("nvidia-smi", QUERY)
    if res is None:
        return
    if not res.ok:
        facts.notes.append(f"nvidia-smi is installed but failed (exit {res.returncode}); NVIDIA GPU memory unknown")
        return
    found = parse_nvidia_smi(res.stdout)
    if not found:
        facts.notes.append("nvidia-smi listed no GPU")
        return
    # sysfs may already list the same card (vendor 10de) without memory: replace it
    facts.gpus = [g for g in facts.gpus if g.vendor != "nvidia"] + found
    facts.notes += [f"{g.name}: nvidia-smi does not report memory (unified memory); the pool is the system RAM "
                    "(/proc/meminfo)" for g in found if g.memory_not_reported]
    facts.probed += [f"GPU: nvidia-smi ({g.name})" for g in found]
