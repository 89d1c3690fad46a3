"""The runtimes memfit plans for, by engine name. A new runtime is a folder beside llamacpp/ with
a class implementing planner.runtime.base.Engine, and one line here."""

from __future__ import annotations

from typing import Protocol

from .base import Engine
from .llamacpp.engine import LlamaCpp


class EngineMaker(Protocol):
    """An engine class: whether `--runtime` text names it, and the engine for that text."""

    def claims(self, runtime_text: str) -> bool: ...

    def __call__(self, runtime_text: str | None, llama_build: int | None) -> Engine: ...


ENGINES: dict[str, EngineMaker] = {"llama.cpp": LlamaCpp}
DEFAULT_ENGINE = "llama.cpp"  # no --runtime, or one no other engine claims (it names what it knows)


def engine_for(runtime_text: str | None, llama_build: int | None = None) -> Engine:
    """--runtime / --llama-build -> the engine that runs the plan, resolved to its app and build."""
    if runtime_text:
        for name, maker in ENGINES.items():
            if name != DEFAULT_ENGINE and maker.claims(runtime_text):
                return maker(runtime_text, llama_build)
    return ENGINES[DEFAULT_ENGINE](runtime_text, llama_build)
