"""`memfit inspect`: the summary's numbers against what the generated files contain, and the
command's table and JSON output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from planner.testing import ggufgen
from planner.testing.fakehub import FakeHub, model_repo_files
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


def _rwkv6(path: Path, E: int = 2048, L: int = 4, vocab: int = 1000) -> Path:
    """An RWKV-6 file as conversion/rwkv.py writes it: head_count 0 ("required by llama.cpp,
    unused"), wkv.head_size, the 1M placeholder context."""
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFValueType as V

    from planner.testing.ggufgen import tokenizer_metadata, typed, write_gguf

    u32 = lambda x: typed(x, V.UINT32)  # noqa: E731
    meta = {"general.architecture": "rwkv6", "general.name": "test-rwkv6", "rwkv6.context_length": u32(1048576),
            "rwkv6.embedding_length": u32(E), "rwkv6.block_count": u32(L), "rwkv6.feed_forward_length": u32(7168),
            "rwkv6.attention.head_count": u32(0), "rwkv6.wkv.head_size": u32(64),
            "rwkv6.time_mix_extra_dim": u32(32), "rwkv6.time_decay_extra_dim": u32(64),
            "rwkv6.rescale_every_n_layers": u32(6), "rwkv6.attention.layer_norm_epsilon": typed(1e-5, V.FLOAT32)}
    meta.update(tokenizer_metadata(vocab, merges=False))
    t = [("token_embd.weight", (E, vocab), Q.F16), ("token_embd_norm.weight", (E,), Q.F32),
         ("output_norm.weight", (E,), Q.F32), ("output.weight", (E, vocab), Q.F16)]
    for i in range(L):
        p = f"blk.{i}."
        t += [(p + "attn_norm.weight", (E,), Q.F32), (p + "time_mix_first.weight", (64, E // 64), Q.F32),
              (p + "time_mix_key.weight", (E, E), Q.F16), (p + "time_mix_value.weight", (E, E), Q.F16),
              (p + "time_mix_receptance.weight", (E, E), Q.F16), (p + "time_mix_output.weight", (E, E), Q.F16),
              (p + "channel_mix_key.weight", (E, 7168), Q.F16), (p + "channel_mix_value.weight", (7168, E), Q.F16)]
    return write_gguf(path, meta, t)


def _estimated_state(path: Path) -> int:
    from planner.estimate_types import RunSettings
    from planner.estimator import estimate
    from planner.model_facts import ModelFacts

    h = resolve(str(path)).variants[0].headers
    b = estimate(ModelFacts.from_headers(h), RunSettings(backend="cpu", n_ctx=4096, n_parallel=1))
    return b.recurrent_bytes


def test_pure_recurrent_models_show_their_state_not_zero_heads(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from planner.testing import estimator_models as em
    monkeypatch.setenv("COLUMNS", "160")  # each fact on one line (the 80-column layout: test_terminal_width)
    mamba = tmp_path / "mamba2-Q8_0.gguf"
    em.mamba2_like(mamba)
    rwkv = _rwkv6(tmp_path / "rwkv6-F16.gguf")

    s = summarize(resolve(str(mamba)))
    assert s.attention is None and s.attention_free
    r = s.recurrent
    assert r is not None and r.kind == "ssm" and r.layers == 64
    assert (r.state_size, r.inner_size, r.conv_kernel, r.time_step_rank, r.group_count) == (128, 5120, 4, 80, 1)
    # the state llama.cpp allocates for one sequence (conv + SSM, f32): the estimator's number for -np 1
    assert r.state_bytes_per_sequence == _estimated_state(mamba) == 64 * 4 * (3 * (5120 + 2 * 128) + 128 * 5120)

    s = summarize(resolve(str(rwkv)))
    assert s.attention is None and s.attention_free
    r = s.recurrent
    assert r is not None and r.kind == "rwkv" and (r.wkv_head_size, r.wkv_heads) == (64, 32)
    assert r.state_bytes_per_sequence == _estimated_state(rwkv) == 4 * 4 * (2 * 2048 + 2048 * 64)

    for path, needles in ((mamba, ["recurrent (SSM)", "d_state 128, d_inner 5120, conv kernel 4",
                                   "163.94 MiB per sequence (f32, 64 layers)"]),
                          (rwkv, ["recurrent (RWKV)", "head size 64 (32 heads)", "2.06 MiB per sequence"])):
        assert run(["inspect", str(path)]) == 0
        out = capsys.readouterr().out
        assert "none (recurrent: a fixed-size state per sequence, no KV cache)" in out
        assert "attention heads" not in out and "head dim" not in out and "KV heads" not in out
        assert "no context limit of its own" in out
        for n in needles:
            assert n in out, (path.name, n)
    assert run(["inspect", str(rwkv), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["attention"] is None and doc["attention_free"] is True and doc["recurrent"]["wkv_head_size"] == 64


def test_hybrid_models_keep_their_attention_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = _one(tmp_path, "jamba", ggufgen.ModelShape(n_vocab=500, n_layer=8))
    assert not s.attention_free and s.attention is not None
    assert s.recurrent is not None and s.recurrent.kind == "ssm" and s.recurrent.layers == 6
    assert run(["inspect", str(tmp_path / "jamba-Q4_K_M.gguf")]) == 0
    out = capsys.readouterr().out
    assert "attention heads" in out and "none (recurrent" not in out and "recurrent (SSM)" in out
