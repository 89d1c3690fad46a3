"""`memfit estimate`: llama.cpp's flag names and defaults, the table, --json, mmproj, errors."""

from __future__ import annotations

import json

import pytest
from gguf import GGMLQuantizationType as Q

from planner.testing import estimator_models as em
from planner.testing.ggufgen import write_gguf
from planner.cli import run


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    llama = root / "Llama-3.1-8B-Q4_K_M.gguf"
    em.llama31_8b(llama)
    gemma = root / "gemma-3-270m-Q8_0.gguf"
    em.gemma3_270m(gemma)
    moe = root / "Qwen3-30B-A3B-Q4_K_M.gguf"
    em.qwen3_30b_a3b(moe)
    mmproj = root / "mmproj-F16.gguf"
    meta = {"general.architecture": "clip", "clip.projector_type": "qwen3vl_merger", "clip.has_vision_encoder": True,
            "clip.vision.embedding_length": 1152, "clip.vision.feed_forward_length": 4304,
            "clip.vision.attention.head_count": 16, "clip.vision.patch_size": 16, "clip.vision.image_size": 768,
            "clip.vision.spatial_merge_size": 2, "clip.vision.block_count": 2}
    tensors = [("v.patch_embd.weight", (16, 16, 3, 1152), Q.F16)]
    for i in range(2):
        tensors += [(f"v.blk.{i}.attn_qkv.weight", (1152, 3456), Q.F16), (f"v.blk.{i}.ffn_up.weight", (1152, 4304), Q.F16)]
    write_gguf(mmproj, meta, tensors)
    return {"llama": llama, "gemma": gemma, "moe": moe, "mmproj": mmproj}


