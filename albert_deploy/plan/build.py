"""profile -> plan: every service to run and every endpoint the API config lists, as plain data.

The plan is self-sufficient: after ``build_plan`` no target (compose, config, Kubernetes, runbook,
pull, bundle, the offline check) reads the profile again."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from albert_deploy import catalog
from albert_deploy.errors import PlacementError, ProfileError
from albert_deploy.placement.place import Placement, place
from albert_deploy.plan import databases, order, replicas, servers, startup
from albert_deploy.plan.access import ApiAccess, api_access
from albert_deploy.plan.assets import ReleaseAsset
from albert_deploy.plan.front import Front, front_door
from albert_deploy.plan.monitoring import MonitoringPlan, plan_monitoring
from albert_deploy.plan.releases import MODULES, Release
from albert_deploy.plan.spec import (
    Endpoint,
    GpuStartOrder,
    Joined,
    ModelCache,
    Ref,
    Service,
    reachable_host,
    server_url,
)
from albert_deploy.profile.model import ExternalModel, HostedModel, Profile

if TYPE_CHECKING:
    from albert_deploy.profile.kubernetes import Kubernetes

API_PORT = 8000  # every release's API listens here in its container (see releases/)
# Client type the 0.1+ API uses for each hosted server.
SERVER_CLIENT = {"vllm": "vllm", "tei": "tei", "whisper": "openai"}
EXTERNAL_CLIENT = {
    catalog.TEXT_GENERATION: "openai",
    catalog.EMBEDDINGS: "openai",
    catalog.RERANK: "tei",
    catalog.SPEECH: "openai",
}


@dataclass(frozen=True)
class Plan:
    project: str
    source: str  # where the profile came from, for the generated files' header
    release: Release
    vector_store: str
    services: tuple[Service, ...]  # databases, then model servers, then the API
    endpoints: tuple[Endpoint, ...]
    config: dict[str, Any]  # the release template's context
    secrets: tuple[str, ...]  # generated into .env
    operator_env: tuple[str, ...]  # the operator provides these (external keys, HF_TOKEN)
    placement: Placement = field(compare=False)
    api_access: ApiAccess  # whether the API asks for a key (0.0.3 does not), and where it is published
    offline: bool = False  # air-gapped host: refuse to start when an image or a model cache is missing
    caches: tuple[ModelCache, ...] = ()  # every hosted model's weights, for pull, bundle and the offline check
    assets: tuple[ReleaseAsset, ...] = ()  # files the API reads at start (0.2.0: tiktoken), same uses
    downloader_image: str = catalog.DOWNLOADER_IMAGE  # `pull` downloads the models' weights in it
    start_order: tuple[GpuStartOrder, ...] = ()  # per GPU, its servers in start steps
    balancers: tuple[replicas.Balancer, ...] = ()  # models with replicas: `up` replaces those one at a time
    kubernetes_settings: Kubernetes | None = field(default=None, compare=False)  # None: the profile has none
    # Lock file: pinned ``repository@sha256:…`` -> its image id, for hosts where only the id resolves.
    locked_ids: dict[str, str] = field(default_factory=dict, compare=False)
    monitoring: MonitoringPlan | None = None  # Prometheus, Grafana, dcgm-exporter: what they scrape and show
    front: Front | None = None  # api.public: the TLS front door (its routes include the playground's)
    api_url: str = ""  # where clients reach the API: through the front door, or api.bind:api.port
    gpus_detected: bool = False  # `gpus: auto`: the GPUs were read off this host, an input no file records

    @property
    def kubernetes(self) -> Kubernetes:
        """The profile's `kubernetes:` settings, or their defaults (built only for that target)."""
        from albert_deploy.profile.kubernetes import Kubernetes

        return self.kubernetes_settings or Kubernetes.model_validate({})

    @property
    def playground_database(self) -> str:
        """The playground's own database on the stack's postgres (0.2.0), or "" without a playground."""
        from albert_deploy.plan.releases.playground import PLAYGROUND_DB

        return PLAYGROUND_DB if any(s.role == "playground" for s in self.services) else ""

    @property
    def volumes(self) -> list[str]:
        return sorted({m.volume for s in self.services for m in s.mounts if not m.is_bind})


