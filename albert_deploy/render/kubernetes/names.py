"""Kubernetes names and labels of the plan's services, namespace and instance."""

from __future__ import annotations

import re
from dataclasses import replace

from albert_deploy.errors import ProfileError
from albert_deploy.plan.build import Plan
from albert_deploy.plan.releases import MODULES
from albert_deploy.render.kubernetes.objects import MANAGED_BY

_SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # RFC 1035 label, as Services require
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def kube_names(plan: Plan) -> dict[str, str]:
    """Service name -> Kubernetes name (a Service needs an RFC 1035 label: no '.', '_' or leading digit)."""
    names: dict[str, str] = {}
    owners: dict[str, str] = {}
    for s in plan.services:
        name = s.name
        if not _SERVICE_NAME.match(name):
            name = re.sub(r"[^a-z0-9-]+", "-", name).strip("-")
            name = (name if name[:1].isalpha() else "m-" + name)[:63].rstrip("-")
        if name in owners:
            raise ProfileError(
                f"{plan.source}: '{owners[name]}' and '{s.name}' would both be the Kubernetes Service "
                f"'{name}': give the model another `name`"
            )
        owners[name] = s.name
        names[s.name] = name
    return names


def with_kube_urls(plan: Plan, names: dict[str, str]) -> Plan:
    """The API reaches a model server by its Service name: rewrite the URLs of renamed servers."""
    renamed = {old: new for old, new in names.items() if old != new}
    if not renamed:
        return plan
    endpoints = tuple(
        replace(e, url=e.at_host(renamed[e.name]))
        if e.hosted and e.name in renamed else e
        for e in plan.endpoints
    )  # fmt: skip
    context = MODULES[plan.release.version].config_context(list(endpoints), plan.vector_store)
    return replace(plan, endpoints=endpoints, config={**plan.config, **context})


def default_namespace(plan: Plan) -> str:
    namespace = plan.project.replace("_", "-")
    if not _DNS_LABEL.match(namespace):
        raise ProfileError(
            f"{plan.source}: project: '{plan.project}' cannot name a Kubernetes namespace "
            "(it must end with a letter or digit): set kubernetes.namespace"
        )
    return namespace


def instance_label(plan: Plan) -> str:
    if not _LABEL_VALUE.match(plan.project):
        raise ProfileError(
            f"{plan.source}: project: '{plan.project}' cannot be a Kubernetes label value "
            "(it must end with a letter or digit): rename it"
        )
    return plan.project


def labels(name: str, component: str, instance: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector(name: str, instance: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": instance}
