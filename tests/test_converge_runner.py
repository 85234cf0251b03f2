"""`up` against an in-memory Docker daemon: create, recreate, restore on failure, GPU refusal and
start order, with no daemon. The fake keeps containers, images, networks and volumes, and lets a
test decide how each service behaves once started."""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from albert_deploy.commands import load
from albert_deploy.converge import containers, desired, runner, watch
from albert_deploy.converge.progress import EventLines
from albert_deploy.errors import DockerError, ServiceFailed
from albert_deploy.render.envfile import parse_env
from albert_deploy.render.files import render_plan
from tests.helpers import FULL, PROFILES, SMALL, fixed_env


def api_error(text: str, status: int = 500) -> docker.errors.APIError:
    response = type("Response", (), {"status_code": status, "reason": "refused", "url": "/x"})()
    return docker.errors.APIError(text, response=response, explanation=text)


@dataclass
class FakeContainer:
    id: str
    name: str
    labels: dict[str, str]
    request: dict[str, Any]
    state: str = "created"
    status: str = "Created"
    ran: bool = False  # started once: "refuse" only hits new containers


@dataclass
class FakeApi:
    """The part of ``docker.APIClient`` that converge uses."""

    images: dict[str, str] = field(default_factory=dict)  # reference -> id
    pullable: set[str] = field(default_factory=set)
    nvidia: bool = False
    behaviour: dict[str, str] = field(default_factory=dict)  # service -> healthy|exits|unhealthy|starting|refuse
    store: dict[str, FakeContainer] = field(default_factory=dict)
    networks_: dict[str, dict[str, Any]] = field(default_factory=dict)
    volumes_: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    ids: Any = field(default_factory=lambda: itertools.count(1))

    # containers
    def create_container(self, **request: Any) -> dict[str, str]:
        if any(c.name == request["name"] for c in self.store.values()):
            raise api_error("Conflict. The container name is already in use", 409)
        cid = f"{next(self.ids):064x}"
        self.store[cid] = FakeContainer(cid, request["name"], dict(request["labels"]), request)
        self.calls.append(("create", request["name"]))
        return {"Id": cid}

    def _get(self, cid: str) -> FakeContainer:
        if cid not in self.store:
            raise docker.errors.NotFound(f"no such container {cid}")
        return self.store[cid]

    def start(self, cid: str) -> None:
        c = self._get(cid)
        service = c.labels.get(containers.SERVICE, "")
        self.calls.append(("start", service))
        if c.request["host_config"]["DeviceRequests"] and not self.nvidia:
            raise api_error('could not select device driver "nvidia" with capabilities: [[gpu]]')
        how = self.behaviour.get(service, "healthy")
        if how == "refuse" and c.ran:
            how = "healthy"
        if how == "refuse" and not c.ran:
            raise api_error("driver failed programming external connectivity: port is already allocated")
        c.state, c.status = {
            "healthy": ("running", "Up 1 second (healthy)" if c.request.get("healthcheck") else "Up 1 second"),
            "exits": ("exited", "Exited (3) 1 second ago"),
            "unhealthy": ("running", "Up 1 second (unhealthy)"),
            "starting": ("running", "Up 1 second (health: starting)"),
            "check-passes": ("running", "Up 1 second (health: starting)"),  # Docker's first check still to come
        }[how]
        c.ran = True

    def exec_create(self, cid: str, argv: list[str], **_: Any) -> dict[str, str]:
        """`up` running a health check itself (probe.py): it passes where the behaviour says so."""
        c = self._get(cid)
        self.calls.append(("exec", c.labels.get(containers.SERVICE, "")))
        passes = c.state == "running" and self.behaviour.get(c.labels.get(containers.SERVICE, "")) == "check-passes"
        return {"Id": f"{'pass' if passes else 'fail'}-{cid}"}

    def exec_start(self, exec_id: str) -> bytes:
        return b""

    def exec_inspect(self, exec_id: str) -> dict[str, int]:
        return {"ExitCode": 0 if exec_id.startswith("pass-") else 1}

    def unpause(self, cid: str) -> None:
        self._get(cid).state = "running"

    def stop(self, cid: str, timeout: int = 10) -> None:
        c = self._get(cid)
        c.state, c.status = "exited", "Exited (0) 1 second ago"

    def remove_container(self, cid: str, force: bool = False) -> None:
        self.calls.append(("remove", self._get(cid).name))
        del self.store[cid]

    def rename(self, cid: str, name: str) -> None:
        self.calls.append(("rename", name))
        self._get(cid).name = name

    def inspect_container(self, cid: str) -> dict[str, Any]:
        c = self._get(cid)
        request = c.request
        return {
            "Name": "/" + c.name,
            "Image": self.images.get(request["image"], request["image"]),
            "State": {"Running": c.state == "running", "Status": c.state,
                      "Health": {"Log": [{"ExitCode": 1, "Output": "curl: connection refused"}]}},
            "Config": {"Image": request["image"], "Cmd": request.get("command"), "Env": request["environment"],
                       "Healthcheck": {"Test": (request.get("healthcheck") or {}).get("test")}},
            "HostConfig": request["host_config"],
        }  # fmt: skip

    def logs(self, cid: str, **_: Any) -> Any:
        text = b"starting\nfatal: bad password test-master-key\n"
        return iter([text]) if _.get("stream") else text

    def containers(self, filters: dict[str, Any] | None = None, **_: Any) -> list[dict[str, Any]]:
        wanted = [label.split("=", 1) for label in (filters or {}).get("label", [])]
        return [
            {"Id": c.id, "Names": ["/" + c.name], "Labels": c.labels, "State": c.state, "Status": c.status,
             "ImageID": self.images.get(c.request["image"], "")}
            for c in list(self.store.values()) if all(c.labels.get(k) == v for k, v in wanted)
        ]  # fmt: skip

    def events(self, **_: Any) -> Any:
        return io.BytesIO(b"")  # iterates to nothing; close() works

    # images
    def inspect_image(self, ref: str) -> dict[str, Any]:
        if ref not in self.images:
            raise docker.errors.ImageNotFound(f"no such image {ref}")
        return {"Id": self.images[ref], "RepoDigests": []}

    def pull(self, repository: str, tag: str, **_: Any) -> Any:
        ref = f"{repository}:{tag}"
        if ref not in self.pullable:
            yield {"error": "pull access denied"}
            return
        yield {"id": "layer", "progressDetail": {"current": 5, "total": 10}}
        self.images[ref] = "sha256:pulled"

    # networks and volumes
    def networks(self, filters: Any = None) -> list[dict[str, Any]]:
        return list(self.networks_.values())

    def create_network(self, name: str, **kw: Any) -> dict[str, str]:
        self.networks_[name] = {"Name": name, "Id": name, **kw}
        return {"Id": name}

    def remove_network(self, name: str) -> None:
        del self.networks_[name]

    def volumes(self, filters: Any = None) -> dict[str, Any]:
        return {"Volumes": list(self.volumes_.values())}

    def create_volume(self, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        self.volumes_[name] = {"Name": name, "Labels": labels}
        return self.volumes_[name]

    def remove_volume(self, name: str) -> None:
        del self.volumes_[name]


@dataclass
class FakeClient:
    api: FakeApi


def make_project(tmp_path: Path, profile: Path = SMALL, **env: str) -> tuple[desired.Project, FakeClient]:
    plan = load(str(profile))
    rendered = render_plan(plan, fixed_env(plan.secrets))
    values = {**parse_env(rendered.files[".env"]), **env}
    files = {k: v.encode() for k, v in rendered.files.items()}
    project = desired.project(plan, tmp_path, values, files)
    api = FakeApi(images={s.image: f"sha256:{s.name}" for s in plan.services})
    return project, FakeClient(api)


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "POLL_S", 0.01)


