"""Containers' environment (secrets by reference) and probes (from the plan's typed health checks)."""

from __future__ import annotations

import math
from typing import Any

from albert_deploy.catalog import HealthCheck
from albert_deploy.errors import RenderError
from albert_deploy.plan.build import Plan
from albert_deploy.plan.spec import Joined, Ref
from albert_deploy.render.kubernetes.objects import GENERATED_SECRET, OPERATOR_SECRET, EnvVar, Probe, Probes, escape

READINESS_FAILURES = 3  # out of the Service after 30 s of failures; liveness restarts after `retries`


def env_vars(environment: dict[str, Any], plan: Plan) -> tuple[EnvVar, ...]:
    """Secrets by secretKeyRef, first: a value that embeds one (``--requirepass ${REDIS_PASSWORD}``)
    reads it as ``$(REDIS_PASSWORD)``, which Kubernetes expands only from variables defined before."""
    refs = [from_secret(name, value, plan) for name, value in environment.items() if isinstance(value, Ref)]
    literal = []
    for name, value in environment.items():
        if isinstance(value, Joined):
            text = ""
            for part in value.parts:
                if isinstance(part, str):
                    text += escape(part)
                    continue
                if environment.get(part.name, part) != part:
                    raise RenderError(
                        f"internal error: {name} needs ${{{part.name}}}, which is set otherwise; please report it"
                    )
                if all(e.name != part.name for e in refs):
                    refs.append(from_secret(part.name, part, plan))
                text += f"$({part.name})"
            literal.append(EnvVar(name, value=text))
        elif isinstance(value, str):
            literal.append(EnvVar(name, value=escape(value)))
    return (*refs, *literal)


def from_secret(name: str, ref: Ref, plan: Plan) -> EnvVar:
    if ref.name in plan.secrets:
        return EnvVar(name, secret=GENERATED_SECRET, key=ref.name)
    if ref.name in plan.operator_env and ref.default in (None, ""):
        # A variable with a default (HF_TOKEN) may be absent; an external model's key may not.
        return EnvVar(name, secret=OPERATOR_SECRET, key=ref.name, optional=ref.default is not None)
    raise RenderError(f"internal error: ${{{ref}}} has no place in a Kubernetes Secret; please report it")


def probes(check: HealthCheck) -> Probes:
    """Startup allows the start period plus compose's retries; then readiness and liveness."""
    http = check.http
    argv = check.argv()
    if http is not None and http.key_env is None:
        action: dict[str, Any] = {"http": (http.port, http.path)}
    elif argv is not None:
        action = {"command": tuple(escape(a) for a in argv)}
    else:
        raise RenderError(f"internal error: health check {check.test[0]} has no probe; please report it")
    period = check.interval_s
    startup = math.ceil(check.start_period_s / period) + check.retries
    return Probes(
        startup=Probe(period, check.timeout_s, startup, **action),
        readiness=Probe(period, check.timeout_s, READINESS_FAILURES, **action),
        liveness=Probe(period, check.timeout_s, check.retries, **action),
    )
