"""Ollama model names: `[host/][namespace/]model[:tag]` with Ollama's defaults and character rules.
Apart from the store and registry code (ollama.py) so that reference parsing can tell an Ollama
name without importing the resolver's backends."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import ResolveError

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
REGISTRY_ENV = "MEMFIT_OLLAMA_REGISTRY"
_PART_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class OllamaName:
    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> "OllamaName":
        """[host/][namespace/]model[:tag], with Ollama's defaults and character rules."""
        head, tag = _split_tag(text)
        parts = head.split("/")
        if len(parts) > 3 or not parts[-1]:
            raise _bad_name(text)
        host = parts[0] if len(parts) == 3 else DEFAULT_HOST
        namespace = parts[-2] if len(parts) >= 2 else DEFAULT_NAMESPACE
        model, tag = parts[-1], tag or DEFAULT_TAG
        for kind, part in (("model", model), ("tag", tag), ("namespace", namespace), ("host", host)):
            if not _valid_part(kind, part):
                raise _bad_name(text)
        return cls(host.lower(), namespace, model, tag)

    @property
    def display(self) -> str:
        """The shortest name `ollama run` takes (Ollama's DisplayShortest): default host,
        namespace and the `latest` tag left out."""
        out = self.model
        if self.namespace != DEFAULT_NAMESPACE or self.host != DEFAULT_HOST:
            out = f"{self.namespace}/{out}"
        if self.host != DEFAULT_HOST:
            out = f"{self.host}/{out}"
        return out if self.tag.lower() == DEFAULT_TAG else f"{out}:{self.tag}"

    @property
    def full(self) -> str:
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    def registry_base(self) -> str:
        if self.host == DEFAULT_HOST:
            return (os.environ.get(REGISTRY_ENV) or f"https://{DEFAULT_HOST}").rstrip("/")
        return f"https://{self.host}"

    def library_page(self) -> str:
        if self.host != DEFAULT_HOST:
            return f"https://{self.host}"
        path = self.model if self.namespace == DEFAULT_NAMESPACE else f"{self.namespace}/{self.model}"
        return f"https://ollama.com/library/{path}/tags" if self.namespace == DEFAULT_NAMESPACE \
            else f"https://ollama.com/{path}/tags"


def _split_tag(text: str) -> tuple[str, str]:
    """(name, tag) of `[scheme://]name[:tag]`; the tag "" when none is given."""
    raw = text.strip()
    for scheme in ("https://", "http://"):
        raw = raw.removeprefix(scheme)
    head, sep, tag = raw.rpartition(":")
    if not sep or "/" in tag:
        return raw, ""
    if not tag:
        raise _bad_name(text)  # "qwen3:" names no tag
    return head, tag


def _valid_part(kind: str, part: str) -> bool:
    """Ollama's character rules for one part of a name (no dot in a namespace)."""
    return bool(_PART_RE.match(part)) and len(part) <= 128 and not (kind == "namespace" and "." in part)


def _bad_name(text: str) -> ResolveError:
    return ResolveError(f"{text!r} is not an Ollama model name",
                        hint="write [namespace/]model[:tag], e.g. ollama:qwen3:32b or ollama:gpt-oss:120b")


def looks_like_name(text: str) -> bool:
    """True when text parses as an Ollama name with an explicit tag (`qwen3:32b`)."""
    if ":" not in text:
        return False
    try:
        OllamaName.parse(text)
    except ResolveError:
        return False
    return True
