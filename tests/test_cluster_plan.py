"""plan --cluster / --gpus through the local Hub: issue 16's section B scenarios, several cards in
one host, the launch recipe, the errors, and the pipeline speed model against the field rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.cluster.links import find_link
from planner.cluster.speed import field_check
from planner.testing import fakehub, ggufgen
from planner.testing.clirun import plan, plan_json

# Qwen3-235B-A22B's shape (validation/field/configs.toml): 94 layers, 4096 wide, 128 experts of 1536, 8 used
Q235 = ggufgen.ModelShape(n_vocab=151936, n_layer=94, n_embd=4096, n_ff=12288, n_head=64, n_head_kv=4,
                          n_expert=128, n_expert_used=8, n_ff_exp=1536, ctx=262144)
# gpt-oss-120b: 36 layers, 2880 wide, 128 experts of 2880, 4 used, MXFP4 experts
OSS = ggufgen.ModelShape(n_vocab=201088, n_layer=36, n_embd=2880, n_ff=2880, n_head=64, n_head_kv=8,
                         n_expert=128, n_expert_used=4, n_ff_exp=2880, ctx=131072)
# a 32B-class dense model
DENSE = ggufgen.ModelShape(n_vocab=151936, n_layer=64, n_embd=5120, n_ff=25600, n_head=40, n_head_kv=8, ctx=40960)


@pytest.fixture(scope="session")
def repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("cluster")
    return {
        "Qwen/Qwen3-235B-A22B-GGUF": fakehub.model_repo_files(root / "q235", "Qwen3-235B-A22B", ["Q3_K_M", "Q4_K_M"],
                                                              arch="qwen3moe", shape=Q235),
        "ggml-org/gpt-oss-120b-GGUF": fakehub.model_repo_files(root / "oss", "gpt-oss-120b", ["MXFP4_MOE"],
                                                               arch="gpt-oss", shape=OSS),
        "Qwen/Qwen3-32B-GGUF": fakehub.model_repo_files(root / "dense", "Qwen3-32B", ["Q4_K_M", "Q8_0"],
                                                        arch="qwen2", shape=DENSE),
    }


@pytest.fixture
def hub(fake_hub, repos):
    fake_hub.add_repos(repos)
    return fake_hub


def test_qwen3_235b_does_not_fit_one_ai_max_and_fits_two(hub):
    """Section B: 96 GB usable (Windows' largest carve-out) holds no quant of the 235B on one box;
    two boxes hold Q3_K_M, each with its BIOS setting."""
    data = plan_json("qwen3-235b-a22b", "--cluster", "2x ai-max-395-128g-minipc", "--link", "usb4", "-c", "32k")
    assert data["verdict"] == "cluster" and data["quant"] == "Q3_K_M" and data["fits"]
    assert data["single"]["placement"] != "fast"
    assert [m["role"] for m in data["members"]] == ["head", "worker"]
    assert all(m["fits"] and m["carveout_bytes"] for m in data["members"])
    assert sum(len(m["layers"]) for m in data["members"]) == 94
    assert sum(m["holds_output"] for m in data["members"]) == 1 and data["members"][0]["holds_output"]
    bios = [c for c in data["commands"] if "UMA frame buffer" in c]
    assert len(bios) == 2
    assert any("ggml-rpc-server -H 10.10.0.2 -p 50052 -c" in c for c in data["commands"])
    head = data["commands"][-1]
    assert "--rpc 10.10.0.2:50052" in head and "-ts " in head and "Q3_K_M" in head
    assert any("unauthenticated" in w for w in data["warnings"])


def test_q4_k_m_fits_two_ai_max_on_linux_with_the_gtt_raised(hub):
    pair = "ai-max-395-128g-minipc,framework-desktop-395-128g"
    data = plan_json("qwen3-235b-a22b", "-q", "Q4_K_M", "--cluster", pair,
                     "--os", "linux", "--link", "usb4", "-c", "32k")
    assert data["quant"] == "Q4_K_M" and data["verdict"] == "cluster"
    assert data["single"]["placement"] != "fast"
    assert all(m["fits"] for m in data["members"])
    assert any(m["cap_setting"] for m in data["members"])
    # llama.cpp's device order: the worker's RPC device first, the head's GPU last
    assert data["llama_ts"] == list(reversed(data["ts"]))
    assert data["speed"]["decode_tps"] > 0 and data["speed"]["assumptions"]


def test_gpt_oss_120b_on_a_dgx_spark_needs_no_cluster(hub):
    data = plan_json("gpt-oss-120b", "--cluster", "2x dgx-spark", "-c", "32k")
    assert data["verdict"] == "single" and data["link"] == "roce"
    assert data["reasons"][0].startswith("no cluster needed: one dgx-spark runs MXFP4_MOE")


def test_two_cards_in_one_host_split_without_rpc(hub):
    data = plan_json("Qwen/Qwen3-32B-GGUF", "--device", "rtx-3090", "--gpus", "2", "-c", "16k")
    assert data["kind"] == "local" and data["link"] == "pcie" and data["quant"] == "Q8_0"
    assert data["verdict"] == "cluster" and data["single"]["quant"] == "Q4_K_M"
    assert [m["role"] for m in data["members"]] == ["card", "card"]
    assert data["ts"] == data["llama_ts"]
    head = data["commands"][-1]
    assert "--rpc" not in head and "-ts " in head
    assert not any("rpc-server" in c for c in data["commands"]) and data["warnings"] == []
    # one card alone runs Q4_K_M faster than the two run Q8_0: the plan says so
    assert any("decodes slower" in r and "buys quality, not speed" in r for r in data["reasons"])


def test_text_fits_80_columns_and_says_what_it_assumes(hub):
    result = plan("qwen3-235b-a22b", "--cluster", "2x ai-max-395-128g-minipc", "--link", "usb4", "-c", "32k")
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    for words in ("Q3_K_M", "Speed: decode", "round trip", "Warning:", "ggml-rpc-server", "llama-server"):
        assert words in result.output
    md = plan("qwen3-235b-a22b", "--cluster", "2x ai-max-395-128g-minipc", "-c", "32k", "--format", "markdown")
    assert md.exit_code == 0 and "| member |" in md.output


@pytest.mark.parametrize("args,code,words", [
    (["--cluster", "2x no-such-device"], 1, "no-such-device"),
    (["--cluster", "dgx-spark"], 2, "at least two members"),
    (["--cluster", "2x dgx-spark", "--link", "carrier-pigeon"], 2, "unknown link"),
    (["--cluster", "2x dgx-spark", "--link", "pcie"], 2, "does not join"),
    (["--cluster", "2x dgx-spark", "--device", "dgx-spark"], 2, "leave out --device"),
    (["--device", "rtx-3090", "--gpus", "0"], 2, "--gpus"),
    (["--device", "rtx-3090", "--device", "rtx-4090", "--gpus", "2"], 2, "exactly one --device"),
    (["--device", "rtx-3090", "--link", "usb4"], 2, "--link applies to a cluster"),
])
def test_bad_cluster_input_is_one_line_and_nonzero(args, code, words):
    result = plan("some/model", *args)
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert words in result.output
    assert lines[0].startswith("error:") or "Usage" in result.output or code == 2


def test_pipeline_speed_against_the_field_rows():
    """docs/accuracy.md: two DGX Sparks over ConnectX-7, a 27B dense Q4_K_M (64 layers, n_embd 5120),
    12.83 t/s single -> 12.42 measured over RPC (LLMKube #1423); TinyLlama 1.1B F16 (22 layers, n_embd
    2048, vocab 32000) 63 t/s local -> 42 t/s on a remote machine over gigabit (llama.cpp PR #6829),
    every layer and the output remote, so the logits come back over the link."""
    spark = field_check(12.83, [32], find_link("roce"), 5120 * 4, 2)
    gige = field_check(63.0, [22], find_link("1gbe"), 2048 * 4, 1, returned_bytes=32000 * 4)
    assert spark == pytest.approx(12.42, rel=0.02)
    assert gige == pytest.approx(42.0, rel=0.05)


def test_nothing_fits_split_or_alone_exits_3(hub):
    data = plan_json("qwen3-235b-a22b", "--cluster", "2x rtx-3090", "-c", "32k", code=3)
    assert data["verdict"] == "no_fit" and data["quant"] is None and not data["fits"]
    assert data["reasons"][0].startswith("no quant fits the cluster at 32k")
    assert not any(m["fits"] for m in data["members"])
