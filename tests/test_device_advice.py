"""Advice on Macs, DGX Spark and discrete GPUs: one placement for memory and speed, Spark's real
budget, app lines that say what they cannot do, contexts past the trained length, flags that
exist where they are documented. Real-shaped models come from validation/field/models (exact
headers, sparse weights)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.testing.clirun import memfit, plan
from planner.testing.planfakes import GIB, LADDER, FakeFacts, fake_estimate, fake_model, mac

from planner.devices import load_profile
from planner.estimate_types import RunSettings
from planner.estimator import estimate
from planner.fit import FitConfig, place
from planner.model_facts import ModelFacts
from planner.plan import PlanRequest, Planner
from planner.resolver import resolve
from planner.speed import estimate_speed
from validation.field.make_specs import sparse_gguf

ROOT = Path(__file__).resolve().parent.parent

MACHINES = Path(__file__).resolve().parent / "fixtures" / "machines"


@pytest.fixture(scope="module")
def field_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("field-models")
    wanted = {"gpt-oss-120b": ["MXFP4_MOE"], "qwen3-32b": ["Q4_K_M", "Q8_0", "BF16"],
              "qwen3-30b-a3b": ["Q4_K_M", "Q8_0"], "glm-4.7-flash": ["Q4_K_M", "Q6_K"]}
    out = {}
    for spec, quants in wanted.items():
        for q in quants:
            sparse_gguf(spec, q, root / spec)
        out[spec] = root / spec
    return out


def _json(*args: str) -> tuple[int, dict]:
    r = plan(*args, "--json")
    return r.exit_code, json.loads(r.stdout)


# --------------------------------------------------------------------------- one placement


@pytest.mark.parametrize("spec,grid", [
    ("gpt-oss-120b", [(-1, 0), (-1, 1), (-1, 12), (-1, 36), (0, 0), (1, 0), (18, 0), (36, 36), (37, 0)]),
    ("qwen3-32b", [(-1, 0), (0, 0), (1, 0), (20, 0), (63, 0), (64, 0), (65, 0)]),
])
def test_speed_reads_every_weight_where_the_memory_model_puts_it(field_models, spec, grid):
    """The speed model takes its placement from the breakdown: with every expert counted (ratio 1)
    and an empty context, the bytes it reads on the GPU are the GPU weights of the memory model
    (less the few norms it does not count), and on the CPU the host weights less the token
    embeddings (one row per token). Before, the output head was read from RAM whenever any
    layer was on the CPU."""
    rm = resolve(str(next(field_models[spec].glob("*.gguf"))))
    facts = ModelFacts.from_headers(rm.variants[0].headers)
    profile = load_profile("rtx-4090")
    cfg = FitConfig(os="linux", use="headless", backend="cuda")
    embd = next(t.nbytes for t in rm.variants[0].headers.tensors if t.name == "token_embd.weight")
    for ngl, ncm in grid:
        b = estimate(facts, RunSettings(n_ctx=4096, n_gpu_layers=ngl, n_cpu_moe=ncm, backend="cuda"))
        s = estimate_speed(b, place(b, profile, cfg), profile, ratio=1.0, depth=0)
        gpu, host = b.device("gpu").weights_bytes, b.device("host").weights_bytes
        assert 0 <= gpu - s.gpu_bytes_per_token < 1 << 20, (ngl, ncm)
        assert abs((host - embd) - s.cpu_bytes_per_token) < 1 << 20, (ngl, ncm)
        assert b.output_on_gpu == (ngl != 0), (ngl, ncm)


# --------------------------------------------------------------------------- DGX Spark


@pytest.fixture
def spark_101(tmp_path, monkeypatch) -> Path:
    """The recorded Spark with 101.5 GiB available (after boot with a desktop and a page cache)."""
    root = tmp_path / "spark"
    shutil.copytree(MACHINES / "dgx-spark", root)
    meminfo = root / "proc" / "meminfo"
    kb = int(101.5 * GIB) // 1024
    meminfo.write_text(re.sub(r"MemAvailable:\s+\d+ kB", f"MemAvailable:   {kb} kB", meminfo.read_text()))
    monkeypatch.setenv("MEMFIT_PROBE_ROOT", str(root))
    return root


@pytest.mark.parametrize("ctx", ["32k", "128k", "max"])
def test_a_probed_spark_never_gets_a_plan_above_what_is_available(field_models, spark_101, ctx):
    code, d = _json(str(field_models["qwen3-32b"]), "--device", "auto", "--ctx", ctx)
    r = d["recommendation"]
    assert r["tier"] != "no_fit"
    floor = 8 * GIB  # the headless reserve: what the OS keeps of the available memory
    assert r["total_bytes"] + d["fit"]["safety_bytes"] <= 101.5 * GIB - floor
    assert r["fast_spare_bytes"] <= d["fit"]["os_free_bytes"]  # one pool: no GPU spare beyond the OS's


def test_spark_plans_as_a_desktop_with_its_firmware_share_drawn(field_models):
    code, d = _json(str(field_models["qwen3-32b"]), "--device", "dgx-spark", "--ctx", "32k")
    assert d["device"]["use"] == "desktop" and d["device"]["reserve_bytes"] == 16 * GIB
    bar = d["bars"][0]
    kinds = {s["kind"]: s["bytes"] for s in bar["segments"]}
    assert kinds["firmware"] == 8500 * 1024**2
    assert sum(s["bytes"] for s in bar["segments"]) <= bar["total_bytes"]
    assert "dedicated" not in d["recommendation"]["tier_label"]
    text = plan(str(field_models["qwen3-32b"]), "--device", "dgx-spark", "--ctx", "32k").stdout
    assert "firmware" in text and " dedicated " not in text


def test_doctor_reports_memory_already_in_use(spark_101):
    out = memfit("doctor", "--root", str(spark_101)).stdout
    assert "18.20 GiB of the 119.70 GiB the OS sees is in use now" in out


# --------------------------------------------------------------------------- app lines


def test_expert_offload_lines_for_llama_cpp_lm_studio_and_ollama(field_models):
    code, d = _json(str(field_models["gpt-oss-120b"]), "--device", "rtx-4090", "--ctx", "32k")
    r = d["recommendation"]
    assert r["n_cpu_moe"] > 0 and r["n_gpu_layers"] == -1
    c = r["commands"]
    assert f"-ngl 999 --n-cpu-moe {r['n_cpu_moe']}" in c["llama_server"]
    assert c["lm_studio"]["lms"].startswith("lms load ") and " --gpu max " in c["lm_studio"]["lms"]
    assert c["lm_studio"]["Number of layers for which to force MoE weights onto CPU"] == str(r["n_cpu_moe"])
    whole = r["whole_layer_split"]
    assert 0 < whole["n_gpu_layers"] < r["n_layer"] and whole["est_tps"] < r["est_tps"]
    ollama = "\n".join(c["ollama"])
    assert f"num_gpu {whole['n_gpu_layers']}" in ollama
    assert "no per-expert CPU offload" in ollama


@pytest.mark.parametrize("spec,args", [("qwen3-32b", ("--ctx", "8k")), ("gpt-oss-120b", ("--ctx", "32k")),
                                       ("qwen3-32b", ("--ctx", "160k"))])
def test_lms_gpu_argument_is_valid_for_every_plan(field_models, spec, args):
    for device in ("rtx-4090", "rtx-3090", "apple-m4-pro-48g", "dgx-spark"):
        code, d = _json(str(field_models[spec]), "--device", device, *args)
        r = d["recommendation"]
        if r["tier"] == "no_fit":
            continue
        gpu = re.search(r"--gpu (\S+)", r["commands"]["lm_studio"]["lms"]).group(1)
        assert gpu == "max" or 0.0 <= float(gpu) <= 1.0, (device, gpu)


def test_full_offload_pins_every_layer_in_ollama(field_models):
    """Ollama's own estimator split gpt-oss:20b 16%/84% CPU/GPU on a 36 GB M3 Pro where llama.cpp
    fits it whole: a full-offload plan pins the layers (num_gpu 999)."""
    code, d = _json(str(field_models["qwen3-30b-a3b"]), "--device", "apple-m4-pro-48g", "--ram", "36g", "--ctx", "64k")
    r = d["recommendation"]
    assert r["tier"] == "dedicated"
    assert any("num_gpu 999" in line for line in r["commands"]["ollama"])


# --------------------------------------------------------------------------- long contexts


def test_yarn_lines_for_a_qwen3_moe_at_128k(field_models, tmp_path):
    from planner.testing.ggufgen import ModelShape
    from planner.testing import fakehub

    shape = ModelShape(n_vocab=32768, n_layer=48, n_embd=2048, n_ff=6144, n_head=32, n_head_kv=4,
                       n_expert=128, n_expert_used=8, n_ff_exp=768, ctx=40960)
    fakehub.model_repo_files(tmp_path, "Qwen3-30B-A3B", ["Q4_K_M"], arch="qwen3moe", shape=shape)
    model = str(next(tmp_path.glob("*.gguf")))
    code, d = _json(model, "--device", "rtx-4090", "--ctx", "128k")
    r = d["recommendation"]
    assert r["ctx"] == 131072
    assert r["rope_flags"] == "--rope-scaling yarn --rope-scale 4 --yarn-orig-ctx 32768"
    assert r["commands"]["llama_server"].endswith(r["rope_flags"]) or r["rope_flags"] in r["commands"]["llama_server"]
    assert any("YaRN" in line for line in r["commands"]["ollama"])
    assert "YaRN" in r["commands"]["lm_studio"]["note"]
    assert any("beyond the model's training context of 40960" in w or "training context of 40k" in w
               for w in d["warnings"])
    # 64k needs only x2
    code, d = _json(model, "--device", "rtx-4090", "--ctx", "64k")
    assert d["recommendation"]["rope_flags"] == "--rope-scaling yarn --rope-scale 2 --yarn-orig-ctx 32768"
    # within the trained length: nothing added
    code, d = _json(model, "--device", "rtx-4090", "--ctx", "32k")
    assert d["recommendation"]["rope_flags"] == "" and "--rope" not in d["recommendation"]["commands"]["llama_server"]


def test_an_architecture_without_documented_scaling_is_capped_and_says_why(tmp_path):
    from planner.testing.ggufgen import ModelShape
    from planner.testing import fakehub

    shape = ModelShape(n_vocab=32768, n_layer=16, n_embd=2048, n_ff=8192, n_head=16, n_head_kv=8, ctx=8192)
    fakehub.model_repo_files(tmp_path, "Llama-Small", ["Q4_K_M"], arch="llama", shape=shape)
    code, d = _json(str(next(tmp_path.glob("*.gguf"))), "--device", "rtx-4090", "--ctx", "32k")
    assert d["ctx"] == 8192 and d["recommendation"]["ctx"] == 8192
    assert "-c 8192" in d["recommendation"]["commands"]["llama_server"]
    assert any("planned at 8k instead" in w for w in d["warnings"])


def test_ctx_max_is_the_training_context(field_models):
    code, d = _json(str(field_models["qwen3-32b"]), "--device", "dgx-spark", "--ctx", "max")
    assert d["ctx"] == d["model"]["n_ctx_train"] == 40960 and not d["ctx_defaulted"]
    code, d0 = _json(str(field_models["qwen3-32b"]), "--device", "dgx-spark", "--ctx", "0")
    assert d0["ctx"] == 40960


# --------------------------------------------------------------------------- decisions and reasons


def test_full_gpu_with_q8_kv_beats_partial_offload_at_the_requested_context(field_models):
    code, d = _json(str(field_models["glm-4.7-flash"]), "--device", "rtx-4090", "--ctx", "128k")
    r = d["recommendation"]
    assert r["placement"] == "fast" and r["cache_type_k"] == "q8_0" and r["quant"] == "Q4_K_M"


def test_min_tps_applies_at_the_requested_context(field_models):
    code, d = _json(str(field_models["glm-4.7-flash"]), "--device", "rtx-4090", "--ctx", "128k", "--min-tps", "60")
    r = d["recommendation"]
    assert r["est_tps_at_ctx"] < 60 and not r["meets_min_tps"] and code == 3


def test_the_next_quant_blocker_on_a_mac_is_ram_not_a_cap_the_plan_would_raise(field_models):
    code, d = _json(str(field_models["qwen3-32b"]), "--device", "apple-m4-max-64g", "--ctx", "32k")
    r = d["recommendation"]
    blocked = next(f for f in r["facts"] if f["code"] == "next_quality_blocked")
    assert blocked["values"]["check"] == "os_reserve"
    assert "GPU may use only" not in blocked["text"]


def test_host_ram_is_named_when_it_blocks_a_discrete_card(field_models):
    code, d = _json(str(field_models["qwen3-32b"]), "-q", "BF16", "--device", "rtx-4090", "--ram", "32g",
                    "--ctx", "32k")
    r = d["recommendation"]
    assert r["tier"] == "no_fit"
    assert any(f["code"] == "blocked_host_ram" for f in r["facts"])
    assert not any(f["code"] == "blocked_gpu_memory" for f in r["facts"])


def test_checks_agree_with_their_text(field_models):
    for device, args in (("apple-m4-max-64g", ("--ctx", "32k")), ("rtx-4090", ("--ctx", "64k")),
                         ("dgx-spark", ("--ctx", "max"))):
        code, d = _json(str(field_models["qwen3-32b"]), "--device", device, *args)
        for v in [d["fit"]] if d["fit"] else []:
            for c in v["checks"]:
                if c["ok"]:
                    assert c["short"] == "" and "under its" not in c["message"] and "short" not in c["message"], c


# --------------------------------------------------------------------------- macOS wired limit


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([16, 24, 32, 36, 48, 64, 96, 128, 192]), st.sampled_from(list(LADDER)),
       st.sampled_from([4096, 16384, 32768, 65536]))
def test_a_suggested_raise_is_never_below_the_current_limit(ram, quant, ctx):
    model = fake_model({quant: LADDER[quant]}, kv_token_layer=2048)
    profile = mac(ram=ram)
    p = Planner(model, PlanRequest(ctx=ctx, kv_fixed=True), estimate_fn=fake_estimate,
                facts_fn=FakeFacts.from_headers).plan(profile)
    change = p.recommendation.cap_change
    if change is None:
        return
    assert change.cap_bytes >= change.default_bytes
    assert change.cap_bytes >= int(0.84 * ram * GIB) // GIB * GIB  # never under macOS 26's own default


def test_the_macos_default_is_an_assumption_with_both_versions(field_models):
    code, d = _json(str(field_models["qwen3-32b"]), "--device", "apple-m4-max-64g", "--ctx", "8k")
    line = " ".join(d["device"]["assumptions"])
    assert "before macOS 26" in line and "84%" in line


# --------------------------------------------------------------------------- flags


def test_bandwidth_flags_exist_on_plan_and_change_the_estimate(field_models):
    m = str(field_models["gpt-oss-120b"])
    base = _json(m, "--device", "rtx-4090", "--ctx", "32k")[1]["recommendation"]["est_tps"]
    ddr4 = _json(m, "--device", "rtx-4090", "--ctx", "32k", "--host-bandwidth", "51.2")[1]["recommendation"]["est_tps"]
    fast = _json(m, "--device", "rtx-4090", "--ctx", "32k", "--bandwidth", "2000")[1]["recommendation"]["est_tps"]
    assert ddr4 < 0.8 * base and fast >= base


def _documented_flags(title: str) -> set[str]:
    """The flags docs/cli.md's "Flags by command" lists under one command's heading."""
    text = (ROOT / "docs" / "cli.md").read_text()
    m = re.search(rf"^### `{re.escape(title)}`.*?(?=^### )", text, re.S | re.M)
    assert m, title
    return set(re.findall(r"`(--[a-z][a-z0-9-]+)`", m.group(0)))


def _accepted_flags(*path: str) -> set[str]:
    import click

    from planner.cli import cli

    cmd: click.Command = cli
    for name in path:
        cmd = cmd.get_command(click.Context(cmd), name)  # type: ignore[union-attr]
    return {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts if o.startswith("--")}


@pytest.mark.parametrize("title,path", [
    ("memfit plan", ("plan",)), ("memfit estimate", ("estimate",)), ("memfit inspect", ("inspect",)),
    ("memfit doctor", ("doctor",))])
def test_every_documented_flag_is_accepted_and_every_flag_documented(title, path):
    documented, accepted = _documented_flags(title), _accepted_flags(*path)
    accepted -= {"--help"}
    # a flag with several long names is documented by one of them
    missing = {f for f in documented if f not in accepted}
    assert not missing, f"{title} documents {missing} but does not take them"
    assert {f for f in accepted if f not in documented and not _alias_of_documented(f, path, documented)} == set()


def _alias_of_documented(flag: str, path: tuple[str, ...], documented: set[str]) -> bool:
    import click

    from planner.cli import cli

    cmd: click.Command = cli
    for name in path:
        cmd = cmd.get_command(click.Context(cmd), name)  # type: ignore[union-attr]
    for p in cmd.params:
        if isinstance(p, click.Option) and flag in p.opts:
            return any(o in documented for o in p.opts)
    return False


def test_devices_show_takes_what_is_documented():
    text = (ROOT / "docs" / "cli.md").read_text()
    section = re.search(r"^### `memfit devices` and `memfit devices show`.*?(?=^### )", text, re.S | re.M).group(0)
    assert set(re.findall(r"`(--[a-z][a-z0-9-]+)`", section)) <= _accepted_flags("devices", "show") | {"--json"}


def test_gpu_cap_above_the_safe_maximum_is_noted(field_models):
    code, d = _json(str(field_models["qwen3-32b"]), "--device", "apple-m4-max-64g", "--gpu-cap", "62g", "--ctx", "8k")
    assert any("above this profile's safe maximum" in a for a in d["device"]["assumptions"])


def test_contexts_print_as_they_were_typed(field_models):
    out = plan(str(field_models["qwen3-32b"]), "--device", "rtx-4090", "-c", "12.5k").stdout
    assert "12.5k context (12800 tokens)" in " ".join(out.split())
