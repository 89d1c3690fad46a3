"""Multi-quant model specs for the field rows (validation/field/models/<spec>.json).

For every model the field rows use (validation/field/configs.py: FIELD) this writes the BF16
conversion as a sparse GGUF (real metadata, tensor layout of validation/layouts.py, the converter's
types), asks llama.cpp b11434's quantizer which type each tensor gets for every quant
(`llama-quantize --dry-run`: no tensor data is read or written), and stores one spec per model in
the format of planner/testing/realmodels.py (its layout codec: before / blocks with one template /
after, a template entry present only in some layers carrying its layer set): metadata, vocab spec,
compact tensor layout, and per quant the type mix (per-role default + exceptions), plus the Hub
repo / file pattern the rows cite. Every spec is written as a GGUF by this module's
`write_variant()` (the field vocabularies of validation/vocab.py).

    python -m validation.field.make_specs --llama-bin /work/llamacpp/build/bin [--only SPEC ...] [--check]
    python -m validation.field.make_specs --write DIR --only SPEC --quant Q4_K_M     (no llama.cpp needed)

`--check` also loads every BF16 header in llama-fit-params (-c 512) and records that it loaded.
The harness gets a sparse GGUF with `sparse_gguf(spec_id, quant)` (a path; cached per spec).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
from gguf import GGMLQuantizationType, GGUFValueType, LlamaFileType

from planner.testing import realmodels
from planner.testing.ggufgen import tensor_nbytes, typed, write_gguf
from planner.testing.realmodels import decode_layout, encode_layout, encode_types, format_spec, tensors
from validation import modelgen
from validation.build_llamacpp import LLAMA_BUILD
from validation.vocab import vocab_metadata

MODELS_DIR = HERE / "models"
CACHE = REPO / "validation" / "cache" / "field-specs"  # git-ignored (/validation/cache/)


def file_bytes(spec: dict[str, Any], quant: str) -> int:
    """Tensor data bytes of the quant (llama-bench's "size"; the file adds the header and padding)."""
    return sum(tensor_nbytes(s, GGMLQuantizationType[t]) for _, s, t in tensors(spec, quant))


def n_params(spec: dict[str, Any]) -> int:
    total = 0
    for _, shape in decode_layout(spec["layout"]):
        k = 1
        for d in shape:
            k *= d
        total += k
    return total


# --------------------------------------------------------------------------- writing GGUFs


def _gemma4_vocab(spec: dict[str, Any]) -> dict[str, tuple[Any, GGUFValueType, GGUFValueType | None]]:
    """Gemma 4's tokenizer ("gemma4": SentencePiece-style BPE with merges): the SentencePiece
    arrays of validation/vocab.py, a "\\n" token (llama.cpp looks the newline up at load) and a few
    merges."""
    meta = vocab_metadata({**spec, "model": "llama"})
    tokens = list(meta["tokenizer.ggml.tokens"][0])
    tokens[4 + 256] = "\n"  # first normal token after <pad> </s> <s> <unk> and the 256 byte tokens
    meta["tokenizer.ggml.tokens"] = (tokens, GGUFValueType.ARRAY, GGUFValueType.STRING)
    meta["tokenizer.ggml.model"] = ("gemma4", GGUFValueType.STRING, None)
    meta["tokenizer.ggml.merges"] = (["▁ t", "t 2", "▁t 2", "▁ ▁"], GGUFValueType.ARRAY, GGUFValueType.STRING)
    return meta


def model_metadata(spec: dict[str, Any], quant: str) -> dict[str, typed]:
    meta = {k: modelgen._dec(v) for k, v in spec["metadata"].items()}
    meta["general.file_type"] = (spec["mixes"][quant]["file_type"], GGUFValueType.UINT32, None)
    if quant != "BF16":
        meta["general.quantization_version"] = (2, GGUFValueType.UINT32, None)
    vocab = spec["vocab"]
    meta.update(_gemma4_vocab(vocab) if vocab["model"] == "gemma4" else vocab_metadata(vocab))
    return {k: typed(v, t, sub) for k, (v, t, sub) in meta.items()}


def write_variant(spec: dict[str, Any], quant: str, path: str | Path) -> Path:
    """One quant of the spec as a GGUF: exact header, sparse (all-zero) data region of full size."""
    ts = [(n, s, GGMLQuantizationType[t]) for n, s, t in tensors(spec, quant)]
    return write_gguf(path, model_metadata(spec, quant), ts)


def load_spec(spec_id: str, models_dir: Path = MODELS_DIR) -> dict[str, Any]:
    return json.loads((models_dir / f"{spec_id}.json").read_text())


def sparse_gguf(spec_id: str, quant: str, out_dir: str | Path | None = None) -> Path:
    """Path of a sparse GGUF of (spec, quant) with the exact header; written on first use, rewritten
    when the spec file is newer. `out_dir` defaults to validation/cache/field-specs/<spec>/."""
    spec_path = MODELS_DIR / f"{spec_id}.json"
    spec = json.loads(spec_path.read_text())
    if quant not in spec["mixes"]:
        raise KeyError(f"{spec_id}: no quant {quant} recorded (have {', '.join(spec['mixes'])})")
    out = Path(out_dir) if out_dir else CACHE / spec_id
    out.mkdir(parents=True, exist_ok=True)
    path = out / spec["file_pattern"].format(quant=quant)
    if not path.exists() or path.stat().st_mtime < spec_path.stat().st_mtime:
        write_variant(spec, quant, path)
    return path


def write_mmproj(spec: dict[str, Any], path: str | Path) -> Path:
    """The vision projector (Qwen3-VL) as planner/testing/realmodels.py writes it."""
    return realmodels.write_mmproj(spec, Path(path))


def sparse_mmproj(spec_id: str, out_dir: str | Path | None = None) -> Path | None:
    """Path of the spec's vision projector GGUF (None when the spec has none); cached like sparse_gguf."""
    spec_path = MODELS_DIR / f"{spec_id}.json"
    spec = json.loads(spec_path.read_text())
    if not spec.get("mmproj"):
        return None
    out = Path(out_dir) if out_dir else CACHE / spec_id
    out.mkdir(parents=True, exist_ok=True)
    path = out / spec["mmproj"]["file"]
    if not path.exists() or path.stat().st_mtime < spec_path.stat().st_mtime:
        write_mmproj(spec, path)
    return path


# --------------------------------------------------------------------------- generation


def _file_type(quant: str) -> int:
    return int(LlamaFileType[f"MOSTLY_{quant}"])


def build(spec_id: str, llama_bin: Path, work: Path, check: bool = False) -> dict[str, Any]:
    from validation.field.configs import FIELD

    entry = FIELD[spec_id]
    cfg = dict(entry["cfg"], name=spec_id)
    src = modelgen.source_spec(cfg)
    names = [n for n, _, _ in src["tensors"]]
    layout = encode_layout([(n, s) for n, s, _ in src["tensors"]])
    meta = {k: v for k, v in src["metadata"].items() if k not in ("general.file_type", "general.quantization_version")}
    bf16 = dict(encode_types(names, {n: t for n, _, t in src["tensors"]}), file_type=_file_type("BF16"))
    src_path = write_variant({"metadata": meta, "vocab": src["vocab"], "layout": layout, "mixes": {"BF16": bf16}},
                             "BF16", work / f"{spec_id}-BF16.gguf")

    def one(quant: str) -> tuple[str, dict[str, str], str]:
        if quant == "BF16":
            return quant, {n: t for n, _, t in src["tensors"]}, \
                "convert_hf_to_gguf.py --outtype bf16 (source types, validation/layouts.py)"
        types, cmd = modelgen.quantize_types(src_path, quant, llama_bin)
        return quant, types, cmd

    mixes: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for quant, types, cmd in pool.map(one, entry["quants"]):
            missing = [n for n in names if n not in types]
            if missing:
                raise RuntimeError(f"{spec_id} {quant}: quantizer did not report {missing[:3]}")
            mix = encode_types(names, types)
            mix["file_type"] = _file_type(quant)
            mix["recorded_with"] = cmd
            mixes[quant] = mix
    spec: dict[str, Any] = {
        "name": spec_id, "repo": entry["repo"], "file_pattern": entry["file_pattern"], "hf_model": cfg["hf_repo"],
        "arch": cfg["arch"], "notes": cfg.get("notes", ""),
        "generated_by": {"script": "validation/field/make_specs.py", "llama_cpp_build": LLAMA_BUILD,
                         "quant_mix": "llama-quantize --dry-run on the BF16 conversion (types only, no data)",
                         "layout": "validation/layouts.py (b11434 loader); template entries with a layer set are "
                                   "decoded by validation/field/make_specs.py"},
        "metadata": meta, "vocab": src["vocab"], "layout": layout, "mixes": mixes,
    }
    if cfg.get("layout"):
        spec["layout_options"] = cfg["layout"]
    if entry.get("mmproj") == "qwen3vl":
        from bench.central_specs import QWEN3VL_32B_VISION, qwen3vl_mmproj

        spec["mmproj"] = qwen3vl_mmproj(QWEN3VL_32B_VISION)
    if check:
        spec["generated_by"]["load_check"] = load_check(spec_id, src_path, llama_bin)
    src_path.unlink(missing_ok=True)
    return spec


def load_check(spec_id: str, gguf: Path, llama_bin: Path) -> str:
    """Load the BF16 header in llama-fit-params (-c 512): the loader checks every tensor's name and
    shape against the architecture. Returns the record line; raises if it does not load."""
    cmd = [str(llama_bin / "llama-fit-params"), "-m", str(gguf), "-c", "512", "--fit-print", "on"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    m = re.search(r"^Host\s+(\d+)\s+(\d+)\s+(\d+)\s*$", proc.stdout, re.M)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"{spec_id}: llama-fit-params did not load the BF16 header:\n{(proc.stderr or proc.stdout)[-3000:]}")
    return (f"llama-fit-params -c 512 --fit-print on loaded the BF16 header: Host model {m.group(1)} MiB, "
            f"context {m.group(2)} MiB, compute {m.group(3)} MiB")


def save(spec: dict[str, Any], models_dir: Path = MODELS_DIR) -> Path:
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / f"{spec['name']}.json"
    path.write_text(format_spec(spec) + "\n")
    return path


def summary(spec: dict[str, Any]) -> str:
    sizes = ", ".join(f"{q} {file_bytes(spec, q) / 1e9:.2f} GB" for q in spec["mixes"])
    return f"{spec['name']}: {n_params(spec) / 1e9:.2f} B params; {sizes}"


def main(argv: list[str] | None = None) -> int:
    from validation.field.configs import FIELD

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bin", type=Path, help="directory with llama-quantize (regenerates the specs)")
    ap.add_argument("--check", action="store_true", help="with --llama-bin: load each BF16 header in llama-fit-params")
    ap.add_argument("--write", type=Path, help="write sparse GGUFs of the recorded specs into this directory")
    ap.add_argument("--quant", nargs="*", help="with --write: these quants (default: all recorded)")
    ap.add_argument("--only", nargs="*", help="spec ids")
    ap.add_argument("--summary", action="store_true", help="print parameters and tensor bytes per quant")
    args = ap.parse_args(argv)
    ids = args.only or list(FIELD)
    unknown = [i for i in ids if i not in FIELD]
    if unknown:
        ap.error(f"unknown spec ids: {unknown}; known: {', '.join(FIELD)}")
    if args.llama_bin:
        with tempfile.TemporaryDirectory(prefix="memfit-field-") as tmp:
            for spec_id in ids:
                spec = build(spec_id, args.llama_bin, Path(tmp), check=args.check)
                path = save(spec)
                print(f"{spec_id}: {path.relative_to(REPO)} ({path.stat().st_size // 1024} KiB)"
                      + (f"; {spec['generated_by']['load_check']}" if args.check else ""))
    if args.write:
        args.write.mkdir(parents=True, exist_ok=True)
        for spec_id in ids:
            spec = load_spec(spec_id)
            for quant in args.quant or list(spec["mixes"]):
                print(write_variant(spec, quant, args.write / spec["file_pattern"].format(quant=quant)))
    if args.summary:
        for spec_id in ids:
            print(summary(load_spec(spec_id)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
