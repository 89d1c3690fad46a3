"""Commands as the user's shell takes them: quoting, line continuation, environment variables for
one command, writing a small text file, and how the Ollama app picks up settings on each OS.

memfit plans for an OS; the commands it prints must paste into that OS's shell. Windows users get
PowerShell by default (Windows Terminal's default), Linux bash, macOS zsh; `--shell` overrides.
Each shell is a row of data plus three small functions, so a new shell is a new row."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Callable, Literal

ShellName = Literal["bash", "zsh", "powershell", "cmd"]
SHELLS: tuple[ShellName, ...] = ("bash", "zsh", "powershell", "cmd")
DEFAULT_SHELL: dict[str, ShellName] = {"windows": "powershell", "linux": "bash", "macos": "zsh"}

# words no shell reads specially (PowerShell and cmd take backslashes literally)
_POSIX_SAFE = re.compile(r"^[\w@%+=:,./-]+$")
_PS_SAFE = re.compile(r"^[\w%+=:,./\\-]+$")  # no @ (splatting) or leading special characters
_CMD_SAFE = re.compile(r"^[\w@+=:,./\\-]+$")  # no % (variables), & | < > ^ ( ) or spaces
_CMD_SPECIAL = re.compile(r"([&|<>^()])")


def _posix_quote(word: str) -> str:
    return word if word and _POSIX_SAFE.match(word) else shlex.quote(word)


def _ps_quote(word: str) -> str:
    """PowerShell: single quotes take everything literally; a quote inside is doubled."""
    return word if word and _PS_SAFE.match(word) else "'" + word.replace("'", "''") + "'"


def _cmd_quote(word: str) -> str:
    """cmd.exe: double quotes keep spaces and & | < > together (a double quote cannot appear in a
    Windows path, and memfit's words hold none)."""
    return word if word and _CMD_SAFE.match(word) else '"' + word.replace('"', "") + '"'


def _posix_env(env: dict[str, str], cmd: str) -> str:
    return " ".join([f"{k}={_posix_quote(v)}" for k, v in env.items()] + [cmd])


def _ps_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ps_env(env: dict[str, str], cmd: str) -> str:
    return "; ".join([f"$env:{k}={_ps_literal(v)}" for k, v in env.items()] + [cmd])


def _cmd_env(env: dict[str, str], cmd: str) -> str:
    # `set "K=V"`: the quotes keep a trailing space out of the value (set K=V && ... would keep it)
    return " && ".join([f'set "{k}={v}"' for k, v in env.items()] + [cmd])


def _posix_write(path: str, lines: list[str]) -> str:
    return f"printf '%s\\n' {' '.join(shlex.quote(x) for x in lines)} > {_posix_quote(path)}"


def _ps_write(path: str, lines: list[str]) -> str:
    return f"Set-Content -Path {_ps_quote(path)} -Value {', '.join(_ps_literal(x) for x in lines)}"


def _cmd_write(path: str, lines: list[str]) -> str:
    echoed = "& ".join("echo " + _CMD_SPECIAL.sub(r"^\1", x) for x in lines)
    return f"({echoed})> {_cmd_quote(path)}"


@dataclass(frozen=True)
class Shell:
    name: ShellName
    continuation: str  # appended to a line that continues on the next
    quote: Callable[[str], str]
    env_run: Callable[[dict[str, str], str], str]  # environment variables for one command
    write_lines: Callable[[str, list[str]], str]  # a text file with these lines
    then: str  # run the next command if this one succeeded


_TABLE: dict[ShellName, Shell] = {
    "bash": Shell("bash", " \\", _posix_quote, _posix_env, _posix_write, " && "),
    "zsh": Shell("zsh", " \\", _posix_quote, _posix_env, _posix_write, " && "),
    "powershell": Shell("powershell", " `", _ps_quote, _ps_env, _ps_write, "; "),
    "cmd": Shell("cmd", " ^", _cmd_quote, _cmd_env, _cmd_write, " && "),
}


def shell(name: str) -> Shell:
    found = next((s for key, s in _TABLE.items() if key == name), None)
    if found is None:
        raise KeyError(name)
    return found


def default_shell(os_: str) -> ShellName:
    return DEFAULT_SHELL.get(os_, "bash")


# How the Ollama app (not a one-off `ollama serve`) takes a setting, per OS: docs.ollama.com/faq
# "How do I configure Ollama server?" (setx / launchctl setenv / a systemd override).
OLLAMA_PERSIST: dict[str, tuple[str, str]] = {
    "windows": ("setx {k} {v}", "then quit Ollama from the taskbar and start it again"),
    "macos": ("launchctl setenv {k} {v}", "then quit the Ollama app and start it again"),
    "linux": ("sudo systemctl edit ollama  # add under [Service]: {env}",
              "then sudo systemctl daemon-reload && sudo systemctl restart ollama"),
}


def ollama_persist_lines(os_: str, env: dict[str, str]) -> list[str]:
    """The lines that make the Ollama app itself use these settings on this OS."""
    how, after = OLLAMA_PERSIST.get(os_, OLLAMA_PERSIST["linux"])
    if "{env}" in how:
        joined = " ".join(f'Environment="{k}={v}"' for k, v in env.items())
        return [how.format(env=joined), after]
    return [how.format(k=k, v=v) for k, v in env.items()] + [after]
