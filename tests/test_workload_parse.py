"""Workloads as people write them: `MODEL[@CTX]` on the command line and the TOML file, with one
clear line and exit 2 for every mistake (planner/workload.py, planner/cli/plan_workload.py)."""

from __future__ import annotations

import json

import pytest

from planner.testing.clirun import plan
from planner.errors import InputError
from planner.workload import MAX_MODELS, from_cli, load_file, parse_entry, parse_request


# --------------------------------------------------------------------------- MODEL[@CTX]


@pytest.mark.parametrize("text,ref,ctx", [
    ("glm-4.7-flash@198k", "glm-4.7-flash", 198 * 1024),
    ("qwen3-vl-32b:Q5_K_M@24k", "qwen3-vl-32b:Q5_K_M", 24 * 1024),  # the quant stays the reference's :TAG
    ("Qwen/Qwen3-VL-32B-Instruct-GGUF:Q4_K_M@24576", "Qwen/Qwen3-VL-32B-Instruct-GGUF:Q4_K_M", 24576),
    ("unsloth/GLM-4.7-Flash-GGUF@main", "unsloth/GLM-4.7-Flash-GGUF@main", None),  # a Hub revision stays one
    ("unsloth/GLM-4.7-Flash-GGUF@v2@32k", "unsloth/GLM-4.7-Flash-GGUF@v2", 32 * 1024),
    ("./models/x.gguf@0.5m", "./models/x.gguf", 512 * 1024),
    ("ollama:qwen3:32b@8K", "ollama:qwen3:32b", 8192),
    ("gpt-oss:120b@max", "gpt-oss:120b", 0),  # the training context
    ("qwen3-vl-32b", "qwen3-vl-32b", None),
])
def test_model_at_ctx(text, ref, ctx):
    e = parse_entry(text)
    assert (e.ref, e.ctx, e.quant, e.mmproj) == (ref, ctx, [], "auto")


@pytest.mark.parametrize("text,needle", [
    ("glm-4.7-flash@", "nothing after '@'"),
    ("@24k", "no model before '@24k'"),
    ("glm@0.3k", "not a whole number"),
    ("glm@99999m", "larger than"),
    ("   ", "empty model reference"),
])
def test_bad_model_at_ctx_is_one_line(text, needle):
    with pytest.raises(InputError, match=needle) as e:
        parse_entry(text)
    assert "\n" not in e.value.message and e.value.exit_code == 2


def test_the_command_line_keeps_order_and_limits_the_count():
    w = from_cli(["a@8k", "b", "c@max"])
    assert [(m.ref, m.ctx) for m in w.models] == [("a", 8192), ("b", None), ("c", 0)] and not w.together
    with pytest.raises(InputError, match=f"at most {MAX_MODELS}"):
        from_cli([f"m{i}" for i in range(MAX_MODELS + 1)])


def test_one_model_is_the_single_model_plan_and_its_context_is_given_once():
    single = parse_request(("qwen3-vl-32b@24k",), None, False, None)
    assert single.single is not None and single.single.ctx == 24576
    assert parse_request(("qwen3-vl-32b",), None, False, 8192).single.ctx is None  # --ctx applies as before
    with pytest.raises(InputError, match="give it once"):
        parse_request(("qwen3-vl-32b@24k",), None, False, 8192)
    assert parse_request(("a", "b"), None, False, None).single is None
    with pytest.raises(InputError, match="two or more"):
        parse_request(("a",), None, True, None)


# --------------------------------------------------------------------------- the workload file

GOOD = '''
together = true

[[model]]
ref = "glm-4.7-flash"
ctx = "198k"
name = "coding"

[[model]]
ref = "qwen3-vl-32b"
ctx = 24576
quant = ["Q4_K_M", "Q5_K_M"]
mmproj = "none"
revision = "main"
'''


