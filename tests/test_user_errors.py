"""A demanding user's bad and odd input, end to end through the real exit-code guard.

Every failure must end in one `error:` message (plus an optional `hint:`; each wrapped to the
terminal width with indented continuation lines, read back by clirun.logical_lines) on stderr and the exit
code docs/cli.md promises (1 = error, 2 = usage, 130 = interrupted), never a traceback or an
`internal error`; with --json the same failure is a JSON object on stdout. Odd but valid input
(unknown architecture, encoder and recurrent models, long or hostile names) must give sane output.
Models are tiny generated GGUFs (sparse files); Hub cases use the local fake Hub. No network.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

from planner.testing import estimator_models as em
from planner.testing import ggufgen
from planner.testing.clirun import logical_lines, memfit, plan
from planner.testing.fakehub import model_repo_files
from planner.testing.ggufgen import tokenizer_metadata, typed, write_gguf
from planner.reader import parse_file

TINY = ggufgen.ModelShape()


# --------------------------------------------------------------------------- helpers


def one_error(result, code: int, *needles: str) -> str:
    """The result failed with `code` in the documented form; returns the error line."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = logical_lines(result.stderr.strip())
    assert 1 <= len(lines) <= 2, lines
    assert lines[0].startswith("error: ") and (len(lines) == 1 or lines[1].startswith("hint: ")), lines
    text = "\n".join(logical_lines(result.output))
    assert "Traceback" not in text and "internal error" not in text and "Usage:" not in text, text
    for n in needles:
        assert n.lower() in text.lower(), (n, text)
    return lines[0]


def json_error(result, code: int, kind: str | None = None) -> dict:
    assert result.exit_code == code, (result.exit_code, result.output)
    payload = json.loads(result.stdout)["error"]
    assert payload["exit_code"] == code and "internal error" not in payload["message"]
    if kind is not None:
        assert payload["kind"] == kind, payload
    return payload


