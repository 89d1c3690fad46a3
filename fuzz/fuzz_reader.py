#!/usr/bin/env python3
"""Long fuzz run of the GGUF header reader (planner/reader.py).

    python fuzz/fuzz_reader.py --executions 100000            # structure-aware mutation engine
    python fuzz/fuzz_reader.py --engine atheris --executions 100000   # coverage-guided (libFuzzer)

Seeds: valid headers of every architecture family in planner/testing/ggufgen.py (tiny and >1024-token
vocabularies, GGUF v2, custom alignment, split shards, vocabulary-only files). Each execution
mutates one (planner/testing/ggufmutate.py: truncation, bit flips, huge counts and lengths, wrong value and
ggml types, duplicate keys and tensors, overlapping / out-of-range offsets, dimensions that
overflow 64 bits, insertions, deletions, splices, a wrong claimed file size), sometimes stacking
mutations on a mutant that still parses, and serves it with the file size known or unknown and
with local (exact) or remote (read-ahead) read policy.

Pass: every execution returns a GGUFHeader or raises GGUFError, within --timeout seconds, and the
process stays under --memory-mb (an address-space limit: exceeding it is a MemoryError, counted
as a crash). Crashing inputs are saved under fuzz/crashes/. Exit status 1 if anything crashed.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import random
import re
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Hang(Exception):
    """An execution ran past --timeout."""


def build_corpus(tmp: Path) -> list[tuple[str, bytes, int]]:
    """(label, header bytes, file size) of valid GGUFs written by the gguf package's writer."""
    from planner.testing import ggufgen
    from planner.testing.ggufgen import ModelShape, typed, V
    from planner.testing.ggufmutate import header_bytes

    tiny = ModelShape(n_vocab=40, n_layer=2)
    medium = ModelShape(n_vocab=1500, n_layer=3)
    seeds: list[tuple[str, bytes, int]] = []

    def add(label: str, path: Path) -> None:
        data, size, _ = header_bytes(path)
        seeds.append((label, data, size))

    for arch in ggufgen.ARCHS:
        add(f"{arch}-tiny", ggufgen.write_model(tmp / f"{arch}-tiny.gguf", arch, tiny)[0])
    for arch in ("llama", "qwen3moe", "deepseek2", "gemma3"):
        add(f"{arch}-1500vocab", ggufgen.write_model(tmp / f"{arch}-med.gguf", arch, medium)[0])
    for i, shard in enumerate(ggufgen.write_model(tmp / "split.gguf", "qwen3moe", tiny, shards=2)):
        add(f"qwen3moe-shard{i + 1}", shard)
    meta, tensors = ggufgen.model_spec("llama", tiny)
    meta["tokenizer.ggml.scores"] = typed([0.5] * 40, V.ARRAY, V.FLOAT32)
    add("llama-align64", ggufgen.write_gguf(tmp / "align.gguf", meta, tensors, alignment=64))
    add("vocab-only", ggufgen.write_gguf(tmp / "vocab.gguf", {"general.architecture": "llama",
                                                              **ggufgen.tokenizer_metadata(300)}, []))
    nested = {"general.architecture": "llama", "x.nested": typed([[1, 2], [3]], V.ARRAY, V.ARRAY),
              "x.strs": typed([["a"], ["b", "c"]], V.ARRAY, V.ARRAY), "x.f64": typed(1.5, V.FLOAT64),
              "x.i64": typed(-5, V.INT64), "x.bool": True}
    add("nested-arrays", ggufgen.write_gguf(tmp / "nested.gguf", nested, [("t", (32, 2), ggufgen.Q.Q8_0)]))
    label, data, size = seeds[0]
    seeds.append(("llama-v2", data[:4] + struct.pack("<I", 2) + data[8:], size))
    return seeds


# --- the builtin engine ---------------------------------------------------------------------------


