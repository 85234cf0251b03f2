"""Load every rendered Kubernetes manifest back and compare it with what was planned.

A mismatch is a template bug, never a user error: the message asks for a report.
"""

from __future__ import annotations

from typing import Any

from albert_deploy.errors import RenderError
from albert_deploy.plan.releases import MODULES
from albert_deploy.render.kubernetes.objects import (
    CONFIG_KEY,
    CONFIG_MAP,
    GENERATED_SECRET,
    MANAGED_BY,
    Container,
    EnvVar,
    Probe,
    Workload,
)
from albert_deploy.render.kubernetes.workloads import Layout

KUSTOMIZATION_FILE = "kustomization.yaml"
SECRET_FILE = "secret.yaml"

DATA_DIR = "data"
_CLUSTER_SCOPED = {"Namespace"}
_KEPT = {"Namespace", "PersistentVolumeClaim"}  # only in data/: `kubectl delete -k app/` must not remove them


def validate_manifests(files: dict[str, str], layout: Layout, secrets: dict[str, str]) -> None:
    namespace, config_text = layout.namespace, layout.config_text
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for name, text in files.items():
        part, _, base = name.rpartition("/")
        for doc in _load_all(text, name):
            if base == KUSTOMIZATION_FILE:
                listed = [f.rpartition("/")[2] for f in files if f.startswith(part + "/") and f != name]
                _same(name, "resources", doc.get("resources"), listed)
                continue
            kind, meta = doc.get("kind"), doc.get("metadata") or {}
            where = f"{name}: {kind} {meta.get('name')}"
            _same(where, "managed-by label", (meta.get("labels") or {}).get("app.kubernetes.io/managed-by"), MANAGED_BY)
            _same(where, "namespace", meta.get("namespace"), None if kind in _CLUSTER_SCOPED else namespace)
            if (kind == "Secret") != (name == SECRET_FILE) or (kind in _KEPT) != (part == DATA_DIR):
                raise RenderError(f"internal error: {where} is in the wrong file; please report it")
            objects[(str(kind), str(meta.get("name")))] = doc
    config = _get(objects, "ConfigMap", CONFIG_MAP)
    _same(f"ConfigMap {CONFIG_MAP}", CONFIG_KEY, (config.get("data") or {}).get(CONFIG_KEY), config_text)
    MODULES[layout.plan.release.version].validate_config(_load_all(config_text, CONFIG_KEY)[0])
    _same("Secret", "stringData", _get(objects, "Secret", GENERATED_SECRET).get("stringData"), secrets)
    for claim in layout.claims:
        spec = _get(objects, "PersistentVolumeClaim", claim.name)["spec"]
        _same(f"PersistentVolumeClaim {claim.name}", "size", spec["resources"]["requests"]["storage"], claim.size)
    for w in layout.workloads:
        _validate_workload(_get(objects, w.kind, w.name), w)
        service = _get(objects, "Service", w.name)["spec"]
        _same(f"Service {w.name}", "selector", service.get("selector"), w.selector)
        port = service["ports"][0]
        _same(f"Service {w.name}", "port", (port["name"], port["port"]), w.service_port[:2])


def _validate_workload(doc: dict[str, Any], w: Workload) -> None:
    where = f"{w.kind} {w.name}"
    spec = doc["spec"]
    _same(where, "selector", spec["selector"]["matchLabels"], w.selector)
    template = spec["template"]
    _same(where, "pod labels", {k: template["metadata"]["labels"].get(k) for k in w.selector}, w.selector)
    pod = template["spec"]
    _same(where, "node selector", pod.get("nodeSelector"), w.node_selector or None)
    _same(where, "tolerations", pod.get("tolerations"), list(w.tolerations) or None)
    (container,) = pod["containers"]
    _validate_container(where, container, w.container)
    for loaded, planned in zip(pod.get("initContainers") or [], w.init_containers, strict=True):
        _validate_container(f"{where} init", loaded, planned)
    resources = container["resources"]
    if w.gpus:
        gpu = (resources["requests"].get("nvidia.com/gpu"), resources.get("limits", {}).get("nvidia.com/gpu"))
        _same(where, "nvidia.com/gpu (requests, limits)", gpu, (w.gpus, w.gpus))
    if w.claim is not None:
        (claim,) = spec["volumeClaimTemplates"]
        _same(where, "volume claim", claim["spec"]["resources"]["requests"]["storage"], w.claim.size)


def _validate_container(where: str, loaded: dict[str, Any], planned: Container) -> None:
    _same(where, "image", loaded.get("image"), planned.image)
    _same(where, "command", loaded.get("command"), list(planned.command) or None)
    _same(where, "args", loaded.get("args"), list(planned.args) or None)
    _same(where, "env", loaded.get("env"), [_env(e) for e in planned.env] or None)
    _same(where, "resources.requests", loaded["resources"]["requests"], planned.requests)
    if planned.probes is not None:
        for kind in ("startup", "readiness", "liveness"):
            _same(where, f"{kind}Probe", loaded.get(f"{kind}Probe"), _probe(getattr(planned.probes, kind)))


def _env(e: EnvVar) -> dict[str, Any]:
    if e.secret is None:
        return {"name": e.name, "value": e.value}
    ref: dict[str, Any] = {"name": e.secret, "key": e.key}
    if e.optional:
        ref["optional"] = True
    return {"name": e.name, "valueFrom": {"secretKeyRef": ref}}


def _probe(p: Probe) -> dict[str, Any]:
    action: dict[str, Any] = (
        {"httpGet": {"path": p.http[1], "port": p.http[0]}} if p.http else {"exec": {"command": list(p.command)}}
    )
    return {**action, "periodSeconds": p.period, "timeoutSeconds": p.timeout, "failureThreshold": p.failures}


def _load_all(text: str, name: str) -> list[Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        docs = [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except yaml.YAMLError as err:
        raise RenderError(f"internal error: the rendered {name} is not valid YAML ({err}); please report it") from None
    if not docs or (name != CONFIG_KEY and not all(isinstance(d, dict) for d in docs)):
        raise RenderError(f"internal error: the rendered {name} holds no manifest; please report it")
    return docs


def _get(objects: dict[tuple[str, str], dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    try:
        return objects[(kind, name)]
    except KeyError:
        raise RenderError(f"internal error: no {kind} {name} was rendered; please report it") from None


def _same(where: str, key: str, got: Any, want: Any) -> None:
    if got != want:
        raise RenderError(f"internal error: {where}: {key} came back as {got!r}, not {want!r}; please report it")