def build_plan(
    profile: Profile, source: str, pins: dict[str, str] | None = None, locked_ids: dict[str, str] | None = None
) -> Plan:
    """``pins``: image -> ``repository@sha256:…`` from the lock file (see ``lockfile``);
    ``locked_ids``: ``repository@sha256:…`` -> the image id the lock recorded with it."""
    release_module = MODULES[profile.api.release]
    release = release_module.RELEASE
    door = front_door(profile, source, API_PORT)
    access = api_access(release.version, door.api_bind, profile.api.allow_unauthenticated_access, source)
    expanded = replicas.expand(profile)  # a model's replicas are placed like models of their own
    placement = place_models(expanded, source)
    endpoints = [_endpoint(m) for m in profile.models]
    if release.substitutes_env:
        _refuse_substitution_syntax(profile, source)
    group = {r: m.name or "" for m in profile.hosted for r in replicas.replica_names(m.name or "", m.replicas)}
    unchained = [
        servers.model_server(m, placement.models[m.name or ""], profile.offline, group.get(m.name or "", ""))
        for m in expanded.hosted
    ]
    start_order = order.gpu_start_order(unchained, {n: m.memory_bytes for n, m in placement.models.items()})
    model_servers = order.chained(unchained, start_order)
    balancers = [
        (m, replicas.balancer(m, catalog.SERVERS[m.server or ""].port)) for m in profile.hosted if m.replicas > 1
    ]
    balancer_image = profile.images.get("balancer", replicas.BALANCER_IMAGE)
    fronts = [replicas.balancer_service(m, b, balancer_image) for m, b in balancers]
    dbs = databases.for_release(
        {**release_module.IMAGES, **profile.images}, release.uses_postgres, profile.api.vector_store
    )
    config = release_module.config_context(endpoints, profile.api.vector_store)
    config["log_level"] = profile.api.log_level
    config["playground"] = door.config.get("playground")
    config_refs = sorted({r.name for r in _refs(config)})
    api = release_module.api_service(
        profile.images.get("api", release.image), {name: Ref(name) for name in config_refs if name != "MASTER_KEY"}
    )
    api = _with_api_wiring(api, profile, [*dbs, *model_servers, *fronts])
    if door.front:  # the front door publishes it; the API binds only to the compose network
        api = replace(api, ports=())
    if not profile.offline:
        # tiktoken re-raises a failed cache write only in a directory named by TIKTOKEN_CACHE_DIR
        # (load.py:78-81): online, leave it unset so that an unfilled volume only costs a download.
        unset = {a.env for a in getattr(release_module, "ASSETS", ())}
        api = replace(api, environment={k: v for k, v in api.environment.items() if k not in unset})
    services = tuple(_with_interval(s, profile.health_interval) for s in (*dbs, *model_servers, *fronts, api))
    services = _ordered_at_boot(services, start_order, endpoints, getattr(release_module, "IMAGE_COMMAND", ()))
    services += tuple(_with_interval(s, profile.health_interval) for s in door.services)
    monitoring = None
    if profile.monitoring and profile.monitoring.enabled:  # its services come last, after the API
        key = getattr(release_module, "MASTER_KEY", None)
        monitoring, watchers = plan_monitoring(profile.monitoring, services, placement, key, source)
        services = (*services, *(_with_interval(s, profile.health_interval) for s in watchers))
    if pins:
        services = tuple(replace(s, image=pins.get(s.image, s.image)) for s in services)
    all_refs = {r for s in services for r in _refs(s.environment)} | set(_refs(config))
    operator = sorted({r.name for r in all_refs if r.default is not None} | _external_keys(profile))
    secrets = sorted({r.name for r in all_refs} - set(operator))
    by_name = {s.name: s for s in services}
    return Plan(
        project=profile.project,
        source=source,
        release=release,
        vector_store=profile.api.vector_store,
        services=services,
        endpoints=tuple(endpoints),
        config=config,
        secrets=tuple(secrets),
        operator_env=tuple(operator),
        placement=placement,
        api_access=access,
        offline=profile.offline,
        # A replicated model's weights: one volume, read by every replica (the first stands for them).
        caches=tuple(servers.model_cache(m, by_name[_first_server(m)]) for m in profile.hosted),
        assets=tuple(getattr(release_module, "ASSETS", ())),
        downloader_image=profile.images.get("downloader", catalog.DOWNLOADER_IMAGE),
        start_order=start_order,
        balancers=tuple(b for _, b in balancers),
        kubernetes_settings=profile.kubernetes,
        locked_ids=dict(locked_ids or {}),
        monitoring=monitoring,
        front=door.front,
        api_url=door.front.api_url if door.front else f"http://{reachable_host(profile.api.bind)}:{profile.api.port}",
        gpus_detected=profile.gpus == "auto",
    )


