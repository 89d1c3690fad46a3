"""The header cache: round trips, damaged entries are detected and replaced, atomic writes,
inter-process safety (two processes, and a process killed with SIGKILL mid-write)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from planner.testing import ggufgen
from planner.testing.fakehub import model_repo_files
from planner.cache import Cache, cache_root, header_from_dict, header_to_dict, hub_header_key, local_header_key
from planner.header import GGUFHeader, SkippedArray, TensorInfo
from planner.reader import parse_file
from planner.resolver import resolve

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _header() -> GGUFHeader:
    return GGUFHeader(
        version=3,
        metadata={
            "general.architecture": "llama", "general.name": "ünïcode ✓", "llama.block_count": 32,
            "llama.rope.freq_base": 500000.0, "llama.attention.layer_norm_rms_epsilon": 1e-5,
            "flag": True, "neg": -7, "big": 2**63 - 1, "nan": float("nan"), "inf": float("-inf"),
            "llama.attention.head_count_kv": [8, 8, 0, 8], "nested": [[1, 2], [3]], "strs": ["a", "b"],
            "tokenizer.ggml.tokens": SkippedArray(element_type=8, count=151936),
            "raw": b"\x00\xff",
        },
        tensors=[TensorInfo("token_embd.weight", (4096, 151936), 12, 0, 350_000_000),
                 TensorInfo("output_norm.weight", (4096,), 0, 350_000_000, 16384)],
        alignment=32, data_offset=6_000_000, file_size=5_000_000_000, source="hf://o/r@abc/x.gguf",
    )


def _same(a: GGUFHeader, b: GGUFHeader) -> bool:
    return json.dumps(header_to_dict(a), sort_keys=True) == json.dumps(header_to_dict(b), sort_keys=True)


def test_header_round_trip_is_exact(tmp_path: Path) -> None:
    h = _header()
    back = header_from_dict(json.loads(json.dumps(header_to_dict(h))))
    assert _same(h, back)
    assert back.metadata["tokenizer.ggml.tokens"] == SkippedArray(8, 151936)
    assert back.metadata["raw"] == b"\x00\xff"
    assert isinstance(back.metadata["llama.rope.freq_base"], float)
    assert back.metadata["big"] == 2**63 - 1
    assert back.tensors[0].shape == (4096, 151936)
    c = Cache(tmp_path)
    assert c.put_header("k", h)
    got = c.get_header("k")
    assert got is not None and _same(h, got)


def test_round_trip_of_a_real_header(tmp_path: Path) -> None:
    p = ggufgen.write_model(tmp_path / "m.gguf", "gemma3")[0]
    h = parse_file(p)
    c = Cache(tmp_path / "c")
    key = local_header_key(p)
    c.put_header(key, h)
    got = c.get_header(key)
    assert got is not None
    assert got.metadata == h.metadata and got.tensors == h.tensors and got.data_offset == h.data_offset


def _entry_path(c: Cache, kind: str, key: str) -> Path:
    return c._path(kind, key)


@pytest.mark.parametrize("damage", ["truncate", "flip_payload", "flip_checksum", "empty", "garbage",
                                    "wrong_length", "append"])
def test_damaged_entry_is_a_miss_and_is_deleted(tmp_path: Path, damage: str) -> None:
    c = Cache(tmp_path)
    c.put_header("key", _header())
    p = _entry_path(c, "headers", "key")
    raw = p.read_bytes()
    nl = raw.index(b"\n")
    damaged = {
        "truncate": raw[: len(raw) // 2],
        "flip_payload": raw[:-10] + bytes([raw[-10] ^ 0x01]) + raw[-9:],
        "flip_checksum": raw[: nl - 1] + (b"0" if raw[nl - 1:nl] != b"0" else b"1") + raw[nl:],
        "empty": b"",
        "garbage": os.urandom(500),
        "wrong_length": raw.replace(b" %d " % (len(raw) - nl - 1), b" %d " % (len(raw) - nl), 1),
        "append": raw + b"x",
    }[damage]
    p.write_bytes(damaged)
    assert c.get_header("key") is None
    assert not p.exists()
    assert c.stats.corrupt == 1


def test_entry_under_another_key_is_rejected(tmp_path: Path) -> None:
    """A file that is intact but was written for another key (hash collision, copied files)."""
    c = Cache(tmp_path)
    c.put_header("a", _header())
    _entry_path(c, "headers", "b").parent.mkdir(parents=True, exist_ok=True)
    _entry_path(c, "headers", "b").write_bytes(_entry_path(c, "headers", "a").read_bytes())
    assert c.get_header("b") is None
    assert c.get_header("a") is not None


def test_valid_checksum_but_foreign_shape_is_rejected(tmp_path: Path) -> None:
    c = Cache(tmp_path)
    c.put("headers", "k", {"not": "a header"})
    assert c.get_header("k") is None
    assert c.stats.corrupt == 1


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path: Path) -> None:
    c = Cache(tmp_path)
    for i in range(5):
        c.put_header("k", _header())
    files = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith(".tmp")]
    assert len([f for f in files if f.endswith(".entry")]) == 1


def test_stale_temp_files_are_swept(tmp_path: Path) -> None:
    c = Cache(tmp_path)
    c.put_header("k", _header())
    d = _entry_path(c, "headers", "k").parent
    stale = d / ".leftover.entry.abc.tmp"
    stale.write_bytes(b"half an entry")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = d / ".fresh.entry.def.tmp"
    fresh.write_bytes(b"being written right now")
    c.put_header("k", _header())  # every write sweeps its directory
    assert not stale.exists()
    assert fresh.exists()


def test_unwritable_cache_does_not_fail_the_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    c = Cache(blocker / "cache")
    assert c.put_header("k", _header()) is False
    assert c.get_header("k") is None
    with c.lock("k"):  # no lock possible either: proceeds
        pass
    assert c.stats.write_errors == 1


def test_cache_root_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEMFIT_CACHE_DIR", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "x"
    monkeypatch.delenv("MEMFIT_CACHE_DIR")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert cache_root() == tmp_path / "hf" / "memfit"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "huggingface" / "memfit"


def test_keys_separate_commits_contents_and_local_files(tmp_path: Path) -> None:
    assert hub_header_key("o/r", "a.gguf", commit="c1", oid="x") == hub_header_key("o/r", "a.gguf", commit="c2", oid="x")
    assert hub_header_key("o/r", "a.gguf", commit="c1", oid=None) != hub_header_key("o/r", "a.gguf", commit="c2", oid=None)
    p = tmp_path / "f.gguf"
    p.write_bytes(b"x")
    k1 = local_header_key(p)
    os.utime(p, ns=(1, 1))
    assert local_header_key(p) != k1


def test_local_file_change_is_not_served_from_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMFIT_CACHE_DIR", str(tmp_path / "cache"))
    p = tmp_path / "m-Q4_K_M.gguf"
    ggufgen.write_model(p, "qwen2", ggufgen.ModelShape(n_layer=2))
    assert resolve(str(p)).variants[0].headers.metadata["qwen2.block_count"] == 2  # type: ignore[union-attr]
    ggufgen.write_model(p, "qwen2", ggufgen.ModelShape(n_layer=3))
    os.utime(p, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert resolve(str(p)).variants[0].headers.metadata["qwen2.block_count"] == 3  # type: ignore[union-attr]


# --- processes ----------------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import os, sys, time
    sys.path[:0] = [{tests!r}, {root!r}]
    import planner.cache as cache
    marker, ref, hang_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    real_fsync = os.fsync
    calls = [0]
    def fsync(fd):
        import stat
        if stat.S_ISREG(os.fstat(fd).st_mode):
            calls[0] += 1
        if calls[0] == hang_at:          # the entry's bytes are in the temp file, not yet renamed
            open(marker, "w").write(str(calls[0]))
            time.sleep(120)
        real_fsync(fd)
    cache.os.fsync = fsync
    from planner.resolver import resolve
    m = resolve(ref)
    print(",".join(v.quant for v in m.variants))
""")


