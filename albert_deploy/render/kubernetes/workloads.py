"""The plan's services as Kubernetes workloads: names, labels, volumes, resources, env, probes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from albert_deploy import catalog
from albert_deploy.errors import RenderError
from albert_deploy.plan.build import Plan
from albert_deploy.plan.spec import Ref, Service
from albert_deploy.profile.kubernetes import Kubernetes, Toleration
from albert_deploy.render.kubernetes.env import env_vars, from_secret, probes
from albert_deploy.render.kubernetes.names import (
    default_namespace,
    instance_label,
    kube_names,
    labels,
    selector,
    with_kube_urls,
)
from albert_deploy.render.kubernetes.objects import (
    CONFIG_KEY,
    CONFIG_MAP,
    Claim,
    Container,
    EnvVar,
    Volume,
    VolumeMount,
    Workload,
    escape,
)

# Names of the databases' ports (their numbers are the plan's `container_port`).
DATABASE_PORT_NAMES = {"redis": "redis", "postgres": "postgres", "qdrant": "http", "elasticsearch": "http"}
# Images that run as a non-root user and write their volume: the pod's fsGroup lets them.
DATABASE_FS_GROUP = {"qdrant": 1000, "elasticsearch": 1000}

# Requests per kind of container; no CPU or memory limits (throttling and OOM kills at model load
# cost more than they protect). Tune with a kustomize overlay.
REQUESTS: dict[str, dict[str, str]] = {
    "vllm": {"cpu": "4", "memory": "16Gi"},  # weights pass through host memory while loading
    "tei": {"cpu": "1", "memory": "4Gi"},
    "tei-cpu": {"cpu": "4", "memory": "4Gi"},  # on CPU the model runs on these cores
    "whisper": {"cpu": "2", "memory": "8Gi"},  # audio decoding runs on the CPU
    "redis": {"cpu": "100m", "memory": "256Mi"},
    "postgres": {"cpu": "250m", "memory": "512Mi"},
    "qdrant": {"cpu": "500m", "memory": "1Gi"},
    "elasticsearch": {"cpu": "1", "memory": "2Gi"},  # 1 GiB heap (ES_JAVA_OPTS) and as much off-heap
    "api": {"cpu": "500m", "memory": "1Gi"},
    "wait": {"cpu": "10m", "memory": "32Mi"},
}

# The API's init container: wait until every model server answers its health check and every
# database accepts connections. A Service forwards only to ready pods, so a connection through it
# means the pod's readiness probe (its health check) passes.
WAIT_SCRIPT = """\
import json, os, socket, time, urllib.request
def ready(target):
    try:
        if "url" in target:
            request = urllib.request.Request(target["url"])
            if target.get("key"):
                request.add_header("Authorization", "Bearer " + os.environ[target["key"]])
            urllib.request.urlopen(request, timeout=5).close()
        else:
            socket.create_connection((target["host"], target["port"]), timeout=5).close()
        return True
    except Exception as err:
        print("waiting for", target["name"], "-", err, flush=True)
        return False
for target in json.loads(os.environ["WAIT_FOR"]):
    while not ready(target):
        time.sleep(5)
    print(target["name"], "is ready", flush=True)
"""


@dataclass(frozen=True)
class _Ctx:
    plan: Plan
    settings: Kubernetes
    names: dict[str, str]  # service -> Kubernetes name
    instance: str
    config_hash: str


@dataclass(frozen=True)
class Layout:
    """Everything the manifests hold but the secrets' values."""

    plan: Plan  # its model URLs name the Kubernetes Services
    names: dict[str, str]  # service -> Kubernetes name
    namespace: str
    instance: str  # app.kubernetes.io/instance: the project
    config_text: str  # the API config, as the compose target writes config.yml
    workloads: list[Workload]
    claims: list[Claim]  # the model caches


def layout(plan: Plan) -> Layout:
    from albert_deploy.render.files import render_config

    settings = plan.kubernetes
    names = kube_names(plan)
    plan = with_kube_urls(plan, names)
    namespace = settings.namespace or default_namespace(plan)
    instance = instance_label(plan)
    config_text = render_config(plan)
    ctx = _Ctx(plan, settings, names, instance, hashlib.sha256(config_text.encode()).hexdigest())
    workloads = [_workload(s, ctx) for s in plan.services]
    claims = [_cache_claim(s, ctx) for s in plan.services if s.role == "model"]
    return Layout(plan, names, namespace, instance, config_text, workloads, claims)


# --- Services -> workloads ----------------------------------------------------------------------


