"""Measure what a Hub reference costs: bytes and requests of a cold run, a warm run, an offline
run, and runs under injected network faults. Uses the test suite's local fake Hub (no internet).

    python bench/hub_budget.py [--vocab 152064] [--chunk 1048576] [--no-hints-table]

Prints markdown tables (docs/hub.md quotes them): the runs above, then cold runs of a 5-variant
and a 15-variant repo without and with skip hints (planner.reader.SkipHint), side by side.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from planner.testing import fakehub
from planner.testing import ggufgen
from planner.testing.fakehub import FakeHub, model_repo_files

QUANTS = ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "UD-Q4_K_XL"]
# an unsloth-sized list: every mix the fake Hub knows plus one more dynamic quant
fakehub.QUANT_MIX.setdefault("UD-Q2_K_XL", ("Q2_K", "Q4_K"))
QUANTS_15 = ["Q2_K", "UD-Q2_K_XL", "Q3_K_M", "IQ2_XXS", "Q4_0", "Q4_K_S", "Q4_K_M", "UD-Q4_K_XL", "IQ4_XS",
             "Q5_K_M", "Q6_K", "Q8_0", "MXFP4_MOE", "BF16", "F16"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=int, default=152064)
    ap.add_argument("--chunk", type=int, default=1 << 20)
    ap.add_argument("--no-hints-table", action="store_true", help="skip the with/without hints comparison")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="memfit-hub-bench-"))
    shape = ggufgen.ModelShape(n_vocab=args.vocab, n_layer=28, n_embd=3584, n_ff=18944, n_head=28, n_head_kv=4)
    files = model_repo_files(tmp / "files", "Qwen2-7B", QUANTS, shape=shape, shards={"Q8_0": 2}, mmproj=True)
    hub = FakeHub()
    os.environ.update(HF_ENDPOINT=hub.url, MEMFIT_CACHE_DIR=str(tmp / "cache"), HF_HOME=str(tmp / "hf"),
                      MEMFIT_HTTP_CHUNK=str(args.chunk), MEMFIT_HTTP_BACKOFF="0.05", MEMFIT_HTTP_MAX_WAIT="5")
    os.environ.pop("HF_HUB_OFFLINE", None)
    os.environ.pop("HF_TOKEN", None)

    from planner import hub as hubmod
    from planner import resolver as resolvermod
    from planner.reader import HINT_STATS, parse_file
    from planner.resolver import resolve

    header_bytes = sum(parse_file(p).data_offset for p in files.values())
    total_size = sum(p.stat().st_size for p in files.values())
    print(f"repo: {len(QUANTS)} variants, {len(files)} files ({total_size / 2**30:.1f} GiB of GGUF), "
          f"vocabulary {args.vocab:,}, header bytes {header_bytes:,}, chunk {args.chunk:,}\n")
    print("| run | requests (API / file) | bytes sent by the server | received by memfit "
          "| received / header bytes | retries | time |")
    print("|---|---|---|---|---|---|---|")

    def measure(label: str, repo: str, fault: dict | None = None, offline: bool = False) -> None:
        hub.clear_faults()
        hub.reset_stats()
        hubmod.STATS.reset()
        if fault:
            hub.add_fault(**fault)
        if offline:
            os.environ["HF_HUB_OFFLINE"] = "1"
        t0 = time.perf_counter()
        try:
            resolve(repo)
            outcome = ""
        except Exception as e:  # noqa: BLE001 - report it in the table
            outcome = f" ({type(e).__name__}: {e})"
        finally:
            os.environ.pop("HF_HUB_OFFLINE", None)
        dt = time.perf_counter() - t0
        api = sum(1 for r in hub.records if r.path.startswith("/api/"))
        filereq = len(hub.file_records())
        sent = sum(r.bytes_sent for r in hub.file_records())
        got = hubmod.STATS.bytes_received
        ratio = f"{got / header_bytes:.3f}x" if got else "0"
        print(f"| {label}{outcome} | {api + filereq} ({api} / {filereq}) | {sent:,} | {got:,} | {ratio} | "
              f"{hubmod.STATS.retries} | {dt:.2f} s |")

    n = 0

    def fresh(files_: dict) -> str:
        nonlocal n
        n += 1
        name = f"bench/Qwen2-7B-GGUF-{n}"
        hub.add_repo(name, files_)
        return name

    repo = fresh(files)
    measure("cold (all variants + mmproj)", repo)
    measure("warm (same command again)", repo)
    measure("offline (HF_HUB_OFFLINE=1)", repo, offline=True)
    measure("cold, 503 x2 on the CDN", fresh(files), {"kind": "status", "status": 503, "times": 2, "where": "cdn"})
    measure("cold, reset mid-body x3", fresh(files), {"kind": "reset", "after_bytes": 300_000, "times": 3,
                                                      "where": "cdn"})
    measure("cold, truncated ranges x3", fresh(files), {"kind": "truncate", "after_bytes": 300_000, "times": 3,
                                                        "where": "cdn"})
    measure("cold, 429 Retry-After: 1", fresh(files), {"kind": "status", "status": 429, "retry_after": "1",
                                                       "times": 1, "where": "cdn"})
    measure("cold, proxy ignores Range (200 + body)", fresh(files), {"kind": "full_body", "times": -1,
                                                                     "where": "cdn"})
    measure("cold, 503 forever (gives up)", fresh(files), {"kind": "status", "status": 503, "times": -1,
                                                           "where": "cdn"})
    if not args.no_hints_table:
        files15 = model_repo_files(tmp / "files15", "Qwen2-7B", QUANTS_15, shape=shape, shards={"BF16": 2, "F16": 2})
        print("\nCold runs without and with skip hints (the smallest variant is read in full first; "
              "the other files jump over its tokenizer's string arrays):\n")
        print("| repo | header bytes | without hints: requests / bytes / time | with hints: requests / "
              "bytes / time | bytes saved | jumps / misses / re-parses |")
        print("|---|---|---|---|---|---|")
        for label, fs in ((f"{len(QUANTS)} variants, {len(files)} files", files),
                          (f"{len(QUANTS_15)} variants, {len(files15)} files", files15)):
            hb = sum(parse_file(p).data_offset for p in fs.values())
            runs = []
            for hinted in (False, True):
                hub.clear_faults()
                hub.reset_stats()
                hubmod.STATS.reset()
                HINT_STATS.reset()
                original = resolvermod.skip_hints_from
                if not hinted:
                    resolvermod.skip_hints_from = lambda h: {}  # type: ignore[assignment]
                t0 = time.perf_counter()
                try:
                    resolve(fresh(fs))
                finally:
                    resolvermod.skip_hints_from = original  # type: ignore[assignment]
                runs.append((len(hub.file_records()), hubmod.STATS.bytes_received, time.perf_counter() - t0))
            (r0, b0, t0_), (r1, b1, t1) = runs
            print(f"| {label} | {hb:,} | {r0} / {b0:,} ({b0 / hb:.2f}x) / {t0_:.2f} s | {r1} / {b1:,} "
                  f"({b1 / hb:.2f}x) / {t1:.2f} s | {b0 / b1:.1f}x fewer | {HINT_STATS.jumps} / "
                  f"{HINT_STATS.landing_misses} / {HINT_STATS.reparses} |")
    hub.close()


if __name__ == "__main__":
    main()
