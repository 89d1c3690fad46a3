"""`plan`'s flags, in the order --help lists them, and the options object they fill: the models,
the devices (the shared device flags in plan's own words, planner/cli/device_options.py), the run
shape, the choosing and the output; the cross-flag checks (--kv against -ctk/-ctv, a quantized V
cache against -fa off: planner.vocab's rule) and the PlanRequest they make."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import click

from ..errors import InputError
from ..units import parse_ctx
from ..vocab import CACHE_TYPES, v_cache_conflict
from .device_options import DeviceFlags, FlagStyle, device_flags

if TYPE_CHECKING:
    from ..plan_types import PlanModel, PlanRequest


class CtxType(click.ParamType):
    """Context lengths as people write them: 24k, 24K, 24576, 128k; `max` or 0 = the model's
    training context (as llama.cpp's -c 0)."""

    name = "CTX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        if str(value).strip().lower() in ("max", "0"):
            return 0
        try:
            return parse_ctx(value)
        except InputError as e:
            self.fail(e.message, param, ctx)


def split_list(values: tuple[str, ...]) -> list[str]:
    """Repeated flags that also take comma lists (--quant Q4_K_M,Q8_0 -q Q6_K)."""
    return [x.strip() for v in values for x in v.split(",") if x.strip()]


# plan words its device flags its own way (and lists them between its other flags)
PLAN_DEVICE_STYLE = FlagStyle(
    help={"device": "device profile id (memfit devices), a TOML path, or auto; repeat to compare devices",
          "device_file": "your own device profile (TOML)",
          "os": "operating system [default: the profile's]",
          "use": "how the machine is used: decides the RAM the OS keeps [default: the profile's]",
          "ram": "override installed RAM, e.g. 96g", "carveout": "plan only this BIOS carve-out, e.g. 32g",
          "gpu_cap": "plan with this GTT / wired limit, e.g. 100g",
          "bandwidth": "override the GPU's memory bandwidth (GB/s) for speed estimates",
          "host_bandwidth": "override system RAM bandwidth (GB/s): the speed of layers and experts on the CPU "
                            "(DDR4-3200 dual channel 51.2, DDR5-5600 89.6)"},
    metavar={"device": "ID", "device_file": "FILE"}, case_sensitive=True, path_type=False)

PLAN_OPTIONS = [
    click.argument("models", nargs=-1, metavar="MODEL[@CTX]..."),
    click.option("--workload", "workload_file", default=None, metavar="FILE",
                 help="a TOML file listing the models to plan on one setting (docs/cli.md: Workloads)"),
    click.option("--together", is_flag=True,
                 help="the models run at the same time (one llama-server each): plan their sum in the same memory"),
    *device_flags("device", "device_file", style=PLAN_DEVICE_STYLE),
    click.option("--cluster", default=None, metavar="SPEC",
                 help="machines joined by llama.cpp RPC, the first the head: 2x dgx-spark, or ID,ID (docs/cluster.md)"),
    click.option("--gpus", type=click.IntRange(min=1), default=None, metavar="N",
                 help="N cards of --device in one host, split by -ts"),
    click.option("--link", default=None, metavar="NAME",
                 help="the link between members: 1gbe, 10gbe, usb4, tb5, roce, pcie [default: roce for DGX Sparks, "
                      "10gbe, pcie for --gpus]"),
    click.option("--ctx", "-c", "ctx", type=CtxType(), default=None,
                 help="context length: 24k, 24576, 128k, or max (= 0: the training context) "
                      "[default: training context, at most 32k]"),
    *device_flags("os", "use", style=PLAN_DEVICE_STYLE),
    click.option("--backend", default=None,
                 help="llama.cpp backend: vulkan, rocm, cuda, metal, amdvlk... [default: the profile's first]"),
    *device_flags("ram", "carveout", "gpu_cap", "vram", "bandwidth", "host_bandwidth", style=PLAN_DEVICE_STYLE),
    click.option("--quant", "-q", "quants", multiple=True, metavar="TAG", help="plan only these quants (repeat or comma list)"),
    click.option("--kv", "kv", type=click.Choice(CACHE_TYPES), default=None, help="KV cache type for both K and V"),
    click.option("-ctk", "--cache-type-k", "ctk", type=click.Choice(CACHE_TYPES), default=None, help="K cache type"),
    click.option("-ctv", "--cache-type-v", "ctv", type=click.Choice(CACHE_TYPES), default=None, help="V cache type"),
    click.option("-fa", "--flash-attn", "flash_attn", type=click.Choice(["on", "off", "auto"]), default="auto",
                 show_default=True, help="flash attention"),
    click.option("-np", "--parallel", "n_parallel", type=click.IntRange(1, 256), default=1, show_default=True,
                 help="parallel sequences (llama-server slots); -c is shared between them"),
    click.option("--mmproj", default="auto", metavar="auto|none|FILE", show_default=True,
                 help="vision projector: the repo's (auto), none, or a local mmproj GGUF"),
    click.option("--no-mmap", "no_mmap", is_flag=True, help="plan for --no-mmap loading"),
    click.option("--prefer", type=click.Choice(["quality", "speed", "balanced"]), default="quality", show_default=True,
                 help="quality: best quant that runs on the GPU; balanced: up to Q6_K class; speed: fastest >= 4-bit"),
    click.option("--min-tps", "min_tps", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="only recommend quants estimated to decode at least this fast at the requested context (t/s)"),
    click.option("--min-prefill-tps", "min_prefill_tps", type=click.FloatRange(min=0, min_open=True), default=None,
                 help="only recommend quants whose prompt processing is estimated at least this fast (t/s)"),
    click.option("--max-ttft", "max_ttft", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
                 help="only recommend quants that fill the whole context within this many seconds (est.)"),
    click.option("--allow-spill", "allow_spill", is_flag=True,
                 help="let a quant that spills into slower shared memory (Windows shared GPU memory) be recommended"),
    click.option("--runtime", "runtime_text", metavar="llama.cpp@N|ollama[@V]|lmstudio[@V]", default=None,
                 help="which llama.cpp build and app defaults to size for [default: conservative over the builds "
                      "current apps ship]; see planner/data/runtimes.toml"),
    click.option("--llama-build", "llama_build", type=click.IntRange(min=1), default=None, metavar="N",
                 help="llama.cpp build number whose buffer rules apply; with --runtime, overrides its build"),
    click.option("--shell", "shell_name", type=click.Choice(["bash", "zsh", "powershell", "cmd"]), default=None,
                 help="write the commands for this shell [default: the planned OS's: PowerShell on Windows, "
                      "bash on Linux, zsh on macOS]"),
    click.option("--revision", default=None, help="Hub branch, tag or commit"),
    click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json", "html"]), default="text",
                 show_default=True),
    click.option("--json", "as_json", is_flag=True, help="same as --format json"),
    click.option("--unicode", is_flag=True, help="draw the memory bar with block characters"),
]