def _up(project: desired.Project, client: FakeClient, **kw: Any) -> tuple[runner.UpResult, str]:
    out = io.StringIO()
    result = runner.up(client, project, reporter=EventLines(out), secrets=("test-master-key",), **kw)
    return result, out.getvalue()


def test_up_creates_in_dependency_order_and_then_does_nothing(tmp_path: Path) -> None:
    project, client = make_project(tmp_path)
    result, text = _up(project, client)
    starts = [s for kind, s in client.api.calls if kind == "start"]
    assert starts[-1] == "api" and set(starts) == set(project.services)
    assert {a.kind for a in result.actions} == {"create"}
    assert all(v["state"] == "running" for v in result.services.values())
    assert f"{project.name}_default" in client.api.networks_
    assert {f"{project.name}_{v}" for v in project.volumes} <= set(client.api.volumes_)
    api = next(c for c in client.api.store.values() if c.labels[containers.SERVICE] == "api")
    assert api.labels[containers.CONFIG_HASH] == desired.config_hash(project, "api")
    assert "api: ready" in text
    client.api.calls.clear()
    again, text = _up(project, client)
    assert {a.kind for a in again.actions} == {"nothing"} and not client.api.calls
    assert "api: unchanged" in text


def test_a_changed_secret_recreates_what_uses_it_and_removes_the_old_one(tmp_path: Path) -> None:
    project, client = make_project(tmp_path)
    _up(project, client)
    old = {c.labels[containers.SERVICE]: c.id for c in client.api.store.values()}
    changed, _ = make_project(tmp_path, MASTER_KEY="another-master-key")
    client.api.calls.clear()
    result, text = _up(changed, client)
    kinds = {a.service: a.kind for a in result.actions}
    assert kinds["api"] == "recreate" and kinds["redis"] == "nothing"
    assert "changed: environment" in next(a.reason for a in result.actions if a.service == "api")
    api = [c for c in client.api.store.values() if c.labels[containers.SERVICE] == "api"]
    assert len(api) == 1 and api[0].id != old["api"] and api[0].name == f"{project.name}-api-1"
    assert ("rename", f"{old['api'][:12]}_{project.name}-api-1") in client.api.calls  # set aside first
    assert "api: recreating" in text


