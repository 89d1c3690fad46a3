"""Start-up of the console scripts: what only a memfit process (not a program importing
planner) may set up for itself."""

from __future__ import annotations


def skip_pydantic_plugins() -> None:
    """For the memfit and plan processes only (the console scripts call it; importing planner as a
    library changes nothing): pydantic looks for plugins (entry points of every installed
    distribution) when it builds its first model, importing importlib.metadata for it: ~10 ms of
    every command's start for plugins a CLI does not use. Stand in for its loader with one that finds none; any other name of the real
    loader is still served from it (loaded on first use). MEMFIT_PYDANTIC_PLUGINS=1 keeps pydantic's."""
    import os
    import sys
    import types

    name = "pydantic.plugin._loader"
    if name in sys.modules or os.environ.get("MEMFIT_PYDANTIC_PLUGINS"):
        return
    stub = types.ModuleType(name)

    def get_plugins() -> tuple[()]:
        return ()

    def real_attr(attr: str) -> object:
        if attr.startswith("__"):  # the import system asks for __path__ and the like: a plain module has none
            raise AttributeError(attr)
        import importlib.util

        spec = importlib.util.find_spec("pydantic.plugin")
        loc = next(iter(spec.submodule_search_locations or ())) if spec else None
        if loc is None:
            raise AttributeError(attr)
        real_spec = importlib.util.spec_from_file_location(name, os.path.join(loc, "_loader.py"))
        if real_spec is None or real_spec.loader is None:
            raise AttributeError(attr)
        real = importlib.util.module_from_spec(real_spec)
        real_spec.loader.exec_module(real)
        return getattr(real, attr)

    stub.get_plugins = get_plugins  # type: ignore[attr-defined]
    stub.__getattr__ = real_attr  # type: ignore[attr-defined]
    sys.modules[name] = stub

