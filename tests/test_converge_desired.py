"""`up` builds its requests from the typed plan: they equal what Docker Compose v2 reads from the
rendered files (`docker compose config`, no daemon needed), for every shipped and test profile."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from albert_deploy.commands import load
from albert_deploy.converge import containers, desired
from albert_deploy.render.envfile import parse_env
from albert_deploy.render.files import render_plan
from tests.helpers import FULL, PROFILES, SMALL, compose_config

ALL_PROFILES = [*PROFILES, FULL, SMALL]
_GO_UNITS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3}


def _operator_env(secrets: tuple[str, ...]) -> str:
    """A .env as an operator may leave it: an `export` line, quoted values, a literal `$`."""
    forms = ["export {}=exported-{}", '{}="double quoted {}"', "{}='single$quoted-{}'", "{}=plain-{}"]
    lines = ["# the operator's own note", *(forms[i % len(forms)].format(n, i) for i, n in enumerate(secrets))]
    return "\n".join(lines) + "\nHF_TOKEN=\n"


def _ns(go_duration: str) -> int:
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", go_duration)
    return round(sum(float(n) * _GO_UNITS[u] for n, u in parts) * 1e9)


def _theirs(project: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Compose's service entry, in the Engine API's terms."""
    check = spec.get("healthcheck")
    devices = ((spec.get("deploy") or {}).get("resources") or {}).get("reservations", {}).get("devices") or []
    return {
        "image": spec["image"],
        "command": spec.get("command"),
        "entrypoint": spec.get("entrypoint"),
        "environment": spec.get("environment") or {},
        "ports": {
            f"{p['target']}/{p['protocol']}": [{"HostIp": p.get("host_ip", ""), "HostPort": p["published"]}]
            for p in spec.get("ports") or []
        },
        "mounts": [
            (
                m["type"],
                f"{project}_{m['source']}" if m["type"] == "volume" else m["source"],
                m["target"],
                bool(m.get("read_only")),
            )
            for m in spec.get("volumes") or []
        ],
        "healthcheck": check
        and {
            "test": check["test"],
            "interval": _ns(check["interval"]),
            "timeout": _ns(check["timeout"]),
            "retries": check["retries"],
            "start_period": _ns(check["start_period"]),
        },
        "gpus": [
            (
                d["driver"],
                int(d.get("count", 0 if d.get("device_ids") else -1)),
                d.get("device_ids") or [],
                [d["capabilities"]],
            )
            for d in devices
        ],
        "shm_size": int(spec["shm_size"]) if spec.get("shm_size") else None,
        "user": spec.get("user"),
        "restart": spec.get("restart"),
        "depends_on": {name: d["condition"] for name, d in (spec.get("depends_on") or {}).items()},
        "cap_drop": spec.get("cap_drop"),
        "cap_add": spec.get("cap_add"),
        "security_opt": spec.get("security_opt"),
        "memory": int(spec["mem_limit"]) if spec.get("mem_limit") else None,
    }


def _ours(project: desired.Project, service: str) -> dict[str, Any]:
    """What `up` sends to the Engine API."""
    request = containers.create_request(project, service, {})
    host = request["host_config"]
    return {
        "image": request["image"],
        "command": request.get("command"),
        "entrypoint": request.get("entrypoint"),
        "environment": dict(item.split("=", 1) for item in request["environment"]),
        "ports": host["PortBindings"],
        "mounts": [(m["Type"], m["Source"], m["Target"], m["ReadOnly"]) for m in host["Mounts"]],
        "healthcheck": request.get("healthcheck"),
        "gpus": [(d["Driver"], d["Count"], d["DeviceIDs"], d["Capabilities"]) for d in host["DeviceRequests"]],
        "shm_size": host.get("ShmSize"),
        "user": request.get("user"),
        "restart": host["RestartPolicy"]["Name"],
        "depends_on": dict(project.services[service].depends_on),
        "cap_drop": host.get("CapDrop"),
        "cap_add": host.get("CapAdd"),
        "security_opt": host.get("SecurityOpt"),
        "memory": host.get("Memory"),
    }


@pytest.mark.parametrize("profile", ALL_PROFILES, ids=lambda p: p.stem)
def test_up_sends_what_docker_compose_reads(profile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = load(str(profile))
    env_text = _operator_env(plan.secrets)
    rendered = render_plan(plan, env_text)
    assert "export " in rendered.files[".env"] and "'single$quoted" in rendered.files[".env"]
    for name, text in rendered.files.items():
        (tmp_path / name).write_text(text)
    # The process environment wins over .env, in compose and in `up` alike.
    monkeypatch.setenv(plan.secrets[-1], "from-the-process")
    files = {k: v.encode() for k, v in rendered.files.items()}
    project = desired.project(plan, tmp_path, parse_env(rendered.files[".env"]), files)
    theirs = compose_config(tmp_path)
    assert project.name == theirs["name"]
    assert list(project.services) == [s.name for s in plan.services]
    assert sorted(project.services) == sorted(theirs["services"])
    for service in project.services:
        assert _ours(project, service) == _theirs(project.name, theirs["services"][service]), service
        # Every container is hardened, in the file and in what `up` sends.
        ours = _ours(project, service)
        assert ours["cap_drop"] == ["ALL"] and ours["security_opt"] == ["no-new-privileges:true"], service
        assert ours["memory"] and ours["memory"] >= 2**30, service
    values = [v for s in project.services.values() for v in s.environment.values()]
    assert "from-the-process" in " ".join(values)
    assert any("single$quoted" in v for v in values)


def test_a_reference_default_applies_when_unset_or_empty() -> None:
    from albert_deploy.plan.spec import Joined, Ref

    assert desired.resolve(Ref("A", "d"), {}) == "d"
    assert desired.resolve(Ref("A", "d"), {"A": ""}) == "d"
    assert desired.resolve(Ref("A"), {}) == ""
    assert desired.resolve(Joined(("--pass ", Ref("P"))), {"P": "s3$"}) == "--pass s3$"


def test_render_never_imports_rich_or_the_docker_sdk(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom albert_deploy.cli import cli\n"
        f"result = CliRunner().invoke(cli, ['render', '-o', {str(tmp_path)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('rich', 'docker', 'albert_deploy.render.files') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['albert_deploy.render.files']"  # it rendered, without the live table or the Docker side
