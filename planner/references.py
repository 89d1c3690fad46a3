"""What a model reference names, read without touching the network (planner/resolver.py resolves it).

First match wins: `ollama:` / `lmstudio:` prefixes, an existing local path, a Hub repo (owner/repo,
hf.co/..., a Hub URL), a bare Ollama name:tag, a short name from planner/data/aliases.toml. An
existing local path always wins over a Hub name; write hf.co/owner/repo to force the Hub.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import ResolveError
from .ollama_names import looks_like_name
from .sources import path_is
from .variants import quant_tag_from_name


class _Hub:
    """planner.hub, imported on first use: a local file needs none of the network side."""

    def __getattr__(self, name: str) -> object:
        from . import hub as real

        globals()["hub"] = real
        return getattr(real, name)


hub = _Hub()


RefKind = Literal["local", "hub", "alias", "ollama", "lmstudio"]


@dataclass
class ParsedRef:
    kind: RefKind
    text: str
    path: Path | None = None
    repo: str | None = None
    name: str | None = None  # alias
    tag: str | None = None
    revision: str | None = None
    file: str | None = None  # a specific file inside the repo (blob/resolve URLs)
    prefixed: bool = True  # ollama: the reference said `ollama:` (False: a bare name:tag)


_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*$")
_HUB_HOSTS = ("huggingface.co", "hf.co", "www.huggingface.co")
_ALIAS_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*$")
# Hub URL tails: /tree/REV (a revision), /blob/REV/file and /resolve/REV/file (a file in it)
_REVISION_TAILS = ("tree", "blob", "resolve")
_FILE_TAILS = ("blob", "resolve")

# app prefixes: `ollama:qwen3:32b`, `lmstudio:publisher/repo[:QUANT]` (name = what follows)
_APP_PREFIXES: dict[str, Literal["ollama", "lmstudio"]] = {"ollama:": "ollama", "lmstudio:": "lmstudio"}


def split_tag(text: str) -> tuple[str, str | None]:
    """`name:TAG` -> (name, TAG); a colon inside a path is no tag."""
    if ":" in text:
        head, tag = text.rsplit(":", 1)
        if tag and "/" not in tag:
            return head, tag
    return text, None


def parse_reference(ref: str) -> ParsedRef:
    """Classify a reference without touching the network."""
    text = ref.strip()
    if not text:
        raise ResolveError("empty model reference", hint="give a .gguf path, owner/repo or a short name")
    parsed = _app_reference(text) or _local_reference(text) or _hub_reference(text)
    return parsed if parsed is not None else _short_reference(text)


def _app_reference(text: str) -> ParsedRef | None:
    prefix = next((p for p in _APP_PREFIXES if text.lower().startswith(p)), None)
    if prefix is None:
        return None
    kind = _APP_PREFIXES[prefix]
    rest = text[len(prefix):].strip()
    if not rest:
        raise ResolveError(f"{text!r} names no model",
                           hint="e.g. ollama:qwen3:32b or lmstudio:lmstudio-community/Qwen3-32B-GGUF")
    if kind == "lmstudio":
        name, tag = split_tag(rest)
        return ParsedRef(kind, text, name=name, tag=tag)
    return ParsedRef(kind, text, name=rest)


def _local_reference(text: str) -> ParsedRef | None:
    expanded = Path(text).expanduser()
    return ParsedRef("local", text, path=expanded) if path_is(Path.exists, expanded) else None


def _hub_reference(text: str) -> ParsedRef | None:
    rest = _strip_hub_prefix(text)
    if rest is not None or _looks_like_repo(text):
        return _parse_hub(text, text if rest is None else rest)
    return None


def _short_reference(text: str) -> ParsedRef:
    """What is neither a path nor a repo: an Ollama name:tag or a short name."""
    if text.startswith(("/", "./", "../", "~")) or text.lower().endswith(".gguf") or "\\" in text:
        raise ResolveError(f"no such file or directory: {text}",
                           hint="check the path; for a Hub repo write owner/repo")
    name, tag = split_tag(text)
    if tag is not None and _is_ollama_name(name, tag):
        return ParsedRef("ollama", text, name=text, prefixed=False)
    if _ALIAS_RE.match(name):
        return ParsedRef("alias", text, name=name.lower(), tag=tag)
    raise ResolveError(f"cannot understand the model reference {text!r}",
                       hint="use a .gguf path, a directory, owner/repo[:QUANT] or a short name like qwen3-32b")


def _is_ollama_name(name: str, tag: str) -> bool:
    """`qwen3:32b`, `gpt-oss:120b`: a name:tag that is not a short name memfit knows with a quant
    tag (`qwen3-vl-32b:Q4_K_M`) reads as an Ollama name."""
    if not looks_like_name(f"{name}:{tag}"):
        return False
    if name.lower() in load_aliases():
        return quant_tag_from_name(tag + ".gguf") is None
    return True


def _strip_hub_prefix(text: str) -> str | None:
    """The part after a Hub URL / hf.co prefix, or None when text has no such prefix."""
    if text.startswith("hf://"):
        return text[5:]
    m = re.match(r"^(?:https?://)?([^/]+)/(.*)$", text)
    if not m:
        return None
    host = m.group(1).lower()
    endpoint_host = (hub.NetConfig.from_env().endpoint.split("://", 1)[-1]).lower()
    if host in _HUB_HOSTS or (text.startswith(("http://", "https://")) and host == endpoint_host):
        return m.group(2).removeprefix("models/")
    return None


def _looks_like_repo(text: str) -> bool:
    head, _ = split_tag(text)
    head = head.split("@", 1)[0]
    return bool(_REPO_RE.match(head))


def _parse_hub(text: str, rest: str) -> ParsedRef:
    parts = rest.split("?", 1)[0].split("#", 1)[0].rstrip("/").split("/")
    if len(parts) < 2:
        raise ResolveError(f"{text!r} does not name a Hub repository", hint="use owner/repo")
    owner, name = parts[0], parts[1]
    revision, file = _hub_url_tail(text, parts[2:])
    name, tag = split_tag(name)
    if "@" in name:
        name, revision = name.split("@", 1)
    if file is not None:
        file, file_tag = split_tag(file)
        tag = tag or file_tag
    repo = f"{owner}/{name}"
    if not _REPO_RE.match(repo):
        raise ResolveError(f"{repo!r} is not a valid Hub repository id", hint="use owner/repo")
    return ParsedRef("hub", text, repo=repo, tag=tag, revision=revision, file=file)


def _hub_url_tail(text: str, tail: list[str]) -> tuple[str | None, str | None]:
    """(revision, file) of a URL's /tree/REV, /blob/REV/file or /resolve/REV/file."""
    if not tail:
        return None, None
    if tail[0] not in _REVISION_TAILS or len(tail) < 2:
        raise ResolveError(f"cannot read the Hub URL {text!r}",
                           hint="use owner/repo, owner/repo:QUANT or a /tree/, /blob/ or /resolve/ URL")
    file = "/".join(tail[2:]) if tail[0] in _FILE_TAILS and len(tail) > 2 else None
    return tail[1], file


# --- aliases --------------------------------------------------------------------------------------


def load_aliases() -> dict[str, list[str]]:
    """Short name -> repos (official first), from planner/data/aliases.toml."""
    import tomllib

    from .data import read

    data = tomllib.loads(read("aliases.toml").decode("utf-8"))
    return {str(k).lower(): [str(r) for r in v] for k, v in data.get("aliases", {}).items()}


def unknown_alias(name: str, aliases: dict[str, list[str]]) -> ResolveError:
    close = difflib.get_close_matches(name, list(aliases), n=3, cutoff=0.6)
    hint = "use a Hub repo as owner/repo (e.g. unsloth/Qwen3-32B-GGUF) or a local .gguf path"
    if close:
        hint = f"did you mean {', '.join(close)}? Otherwise " + hint
    return ResolveError(f"unknown model name '{name}'", hint=hint)
