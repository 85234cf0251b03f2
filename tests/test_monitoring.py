"""`monitoring:` (issue 12, part 1) without a daemon: profile, plan targets, rendered files, refusals, status.

The real Prometheus runs in tests/test_monitoring_docker.py. Here: the scrape targets come from the
plan (replicas, not balancers; no whisper; the API with its master key); the files load back and
Grafana's follow its documented format (tests/grafana_provisioning.py); `promtool` (Debian's
prometheus package) accepts prometheus.yml; Kubernetes refuses; `status` reads GPU memory from a
fake Prometheus that answers like the real one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from albert_deploy.cli import cli
from albert_deploy.converge import gpumemory
from albert_deploy.errors import ProfileError
from albert_deploy.plan.build import Plan, build_plan
from albert_deploy.plan.monitoring import PROMETHEUS_IMAGE, SERVES_METRICS
from albert_deploy.profile.load import load_profile
from albert_deploy.render.files import render_plan
from albert_deploy.render.monitoring import DATASOURCE_UID, dashboard_queries
from albert_deploy.views import status_text
from tests import grafana_provisioning as grafana
from tests.helpers import compose_config, fixed_env, free_port
from tests.standins import facts

GPUS = {"count": 2, "memory": "80GB", "name": "NVIDIA H100 80GB HBM3"}
MODELS = [
    {"model": "intfloat/multilingual-e5-large"},
    {"model": "AgentPublic/guillaumetell-7b", "replicas": 2},
    {"model": "openai/whisper-large-v3-turbo"},
]


def _profile(tmp_path: Path, monitoring: Any = None, **changes: Any) -> Path:
    data: dict[str, Any] = {"project": "mon", "gpus": GPUS, "models": MODELS, **changes}
    if monitoring is not None:
        data["monitoring"] = monitoring
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _plan(tmp_path: Path, monitoring: Any = None, **changes: Any) -> Plan:
    path = _profile(tmp_path, monitoring, **changes)
    return build_plan(load_profile(str(path)), str(path))


def _rendered(plan: Plan) -> dict[str, str]:
    return render_plan(plan, fixed_env(plan.secrets)).files


# ---------------------------------------------------------------- profile
def test_off_by_default_and_adds_nothing(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert plan.monitoring is None and {s.role for s in plan.services} == {"database", "model", "balancer", "api"}
    assert "GRAFANA_ADMIN_PASSWORD" not in plan.secrets and not any(
        f.startswith("monitoring/") for f in _rendered(plan)
    )
    assert _plan(tmp_path, False).monitoring is None and _plan(tmp_path, {"enabled": False}).monitoring is None


@pytest.mark.parametrize(
    ("monitoring", "message"),
    [
        ({"prometheus": {"bind": "localhost"}}, r"monitoring\.prometheus\.bind: .*not an IP address"),
        ({"grafana": {"bind": "999.1.1.1"}}, r"monitoring\.grafana\.bind: '999\.1\.1\.1' is not an IP address"),
        ({"grafana": {"port": 8080}}, r"monitoring\.grafana\.port: host port 8080 is already used by api\.port"),
        ({"scrape_interval": 0}, r"monitoring\.scrape_interval"),
        ({"dcgm": "yes"}, r"monitoring\.dcgm"),
        ({"grafna": {}}, r"monitoring: unknown key 'grafna'"),
    ],
)
def test_bad_monitoring_keys_are_refused_by_name(tmp_path: Path, monitoring: Any, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        load_profile(str(_profile(tmp_path, monitoring)))


def test_a_model_cannot_take_a_monitoring_service_name(tmp_path: Path) -> None:
    models = [*MODELS, {"model": "BAAI/bge-reranker-v2-m3", "name": "grafana"}]
    with pytest.raises(ProfileError, match=r"models\.3\.name: 'grafana' is the name of a monitoring service"):
        load_profile(str(_profile(tmp_path, True, models=models)))


def test_dcgm_true_without_gpus_is_refused(tmp_path: Path) -> None:
    cpu = [{"model": "intfloat/multilingual-e5-large", "gpus": "cpu"}]
    with pytest.raises(
        ProfileError, match=r"monitoring\.dcgm: true asks for dcgm-exporter, but no model runs on a GPU"
    ):
        _plan(tmp_path, {"dcgm": True}, models=cpu, gpus=None, api={"release": "0.2.0"})


# ---------------------------------------------------------------- plan
def test_targets_come_from_the_plan(tmp_path: Path) -> None:
    plan = _plan(tmp_path, True)
    assert plan.monitoring is not None
    got = {(t.job, t.address, t.labels.get("model")) for t in plan.monitoring.targets}
    assert got == {
        ("models", "multilingual-e5-large:80", "multilingual-e5-large"),  # TEI: its API port, not 9000
        ("models", "guillaumetell-7b-1:8000", "guillaumetell-7b"),  # every replica, never the balancer
        ("models", "guillaumetell-7b-2:8000", "guillaumetell-7b"),
        ("api", "api:8000", None),
        ("dcgm", "dcgm-exporter:9400", None),
    }
    api = next(t for t in plan.monitoring.targets if t.job == "api")
    assert api.bearer is not None and api.bearer.name == "MASTER_KEY"
    assert plan.monitoring.unscraped == (("whisper-large-v3-turbo", "whisper serves no metrics"),)
    names = [s.name for s in plan.services]
    assert names[-3:] == ["prometheus", "dcgm-exporter", "grafana"] and "prometheus" not in plan.services[-4].depends_on
    dcgm = plan.services[-2]
    assert dcgm.gpu is not None and dcgm.gpu.device_ids == ("0",) and not dcgm.ports  # GPU hosts only, not published
    assert "GRAFANA_ADMIN_PASSWORD" in plan.secrets


def test_the_targets_follow_the_facts() -> None:
    assert {k: bool(facts.server_value(f"{k} metrics")) for k in SERVES_METRICS} == SERVES_METRICS
    assert facts.server_value("tei metrics port") == "api"  # scraped on its API port
    assert PROMETHEUS_IMAGE.rsplit(":", 1)[1] == facts.PROMETHEUS.rsplit("@", 1)[1]


def test_cpu_only_plans_no_dcgm_and_0_0_3_scrapes_its_api_without_a_key(tmp_path: Path) -> None:
    cpu = [{"model": "intfloat/multilingual-e5-large", "gpus": "cpu"},
           {"name": "llm", "type": "text-generation", "url": "https://llm.example.org", "model": "m"}]  # fmt: skip
    plan = _plan(tmp_path, {"grafana": {"enabled": False}}, models=cpu, gpus=None, api={"release": "0.0.3"})
    assert plan.monitoring is not None and plan.monitoring.dcgm == "no dcgm-exporter: CPU-only host"
    assert [s.name for s in plan.services if s.role == "metrics"] == ["prometheus"]
    prometheus = next(s for s in plan.services if s.name == "prometheus")
    assert prometheus.entrypoint == ("/bin/prometheus",) and "MASTER_KEY" not in prometheus.environment
    assert [t.bearer for t in plan.monitoring.targets if t.job == "api"] == [None]


# ---------------------------------------------------------------- render
def test_rendered_compose_publishes_on_loopback_and_keeps_secrets_in_env(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {"grafana": {"bind": "0.0.0.0", "port": 3300}})
    files = _rendered(plan)
    out = tmp_path / "out"
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    services = compose_config(out)["services"]  # what the real Compose v2 reads
    ports = {n: [(p["host_ip"], p["published"], p["target"]) for p in services[n].get("ports", [])]
             for n in ("prometheus", "grafana", "dcgm-exporter")}  # fmt: skip
    assert ports == {"prometheus": [("127.0.0.1", "9090", 9090)], "grafana": [("0.0.0.0", "3300", 3000)],
                     "dcgm-exporter": []}  # fmt: skip
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "test-grafana-admin-password"
    assert "${GRAFANA_ADMIN_PASSWORD}" in files["compose.yml"] and "${MASTER_KEY}" in files["compose.yml"]
    secrets = [v for v in re.findall(r"=(.+)", files[".env"])]
    monitoring = "".join(t for n, t in files.items() if n.startswith("monitoring/"))
    assert secrets and not any(s in monitoring for s in secrets)  # the key reaches Prometheus as a file at start


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    """Debian's promtool (the prometheus package) checks the rendered file; the key file is made here."""
    plan = _plan(tmp_path, True)
    config = yaml.safe_load(_rendered(plan)["monitoring/prometheus.yml"])
    assert [j["job_name"] for j in config["scrape_configs"]] == ["prometheus", "models", "api", "dcgm"]
    api = next(j for j in config["scrape_configs"] if j["job_name"] == "api")
    assert api["authorization"] == {"type": "Bearer", "credentials_file": "/prometheus/api-key"}
    key = tmp_path / "api-key"
    key.write_text("k")
    api["authorization"]["credentials_file"] = str(key)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (scripts/setup-test-env.sh)"
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_files_follow_the_documented_format(tmp_path: Path) -> None:
    files = _rendered(_plan(tmp_path, True))
    assert grafana.datasources(yaml.safe_load(files["monitoring/grafana-datasource.yml"])) == []
    assert grafana.providers(yaml.safe_load(files["monitoring/grafana-dashboards.yml"])) == []
    board = json.loads(files["monitoring/albert-dashboard.json"])
    assert grafana.dashboard(board, {DATASOURCE_UID}) == []
    titles = {p["title"]: p for p in board["panels"]}
    assert {"Tokens per second", "Request latency p95 per model (s)", "GPU memory per model vs planned budget",
            "API requests per second by status", "Service health (1 = up)", "Not scraped"} <= set(titles)  # fmt: skip
    budget = [t["expr"] for t in titles["GPU memory per model vs planned budget"]["targets"]]
    assert any(e.startswith('sum(DCGM_FI_DEV_FB_USED{gpu=~"0"})') for e in budget)
    assert any(re.fullmatch(r"vector\(\d+\)", e) for e in budget)  # the planner's figure, a constant series


