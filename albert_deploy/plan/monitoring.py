"""profile `monitoring:` + planned services -> what Prometheus scrapes, and the services that run it.

Every scrape target comes from the plan: each model server (every replica, never its balancer),
the API where its release serves /metrics, and dcgm-exporter where models run on GPUs. Where each
server serves its metrics (tests/standins/facts.py has the sources):
- vLLM: ``/metrics`` on its API port, open (its key guards /v1 only);
- TEI 1.8: ``/metrics`` on its API port, among the public routes; ``--prometheus-port`` (9000)
  never listens in the HTTP router, which builds the exporter without running it;
- whisper-openai-api: no metrics at all (not scraped, said so);
- Albert 0.2.0: ``/metrics`` when ``monitoring.prometheus.enabled`` (albert-deploy always renders
  it on), behind the master key, sent as a bearer token; 0.0.3 (no key): open.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from albert_deploy.catalog import HealthCheck, HttpGet, dev_tcp_get
from albert_deploy.errors import ProfileError
from albert_deploy.placement.place import Placement
from albert_deploy.plan.spec import GpuAssignment, Mount, Ref, Service
from albert_deploy.profile.monitoring import Monitoring
from albert_deploy.sizes import Size

PROMETHEUS_IMAGE = "prom/prometheus:v2.53.2"  # prometheus/prometheus@v2.53.2 Dockerfile: busybox, USER nobody
GRAFANA_IMAGE = "grafana/grafana:11.2.0"
DCGM_IMAGE = "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.8-3.6.0-ubuntu22.04"
PROMETHEUS_PORT, GRAFANA_PORT, DCGM_PORT = 9090, 3000, 9400
GRAFANA_PASSWORD = Ref("GRAFANA_ADMIN_PASSWORD")
DIR = "monitoring"  # in the render output
PROMETHEUS_FILE = f"{DIR}/prometheus.yml"
DATASOURCE_FILE = f"{DIR}/grafana-datasource.yml"
PROVIDER_FILE = f"{DIR}/grafana-dashboards.yml"
DASHBOARD_FILE = f"{DIR}/albert-dashboard.json"
DASHBOARDS_IN_GRAFANA = "/etc/grafana/dashboards"
API_KEY_FILE = "/prometheus/api-key"  # written from $MASTER_KEY at start: the key stays out of every file
# Servers that serve /metrics on their own API port (see the module docstring).
SERVES_METRICS = {"vllm": True, "tei": True, "whisper": False}


@dataclass(frozen=True)
class ScrapeTarget:
    job: str  # "models", "api" or "dcgm"
    service: str  # compose service, i.e. the host name on the stack's network
    port: int
    labels: dict[str, str] = field(default_factory=dict)  # model, server
    path: str = "/metrics"
    bearer: Ref | None = None  # sent as Authorization: Bearer (read from a file inside Prometheus)

    @property
    def address(self) -> str:
        return f"{self.service}:{self.port}"


@dataclass(frozen=True)
class GpuBudget:
    """One hosted model's planned GPU memory, to set beside DCGM_FI_DEV_FB_USED of its GPUs."""

    model: str
    services: tuple[str, ...]  # its servers (replicas)
    gpus: tuple[str, ...]  # device ids (index or UUID); empty: placed by count, or on CPU
    planned_bytes: int  # on all its GPUs together
    by_count: bool = False  # GPUs requested by count: no id to match a measurement with


@dataclass(frozen=True)
class MonitoringPlan:
    targets: tuple[ScrapeTarget, ...]
    unscraped: tuple[tuple[str, str], ...]  # (service, why)
    scrape_interval_s: int
    prometheus: tuple[str, int]  # host address and port it is published on
    grafana: tuple[str, int] | None  # None: not run
    dcgm: str | None  # why dcgm-exporter is not run, or None when it is
    budgets: tuple[GpuBudget, ...]


def plan_monitoring(
    section: Monitoring, services: tuple[Service, ...], placement: Placement, api_key: Ref | None, source: str
) -> tuple[MonitoringPlan, tuple[Service, ...]]:
    """``api_key``: the bearer the API's /metrics needs (None: open); ``source``: the profile, for errors."""
    models = [s for s in services if s.role == "model"]
    targets = [
        ScrapeTarget("models", s.name, s.container_port or 0, {"model": s.model or s.name, "server": s.server or ""})
        for s in models
        if SERVES_METRICS.get(s.server or "")
    ]
    unscraped = [(s.name, f"{s.server} serves no metrics") for s in models if not SERVES_METRICS.get(s.server or "")]
    api = next(s for s in services if s.role == "api")
    targets.append(ScrapeTarget("api", api.name, api.container_port or 0, {"server": "albert-api"}, bearer=api_key))
    gpu_ids = sorted({d for s in models if s.gpu for d in s.gpu.device_ids})
    gpu_count = sum(s.gpu.count or 0 for s in models if s.gpu and not s.gpu.device_ids)
    why_not_dcgm = _why_not_dcgm(section, bool(gpu_ids or gpu_count), source)
    extra: list[Service] = []
    if why_not_dcgm is None:
        gpus = GpuAssignment(tuple(gpu_ids), None if gpu_ids else gpu_count)
        extra.append(_dcgm(section.dcgm_image or DCGM_IMAGE, gpus))
        targets.append(ScrapeTarget("dcgm", "dcgm-exporter", DCGM_PORT, {"server": "dcgm-exporter"}))
    p, g = section.prometheus, section.grafana
    extra.insert(0, _prometheus(p.image or PROMETHEUS_IMAGE, (p.bind, p.port), api_key))
    if g.enabled:
        extra.append(_grafana(g.image or GRAFANA_IMAGE, (g.bind, g.port)))
    plan = MonitoringPlan(
        targets=tuple(targets),
        unscraped=tuple(unscraped),
        scrape_interval_s=section.scrape_interval,
        prometheus=(p.bind, p.port),
        grafana=(g.bind, g.port) if g.enabled else None,
        dcgm=why_not_dcgm,
        budgets=_budgets(models, placement),
    )
    return plan, tuple(extra)


