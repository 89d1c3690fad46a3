"""Every command memfit prints pastes into the shell of the OS it plans for (planner/shells.py), and
every llama.cpp flag it prints exists in the build it prints for (planner/runtime/llamacpp/args.py).

bash and zsh lines are checked by `bash -n` and by letting bash expand them; PowerShell and cmd
lines by the quoting rules those shells apply (no PowerShell or cmd on the test machine): a
single-quoted PowerShell word is literal with '' for a quote, a cmd word in double quotes keeps
spaces and & | < >, and each continuation is the line's last character."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from planner.testing import ggufgen
from planner.testing.clirun import plan
from planner.runtime.llamacpp.args import accepts, no_mmap_flag, unknown_flags
from planner.shells import SHELLS, ollama_persist_lines, shell

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots" / "commands"
ODD = "It's 100% $HOME & (v2)"  # a folder name every shell reads specially


@pytest.fixture(scope="module")
def odd_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("shells") / ODD
    d.mkdir()
    shape = ggufgen.ModelShape(n_vocab=32000, n_layer=8, n_embd=1024, n_ff=4096, n_head=8, n_head_kv=8, ctx=8192)
    path = d / "Odd Model-Q4_K_M.gguf"
    ggufgen.write_model(path, "llama", shape)
    return path


def _commands(model: Path, *args: str) -> dict:
    r = plan(str(model), *args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["recommendation"]["commands"]


# --------------------------------------------------------------------------- POSIX shells


def _bash_argv(line: str) -> list[str]:
    out = subprocess.run(["bash", "-c", 'printf "%s\\n" ' + line], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


@pytest.mark.parametrize("sh", ["bash", "zsh"])
def test_posix_lines_parse_and_keep_every_word(odd_model, sh):
    c = _commands(odd_model, "--device", "apple-m4-max-64g", "--shell", sh)
    assert c["shell"] == sh
    for line in [c["llama_server"], c["lm_studio"]["lms"], *[x for x in c["ollama"] if not x.startswith(("note:", "in the session:"))]]:
        subprocess.run(["bash", "-n", "-c", line], check=True)
    argv = _bash_argv(c["llama_server"])
    assert argv[argv.index("-m") + 1] == str(odd_model)
    # the Modelfile line writes the exact path
    writer = next(x for x in c["ollama"] if "Modelfile" in x and "printf" in x)
    body = subprocess.run(["bash", "-c", writer.split(" > Modelfile")[0]], capture_output=True, text=True).stdout
    assert body.splitlines()[0] == f"FROM {odd_model}"


def test_zsh_parses_the_same_lines_where_zsh_exists(odd_model):
    if shutil.which("zsh") is None:
        pytest.skip("zsh is not installed here (bash -n covers the shared syntax)")
    c = _commands(odd_model, "--device", "apple-m4-max-64g")
    subprocess.run(["zsh", "-n", "-c", c["llama_server"]], check=True)


# --------------------------------------------------------------------------- PowerShell


def _ps_words(line: str) -> list[str]:
    """Split a PowerShell command line we emit into its argument values: bare words, and
    single-quoted literals in which '' stands for one quote (about_Quoting_Rules)."""
    words, i = [], 0
    while i < len(line):
        ch = line[i]
        if ch.isspace():
            i += 1
        elif ch == "'":
            j, buf = i + 1, []
            while True:
                if line[j] == "'" and j + 1 < len(line) and line[j + 1] == "'":
                    buf.append("'")
                    j += 2
                elif line[j] == "'":
                    break
                else:
                    buf.append(line[j])
                    j += 1
            words.append("".join(buf))
            i = j + 1
        else:
            j = i
            while j < len(line) and not line[j].isspace():
                j += 1
            word = line[i:j]
            assert not re.search(r"[`$@&|;(){}\"']", word.split("=", 1)[0]) or word.startswith("$env:"), word
            words.append(word)
            i = j
    return words


def test_powershell_is_the_windows_default_and_its_words_survive(odd_model):
    c = _commands(odd_model, "--device", "ai-max-395-64g")
    assert c["shell"] == "powershell"
    argv = _ps_words(c["llama_server"])
    assert argv[argv.index("-m") + 1] == str(odd_model)
    serve = c["ollama"][0]
    assert re.fullmatch(r"(\$env:OLLAMA_[A-Z_]+='[^']*'; )+ollama serve", serve), serve
    writer = next(x for x in c["ollama"] if "Set-Content" in x)
    values = writer.split(" -Value ", 1)[1].split("; ollama create")[0]
    lines = _ps_words(values.replace("', '", "' '"))
    assert lines[0] == f"FROM {odd_model}" and lines[1].startswith("PARAMETER num_ctx ")
    assert c["ollama_app"][0].startswith("setx OLLAMA_") and "taskbar" in c["ollama_app"][-1]


def test_powershell_continuation_is_the_last_character(odd_model, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    text = plan(str(odd_model), "--device", "ai-max-395-64g").stdout
    block = text[text.index("llama.cpp"):text.index("LM Studio")]
    cont = [line for line in block.splitlines() if line.endswith("`")]
    assert cont, block
    assert all(line.endswith(" `") and not line.endswith("` ") for line in cont)


# --------------------------------------------------------------------------- cmd.exe


def _cmd_words(line: str) -> list[str]:
    """cmd.exe argument words as we emit them: double-quoted (spaces and & | < > ( ) kept) or bare."""
    return [m.group(1) if m.group(1) is not None else m.group(2)
            for m in re.finditer(r'"([^"]*)"|(\S+)', line)]


def test_cmd_lines_quote_and_escape(odd_model):
    c = _commands(odd_model, "--device", "ai-max-395-64g", "--shell", "cmd")
    argv = _cmd_words(c["llama_server"])
    assert argv[argv.index("-m") + 1] == str(odd_model)
    assert re.fullmatch(r'(set "OLLAMA_[A-Z_]+=[^"]*" && )+ollama serve', c["ollama"][0])
    writer = next(x for x in c["ollama"] if "> Modelfile" in x)
    echoed = writer[1:writer.index(")> Modelfile")]
    first = echoed.split("& echo ")[0].removeprefix("echo ")
    assert re.sub(r"\^(.)", r"\1", first) == f"FROM {odd_model}"  # ^ escapes & ( ) for echo
    assert not re.search(r"(?<!\^)[&()](?!\s*echo)", first.replace("& echo", ""))


# --------------------------------------------------------------------------- other OSes' app settings


def test_the_ollama_app_is_told_how_to_take_settings_on_each_os():
    env = {"OLLAMA_FLASH_ATTENTION": "1", "OLLAMA_CONTEXT_LENGTH": "32768"}
    assert ollama_persist_lines("windows", env)[:2] == ["setx OLLAMA_FLASH_ATTENTION 1", "setx OLLAMA_CONTEXT_LENGTH 32768"]
    assert ollama_persist_lines("macos", env)[0] == "launchctl setenv OLLAMA_FLASH_ATTENTION 1"
    linux = ollama_persist_lines("linux", env)
    assert "systemctl edit ollama" in linux[0] and 'Environment="OLLAMA_CONTEXT_LENGTH=32768"' in linux[0]


# --------------------------------------------------------------------------- flags per build


def _flags(line: str) -> list[str]:
    return [w for w in line.split() if w.startswith("-") and not w.lstrip("-").isdigit()]


def test_the_flag_table_knows_the_load_mode_change():
    assert accepts("--no-mmap", 9453) is True and accepts("--no-mmap", 11003) is False
    assert accepts("--load-mode", 10488) is True and accepts("-lm", 9993) is False
    assert no_mmap_flag(None) == ["-lm", "none"] and no_mmap_flag(9453) == ["--no-mmap"]


@pytest.mark.parametrize("args", [
    ("--device", "ai-max-395-64g", "--ctx", "8k"),
    ("--device", "rtx-4090", "--ctx", "8k", "--kv", "q8_0"),
    ("--device", "ai-max-395-64g", "--ctx", "8k", "--no-mmap"),
    ("--device", "apple-m4-max-64g", "--ctx", "8k", "--mmproj", "none"),
    ("--device", "rtx-4090", "--ctx", "8k", "--backend", "cpu"),
])
def test_every_printed_flag_exists_in_the_build_printed_for(odd_model, args):
    for build in (None, "9453", "10488"):
        extra = ("--llama-build", build) if build else ()
        c = _commands(odd_model, *args, *extra, "--shell", "bash")
        assert unknown_flags(_flags(c["llama_server"]), int(build) if build else None) == [], c["llama_server"]


def test_no_mmap_follows_the_build(odd_model):
    new = _commands(odd_model, "--device", "ai-max-395-64g", "--no-mmap", "--shell", "bash")["llama_server"]
    old = _commands(odd_model, "--device", "ai-max-395-64g", "--no-mmap", "--llama-build", "9453", "--shell", "bash")
    assert "-lm none" in new and "--no-mmap" not in new
    assert "--no-mmap" in old["llama_server"] and "-lm" not in old["llama_server"].split()


# --------------------------------------------------------------------------- snapshots


SNAPSHOT_CASES = {
    "windows-powershell": ("--device", "ai-max-395-64g"),
    "windows-cmd": ("--device", "ai-max-395-64g", "--shell", "cmd"),
    "linux-bash": ("--device", "ai-max-395-128g-minipc", "--os", "linux"),
    "macos-zsh": ("--device", "apple-m4-max-64g"),
    "spark-bash": ("--device", "dgx-spark"),
}


@pytest.mark.parametrize("case", sorted(SNAPSHOT_CASES))
def test_emitted_commands_match_their_snapshot(tmp_path, case):
    """The lines for each OS, for a fixed model at a fixed path: a change to any of them shows in
    review (MEMFIT_UPDATE_SNAPSHOTS=1 rewrites the files)."""
    model = Path("/models") / "Snap Model-Q4_K_M.gguf"
    real = tmp_path / "Snap Model-Q4_K_M.gguf"
    shape = ggufgen.ModelShape(n_vocab=32000, n_layer=8, n_embd=1024, n_ff=4096, n_head=8, n_head_kv=8, ctx=8192)
    ggufgen.write_model(real, "llama", shape)
    c = _commands(real, *SNAPSHOT_CASES[case], "--ctx", "8k")
    text = json.dumps(c, indent=2, sort_keys=True).replace(str(real), str(model))
    path = SNAPSHOTS / f"{case}.json"
    if os.environ.get("MEMFIT_UPDATE_SNAPSHOTS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    assert path.exists(), f"no snapshot {path.name}: run with MEMFIT_UPDATE_SNAPSHOTS=1"
    assert text + "\n" == path.read_text()


def test_every_shell_has_the_same_parts():
    for name in SHELLS:
        sh = shell(name)
        assert sh.continuation.startswith(" ") and len(sh.continuation) == 2
        assert sh.quote("plain-word.gguf") == "plain-word.gguf"
        assert sh.quote("a b") != "a b"
