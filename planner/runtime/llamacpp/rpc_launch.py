"""llama.cpp's lines for a cluster plan: the `ggml-rpc-server` line on every worker (bind address on
the private link, port, local tensor cache), and the head's `llama-server --rpc ... -ts ...` line;
cards in one host get the llama-server line alone (each member's BIOS / GPU cap line is the cluster
plan's, planner/cluster/plan.py). The addresses are placeholders for the members' addresses on the
private link."""

from __future__ import annotations

from ...cluster.types import ClusterPlan
from ...plan_types import PlanModel, PlanVariant
from ...units import fmt_bytes, fmt_ctx

RPC_PORT = 50052  # ggml-rpc-server's default port
SUBNET = "10.10.0."  # placeholder private-link addresses: head .1, workers .2, .3, ...
RPC_SERVER = "ggml-rpc-server"  # llama.cpp b10488+; earlier builds: rpc-server


def rpc_warning() -> str:
    return ("llama.cpp's RPC protocol is unauthenticated and unencrypted: bind each rpc-server to the "
            "private link only (a direct cable or an isolated network), never to 0.0.0.0 on a shared one")


def _model_args(model: PlanModel, v: PlanVariant) -> str:
    if model.repo:
        ref = model.hf_tag(v.quant) if model.hf_tag else f"{model.repo}:{v.quant}"
        return f"-hf {ref}"
    return f"-m {v.files[0] if v.files else model.name}"


def _worker_lines(plan: ClusterPlan) -> list[str]:
    return [f"# on worker {m.index} ({m.device_id}); -c caches its {fmt_bytes(m.rpc_cache_bytes, digits=1)} of "
            f"tensors on disk; builds before b10488 call it rpc-server\n"
            f"{RPC_SERVER} -H {SUBNET}{m.index + 1} -p {RPC_PORT} -c"
            for m in plan.members if m.role == "worker"]


def launch_lines(model: PlanModel, v: PlanVariant, plan: ClusterPlan) -> list[str]:
    """The workers' servers, then the head's llama-server."""
    ts = ",".join(f"{t:g}" for t in plan.llama_ts)
    words = ["llama-server", _model_args(model, v), f"-c {plan.ctx}", "-ngl 999",
             "-fa on" if plan.flash_attn else "-fa off"]
    if plan.cache_type_k != "f16" or plan.cache_type_v != "f16":
        words.append(f"-ctk {plan.cache_type_k} -ctv {plan.cache_type_v}")
    if plan.kind == "rpc":
        words.append("--rpc " + ",".join(f"{SUBNET}{m.index + 1}:{RPC_PORT}" for m in plan.members
                                         if m.role == "worker"))
    words += [f"-ts {ts}", "--host 127.0.0.1 --port 8080"]
    where = "the head" if plan.kind == "rpc" else "the host"
    head = f"# on {where} ({plan.members[0].device_id}), context {fmt_ctx(plan.ctx)}\n" + " ".join(words)
    return _worker_lines(plan) + [head]
