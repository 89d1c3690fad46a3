"""Measure llama.cpp's per-device buffers across RPC members: real `ggml-rpc-server` processes on
127.0.0.1 (CPU backend, one per simulated member) and a real `llama-server --rpc ... -ts ...` over
them. Records, per case, the layer -> device assignment and each device's model, KV and compute
buffer sizes as llama.cpp logs them (MiB, two decimals), and the host's. The results are what
`planner` reproduces for a cluster (tests replay validation/rpc/results.json without llama.cpp).

    python -m validation.rpc.run_rpc --llama-bin /work/llamacpp/build-rpc/bin

The RPC binaries need a build with -DGGML_RPC=ON (b11434 names the server `ggml-rpc-server`;
builds before b10488 called it `rpc-server`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

from planner.testing import ggufgen

# (name, architecture, shape): dense, MoE and sliding-window models small enough to run on a CPU
MODELS = {
    "dense": ("qwen3", dict(n_vocab=4096, n_layer=12, n_embd=1024, n_ff=2816, n_head=16, n_head_kv=4, ctx=8192)),
    "moe": ("qwen3moe", dict(n_vocab=4096, n_layer=8, n_embd=1024, n_ff=2816, n_head=16, n_head_kv=4, ctx=8192,
                             n_expert=16, n_expert_used=4, n_ff_exp=512)),
}
# sliding-window attention: Gemma 3 1B's real layout (validation/models-sweep/gemma-3-1b.json, 26 layers,
# SWA 512, 5 of 6 layers sliding), written by validation/modelgen.py
SWA_SPEC = ROOT / "validation" / "models-sweep" / "gemma-3-1b.json"
# -ts ratios over 2 and 3 members, even and not
SPLITS = [(1, 1), (3, 1), (1, 3), (2, 1, 1)]
CONTEXTS = [4096, 8192]

_BUF = re.compile(r"(?:load_tensors|llama_kv_cache|sched_reserve|llama_context):\s+(\S+(?:\[[^\]]+\])?)\s+"
                  r"(model|KV|compute|output|RS) buffer size =\s+([\d.]+) MiB")
_LAYER = re.compile(r"layer\s+(\d+) assigned to device (\S+?),")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"rpc server on port {port} did not come up")


def _device_name(label: str, ports: list[int]) -> str:
    """'RPC0[127.0.0.1:50061]' -> 'rpc0' (by port order: the member), 'CPU'/'CPU_Mapped' -> 'host'."""
    m = re.search(r":(\d+)\]", label)
    if m:
        return f"rpc{ports.index(int(m.group(1)))}"
    return "host"


def run_case(bin_dir: Path, model: Path, split: tuple[int, ...], ctx: int, env: dict[str, str]) -> dict:
    ports = [_free_port() for _ in split]
    with ExitStack() as stack:
        for p in ports:
            proc = subprocess.Popen([str(bin_dir / "ggml-rpc-server"), "-H", "127.0.0.1", "-p", str(p), "-t", "1"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            stack.callback(proc.wait)
            stack.callback(proc.kill)
            _wait_port(p)
        rpc = ",".join(f"127.0.0.1:{p}" for p in ports)
        args = ["-m", str(model), "-c", str(ctx), "-ngl", "999", "-fa", "on", "-np", "1", "--rpc", rpc,
                "-ts", ",".join(map(str, split))]
        cmd = [str(bin_dir / "llama-server"), *args, "--host", "127.0.0.1", "--port", str(_free_port()),
               "--no-warmup", "-fit", "off", "-t", "1", "-v"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                env=env)
        log: list[str] = []
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            if "listening on" in line or "exiting due to" in line or time.monotonic() > deadline:
                break
        proc.kill()
        proc.wait()
    text = "".join(log)
    buffers: dict[str, dict[str, float]] = {}
    for m in _BUF.finditer(text):
        dev, kind = _device_name(m.group(1), ports), m.group(2)
        buffers.setdefault(dev, {})
        buffers[dev][kind] = round(buffers[dev].get(kind, 0.0) + float(m.group(3)), 2)
    layers = {int(m.group(1)): _device_name(m.group(2) + "]", ports) if "[" in m.group(2) else
              ("host" if m.group(2).startswith("CPU") else m.group(2)) for m in _LAYER.finditer(text)}
    ok = "listening on" in text
    return {"split": list(split), "ctx": ctx, "args": " ".join(a if a != str(model) else "MODEL.gguf" for a in args),
            "ok": ok, "pipeline_parallel": "pipeline parallelism enabled" in text,
            "buffers_mib": buffers, "layer_device": [layers.get(i) for i in sorted(layers)],
            **({} if ok else {"error": text[-1500:]})}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-bin", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    a = ap.parse_args()
    env = {**os.environ, "LD_LIBRARY_PATH": str(a.llama_bin)}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        from validation.modelgen import write_model as write_spec

        models = {name: (arch, dims, None) for name, (arch, dims) in MODELS.items()}
        models["swa"] = ("gemma3", {}, json.loads(SWA_SPEC.read_text()))
        for name, (arch, dims, spec) in models.items():
            path = Path(tmp) / f"{name}.gguf"
            if spec is not None:
                write_spec(spec, path)
            else:
                ggufgen.write_model(path, arch, ggufgen.ModelShape(**dims))  # type: ignore[arg-type]
            for split in SPLITS:
                for ctx in CONTEXTS:
                    rec = run_case(a.llama_bin, path, split, ctx, env)
                    rec.update({"model": name, "arch": arch, "shape": dims or {"spec": SWA_SPEC.name}})
                    results.append(rec)
                    print(name, split, ctx, "ok" if rec["ok"] else "FAILED", rec["buffers_mib"], flush=True)
    a.out.write_text(json.dumps({"llama_build": 11434, "backend": "cpu via rpc", "cases": results}, indent=1) + "\n")
    print(f"wrote {a.out} ({sum(r['ok'] for r in results)}/{len(results)} cases ran)")


if __name__ == "__main__":
    main()
