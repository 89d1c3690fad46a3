"""Where the probes read from: a root directory and a command runner.

Live runs read / and run real commands (with a timeout). Tests and `memfit doctor --root DIR`
read a recorded tree: DIR/proc/meminfo, DIR/sys/..., and DIR/.memfit-commands.json with the
recorded command outputs ({"system": "linux", "commands": {"nvidia-smi": {"stdout": "...",
"returncode": 0}}}); a command missing from that file behaves as "not installed".
`RecordingEnv` copies everything a live probe read into such a tree (`memfit doctor --record`).
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

COMMANDS_FILE = ".memfit-commands.json"
TIMEOUT_S = 15.0
MAX_READ = 1 << 20  # sysfs/proc files are small; never read more than 1 MiB


@dataclass
class CommandResult:
    stdout: str
    returncode: int = 0

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _system_name(raw: str) -> str:
    return {"linux": "linux", "darwin": "macos", "windows": "windows"}.get(raw.lower(), "unknown")


@dataclass
class ProbeEnv:
    """Read files under `root` and run commands; every failure returns None (never raises)."""

    root: Path = Path("/")
    system: str = field(default_factory=lambda: _system_name(platform.system()))
    recorded: dict[str, dict] | None = None  # command outputs for a recorded tree (None = run for real)
    live: bool = True

    @classmethod
    def from_root(cls, root: str | Path) -> "ProbeEnv":
        """A recorded machine: files under root, commands from root/.memfit-commands.json."""
        r = Path(root)
        data: dict = {}
        cmd_file = r / COMMANDS_FILE
        if cmd_file.is_file():
            try:
                data = json.loads(cmd_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
        system = str(data.get("system") or ("linux" if (r / "proc" / "meminfo").is_file() else "unknown"))
        return cls(root=r, system=system, recorded=dict(data.get("commands") or {}), live=False)

    def path(self, p: str) -> Path:
        return self.root / p.lstrip("/")

    def read(self, p: str) -> str | None:
        try:
            with open(self.path(p), "rb") as f:
                data = f.read(MAX_READ)
        except (OSError, ValueError):
            return None
        return data.decode("utf-8", errors="replace")

    def exists(self, p: str) -> bool:
        try:
            return self.path(p).exists()
        except OSError:
            return False

    def glob(self, directory: str, pattern: str) -> list[str]:
        """Paths (as absolute strings inside the probed system) matching pattern in directory."""
        base = self.path(directory)
        try:
            names = sorted(x.name for x in base.glob(pattern))
        except OSError:
            return []
        return [f"{directory.rstrip('/')}/{n}" for n in names]

    def run(self, key: str, argv: list[str]) -> CommandResult | None:
        """Run a command (live) or look up its recorded output by `key`; None = not available."""
        if self.recorded is not None:
            rec = self.recorded.get(key)
            if rec is None:
                return None
            return CommandResult(str(rec.get("stdout", "")), int(rec.get("returncode", 0)))
        if not self.live or shutil.which(argv[0]) is None:
            return None
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S,
                                  errors="replace", stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            return None
        return CommandResult(proc.stdout, proc.returncode)


class RecordingEnv(ProbeEnv):
    """A live ProbeEnv that copies every file read and command run into `target` (a fixture tree)."""

    def __init__(self, target: str | Path) -> None:
        super().__init__()
        self.target = Path(target)
        self.commands: dict[str, dict] = {}

    def read(self, p: str) -> str | None:
        text = super().read(p)
        if text is not None:
            dest = self.target / p.lstrip("/")
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(text, encoding="utf-8")
            except OSError:
                pass
        return text

    def glob(self, directory: str, pattern: str) -> list[str]:
        found = super().glob(directory, pattern)
        for p in found:  # keep the directory shape so the recorded glob finds the same entries
            try:
                if self.path(p).is_dir():
                    (self.target / p.lstrip("/")).mkdir(parents=True, exist_ok=True)
            except OSError:
                pass
        return found

    def exists(self, p: str) -> bool:
        ok = super().exists(p)
        if ok and self.path(p).is_dir():
            try:
                (self.target / p.lstrip("/")).mkdir(parents=True, exist_ok=True)
            except OSError:
                pass
        return ok

    def run(self, key: str, argv: list[str]) -> CommandResult | None:
        res = super().run(key, argv)
        if res is not None:
            self.commands[key] = {"stdout": res.stdout, "returncode": res.returncode}
        return res

    def save(self) -> Path:
        self.target.mkdir(parents=True, exist_ok=True)
        out = self.target / COMMANDS_FILE
        out.write_text(json.dumps({"system": self.system, "commands": self.commands}, indent=2, allow_nan=False) + "\n",
                       encoding="utf-8")
        return out