def test_a_failed_recreate_puts_the_old_container_back(tmp_path: Path) -> None:
    project, client = make_project(tmp_path)
    _up(project, client)
    old = next(c for c in client.api.store.values() if c.labels[containers.SERVICE] == "api")
    changed, _ = make_project(tmp_path, MASTER_KEY="another-master-key")
    client.api.behaviour["api"] = "refuse"
    with pytest.raises(DockerError, match="service api: a host port it publishes is already in use"):
        _up(changed, client)
    api = [c for c in client.api.store.values() if c.labels[containers.SERVICE] == "api"]
    assert [c.id for c in api] == [old.id]
    assert old.name == f"{project.name}-api-1" and old.state == "running"


def test_a_gpu_service_is_refused_first_and_nothing_else_starts(tmp_path: Path) -> None:
    multi = next(p for p in PROFILES if p.stem == "multi-gpu")
    project, client = make_project(tmp_path, multi)
    with pytest.raises(DockerError, match=r"no NVIDIA container runtime.*--no-gpus"):
        _up(project, client)
    starts = [s for kind, s in client.api.calls if kind == "start"]
    assert starts and all(project.services[s].gpu for s in starts)
    assert not any(c.state == "created" for c in client.api.store.values())  # nothing left half-made


def test_a_service_that_exits_is_named_with_its_logs_masked(tmp_path: Path) -> None:
    project, client = make_project(tmp_path)
    client.api.behaviour["redis"] = "exits"
    with pytest.raises(ServiceFailed) as caught:
        _up(project, client)
    message = str(caught.value)
    assert "service redis failed: exited with code 3." in message
    assert "last health check (exit 1): curl: connection refused" in message
    assert "bad password ********" in message and "test-master-key" not in message
    assert not any(c.labels[containers.SERVICE] == "api" and c.state == "running" for c in client.api.store.values())


