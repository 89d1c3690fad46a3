#!/usr/bin/env python3
"""Time memfit's GGUF header reader against gguf.GGUFReader on the same generated files.

    python bench/bench_reader.py [--repeat 7] [--reference-repeat 2]

Files (sparse, written by planner/testing/ggufgen.py with the gguf package's writer): a tiny model, a
Llama-3-8B-shaped one with a 32k vocabulary, a Qwen2-7B-shaped one with the 152k vocabulary
(the target: well under 100 ms), a 48-layer MoE with ~580 tensors and a 152k vocabulary.
Prints, per file: header size, our best and median time, GGUFReader's best time, the ratio, and
how many reads a remote source (1 MiB read-ahead) would make and how many bytes it would fetch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

import gguf

from planner.testing import ggufgen
from planner.testing.ggufgen import ModelShape
from planner.reader import parse_file, parse_header
from planner.sources import LocalFileSource

MODELS = [
    ("tiny llama (256 vocab)", "llama", ModelShape()),
    ("llama 8B shape, 32k vocab", "llama", ModelShape(n_vocab=32000, n_layer=32, n_embd=4096, n_ff=14336,
                                                      n_head=32, n_head_kv=8)),
    ("qwen2 7B shape, 152k vocab", "qwen2", ggufgen.QWEN2_7B_SHAPE),
    ("qwen3moe 48 layers, 152k vocab", "qwen3moe", ModelShape(n_vocab=151936, n_layer=48, n_embd=2048,
                                                              n_ff=6144, n_head=32, n_head_kv=4, n_expert=128,
                                                              n_expert_used=8, n_ff_exp=768)),
]


class _CountingSource(LocalFileSource):
    """A local file read the way a remote source is: 1 MiB read-ahead, each read counted."""

    read_ahead = 1 << 20

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads = 0
        self.fetched = 0

    def read(self, offset: int, n: int) -> bytes:
        data = super().read(offset, n)
        self.reads += 1
        self.fetched += len(data)
        return data


def _times(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7, help="runs of our reader per file")
    ap.add_argument("--reference-repeat", type=int, default=1, help="runs of gguf.GGUFReader per file")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-reader-") as tmp:
        for label, arch, shape in MODELS:
            path = ggufgen.write_model(Path(tmp) / f"{arch}-{shape.n_vocab}.gguf", arch, shape)[0]
            header = parse_file(path)
            ours = _times(lambda: parse_file(path), args.repeat)
            ref = _times(lambda: gguf.GGUFReader(path), args.reference_repeat)
            remote = _CountingSource(path)
            parse_header(remote)
            rows.append((label, header.data_offset, len(header.tensors), min(ours), statistics.median(ours),
                         min(ref), remote.reads, remote.fetched))

    print(f"{'file':32} {'header':>9} {'tensors':>7} {'ours best':>10} {'median':>9} "
          f"{'GGUFReader':>11} {'ratio':>7} {'remote reads':>12} {'fetched':>9}")
    for label, hdr, nt, best, med, ref, reads, fetched in rows:
        print(f"{label:32} {hdr / 2**20:8.2f}M {nt:7d} {best * 1000:8.1f}ms {med * 1000:7.1f}ms "
              f"{ref * 1000:9.0f}ms {ref / best:6.0f}x {reads:12d} {fetched / 2**20:8.2f}M")
    target = next(r for r in rows if "152k" in r[0])
    print(f"\n152k-vocabulary header: {target[3] * 1000:.1f} ms (best of {args.repeat}), "
          f"{target[5] / target[3]:.0f}x faster than gguf.GGUFReader")
    return 0 if target[3] < 0.1 else 1


if __name__ == "__main__":
    sys.exit(main())
