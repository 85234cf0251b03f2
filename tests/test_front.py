"""api.public (the TLS front door) and playground: profile messages, caddy.json, compose, the
playground's settings per release, Kubernetes, refusals and the CLI. The real Caddy and a browser
run in test_front_docker.py."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from albert_deploy.cli import cli
from albert_deploy.errors import ProfileError
from albert_deploy.plan.access import ACKNOWLEDGEMENT
from albert_deploy.plan.build import build_plan
from albert_deploy.plan.releases import playground
from albert_deploy.profile.load import validate_profile
from albert_deploy.render.caddy import caddy_config
from albert_deploy.render.files import render_plan
from albert_deploy.render.kubernetes.render import render_kubernetes

E5 = {"model": "intfloat/multilingual-e5-large", "gpus": "cpu"}
LLM = {"name": "llm", "type": "text-generation", "url": "https://llm.example.org", "model": "some-llm"}
FILES = {"domain": "albert.example.org", "cert_file": "/etc/albert/tls/cert.pem", "key_file": "/etc/albert/tls/key.pem"}


def profile(release: str = "0.2.0", public: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    api: dict[str, Any] = {"release": release}
    if public is not None:
        api["public"] = public
    if release == "0.0.3":
        api["allow_unauthenticated_access"] = ACKNOWLEDGEMENT
    return {"api": api, "models": [E5, LLM], **top}


def plan_of(data: dict[str, Any]) -> Any:
    return build_plan(validate_profile(data, "site.yaml"), "site.yaml")


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ProfileError) as err:
        plan_of(data)
    return str(err.value)


def services(plan: Any) -> dict[str, Any]:
    return {s.name: s for s in plan.services}


# --- profile ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("public", "api_extra", "message"),
    [
        ({}, {}, "api.public: say how the front door gets its certificate: `domain` for automatic certificates, "
                 "or `cert_file` and `key_file` for your own"),
        ({"cert_file": "/c.pem"}, {}, "api.public.key_file: give both cert_file and key_file"),
        ({"cert_file": "c.pem", "key_file": "/k.pem"}, {}, "api.public.cert_file: 'c.pem' is not an absolute path"),
        ({"domain": "https://albert.example.org"}, {}, "api.public.domain: 'https://albert.example.org' is not a DNS name"),
        ({**FILES, "http_port": 443}, {}, "api.public.http_port: port 443 is already https_port"),
        ({"domain": "albert.example.org", "https_port": 8443, "http_port": 8080}, {},
         "api.public.https_port: automatic certificates need port 443 (TLS-ALPN challenge) or http_port 80"),
        ({**FILES, "max_request_size": 0}, {}, "api.public.max_request_size: give a size between 1B and"),
        ({**FILES, "bind": "::"}, {}, "api.public.bind: '::' is not an IPv4 address"),
        ({**FILES, "bind": "300.0.0.1"}, {}, "api.public.bind: '300.0.0.1' is not an IPv4 address"),
        (FILES, {"port": 8080}, "api.port: with api.public the front door publishes the API"),
        (FILES, {"bind": "0.0.0.0"}, "api.bind: with api.public the front door publishes the API"),
        ({**FILES, "tls": "on"}, {}, "api.public: unknown key 'tls'"),
    ],
)  # fmt: skip
def test_public_profile_messages(public: dict[str, Any], api_extra: dict[str, Any], message: str) -> None:
    data = profile(public=public)
    data["api"].update(api_extra)
    assert message in error_of(data)


def test_playground_port_and_reserved_names() -> None:
    clash = profile(playground=True)
    clash["api"]["port"] = 8501
    assert "playground: the playground publishes port 8501, which api.port uses" in error_of(clash)
    named = profile(public=FILES)
    named["models"] = [{**E5, "name": "front"}, LLM]
    assert "'front' is reserved for the stack's own services" in error_of(named)


def test_0_0_3_behind_the_front_door_needs_the_acknowledgement() -> None:
    data = profile("0.0.3", public=FILES)
    del data["api"]["allow_unauthenticated_access"]
    assert "release 0.0.3 has no authentication, so anyone who reaches 0.0.0.0 can use the API" in error_of(data)


# --- plan and compose -----------------------------------------------------------------------------


def test_only_the_front_door_publishes_ports() -> None:
    plan = plan_of(profile(public={**FILES, "https_port": 8443, "http_port": 8080}, playground=True))
    by_name = services(plan)
    assert [s.name for s in plan.services][-2:] == ["playground", "front"]
    assert {n: s.ports for n, s in by_name.items() if s.ports} == {
        "front": (("0.0.0.0", 8443, 443), ("0.0.0.0", 8080, 80))
    }
    front = by_name["front"]
    assert front.image == "caddy:2.11.2-alpine" and front.cap_add == ("NET_BIND_SERVICE",)
    assert front.depends_on == ("playground", "api")
    assert front.healthcheck.test[-1] == "curl -fsS -o /dev/null http://localhost:8081/healthz"
    assert {(m.volume, m.target, m.read_only) for m in front.mounts} == {
        ("./caddy.json", "/etc/caddy/caddy.json", True), ("front-data", "/data", False),
        ("/etc/albert/tls/cert.pem", "/etc/caddy/tls/cert.pem", True),
        ("/etc/albert/tls/key.pem", "/etc/caddy/tls/key.pem", True),
    }  # fmt: skip
    assert plan.api_url == "https://albert.example.org:8443"
    files = render_plan(plan).files
    compose = yaml.safe_load(files["compose.yml"])
    assert "ports" not in compose["services"]["api"] and "ports" not in compose["services"]["playground"]
    assert [p["published"] for p in compose["services"]["front"]["ports"]] == ["8443", "8080"]
    assert "caddy.json" in files
    assert "The API answers on https://albert.example.org:8443" in files["RUNBOOK.md"]
    assert "The playground (its web UI) answers on https://albert.example.org:8443/playground/" in files["RUNBOOK.md"]


def test_without_a_front_door_the_playground_is_published_beside_the_api() -> None:
    plan = plan_of(profile(playground=True))
    assert services(plan)["playground"].ports == (("127.0.0.1", 8501, 8501),)
    assert services(plan)["api"].ports == (("127.0.0.1", 8080, 8000),)
    assert plan.front is None and "caddy.json" not in render_plan(plan).files
    assert "STREAMLIT_CMD_ARGS" not in services(plan)["playground"].environment


# --- caddy.json -----------------------------------------------------------------------------------


def test_caddy_config_with_the_operators_certificate() -> None:
    plan = plan_of(profile(public={**FILES, "https_port": 8443, "max_request_size": "50MB"}, playground=True))
    config = json.loads(render_plan(plan).files["caddy.json"])
    assert config == caddy_config(plan.front)
    assert config["admin"] == {"disabled": True, "config": {"persist": False}}
    assert config["apps"]["tls"]["certificates"]["load_files"] == [
        {"certificate": "/etc/caddy/tls/cert.pem", "key": "/etc/caddy/tls/key.pem", "tags": ["operator"]}
    ]
    servers = config["apps"]["http"]["servers"]
    front = servers["front"]
    assert front["listen"] == [":443"] and front["automatic_https"] == {"disable": True}
    assert front["tls_connection_policies"] == [{"certificate_selection": {"any_tag": ["operator"]}}]
    playground_route, api_route = front["routes"]
    assert playground_route["match"] == [{"path": ["/playground", "/playground/*"]}] and "match" not in api_route
    for route, dial in ((playground_route, "playground:8501"), (api_route, "api:8000")):
        body, proxy = route["handle"]
        assert body == {"handler": "request_body", "max_size": 50_000_000}
        assert proxy["upstreams"] == [{"dial": dial}] and proxy["flush_interval"] == -1
        assert proxy["transport"] == {"protocol": "http", "read_timeout": "3600s", "write_timeout": "3600s"}
    (too_large,) = front["errors"]["routes"]
    assert too_large["handle"] == [{"handler": "static_response", "status_code": 413,
                                    "body": "request body too large for this server\n"}]  # fmt: skip
    assert servers["health"]["listen"] == ["127.0.0.1:8081"]
    assert servers["redirect"]["routes"][0]["handle"][0]["headers"]["Location"] == [
        "https://{http.request.host}:8443{http.request.uri}"
    ]


def test_caddy_config_with_automatic_certificates() -> None:
    plan = plan_of(profile(public={"domain": "albert.example.org", "http_port": None}))
    config = caddy_config(plan.front)
    front = config["apps"]["http"]["servers"]["front"]
    assert "tls" not in config["apps"] and "redirect" not in config["apps"]["http"]["servers"]
    assert front["automatic_https"] == {"disable_redirects": True}
    assert [r["match"] for r in front["routes"]] == [[{"host": ["albert.example.org"]}]]
    assert {m.volume for m in services(plan)["front"].mounts} == {"./caddy.json", "front-data"}
    assert plan.api_url == "https://albert.example.org"


def test_caddy_config_values_cannot_change_its_structure() -> None:
    # A domain is checked, and every value is a JSON string: a quote cannot open a new key.
    assert "is not a DNS name" in error_of(profile(public={"domain": 'a.org", "admin": {"x'}))
    text = render_plan(plan_of(profile(public={**FILES, "cert_file": '/etc/"quoted"/c.pem'}))).files["compose.yml"]
    assert yaml.safe_load(text)["services"]["front"]["volumes"][2]["source"] == '/etc/"quoted"/c.pem'


# --- the playground per release -------------------------------------------------------------------


def test_playground_0_2_0_settings() -> None:
    plan = plan_of(profile(public=FILES, playground=True))
    ui = services(plan)["playground"]
    assert ui.image == "ghcr.io/etalab-ia/albert-api/ui:0.2.0" and ui.user == "1100:1100"
    assert ui.command == ("python", "-c", playground.CREATE_DB_THEN_START)
    assert {k: str(v) for k, v in ui.environment.items()} == {
        "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD}",
        "MAX_UPLOAD_SIZE": "100",
        "STREAMLIT_CMD_ARGS": "--server.baseUrlPath=/playground",
    }
    assert [(m.volume, m.target) for m in ui.mounts] == [("./config.yml", "/config.yml")]
    assert ui.healthcheck.http.path == "/playground/_stcore/health"
    config = yaml.safe_load(render_plan(plan).files["config.yml"])
    assert config["playground"] == {"api_url": "http://api:8000"}
    sql = [d for d in config["databases"] if d["type"] == "sql"]
    assert [(d["context"], d["args"]["url"]) for d in sql] == [
        ("api", "postgresql+asyncpg://postgres:${POSTGRES_PASSWORD}@postgres:5432/api"),
        ("playground", "postgresql://postgres:${POSTGRES_PASSWORD}@postgres:5432/playground"),
    ]
    assert playground.check_config(config) == []
    assert playground.check_config({**config, "databases": sql[:1]}) == [
        "exactly one sql database with context playground is required, found 0"
    ]


def test_playground_0_0_3_settings() -> None:
    plan = plan_of(profile("0.0.3", public=FILES, playground=True))
    ui = services(plan)["playground"]
    assert ui.image == "ghcr.io/etalab-ia/albert-api/ui:0.0.3"
    assert ui.environment == {"BASE_URL": "http://api:8000/v1"} and ui.mounts == ()
    assert ui.command[:3] == ("streamlit", "run", "ui/main.py")
    assert ui.command[-2:] == ("--server.maxUploadSize=100", "--server.baseUrlPath=/playground")
    assert "playground" not in render_plan(plan).files["config.yml"]


def test_playground_refused_for_a_release_without_a_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(playground.RELEASES, "0.0.3")
    assert error_of(profile("0.0.3", playground=True)) == (
        "site.yaml: playground: release 0.0.3 ships no playground UI: remove `playground`"
    )


# --- Kubernetes -----------------------------------------------------------------------------------


def test_kubernetes_ingress_and_playground_deployment() -> None:
    plan = plan_of(profile(public=FILES, playground=True))
    files = render_kubernetes(plan).files
    assert (
        "app/ingress.yaml" in files and "ingress.yaml" in yaml.safe_load(files["app/kustomization.yaml"])["resources"]
    )
    (ingress,) = [d for d in yaml.safe_load_all(files["app/ingress.yaml"]) if d]
    kubernetes_validate.validate(ingress, "1.35", strict=True)
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "albert.example.org" and ingress["spec"]["tls"][0]["secretName"] == "front-tls"
    assert [(p["path"], p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
            for p in rule["http"]["paths"]] == [("/playground", "playground", 8501), ("/", "api", 8000)]  # fmt: skip
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "100m"
    deployments = {d["metadata"]["name"]: d for d in yaml.safe_load_all(files["app/deployments.yaml"]) if d}
    assert "front" not in deployments
    pod = deployments["playground"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "config", "mountPath": "/config.yml", "subPath": "config.yml", "readOnly": True}
    ]
    wait = json.loads(next(e["value"] for e in deployments["api"]["spec"]["template"]["spec"]["initContainers"][0]["env"]
                           if e["name"] == "WAIT_FOR"))  # fmt: skip
    assert "playground" not in {t["name"] for t in wait}  # it starts after the API: no deadlock


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (profile(public={"domain": "albert.example.org"}), "api.public: on Kubernetes certificates are the cluster's"),
        (profile(playground=True), "playground: on Kubernetes the playground is published through the Ingress"),
    ],
)
def test_kubernetes_refusals(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        render_kubernetes(plan_of(copy.deepcopy(data)))


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_render_writes_caddy_json_and_refuses_clearly(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(profile(public=FILES, playground=True)))
    result = CliRunner().invoke(cli, ["render", str(site), "-o", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "caddy.json").is_file()
    assert json.loads((tmp_path / "out" / "caddy.json").read_text())["apps"]["http"]["servers"]["front"]
    site.write_text(yaml.safe_dump(profile(public={"cert_file": "/c.pem"})))
    refused = CliRunner().invoke(cli, ["validate", str(site)])
    assert refused.exit_code == 1
    assert refused.stderr.startswith(f"error: {site}: api.public.key_file: give both cert_file and key_file")


# --- the stand-ins apply the release's facts, and so does the plan --------------------------------


def test_the_playground_plan_agrees_with_the_facts_the_standin_applies() -> None:
    import importlib.util
    import re

    spec = importlib.util.spec_from_file_location("standin_facts", Path(__file__).parent / "standins" / "facts.py")
    assert spec and spec.loader
    facts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(facts)
    ui = services(plan_of(profile(public=FILES, playground=True)))["playground"]
    assert ui.container_port == playground.PORT == facts.value("ui 0.2.0 port")
    assert ui.user == f"{facts.value('ui 0.2.0 user')}:{facts.value('ui 0.2.0 user')}"
    assert ui.mounts[0].target == facts.value("ui 0.2.0 config file")
    assert {"STREAMLIT_CMD_ARGS", "MAX_UPLOAD_SIZE"} <= set(ui.environment)
    assert facts.value("ui 0.2.0 extra args env") == "STREAMLIT_CMD_ARGS"
    health = facts.UI_FACTS["streamlit health path"]
    assert ui.healthcheck.http.path == "/playground" + health.value
    assert re.match(r"^[\w-]+/[\w-]+@[\d.]+ [\w/.-]+\.py:\d+(-\d+)?\b", health.source)