def _child_env(fake_hub, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({k: os.environ[k] for k in os.environ if k.startswith(("HF_", "MEMFIT_"))})
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT)])
    return env


@pytest.fixture(scope="module")
def small_repo_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cache_repo")
    return model_repo_files(root, "M", ["Q4_K_M", "Q8_0"], shape=ggufgen.ModelShape(n_vocab=5000))


@pytest.mark.parametrize("hang_at", [1, 2, 3], ids=["listing", "ref", "header"])
def test_kill_9_mid_write_then_next_run_recovers(fake_hub, small_repo_files, tmp_path: Path, hang_at: int) -> None:
    """A run killed with SIGKILL while writing a cache entry (listing, ref or header) leaves at
    most a temp file; the next run never reads it as an entry and completes normally."""
    fake_hub.add_repo("org/M-GGUF", small_repo_files)
    marker = tmp_path / "marker"
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(tests=str(TESTS), root=str(ROOT)))
    proc = subprocess.Popen([sys.executable, str(script), str(marker), "org/M-GGUF", str(hang_at)],
                            env=_child_env(fake_hub, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert marker.exists(), proc.communicate(timeout=5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    temps = list(cache_root().rglob("*.tmp"))
    assert temps, "the child should have died with a temp file in flight"
    # the next run (this process) completes, with correct headers
    fake_hub.reset_stats()
    m = resolve("org/M-GGUF")
    assert [v.quant for v in m.variants] == ["Q4_K_M", "Q8_0"]
    for v in m.variants:
        assert v.headers is not None and v.headers.shards[0].data_offset == parse_file(small_repo_files[v.files[0]]).data_offset
    # and a third run is fully warm: everything is now cached and valid
    fake_hub.clear_faults()
    fake_hub.reset_stats()
    resolve("org/M-GGUF")
    assert fake_hub.request_count() == 0


def test_two_processes_fill_the_cache_once(fake_hub, small_repo_files, tmp_path: Path) -> None:
    """Two cold runs at the same time: both succeed, entries stay valid, and thanks to the file
    lock each file's header is fetched once, not twice."""
    fake_hub.add_repo("org/M-GGUF", small_repo_files)
    # a slow Hub keeps both processes in flight at the same time
    fake_hub.add_fault("latency", where="any", delay=0.4, times=-1)
    code = ("import sys; from planner.resolver import resolve; "
            "m = resolve('org/M-GGUF'); print(','.join(v.quant for v in m.variants))")
    env = _child_env(fake_hub, tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert all(o[0].strip() == "Q4_K_M,Q8_0" for o in outs)
    listing_calls = [r for r in fake_hub.records if r.path.startswith("/api/models/")]
    resolves = [r for r in fake_hub.records if "/resolve/" in r.path]
    assert len(listing_calls) == 1
    assert len({r.path for r in resolves}) == 2 and len(resolves) == 2
    fake_hub.clear_faults()
    fake_hub.reset_stats()
    resolve("org/M-GGUF")
    assert fake_hub.request_count() == 0