def test_the_checker_catches_what_grafana_would_refuse() -> None:
    assert grafana.datasources({"apiVersion": 2}) == ["apiVersion must be 1"]
    assert "datasources.0: type is required" in grafana.datasources({"apiVersion": 1, "datasources": [{"name": "x"}]})
    bad = {"apiVersion": 1, "providers": [{"name": "p", "type": "file", "options": {"path": "rel/$HOME"}}]}
    assert len(grafana.providers(bad)) == 2
    panel = {"id": 1, "type": "timeseries", "title": "t", "gridPos": {"x": 12, "y": 0, "w": 16, "h": 8},
             "targets": [{"refId": "A", "expr": "up", "datasource": {"uid": "other"}}, {"refId": "A", "expr": "up"}]}  # fmt: skip
    problems = grafana.dashboard({"uid": "u", "title": "t", "schemaVersion": 39, "panels": [panel]}, {"ds"})
    assert len(problems) == 4, problems  # grid, duplicate refId, two unknown data sources


def test_kubernetes_refuses_monitoring_by_name(tmp_path: Path) -> None:
    models = [{"model": "intfloat/multilingual-e5-large"}, {"model": "AgentPublic/guillaumetell-7b"}]
    path = _profile(tmp_path, True, models=models)
    result = CliRunner().invoke(cli, ["render", str(path), "-o", str(tmp_path / "k"), "--target", "kubernetes"])
    assert result.exit_code == 1
    assert "`monitoring` is Compose-only" in result.output and "kube-prometheus" in result.output


