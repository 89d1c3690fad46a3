"""How fast memfit starts: each command as a whole process, side by side with `python -c pass`.

    python -m bench.bench_cli [--runs 15]

Measures, after one warm-up each, the median (and minimum) wall and CPU time (user + sys of the
child, from os.wait4) of:
  python -c pass                                      the floor: an interpreter that does nothing
  memfit --version                                    target: wall <= 3x python -c pass
  memfit devices                                      target: wall <= 3x python -c pass
  memfit plan qwen3-vl-32b -d ai-max-395-64g -c 24k   warm (headers cached), Qwen3-VL-32B's 7 files
                                                      served by bench/demo_hub.py: target CPU <= 0.25 s
  memfit estimate <Qwen3-VL-32B Q4_K_M file> -c 24k   a local file: target CPU <= 0.15 s
The commands run alternately (A B C ... A B C ...) so a machine that slows down mid-run slows all
of them alike; byte code is compiled first, as an installed package has it. To compare with
another version, run this script with the Python of that version's virtual environment. Figures
for this machine are kept in docs/performance.md.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path



@dataclass
class Case:
    label: str
    argv: list[str]
    target: str  # what the issue asks for, in words
    check: str  # "wall_x" (wall <= 3x python) or "cpu" (CPU seconds)
    limit: float
    env: dict[str, str] = field(default_factory=dict)
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    codes: set[int] = field(default_factory=set)


def run_once(case: Case, base_env: dict[str, str]) -> None:
    env = {**base_env, **case.env}
    t = time.perf_counter()
    proc = subprocess.Popen(case.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    case.walls.append(wall)
    case.cpus.append(usage.ru_utime + usage.ru_stime)
    case.codes.add(proc.returncode)


def memfit_exe() -> str:
    near = Path(sys.executable).with_name("memfit")
    found = str(near) if near.exists() else shutil.which("memfit")
    if not found:
        sys.exit("memfit is not installed next to this Python: pip install -e . first")
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15, help="counted runs per command (default 15)")
    args = ap.parse_args(argv)

    from bench import demo_hub  # the test suite's fake Hub serving Qwen3-VL-32B's real-shaped files

    # the memfit this interpreter runs (this checkout, or another one's venv: run that venv's python
    # on this script to compare two versions), compiled as an installed package is
    pkg = subprocess.check_output([sys.executable, "-c", "import os, planner; print(os.path.dirname(planner.__file__))"],
                                  text=True, cwd=os.path.dirname(sys.executable)).strip()  # not this directory's
    compileall.compile_dir(pkg, quiet=1)
    work = Path(tempfile.mkdtemp(prefix="memfit-bench-cli-"))
    hub = demo_hub.serve(work / "repos", 0)
    try:
        memfit = memfit_exe()
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMFIT_", "HF_"))}
        base_env.update({"HF_ENDPOINT": hub.url, "HF_HOME": str(work / "hf"), "MEMFIT_CACHE_DIR": str(work / "cache"),
                         "MEMFIT_CONFIG_DIR": str(work / "config"), "COLUMNS": "100"})
        local = next((work / "repos" / "qwen3-vl-32b").glob("*Q4_K_M.gguf"))
        plan = [memfit, "plan", "qwen3-vl-32b", "--device", "ai-max-395-64g", "--ctx", "24k"]
        cases = [
            Case("python -c pass", [sys.executable, "-c", "pass"], "(the floor)", "none", 0),
            Case("memfit --version", [memfit, "--version"], "wall <= 3x python", "wall_x", 3.0),
            Case("memfit devices", [memfit, "devices"], "wall <= 3x python", "wall_x", 3.0),
            Case("plan qwen3-vl-32b (warm)", plan, "CPU <= 0.25 s", "cpu", 0.25),
            Case("estimate local Q4_K_M", [memfit, "estimate", str(local), "-c", "24k"], "CPU <= 0.15 s", "cpu", 0.15),
        ]
        cold = subprocess.run(plan, env=base_env, capture_output=True, text=True)  # fills the header cache
        if cold.returncode not in (0, 3):
            sys.exit(f"the cold plan failed ({cold.returncode}): {cold.stderr.strip()}")
        for case in cases:  # warm-up: page cache, byte code, the local file's header cache entry
            run_once(case, base_env)
            case.walls.clear(), case.cpus.clear()
        for _ in range(args.runs):
            for case in cases:
                run_once(case, base_env)
    finally:
        hub.close()
        shutil.rmtree(work, ignore_errors=True)

    floor = statistics.median(cases[0].walls)
    print(f"memfit from {pkg}; {args.runs} runs each, alternating; median (min) in seconds; "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    head = f"{'command':<28} {'wall':>16} {'CPU':>16} {'wall / python':>14}  {'target':<20} verdict"
    print(head)
    print("-" * len(head))
    failed = 0
    for c in cases:
        wall, cpu = statistics.median(c.walls), statistics.median(c.cpus)
        ratio = wall / floor
        verdict = ""
        if c.check == "wall_x":
            verdict = "ok" if ratio <= c.limit else "OVER"
        elif c.check == "cpu":
            verdict = "ok" if cpu <= c.limit else "OVER"
        failed += verdict == "OVER"
        codes = "" if c.codes <= {0, 3} else f"  exit codes {sorted(c.codes)}!"
        print(f"{c.label:<28} {wall:>7.3f} ({min(c.walls):.3f}) {cpu:>7.3f} ({min(c.cpus):.3f}) {ratio:>13.1f}x  "
              f"{c.target:<20} {verdict}{codes}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