def run_builtin(args: argparse.Namespace, seeds: list[tuple[str, bytes, int]]) -> dict:
    from planner.testing.ggufmutate import scan_layout, mutate
    from planner.errors import GGUFError
    from planner.header import GGUFHeader
    from planner.reader import parse_header

    rng = random.Random(args.seed)
    layouts = [(label, data, size, scan_layout(data)) for label, data, size in seeds]
    splice = [d for _, d, _ in seeds]
    stats: collections.Counter[str] = collections.Counter()
    messages: collections.Counter[str] = collections.Counter()
    mutators: collections.Counter[str] = collections.Counter()
    crashes: list[dict] = []
    slowest = (0.0, "")
    t0 = time.perf_counter()
    next_report = args.progress
    while stats["executions"] < args.executions:
        label, data, size, lay = rng.choice(layouts)
        stats["inputs"] += 1
        for depth in range(rng.choice((1, 1, 1, 2, 3))):
            case = mutate(rng, data, lay, size, splice)
            mutators[case.what] += 1
            t = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, args.timeout)
            try:
                result = parse_header(case.source())
                outcome = "header"
            except GGUFError as e:
                result, outcome = e, "gguf_error"
                messages[_category(e.message)] += 1
            except Hang:
                result, outcome = None, "hang"
            except BaseException as e:  # noqa: BLE001 - anything else is the bug we hunt
                if isinstance(e, KeyboardInterrupt):
                    raise
                result, outcome = e, "crash"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            dt = time.perf_counter() - t
            if dt > slowest[0]:
                slowest = (dt, f"{label} / {case.what}")
            stats["executions"] += 1
            stats[outcome] += 1
            if outcome in ("crash", "hang"):
                crashes.append(_save_crash(case, label, outcome, result))
            if not isinstance(result, GGUFHeader) or case.size is None:
                break
            try:  # a mutant that still parses is a new valid seed for the next mutation
                lay = scan_layout(case.data)
            except struct.error:
                break
            if lay.header_end > len(case.data):  # the header runs on into the zero-filled hole
                break
            data, size = case.data, case.size
        if args.progress and stats["executions"] >= next_report:
            next_report += args.progress
            el = time.perf_counter() - t0
            print(f"  {stats['executions']} executions, {stats['crash']} crashes, {stats['hang']} hangs, "
                  f"{el:.0f} s", flush=True)
    elapsed = time.perf_counter() - t0
    return {
        "engine": "builtin (structure-aware mutation)",
        "seed": args.seed,
        "seeds": len(seeds),
        "executions": stats["executions"],
        "stacked_mutations": stats["executions"] - stats["inputs"],
        "headers": stats["header"],
        "gguf_errors": stats["gguf_error"],
        "crashes": stats["crash"],
        "hangs": stats["hang"],
        "seconds": round(elapsed, 1),
        "executions_per_second": round(stats["executions"] / elapsed),
        "slowest_execution_ms": round(slowest[0] * 1000, 1),
        "slowest_execution": slowest[1],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "memory_limit_mb": args.memory_mb,
        "timeout_s": args.timeout,
        "error_kinds": dict(messages.most_common(25)),
        "mutators": dict(sorted(mutators.items())),
        "crash_files": [c["file"] for c in crashes][:20],
    }


def _category(message: str) -> str:
    """An error message without its numbers and names, to count kinds of errors."""
    text = message.split(": ", 1)[-1]
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"\d+", "N", text)
    return text[:90]


def _save_crash(case, label: str, outcome: str, exc: BaseException | None) -> dict:
    out = ROOT / "fuzz" / "crashes"
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(case.data + repr((case.size, case.report_size, case.read_ahead)).encode()).hexdigest()[:16]
    path = out / f"{outcome}-{digest}.bin"
    path.write_bytes(case.data)
    info = {"file": str(path.relative_to(ROOT)), "seed": label, "mutation": case.what, "size": case.size,
            "report_size": case.report_size, "read_ahead": case.read_ahead, "outcome": outcome,
            "error": "".join(traceback.format_exception(exc)) if exc is not None else "timeout"}
    path.with_suffix(".json").write_text(json.dumps(info, indent=1))
    print(f"!! {outcome}: {label} / {case.what} -> {path}", flush=True)
    return info


