"""`memfit inspect`: the summary's numbers against what the generated files contain, and the
command's table and JSON output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import ggufgen
from fakehub import FakeHub, model_repo_files
from planner.cli import run
from planner.inspect import ModelSummary, parameter_counts, summarize, type_histogram
from planner.resolver import resolve

SHAPE = ggufgen.ModelShape(n_vocab=3000, n_layer=12, n_expert=8, n_expert_used=2)


def _one(tmp_path: Path, arch: str, shape: ggufgen.ModelShape = SHAPE) -> ModelSummary:
    p = ggufgen.write_model(tmp_path / f"{arch}-Q4_K_M.gguf", arch, shape)[0]
    return summarize(resolve(str(p)))


def test_moe_total_and_active_parameters(tmp_path: Path) -> None:
    s = _one(tmp_path, "qwen3moe")
    meta, tensors = ggufgen.model_spec("qwen3moe", SHAPE)
    total = sum(math.prod(shape) for _, shape, _ in tensors)
    experts = sum(math.prod(shape) for name, shape, _ in tensors if "_exps" in name)
    assert s.total_parameters == total
    assert s.active_parameters == total - experts + experts * 2 // 8
    assert (s.expert_count, s.expert_used_count) == (8, 2)
    assert s.architecture == "qwen3moe" and s.layers == 12 and s.context_length == SHAPE.ctx
    assert s.vocab_size == 3000  # from the skipped tokenizer array's count
    assert s.attention is not None
    assert (s.attention.head_count.value, s.attention.head_count_kv.value) == (SHAPE.n_head, SHAPE.n_head_kv)
    assert s.attention.key_length == SHAPE.n_embd // SHAPE.n_head


def test_dense_model_has_no_active_count(tmp_path: Path) -> None:
    s = _one(tmp_path, "qwen2")
    assert s.active_parameters is None and s.expert_count is None


def test_sliding_window_layers_follow_llama_cpp(tmp_path: Path) -> None:
    s = _one(tmp_path, "gemma3")
    assert s.attention is not None and s.attention.sliding_window == 1024
    # gemma3's declared per-layer flags: layers 6 and 12 use full attention
    assert s.attention.swa_layers == 10


def test_mla_parameters(tmp_path: Path) -> None:
    s = _one(tmp_path, "deepseek2")
    a = s.attention
    assert a is not None
    assert (a.kv_lora_rank, a.q_lora_rank, a.key_length_mla, a.value_length_mla) == (512, 1536, 192, 128)
    assert s.expert_shared_count == 1 and s.active_parameters is not None


def test_per_layer_kv_heads_and_recurrent_blocks(tmp_path: Path) -> None:
    s = _one(tmp_path, "jamba", ggufgen.ModelShape(n_vocab=500, n_layer=8))
    a = s.attention
    assert a is not None and a.head_count_kv.value is None
    assert a.head_count_kv.per_layer == [0, 0, 2, 0, 0, 0, 2, 0]
    assert a.head_count_kv.text == "2 on 2 layers, 0 on 6 layers"
    assert s.recurrent is not None and s.recurrent.state_size == 16 and s.recurrent.conv_kernel == 4


def test_variants_histogram_and_bpw(tmp_path: Path) -> None:
    files = model_repo_files(tmp_path, "M", ["Q4_K_M", "Q8_0", "BF16"], shape=ggufgen.ModelShape(n_vocab=512),
                             mmproj=True)
    s = summarize(resolve(str(tmp_path)))
    by = {v.quant: v for v in s.variants}
    assert list(by) == ["Q4_K_M", "Q8_0", "BF16"]  # by size
    m = resolve(str(tmp_path), quant="Q8_0")
    h = m.variants[0].headers
    assert h is not None
    hist = type_histogram(h)
    assert sum(t.bytes for t in hist) == h.tensor_bytes and sum(t.tensors for t in hist) == len(h.tensors)
    assert {t.type for t in by["Q8_0"].tensor_types} == {"Q8_0", "F32"}
    assert by["Q4_K_M"].tensor_types[0].type == "Q4_K"
    bpw = {q: v.bits_per_weight for q, v in by.items()}
    assert bpw["Q4_K_M"] < bpw["Q8_0"] < bpw["BF16"] < 16.5  # type: ignore[operator]
    assert by["Q8_0"].size_bytes == files["M-Q8_0.gguf"].stat().st_size
    assert [p.name for p in s.projectors] == [str(files["mmproj-F16.gguf"])]
    assert s.projectors[0].projector_type == "qwen2vl_merger" and s.projectors[0].parameters


def test_parameter_counts_without_expert_metadata(tmp_path: Path) -> None:
    m = resolve(str(ggufgen.write_model(tmp_path / "x.gguf", "qwen3moe", SHAPE)[0]))
    h = m.variants[0].headers
    assert h is not None
    total, active = parameter_counts(h, None, None)
    assert active is None and total == sum(t.n_elements for t in h.tensors)


def test_cli_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_repo_files(tmp_path, "Qwen3-30B-A3B", ["Q4_K_M", "Q8_0"], arch="qwen3moe", shape=SHAPE, mmproj=True)
    assert run(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for needle in ("architecture      qwen3moe", "active (2 of 8 experts)", "layers            12",
                   "training context  4,096 tokens", "vocabulary        3,000 tokens", "Q4_K_M", "Q8_0",
                   "companions", "mmproj-F16.gguf", "qwen2vl_merger"):
        assert needle in out, needle
    assert "llama-server -hf" not in out  # local: no Hub tag


def test_cli_json_hub(fake_hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = model_repo_files(tmp_path, "Qwen3-30B-A3B", ["Q4_K_M", "Q8_0"], arch="qwen3moe", shape=SHAPE,
                             shards={"Q8_0": 2})
    sha = fake_hub.add_repo("unsloth/Qwen3-30B-A3B-GGUF", files)
    assert run(["inspect", "unsloth/Qwen3-30B-A3B-GGUF", "--revision", sha, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    s = ModelSummary.model_validate(doc)
    assert s.revision == sha and s.repo == "unsloth/Qwen3-30B-A3B-GGUF"
    assert [v.hf_tag for v in s.variants] == ["unsloth/Qwen3-30B-A3B-GGUF:Q4_K_M", "unsloth/Qwen3-30B-A3B-GGUF:Q8_0"]
    assert len(s.variants[1].files) == 2
    assert run(["inspect", "unsloth/Qwen3-30B-A3B-GGUF:Q8_0"]) == 0
    out = capsys.readouterr().out
    assert "llama-server -hf unsloth/Qwen3-30B-A3B-GGUF:Q8_0" in out and "Q4_K_M" not in out


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["inspect", str(tmp_path / "nope.gguf")]) == 1
    assert "error: no such file" in capsys.readouterr().err
    assert run(["inspect"]) == 2
    assert run(["inspect", "qwen3-vl-23b", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["error"]["kind"] == "resolve" and "qwen3-vl-32b" in doc["error"]["hint"]
