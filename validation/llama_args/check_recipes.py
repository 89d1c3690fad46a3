"""Start the real llama-server with the flags of memfit's printed recipes, to show they run.

For a set of plans (devices, contexts, KV types, --no-mmap, --n-cpu-moe, partial offload, CPU
only, YaRN past the trained context) this script asks `memfit plan --json --shell bash` for the
llama-server line, points it at a small local model (a real GGUF with zero weights in a Q4_K_M mix) and a free port, starts it, and waits for "server is listening" or an error. GPU
flags (-ngl, --n-cpu-moe, -fa) are accepted by a CPU build as well; what this checks is that every
flag and value parses and the server comes up.

    python validation/llama_args/check_recipes.py --llama-bin /work/llamacpp/build/bin \
        > validation/llama_args/recipes.md
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
from planner.testing import ggufgen

# (label, plan arguments): each gives a different shape of llama-server line
RECIPES: list[tuple[str, list[str]]] = [
    ("APU, Windows defaults", ["--device", "ai-max-395-64g", "--ctx", "4k"]),
    ("APU, --no-mmap", ["--device", "ai-max-395-64g", "--ctx", "4k", "--no-mmap"]),
    ("q8_0 KV", ["--device", "rtx-4090", "--ctx", "4k", "--kv", "q8_0"]),
    ("two slots", ["--device", "rtx-4090", "--ctx", "8k", "-np", "2"]),
    ("CPU only", ["--device", "rtx-4090", "--ctx", "4k", "--backend", "cpu"]),
    ("YaRN past the trained context", ["--device", "dgx-spark", "--ctx", "16k"]),
    ("Mac", ["--device", "apple-m4-max-64g", "--ctx", "4k"]),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model(work: Path, arch: str, moe: bool, big: bool = False) -> Path:
    """A Q4_K_M-mix model with the exact header a real one has and all-zero weights (they load and
    run like any others; planner/testing/ggufgen.py). `big`: ~2 GiB, so a 3 GB card needs partial offload."""
    dims = (dict(n_layer=16, n_embd=2048, n_ff=8192, n_head=16, n_head_kv=8) if big else
            dict(n_layer=4, n_embd=256, n_ff=512, n_head=4, n_head_kv=2))
    shape = ggufgen.ModelShape(n_vocab=4096, ctx=4096, **dims,  # type: ignore[arg-type]
                               **({"n_expert": 8, "n_expert_used": 2, "n_ff_exp": 2048 if big else 256} if moe else {}))
    return ggufgen.write_model(work / f"{arch}{'-big' if big else ''}-Q4_K_M.gguf", arch, shape)[0]


def _line(model: Path, args: list[str]) -> str:
    entry = "import sys; from planner.cli import main; sys.argv = ['memfit'] + sys.argv[1:]; main()"
    res = subprocess.run([sys.executable, "-c", entry, "plan", str(model), *args, "--json", "--shell", "bash"],
                         capture_output=True, text=True, cwd=ROOT)
    if not res.stdout.strip():
        raise SystemExit(f"memfit plan {' '.join(args)} failed: {res.stderr.strip()}")
    data = json.loads(res.stdout)
    commands = data["recommendation"]["commands"]
    if commands is None:
        raise SystemExit(f"memfit plan {' '.join(args)}: nothing fits, no line to check")
    return commands["llama_server"]


def _start(llama_bin: Path, line: str, timeout: float = 60.0) -> tuple[bool, str]:
    """Start llama-server with the recipe's words and wait for "listening on" (b11434's words;
    older builds say "server is listening") or its exit."""
    argv = shlex.split(line)
    argv[0] = str(llama_bin / "llama-server")
    argv += ["--port", str(_free_port()), "--host", "127.0.0.1"]
    env = {**os.environ, "LD_LIBRARY_PATH": str(llama_bin)}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for text in proc.stdout:
            lines.put(text)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    last = ""
    try:
        while time.monotonic() < deadline:
            try:
                text = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            if text is None:
                return False, f"exited ({proc.wait()}): {last}"
            last = text.strip()
            if "listening on" in text or "server is listening" in text:
                return True, "listening"
            if "invalid argument" in text.lower():
                return False, last
        return False, f"no answer in {timeout:.0f} s: {last}"
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-bin", type=Path, required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dense = _model(work, "qwen3", moe=False)
        dense_big = _model(work, "qwen3", moe=False, big=True)
        moe_big = _model(work, "qwen3moe", moe=True, big=True)
        print("| recipe | model | llama-server flags (memfit's) | result |")
        print("|---|---|---|---|")
        ok = 0
        small_card = ["--device", "rtx-4090", "--vram", "3g", "--ctx", "4k"]
        cases = [(lbl, args, dense) for lbl, args in RECIPES] + [
            ("partial offload (3 GB card)", small_card, dense_big),
            ("MoE expert offload (3 GB card)", small_card, moe_big)]
        for label, args, model in cases:
            line = _line(model, args)
            good, why = _start(a.llama_bin, line)
            ok += good
            flags = " ".join(w for w in shlex.split(line)[1:] if not w.endswith(".gguf"))
            print(f"| {label} | {model.name} | `{flags}` | {'runs' if good else 'FAILS: ' + why} |")
        print(f"\n{ok}/{len(cases)} recipes start on this llama-server build.")


if __name__ == "__main__":
    main()
