"""The issue-12 fuzz classes (fuzz/fuzz_memfit.py) run a few executions each in the normal suite,
so the harness keeps working; the long runs and their numbers are in docs/fuzzing.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_fuzz_class_runs_clean(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    proc = subprocess.run([sys.executable, str(ROOT / "fuzz" / "fuzz_memfit.py"), "--class", "all",
                           "--executions", "8", "--seconds", "30", "--seed", "12", "--progress", "0",
                           "--memory-mb", "0", "--json", str(out)],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    summaries = json.loads(out.read_text())
    assert [s["class"] for s in summaries] == ["semantic", "shards", "server", "cache", "device"]
    for s in summaries:
        assert s["executions"] == 8, s
        assert (s["crashes"], s["hangs"], s["absurd"]) == (0, 0, 0), s
    assert proc.returncode == 0