def ok(result, code: int = 0) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output and "internal error" not in result.output
    return result.stdout


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("user_errors")
    out: dict[str, Path] = {}
    out["llama"] = ggufgen.write_model(root / "llama-Q4_K_M.gguf", "llama")[0]
    (root / "empty").mkdir()
    (root / "empty" / "README.md").write_text("no models here\n")
    out["empty"] = root / "empty"
    (root / "proj").mkdir()
    ggufgen.write_model(root / "proj" / "mmproj-F16.gguf", "clip")
    out["proj"] = root / "proj"
    (root / "split").mkdir()
    shards = ggufgen.write_model(root / "split" / "big-Q4_K_M.gguf", "llama", shards=3)
    shards[1].unlink()
    out["split"] = root / "split"
    out["shard1"] = shards[0]
    out["text"] = root / "notes.txt"
    out["text"].write_text("just some notes\n")
    out["png"] = root / "picture.png"
    out["png"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    out["mamba"] = root / "mamba2-Q8_0.gguf"
    em.mamba2_like(out["mamba"])
    out["bert"] = _bert(root / "bert-F16.gguf")
    out["foo"] = _unknown_arch_llama_keys(root / "foo-Q4_K_M.gguf", out["llama"])
    (root / "mixed").mkdir()
    ggufgen.write_model(root / "mixed" / "a-Q4_K_M.gguf", "llama")
    ggufgen.write_model(root / "mixed" / "b-Q8_0.gguf", "qwen3moe")
    out["mixed"] = root / "mixed"
    (root / "broken").mkdir()
    ggufgen.write_model(root / "broken" / "m-Q4_K_M.gguf", "llama")
    (root / "broken" / "m-Q8_0.gguf").write_bytes(out["llama"].read_bytes()[:3000])  # an interrupted download
    (root / "broken" / "mmproj-F16.gguf").write_bytes(b"GGUF\x03\x00")  # and a broken projector
    out["broken"] = root / "broken"
    return out


def _bert(path: Path) -> Path:
    """A MiniLM-shaped BERT embedding model (an encoder: no KV cache, no output head)."""
    E, L = 384, 2
    meta = {"general.architecture": "bert", "general.name": "test-bert",
            "bert.context_length": typed(512, V.UINT32), "bert.embedding_length": typed(E, V.UINT32),
            "bert.block_count": typed(L, V.UINT32), "bert.feed_forward_length": typed(1536, V.UINT32),
            "bert.attention.head_count": typed(12, V.UINT32), "bert.attention.causal": False}
    meta.update(tokenizer_metadata(256, merges=False))
    t = [("token_embd.weight", (E, 256), Q.F16), ("token_types.weight", (E, 2), Q.F32),
         ("position_embd.weight", (E, 512), Q.F16), ("token_embd_norm.weight", (E,), Q.F32)]
    for i in range(L):
        p = f"blk.{i}."
        t += [(p + "attn_q.weight", (E, E), Q.F16), (p + "attn_k.weight", (E, E), Q.F16),
              (p + "attn_v.weight", (E, E), Q.F16), (p + "attn_output.weight", (E, E), Q.F16),
              (p + "attn_output_norm.weight", (E,), Q.F32), (p + "ffn_up.weight", (E, 1536), Q.F16),
              (p + "ffn_down.weight", (1536, E), Q.F16), (p + "layer_output_norm.weight", (E,), Q.F32)]
    return write_gguf(path, meta, t)


def _unknown_arch_llama_keys(path: Path, llama: Path) -> Path:
    """general.architecture = "foo" over llama tensors, hyperparameters still under `llama.*`
    (so `foo.block_count` and friends are missing)."""
    meta, tensors = ggufgen.model_spec("llama")
    meta["general.architecture"] = "foo"
    return write_gguf(path, meta, tensors)


def _patched(src: Path, dst: Path, edit) -> Path:
    """A copy of src's header with edit(bytearray) applied, sparse to the original size."""
    data = bytearray(src.read_bytes()[:64 * 1024])
    edit(data)
    with open(dst, "wb") as f:
        f.write(data)
        f.truncate(src.stat().st_size)
    return dst


# --------------------------------------------------------------------------- local files


def test_missing_path(tmp_path):
    for cmd in (["inspect"], ["estimate"], ["plan", "-d", "rtx-4090"]):
        one_error(memfit(cmd[0], str(tmp_path / "nope.gguf"), *cmd[1:]), 1, "no such file")
        json_error(memfit(cmd[0], str(tmp_path / "nope"), *cmd[1:], "--json"), 1, "resolve")


def test_directory_without_models_and_with_only_a_projector(models):
    one_error(memfit("inspect", str(models["empty"])), 1, "no GGUF model files")
    line = one_error(memfit("estimate", str(models["proj"])), 1, "hint: add the model")
    assert "only vision projectors (mmproj-F16.gguf)" in line
    json_error(plan(str(models["proj"]), "-d", "rtx-4090", "--json"), 1, "resolve")


@pytest.mark.parametrize("which, magic", [("text", "'just'"), ("png", "'.PNG'")])
def test_non_gguf_files_are_read_and_refused_by_their_magic(models, which, magic):
    line = one_error(memfit("inspect", str(models[which])), 1, "not a GGUF file")
    assert magic in line
    one_error(plan(str(models[which]), "-d", "rtx-4090"), 1, "not a GGUF file")


def test_a_real_gguf_with_another_extension_is_read(models, tmp_path):
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(models["llama"].read_bytes())
    assert "architecture      llama" in ok(memfit("inspect", str(renamed)))


@pytest.mark.parametrize("cut", [0, 3, 4, 23, 24, 100, 1000, 5000, -40, -1])
def test_truncated_header_is_one_clear_line_everywhere(models, tmp_path, cut):
    src = models["llama"].read_bytes()
    data_start = parse_file(models["llama"]).data_offset
    n = cut if cut >= 0 else data_start + cut
    bad = tmp_path / "cut-Q4_K_M.gguf"
    bad.write_bytes(src[:n])
    for cmd in (["inspect"], ["estimate"], ["plan", "-d", "ai-max-395-64g"]):
        one_error(memfit(cmd[0], str(bad), *cmd[1:]), 1)
        json_error(memfit(cmd[0], str(bad), *cmd[1:], "--json"), 1, "gguf")


def test_unknown_ggml_type_and_value_type_are_named(models, tmp_path):
    def bad_tensor_type(b: bytearray) -> None:
        i = b.rfind(b"token_embd.weight") + len("token_embd.weight")
        n_dims = struct.unpack_from("<I", b, i)[0]
        struct.pack_into("<I", b, i + 4 + 8 * n_dims, 99)

    def bad_value_type(b: bytearray) -> None:
        struct.pack_into("<I", b, b.find(b"general.name") + len("general.name"), 77)

    t = _patched(models["llama"], tmp_path / "t-Q4_K_M.gguf", bad_tensor_type)
    one_error(memfit("estimate", str(t)), 1, "unknown ggml type id 99", "token_embd.weight")
    v = _patched(models["llama"], tmp_path / "v-Q4_K_M.gguf", bad_value_type)
    one_error(plan(str(v), "-d", "rtx-4090"), 1, "unknown value type 77")


def test_split_model_with_a_missing_shard(models):
    for ref in (models["split"], models["shard1"]):
        one_error(memfit("inspect", str(ref)), 1, "big-Q4_K_M-00002-of-00003.gguf", "every shard")


def test_directory_of_unrelated_models_is_refused(models):
    one_error(plan(str(models["mixed"]), "-d", "rtx-4090"), 1, "2 different models", "llama", "qwen3moe")
    ok(memfit("inspect", str(models["mixed"]), "--quant", "Q8_0"))  # one of them, picked: fine


def test_broken_download_next_to_good_files_is_skipped_with_a_note(models):
    out = ok(memfit("inspect", str(models["broken"])))
    assert "Q4_K_M" in out and "note: skipped m-Q8_0.gguf" in out and "note: skipped mmproj-F16.gguf" in out
    assert "skipped m-Q8_0.gguf" in ok(plan(str(models["broken"]), "-d", "rtx-4090"))


# --------------------------------------------------------------------------- odd models


def test_unknown_architecture_warns_and_is_sized_conservatively(models):
    out = ok(memfit("estimate", str(models["foo"]), "-c", "4k"))
    assert "architecture 'foo' is unknown" in out and "'foo.block_count' is missing" in out
    assert "estimate ±50%" in out  # the KV cache is labelled as a conservative estimate
    data = json.loads(ok(memfit("estimate", str(models["foo"]), "-c", "4k", "--json")))
    assert data["kv_bytes"] > 0  # not silently zero: every layer K and V at least n_embd wide
    assert "unknown to memfit" in ok(memfit("inspect", str(models["foo"])))
    assert "! architecture 'foo' is unknown" in ok(plan(str(models["foo"]), "-d", "rtx-4090", "-c", "4k"))
    one_error(memfit("estimate", str(models["foo"])), 1, "no training context", "-c")


def test_encoder_and_recurrent_models(models):
    out = ok(memfit("estimate", str(models["bert"])))
    assert "none: this architecture keeps no KV cache" in out and "2 without KV cache" in out
    assert "encoder (embedding) model" in out
    rec = json.loads(ok(plan(str(models["bert"]), "-d", "rtx-4090", "--json")))["recommendation"]
    assert rec["commands"]["llama_server"].endswith("--embeddings")
    out = ok(memfit("estimate", str(models["mamba"]), "-c", "8k"))
    assert "fixed state per sequence" in out and "64 recurrent" in out
    data = json.loads(ok(memfit("estimate", str(models["mamba"]), "-c", "8k", "--json")))
    assert data["kv_bytes"] == 0 and data["recurrent_bytes"] > 0
    ok(plan(str(models["mamba"]), "-d", "ai-max-395-64g", "-c", "8k"))


# --------------------------------------------------------------------------- flags


def test_estimate_flags_that_do_not_apply_or_are_out_of_range(models):
    m = str(models["llama"])
    one_error(memfit("estimate", m, "-np", "100000"), 2, "1 to 256")  # was a ZeroDivisionError
    one_error(memfit("estimate", m, "--mmproj", "/no/such/mmproj.gguf"), 2, "no such file", "--mmproj auto")
    one_error(memfit("estimate", m, "-c", "-5"), 2, "invalid context")
    assert "--n-cpu-moe/--cpu-moe ignored" in ok(memfit("estimate", m, "--n-cpu-moe", "4"))
    assert "beyond the model's training context" in ok(memfit("estimate", m, "-c", "10m"))


@pytest.mark.parametrize("args, code, needle", [
    (["-d", "rtx-4090", "--carveout", "8g"], 2, "no BIOS carve-out"),
    (["-d", "ai-max-395-64g", "--carveout", "100g"], 2, "largest option that leaves the OS 2 GiB: 48"),
    (["-d", "ai-max-395-64g", "--ram", "3g", "--carveout", "2g"], 2, "largest option that leaves the OS 2 GiB: 512"),
    (["-d", "rtx-4090", "--os", "macos"], 2, "no macos entry"),
    (["-d", "ai-max-395-64g", "--ram", "0"], 2, "at least 1 GiB"),
    (["-d", "ai-max-395-64g", "--gpu-cap", "0"], 2, "more than 0"),
    (["-d", "ai-max-395-64g", "-c", "-3"], 2, "context"),
    (["-d", "ai-max-395-64g", "-np", "0"], 2, "-np"),
    (["-d", "ai-max-395-64g", "-ctv", "q8_0", "-fa", "off"], 2, "flash attention"),
    (["-d", "ai-max-395-64g", "--frobnicate"], 2, "no such option"),
    (["-d", "no-such-device"], 1, "unknown device"),
    (["-d", "ai-max-395-64g", "-q", "Q9_K"], 1, "no Q9_K variant"),
])
def test_plan_flag_errors(models, args, code, needle):
    line = one_error(plan(str(models["llama"]), *args), code, needle)
    payload = json_error(plan(str(models["llama"]), *args, "--json"), code)
    assert payload["message"] in line


def test_click_usage_errors_are_one_line_with_a_pointer_to_help(models):
    r = memfit("plan")
    one_error(r, 2, "missing argument", "memfit plan --help")
    one_error(memfit("devices", "show"), 2, "memfit devices show --help")
    one_error(memfit("frobnicate"), 2, "no such command")


def test_plan_odd_but_valid_overrides(models):
    ok(plan(str(models["llama"]), "-d", "ai-max-395-64g", "--ram", "1t"))
    ok(plan(str(models["llama"]), "-d", "ai-max-395-64g", "-c", "1"))
    assert "not among the firmware options" in ok(plan(str(models["llama"]), "-d", "ai-max-395-64g",
                                                       "--carveout", "7g", "--json"))


# --------------------------------------------------------------------------- device files, doctor


def test_device_files_with_syntax_errors_and_wrong_fields(tmp_path):
    shipped = Path(__file__).resolve().parents[1] / "profiles" / "rtx-4090.toml"
    bad_syntax = tmp_path / "syntax.toml"
    bad_syntax.write_text('id = "x"\nname = "unterminated\n')
    one_error(memfit("devices", "show", str(bad_syntax)), 1, "TOML syntax error", "line 2")
    negative = tmp_path / "neg.toml"
    negative.write_text(shipped.read_text().replace('vram_bytes = "24 GiB"', "vram_bytes = -5"))
    one_error(memfit("devices", "show", str(negative)), 1, "vram_bytes", "negative")
    typo = tmp_path / "typo.toml"
    typo.write_text(shipped.read_text().replace("bandwidth_gbps = 1008.0", "bandwith_gbps = 1008.0"))
    json_error(memfit("devices", "show", str(typo), "--json"), 1, "device")


def test_doctor_record_into_an_unwritable_place(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_error(memfit("doctor", "--record", str(blocker / "sub")), 2, "--record")


# --------------------------------------------------------------------------- names and output


def test_hostile_and_long_names_cannot_touch_the_terminal(tmp_path):
    meta, tensors = ggufgen.model_spec("llama")
    meta["general.name"] = "Evil\x1b[2J\x1b[31mRED\x07\rname\twith\nbreaks " + "x" * 300
    path = write_gguf(tmp_path / "evil-Q4_K_M.gguf", meta, tensors)
    for args in (["inspect", str(path)], ["estimate", str(path)]):
        out = ok(memfit(*args))
        assert "\x1b" not in out and "\x07" not in out and "\r" not in out
        lines = out.splitlines()
        # the model row: its first line and the indented lines its value wraps onto
        row = [lines[0]] + list(itertools.takewhile(lambda line: line.startswith(" "), lines[1:]))
        first = " ".join(line.strip() for line in row)
        assert "Evil?[2J?[31mRED? name with breaks x" in first  # one entry, controls shown as '?'
        assert "…" in first and first.count("x") < 150  # cut with an ellipsis
    data = json.loads(ok(memfit("inspect", str(path), "--json")))
    assert data["name"] == meta["general.name"]  # JSON keeps the exact value (escaped)


def test_launch_commands_survive_odd_file_names(tmp_path):
    d = tmp_path / "we ird"
    d.mkdir()
    stem = "It's 100% $HOME-" + "Very-Long-Name-" * 8
    ggufgen.write_model(d / f"{stem}-Q4_K_M.gguf", "llama")
    rec = json.loads(ok(plan(str(d), "-d", "rtx-4090", "--shell", "bash", "--json")))["recommendation"]["commands"]
    argv = subprocess.run(["bash", "-c", 'printf "%s\\n" ' + rec["llama_server"]],
                          capture_output=True, text=True).stdout.splitlines()
    assert argv[argv.index("-m") + 1] == str(d / f"{stem}-Q4_K_M.gguf")
    create = next(x for x in rec["ollama"] if "ollama create" in x)
    name = create.split("ollama create ", 1)[1].split(" ", 1)[0]
    assert len(name) <= 80 and name.endswith("-q4_k_m") and "--" not in name
    subprocess.run(["bash", "-c", create.split(" && ")[0]], cwd=tmp_path, check=True)
    assert (tmp_path / "Modelfile").read_text().splitlines()[0] == f"FROM {d / f'{stem}-Q4_K_M.gguf'}"


# --------------------------------------------------------------------------- the Hub


@pytest.fixture
def hub_repos(fake_hub, tmp_path_factory):
    root = tmp_path_factory.mktemp("user_errors_hub")
    files = model_repo_files(root, "M", ["Q4_K_M", "Q8_0"])
    fake_hub.add_repo("o/m-GGUF", files)
    fake_hub.add_repo("o/gated-GGUF", files, gated=True)
    return fake_hub


def test_hub_failures_are_one_line(hub_repos, monkeypatch):
    one_error(memfit("inspect", "o/missing-GGUF"), 1, "not found", "owner/repo")
    json_error(plan("o/missing-GGUF", "-d", "rtx-4090", "--json"), 1, "hub")
    one_error(memfit("inspect", "o/gated-GGUF"), 1, "gated", "HF_TOKEN")
    one_error(memfit("inspect", "o/m-GGUF", "--revision", "no-such-branch"), 1, "revision 'no-such-branch'")
    one_error(memfit("estimate", "o/m-GGUF:Q9_K"), 1, "no Q9_K variant", "Q4_K_M")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    json_error(plan("o/m-GGUF", "-d", "rtx-4090", "--json"), 1, "hub")
    one_error(memfit("inspect", "o/m-GGUF"), 1, "HF_HUB_OFFLINE", "network")


def test_no_network_at_all(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("MEMFIT_HTTP_RETRIES", "0")
    one_error(memfit("inspect", "o/m-GGUF"), 1, "cannot connect", "HF_HUB_OFFLINE")


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_inside_a_command_is_exit_130(models, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("planner.resolver.resolve", interrupted)  # estimate and plan import it late
    monkeypatch.setattr("planner.cli.inspect_cmd.resolve", interrupted)
    r = memfit("inspect", str(models["llama"]))
    assert r.exit_code == 130 and "error: interrupted" in r.stderr and "Traceback" not in r.output
    r = plan(str(models["llama"]), "-d", "rtx-4090", "--json")
    assert r.exit_code == 130 and json.loads(r.stdout)["error"]["kind"] == "interrupted"


def test_sigint_during_a_hub_read_exits_130_at_once_and_the_cache_stays_usable(hub_repos):
    """A real process, a real SIGINT while two header reads hang on a slow Hub: exit 130 within
    seconds (not after the reads time out), no traceback, and the next run works."""
    hub_repos.add_fault("latency", delay=30, where="file", times=2)
    env = dict(os.environ, MEMFIT_HTTP_TIMEOUT="60", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "planner", "inspect", "o/m-GGUF"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not hub_repos.file_records() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert time.monotonic() - sent < 5
    assert err.strip() == "error: interrupted" and "Traceback" not in err
    hub_repos.clear_faults()
    assert "Q8_0" in ok(memfit("inspect", "o/m-GGUF"))


def test_click_abort_is_not_an_interrupt(monkeypatch, models):
    def aborted(*a, **k):
        raise click.exceptions.Abort()

    monkeypatch.setattr("planner.cli.inspect_cmd.resolve", aborted)
    assert memfit("inspect", str(models["llama"])).exit_code == 1


def test_encoder_plan_has_no_decode_speed_and_min_tps_does_not_filter_it(models):
    # an embedding model generates no tokens: no t/s estimate anywhere, and the note says why
    out = ok(plan(str(models["bert"]), "-d", "ai-max-395-64g"))
    assert "no t/s estimate: bert is an embedding (encoder) model" in out.replace("\n    ", " ")
    assert " t/s" not in out.split("Recommendation:")[1].splitlines()[0]  # the headline has no speed
    data = json.loads(ok(plan(str(models["bert"]), "-d", "ai-max-395-64g", "--json")))
    rec = data["recommendation"]
    assert rec["est_tps"] is None and rec["est_tps_at_ctx"] is None and data["model"]["decodes"] is False
    assert all(v["est_tps"] is None for v in data["variants"])
    assert all(o["est_tps"] is None for o in data["carveout_options"])
    # --min-tps cannot filter a model without a decode speed: it is ignored, with a warning, exit 0
    data = json.loads(ok(plan(str(models["bert"]), "-d", "rtx-4090", "--min-tps", "50", "--json")))
    assert data["fits"] and data["recommendation"]["meets_min_tps"]
    assert any(w.startswith("--min-tps 50 ignored: bert is an embedding") for w in data["warnings"])
    # a model that generates tokens still gets its estimate
    data = json.loads(ok(plan(str(models["llama"]), "-d", "rtx-4090", "-c", "4k", "--json")))
    assert data["recommendation"]["est_tps"] and data["model"]["decodes"] is True