def _json(capsys, *args) -> dict:
    code = run(["estimate", *map(str, args), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_human_table(files, capsys):
    code = run(["estimate", str(files["llama"]), "-c", "24k", "--backend", "cuda"])
    out = capsys.readouterr().out
    assert code == 0
    assert "24,576 tokens" in out
    for word in ("weights", "KV cache", "compute buffers", "output (logits)", "runtime overhead", "GPU", "host RAM"):
        assert word in out
    assert "exact" in out and "estimate ±20%" in out and "estimate ±50%" in out
    assert "3.00 GiB" in out  # the KV cache of Llama-3.1-8B at 24k, f16


def test_json_top_level_integers(files, capsys):
    d = _json(capsys, files["llama"], "-c", "24576", "--backend", "cpu")
    for key in ("weights_bytes", "kv_bytes", "recurrent_bytes", "compute_bytes", "output_bytes", "total_bytes"):
        assert isinstance(d[key], int)
    assert d["kv_bytes"] == 3072 << 20
    assert d["total_bytes"] == sum(d[k] for k in ("weights_bytes", "kv_bytes", "recurrent_bytes", "compute_bytes",
                                                    "output_bytes", "mmproj_bytes"))
    assert isinstance(d["devices"], list) and len(d["layers"]) == 32
    assert d["estimated"]["compute"] == 0.10


def test_defaults_mirror_llama_server(files, capsys):
    d = _json(capsys, files["gemma"], "-c", "24k", "--backend", "cpu")
    s = d["settings"]
    # the default runtime: llama-server's defaults, conservative over the builds apps ship (logits
    # for the whole ubatch, as before b9464), stated in the output
    assert (s["n_parallel"], s["kv_unified"], s["n_outputs_max"], s["flash_attn"]) == (4, True, 0, "auto")
    assert d["runtime"]["id"] == "llama.cpp@conservative" and d["runtime"]["conservative"]
    assert "conservative" in d["warnings"][0]
    b11434 = _json(capsys, files["gemma"], "-c", "24k", "--backend", "cpu", "--runtime", "llama.cpp@b11434")
    s2 = b11434["settings"]
    assert (s2["n_parallel"], s2["kv_unified"], s2["n_outputs_max"], s2["llama_build"]) == (4, True, 4, 11434)
    assert b11434["compute_bytes"] <= d["compute_bytes"] and b11434["kv_bytes"] == d["kv_bytes"]
    # unified cache: SWA layers keep 512 x 4 + 512 cells -> pad256 = 2560
    assert d["kv_bytes"] == 3 * 1024 * 24576 + 15 * 1024 * 2560
    lib = _json(capsys, files["gemma"], "-c", "24k", "--backend", "cpu", "--tool", "fit-params")
    assert lib["settings"]["n_parallel"] == 1 and lib["settings"]["n_outputs_max"] == 0
    assert lib["kv_bytes"] == 87 << 20
    one = _json(capsys, files["gemma"], "-c", "24k", "--backend", "cpu", "-np", "1")
    assert one["kv_bytes"] == 87 << 20


def test_llamacpp_flags(files, capsys):
    d = _json(capsys, files["moe"], "-c", "32k", "-fa", "on", "-ctk", "q8_0", "-ctv", "q8_0", "-ub", "1024",
              "-b", "4096", "-np", "2", "-kvu", "-ngl", "30", "--n-cpu-moe", "10", "--backend", "rocm")
    s = d["settings"]
    assert (s["n_ctx"], s["n_ubatch"], s["n_batch"], s["n_parallel"], s["kv_unified"]) == (32768, 1024, 4096, 2, True)
    assert (s["n_gpu_layers"], s["n_cpu_moe"], s["cache_type_k"], s["backend"]) == (30, 10, "q8_0", "rocm")
    gpu_layers = [layer["index"] for layer in d["layers"] if layer["on_gpu"]]
    assert gpu_layers == list(range(19, 48))
    cmoe = _json(capsys, files["moe"], "-c", "4k", "-cmoe", "--backend", "cuda")
    assert not any(layer["experts_on_gpu"] for layer in cmoe["layers"])


def test_swa_full_flag(files, capsys):
    d = _json(capsys, files["gemma"], "-c", "24k", "--backend", "cpu", "-np", "1", "--swa-full")
    assert d["kv_bytes"] == 432 << 20


def test_mmproj_file(files, capsys):
    d = _json(capsys, files["llama"], "-c", "8k", "--backend", "cuda", "--mmproj", files["mmproj"])
    assert d["mmproj_bytes"] > 0 and "mmproj" in d["estimated"]
    gpu = [x for x in d["devices"] if x["device"] == "gpu"][0]
    assert gpu["mmproj_bytes"] == d["mmproj_bytes"]


def test_mmproj_auto_without_projector_is_a_note(files, capsys):
    d = _json(capsys, files["llama"], "-c", "8k", "--mmproj", "auto")
    assert d["mmproj_bytes"] == 0
    assert any("no projector" in w for w in d["warnings"])


def test_bad_values_are_usage_errors(files, capsys):
    assert run(["estimate", str(files["llama"]), "-c", "24kk"]) == 2
    assert run(["estimate", str(files["llama"]), "-np", "zero"]) == 2
    assert run(["estimate", str(files["llama"]), "-ctk", "q3_k"]) == 2
    capsys.readouterr()


def test_refused_combination_is_one_line_usage_error(files, capsys):
    # llama.cpp refuses a quantized V cache without flash attention: a usage error (2), as in `plan`
    code = run(["estimate", str(files["llama"]), "-fa", "off", "-ctv", "q8_0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "llama.cpp refuses a quantized V cache (q8_0) with flash attention off" in err
    assert "hint: use -fa on (or auto), or -ctv f16" in err and "Traceback" not in err


def test_refused_combination_exits_like_plan_before_reading_the_model(tmp_path, capsys):
    # checked on the flags alone: no model is read (a missing file would otherwise be exit 1)
    missing = str(tmp_path / "nope.gguf")
    assert run(["estimate", missing, "-fa", "off", "-ctv", "q4_0"]) == 2
    assert run(["plan", missing, "-d", "rtx-4090", "-fa", "off", "-ctv", "q4_0"]) == 2
    capsys.readouterr()
    assert run(["estimate", missing, "-fa", "off", "-ctv", "q8_0", "--json"]) == 2
    err = json.loads(capsys.readouterr().out)["error"]
    assert err["kind"] == "usage" and err["exit_code"] == 2 and "flash attention off" in err["message"]


def test_quantized_v_on_an_architecture_without_flash_attention_is_a_usage_error(tmp_path, capsys):
    # grok: llama.cpp forces flash attention off, so a quantized V cache cannot run even with -fa auto
    E, L, vocab = 512, 2, 1000
    meta = {"general.architecture": "grok", "grok.block_count": L, "grok.context_length": 8192,
            "grok.embedding_length": E, "grok.feed_forward_length": 1024, "grok.attention.head_count": 8,
            "grok.attention.head_count_kv": 2}
    tensors = [("token_embd.weight", (E, vocab), Q.F16), ("output_norm.weight", (E,), Q.F32),
               ("output.weight", (E, vocab), Q.F16)]
    for i in range(L):
        tensors += [(f"blk.{i}.attn_q.weight", (E, E), Q.F16), (f"blk.{i}.attn_k.weight", (E, 128), Q.F16),
                    (f"blk.{i}.attn_v.weight", (E, 128), Q.F16), (f"blk.{i}.ffn_up.weight", (E, 1024), Q.F16)]
    grok = write_gguf(tmp_path / "grok-F16.gguf", meta, tensors)
    assert run(["estimate", str(grok), "-c", "4k", "-ctv", "q8_0"]) == 2
    err = capsys.readouterr().err
    assert "quantized V cache (q8_0) with flash attention off" in err and "grok" in err
    assert _json(capsys, grok, "-c", "4k")["flash_attn"] is False  # f16 V still runs


def test_quantized_k_with_fa_off_is_still_allowed(files, capsys):
    # only the V cache needs flash attention in llama.cpp
    d = _json(capsys, files["llama"], "-c", "8k", "-fa", "off", "-ctk", "q8_0")
    assert d["settings"]["cache_type_k"] == "q8_0" and d["flash_attn"] is False


def test_missing_file(capsys, tmp_path):
    code = run(["estimate", str(tmp_path / "nope.gguf")])
    assert code != 0
    assert "Traceback" not in capsys.readouterr().err


def test_hub_reference_with_quant_and_mmproj_auto(fake_hub, tmp_path, capsys):
    from planner.testing import fakehub

    files = fakehub.model_repo_files(tmp_path / "repo", "Qwen3-8B", ["Q4_K_M", "Q8_0"], arch="qwen3", mmproj=True)
    fake_hub.add_repo("Qwen/Qwen3-8B-GGUF", files)
    # two variants: --quant is required
    assert run(["estimate", "Qwen/Qwen3-8B-GGUF", "-c", "4k"]) == 2
    capsys.readouterr()
    d = _json(capsys, "Qwen/Qwen3-8B-GGUF", "--quant", "Q8_0", "-c", "4k", "--mmproj", "auto", "--backend", "cpu")
    assert d["quant"] == "Q8_0" and d["mmproj"] and d["mmproj_bytes"] > 0
    d2 = _json(capsys, "Qwen/Qwen3-8B-GGUF:Q4_K_M", "-c", "4k", "--backend", "cpu")
    assert d2["quant"] == "Q4_K_M" and d2["weights_bytes"] < d["weights_bytes"]
