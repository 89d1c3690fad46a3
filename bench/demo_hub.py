"""Try the central command on this machine without network: serve real-shaped model repos from a
local stand-in for the Hugging Face Hub and print the HF_ENDPOINT to export.

    python -m bench.demo_hub [--port 8765] [--dir DIR]
    # in another shell, with the printed endpoint:
    export HF_ENDPOINT=http://127.0.0.1:8765
    memfit plan qwen3-vl-32b --device ai-max-395-64g --ctx 24k

The repos are the ones the end-to-end tests use (planner/testing/data/*.json: the real GGUF metadata and
tensor layout of each model, the quant mixes llama.cpp's own quantizer picks, and for Qwen3-VL the
real-shaped vision projector), written as sparse files: exact headers, a hole where the weights
would be, so a "65 GB" BF16 file costs a few MB of disk. GLM-4.7-Flash (validation/field/models,
section A's coding model) is served too, for the workload `plan glm-4.7-flash@198k qwen3-vl-32b@24k`.
Each is served under the repo its short name resolves to first (planner/data/aliases.toml). Stop
with Ctrl-C.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

from planner.testing import realmodels
from planner.testing.fakehub import FakeHub, _Handler

# spec name -> the short names that resolve to its repo (shown in the usage lines)
SPECS = {"qwen3-vl-32b": "qwen3-vl-32b", "qwen3-30b-a3b": "qwen3-30b-a3b-instruct-2507"}
FIELD_SPECS = ("glm-4.7-flash",)  # validation/field/models specs (make_specs.sparse_gguf)


class DemoHub(FakeHub):
    """The test suite's fake Hub with the Hub side on a fixed port, so the printed endpoint can be
    reused across runs (the CDN it redirects to keeps a random port)."""

    hub_port = 0

    def _make_server(self, role: str) -> ThreadingHTTPServer:
        if role != "hub" or not self.hub_port:
            return super()._make_server(role)
        fake = self

        class Handler(_Handler):
            server_role = role

        Handler.fake = fake
        srv = ThreadingHTTPServer(("127.0.0.1", self.hub_port), Handler)
        srv.daemon_threads = True
        return srv


def serve(root: Path, port: int) -> FakeHub:
    DemoHub.hub_port = port
    hub = DemoHub()
    for name in SPECS:
        spec = realmodels.load_spec(name)
        hub.add_repo(spec["repo"], realmodels.repo_files(spec, root / name))
    from validation.field.make_specs import load_spec, sparse_gguf

    for name in FIELD_SPECS:
        spec = load_spec(name)
        files = [sparse_gguf(name, q, root / name) for q in spec["mixes"]]
        hub.add_repo(spec["repo"], {f.name: f for f in files})
    return hub


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--port", type=int, default=8765, help="Hub port on 127.0.0.1 (0 = any free port)")
    ap.add_argument("--dir", type=Path, default=None, help="where to write the sparse GGUFs (default: a temp dir)")
    args = ap.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="memfit-demo-hub-"))
    try:
        hub = serve(root, args.port)
    except OSError as e:
        print(f"cannot listen on 127.0.0.1:{args.port} ({e}); try --port 0", file=sys.stderr)
        return 1
    print(f"serving {', '.join(hub.repos)} from {root}")
    print("\nIn another shell:\n")
    print(f"  export HF_ENDPOINT={hub.url}")
    print("  export MEMFIT_CACHE_DIR=$(mktemp -d)   # optional: keep the demo out of your header cache")
    for spec, alias in SPECS.items():
        print(f"  memfit plan {alias} --device ai-max-395-64g --ctx 24k")
    print("  memfit plan qwen3-vl-32b -d ai-max-395-64g -d ai-max-395-128g-minipc --ctx 24k")
    print("  memfit plan glm-4.7-flash@198k qwen3-vl-32b@24k -d ai-max-395-64g -d ai-max-395-128g-minipc")
    print("\nCtrl-C to stop.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        hub.close()
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
