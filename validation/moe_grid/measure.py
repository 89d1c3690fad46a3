"""The MoE grid: llama.cpp's CPU compute buffer for synthetic qwen3moe shapes, measured with
memprobe (llama-fit-params' no_alloc dry run, in bytes), to check the MoE phase of
planner/estimator/compute.py over shapes the real-model validation does not cover
(expert width against embedding width, experts used, FA on/off, contexts around the ubatch).

    python -m validation.moe_grid.measure --memprobe PATH/memprobe [--out validation/moe_grid/results.jsonl]

Each line of results.jsonl: the shape (planner.testing.ggufgen.ModelShape fields) and what
llama.cpp reserved (context, batch, ubatch, outputs, flash attention, compute/KV/output bytes).
tests/test_moe_grid.py replays every line without llama.cpp. Measured with llama.cpp b11434.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from planner.testing.ggufgen import ModelShape, write_model

HERE = Path(__file__).resolve().parent
KEEP = ("n_ctx", "n_batch", "n_ubatch", "n_outputs_max", "flash_attn", "compute_bytes", "kv_bytes", "output_bytes")
# (shape, contexts): a grid at 4096, and context sweeps on shapes near the phase boundaries
CTX_GRID = (512, 4096)
CTX_SWEEP = (512, 768, 1024, 1280, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384)


def _grid_shapes() -> Iterator[dict[str, int]]:
    """E x experts used x expert width, with as many experts as the used count calls for."""
    for e in (1024, 2048, 4096):
        for used in (2, 4, 8):
            for ff_exp in (256, 512, 768, 1024, 1536, 2048):
                n_expert = {2: 16, 4: 32, 8: 64}[used] if e < 4096 else {2: 16, 4: 64, 8: 128}[used]
                yield dict(n_vocab=4096, n_layer=2, n_embd=e, n_ff=4 * e, n_head=e // 128,
                           n_head_kv=max(1, e // 512), n_expert=n_expert, n_expert_used=used, n_ff_exp=ff_exp)


SWEEP_SHAPES = {
    # validation/rpc's MoE model
    "rpc": dict(n_vocab=4096, n_layer=8, n_embd=1024, n_ff=2816, n_head=16, n_head_kv=4, n_expert=16,
                n_expert_used=4, n_ff_exp=512),
    # OLMoE-1B-7B's FFN proportions (E 2048, 8 of 64 experts of 1024)
    "olmoe-like": dict(n_vocab=4096, n_layer=4, n_embd=2048, n_ff=8192, n_head=16, n_head_kv=16, n_expert=64,
                       n_expert_used=8, n_ff_exp=1024),
    "tie2048n4": dict(n_vocab=4096, n_layer=4, n_embd=2048, n_ff=8192, n_head=16, n_head_kv=4, n_expert=32,
                      n_expert_used=4, n_ff_exp=1024),
    "n2u15": dict(n_vocab=4096, n_layer=4, n_embd=2048, n_ff=8192, n_head=16, n_head_kv=4, n_expert=16,
                  n_expert_used=2, n_ff_exp=1536),
    "n8u6": dict(n_vocab=4096, n_layer=4, n_embd=1024, n_ff=8192, n_head=8, n_head_kv=2, n_expert=64,
                 n_expert_used=8, n_ff_exp=768),
}


def cases() -> Iterator[tuple[dict[str, int], tuple[int, ...]]]:
    for shape in _grid_shapes():
        yield shape, CTX_GRID
    for shape in SWEEP_SHAPES.values():
        yield shape, CTX_SWEEP


def measure(memprobe: Path, shape: dict[str, int], contexts: tuple[int, ...], work: Path) -> list[dict]:
    """memprobe on one shape at each context with FA on and off (ubatch 512, batch 2048, one sequence)."""
    model = work / "m.gguf"
    write_model(model, "qwen3moe", ModelShape(**shape))
    runs = [(c, fa) for c in contexts for fa in ("on", "off")]
    case_file = work / "cases.txt"
    case_file.write_text("".join(f"-m {model} -c {c} -fa {fa} -ctk f16 -ctv f16 -ub 512 -b 2048 -np 1\n"
                                 for c, fa in runs))
    out = subprocess.run([str(memprobe), str(case_file)], capture_output=True, text=True, check=True).stdout
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [{"shape": shape, "rec": {k: rec[k] for k in KEEP}} for rec in records]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--memprobe", type=Path, required=True, help="validation/probe/memprobe.cpp, built")
    ap.add_argument("--out", type=Path, default=HERE / "results.jsonl")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, args.out.open("w") as fh:
        for shape, contexts in cases():
            for row in measure(args.memprobe, shape, contexts, Path(tmp)):
                fh.write(json.dumps(row, sort_keys=True) + "\n")
            print(shape["n_embd"], shape["n_expert_used"], shape["n_ff_exp"], flush=True)


if __name__ == "__main__":
    main()
