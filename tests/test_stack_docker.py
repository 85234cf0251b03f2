"""`up`, `plan`, `down`, `status`, `logs` and `check` against the real Docker daemon.

The stacks run the stand-in images (fixture ``standin_images``): the real ones cannot be pulled
here. Every test uses its own project name and a free port, and removes what it made by label
(containers, network, volumes) even when it fails. No machine here has a GPU: GPU services run
with ``--no-gpus``, and one test checks how the daemon's refusal of a GPU request is reported.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from albert_deploy import commands
from albert_deploy.cli import cli
from albert_deploy.converge import fastpath
from albert_deploy.converge.containers import PROJECT
from tests.helpers import FULL, SMALL, Deployment, compose_binary, free_port, remove_project

pytestmark = pytest.mark.docker

MODELS = ["guillaumetell-7b", "multilingual-e5-large", "whisper-large-v3-turbo", "bge-reranker-v2-m3"]


# --- the whole stack ----------------------------------------------------------------------------


def test_up_converges_like_docker_compose(deploy: Callable[..., Deployment]) -> None:
    d = deploy(FULL)
    first = d.up("--no-gpus")
    assert {s["service"]: s["health"] for s in first["services"]} == {
        s["service"]: "healthy" for s in first["services"]
    }
    assert first["api_url"] == f"http://127.0.0.1:{d.port}"
    # The API started last: every model was up when it probed them (it never probes again).
    state = d.api_state()
    assert sorted(state["models_up"]) == sorted(MODELS) and not state["models_down"]
    api_started = d.container("api").attrs["State"]["StartedAt"]
    assert all(d.container(m).attrs["State"]["StartedAt"] < api_started for m in MODELS)

    checked = d.cli("check", "--json")
    assert checked.exit_code == 0, checked.output
    results = json.loads(checked.stdout)["results"]
    assert sorted((r["name"], r["via"]) for r in results if r["ok"]) == sorted(
        (m, via) for m in MODELS for via in ("server", "api")
    )  # on each server, and through the API

    # Docker Compose sees the same stack.
    ps = subprocess.run(
        [compose_binary(), "-f", str(d.out / "compose.yml"), "ps", "--format", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    listed = [json.loads(line) for line in ps.stdout.splitlines() if line.strip()]
    assert sorted(c["Service"] for c in listed) == sorted(d.ids())

    # Nothing changed: same containers (timed by benchmarks/bench_up.py, not here).
    ids = d.ids()
    second = d.up("--no-gpus")
    assert second["changes"] == 0 and d.ids() == ids
    # That was the stamp's shortcut: one listing over the daemon's socket finds the stack as the first up left it.
    assert fastpath.unchanged(fastpath.Inputs(str(d.profile), d.out, no_gpus=True)) is not None
    status = json.loads(d.cli("status", "--no-gpus", "--json").stdout)
    assert not status["drift"] and {r["drift"] for r in status["services"]} == {"none"}

    # One model's settings change: that server and the API (its config changed), nothing else.
    d.model("guillaumetell-7b")["served_model_name"] = "guillaumetell"
    d.edit()
    planned = json.loads(d.cli("up", "--dry-run", "--no-gpus", "--json").stdout)
    assert {a["service"]: a["action"] for a in planned["actions"] if a["action"] != "nothing"} == {
        "guillaumetell-7b": "recreate",
        "api": "recreate",
    }
    assert "config.yml" in next(a["reason"] for a in planned["actions"] if a["service"] == "api")
    assert d.ids() == ids  # plan touched nothing
    d.up("--no-gpus")
    after = d.ids()
    assert {s for s in ids if ids[s] != after[s]} == {"guillaumetell-7b", "api"}

    # A container killed and another removed by hand come back; the rest are left alone.
    d.container("redis").kill()
    d.container("multilingual-e5-large").remove(force=True)
    restored = d.up("--no-gpus")
    actions = {a["service"]: a["action"] for a in restored["actions"]}
    assert actions["redis"] == "start" and actions["multilingual-e5-large"] == "create"
    final = d.ids()
    assert final["redis"] == after["redis"] and final["multilingual-e5-large"] != after["multilingual-e5-large"]
    assert all(d.container(s).attrs["State"]["Health"]["Status"] == "healthy" for s in final)

    # A model removed from the profile: its container goes.
    d.data["models"] = [m for m in d.data["models"] if "whisper" not in m["model"]]
    d.edit()
    d.up("--no-gpus")
    assert "whisper-large-v3-turbo" not in d.ids()


# --- failures -----------------------------------------------------------------------------------


def test_a_service_that_never_turns_healthy_is_named(deploy: Callable[..., Deployment]) -> None:
    d = deploy()
    d.model("multilingual-e5-large").update(env={"STANDIN_FAIL": "never-healthy"}, health_start_period=1)
    # A second model still loading when e5 fails: the API, started with its models, still waits for it.
    reranker = {"model": "BAAI/bge-reranker-v2-m3", "image": "albert-deploy-test/tei:1", "gpus": "cpu"}
    d.data["models"].append({**reranker, "env": {"STANDIN_START_DELAY": "60"}, "health_start_period": 120})
    d.edit()
    result = d.cli("up")
    assert result.exit_code == 1
    message = result.stderr
    assert "error: service multilingual-e5-large failed" in message
    assert "last health check" in message and "last log lines" in message
    assert all(v not in message for v in _secrets(d))
    # The databases and the loading reranker stay as they are; the API, which needs the models, is
    # gone: `up` started it with them (its command waits for them inside) and removed it while it
    # still waited, or it would start later without e5.
    ids = d.ids()
    assert "api" not in ids and "bge-reranker-v2-m3" in ids
    assert d.container("redis").status == "running"


def test_a_gpu_request_without_the_nvidia_runtime(deploy: Callable[..., Deployment], docker_client: Any) -> None:
    d = deploy(FULL)
    result = d.cli("up")
    assert result.exit_code == 1
    assert "NVIDIA Container Toolkit" in result.stderr and "--no-gpus" in result.stderr
    assert "guillaumetell-7b" in result.stderr or "whisper-large-v3-turbo" in result.stderr
    left = docker_client.containers.list(all=True, filters={"label": f"{PROJECT}={d.project}"})
    assert [c.name for c in left if c.status == "created"] == []
    assert left == []  # GPU services start first: nothing else was started either


def test_a_failed_recreate_puts_the_old_container_back(deploy: Callable[..., Deployment], docker_client: Any) -> None:
    # One model on GPU 0, started without it; then its settings change and a plain `up` asks the
    # daemon for the GPU, which this host refuses: the running container must survive that.
    d = deploy(gpus={"count": 1, "memory": "80GB", "name": "NVIDIA H100 80GB HBM3"})
    d.model("multilingual-e5-large")["gpus"] = [0]
    d.edit()
    d.up("--no-gpus")
    before = d.ids()
    d.model("multilingual-e5-large")["env"] = {"STANDIN_CHANGED": "1"}
    d.edit(health_interval=2)  # every service changes: the API is created ahead, the databases wait

    result = d.cli("up")
    assert result.exit_code == 1
    assert "service multilingual-e5-large requests a GPU" in result.stderr and "--no-gpus" in result.stderr
    assert d.ids() == before  # the same containers: none removed, none added
    old = d.container("multilingual-e5-large")
    assert old.name == f"{d.project}-multilingual-e5-large-1"
    left = docker_client.containers.list(all=True, filters={"label": f"{PROJECT}={d.project}"})
    assert [c.name for c in left if c.status == "created"] == []
    assert sorted(c.name for c in left) == sorted(f"{d.project}-{s}-1" for s in before)
    deadline = time.monotonic() + 60
    while old.attrs["State"].get("Health", {}).get("Status") != "healthy" and time.monotonic() < deadline:
        time.sleep(0.5)
        old.reload()
    assert old.status == "running" and old.attrs["State"]["Health"]["Status"] == "healthy"
    assert all(d.container(s).status == "running" for s in before)
    # It is still the --no-gpus container, so the next `up --no-gpus` only applies the change.
    planned = json.loads(d.cli("up", "--dry-run", "--no-gpus", "--json").stdout)
    assert {a["action"] for a in planned["actions"]} == {"recreate"}


def test_an_image_that_cannot_be_pulled_is_named(deploy: Callable[..., Deployment]) -> None:
    # A loopback registry where nothing listens: a pull fails at once, and no traffic leaves the host.
    d = deploy()
    d.data["images"]["redis"] = f"127.0.0.1:{free_port()}/missing/redis:1"
    d.edit()
    result = d.cli("up")
    assert result.exit_code == 1
    assert f"image {d.data['images']['redis']} is not present locally and cannot be pulled" in result.stderr
    assert d.ids() == {}


def test_a_missing_image_is_pulled_with_progress(
    deploy: Callable[..., Deployment], loopback_registry: str, standin_images: dict[str, str], docker_client: Any
) -> None:
    image = f"{loopback_registry}/standins/redis:{uuid.uuid4().hex[:8]}"
    repository, tag = image.rsplit(":", 1)
    docker_client.images.get(standin_images["redis"]).tag(repository, tag)
    for line in docker_client.images.push(repository, tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    docker_client.images.remove(image)  # the tag only: the stand-in keeps its own
    d = deploy()
    d.data["images"]["redis"] = image
    d.edit()
    try:
        result = d.cli("up")
        assert result.exit_code == 0, result.output
        assert f"redis: pulling: pulling {image}" in result.stdout
        assert d.container("redis").attrs["Config"]["Image"] == image
    finally:
        remove_project(docker_client, d.project)
        docker_client.images.remove(image, force=True)


def test_no_daemon_is_reported_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    result = CliRunner().invoke(cli, ["status", str(SMALL), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "cannot reach the Docker daemon" in result.stderr and "DOCKER_HOST" in result.stderr


# --- data, projects, compose --------------------------------------------------------------------


def test_volumes_survive_down_and_projects_stay_apart(deploy: Callable[..., Deployment]) -> None:
    a, b = deploy(), deploy()
    a.up()
    b.up()
    b_ids = b.ids()
    a.container("redis").exec_run(["sh", "-c", "echo kept > /data/marker"], user="root")

    down = a.cli("down", "--json")
    assert down.exit_code == 0, down.output
    assert a.ids() == {} and b.ids() == b_ids
    assert not a.client.networks.list(filters={"label": f"{PROJECT}={a.project}"})
    assert a.client.volumes.list(filters={"label": f"{PROJECT}={a.project}"})

    a.up()
    assert a.container("redis").exec_run(["cat", "/data/marker"]).output.strip() == b"kept"

    assert a.cli("down", "--volumes").exit_code == 0
    assert not a.client.volumes.list(filters={"label": f"{PROJECT}={a.project}"})
    assert b.ids() == b_ids and all(b.container(s).status == "running" for s in b_ids)


def test_a_stack_started_by_docker_compose_is_recognised(deploy: Callable[..., Deployment]) -> None:
    d = deploy()
    assert d.cli("render", "-o", str(d.out)).exit_code == 0
    subprocess.run([compose_binary(), "-f", str(d.out / "compose.yml"), "up", "-d", "--wait"],
                   capture_output=True, check=True, timeout=120)  # fmt: skip

    status = d.cli("status", "--json")
    assert status.exit_code == 0, status.output
    rows = json.loads(status.stdout)["services"]
    assert {r["service"] for r in rows} == {"redis", "postgres", "qdrant", "multilingual-e5-large", "api"}
    assert {r["started_by"] for r in rows} == {"docker compose"}
    assert all(r["drift"].startswith("none") and r["health"] == "healthy" for r in rows)
    assert d.cli("check").exit_code == 0

    # `up` takes it over (compose's config hash is its own), then `down` removes it.
    planned = json.loads(d.cli("up", "--dry-run", "--json").stdout)
    assert {a["action"] for a in planned["actions"]} == {"recreate"}
    d.up()
    assert {r["started_by"] for r in json.loads(d.cli("status", "--json").stdout)["services"]} == {"albert-deploy"}
    assert d.cli("down").exit_code == 0 and d.ids() == {}


def test_logs_and_detach(deploy: Callable[..., Deployment]) -> None:
    d = deploy()
    result = d.up("--detach")
    assert result["detached"]
    logs = d.cli("logs", "multilingual-e5-large", "--tail", "3")
    assert logs.exit_code == 0 and 0 < len(logs.stdout.splitlines()) <= 3
    missing = d.cli("logs", "nope")
    assert missing.exit_code == 1 and "has no service nope" in missing.stderr


def _secrets(d: Deployment) -> list[str]:
    env = (d.out / ".env").read_text()
    return [line.split("=", 1)[1] for line in env.splitlines() if "=" in line and not line.startswith("#")]


def test_dry_run_touches_nothing(deploy: Callable[..., Deployment]) -> None:
    d = deploy()
    result = d.cli("up", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert {a["action"] for a in json.loads(result.stdout)["actions"]} == {"create"}
    assert d.ids() == {} and not d.out.exists()
    assert commands.diff(str(d.profile), d.out)["changes"] == 5
