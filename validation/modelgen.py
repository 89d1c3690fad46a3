"""Generate GGUF headers of real architectures with the quant mix llama.cpp's own quantizer picks.

Steps per model (validation/model_configs.py):
1. metadata (real config values) + tensor list (validation/layouts.py) with the types of a BF16
   conversion, written as a sparse GGUF (planner/testing/ggufgen.py: the data region is a hole);
2. `llama-quantize --dry-run SRC TYPE` prints the type it would give each tensor without reading
   or writing any tensor data; we parse that list;
3. the result is recorded as validation/models/<name>.json (a compact spec: metadata, vocab spec,
   tensors with final types). `write_model(spec, path)` turns a spec back into the exact GGUF
   header (sparse file) without llama.cpp; the unit tests do that.

Usage: python -m validation.modelgen --llama-bin DIR [--only NAME ...]   (regenerate specs)
       python -m validation.modelgen --write DIR [--only NAME ...]       (specs -> sparse GGUFs)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from gguf import GGMLQuantizationType, GGUFValueType

HERE = Path(__file__).resolve().parent

from planner.testing.ggufgen import typed, write_gguf
from validation import layouts
from validation.build_llamacpp import LLAMA_BUILD
from validation.vocab import vocab_metadata

MODELS_DIR = HERE / "models"
FILE_TYPES = {"Q4_K_M": 15, "Q4_0": 2, "Q8_0": 7, "MXFP4_MOE": 38, "BF16": 32}

# "[   1/ 292]    token_embd.weight - [ 4096, 128256, 1, 1], type =   bf16, size = ... (q4_K)"
_DRY_LINE = re.compile(r"^\[\s*\d+/\s*\d+\]\s+(\S+)\s+-\s+\[([^\]]*)\],\s+type\s+=\s+(\S+),\s+(.*)$")
_TARGET = re.compile(r"->\s+[\d.]+\s+MiB\s+\((\S+)\)")


# --- spec <-> typed metadata -------------------------------------------------------------------

def _enc(value: tuple[Any, GGUFValueType, GGUFValueType | None]) -> list:
    v, t, sub = value
    return [t.name, v] if sub is None else [t.name, sub.name, v]


def _dec(item: list) -> tuple[Any, GGUFValueType, GGUFValueType | None]:
    if len(item) == 2:
        return (item[1], GGUFValueType[item[0]], None)
    return (item[2], GGUFValueType[item[0]], GGUFValueType[item[1]])


def spec_metadata(spec: dict) -> dict[str, tuple[Any, GGUFValueType, GGUFValueType | None]]:
    """All metadata of the file, tokenizer arrays included (generated from the vocab spec)."""
    meta = {k: _dec(v) for k, v in spec["metadata"].items()}
    meta.update(vocab_metadata(spec["vocab"]))
    return meta


def write_model(spec: dict, path: str | Path) -> Path:
    """Write the spec's GGUF: exact header, sparse (all-zero) data region of the exact size."""
    meta = {k: typed(v, t, sub) for k, (v, t, sub) in spec_metadata(spec).items()}
    tensors = [(name, tuple(shape), GGMLQuantizationType[qtype]) for name, shape, qtype in spec["tensors"]]
    return write_gguf(path, meta, tensors)


def load_spec(name: str, models_dir: Path = MODELS_DIR) -> dict:
    return json.loads((models_dir / f"{name}.json").read_text())


def all_specs(models_dir: Path = MODELS_DIR) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(models_dir.glob("*.json"))]


# --- generation --------------------------------------------------------------------------------

def source_spec(cfg: dict) -> dict:
    """The BF16 conversion of a model: real metadata, tensors typed as the converter types them."""
    meta = dict(cfg["metadata"])
    meta["general.file_type"] = (FILE_TYPES["BF16"], GGUFValueType.UINT32, None)
    n_vocab = int(cfg["vocab"]["n_tokens"])
    tensors = [[name, list(shape), layouts.source_type(cfg["arch"], name, shape)]
               for name, shape in layouts.tensor_list(meta, n_vocab, cfg.get("layout"))]
    return {
        "name": cfg["name"], "hf_repo": cfg["hf_repo"], "arch": cfg["arch"], "quant": "BF16",
        "notes": cfg.get("notes", ""),
        "metadata": {k: _enc(v) for k, v in meta.items()},
        "vocab": cfg["vocab"],
        "tensors": tensors,
    }