def _workload(s: Service, ctx: _Ctx) -> Workload:
    name = ctx.names[s.name]
    gpus = gpu_count(s)
    kind, volumes, mounts, claim = "Deployment", [], [], None
    for m in s.mounts:
        if m.is_bind and s.role in ("api", "playground") and Path(m.volume).name == CONFIG_KEY:
            volumes.append(Volume("config", config_map=CONFIG_MAP))
            mounts.append(VolumeMount("config", m.target, sub_path=CONFIG_KEY, read_only=True))
        elif not m.is_bind and s.role == "database":
            kind = "StatefulSet"
            claim = Claim("data", ctx.settings.database_size, ctx.settings.storage_class,
                          labels(name, s.role, ctx.instance))  # fmt: skip
            mounts.append(VolumeMount("data", m.target))
        elif not m.is_bind and s.role == "api":  # a release asset's cache: the API downloads it at start
            volumes.append(Volume(m.volume))
            mounts.append(VolumeMount(m.volume, m.target))
        elif not m.is_bind and s.role == "model":
            volumes.append(Volume("cache", claim=cache_claim_name(name)))
            mounts.append(VolumeMount("cache", m.target))
        else:
            raise RenderError(
                f"internal error: the kubernetes target cannot mount {m.volume} in {s.name}; please report it"
            )
    if s.shm:
        volumes.append(Volume("shm", memory=s.shm.quantity()))
        mounts.append(VolumeMount("shm", "/dev/shm"))
    requests: dict[str, Any] = dict(REQUESTS.get(_resource_key(s), REQUESTS["api"]))
    limits: dict[str, Any] = {}
    if gpus:
        # Whole GPUs; an extended resource must be requested and limited alike.
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = gpus
    port_name, port = _container_port(s)
    container = Container(
        name=name,
        image=s.image,
        command=tuple(escape(a) for a in s.entrypoint or ()),
        # Each server owns its GPUs here: vLLM's default share of a GPU applies.
        args=tuple(escape(a) for a in (s.command if s.command_whole_gpus is None else s.command_whole_gpus)),
        env=env_vars(_environment_of(s), ctx.plan),
        port=(port_name, port),
        requests=requests,
        limits=limits,
        mounts=tuple(mounts),
        probes=probes(s.healthcheck) if s.healthcheck else None,
        run_as=_run_as(s),
    )
    settings = ctx.settings
    nodes = dict(settings.node_selector) | (dict(settings.gpu_node_selector) if gpus else {})
    tolerations = [*settings.tolerations, *(settings.gpu_tolerations if gpus else [])]
    # The API's Service listens on the profile's api.port, as compose publishes it; servers on their own.
    published = next((p for _, p, target in s.ports if target == port), port) if s.role == "api" else port
    return Workload(
        kind=kind,
        name=name,
        role=s.role,
        labels=labels(name, s.role, ctx.instance),
        selector=selector(name, ctx.instance),
        container=container,
        service_port=(port_name, published, port),
        gpus=gpus,
        # Replace, do not roll: a new model pod would wait for the old one's GPUs and cache volume, and
        # two API pods at once would run the database migrations (at start) concurrently.
        strategy=None if kind == "StatefulSet" else "Recreate",
        init_containers=(_wait_container(s, ctx),) if s.role == "api" else (),
        volumes=tuple(volumes),
        claim=claim,
        node_selector=nodes,
        tolerations=tuple(_toleration(t) for t in tolerations),
        fs_group=_fs_group(s),
        # A changed config rolls the API (a subPath mount never sees ConfigMap updates).
        annotations={"albert-deploy/config-sha256": ctx.config_hash} if s.role in ("api", "playground") else {},
    )


def _environment_of(s: Service) -> dict[str, Any]:
    if s.role == "database" and s.name == "postgres" and s.mounts:
        # A fresh volume's root holds lost+found, which initdb refuses: keep the data one level down.
        return {**s.environment, "PGDATA": s.mounts[0].target.rstrip("/") + "/pgdata"}
    return dict(s.environment)


def gpu_count(s: Service) -> int:
    if s.gpu is None:
        return 0
    return len(s.gpu.device_ids) if s.gpu.device_ids else int(s.gpu.count or 0)


def _resource_key(s: Service) -> str:
    if s.role == "model":
        return "tei-cpu" if s.server == "tei" and s.runs_on_cpu else s.server or "api"
    return s.name if s.role == "database" else "api"


def _container_port(s: Service) -> tuple[str, int]:
    if s.container_port is None:
        raise RenderError(f"internal error: {s.name} has no container port; please report it")
    return DATABASE_PORT_NAMES.get(s.name, "http") if s.role == "database" else "http", s.container_port


def _fs_group(s: Service) -> int | None:
    if s.role == "database":
        return DATABASE_FS_GROUP.get(s.name)
    user = catalog.SERVERS[s.server].user if s.role == "model" and s.server else None
    return int(user) if user and user.isdigit() else None


def _run_as(s: Service) -> tuple[int, int | None] | None:
    if s.user is None:
        return None
    uid, _, gid = s.user.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise RenderError(f"internal error: user {s.user!r} of {s.name} is not numeric; please report it")
    return int(uid), int(gid) if gid else None


def _toleration(t: Toleration) -> dict[str, Any]:
    return {k: v for k, v in t.model_dump().items() if v is not None}


def cache_claim_name(name: str) -> str:
    return f"{name}-cache"


def _cache_claim(s: Service, ctx: _Ctx) -> Claim:
    name = ctx.names[s.name]
    return Claim(cache_claim_name(name), ctx.settings.cache_size, ctx.settings.storage_class,
                 labels(name, s.role, ctx.instance))  # fmt: skip


def _wait_container(api: Service, ctx: _Ctx) -> Container:
    targets: list[dict[str, Any]] = []
    env: list[EnvVar] = []
    for s in ctx.plan.services:
        if s.name not in api.depends_on:  # not what starts after it (the playground)
            continue
        name = ctx.names[s.name]
        port = _container_port(s)[1]
        check = s.healthcheck.http if s.role == "model" and s.healthcheck else None
        if check is None:
            targets.append({"name": name, "host": name, "port": port})
            continue
        target: dict[str, Any] = {"name": name, "url": f"http://{name}:{port}{check.path}"}
        key = s.environment.get(check.key_env or "")
        if isinstance(key, Ref):
            target["key"] = key.name
            env.append(from_secret(key.name, key, ctx.plan))
        targets.append(target)
    env.append(EnvVar("WAIT_FOR", value=escape(json.dumps(targets, ensure_ascii=False))))
    return Container(
        name="wait-for-dependencies",
        image=api.image,
        command=("python3", "-c", escape(WAIT_SCRIPT)),
        env=tuple(env),
        requests=dict(REQUESTS["wait"]),
    )