def _first_server(model: HostedModel) -> str:
    return f"{model.name}-1" if model.replicas > 1 else model.name or ""


def place_models(profile: Profile, source: str) -> Placement:
    """GPU placement, with errors naming the profile file like every other profile error."""
    try:
        return place(profile)
    except PlacementError as err:
        raise PlacementError(f"{source}: {err}") from None


def _endpoint(model: HostedModel | ExternalModel) -> Endpoint:
    if isinstance(model, ExternalModel):
        return Endpoint(
            name=model.name,
            type=model.type,
            served_name=model.model,
            url=model.url,
            key=Ref(model.api_key_env) if model.api_key_env else None,
            client=model.client or EXTERNAL_CLIENT[model.type],
            hosted=False,
        )
    server = catalog.SERVERS[model.server or ""]
    return Endpoint(
        name=model.name or "",
        type=model.type or "",
        served_name=model.served_name,
        url=server_url(model.name or "", server.port),
        port=server.port,
        key=servers.key_ref(model.name or ""),
        client=SERVER_CLIENT[server.name],
        hosted=True,
    )


def _with_api_wiring(api: Service, profile: Profile, others: list[Service]) -> Service:
    # The API probes its models once at start and never retries: it waits for all of them.
    return replace(
        api,
        ports=((profile.api.bind, profile.api.port, API_PORT),),
        container_port=API_PORT,
        depends_on=tuple(s.name for s in others),
    )


def _ordered_at_boot(
    services: tuple[Service, ...],
    start_order: tuple[GpuStartOrder, ...],
    endpoints: list[Endpoint],
    image_command: tuple[str, ...],
) -> tuple[Service, ...]:
    """The waits that keep the start order when Docker alone starts the stack (plan/startup.py)."""
    *others, api = services
    waiting = {s.name: s for s in startup.wait_for_predecessors([s for s in others if s.role == "model"], start_order)}
    others = [waiting.get(s.name, s) for s in others]
    bound = startup.api_bound(others, start_order)
    deps = [s for s in others if s.name in api.depends_on]
    command = api.compose_command or api.command or image_command
    return (*others, startup.wait_for_dependencies(api, deps, endpoints, bound, command))


def _with_interval(service: Service, seconds: int) -> Service:
    if service.healthcheck is None:
        return service
    return replace(service, healthcheck=replace(service.healthcheck, interval_s=seconds))


def _external_keys(profile: Profile) -> set[str]:
    return {m.api_key_env for m in profile.models if isinstance(m, ExternalModel) and m.api_key_env}


def _refuse_substitution_syntax(profile: Profile, source: str) -> None:
    # 0.1+ releases replace ${NAME} anywhere in their config and offer no escape for it.
    for i, model in enumerate(profile.models):
        for key in ("name", "served_model_name", "model"):
            value = getattr(model, key, None)
            if isinstance(value, str) and "${" in value:
                raise ProfileError(
                    f"{source}: models.{i}.{key}: '${{' cannot appear in a value of the API config "
                    f"(release {profile.api.release} would replace it): remove it"
                )


def _refs(value: Any) -> list[Ref]:
    """Every Ref inside a nested structure of dicts, lists, Joined and Refs."""
    if isinstance(value, Ref):
        return [value]
    if isinstance(value, Joined):
        return [p for p in value.parts if isinstance(p, Ref)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in _refs(v)]
    return []