@dataclass(frozen=True)
class PlanOptions:
    """`plan`'s flags, grouped: the models, the devices, the run shape, the choosing, the output."""

    models: tuple[str, ...]
    workload_file: str | None
    together: bool
    device: DeviceFlags
    cluster: str | None
    gpus: int | None
    link: str | None
    ctx: int | None
    backend: str | None
    quants: tuple[str, ...]
    kv: str | None
    ctk: str | None
    ctv: str | None
    flash_attn: str
    n_parallel: int
    mmproj: str
    no_mmap: bool
    prefer: str
    min_tps: float | None
    min_prefill_tps: float | None
    max_ttft: float | None
    allow_spill: bool
    runtime_text: str | None
    llama_build: int | None
    shell_name: str | None
    revision: str | None
    fmt: str
    as_json: bool
    unicode: bool

    @classmethod
    def from_click(cls, kw: dict[str, Any]) -> PlanOptions:
        device = DeviceFlags.pop_from(kw)
        return cls(device=device, **{f.name: kw[f.name] for f in fields(cls) if f.name != "device"})

    @property
    def format(self) -> str:
        return "json" if self.as_json else self.fmt

    def cache_types(self) -> tuple[str, str]:
        """(K, V) cache types: --kv for both, or -ctk/-ctv; a quantized V cache needs flash attention."""
        if self.kv and (self.ctk or self.ctv):
            raise click.UsageError("give --kv, or -ctk/-ctv, not both")
        cache_k, cache_v = _cache_type(self.ctk, self.kv), _cache_type(self.ctv, self.kv)
        conflict = v_cache_conflict(cache_v, self.flash_attn)
        if conflict:
            raise click.UsageError(conflict)
        return cache_k, cache_v

    def request(self, plan_model: PlanModel | None, ctx: int | None, mmproj: str) -> PlanRequest:
        from ..plan_types import PlanRequest

        cache_k, cache_v = self.cache_types()
        return PlanRequest(
            ctx=ctx, cache_type_k=cache_k, cache_type_v=cache_v, flash_attn=self.flash_attn,  # type: ignore[arg-type]
            n_parallel=self.n_parallel, prefer=self.prefer,  # type: ignore[arg-type]
            use_mmproj=(plan_model is None or plan_model.projector is not None) and mmproj != "none",
            min_tps=self.min_tps, backend=self.backend, mmap=False if self.no_mmap else None,
            kv_fixed=bool(self.kv or self.ctk or self.ctv), allow_spill=self.allow_spill,
            min_prefill_tps=self.min_prefill_tps, max_ttft_s=self.max_ttft, runtime=self.runtime_text,
            llama_build=self.llama_build, shell=self.shell_name,  # type: ignore[arg-type]
            ctx_chart=self.format == "html",
            # the setting the user fixed reaches the planner here (the profiles only describe the machine)
            carveout_bytes=_size(self.device.carveout, "--carveout"),
            gpu_cap_bytes=_size(self.device.gpu_cap, "--gpu-cap"))


def _size(text: str | None, flag: str) -> int | None:
    from ..units import parse_size

    return parse_size(text, what=flag) if text else None


def _cache_type(flag: str | None, kv: str | None) -> str:
    """-ctk/-ctv, else --kv, else f16."""
    return flag or kv or "f16"
