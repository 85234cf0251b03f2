"""Monitoring on a real daemon (issue 12, part 1): the real Prometheus scrapes the planned targets.

A small stack on the stand-ins (TEI on CPU, a vLLM model with two replicas behind the real nginx,
Albert API 0.2.0) with `monitoring:` on. Prometheus is Debian's real 2.42 in the official image's
shape (tests/standins/prometheus_image.py); it loads the rendered prometheus.yml, reads the API's
master key from the file its start command writes, and must report every target `up`; then every
query of the rendered dashboard runs against it without error. Grafana and dcgm-exporter have no
Debian package and need the NVIDIA runtime: they are not run here (`grafana.enabled: false`,
`dcgm: false`); their files are checked in tests/test_monitoring.py.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from albert_deploy.commands import load
from albert_deploy.render.monitoring import dashboard_queries
from tests.helpers import Deployment, free_port

pytestmark = pytest.mark.docker


def _get(url: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> Any:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def _monitored(deploy: Callable[..., Deployment]) -> Deployment:
    d = deploy()
    d.data["gpus"] = {"count": 2, "memory": "80GB", "name": "NVIDIA H100 80GB HBM3"}
    d.data["images"]["balancer"] = "albert-deploy-test/nginx:1"
    d.data["models"].append({
        "model": "AgentPublic/guillaumetell-7b", "image": "albert-deploy-test/vllm:1", "gpus": 1, "replicas": 2,
        "max_model_len": 4096, "health_start_period": 10,
    })  # fmt: skip
    d.data["monitoring"] = {
        "scrape_interval": 1,
        "prometheus": {"port": free_port(), "image": "albert-deploy-test/prometheus:1"},
        "grafana": {"enabled": False},
        "dcgm": False,
    }
    d.edit()
    return d


def _targets(url: str) -> list[dict[str, Any]]:
    return list(_get(f"{url}/api/v1/targets")["data"]["activeTargets"])


def test_the_real_prometheus_scrapes_every_planned_target(deploy: Callable[..., Deployment]) -> None:
    d = _monitored(deploy)
    d.up("--no-gpus")
    plan = load(str(d.profile))
    assert plan.monitoring is not None
    url = f"http://127.0.0.1:{plan.monitoring.prometheus[1]}"
    expected = {("prometheus", "localhost:9090")} | {(t.job, t.address) for t in plan.monitoring.targets}
    assert {a for _, a in expected} >= {"guillaumetell-7b-1:8000", "guillaumetell-7b-2:8000", "api:8000",
                                        "multilingual-e5-large:80"}  # fmt: skip

    deadline, targets = time.monotonic() + 90, []
    while time.monotonic() < deadline:
        targets = _targets(url)
        if len(targets) == len(expected) and all(t["health"] == "up" for t in targets):
            break
        time.sleep(1)
    found = {(t["labels"]["job"], t["labels"]["instance"]): (t["health"], t["lastError"]) for t in targets}
    assert set(found) == expected, found
    assert all(health == "up" for health, _ in found.values()), found  # the API's with the master key as bearer

    # Traffic, so that the rates have something to show: one completion, one embedding.
    env = dict(
        line.split("=", 1) for line in (d.out / ".env").read_text().splitlines() if "=" in line and line[0] != "#"
    )
    headers = {"Authorization": f"Bearer {env['MASTER_KEY']}", "Content-Type": "application/json"}
    api = f"http://127.0.0.1:{d.port}"
    chat = {"model": "guillaumetell-7b", "messages": [{"role": "user", "content": "bonjour"}]}
    _get(f"{api}/v1/chat/completions", headers, json.dumps(chat).encode())
    _get(f"{api}/v1/embeddings", headers, json.dumps({"model": "multilingual-e5-large", "input": "a"}).encode())
    time.sleep(4)  # a few scrapes (every second)

    results = {}
    for title, expr, _ in dashboard_queries(plan.monitoring):
        answer = _get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        assert answer["status"] == "success", (title, expr, answer)
        results[expr] = answer["data"]["result"]
    up = {r["metric"]["service"]: r["value"][1] for r in results["up"]}
    assert set(up.values()) == {"1"} and {"api", "guillaumetell-7b-1", "multilingual-e5-large"} <= set(up), up
    generated = results["sum by (model) (rate(vllm:generation_tokens_total[1m]))"]
    assert [r["metric"]["model"] for r in generated] == ["guillaumetell-7b"], generated
    by_status = results['sum by (status) (rate(http_requests_total{job="api"}[5m]))']
    assert "2xx" in {r["metric"]["status"] for r in by_status}, by_status

    # The key reached Prometheus as a file only it can read; `status` says why GPU memory is not measured.
    mode = d.container("prometheus").exec_run(["stat", "-c", "%a %U", "/prometheus/api-key"]).output.decode().split()
    assert mode == ["600", "nobody"], mode
    status = d.cli("status", "--json")
    assert status.exit_code == 0, status.output
    gpu = json.loads(status.stdout)["gpu_memory"]
    assert gpu["measured"] is False and gpu["note"] == "monitoring.dcgm is false", gpu
    assert {m["model"] for m in gpu["models"]} == {"guillaumetell-7b"}
    assert "GPU memory: not measured (monitoring.dcgm is false)" in d.cli("status").output