def parse_dry_run(output: str) -> dict[str, str]:
    """tensor name -> target ggml type name (upper case, as GGMLQuantizationType names it)."""
    types: dict[str, str] = {}
    for line in output.splitlines():
        m = _DRY_LINE.match(line.strip())
        if not m:
            continue
        name, cur, rest = m.group(1), m.group(3), m.group(4)
        t = _TARGET.search(rest)
        types[name] = (t.group(1) if t else cur).upper()
    return types


def quantize_types(src: Path, quant: str, llama_bin: Path) -> tuple[dict[str, str], str]:
    cmd = [str(llama_bin / "llama-quantize"), "--dry-run", str(src), quant]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"llama-quantize failed ({proc.returncode}):\n{out[-3000:]}")
    return parse_dry_run(out), " ".join(["llama-quantize", "--dry-run", src.name, quant])


def generate(cfg: dict, llama_bin: Path, workdir: Path) -> dict:
    src = source_spec(cfg)
    workdir.mkdir(parents=True, exist_ok=True)
    src_path = write_model(src, workdir / f"{cfg['name']}-BF16.gguf")
    types, cmd = quantize_types(src_path, cfg["quant"], llama_bin)
    missing = [t[0] for t in src["tensors"] if t[0] not in types]
    if missing:
        raise RuntimeError(f"{cfg['name']}: quantizer did not report {missing[:5]}")
    spec = dict(src)
    spec["quant"] = cfg["quant"]
    spec["metadata"] = dict(src["metadata"])
    spec["metadata"]["general.file_type"] = _enc((FILE_TYPES[cfg["quant"]], GGUFValueType.UINT32, None))
    spec["metadata"]["general.quantization_version"] = _enc((2, GGUFValueType.UINT32, None))
    spec["tensors"] = [[name, shape, types[name]] for name, shape, _ in src["tensors"]]
    spec["generated_by"] = {
        "llama_cpp_build": LLAMA_BUILD,
        "quant_mix": f"{cmd} (types as llama.cpp's quantizer chooses them; no data read or written)",
        "source_types": "convert_hf_to_gguf.py --outtype bf16 rules (validation/layouts.py: source_type)",
    }
    src_path.unlink(missing_ok=True)
    return spec


def save_spec(spec: dict, models_dir: Path = MODELS_DIR) -> Path:
    """Write the spec as JSON with one metadata key and one tensor per line (diffable, compact)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{spec['name']}.json"
    lines = ["{"]
    for key, value in spec.items():
        if key in ("metadata", "tensors"):
            continue
        lines.append(f" {json.dumps(key)}: {json.dumps(value)},")
    lines.append(' "metadata": {')
    lines.append(",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in spec["metadata"].items()))
    lines.append(" },")
    lines.append(' "tensors": [')
    lines.append(",\n".join("  " + json.dumps(t) for t in spec["tensors"]))
    lines.append(" ]")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    from validation.model_configs import MODELS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bin", type=Path, help="directory with llama-quantize (regenerates the specs)")
    ap.add_argument("--write", type=Path, help="write the GGUFs of the recorded specs into this directory")
    ap.add_argument("--only", nargs="*", help="model names")
    ap.add_argument("--work", type=Path, default=HERE / "cache" / "work")
    args = ap.parse_args(argv)
    names = set(args.only or [m["name"] for m in MODELS])
    if args.llama_bin:
        for cfg in MODELS:
            if cfg["name"] in names:
                spec = generate(cfg, args.llama_bin, args.work)
                print(f"{cfg['name']}: {len(spec['tensors'])} tensors -> {save_spec(spec)}")
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        for spec in all_specs():
            if spec["name"] in names:
                print(write_model(spec, args.write / f"{spec['name']}-{spec['quant']}.gguf"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
