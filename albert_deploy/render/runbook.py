"""The context of RUNBOOK.md: what runs where, and the commands on-call needs, without secrets."""

from __future__ import annotations

import shlex
from typing import Any

from albert_deploy.plan import startup
from albert_deploy.plan.build import Plan
from albert_deploy.plan.spec import Service, gpus_text, reachable_host
from albert_deploy.profile.load import DEFAULT_PROFILE
from albert_deploy.sizes import gb


def md(value: Any) -> str:
    """Text that cannot break a Markdown table or code span."""
    text = "".join(c if c.isprintable() else " " for c in str(value))
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'").replace("<", "&lt;")


def runbook_context(plan: Plan) -> dict[str, Any]:
    return {
        "services": [_row(s, plan) for s in plan.services],
        "api_url": plan.api_url,
        "playground_url": _playground_url(plan),
        "api_authentication": plan.api_access.authentication,
        "api_warning": plan.api_access.warning(),
        # GPUs with one server have no order to follow.
        "start_chains": [{"gpu": o.gpu, "order": o.text(" → ")} for o in plan.start_order if len(o.services) > 1],
        "operator_env": plan.operator_env,
        "balancers": [{"name": b.service, "replicas": list(b.replicas)} for b in plan.balancers],
        "api_wait_s": startup.api_bound(plan.services, plan.start_order),
        # The profile as albert-deploy's commands take it (nothing for the embedded default).
        "profile_arg": "" if plan.source == DEFAULT_PROFILE else " " + shlex.quote(plan.source),
        "vector_store": plan.vector_store,
        "has_postgres": any(s.name == "postgres" for s in plan.services),
        "has_playground": bool(plan.playground_database),
    }


def _row(service: Service, plan: Plan) -> dict[str, Any]:
    placed = plan.placement.models.get(service.name) or plan.placement.models.get(service.model or "")
    endpoint = next((e for e in plan.endpoints if e.name == service.model), None)
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
    argv = service.healthcheck.argv() if service.healthcheck else None
    # Single quotes: `$API_KEY` is the container's variable, not the host's.
    return shlex.join(argv) if argv else "true"


def _playground_url(plan: Plan) -> str | None:
    if plan.front:
        return plan.front.playground_url
    ui = next((s for s in plan.services if s.role == "playground"), None)
    return f"http://{reachable_host(ui.ports[0][0])}:{ui.ports[0][1]}/" if ui and ui.ports else None