def test_unhealthy_and_slow_services_fail_with_the_fix(tmp_path: Path) -> None:
    project, client = make_project(tmp_path)
    client.api.behaviour["redis"] = "unhealthy"
    with pytest.raises(ServiceFailed, match="its health check failed"):
        _up(project, client)
    project, client = make_project(tmp_path)
    client.api.behaviour["redis"] = "starting"
    with pytest.raises(ServiceFailed, match=r"not healthy after 0 s .*--timeout redis=SECONDS"):
        _up(project, client, timeouts={"redis": 0.05})


def test_detach_returns_once_everything_started(tmp_path: Path) -> None:
    project, client = make_project(tmp_path)
    client.api.behaviour["api"] = "starting"
    result, _ = _up(project, client, detach=True)
    assert result.services["api"]["state"] == "running" and result.services["api"]["health"] == "starting"


def test_a_missing_image_is_pulled_before_anything_changes(tmp_path: Path) -> None:
    project, client = make_project(tmp_path)
    image = project.services["redis"].image
    del client.api.images[image]
    client.api.pullable.add(image)
    result, text = _up(project, client)
    assert "redis: pulling" in text and result.services["redis"]["state"] == "running"
    project, client = make_project(tmp_path)
    del client.api.images[image]
    with pytest.raises(DockerError, match="cannot be pulled"):
        _up(project, client)
    assert not client.api.store and not client.api.networks_


def test_orphans_and_duplicates_are_removed_and_exited_ones_restarted(tmp_path: Path) -> None:
    project, client = make_project(tmp_path)
    _up(project, client)
    redis = next(c for c in client.api.store.values() if c.labels[containers.SERVICE] == "redis")
    redis.state, redis.status = "exited", "Exited (0) 1 second ago"
    orphan = dict(redis.labels, **{containers.SERVICE: "gone"})
    client.api.create_container(**{**redis.request, "name": "p-gone-1", "labels": orphan})
    copy = {**redis.request, "name": f"{project.name}-redis-2", "labels": {**redis.labels, containers.NUMBER: "2"}}
    client.api.create_container(**copy)
    result, _ = _up(project, client)
    kinds = {(a.service, a.kind) for a in result.actions}
    assert ("gone", "remove") in kinds and ("redis", "start") in kinds
    names = sorted(c.name for c in client.api.store.values())
    assert "p-gone-1" not in names and f"{project.name}-redis-2" not in names


def test_a_foreign_container_with_our_name_is_reported(tmp_path: Path) -> None:
    project, client = make_project(tmp_path)
    client.api.create_container(**{"name": f"{project.name}-redis-1", "labels": {}, "image": "x"})
    with pytest.raises(DockerError, match="already exists and does not belong to project"):
        _up(project, client)


def test_actions_touch_nothing(tmp_path: Path) -> None:
    project, client = make_project(tmp_path)
    assert {a.kind for a in runner.actions(client, project)} == {"create"}
    assert not client.api.store and not client.api.calls


def test_setting_aside_and_putting_back_when_the_daemon_objects(tmp_path: Path) -> None:
    from albert_deploy.converge.operations import Operations, SetAside

    project, client = make_project(tmp_path)
    out = io.StringIO()
    ops = Operations(client, project, EventLines(out), {}, {})
    assert ops.set_aside("api", "missing") is None
    cid = client.api.create_container(name="p-api-1", labels={}, image="x")["Id"]
    client.api.store[cid].state = "dead"
    client.api.inspect_container = lambda c: {"Name": "/p-api-1", "State": {"Dead": True}}  # type: ignore[method-assign]
    assert ops.set_aside("api", cid) is None and cid not in client.api.store
    ops.put_back("api", SetAside("gone", "p-api-1", was_running=True))
    assert "api: failed: could not restore its previous container gone" in out.getvalue()
    with pytest.raises(DockerError, match="cannot rename its new container to x"):
        ops.rename("api", "gone", "x")
    client.api.create_container = lambda **kw: (_ for _ in ()).throw(api_error("no space left"))  # type: ignore[method-assign]
    with pytest.raises(DockerError, match="service api: the daemon refused to create its container: no space left"):
        ops.create("api")