# ---------------------------------------------------------------- status: GPU memory from Prometheus
@pytest.fixture
def fake_prometheus() -> Iterator[tuple[int, list[str]]]:
    """Answers /api/v1/query like Prometheus 2.x, with dcgm-exporter's series for GPUs 0 and 1 (MiB)."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            series = [{"metric": {"__name__": "DCGM_FI_DEV_FB_USED", "gpu": g, "UUID": f"GPU-{g}", "modelName": "H100"},
                       "value": [1.0, mib]} for g, mib in (("0", "30000"), ("1", "512"))]  # fmt: skip
            body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": series}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], asked
    finally:
        server.shutdown()


def test_status_sets_measured_gpu_memory_beside_the_budget(tmp_path: Path, fake_prometheus: Any) -> None:
    port, asked = fake_prometheus
    plan = _plan(tmp_path, {"prometheus": {"port": port}})
    report = gpumemory.report(plan)
    assert asked == ["/api/v1/query?query=DCGM_FI_DEV_FB_USED"] and report["measured"] is True
    rows = {m["model"]: m for m in report["models"]}
    assert rows["multilingual-e5-large"]["measured_bytes"] == 30000 * 2**20  # GPU 0, shared: said so
    assert "shared with" in rows["multilingual-e5-large"]["note"]
    assert all(m["planned_bytes"] > 0 for m in rows.values())
    text = status_text({"project": "mon", "services": [_row()], "drift": False, "gpu_memory": report})
    assert "GPU memory (dcgm-exporter, through Prometheus):" in text
    assert re.search(r"\nmultilingual-e5-large +0 +\d+\.\d GB +31\.5 GB +whole GPU, shared with", text), text
    # Two replicas on one GPU: their budgets add up, the GPU is measured once.
    assert rows["guillaumetell-7b"]["gpus"] == "0" and rows["guillaumetell-7b"]["measured_bytes"] == 30000 * 2**20


def test_status_says_what_it_could_not_read(tmp_path: Path) -> None:
    plan = _plan(tmp_path, {"prometheus": {"port": free_port()}})
    report = gpumemory.report(plan)
    assert report["measured"] is False and "did not answer" in report["note"]
    assert {m["measured_bytes"] for m in report["models"]} == {None}
    cpu = [{"model": "intfloat/multilingual-e5-large", "gpus": "cpu"}]
    cpu_plan = _plan(tmp_path, True, models=cpu, gpus=None)
    text = status_text({"project": "p", "services": [_row()], "drift": False, "gpu_memory": gpumemory.report(cpu_plan)})
    assert text.endswith("GPU memory: not measured (no dcgm-exporter: CPU-only host)")
    assert gpumemory.report(_plan(tmp_path))["note"].startswith("monitoring is off")


def _row() -> dict[str, Any]:
    return {"service": "api", "state": "running", "health": "healthy", "gpus": "-", "ports": [], "lock": "-",
            "drift": "none", "started_by": "albert-deploy"}  # fmt: skip


def test_queries_are_the_dashboards(tmp_path: Path) -> None:
    plan = _plan(tmp_path, True)
    assert plan.monitoring is not None
    board = json.loads(_rendered(plan)["monitoring/albert-dashboard.json"])
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert exprs == [q for _, q, _ in dashboard_queries(plan.monitoring)]
