"""`api.public` and `playground` on Kubernetes: an Ingress in place of the compose front door.

The cluster's ingress controller terminates TLS, with the operator's certificate in a TLS Secret
(``kubectl create secret tls``); the playground is a Deployment like the API, behind the same
Ingress at /playground. Size and time limits are written as ingress-nginx annotations (the common
controller); another controller needs its own equivalents.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from albert_deploy.errors import ProfileError
from albert_deploy.plan.build import Plan
from albert_deploy.plan.front import PLAYGROUND_PATH

TLS_SECRET = "front-tls"
INGRESS = "front"


@dataclass(frozen=True)
class IngressPath:
    path: str
    service: str
    port: int


@dataclass(frozen=True)
class Ingress:
    name: str
    host: str
    tls_secret: str
    paths: tuple[IngressPath, ...]
    annotations: dict[str, str]


def without_front(plan: Plan) -> Plan:
    """The plan's workloads for Kubernetes: the compose front door becomes the Ingress; refusals first."""
    has_playground = any(s.role == "playground" for s in plan.services)
    if has_playground and plan.front is None:
        raise ProfileError(
            f"{plan.source}: playground: on Kubernetes the playground is published through the Ingress that "
            "api.public renders: add api.public (domain, cert_file, key_file), or render it for compose"
        )
    if plan.front is None:
        return plan
    if plan.front.cert.automatic or plan.front.domain is None:
        raise ProfileError(
            f"{plan.source}: api.public: on Kubernetes certificates are the cluster's business (its ingress "
            "controller, or cert-manager), which albert-deploy does not assume: give `domain` (the Ingress "
            f"host) and cert_file/key_file, stored with: kubectl create secret tls {TLS_SECRET} --cert=... --key=..."
        )
    return replace(plan, services=tuple(s for s in plan.services if s.role != "front"))


def ingress(plan: Plan, names: dict[str, str]) -> Ingress | None:
    front = plan.front
    if front is None or front.domain is None:
        return None
    ports = {s.name: s.container_port or 0 for s in plan.services}
    paths = [IngressPath(r.path_prefix or "/", names[r.name], ports[r.name]) for r in front.routes]
    annotations = {
        "nginx.ingress.kubernetes.io/proxy-body-size": f"{max(1, front.max_request_bytes // 10**6)}m",
        "nginx.ingress.kubernetes.io/proxy-buffering": "off",  # streamed completions pass as they come
        "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
        "nginx.ingress.kubernetes.io/proxy-read-timeout": str(front.read_timeout_s),
        "nginx.ingress.kubernetes.io/proxy-send-timeout": str(front.read_timeout_s),
    }
    return Ingress(INGRESS, front.domain, TLS_SECRET, tuple(paths), annotations)


__all__ = ["PLAYGROUND_PATH", "TLS_SECRET", "Ingress", "IngressPath", "ingress", "without_front"]