def _why_not_dcgm(section: Monitoring, has_gpus: bool, source: str) -> str | None:
    if section.dcgm is False:
        return "monitoring.dcgm is false"
    if not has_gpus and section.dcgm == "auto":
        return "no dcgm-exporter: CPU-only host"
    if not has_gpus:
        raise ProfileError(
            f"{source}: monitoring.dcgm: true asks for dcgm-exporter, but no model runs on a GPU: set it to auto or false"
        )
    return None


def _budgets(models: list[Service], placement: Placement) -> tuple[GpuBudget, ...]:
    by_model: dict[str, list[Service]] = {}
    for s in models:
        by_model.setdefault(s.model or s.name, []).append(s)
    budgets = []
    for model, servers in by_model.items():
        ids = tuple(dict.fromkeys(d for s in servers if s.gpu for d in s.gpu.device_ids))  # replicas may share one
        planned = sum(placement.models[s.name].memory_bytes * (len(s.gpu.device_ids) or s.gpu.count or 0)
                      for s in servers if s.gpu and s.name in placement.models)  # fmt: skip
        by_count = any(s.gpu and not s.gpu.device_ids for s in servers)
        budgets.append(GpuBudget(model, tuple(s.name for s in servers), ids, planned, by_count))
    return tuple(budgets)


def _wget(port: int, path: str) -> HealthCheck:
    # Both images have busybox's wget (Prometheus: FROM busybox; Grafana: alpine), neither curl.
    test = ("CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{port}{path}")
    return HealthCheck(test=test, start_period_s=30, http=HttpGet(port, path))


def _prometheus(image: str, published: tuple[str, int], api_key: Ref | None) -> Service:
    flags = ("--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
             "--storage.tsdb.retention.time=15d", f"--web.listen-address=:{PROMETHEUS_PORT}")  # fmt: skip
    entrypoint: tuple[str, ...] = ("/bin/prometheus",)
    command: tuple[str, ...] = flags
    environment: dict[str, Ref | str] = {}
    if api_key is not None:  # Prometheus reads no variable in its config: hand the key over as a file
        script = f'umask 077 && printf "%s" "${api_key.name}" > {API_KEY_FILE} && exec /bin/prometheus "$@"'
        entrypoint, command = ("/bin/sh", "-c", script, "prometheus"), flags
        environment = {api_key.name: api_key}
    return Service(
        name="prometheus", role="metrics", image=image, entrypoint=entrypoint, command=command,
        environment=dict(environment), ports=((published[0], published[1], PROMETHEUS_PORT),),
        container_port=PROMETHEUS_PORT, mem_limit=Size(2 * 2**30),
        mounts=(Mount(f"./{PROMETHEUS_FILE}", "/etc/prometheus/prometheus.yml", read_only=True),
                Mount("prometheus-data", "/prometheus")),
        healthcheck=_wget(PROMETHEUS_PORT, "/-/ready"),
    )  # fmt: skip


def _grafana(image: str, published: tuple[str, int]) -> Service:
    env: dict[str, Ref | str] = {
        "GF_SECURITY_ADMIN_USER": "admin", "GF_SECURITY_ADMIN_PASSWORD": GRAFANA_PASSWORD,
        "GF_USERS_ALLOW_SIGN_UP": "false", "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false", "GF_PLUGINS_PLUGIN_ADMIN_ENABLED": "false",
    }  # fmt: skip
    provisioning = "/etc/grafana/provisioning"
    return Service(
        name="grafana", role="metrics", image=image, environment=dict(env),
        ports=((published[0], published[1], GRAFANA_PORT),), container_port=GRAFANA_PORT, mem_limit=Size(2**30),
        mounts=(Mount(f"./{DATASOURCE_FILE}", f"{provisioning}/datasources/albert.yml", read_only=True),
                Mount(f"./{PROVIDER_FILE}", f"{provisioning}/dashboards/albert.yml", read_only=True),
                Mount(f"./{DASHBOARD_FILE}", f"{DASHBOARDS_IN_GRAFANA}/albert-dashboard.json", read_only=True),
                Mount("grafana-data", "/var/lib/grafana")),
        healthcheck=_wget(GRAFANA_PORT, "/api/health"), depends_on=("prometheus",),
    )  # fmt: skip


def _dcgm(image: str, gpus: GpuAssignment) -> Service:
    # Ubuntu image with bash and no curl: HTTP over /dev/tcp. Not published: Prometheus scrapes it.
    return Service(
        name="dcgm-exporter", role="metrics", image=image, gpu=gpus, container_port=DCGM_PORT,
        mem_limit=Size(512 * 2**20), healthcheck=dev_tcp_get(HttpGet(DCGM_PORT, "/metrics"), start_period_s=30),
    )  # fmt: skip
