#!/usr/bin/env python3
"""Long fuzz run of memfit beyond the header reader: five attack classes (issue 12).

    python fuzz/fuzz_memfit.py --class semantic --seconds 180
    python fuzz/fuzz_memfit.py --class all --seconds 120 --json out.json

Classes (each execution is one hostile input run through memfit's real entry points):
- semantic: structurally valid GGUFs (written by gguf's own writer) whose *meaning* is wrong:
  integer keys as floats (inf, nan, 1e308), strings, booleans, negative or huge integers, per-layer
  arrays of the wrong length or of arrays, missing keys, another or an unknown architecture,
  hostile names, dropped, renamed or resized tensors. Run: `estimate --json`, `inspect --json`,
  sometimes `plan --json` (in-process, through the CLI's exit-code guard).
- shards: split models with shard-set damage: a tensor in two shards, an empty shard, moved
  tensors, wrong or missing or mistyped split.no / split.count / split.tensors.count, shards in
  the wrong order, metadata changed in later shards. Run: `estimate --json` on the first shard.
- server: the fake Hub (planner/testing/fakehub.py) answering with slow (trickling) bodies, latency,
  5xx/429, resets, truncated and short ranges, whole bodies, redirects to other schemes or in
  loops, listings with hostile names, sizes, commit ids and shapes, files replaced before or
  during a read (same or another size). Run: `resolve()` of the repo.
- cache: special and damaged cache entries where a header, listing or ref should be: FIFOs,
  symlinks (to /dev/zero, /dev/urandom, a user file, themselves, nowhere), directories, sockets,
  huge sparse files, random bytes, truncation, and checksummed entries holding random JSON or
  headers with fields of the wrong type. Run: `resolve()` online and offline.
- device: shipped device profiles with a field set to inf, nan, a huge, negative or zero number,
  a string, a boolean, a list, or removed. Run: `plan --device-file F --json`, `estimate
  --device-file F --json`.

Outcomes per execution: ok (an answer or one clear MemfitError line), crash (any other exception,
or the CLI's `internal error`), hang (past --timeout seconds), absurd (exit 0 with an answer that
cannot be right: a non-finite number or invalid JSON, a memory figure beyond 1 PiB at a 4k context,
a KV cache of 0 bytes for a model with attention heads, a negative count, a Hub header that is not
the file's, a user file changed, a cache read that grew memory by more than 256 MiB). Crashing and
absurd inputs are written to fuzz/crashes/<class>-*.json. Exit status 1 if anything was found.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import io
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent

PIB = 1 << 50
CLASSES = ("semantic", "shards", "server", "cache", "device")


class Hang(BaseException):
    """An execution ran past --timeout (a BaseException: no `except Exception` may swallow it)."""


class Absurd(Exception):
    """An answer that cannot be right (the oracle's verdict)."""


# ------------------------------------------------------------------------------------ shared


def cli(*argv: str) -> tuple[int, str, str]:
    """memfit ARGV in-process through the real exit-code guard: (exit code, stdout, stderr)."""
    from planner.cli import run

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(list(argv))
    return code, out.getvalue(), err.getvalue()


def strict_json(text: str) -> Any:
    def no_constant(name: str) -> Any:
        raise Absurd(f"{name} in JSON output")

    try:
        return json.loads(text, parse_constant=no_constant)
    except ValueError as e:
        raise Absurd(f"invalid JSON output: {e}") from None


def check_cli(code: int, out: str, err: str, as_json: bool) -> Any:
    """Crash if the guard reported an internal error; Absurd for invalid JSON; the parsed
    answer (or None for an error) otherwise."""
    if "internal error" in err or '"kind": "internal"' in out or "Traceback" in err + out:
        raise RuntimeError(f"internal error (exit {code}): {(err or out).strip()[:500]}")
    if code not in (0, 1, 2, 3):
        raise RuntimeError(f"exit code {code}")
    if as_json:
        doc = strict_json(out)
        if code in (1, 2):
            if not isinstance(doc, dict) or "error" not in doc:
                raise Absurd("an error exit without a JSON error object")
            return None
        return doc
    return None


def walk_numbers(doc: Any, path: str = "") -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += walk_numbers(v, f"{path}.{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:2000]):
            out += walk_numbers(v, f"{path}[{i}]")
    elif isinstance(doc, (int, float)) and not isinstance(doc, bool):
        out.append((path, doc))
    return out


def check_numbers(doc: Any, what: str) -> None:
    """Every number finite; sizes not negative (headroom may be) and under 1 PiB."""
    for path, v in walk_numbers(doc):
        if isinstance(v, float) and not math.isfinite(v):
            raise Absurd(f"{what}: {path} = {v}")
        leaf = path.rsplit(".", 1)[-1]
        if leaf.endswith("_bytes") and "headroom" not in path and not any(
                w in leaf for w in ("free", "delta", "margin", "over", "short", "spare", "left", "above", "below",
                                 "capacity", "room")):
            if v < 0:
                raise Absurd(f"{what}: {path} = {v} (negative size)")
            if v > PIB and not leaf.startswith(("weights", "size", "file", "tensor")):
                raise Absurd(f"{what}: {path} = {v} (more than 1 PiB)")


def note_error(state: dict, message: str) -> None:
    """Count the kinds of clean refusals (an error message without its numbers and names)."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message.split(": implausible", 1)[-1])
    text = re.sub(r"\d[\d,.]*", "N", text)
    state.setdefault("errors", collections.Counter())[text[:80]] += 1


def check_cli_noting(state: dict, code: int, out: str, err: str) -> Any:
    doc = check_cli(code, out, err, True)
    if doc is None and code in (1, 2):
        with contextlib.suppress(Exception):
            note_error(state, json.loads(out)["error"]["message"])
    return doc


# ------------------------------------------------------------------------------------ semantic


def _seed_specs() -> list[tuple[str, dict, list]]:
    """(label, metadata, tensors) of valid models: ggufgen's families and real architectures."""
    from planner.testing import estimator_models as em
    from planner.testing import ggufgen

    specs: list[tuple[str, dict, list]] = []
    for arch in ggufgen.ARCHS:
        shape = ggufgen.ModelShape(n_layer=4) if arch == "jamba" else ggufgen.ModelShape()
        meta, tensors = ggufgen.model_spec(arch, shape)
        specs.append((f"{arch}-tiny", meta, tensors))
    captured: list[tuple[str, dict, list]] = []
    real_write = em.write

    def capture(path, arch, keys, tensors, n_vocab):  # noqa: ANN001
        captured.append((arch, em._meta(arch, keys, n_vocab), list(tensors)))
        raise StopIteration

    em.write = capture
    try:
        for build in (em.llama31_8b, em.qwen3_32b, em.gemma3_270m, em.deepseek_v2_lite, em.qwen3_30b_a3b,
                      em.lfm2_1_2b, em.qwen3_next, em.mamba2_like, em.gemma3n_like, em.unknown_arch):
            try:
                build(Path("/nonexistent"), n_vocab=256)
            except StopIteration:
                pass
            specs.append((build.__name__, *captured[-1][1:]))
    finally:
        em.write = real_write
    return specs


_INTS = (0, 1, 2, 3, -1, -8, 7, 8, 64, 128, 512, 513, 1024, 1025, 4096, 4097, 65536, 1 << 20, 1 << 27,
         (1 << 27) + 1, (1 << 31) - 1, 1 << 31, 1 << 32, 1 << 40, 1 << 62, 1 << 63, (1 << 64) - 1)
_FLOATS = (math.inf, -math.inf, math.nan, 1e308, -1e308, 0.5, 4096.0, -0.0, 1e-30)
_STRS = ("4096", "", "x" * 300, "\u202einf", "\x1b[31mred", "-1", "nan", "32k")
_NAMES = ("evil\u202egnp.exe", "\x1b]0;title\x07\x1b[2J", "line\nbreak\rcr", "x" * 5000, "\u2066\u2067\u200f",
          "tag\U000e0041\U000e0042", "zero\u200bwidth")


def _typed_int(v: int):
    from planner.testing.ggufgen import V, typed

    if 0 <= v < (1 << 32):
        return typed(v, V.UINT32)
    if -(1 << 31) <= v < 0:
        return typed(v, V.INT32)
    if 0 <= v < (1 << 64):
        return typed(v, V.UINT64)
    return typed(max(-(1 << 63), min(v, (1 << 63) - 1)), V.INT64)


def _hostile_value(rng: random.Random, n_layer: int):
    from planner.testing.ggufgen import V, typed

    kind = rng.choice(("int", "int", "int", "float", "str", "bool", "arr_int", "arr_int", "arr_float",
                       "arr_nested", "arr_str", "arr_bool"))
    if kind == "int":
        return _typed_int(rng.choice(_INTS))
    if kind == "float":
        return typed(rng.choice(_FLOATS), rng.choice((V.FLOAT32, V.FLOAT64)))
    if kind == "str":
        return typed(rng.choice(_STRS), V.STRING)
    if kind == "bool":
        return typed(rng.random() < 0.5, V.BOOL)
    n = rng.choice((n_layer, n_layer, n_layer - 1, n_layer + 1, 0, 1, 600))
    n = max(0, n)
    if kind == "arr_int":
        vals = [rng.choice((rng.choice(_INTS[:12]), 4, 8)) for _ in range(n)]
        lo, hi = min(vals, default=0), max(vals, default=0)
        sub = V.INT32 if lo < 0 else (V.UINT32 if hi < (1 << 32) else V.UINT64)
        if sub == V.INT32 and hi >= (1 << 31):
            vals = [max(-(1 << 31), min(x, (1 << 31) - 1)) for x in vals]
        return typed(vals, V.ARRAY, sub)
    if kind == "arr_float":
        return typed([rng.choice(_FLOATS + (4.0, 8.0)) for _ in range(n)], V.ARRAY, V.FLOAT32)
    if kind == "arr_nested":
        return typed([[rng.choice((1, 2, 8))] for _ in range(max(1, n))], V.ARRAY, V.ARRAY)
    if kind == "arr_str":
        return typed([rng.choice(_STRS) for _ in range(n)], V.ARRAY, V.STRING)
    return typed([rng.random() < 0.5 for _ in range(n)], V.ARRAY, V.BOOL)


def _semantic_mutation(rng: random.Random, meta: dict, tensors: list) -> str:
    from planner.testing.ggufgen import V, typed

    from planner.plausibility import BOUNDS

    arch = meta.get("general.architecture")
    arch = arch.value if hasattr(arch, "value") else arch
    bc = getattr(meta.get(f"{arch}.block_count"), "value", meta.get(f"{arch}.block_count"))
    n_layer = bc if isinstance(bc, int) and not isinstance(bc, bool) and 0 < bc <= 512 else 2
    op = rng.choice(("value", "value", "value", "value", "bound_edge", "drop_key", "arch", "name",
                     "drop_tensor", "rename_tensor", "resize_tensor", "retype_tensor"))
    if op in ("value", "bound_edge", "drop_key"):
        keys = [k for k in meta if k.startswith(f"{arch}.") or k.startswith("clip.")]
        keys += [(b.key if b.key.startswith("clip.") else f"{arch}.{b.key}") for b in BOUNDS]
        key = rng.choice(keys)
        if op == "drop_key":
            meta.pop(key, None)
            return f"drop {key}"
        if op == "bound_edge":
            b = next((b for b in BOUNDS if key.endswith(b.key)), None)
            if b is not None:
                v = rng.choice((b.lo - 1, b.lo, b.hi, b.hi + 1))
                meta[key] = _typed_int(v)
                return f"{key} = {v}"
        meta[key] = _hostile_value(rng, n_layer)
        return f"{key} = {meta[key].value!r:.60}"
    if op == "arch":
        new = rng.choice(("llama", "qwen3moe", "jamba", "mamba2", "gemma3", "deepseek2", "clip", "bert",
                          "unknown-arch", "", "lfm2", "gemma3n", "gemma4", "qwen3next", "falcon-h1"))
        meta["general.architecture"] = new
        if rng.random() < 0.7:  # carry the keys over, as a renamed converter would
            for k in [k for k in meta if k.startswith(f"{arch}.")]:
                meta[f"{new}.{k[len(arch) + 1:]}"] = meta.pop(k)
        return f"arch {arch} -> {new!r}"
    if op == "name":
        meta["general.name"] = typed(rng.choice(_NAMES), V.STRING)
        return "hostile name"
    if not tensors:
        return "no tensors"
    i = rng.randrange(len(tensors))
    name, shape, qtype = tensors[i]
    if op == "drop_tensor":
        del tensors[i]
        return f"drop tensor {name}"
    if op == "rename_tensor":
        new = rng.choice(("blk.999.attn_q.weight", "blk.511.ffn_up.weight", "token_embd.weight",
                          "output.weight", "x", "blk.0.ffn_gate_exps.weight"))
        if all(t[0] != new for t in tensors):
            tensors[i] = (new, shape, qtype)
        return f"rename {name} -> {new}"
    if op == "resize_tensor":
        dims = list(shape)
        j = rng.randrange(len(dims))
        dims[j] = max(1, dims[j] * rng.choice((0, 2, 64, 1024)) // max(1, rng.choice((1, 1, 2))))
        from gguf import GGML_QUANT_SIZES

        block = GGML_QUANT_SIZES[qtype][0]
        if dims[0] % block:
            dims[0] = max(block, dims[0] // block * block)
        n = 1
        for d in dims:
            n *= d
        if n * 4 <= (1 << 36):  # keep the sparse file under 64 GiB
            tensors[i] = (name, tuple(dims), qtype)
        return f"resize {name} -> {tuple(dims)}"
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as Q

    block = GGML_QUANT_SIZES[qtype][0]
    same = [q for q in (Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_K, Q.Q6_K, Q.IQ4_XS, Q.MXFP4)
            if shape[0] % GGML_QUANT_SIZES[q][0] == 0]
    if same:
        tensors[i] = (name, shape, rng.choice(same))
    return f"retype {name}"


def _kv_expected(meta: dict) -> bool:
    """A known, non-recurrent architecture with query heads: its KV cache cannot be 0 bytes."""
    from planner.archs import known_architectures, rule_for

    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or arch not in known_architectures():
        return False
    rule = rule_for(arch)
    if rule.no_kv or rule.recurrent != "none":
        return False
    heads = meta.get(f"{arch}.attention.head_count")
    return isinstance(heads, int) and not isinstance(heads, bool) and heads > 0


def run_semantic(rng: random.Random, tmp: Path, state: dict) -> str:
    import copy

    from planner.testing import ggufgen

    from planner.reader import parse_file

    if "specs" not in state:
        state["specs"] = _seed_specs()
    label, meta0, tensors0 = rng.choice(state["specs"])
    meta, tensors = copy.deepcopy(meta0), list(tensors0)
    what = [label]
    for _ in range(rng.choice((1, 1, 2, 3))):
        what.append(_semantic_mutation(rng, meta, tensors))
    state["desc"] = " | ".join(what)
    path = tmp / "m.gguf"
    try:
        ggufgen.write_gguf(path, meta, tensors)
    except Exception:  # noqa: BLE001 - the writer refused the mutant (not memfit's business)
        return "writer refused: " + " | ".join(what)
    desc = " | ".join(what)
    code, out, err = cli("estimate", str(path), "-c", "4096", "--json")
    doc = check_cli_noting(state, code, out, err)
    if doc is not None:
        state["answers"] = state.get("answers", 0) + 1
        check_numbers(doc, "estimate")
        real = parse_file(path).metadata
        if doc.get("kv_bytes", 1) == 0 and _kv_expected(real):
            raise Absurd(f"KV cache 0 bytes for a {real.get('general.architecture')} model with attention heads")
        if doc.get("total_bytes", 0) > PIB:
            raise Absurd(f"total {doc['total_bytes']} bytes at 4k context")
    if rng.random() < 0.5:
        code, out, err = cli("inspect", str(path), "--json")
        doc = check_cli(code, out, err, True)
        if doc is not None:
            check_numbers(doc, "inspect")
            for key in ("layers", "context_length", "embedding_length", "expert_count", "expert_used_count"):
                v = doc.get(key)
                if isinstance(v, int) and v < 0:
                    raise Absurd(f"inspect {key} = {v}")
    if rng.random() < 0.15:
        code, out, err = cli("plan", str(path), "--device", rng.choice(("ai-max-395-64g", "rtx-4090",
                                                                        "apple-m4-max-128g")), "--json")
        doc = check_cli(code, out, err, True)
        if doc is not None:
            check_numbers(doc, "plan")
    return desc


# ------------------------------------------------------------------------------------ shards


def run_shards(rng: random.Random, tmp: Path, state: dict) -> str:
    from planner.testing import ggufgen
    from planner.testing.ggufgen import V, typed

    from planner.errors import MemfitError
    from planner.resolver import resolve

    arch = rng.choice(("llama", "qwen3moe", "gemma3"))
    meta, tensors = ggufgen.model_spec(arch, ggufgen.ModelShape(n_layer=rng.choice((2, 3, 4))))
    n = rng.choice((2, 2, 3, 4))
    idx = list(range(len(tensors)))
    cuts = sorted(rng.sample(range(1, len(idx)), n - 1))
    parts = [idx[a:b] for a, b in zip([0] + cuts, cuts + [len(idx)])]
    split_no = list(range(n))
    counts = [n] * n
    total: Any = len(tensors)
    extra: dict[int, dict] = collections.defaultdict(dict)
    what = [f"{arch} in {n}"]
    for _ in range(rng.choice((0, 1, 1, 2))):
        op = rng.choice(("dup", "empty", "move", "drop", "no", "count", "total", "type", "remove_key",
                         "swap_files", "meta_later", "first_empty"))
        i = rng.randrange(n)
        if op == "dup" and parts[i]:
            j = rng.randrange(n)
            parts[j] = parts[j] + [rng.choice(parts[i])]
        elif op == "empty":
            parts[i] = []
        elif op == "first_empty":
            parts[1] = parts[0] + parts[1]
            parts[0] = []
        elif op == "move" and parts[i]:
            t = parts[i].pop()
            parts[rng.randrange(n)].append(t)
        elif op == "drop" and parts[i]:
            parts[i].pop()
        elif op == "no":
            split_no[i] = rng.choice((0, 1, n, n + 1, 65535, i + 1))
        elif op == "count":
            counts[i] = rng.choice((0, 1, n - 1, n + 1, 65535))
        elif op == "total":
            total = rng.choice((0, -1, len(tensors) - 1, len(tensors) + 1, 1 << 31))
        elif op == "type":
            extra[i][rng.choice(("split.no", "split.count", "split.tensors.count"))] = rng.choice(
                (typed(1.0, V.FLOAT32), typed("1", V.STRING), typed(True, V.BOOL), typed([1], V.ARRAY, V.UINT16)))
        elif op == "remove_key":
            extra[i][rng.choice(("split.no", "split.count", "split.tensors.count"))] = None
        elif op == "meta_later":
            extra[i][f"{arch}.block_count"] = typed(rng.choice((1, 99, 0)), V.UINT32)
        elif op == "swap_files":
            a, b = rng.sample(range(n), 2)
            parts[a], parts[b] = parts[b], parts[a]
            split_no[a], split_no[b] = split_no[b], split_no[a]
        what.append(f"{op}@{i}")
    state["desc"] = " ".join(what)
    d = tmp / "split"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    paths = []
    for i, part in enumerate(parts):
        m: dict[str, Any] = dict(meta) if i == 0 else {"general.architecture": arch}
        m["split.no"] = typed(split_no[i], V.UINT16) if 0 <= split_no[i] < 65536 else typed(split_no[i], V.UINT32)
        m["split.count"] = typed(counts[i], V.UINT16)
        m["split.tensors.count"] = typed(total, V.INT32) if -(1 << 31) <= total < (1 << 31) else typed(total, V.INT64)
        for k, v in extra[i].items():
            if v is None:
                m.pop(k, None)
            else:
                m[k] = v
        seen: set[str] = set()
        ts = []
        for j in part:  # the gguf writer refuses a name twice in one file
            if tensors[j][0] not in seen:
                seen.add(tensors[j][0])
                ts.append(tensors[j])
        paths.append(ggufgen.write_gguf(d / f"M-{i + 1:05d}-of-{n:05d}.gguf", m, ts))
    desc = " ".join(what)
    try:
        model = resolve(str(paths[0]))
    except MemfitError as e:
        note_error(state, e.message)
        return desc
    state["answers"] = state.get("answers", 0) + 1
    h = model.variants[0].headers
    assert h is not None
    names = [t.name for t in h.tensors]
    if len(names) != len(set(names)):
        raise Absurd("a merged split model holds a tensor twice")
    first = h.shards[0].metadata
    if len(h.shards) > 1:
        if first.get("split.tensors.count") != len(names):
            raise Absurd(f"split.tensors.count {first.get('split.tensors.count')} but {len(names)} tensors merged")
        for i, s in enumerate(h.shards):
            if s.metadata.get("split.no") != i:
                raise Absurd(f"shard {i} has split.no {s.metadata.get('split.no')}")
            if i > 0 and not s.tensors:
                raise Absurd(f"shard {i + 1} without tensors accepted")
    code, out, err = cli("estimate", str(paths[0]), "--json")
    doc = check_cli(code, out, err, True)
    if doc is not None:
        check_numbers(doc, "estimate")
    return desc


# ------------------------------------------------------------------------------------ server


def _server_state(state: dict, tmp: Path) -> dict:
    if "hub" in state:
        return state
    from planner.testing import ggufgen
    from planner.testing.fakehub import FakeHub, model_repo_files

    from planner.reader import parse_file

    files = model_repo_files(tmp / "repo", "M", ["Q4_K_M", "Q8_0"], shape=ggufgen.ModelShape(n_vocab=3000),
                             shards={"Q8_0": 2})
    alt = ggufgen.write_model(tmp / "repo" / "alt.gguf", "llama", ggufgen.ModelShape(n_layer=3, n_vocab=300))[0]
    hub = FakeHub()
    state.update(hub=hub, files=files, alt=alt, n=0,
                 headers={p: parse_file(f) for p, f in files.items()}, alt_header=parse_file(alt))
    os.environ.update({"HF_ENDPOINT": hub.url, "MEMFIT_HTTP_TIMEOUT": "0.3", "MEMFIT_HTTP_RETRIES": "2",
                       "MEMFIT_HTTP_BACKOFF": "0.01", "MEMFIT_HTTP_MAX_WAIT": "0.2", "MEMFIT_HTTP_DEADLINE": "1.5",
                       "HF_HOME": str(tmp / "hf_home")})
    os.environ.pop("HF_HUB_OFFLINE", None)
    from huggingface_hub import constants

    constants.ENDPOINT = hub.url
    constants.HF_HUB_OFFLINE = False
    return state


def _listing_hook(rng: random.Random) -> tuple[Callable[[dict], dict], str]:
    op = rng.choice(("size", "size", "name", "name", "sha", "siblings", "gated", "lfs", "extra"))
    size = rng.choice(("123", -1, 1 << 63, 1.5, True, None, [1], {"a": 1}, 0, 1 << 43, "1e9"))
    name = rng.choice(("../../x.gguf", "/abs.gguf", "a/../b.gguf", "a//b.gguf", "c:\\x.gguf", "ok\u202e.gguf",
                       "new\nline.gguf", "x" * 2000 + ".gguf", ".gguf", "./M-Q4_K_M.gguf", "%2e%2e/x.gguf",
                       "sub/M-Q4_K_M.gguf", 42, None))

    def hook(body: dict) -> dict:
        sib = body.get("siblings") or []
        target = rng.choice(sib) if sib else {}
        if op == "size":
            target["size"] = size
            if isinstance(target.get("lfs"), dict):
                target["lfs"]["size"] = size
        elif op == "name":
            target["rfilename"] = name
        elif op == "sha":
            body["sha"] = rng.choice(("", "abc", "../" * 14, 42, None, "g" * 40))
        elif op == "siblings":
            body["siblings"] = rng.choice(({"x": 1}, "str", [1, 2, None], [[]], None))
        elif op == "gated":
            body["gated"] = rng.choice(("manual", "auto", True, 1, [], "false"))
        elif op == "lfs":
            target["lfs"] = rng.choice(("x", None, {"size": "1"}, {"sha256": "zz"}, []))
        else:
            sib.append({"rfilename": name if isinstance(name, str) else "extra.gguf", "size": size})
        return body

    return hook, f"listing {op}"


def run_server(rng: random.Random, tmp: Path, state: dict) -> str:
    from planner.errors import MemfitError
    from planner.resolver import resolve

    st = _server_state(state, tmp)
    hub = st["hub"]
    st["n"] += 1
    repo = f"o/r{st['n']}-GGUF"
    hub.clear_faults()
    hub.listing_hook = None
    lfs = rng.random() < 0.8
    hub.add_repo(repo, st["files"], lfs=lfs)
    os.environ["MEMFIT_CACHE_DIR"] = str(tmp / f"cache{st['n'] % 4}")
    os.environ["MEMFIT_HTTP_CHUNK"] = str(rng.choice((4096, 65536, 1 << 20)))
    what = []
    replaced: set[str] = set()
    for _ in range(rng.choice((1, 1, 2, 3))):
        op = rng.choice(("trickle", "latency", "status", "reset", "truncate", "short_range", "full_body",
                         "redirect", "listing", "listing", "replace_before", "replace_during", "none"))
        where = rng.choice(("cdn", "resolve", "api", "file", "any"))
        times = rng.choice((1, 2, -1))
        if op == "trickle":
            hub.add_fault("trickle", after_bytes=rng.choice((1, 16, 4096)), delay=0.02, times=times, where=where)
        elif op == "latency":
            hub.add_fault("latency", delay=rng.choice((0.1, 0.5, 2.0)), times=times, where=where)
        elif op == "status":
            hub.add_fault("status", status=rng.choice((500, 503, 429, 404, 403, 401, 416, 200, 206, 301)),
                          retry_after=rng.choice((None, "0", "1", "abc", "99999", "-5", "nan")), times=times, where=where,
                          delay=rng.choice((0.0, 0.0, 0.0, 0.02)), after_bytes=rng.choice((100, 70000)))
        elif op in ("reset", "truncate", "short_range"):
            hub.add_fault(op, after_bytes=rng.choice((0, 1, 100, 5000)), times=times, where=where)
        elif op == "full_body":
            hub.add_fault("full_body", times=times, where=rng.choice(("cdn", "file")))
        elif op == "redirect":
            hub.add_fault("redirect", location=rng.choice(("file:///etc/passwd", "ftp://h/x", "javascript:alert(1)",
                                                           "//evil.invalid/x", "/api/models/o/loop", "",
                                                           "http://127.0.0.1:1/x", "data:text/plain,hi")),
                          times=times, where=where)
        elif op == "listing":
            hook, label = _listing_hook(rng)
            hub.listing_hook = hook
            op = label
        elif op == "replace_before":
            path = rng.choice(list(st["files"]))
            hub.replace_content(repo, path, st["alt"])
            replaced.add(path)
        elif op == "replace_during":
            path = rng.choice(list(st["files"]))
            data = bytearray(st["files"][path].read_bytes()[:1 << 20]) if rng.random() < 0.5 else None

            def swap(path: str = path, data: bytearray | None = data) -> None:
                if data is not None:
                    src = bytearray(st["files"][path].read_bytes())
                    src[-1] ^= 0xFF
                    hub.replace_content(repo, path, bytes(src))
                else:
                    hub.replace_content(repo, path, st["alt"])
                replaced.add(path)

            hub.add_fault("call", action=swap, where="cdn", skip=rng.choice((0, 1, 2)), times=1)
        what.append(f"{op}@{where}")
    desc = state["desc"] = " ".join(what)

    def check(model: Any, how: str) -> None:
        for v in model.variants:
            if v.headers is None:
                continue
            for path, shard in zip(v.files, v.headers.shards):
                want = st["headers"].get(path)
                ok = want is not None and shard.metadata == want.metadata and shard.tensors == want.tensors
                if path in replaced and not ok:
                    ok = shard.metadata == st["alt_header"].metadata and shard.tensors == st["alt_header"].tensors
                if not ok:
                    raise Absurd(f"{path}: the header {how} is not the file's (mixed or wrong bytes)")

    try:
        check(resolve(repo), "read")
        state["answers"] = state.get("answers", 0) + 1
    except MemfitError as e:
        note_error(state, e.message)
    # whatever happened, what the cache now holds must be whole, one version: read it offline
    hub.clear_faults()
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        check(resolve(repo), "cached")
    except MemfitError:
        pass
    finally:
        os.environ.pop("HF_HUB_OFFLINE", None)
    return desc


# ------------------------------------------------------------------------------------ cache


def _rand_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(("int", "float", "str", "bool", "null", "list", "dict") if depth < 4 else ("int", "str"))
    if kind == "int":
        return rng.choice((0, -1, 1 << 63, 1 << 80, 7))
    if kind == "float":
        return rng.choice((0.5, 1e308, -1e-9))
    if kind == "str":
        return rng.choice(("", "x", "0" * 40, "\u202e"))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_rand_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(("commit", "resolved_at", "files", "repo", "metadata", "tensors", "version", "$skip",
                        "$bytes", "$float", "alignment", "data_offset")): _rand_json(rng, depth + 1)
            for _ in range(rng.randrange(5))}


def _forge(path: Path, key: str, value: Any) -> None:
    payload = json.dumps({"key": key, "value": value}).encode()
    path.write_bytes(b"memfit-cache 1 %d %s\n" % (len(payload), hashlib.sha256(payload).hexdigest().encode())
                     + payload)


def run_cache(rng: random.Random, tmp: Path, state: dict) -> str:
    from planner.cache import default_cache
    from planner.errors import MemfitError
    from planner.resolver import resolve

    st = _server_state(state, tmp)
    hub = st["hub"]
    hub.clear_faults()
    hub.listing_hook = None
    os.environ["MEMFIT_HTTP_CHUNK"] = str(1 << 20)
    if "cache_repo" not in st:
        st["cache_repo"] = "o/cache-GGUF"
        hub.add_repo(st["cache_repo"], st["files"])
    repo = st["cache_repo"]
    root = tmp / "cachefuzz"
    shutil.rmtree(root, ignore_errors=True)
    os.environ["MEMFIT_CACHE_DIR"] = str(root)
    os.environ.pop("HF_HUB_OFFLINE", None)
    resolve(repo)  # fill: listing, ref, headers
    base = default_cache().base
    entries = sorted(base.rglob("*.entry"))
    user_file = tmp / "user-data.txt"
    user_file.write_text("the user's own file\n")
    what = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        e = rng.choice(entries)
        key_doc = None
        with contextlib.suppress(Exception):  # only a regular entry of ours is read back (never a FIFO, ...)
            if e.is_file() and not e.is_symlink() and e.stat().st_size < (1 << 20):
                raw = e.read_bytes()
                key_doc = json.loads(raw[raw.index(b"\n") + 1:])["key"]
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            e.unlink()
        with contextlib.suppress(OSError):
            shutil.rmtree(e)
        op = rng.choice(("fifo", "zero", "urandom", "user", "loop", "dangling", "dir", "socket", "huge",
                         "random", "empty", "forged", "forged", "truncated"))
        if op == "fifo":
            os.mkfifo(e)
        elif op in ("zero", "urandom", "user", "loop", "dangling"):
            target = {"zero": "/dev/zero", "urandom": "/dev/urandom", "user": str(user_file), "loop": str(e),
                      "dangling": str(tmp / "nowhere")}[op]
            e.symlink_to(target)
        elif op == "dir":
            e.mkdir()
            (e / "inner").write_text("x")
        elif op == "socket":
            s = socket.socket(socket.AF_UNIX)
            try:
                s.bind(str(e))
            except OSError:
                e.write_bytes(b"")
            finally:
                s.close()
        elif op == "huge":
            with open(e, "wb") as f:
                f.write(b"memfit-cache 1 10 x\n")
                f.truncate(rng.choice((17 << 20, 1 << 31, 8 << 30)))
        elif op == "random":
            e.write_bytes(os.urandom(rng.choice((1, 100, 5000))))
        elif op == "empty":
            e.write_bytes(b"")
        elif op == "truncated":
            e.write_bytes(b"memfit-cache 1 1000 " + b"0" * 64 + b"\n{")
        else:
            _forge(e, key_doc or "?", _rand_json(rng))
        what.append(f"{op}:{e.parent.parent.name}")
    offline = rng.random() < 0.4
    state["desc"] = " ".join(what) + (" offline" if offline else "")
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        model = resolve(repo)
        state["answers"] = state.get("answers", 0) + 1
        for v in model.variants:
            for path, shard in zip(v.files, v.headers.shards if v.headers else []):
                want = st["headers"][path]
                if shard.metadata != want.metadata or shard.tensors != want.tensors:
                    raise Absurd(f"{path}: the cached header is not the file's")
    except MemfitError as e:
        note_error(state, e.message)
    finally:
        os.environ.pop("HF_HUB_OFFLINE", None)
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    if grew > 256 * 1024:
        raise Absurd(f"memory grew by {grew // 1024} MiB reading the cache")
    if user_file.read_text() != "the user's own file\n":
        raise Absurd("a user file behind a symlink was changed")
    return " ".join(what) + (" offline" if offline else "")


# ------------------------------------------------------------------------------------ device


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "inf" if v == math.inf else "-inf" if v == -math.inf else "nan" if v != v else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_toml(d: dict) -> str:
    """A TOML document for a nested dict (inline tables below the top level: simple and exact)."""
    return "\n".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in d.items()) + "\n"


_DEVICE_VALUES = (math.inf, -math.inf, math.nan, 1 << 64, 1 << 80, 1 << 47, -1, 0, 0.0, 1e30, -0.5, 1e-300,
                  "inf", "1e30g", "nan", "-5g", "", "64g", True, [1], {"a": 1}, 1 << 46, (1 << 46) + 1, 100000.0,
                  100000.5, 0.9999, 1.0000001)


def _paths(d: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out.append(prefix + (i,))
            out += _paths(v, prefix + (i,))
    return out


def run_device(rng: random.Random, tmp: Path, state: dict) -> str:
    import tomllib

    from planner.testing import ggufgen

    if "profiles" not in state:
        state["profiles"] = sorted((ROOT / "profiles").glob("*.toml"))
        state["model"] = str(ggufgen.write_model(tmp / "dev-model.gguf", "qwen3moe")[0])
    prof = rng.choice(state["profiles"])
    doc = tomllib.loads(prof.read_text())
    what = [prof.stem]
    for _ in range(rng.choice((1, 1, 2, 3))):
        paths = [p for p in _paths(doc) if not (p and p[0] in ("sources", "notes"))]
        p = rng.choice(paths)
        parent = doc
        for k in p[:-1]:
            parent = parent[k]
        if rng.random() < 0.1 and isinstance(parent, dict):
            parent.pop(p[-1], None)
            what.append(f"del {'.'.join(map(str, p))}")
        else:
            cur = parent[p[-1]]
            if isinstance(cur, (int, float)) and not isinstance(cur, bool) and rng.random() < 0.8:
                v = rng.choice((math.inf, -math.inf, math.nan, 1 << 64, 1 << 80, 1 << 47, -1, 0, 1e30, 1e-300,
                                cur * 2, cur / 2, cur * 1000, cur / 1000, cur + 1, 1 << 30, 256 << 20, 1, 0.5,
                                1 << 46, (1 << 46) + 1, 100000.0, 100000.5))
                v = int(v) if isinstance(cur, int) and isinstance(v, float) and math.isfinite(v) and rng.random() < 0.5 else v
            elif isinstance(cur, str) and re.match(r"^[0-9.]+ ?[A-Za-z]+$", cur) and rng.random() < 0.8:
                v = rng.choice(("inf", "1e30g", "-5g", "0", "1g", "100t", "65536t", "0.0001g", "nan g", "64 TiB",
                                "65 TiB", "1 B"))
            else:
                v = rng.choice(_DEVICE_VALUES)
            parent[p[-1]] = v
            what.append(f"{'.'.join(map(str, p))}={v!r:.20}")
    state["desc"] = " ".join(what)
    f = tmp / "device.toml"
    f.write_text(to_toml(doc))
    for argv in (("plan", state["model"], "--device-file", str(f), "--json"),
                 ("estimate", state["model"], "--device-file", str(f), "--json")):
        if argv[0] == "estimate" and rng.random() < 0.5:
            continue
        code, out, err = cli(*argv)
        d = check_cli_noting(state, code, out, err)
        if d is not None:
            state["answers"] = state.get("answers", 0) + 1
            check_numbers(d, argv[0])
    return " ".join(what)


# ------------------------------------------------------------------------------------ runner


RUNNERS: dict[str, Callable[[random.Random, Path, dict], str]] = {
    "semantic": run_semantic, "shards": run_shards, "server": run_server, "cache": run_cache, "device": run_device,
}


def _save(cls: str, outcome: str, seed: int, i: int, desc: str, exc: BaseException | None) -> str:
    out = ROOT / "fuzz" / "crashes"
    out.mkdir(parents=True, exist_ok=True)
    name = f"{cls}-{outcome}-{seed}-{i}.json"
    (out / name).write_text(json.dumps({
        "class": cls, "outcome": outcome, "seed": seed, "execution": i, "input": desc,
        "error": "".join(traceback.format_exception(exc)) if exc is not None else "timeout",
        "reproduce": f"python fuzz/fuzz_memfit.py --class {cls} --seed {seed} --executions {i + 1}",
    }, indent=1))
    print(f"!! {cls} {outcome} #{i}: {desc[:160]} -> fuzz/crashes/{name}", flush=True)
    return name


def run_class(cls: str, args: argparse.Namespace) -> dict:
    import logging

    logging.disable(logging.CRITICAL)  # warnings about damaged entries and skipped files are expected
    rng = random.Random(args.seed)
    stats: collections.Counter[str] = collections.Counter()
    found: list[str] = []
    slowest = (0.0, "")
    state: dict = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"memfit-fuzz-{cls}-") as tmpdir:
        tmp = Path(tmpdir)
        os.environ["MEMFIT_CACHE_DIR"] = str(tmp / "cache")
        os.environ["MEMFIT_CONFIG_DIR"] = str(tmp / "config")
        i = 0
        while (i < args.executions) and (time.perf_counter() - t0 < args.seconds):
            t = time.perf_counter()
            desc = "?"
            state["desc"] = "?"
            exc: BaseException | None = None
            signal.setitimer(signal.ITIMER_REAL, args.timeout)
            try:
                desc = RUNNERS[cls](rng, tmp, state)
                outcome = "ok"
            except Hang as e:
                outcome, exc = "hang", e
            except Absurd as e:
                outcome, exc = "absurd", e
            except KeyboardInterrupt:
                raise
            except BaseException as e:  # noqa: BLE001 - what we hunt
                outcome, exc = "crash", e
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if desc == "?":
                desc = state.get("desc", "?")
            dt = time.perf_counter() - t
            if dt > slowest[0]:
                slowest = (dt, desc[:120])
            stats["executions"] += 1
            stats[outcome] += 1
            if desc.startswith("writer refused"):
                stats["writer_refused"] += 1
            if outcome != "ok":
                found.append(_save(cls, outcome, args.seed, i, desc, exc))
            i += 1
            if args.progress and i % args.progress == 0:
                print(f"  {cls}: {i} executions, {stats['crash']} crashes, {stats['hang']} hangs, "
                      f"{stats['absurd']} absurd, {time.perf_counter() - t0:.0f} s", flush=True)
        if "hub" in state:
            state["hub"].close()
    elapsed = time.perf_counter() - t0
    return {
        "class": cls, "seed": args.seed, "executions": stats["executions"], "crashes": stats["crash"],
        "hangs": stats["hang"], "absurd": stats["absurd"], "seconds": round(elapsed, 1),
        "executions_per_second": round(stats["executions"] / max(elapsed, 1e-9), 1),
        "slowest_execution_s": round(slowest[0], 2), "slowest_execution": slowest[1],
        "writer_refused": stats["writer_refused"], "answered": state.get("answers", 0),
        "refusals": dict(state.get("errors", collections.Counter()).most_common(12)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "timeout_s": args.timeout, "found": found[:20],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--class", dest="classes", action="append", choices=CLASSES + ("all",), required=True)
    ap.add_argument("--seconds", type=float, default=120.0, help="time budget per class (default 120)")
    ap.add_argument("--executions", type=int, default=10**9, help="cap on executions per class")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds one execution may take (a hang)")
    ap.add_argument("--memory-mb", type=int, default=4096, help="address-space limit of the process")
    ap.add_argument("--progress", type=int, default=500)
    ap.add_argument("--json", type=Path, help="also write the summaries here")
    args = ap.parse_args(argv)
    classes = CLASSES if "all" in args.classes else tuple(dict.fromkeys(args.classes))

    def on_alarm(signum, frame):  # noqa: ARG001
        raise Hang()

    signal.signal(signal.SIGALRM, on_alarm)
    if args.memory_mb:
        limit = args.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    summaries = [run_class(c, args) for c in classes]
    text = json.dumps(summaries, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if any(s["crashes"] or s["hangs"] or s["absurd"] for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
