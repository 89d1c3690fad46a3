"""`memfit plan MODEL --device ID [--device ID2 ...] --ctx 24k` (also the `plan` console script).

The command and its calls (its flags and their options object: plan_options.py): the model and
its projector (planner/inputs.py), the device profiles with any command-line overrides, the
planner, and the report in the format asked for (planner/report/formats.py): the recommendation,
the quant table, the carve-out table and the memory bar (text), a forum-ready version (markdown),
the whole plan (JSON) or a page (HTML). Several models go the workload path (plan_workload.py).
Exit codes: 0 = a recommendation that fits, 3 = nothing fits (on any of the devices, or nothing
reaches --min-tps), 1 = error, 2 = usage error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .device_options import DeviceFlags, apply_options
from .guard import EXIT_NO_FIT, EXIT_OK
from .plan_options import PLAN_OPTIONS, PlanOptions, split_list

if TYPE_CHECKING:
    from ..device_schema import DeviceProfile


def load_plan_devices(flags: DeviceFlags) -> list[DeviceProfile]:
    """The profiles --device (comma lists, ID:os:use suffixes) and --device-file name, with the
    overrides (planner/inputs.py: one use for a fair comparison)."""
    from ..inputs import load_devices

    refs = split_list(flags.device)
    if not refs and not flags.device_file:
        raise click.UsageError("give at least one --device ID (see `memfit devices`), --device auto, "
                               "or --device-file FILE")
    return load_devices(refs, flags.device_file, flags.overrides())


@click.command("plan", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@apply_options(PLAN_OPTIONS)
def plan_command(**kw: Any) -> int:
    """Which quant to download, which BIOS VRAM split to set and how to launch MODEL.

    MODEL: owner/repo, owner/repo:Q4_K_M, a short name (qwen3-vl-32b), a local .gguf or directory,
    an Ollama model (ollama:qwen3:32b, gpt-oss:120b) or lmstudio:publisher/repo[:QUANT].
    MODEL@CTX gives it its own context. Several models (or --workload FILE): one setting for all.

    \b
    Examples:
      memfit plan qwen3-vl-32b --device ai-max-395-64g --ctx 24k
      memfit plan unsloth/Qwen3-30B-A3B-GGUF -c 32k \\
        -d ai-max-395-64g -d ai-max-395-128g-minipc
      memfit plan ./models/ -d rtx-4090 --kv q8_0 --format markdown
      memfit plan glm-4.7-flash@198k qwen3-vl-32b@24k -d ai-max-395-64g
      memfit plan qwen3-235b-a22b --cluster 2x ai-max-395-128g-minipc --link usb4

    Exit codes: 0 = the recommendation fits, 3 = nothing fits, 1 = error, 2 = usage error.
    """
    from ..inputs import build_plan_model, mmproj_choice
    from ..plan import plan_devices
    from ..report.formats import plan_output
    from .plan_cluster import cluster_shape, run_cluster
    from .plan_workload import parse_models, run_workload

    opts = PlanOptions.from_click(kw)
    opts.cache_types()
    mmproj = mmproj_choice(opts.mmproj)
    shape = cluster_shape(opts)
    if shape is not None:
        return run_cluster(opts, shape, mmproj)
    work = parse_models(opts.models, opts.workload_file, opts.together, opts.ctx)
    profiles = load_plan_devices(opts.device)
    if work.single is None:
        request = opts.request(None, opts.ctx, mmproj)
        return run_workload(work.workload, profiles, request, revision=opts.revision, quants=split_list(opts.quants),
                            mmproj=mmproj, fmt=opts.format)
    ctx = work.single.ctx if work.single.ctx is not None else opts.ctx
    plan_model, _resolved = build_plan_model(work.single.ref, opts.revision, split_list(opts.quants), mmproj)
    multi = plan_devices(plan_model, opts.request(plan_model, ctx, mmproj), profiles)
    click.echo(plan_output(multi, opts.format, unicode=opts.unicode), nl=False)
    return EXIT_OK if multi.fits else EXIT_NO_FIT


COMMANDS = [plan_command]
