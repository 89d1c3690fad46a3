"""Record real quant mixes for the end-to-end tests (planner/testing/data/<name>.json).

For a model of validation/model_configs.py (its real GGUF metadata and tensor layout) this writes
the BF16 conversion as a sparse GGUF, asks llama.cpp's own quantizer which type it would give each
tensor for every quant (`llama-quantize --dry-run`: no tensor data is read or written), and stores
the result compactly with planner/testing/realmodels.py's codec. For Qwen3-VL it adds the vision projector
(mmproj-F16) with the real vision-tower dimensions and the converter's tensor names and types.

    python -m bench.central_specs --llama-bin /work/llamacpp/build/bin            # all specs
    python -m bench.central_specs --llama-bin DIR --only qwen3-vl-32b

Tests never run this: they read the recorded JSON.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

from gguf import LlamaFileType

from planner.testing import realmodels
from validation import modelgen
from validation.model_configs import MODELS

# name -> how the Hub repo the alias resolves to first lays it out, and which quants to record
TARGETS: dict[str, dict[str, Any]] = {
    "qwen3-vl-32b": {
        "repo": "Qwen/Qwen3-VL-32B-Instruct-GGUF",
        "file_pattern": "Qwen3VL-32B-Instruct-{quant}.gguf",
        "quants": ["Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "BF16"],
        "mmproj": "qwen3vl",
    },
    "qwen3-30b-a3b": {
        "repo": "unsloth/Qwen3-30B-A3B-Instruct-2507-GGUF",
        "file_pattern": "Qwen3-30B-A3B-Instruct-2507-{quant}.gguf",
        "quants": ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "BF16"],
    },
}


# --------------------------------------------------------------------------- Qwen3-VL projector

# Qwen/Qwen3-VL-32B-Instruct config.json, vision_config (the SigLIP2-so400m-class tower that the
# 8B/30B/32B/235B releases share) and the text hidden size it projects to.
QWEN3VL_32B_VISION = {
    "depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16, "patch_size": 16,
    "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 2304, "in_channels": 3,
    "deepstack_visual_indexes": [8, 16, 24], "out_hidden_size": 5120, "rms_norm_eps": 1e-6,
}


def qwen3vl_mmproj(v: dict[str, Any]) -> dict[str, Any]:
    """mmproj-F16 as conversion/qwen3vl.py + conversion/base.py write it: names (gguf-py
    constants.py / tools/mtmd/clip-impl.h), shapes in ggml order, types (2-D+ weights F16; 1-D
    tensors, biases and the position embedding F32)."""
    d, ff, merge = v["hidden_size"], v["intermediate_size"], v["spatial_merge_size"]
    merged = d * merge * merge  # the merger sees 2x2 patches concatenated
    out = v["out_hidden_size"]
    ps = v["patch_size"]
    side = int(v["num_position_embeddings"] ** 0.5)
    t: list[tuple[str, list[int], str]] = [
        ("v.patch_embd.weight", [ps, ps, v["in_channels"], d], "F16"),  # Conv3D split in two Conv2D
        ("v.patch_embd.weight.1", [ps, ps, v["in_channels"], d], "F16"),
        ("v.patch_embd.bias", [d], "F32"),
        ("v.position_embd.weight", [d, v["num_position_embeddings"]], "F32"),
    ]
    for i in range(v["depth"]):
        p = f"v.blk.{i}."
        t += [
            (p + "ln1.weight", [d], "F32"), (p + "ln1.bias", [d], "F32"),
            (p + "attn_qkv.weight", [d, 3 * d], "F16"), (p + "attn_qkv.bias", [3 * d], "F32"),
            (p + "attn_out.weight", [d, d], "F16"), (p + "attn_out.bias", [d], "F32"),
            (p + "ln2.weight", [d], "F32"), (p + "ln2.bias", [d], "F32"),
            (p + "ffn_up.weight", [d, ff], "F16"), (p + "ffn_up.bias", [ff], "F32"),
            (p + "ffn_down.weight", [ff, d], "F16"), (p + "ffn_down.bias", [d], "F32"),
        ]
    t += [
        ("v.post_ln.weight", [d], "F32"), ("v.post_ln.bias", [d], "F32"),  # merger.norm (pre-shuffle)
        ("mm.0.weight", [merged, merged], "F16"), ("mm.0.bias", [merged], "F32"),
        ("mm.2.weight", [merged, out], "F16"), ("mm.2.bias", [out], "F32"),
    ]
    for i in v["deepstack_visual_indexes"]:  # deepstack mergers, post-shuffle norm
        p = f"v.deepstack.{i}."
        t += [
            (p + "norm.weight", [merged], "F32"), (p + "norm.bias", [merged], "F32"),
            (p + "fc1.weight", [merged, merged], "F16"), (p + "fc1.bias", [merged], "F32"),
            (p + "fc2.weight", [merged, out], "F16"), (p + "fc2.bias", [out], "F32"),
        ]
    deepstack = [i in v["deepstack_visual_indexes"] for i in range(v["depth"])]
    meta = {
        "general.architecture": ["STRING", "clip"],
        "general.type": ["STRING", "mmproj"],
        "general.name": ["STRING", "Qwen3-VL-32B-Instruct"],
        "general.file_type": ["UINT32", int(LlamaFileType.MOSTLY_F16)],
        "clip.has_vision_encoder": ["BOOL", True],
        "clip.projector_type": ["STRING", "qwen3vl_merger"],
        "clip.use_gelu": ["BOOL", True],
        "clip.vision.projection_dim": ["UINT32", out],
        "clip.vision.image_size": ["UINT32", side * ps],
        "clip.vision.patch_size": ["UINT32", ps],
        "clip.vision.embedding_length": ["UINT32", d],
        "clip.vision.feed_forward_length": ["UINT32", ff],
        "clip.vision.block_count": ["UINT32", v["depth"]],
        "clip.vision.attention.head_count": ["UINT32", v["num_heads"]],
        "clip.vision.attention.layer_norm_epsilon": ["FLOAT32", v["rms_norm_eps"]],
        "clip.vision.image_mean": ["ARRAY", "FLOAT32", [0.5, 0.5, 0.5]],
        "clip.vision.image_std": ["ARRAY", "FLOAT32", [0.5, 0.5, 0.5]],
        "clip.vision.spatial_merge_size": ["UINT32", merge],
        "clip.vision.is_deepstack_layers": ["ARRAY", "BOOL", deepstack],
    }
    # the blocks' prefix is "v.blk."; the deepstack mergers sit at layer indexes 8/16/24 and are
    # stored by name (they are not one per block)
    names_shapes = [(n, s) for n, s, _ in t]
    layout = realmodels.encode_layout(names_shapes)
    types = realmodels.encode_types([n for n, _ in names_shapes], {n: ty for n, _, ty in t})
    return {"file": "mmproj-Qwen3VL-32B-Instruct-F16.gguf", "config": v, "metadata": meta,
            "layout": layout, "types": types}


# --------------------------------------------------------------------------- text model mixes


def build(name: str, target: dict[str, Any], llama_bin: Path, work: Path) -> dict[str, Any]:
    cfg = next(m for m in MODELS if m["name"] == name)
    src = modelgen.source_spec(cfg)
    src_path = modelgen.write_model(src, work / f"{name}-BF16.gguf")
    names = [n for n, _, _ in src["tensors"]]
    layout = realmodels.encode_layout([(n, s) for n, s, _ in src["tensors"]])
    mixes: dict[str, Any] = {}
    for quant in target["quants"]:
        if quant == "BF16":
            types = {n: t for n, _, t in src["tensors"]}
            cmd = "convert_hf_to_gguf.py --outtype bf16 (source types, validation/layouts.py)"
        else:
            types, cmd = modelgen.quantize_types(src_path, quant, llama_bin)
        missing = [n for n in names if n not in types]
        if missing:
            raise RuntimeError(f"{name} {quant}: quantizer did not report {missing[:3]}")
        mix = realmodels.encode_types(names, types)
        mix["file_type"] = int(LlamaFileType[f"MOSTLY_{quant}"])
        mix["recorded_with"] = cmd
        mixes[quant] = mix
        print(f"{name} {quant}: {len(mix['except'])} exceptions to the per-role types")
    src_path.unlink(missing_ok=True)
    meta = {k: v for k, v in src["metadata"].items() if k not in ("general.file_type", "general.quantization_version")}
    spec = {
        "name": name, "repo": target["repo"], "file_pattern": target["file_pattern"],
        "hf_model": cfg["hf_repo"], "notes": cfg.get("notes", ""),
        "generated_by": {"script": "bench/central_specs.py", "llama_cpp_build": modelgen.LLAMA_BUILD,
                         "quant_mix": "llama-quantize --dry-run on the BF16 conversion (types only, no data)"},
        "metadata": meta, "vocab": src["vocab"], "layout": layout, "mixes": mixes,
    }
    if target.get("mmproj") == "qwen3vl":
        spec["mmproj"] = qwen3vl_mmproj(QWEN3VL_32B_VISION)
    return spec


def save(spec: dict[str, Any]) -> Path:
    path = realmodels.DATA / f"{spec['name']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(realmodels.format_spec(spec) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bin", type=Path, required=True, help="directory with llama-quantize")
    ap.add_argument("--only", nargs="*", help=f"spec names ({', '.join(TARGETS)})")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="memfit-specs-") as tmp:
        for name, target in TARGETS.items():
            if args.only and name not in args.only:
                continue
            spec = build(name, target, args.llama_bin, Path(tmp))
            path = save(spec)
            print(f"{name}: {path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