def test_a_workload_file(tmp_path):
    f = tmp_path / "w.toml"
    f.write_text(GOOD)
    w = load_file(f)
    assert w.together and w.source == str(f)
    a, b = w.models
    assert (a.ref, a.ctx, a.label, a.quant) == ("glm-4.7-flash", 198 * 1024, "coding", [])
    assert (b.ref, b.ctx, b.quant, b.mmproj, b.revision, b.label) == (
        "qwen3-vl-32b", 24576, ["Q4_K_M", "Q5_K_M"], "none", "main", "qwen3-vl-32b")
    one = tmp_path / "one.toml"
    one.write_text('[[model]]\nref = "x"\nquant = "Q8_0"\nctx = "max"\n')
    assert load_file(one).models[0].quant == ["Q8_0"] and load_file(one).models[0].ctx == 0


@pytest.mark.parametrize("body,needle", [
    ("[[model]]\nref = \"a\"\nctx = \"24kk\"\n", "model 1 (a): invalid context '24kk'"),
    ("[[model]]\nref = \"a\"\nquants = \"Q4_K_M\"\n", "model 1: unknown key 'quants'"),
    ("[[model]]\nctx = \"24k\"\n", "model 1: no ref"),
    ("[[model]]\nref = \"a\"\n[[model]]\nref = \"b\"\nquant = 4\n", "model 2: quant = 4"),
    ("[[model]]\nref = 3\n", "ref = 3: must be a string"),
    ("[[model]]\nref = \"\"\n", "model 1: ref"),
    ("[[model]]\nref = \"a\"\nctx = true\n", "is not a number of tokens"),
    ("[[model]]\nref = \"a\"\nctx = -5\n", "negative"),
    ("together = \"yes\"\n[[model]]\nref = \"a\"\n", "together = 'yes': use true or false"),
    ("devices = [\"x\"]\n", "unknown key 'devices'"),
    ("model = \"a\"\n", "write each model as a [[model]] table"),
    ("", "names no model"),
    ("[[model]\nref = \"a\"\n", "not valid TOML"),
])
def test_bad_workload_files_are_one_line(tmp_path, body, needle):
    f = tmp_path / "w.toml"
    f.write_text(body)
    with pytest.raises(InputError) as e:
        load_file(f)
    assert needle in e.value.message and str(f) in e.value.message, e.value.message
    assert "\n" not in e.value.message and e.value.exit_code == 2


def test_unreadable_workload_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_file(tmp_path / "missing.toml")
    with pytest.raises(InputError, match="is a directory"):
        load_file(tmp_path)
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe[[model]]")
    with pytest.raises(InputError, match="not UTF-8"):
        load_file(bad)


# --------------------------------------------------------------------------- through the command


def usage_error(*args: str, needle: str) -> None:
    r = plan(*args)
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and len(lines) <= 2 and "Traceback" not in r.output, r.output
    assert needle in r.output, r.output
    j = plan(*args, "--json")
    err = json.loads(j.stdout)["error"]
    assert j.exit_code == 2 and err["kind"] == "usage" and needle in err["message"]


def test_usage_errors_through_plan(tmp_path):
    usage_error("glm@", "qwen@24k", "-d", "ai-max-395-64g", needle="nothing after '@'")
    usage_error("qwen3-vl-32b@24k", "--ctx", "8k", "-d", "ai-max-395-64g", needle="give it once")
    usage_error("--together", "qwen3-vl-32b", "-d", "ai-max-395-64g", needle="two or more")
    usage_error("a@8k", "b@8k", "--quant", "Q4_K_M", "-d", "ai-max-395-64g", needle="--quant applies to one model")
    usage_error("a@8k", "b@8k", "--revision", "main", "-d", "ai-max-395-64g", needle="--revision applies to one model")
    usage_error("a@8k", "b@8k", "--mmproj", str(tmp_path / "p.gguf"), "-d", "ai-max-395-64g",
                needle="--mmproj FILE applies to one model")
    f = tmp_path / "w.toml"
    f.write_text('[[model]]\nref = "a"\n')
    usage_error("--workload", str(f), "b", "-d", "ai-max-395-64g", needle="not both")
    usage_error("--workload", str(tmp_path / "nope.toml"), "-d", "ai-max-395-64g", needle="not found")
    usage_error(*[f"m{i}@4k" for i in range(MAX_MODELS + 1)], "-d", "ai-max-395-64g", needle=f"at most {MAX_MODELS}")
    r = plan("-d", "ai-max-395-64g")
    assert r.exit_code == 2 and "Missing argument" in r.stderr and "plan --help" in r.stderr
