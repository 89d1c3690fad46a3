"""`memfit estimate MODEL`: what llama.cpp will allocate, component by component and per device.

Flags carry llama.cpp's own names and defaults. The defaults mirror llama-server (b11434), the
program people serve models with (llama-cli runs the same server code):
  -c 0 (the model's training context), -b 2048, -ub 512, -fa auto, -ctk/-ctv f16,
  -np auto = 4 slots sharing one unified KV cache (tools/server/server.cpp), logits reserved for one
  token per slot (n_outputs_max = n_parallel, server-context.cpp), -ngl all, mmap on.
`--tool fit-params` switches to llama-fit-params/libllama defaults instead (1 sequence, logits
reserved for the whole batch), which is what validation/ compares against.

`--runtime llama.cpp@N|ollama[@V]|lmstudio[@V]` (or `--llama-build N`) says which llama.cpp the app
runs and which defaults the app passes (planner/runtime/llamacpp/apps.py, planner/data/runtimes.toml); flags
given on the command line win over the app's defaults. Without either, the default runtime is
conservative over the llama.cpp builds current apps ship (b11434's rules, logits reserved for the
whole ubatch as builds before b9464 do); the report states which runtime was assumed.
A vision projector is sized by default when the model has one (the file llama-server `-hf` would
download, planner/inputs.py); `--mmproj none` leaves it out.

With `--device ID|auto|FILE` the backend defaults to the device's first one on its OS and the
report ends with where this exact breakdown lands on the device as it is configured now (the
carve-out in effect, the GPU cap, the OS reserve): pools, tier, headroom, checks. The placement is
planner.fit.place, the same arithmetic `plan` uses; estimate still exits 0 when it does not fit
(it answers a question; `plan` is the command with exit 3). See docs/devices.md "estimate --device".
This module holds the flags; planner/estimate_run.py runs the estimate, planner/report/estimate*.py
print it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import click

from ..estimate_run import EstimateRequest
from ..runtime.llamacpp.flags import RunFlags
from ..vocab import CACHE_TYPES, ESTIMATOR_BACKENDS
from .device_options import FLAG_NAMES, DeviceFlags, device_options, resolve_devices

if TYPE_CHECKING:
    from ..estimate_run import DeviceChoice

# the shared device flags estimate takes; --bandwidth and --host-bandwidth are left out (estimate
# reports memory, not speed)
DEVICE_KEYS = ("device", "device_file", "ram", "carveout", "os", "vram", "gpu_cap", "use")
OVERRIDE_KEYS = DEVICE_KEYS[2:]
PLAN_CARRIES = ("os", "use", "ram", "vram")  # device flags a `memfit plan` line repeats


@dataclass(frozen=True)
class EstimateOptions:
    """`memfit estimate`'s flags, grouped: the request (the model, its llama.cpp run, backend,
    projector, quant, revision), the device, the runtime (--runtime, --llama-build), the output."""

    request: EstimateRequest
    device: DeviceFlags
    runtime: tuple[str | None, int | None]
    as_json: bool

    @classmethod
    def from_click(cls, kw: dict[str, Any]) -> EstimateOptions:
        device = DeviceFlags.pop_from(kw)
        run = RunFlags(**{f.name: kw.pop(f.name) for f in fields(RunFlags) if f.name in kw})
        runtime = (kw.pop("runtime_text"), kw.pop("llama_build"))
        as_json = kw.pop("as_json")
        return cls(EstimateRequest(flags=run, **kw), device, runtime, as_json)


def _check_device_flags(flags: DeviceFlags) -> None:
    """Override flags describe a device, so they need one; and one device, named one way."""
    if not flags.device and not flags.device_file:
        _no_device_to_describe(flags)
    if flags.device and flags.device_file:
        raise click.UsageError("give --device or --device-file, not both")


def _no_device_to_describe(flags: DeviceFlags) -> None:
    used = [FLAG_NAMES[key] for key in OVERRIDE_KEYS if getattr(flags, key) is not None]
    if used:
        verb = "describes" if len(used) == 1 else "describe"
        raise click.UsageError(f"{', '.join(used)} {verb} a device: add --device ID|auto|FILE")


def _plan_args(flags: DeviceFlags) -> list[str]:
    """The device flags a `memfit plan` line carries over: the device and its hardware and use."""
    args = ["--device", flags.device[0]] if flags.device else ["--device-file", flags.device_file[0]]
    for key in PLAN_CARRIES:
        if getattr(flags, key) is not None:
            args += [FLAG_NAMES[key], str(getattr(flags, key))]
    return args


def load_device(flags: DeviceFlags) -> DeviceChoice | None:
    """The profile named by --device/--device-file with the overrides applied, and the notes the
    overrides added (None without a device)."""
    from ..estimate_run import DeviceChoice

    _check_device_flags(flags)
    if not flags.device and not flags.device_file:
        return None
    from ..devices import apply_overrides  # the device schema loads only with a device

    base = resolve_devices(DeviceFlags(device=flags.device, device_file=flags.device_file))[0]
    ref = (flags.device or flags.device_file)[0]
    over = flags.given_overrides()
    if not over:
        return DeviceChoice(base, ref, [], _plan_args(flags))
    profile = apply_overrides(base, **over)
    return DeviceChoice(profile, ref, [n for n in profile.notes if n not in base.notes], _plan_args(flags))


@click.command("estimate")
@click.argument("model")
@click.option("-c", "--ctx-size", "ctx_size", default="0", show_default=True, metavar="N",
              help="Context size (24576, 24k, 128k); 0 = the model's training context.")
@click.option("-fa", "--flash-attn", "flash_attn", type=click.Choice(["on", "off", "auto"]), default=None,
              help="Flash attention (auto = on where supported, as llama.cpp resolves it) [default: the runtime's: auto].")
@click.option("-ctk", "--cache-type-k", "cache_type_k", type=click.Choice(CACHE_TYPES), default="f16", show_default=True)
@click.option("-ctv", "--cache-type-v", "cache_type_v", type=click.Choice(CACHE_TYPES), default="f16", show_default=True)
@click.option("-ub", "--ubatch-size", "ubatch", type=int, default=None,
              help="Physical batch size [default: the runtime's: 512].")
@click.option("-b", "--batch-size", "batch", type=int, default=None,
              help="Logical batch size [default: the runtime's: llama-server 2048, Ollama/LM Studio 512].")
@click.option("-np", "--parallel", "parallel", default=None, metavar="N|auto",
              help="Sequences (server slots); auto = 4 slots with a unified KV cache (llama-server) "
                   "[default: the runtime's: llama-server auto, Ollama 1, LM Studio 4].")
@click.option("-kvu/-no-kvu", "--kv-unified/--no-kv-unified", "kv_unified", default=None,
              help="One KV buffer shared by all sequences (default: on when -np is auto).")
@click.option("-ngl", "--n-gpu-layers", "--gpu-layers", "n_gpu_layers", default="all", show_default=True,
              metavar="N|all", help="Layers on the GPU; the output layer counts as one (llama.cpp semantics).")
@click.option("-ncmoe", "--n-cpu-moe", "n_cpu_moe", type=click.IntRange(min=0), default=0, show_default=True,
              help="Keep the MoE expert weights of the first N layers on the CPU.")
@click.option("-cmoe", "--cpu-moe", "cpu_moe", is_flag=True, help="Keep all MoE expert weights on the CPU.")
@click.option("--swa-full", is_flag=True, help="Full-size cache for sliding-window layers.")
@click.option("-nkvo", "--no-kv-offload", "no_kv_offload", is_flag=True, help="Keep the KV cache in system RAM.")
@click.option("-nr", "--no-repack", "no_repack", is_flag=True, help="Disable CPU weight repacking (CPU backend).")
@click.option("--mmproj", metavar="FILE|auto|none",
              help="Vision projector to size: a file, auto, or none [default: auto when the model has one, "
                   "the file llama-server -hf downloads].")
@click.option("--no-mmap", "no_mmap", is_flag=True, help="Load weights without mmap (--no-mmap).")
@click.option("--runtime", "runtime_text", metavar="llama.cpp@N|ollama[@V]|lmstudio[@V]", default=None,
              help="Which llama.cpp and app defaults to assume [default: conservative over the builds current "
                   "apps ship]; see planner/data/runtimes.toml.")
@click.option("--llama-build", "llama_build", type=click.IntRange(min=1), default=None, metavar="N",
              help="llama.cpp build number whose buffer rules apply (e.g. 9452); with --runtime, overrides its build.")
@click.option("--backend", metavar="|".join(ESTIMATOR_BACKENDS), default=None,
              help="ggml backend family the model runs on [default: cuda; with --device the device's first "
                   "backend on its OS, and a driver it lists (amdvlk) also works].")
@click.option("--tool", type=click.Choice(["server", "cli", "fit-params"]), default="server", show_default=True,
              help="Whose defaults to mirror: llama-server, llama-cli (1 slot) or llama-fit-params/libllama.")
@click.option("--quant", metavar="QUANT", help="Quant variant of a multi-variant reference (e.g. Q4_K_M).")
@click.option("--revision", metavar="REV", help="Hub branch, tag or commit.")
@click.option("--json", "as_json", is_flag=True, help="Print the breakdown as JSON (bytes).")
@device_options(multiple=False, keys=DEVICE_KEYS)
def estimate_command(**kw: Any) -> None:
    """Estimate the memory llama.cpp allocates for MODEL: weights, KV cache, recurrent state,
    compute buffers, output buffer (and a vision projector), per device.

    MODEL: a .gguf file, owner/repo[:QUANT], a Hub URL, a short name, ollama:NAME[:TAG] (or
    name:tag) or lmstudio:publisher/repo[:QUANT]; only headers are read.

    \b
    Examples:
      memfit estimate ./Llama-3.1-8B-Q4_K_M.gguf -c 24k
      memfit estimate unsloth/Qwen3-30B-A3B-GGUF:Q4_K_M -c 32k \\
          -ngl 30 --n-cpu-moe 10
      memfit estimate qwen3-vl-32b --quant Q4_K_M --backend vulkan --json
      memfit estimate qwen3-vl-32b --quant Q4_K_M -c 24k --device auto

    With --device (an id, a profile .toml or auto): the backend defaults to the device's, and the
    report adds whether this breakdown fits the device as configured now. The exit code stays 0
    when it does not fit; `memfit plan` recommends a setup (and exits 3 when nothing fits).
    """
    from ..estimate_run import run_estimate
    from ..report.estimate import render_estimate_json, render_estimate_text
    from ..runtime.llamacpp.apps import runtime_for

    opts = EstimateOptions.from_click(kw)
    runtime = runtime_for(*opts.runtime)
    report = run_estimate(opts.request, runtime, load_device(opts.device))
    click.echo(render_estimate_json(report) if opts.as_json else render_estimate_text(report))


COMMANDS = [estimate_command]
