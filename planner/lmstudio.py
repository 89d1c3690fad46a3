"""LM Studio's models folder as references: `lmstudio:publisher/repo[:QUANT]`, `lmstudio:repo`.

LM Studio keeps downloads as <models>/<publisher>/<repo>/<file>.gguf, the Hugging Face repo's
layout (lmstudio.ai/docs, "Import models": ~/.lmstudio/models/publisher/model/model-file.gguf).
The folder is, first hit wins:
1. $MEMFIT_LMSTUDIO_MODELS (memfit's override; the tests use it);
2. `downloadsFolder` in LM Studio's settings.json (the "Models Directory" a user chose in
   My Models), in LM Studio's home (below) or its app-data folder;
3. <LM Studio home>/models, the home being the path in ~/.lmstudio-home-pointer when that file
   exists (a moved installation writes it), else ~/.lmstudio (%USERPROFILE%\\.lmstudio on Windows);
4. ~/.cache/lm-studio/models (LM Studio before 0.3).
The model directory found is then read like any local directory (planner.resolver): variants by
quant, shards joined, `mmproj*` files as projectors.
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from pathlib import Path

from .errors import ResolveError

ENV = "MEMFIT_LMSTUDIO_MODELS"


def _home() -> Path:
    pointer = Path.home() / ".lmstudio-home-pointer"
    try:
        text = pointer.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return Path(text).expanduser() if text else Path.home() / ".lmstudio"


def _settings_files(home: Path) -> list[Path]:
    """settings.json in LM Studio's home, then in its per-OS app-data folder (older versions)."""
    return [home / "settings.json"] + _app_data_settings()


def _app_data_settings() -> list[Path]:
    """settings.json in the per-OS app-data folder."""
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA")
        return [Path(appdata) / "LM Studio" / "settings.json"] if appdata else []
    if sys.platform == "darwin":
        return [Path.home() / "Library" / "Application Support" / "LM Studio" / "settings.json"]
    return [Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "LM Studio" / "settings.json"]


def _downloads_folder(files: list[Path]) -> Path | None:
    return next((folder for folder in map(_downloads_folder_in, files) if folder is not None), None)


def _downloads_folder_in(f: Path) -> Path | None:
    """The downloads folder one settings file names (None: unreadable, or none named)."""
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    folder = data.get("downloadsFolder") if isinstance(data, dict) else None
    if isinstance(folder, str) and folder.strip():
        return Path(folder.strip()).expanduser()
    return None


def models_dirs() -> list[Path]:
    """LM Studio models folders that exist, in the order above."""
    env = os.environ.get(ENV)
    if env:
        return [Path(env).expanduser()]
    home = _home()
    candidates = [_downloads_folder(_settings_files(home)), home / "models", Path.home() / ".cache" / "lm-studio" / "models"]
    return _existing_dirs(candidates)


def _existing_dirs(candidates: list[Path | None]) -> list[Path]:
    """The candidates that are directories, each once, in order."""
    out: list[Path] = []
    for c in candidates:
        if c is not None and c.is_dir() and c not in out:
            out.append(c)
    return out


def _children(d: Path) -> list[Path]:
    try:
        return sorted(c for c in d.iterdir() if c.is_dir() and not c.name.startswith("."))
    except OSError:
        return []


def installed() -> list[str]:
    """publisher/repo of every model folder (for suggestions)."""
    return [f"{pub.name}/{repo.name}" for root in models_dirs() for pub in _children(root) for repo in _children(pub)]


def find_model(name: str) -> tuple[Path, str]:
    """The folder of `publisher/repo` (or a `repo` one publisher has), case-insensitive, and its
    publisher/repo name as LM Studio shows it."""
    roots = models_dirs()
    if not roots:
        raise ResolveError("no LM Studio models folder found (looked for ~/.lmstudio/models, the folder in LM "
                           "Studio's settings and ~/.cache/lm-studio/models)",
                           hint=f"set {ENV} to your LM Studio models folder (My Models shows it), or give the path")
    parts = _name_parts(name)
    hits = [hit for root in roots for hit in _matches(root, parts)]
    if len(hits) == 1 or (hits and len(parts) == 2):
        return hits[0]
    raise _not_one(name, hits, roots)


def _not_one(name: str, hits: list[tuple[Path, str]], roots: list[Path]) -> ResolveError:
    """A bare repo name in several publishers' folders, or in none."""
    if len(hits) > 1:
        return ResolveError(f"lmstudio:{name} is in several publishers' folders: "
                            + ", ".join(h[1] for h in hits[:5]), hint="write lmstudio:publisher/repo")
    return ResolveError(f"no LM Studio model {name!r} in {', '.join(str(r) for r in roots)}", hint=_suggestion(name))


def _name_parts(name: str) -> list[str]:
    """`publisher/repo` or `repo` as its folder names."""
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if not parts or len(parts) > 2:
        raise ResolveError(f"lmstudio:{name}: use lmstudio:publisher/repo[:QUANT] or lmstudio:repo",
                           hint="the names are the folders under the models folder, as My Models shows them")
    return parts


def _matches(root: Path, parts: list[str]) -> list[tuple[Path, str]]:
    """The repo folders under `root` named parts[-1] (under publisher parts[0] when given)."""
    publishers = [pub for pub in _children(root) if len(parts) == 1 or pub.name.lower() == parts[0].lower()]
    return [(repo, f"{pub.name}/{repo.name}") for pub in publishers for repo in _children(pub)
            if repo.name.lower() == parts[-1].lower()]


def _suggestion(name: str) -> str:
    """The closest installed names, else how many there are."""
    have = installed()
    close = difflib.get_close_matches(name.lower(), [h.lower() for h in have], n=3, cutoff=0.5)
    shown = [h for h in have if h.lower() in close]
    if shown:
        return f"did you mean {', '.join('lmstudio:' + h for h in shown)}?"
    return f"{len(have)} model folder(s) there" + (f", e.g. lmstudio:{have[0]}" if have else "")
