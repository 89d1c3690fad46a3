"""`plan MODEL --cluster 2x dgx-spark [--link usb4]` and `plan MODEL --device ID --gpus N`: the
members (planner/cluster/members.py), their profiles with the command's overrides, the link, the
cluster planner and its report. Exit codes as plan's: 0 = a recommendation that fits, 3 = none."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..errors import InputError
from .guard import EXIT_NO_FIT, EXIT_OK
from .plan_options import PlanOptions, split_list

if TYPE_CHECKING:
    from ..cluster.members import ClusterShape


def cluster_shape(opts: PlanOptions) -> ClusterShape | None:
    """The members --cluster or --device/--gpus name; None for a plain plan (which does not import
    the cluster modules)."""
    devices = split_list(opts.device.device)
    if opts.cluster and (opts.gpus or devices or opts.device.device_file):
        raise InputError("--cluster names the members itself: leave out --device and --gpus",
                         hint="e.g. --cluster 2x dgx-spark or --cluster ID,ID")
    if opts.cluster:
        from ..cluster.members import parse_cluster

        return parse_cluster(opts.cluster)
    if opts.gpus is not None and opts.gpus > 1:
        if len(devices) != 1:
            raise InputError("--gpus N takes exactly one --device (the card; N of them in one host)")
        from ..cluster.members import parse_gpus

        return parse_gpus(devices[0], opts.gpus)
    if opts.link:
        raise InputError("--link applies to a cluster: give --cluster or --device ID --gpus N")
    return None


def run_cluster(opts: PlanOptions, shape: ClusterShape, mmproj: str) -> int:
    from ..cluster.links import default_link, find_link
    from ..cluster.plan import ClusterPlanner
    from ..inputs import build_plan_model, load_devices
    from ..report.cluster import CLUSTER_FORMATS

    if len(opts.models) != 1 or opts.workload_file or opts.together:
        raise InputError("a cluster plan takes one model", hint="plan the models one at a time")
    profiles = load_devices(shape.refs, (), opts.device.overrides())
    link = find_link(opts.link) if opts.link else default_link(shape.kind, [p.id for p in profiles])
    if link.local != (shape.kind == "local"):
        joins = "cards in one host" if shape.kind == "local" else "machines"
        raise InputError(f"--link {link.id} does not join {joins}",
                         hint="machines: 1gbe, 10gbe, usb4, tb5, roce; cards in one host: pcie")
    ref, _, at_ctx = opts.models[0].partition("@")
    plan_model, _ = build_plan_model(ref, opts.revision, split_list(opts.quants), mmproj)
    ctx = opts.ctx
    if at_ctx:
        from ..units import parse_ctx

        ctx = parse_ctx(at_ctx)
    plan = ClusterPlanner(plan_model, opts.request(plan_model, ctx, mmproj), profiles, shape.kind, link).plan()
    click.echo(CLUSTER_FORMATS[opts.format](plan), nl=False)
    return EXIT_OK if plan.fits else EXIT_NO_FIT
