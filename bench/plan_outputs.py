"""Byte-identical check for performance work: run a fixed set of plans and estimates through the
demo Hub (bench/demo_hub.py) and store (or compare) their outputs and exit codes.

    python -m bench.plan_outputs save DIR      # before a change
    python -m bench.plan_outputs compare DIR   # after: every output must be byte-identical

Each command runs as its own process (the installed console script), with a fresh header cache
filled once by the first runs, COLUMNS=100.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MODELS = ("qwen3-vl-32b", "qwen3-30b-a3b-instruct-2507", "glm-4.7-flash")
DEVICES = ("ai-max-395-64g", "ai-max-395-128g-minipc", "dgx-spark", "apple-m4-max-128g", "rtx-4090",
           "framework-desktop-395-128g")


def cases(local: Path) -> list[list[str]]:
    out: list[list[str]] = []
    for i, model in enumerate(MODELS):
        for j, dev in enumerate(DEVICES):
            ctx = ("8k", "24k", "128k", "max")[(i + j) % 4]
            out.append(["plan", model, "-d", dev, "-c", ctx])
    out += [
        ["plan", "qwen3-vl-32b", "-d", "ai-max-395-64g", "-c", "24k"],
        ["plan", "qwen3-vl-32b", "-d", "ai-max-395-64g", "-c", "24k", "--json"],
        ["plan", "qwen3-vl-32b", "-d", "ai-max-395-64g", "-d", "ai-max-395-128g-minipc", "-c", "max", "--json"],
        ["plan", "qwen3-30b-a3b-instruct-2507", "-d", "rtx-4090", "-c", "128k", "--json"],
        ["plan", "qwen3-30b-a3b-instruct-2507", "-d", "rtx-4090", "-c", "max", "--kv", "q8_0"],
        ["plan", "qwen3-vl-32b", "-d", "rtx-4090", "-c", "24k", "--kv", "q8_0", "--json"],
        ["plan", "glm-4.7-flash", "-d", "apple-m4-max-128g", "-c", "max", "--kv", "q8_0"],
        ["plan", "qwen3-vl-32b", "-d", "ai-max-395-64g", "-c", "24k", "--prefer", "speed"],
        ["plan", "qwen3-30b-a3b-instruct-2507", "-d", "dgx-spark", "-c", "max", "--prefer", "speed", "--json"],
        ["plan", "glm-4.7-flash", "-d", "ai-max-395-128g-minipc", "-c", "128k", "--prefer", "balanced"],
        ["plan", "glm-4.7-flash@198k", "qwen3-vl-32b@24k", "-d", "ai-max-395-64g", "-d", "ai-max-395-128g-minipc"],
        ["plan", "glm-4.7-flash@198k", "qwen3-vl-32b@24k", "-d", "ai-max-395-128g-minipc", "--json"],
        ["plan", "glm-4.7-flash@198k", "qwen3-vl-32b@24k", "-d", "dgx-spark", "--together"],
        ["plan", "qwen3-vl-32b", "--cluster", "2x ai-max-395-64g", "--link", "usb4", "-c", "max"],
        ["plan", "qwen3-30b-a3b-instruct-2507", "--cluster", "2x rtx-4090", "-c", "128k", "--json"],
        ["plan", "qwen3-vl-32b", "-d", "rtx-4090", "--gpus", "2", "-c", "max"],
        ["plan", "qwen3-vl-32b", "-d", "ai-max-395-64g", "-c", "max", "--os", "windows"],
        ["plan", "qwen3-30b-a3b-instruct-2507", "-d", "ai-max-395-64g", "-c", "max", "--allow-spill"],
        ["plan", "qwen3-vl-32b", "-d", "apple-m4-max-128g", "-np", "4", "-c", "128k"],
        ["plan", "qwen3-vl-32b", "-d", "ai-max-395-64g", "-c", "24k", "--format", "markdown"],
        ["plan", "qwen3-vl-32b", "-d", "ai-max-395-128g-minipc", "-c", "max", "--allow-spill", "--json"],
        ["plan", "qwen3-30b-a3b-instruct-2507", "-d", "apple-m4-max-128g", "-c", "max", "-np", "2", "--json"],
        ["plan", "glm-4.7-flash", "-d", "rtx-4090", "-c", "max", "--json"],
        ["estimate", str(local), "-c", "24k"],
        ["estimate", str(local), "-c", "128k", "--json"],
        ["estimate", str(local), "-c", "128k", "-d", "ai-max-395-64g"],
    ]
    return out


def run_all(work: Path) -> dict[str, tuple[int, str, str]]:
    from bench import demo_hub

    hub = demo_hub.serve(work / "repos", 0)
    try:
        memfit = str(Path(sys.executable).with_name("memfit"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMFIT_", "HF_"))}
        env.update({"HF_ENDPOINT": hub.url, "HF_HOME": str(work / "hf"), "MEMFIT_CACHE_DIR": str(work / "cache"),
                    "MEMFIT_CONFIG_DIR": str(work / "config"), "COLUMNS": "100"})
        local = next((work / "repos" / "qwen3-vl-32b").glob("*Q4_K_M.gguf"))
        todo = cases(local)

        def one(argv: list[str]) -> tuple[int, str, str]:
            p = subprocess.run([memfit, *argv], env=env, capture_output=True, text=True)
            out = re.sub(r'"elapsed_ms": [0-9.]+', '"elapsed_ms": X', p.stdout)  # the one timing field
            return p.returncode, out.replace(str(work), "WORK"), p.stderr.replace(str(work), "WORK")

        for m in MODELS:  # fill the header cache first, one at a time
            one(["plan", m, "-d", DEVICES[0]])
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            results = list(ex.map(one, todo))
        return {f"{i:02d} " + " ".join(a).replace(str(work), "WORK"): r for i, (a, r) in enumerate(zip(todo, results))}
    finally:
        hub.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("save", "compare"))
    ap.add_argument("dir", type=Path)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="memfit-plan-outputs-"))
    try:
        results = run_all(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.mode == "save":
        args.dir.mkdir(parents=True, exist_ok=True)
        for i, (name, (code, out, err)) in enumerate(results.items()):
            (args.dir / f"{i:02d}.txt").write_text(f"{name}\nexit {code}\n--- stdout\n{out}--- stderr\n{err}")
        print(f"saved {len(results)} outputs to {args.dir}")
        return 0
    bad = 0
    for i, (name, (code, out, err)) in enumerate(results.items()):
        now = f"{name}\nexit {code}\n--- stdout\n{out}--- stderr\n{err}"
        was = (args.dir / f"{i:02d}.txt").read_text()
        if now != was:
            bad += 1
            print(f"DIFFERS: {name}")
            (args.dir / f"{i:02d}.now").write_text(now)
    print(f"{len(results) - bad} of {len(results)} identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
