"""plan -> Kubernetes manifests, checked, then written all at once, in three parts:

- ``app/``: a kustomize directory for ``kubectl apply -k DIR/app`` (the one to commit for GitOps);
  ``kubectl delete -k DIR/app`` removes only these objects.
- ``data/``: the Namespace and the model caches' claims, applied once with ``kubectl apply -k DIR/data``.
  Kept out of ``app/`` because deleting a namespace deletes every claim in it, and ``delete -k`` would.
- ``secret.yaml`` at the top, in no kustomization: the generated secrets, applied with ``kubectl apply -f``.

The plan is the compose target's, mapped object by object (``kubernetes/workloads.py``): model servers and
the API become Deployments with a Service, databases StatefulSets with a volume claim, model caches
PersistentVolumeClaims, the API config (the release template's text) a ConfigMap, and every
generated secret one Secret, the only file that holds any. docs/kubernetes.md explains the choices.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from albert_deploy import __version__
from albert_deploy.errors import RenderError
from albert_deploy.plan.access import refuse_cluster_exposure
from albert_deploy.plan.build import Plan
from albert_deploy.plan.spec import Joined, Ref
from albert_deploy.render import envfile, output
from albert_deploy.render.files import Rendered, to_yaml_scalar
from albert_deploy.render.kubernetes.ingress import ingress, without_front
from albert_deploy.render.kubernetes.names import labels
from albert_deploy.render.kubernetes.objects import (
    CONFIG_KEY,
    CONFIG_MAP,
    GENERATED_SECRET,
    OPERATOR_SECRET,
    STACK_NAME,
)
from albert_deploy.render.kubernetes.workloads import Layout, layout
from albert_deploy.resources import template_text

APP_DIR = "app"  # `kubectl apply -k` / `delete -k`: workloads, services, config
DATA_DIR = "data"  # applied once, never deleted by `delete -k DIR/app`: namespace and caches
NAMESPACE_FILE = "namespace.yaml"
SECRET_FILE = "secret.yaml"
CONFIGMAP_FILE = "configmap.yaml"
PVC_FILE = "persistentvolumeclaims.yaml"
DEPLOYMENTS_FILE = "deployments.yaml"
STATEFULSETS_FILE = "statefulsets.yaml"
SERVICES_FILE = "services.yaml"
KUSTOMIZATION_FILE = "kustomization.yaml"
INGRESS_FILE = "ingress.yaml"
GENERATED = (APP_DIR, DATA_DIR, SECRET_FILE)
COMPOSE_FILES = ("compose.yml", ".env")


def render_into(plan: Plan, out_dir: Path) -> dict[str, Any]:
    """Render, keeping the secrets already in ``out_dir``, and write; what was written, for the CLI."""
    rendered, manifests = _render(plan, previous_secrets(out_dir))
    change = write_kubernetes(rendered, out_dir)
    operator = {e.key: e.optional for w in manifests.workloads for c in (w.container, *w.init_containers) for e in c.env
                if e.secret == OPERATOR_SECRET}  # fmt: skip
    return {
        "target": "kubernetes",
        "files": sorted(rendered.files),
        "change": change,
        "namespace": manifests.namespace,
        "app": APP_DIR,
        "data": DATA_DIR if any(f.startswith(DATA_DIR + "/") for f in rendered.files) else None,
        "secret": SECRET_FILE,
        "workloads": [
            {"service": w.name, "kind": w.kind, "role": w.role, "gpus": w.gpus, "image": w.container.image}
            for w in manifests.workloads
        ],
        "renamed": {old: new for old, new in manifests.names.items() if old != new},
        "operator_secret": OPERATOR_SECRET,
        "operator_required": sorted(k for k, optional in operator.items() if k and not optional),
        "operator_optional": sorted(k for k, optional in operator.items() if k and optional),
    }


def render_kubernetes(plan: Plan, previous: dict[str, str] | None = None) -> Rendered:
    """Every manifest as text. ``previous``: the secrets of the last render, which are kept."""
    return _render(plan, previous or {})[0]


def _render(plan: Plan, previous: dict[str, str]) -> tuple[Rendered, Layout]:
    refuse_cluster_exposure(plan.api_access, plan.release.version, plan.source)
    if plan.balancers:
        raise RenderError(
            f"{plan.source}: model {plan.balancers[0].service} has replicas: the Kubernetes target does not "
            "render replicas yet (each server is one Deployment with its own GPUs; albert-deploy's nginx "
            "balancer and one-at-a-time replacement are Compose-only). Remove `replicas` for this target, "
            "or scale its Deployment behind its Service yourself"
        )
    if plan.monitoring is not None:
        raise RenderError(
            f"{plan.source}: `monitoring` is Compose-only: the Kubernetes target does not render Prometheus, Grafana "
            "or dcgm-exporter. Remove `monitoring` for this target and use the kube-prometheus stack (Prometheus "
            "Operator, with NVIDIA's dcgm-exporter Helm chart on GPU nodes) to scrape the servers' /metrics"
        )
    plan = without_front(plan)
    manifests = layout(plan)
    secrets = secret_values(plan, previous)
    env = _environment()
    common = {"version": __version__, "source": plan.source, "namespace": manifests.namespace}

    def render(template: str, **context: Any) -> str:
        return str(env.get_template(f"kubernetes/{template}.j2").render(**common, **context))

    data: dict[str, str] = {}
    if plan.kubernetes.create_namespace:
        data[NAMESPACE_FILE] = render(NAMESPACE_FILE, labels=labels(STACK_NAME, "namespace", manifests.instance))
    if manifests.claims:
        data[PVC_FILE] = render(PVC_FILE, claims=manifests.claims)
    if data:
        data[KUSTOMIZATION_FILE] = render(KUSTOMIZATION_FILE, resources=list(data), part=DATA_DIR)
    app: dict[str, str] = {}
    app[CONFIGMAP_FILE] = render(CONFIGMAP_FILE, name=CONFIG_MAP, key=CONFIG_KEY, config=manifests.config_text,
                                 labels=labels(manifests.names["api"], "api", manifests.instance))  # fmt: skip
    for name, kind in ((DEPLOYMENTS_FILE, "Deployment"), (STATEFULSETS_FILE, "StatefulSet")):
        workloads = [w for w in manifests.workloads if w.kind == kind]
        if workloads:
            app[name] = render(name, workloads=workloads)
    app[SERVICES_FILE] = render(SERVICES_FILE, workloads=manifests.workloads)
    front = ingress(manifests.plan, manifests.names)
    if front:
        app[INGRESS_FILE] = render(INGRESS_FILE, ingress=front, labels=labels(front.name, "front", manifests.instance))
    app[KUSTOMIZATION_FILE] = render(KUSTOMIZATION_FILE, resources=list(app), part=APP_DIR)
    files = {f"{DATA_DIR}/{n}": t for n, t in data.items()}
    files[SECRET_FILE] = render(SECRET_FILE, name=GENERATED_SECRET, secrets=secrets,
                                labels=labels(STACK_NAME, "secrets", manifests.instance))  # fmt: skip
    files.update({f"{APP_DIR}/{n}": t for n, t in app.items()})

    from albert_deploy.render.kubernetes.validate import validate_manifests

    validate_manifests(files, manifests, secrets)
    return Rendered(files, (SECRET_FILE,)), manifests


def write_kubernetes(rendered: Rendered, out_dir: Path) -> str:
    """Returns "created", "updated" (previous output kept in DIR.backups/) or "unchanged"."""
    compose = sorted(p.name for p in out_dir.iterdir() if p.name in COMPOSE_FILES) if out_dir.is_dir() else []
    if compose:
        raise RenderError(
            f"{out_dir.resolve()}: holds a Docker Compose rendering ({', '.join(compose)}): "
            "give the Kubernetes manifests their own directory with -o, e.g. -o deploy-kubernetes"
        )
    return output.replace_directory(out_dir, rendered.files, rendered.secret_files, GENERATED)


def previous_secrets(out_dir: Path) -> dict[str, str]:
    """The Secret of the last render into ``out_dir`` (``{}`` when there is none)."""
    import yaml

    path = out_dir / SECRET_FILE
    if not path.is_file():
        return {}
    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        secret = next(d for d in docs if isinstance(d, dict) and d.get("kind") == "Secret")
        values = {**_decoded(secret.get("data") or {}), **(secret.get("stringData") or {})}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
            raise ValueError("its values are not all text")
    except (OSError, UnicodeDecodeError, yaml.YAMLError, StopIteration, ValueError, AttributeError) as err:
        reason = "it holds no Secret" if isinstance(err, StopIteration) else str(err).splitlines()[0]
        raise RenderError(
            f"{path}: cannot read the secrets kept there ({reason}); repair it or restore it from "
            f"{output.backups_dir(out_dir)}/ (deleting it generates new passwords, which locks the databases out)"
        ) from None
    return values


def _decoded(data: dict[str, Any]) -> dict[str, str]:
    import base64

    return {k: base64.b64decode(str(v)).decode("utf-8") for k, v in data.items()}


def secret_values(plan: Plan, previous: dict[str, str]) -> dict[str, str]:
    """Keep every value already there, generate what is missing (as the compose target's .env does)."""
    values = {name: previous.get(name) or envfile.new_secret() for name in plan.secrets}
    values.update((k, v) for k, v in previous.items() if k not in values)
    return values


@cache  # compiled templates are reused by later renders in the same process
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(template_text),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["q"] = _scalar
    env.filters["comment"] = lambda text: "".join(c if c.isprintable() else "?" for c in str(text))
    env.filters["block"] = _block
    return env


def _scalar(value: Any) -> str:
    """JSON, which YAML reads back unchanged. Kubernetes' own `$(NAME)` escaping is done before."""
    if _has_reference(value):
        raise RenderError(f"internal error: a ${{NAME}} reference reached a manifest ({value!r}); please report it")
    return to_yaml_scalar(value, lambda text: text)


def _has_reference(value: Any) -> bool:
    if isinstance(value, (Ref, Joined)):
        return True
    if isinstance(value, dict):
        return any(_has_reference(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_reference(v) for v in value)
    return False


def _block(text: str, indent: int) -> str:
    """A YAML literal block, for the config's readability; JSON where a block could not hold the text."""
    lines = text.split("\n")
    plain = all(c.isprintable() or c == "\t" for line in lines for c in line)
    if not text or not plain or text[0] in " \t\n" or text.endswith("\n\n") or "\ufeff" in text:
        return _scalar(text)
    chomp = "" if text.endswith("\n") else "-"
    body = lines[:-1] if text.endswith("\n") else lines
    pad = " " * indent
    return f"|{chomp}\n" + "\n".join(pad + line if line else "" for line in body)
