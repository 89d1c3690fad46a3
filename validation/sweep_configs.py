"""Real configs for rows of gguf-parser-go's measured CUDA compute-buffer sweep
(validation/cuda_sweep.py) whose architecture validation/layouts.py knows but whose model is not in
validation/model_configs.toml. Values (validation/sweep_configs.toml) are the models' Hugging Face
config.json as convert_hf_to_gguf.py (b11434) writes them into GGUF metadata; each entry names its
config. Specs are generated the way validation/ generates its own (modelgen.generate: BF16
conversion -> `llama-quantize --dry-run` for the quant the sweep's file carries) into
validation/models-sweep/.

    python -m validation.sweep_configs --llama-bin /work/llamacpp/build/bin [--only NAME ...] [--check]

`--check` loads each generated (quantized) header in llama-fit-params (-c 512), which checks every
tensor's name and shape against the architecture (validation/field/make_specs.py: load_check).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from validation.model_configs import load_configs

HERE = Path(__file__).resolve().parent
SPECS_DIR = HERE / "models-sweep"
SWEEP_MODELS, _ = load_configs(HERE / "sweep_configs.toml")


def main(argv: list[str] | None = None) -> int:
    from validation import modelgen

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bin", type=Path, required=True, help="directory with llama-quantize")
    ap.add_argument("--work", type=Path, default=HERE / "cache" / "work")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--check", action="store_true", help="load each generated header in llama-fit-params")
    a = ap.parse_args(argv)
    ap_only = set(a.only or [c["name"] for c in SWEEP_MODELS])
    for cfg in SWEEP_MODELS:
        if cfg["name"] not in ap_only:
            continue
        spec = modelgen.generate(cfg, a.llama_bin, a.work)
        print(f"{cfg['name']}: {len(spec['tensors'])} tensors -> {modelgen.save_spec(spec, SPECS_DIR)}")
        if a.check:
            from validation.field.make_specs import load_check

            gguf = modelgen.write_model(spec, a.work / f"{cfg['name']}-{cfg['quant']}.gguf")
            try:
                print(f"  {load_check(cfg['name'], gguf, a.llama_bin)}")
            finally:
                gguf.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