# --- the atheris engine ---------------------------------------------------------------------------
# Input encoding: 1 flag byte (bit 0: size unknown, bit 1: remote read-ahead), 8 bytes claimed
# file size (little-endian), then the header bytes.


def run_atheris(args: argparse.Namespace, seeds: list[tuple[str, bytes, int]]) -> None:
    import atheris

    with atheris.instrument_imports():
        from planner import reader  # noqa: F401 - instrumented for coverage
        from planner.reader import parse_header
    from planner.testing.ggufmutate import SparseSource, mutate, scan_layout
    from planner.errors import GGUFError
    from planner.header import GGUFHeader

    def decode(raw: bytes) -> SparseSource | None:
        if len(raw) < 9:
            return None
        flags = raw[0]
        size = struct.unpack_from("<Q", raw, 1)[0]
        return SparseSource(raw[9:], size, report_size=not flags & 1,
                            read_ahead=None if flags & 2 else 0)

    def test_one_input(raw: bytes) -> None:
        src = decode(raw)
        if src is None:
            return
        try:
            parse_header(src)
        except GGUFError:
            pass

    splice = [d for _, d, _ in seeds]

    def custom_mutator(raw: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        src = decode(raw)
        if src is not None and rng.random() < 0.6:
            try:  # structure-aware mutation needs a trustworthy layout: only of valid headers
                h = parse_header(SparseSource(src.prefix, src.total))
                if isinstance(h, GGUFHeader):
                    lay = scan_layout(src.prefix)
                    case = mutate(rng, src.prefix, lay, src.total, splice)
                    flags = (0 if case.report_size else 1) | (2 if case.read_ahead is None else 0)
                    out = bytes([flags]) + struct.pack("<Q", case.size or 0) + case.data
                    return out[:max_size]
            except (GGUFError, struct.error):
                pass
        return atheris.Mutate(raw, max_size)

    corpus_dir = Path(tempfile.mkdtemp(prefix="gguf-fuzz-corpus-"))
    for label, data, size in seeds:
        for flags in (0, 1, 2):
            (corpus_dir / f"{label}-{flags}").write_bytes(bytes([flags]) + struct.pack("<Q", size) + data)
    argv = [sys.argv[0], str(corpus_dir), f"-runs={args.executions}", f"-timeout={int(args.timeout)}",
            f"-rss_limit_mb={args.memory_mb}", "-max_len=131072", f"-seed={args.seed}",
            "-print_final_stats=1", *args.libfuzzer]
    atheris.Setup(argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--executions", type=int, default=100_000, help="parses to run (default 100000)")
    ap.add_argument("--engine", choices=("builtin", "atheris"), default="builtin")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds one parse may take")
    ap.add_argument("--memory-mb", type=int, default=3072, help="address-space / RSS limit")
    ap.add_argument("--progress", type=int, default=10_000, help="report every N inputs (0: quiet)")
    ap.add_argument("--json", type=Path, help="also write the summary here")
    ap.add_argument("libfuzzer", nargs="*", help="extra libFuzzer flags (atheris engine, after --)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="gguf-fuzz-") as tmp:
        seeds = build_corpus(Path(tmp))
    print(f"{len(seeds)} seed headers ({', '.join(label for label, _, _ in seeds)})", flush=True)

    if args.engine == "atheris":
        try:
            import atheris  # noqa: F401
        except ImportError:
            print("atheris is not installed: pip install atheris (a fuzzing-only tool)", file=sys.stderr)
            return 2
        run_atheris(args, seeds)  # libFuzzer exits the process itself
        return 0

    def on_alarm(signum, frame):  # noqa: ARG001
        raise Hang()

    signal.signal(signal.SIGALRM, on_alarm)
    limit = args.memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    summary = run_builtin(args, seeds)
    text = json.dumps(summary, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if summary["crashes"] or summary["hangs"] else 0


if __name__ == "__main__":
    sys.exit(main())
