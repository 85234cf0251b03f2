"""The context of RUNBOOK.md: what runs where, and the commands on-call needs, without secrets."""

from __future__ import annotations

import shlex
from typing import Any

from albert_deploy.plan.build import Plan
from albert_deploy.plan.spec import Service, gpus_text
from albert_deploy.sizes import gb


def md(value: Any) -> str:
    """Text that cannot break a Markdown table or code span."""
    text = "".join(c if c.isprintable() else " " for c in str(value))
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'").replace("<", "&lt;")


def runbook_context(stack: Plan) -> dict[str, Any]:
    api = next(s for s in stack.services if s.role == "api")
    host_ip, host_port, _ = api.ports[0]
    return {
        "services": [_row(s, stack) for s in stack.services],
        "api_host": "127.0.0.1" if host_ip in ("0.0.0.0", "::") else host_ip,
        "api_port": host_port,
        "start_chains": _chains(stack),
        "operator_env": stack.operator_env,
    }


def _row(service: Service, stack: Plan) -> dict[str, Any]:
    placed = stack.placement.models.get(service.model or "")
    endpoint = next((e for e in stack.endpoints if e.name == service.model), None)
    memory = "-"
    if placed and placed.memory_bytes:
        memory = gb(placed.memory_bytes)
        if placed.gpu_memory_utilization is not None:
            memory += f" (utilization {placed.gpu_memory_utilization:.2f})"
    return {
        "name": service.name,
        "role": service.role,
        "model_id": endpoint.served_name if endpoint else "-",
        "gpus": gpus_text(service.gpu),
        "memory": memory,
        "port": ", ".join(f"{ip}:{port}" for ip, port, _ in service.ports) or "-",
        "volume": ", ".join(m.volume for m in service.mounts if not m.is_bind) or "-",
        "probe": _probe(service),
    }


def _probe(service: Service) -> str:
    if service.healthcheck is None:
        return "true"
    kind, *rest = service.healthcheck.test
    # Single quotes: `$API_KEY` is the container's variable, not the host's.
    return "sh -c " + shlex.quote(rest[0]) if kind == "CMD-SHELL" else shlex.join(rest)


def _chains(stack: Plan) -> list[dict[str, Any]]:
    by_gpu: dict[str, list[str]] = {}
    for service in stack.services:
        if service.role == "model" and service.gpu:
            for device in service.gpu.device_ids:
                by_gpu.setdefault(device, []).append(service.name)
    models = {s.name: s for s in stack.services}
    chains = []
    for gpu, names in sorted(by_gpu.items()):
        if len(names) > 1:
            # The order is the depends_on chain: a server depends on the one before it.
            ordered = sorted(names, key=lambda n: _depth(models, n, set(names)))
            chains.append({"gpu": gpu, "order": ordered})
    return chains


def _depth(models: dict[str, Service], name: str, among: set[str]) -> int:
    before = [d for d in models[name].depends_on if d in among]
    return 1 + max((_depth(models, d, among) for d in before), default=0)
