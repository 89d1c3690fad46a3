"""The installed package must carry every module and data file: pyproject lists packages
explicitly, so a new subpackage or data file that is not listed would work from a checkout and
break after `pip install .`."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_dir(name: str, mapping: dict[str, str]) -> Path:
    if name in mapping:
        return ROOT / mapping[name]
    parent, _, leaf = name.rpartition(".")
    return _package_dir(parent, mapping) / leaf


def test_every_subpackage_is_listed():
    cfg = _setuptools()
    listed = set(cfg["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "planner").rglob("__init__.py")}
    found = {f for f in found if "__pycache__" not in f}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def test_every_data_file_is_shipped():
    cfg = _setuptools()
    mapping = cfg.get("package-dir", {})
    globs = cfg.get("package-data", {})
    missing = []
    for pkg in cfg["packages"]:
        folder = _package_dir(pkg, mapping)
        for f in folder.iterdir():
            if f.is_file() and f.suffix not in (".py", ".pyc"):
                if not any(fnmatch.fnmatch(f.name, g) for g in globs.get(pkg, [])):
                    missing.append(str(f.relative_to(ROOT)))
    assert missing == [], "add package-data globs for these files"


def test_profiles_ship_as_planner_profiles():
    cfg = _setuptools()
    assert cfg["package-dir"]["planner.profiles"] == "profiles"
    assert list((ROOT / "profiles").glob("*.toml")), "no device profiles"