VLLM, WHISPER = "guillaumetell-7b", "whisper-large-v3-turbo"  # on GPU 0 in FULL: whisper waits for vLLM


def test_a_fresh_start_starts_what_waits_inside_with_what_it_waits_for(tmp_path: Path) -> None:
    """whisper's command waits for vLLM, the API's for every model server (plan/startup.py): from
    nothing, `up` starts them without waiting for Docker to call vLLM healthy, and their clocks
    start only once it is (the API, never healthy here, is not timed out while vLLM loads)."""
    project, client = make_project(tmp_path, FULL)
    assert project.services[WHISPER].waits_inside == (VLLM,) and VLLM in project.services["api"].waits_inside
    client.api.nvidia = True
    client.api.behaviour.update({VLLM: "starting", "api": "starting"})
    with pytest.raises(ServiceFailed) as failed:
        _up(project, client, timeouts={VLLM: 0.3, "api": 0.01})
    assert {WHISPER, "api"} <= {s for kind, s in client.api.calls if kind == "start"}
    assert f"service {VLLM} failed" in str(failed.value) and "service api failed" not in str(failed.value)
    # The API, still waiting inside for vLLM, is removed: it would start later without it. whisper
    # (healthy here) and vLLM (its failure's evidence) stay, as every started service does.
    left = {c.labels[containers.SERVICE] for c in client.api.store.values()}
    assert "api" not in left and {VLLM, WHISPER} <= left


def test_a_replaced_dependency_is_waited_for_by_up_itself(tmp_path: Path) -> None:
    """When vLLM is replaced, its old container could answer whisper's wait: whisper (created anew
    here) and the API start only once the new vLLM is healthy, as without waits inside."""
    project, client = make_project(tmp_path, FULL)
    client.api.nvidia = True
    _up(project, client)
    whisper = next(c for c in client.api.store.values() if c.labels[containers.SERVICE] == WHISPER)
    del client.api.store[whisper.id]
    vllm = project.services[VLLM]
    changed = {**project.services, VLLM: replace(vllm, environment={**vllm.environment, "CHANGED": "1"})}
    client.api.calls.clear()
    client.api.behaviour[VLLM] = "starting"
    with pytest.raises(ServiceFailed, match=f"service {VLLM} failed"):
        _up(replace(project, services=changed), client, timeouts={VLLM: 0.2})
    assert [s for kind, s in client.api.calls if kind == "start"] == [VLLM]


def test_a_check_that_passes_when_up_runs_it_makes_the_service_ready(tmp_path: Path) -> None:
    """Docker's first check comes one interval after the start; `up` runs the same command sooner
    (probe.py), and a pass is ready: the API starts without waiting for Docker's verdict on redis."""
    slow_checks = tmp_path / "slow-checks.yaml"  # compose's default interval: worth probing (probe.WORTH_IT_S)
    slow_checks.write_text(SMALL.read_text().replace("health_interval: 1", "health_interval: 10"))
    project, client = make_project(tmp_path, slow_checks)
    client.api.behaviour.update({"redis": "check-passes", "api": "check-passes"})
    result, _ = _up(project, client, timeouts={"redis": 30})
    assert ("exec", "redis") in client.api.calls
    assert client.api.calls.index(("exec", "redis")) < client.api.calls.index(("start", "api"))
    assert result.services["redis"]["health"] == "healthy" and result.services["api"]["health"] == "healthy"
    redis = next(c for c in client.api.store.values() if c.labels[containers.SERVICE] == "redis")
    assert redis.id in result.verified and redis.status.endswith("(health: starting)")
