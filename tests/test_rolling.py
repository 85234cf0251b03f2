"""`replicas`: the profile's rules, the plan (N placed servers behind one balancer named after the
model), the Kubernetes refusal, and `up` replacing replicas one at a time against the in-memory
daemon of test_converge_runner (the real daemon: test_rolling_docker.py)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from albert_deploy.commands import load
from albert_deploy.converge import runner, stackops
from albert_deploy.converge.progress import EventLines
from albert_deploy.errors import DockerError, ProfileError, RenderError
from albert_deploy.plan.replicas import Balancer
from albert_deploy.render.kubernetes.render import render_kubernetes
from tests.helpers import SMALL
from tests.test_converge_runner import FakeClient, make_project

MODEL = "guillaumetell-7b"
REPLICATED = {
    "model": "AgentPublic/guillaumetell-7b",
    "gpus": 1,
    "replicas": 2,
    "port": 18555,
    "args": ["--seed", "1"],
}


def profile_with(tmp_path: Path, file: str = "site.yaml", **model: Any) -> Path:
    data = yaml.safe_load(SMALL.read_text())
    data["gpus"] = {"count": 2, "memory": "80GB", "name": "NVIDIA H100 80GB HBM3"}
    data["placement"] = "spread"
    data["models"].append({**REPLICATED, **model})
    path = tmp_path / file
    path.write_text(yaml.safe_dump(data))
    return path


# --- profile -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"replicas": 0}, "models.1.replicas: 0 is too small: at least 1"),
        ({"replicas": True}, "true is not a whole number"),
        ({"replicas": 17}, "17 is too large: at most 16"),
        ({"name": "x" * 62}, "longer than 63 characters: shorten `name`"),
    ],
)
def test_replicas_are_refused_with_what_to_do(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        load(str(profile_with(tmp_path, **change)))


def test_a_replica_may_not_take_another_models_name(tmp_path: Path) -> None:
    path = profile_with(tmp_path, file="a.yaml", name="chat")
    data = yaml.safe_load(path.read_text())
    data["models"].append({"model": "AgentPublic/guillaumetell-7b", "name": "chat-2", "gpus": 1})
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError, match=re.escape("its replica 'chat-2' has the name of models.2: rename one")):
        load(str(path))


# --- plan ----------------------------------------------------------------------------------------


def test_replicas_are_placed_servers_behind_one_balancer_the_api_lists_once(tmp_path: Path) -> None:
    plan = load(str(profile_with(tmp_path)))
    by_name = {s.name: s for s in plan.services}
    one, two, front = by_name[f"{MODEL}-1"], by_name[f"{MODEL}-2"], by_name[MODEL]
    # Placed like two models: each its own GPU here (spread), each with its own budget.
    assert {n: plan.placement.models[n].gpu.device_ids for n in (one.name, two.name)} == {  # type: ignore[union-attr]
        one.name: ("0",),
        two.name: ("1",),
    }
    assert MODEL not in plan.placement.models
    # One model: one key, one weights volume, one cache entry for pull and bundle.
    assert one.environment["VLLM_API_KEY"] == two.environment["VLLM_API_KEY"]
    assert str(one.environment["VLLM_API_KEY"]) == "${MODEL_GUILLAUMETELL_7B_KEY}"
    assert one.mounts == two.mounts and one.mounts[0].volume == f"{MODEL}-cache"
    assert [(c.service, c.volume) for c in plan.caches if c.model_id.endswith("7b")] == [(one.name, f"{MODEL}-cache")]
    assert one.command[-2:] == ("--seed", "1") and not one.ports and one.model == two.model == MODEL
    # The balancer bears the model's name (the API's URL), publishes the model's port, waits for both.
    assert front.role == "balancer" and front.depends_on == (one.name, two.name)
    assert front.ports == (("127.0.0.1", 18555, 8000),) and front.user == "65534:65534"
    assert MODEL in by_name["api"].depends_on
    (endpoint,) = [e for e in plan.endpoints if e.name == MODEL]
    assert endpoint.url == f"http://{MODEL}:8000"
    assert plan.balancers == (Balancer(MODEL, 8000, (one.name, two.name)),)
    assert front.command == (plan.balancers[0].conf(),)


def test_the_balancer_config_takes_one_replica_out(tmp_path: Path) -> None:
    b = Balancer("m", 8000, ("m-1", "m-2"))
    assert "server m-1:8000 max_fails=1 fail_timeout=2s;" in b.conf()
    drained = b.conf("m-2")
    assert "server m-2:8000 down;" in drained and "server m-1:8000 max_fails" in drained
    assert "proxy_next_upstream error timeout" in drained and "listen 8000;" in drained


def test_kubernetes_refuses_replicas_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="does not render replicas yet"):
        render_kubernetes(load(str(profile_with(tmp_path))))


# --- up ------------------------------------------------------------------------------------------


def _up(project: Any, client: FakeClient, plan: Any) -> runner.UpResult:
    def reload(balancer: Balancer, down: str | None) -> None:
        client.api.calls.append(("reload", down or "-"))

    out = io.StringIO()
    return runner.up(client, project, reporter=EventLines(out), balancers=plan.balancers, reload=reload)


def test_up_replaces_replicas_one_at_a_time_each_drained_first(tmp_path: Path) -> None:
    path = profile_with(tmp_path)
    project, client = make_project(tmp_path, path)
    client.api.nvidia = True
    plan = load(str(path))
    _up(project, client, plan)
    assert not [c for c in client.api.calls if c[0] == "reload"]  # all created: nothing to drain
    client.api.calls.clear()

    changed = profile_with(tmp_path, args=["--seed", "2"])
    project2, _ = make_project(tmp_path, changed)
    result = _up(project2, client, load(str(changed)))
    kinds = {a.service: a.kind for a in result.actions}
    assert kinds[f"{MODEL}-1"] == kinds[f"{MODEL}-2"] == "recreate"
    assert kinds[MODEL] == kinds["api"] == "nothing"
    calls = [c for c in client.api.calls if c[0] in ("reload", "start") or c[0] == "rename"]
    first, second = f"{MODEL}-1", f"{MODEL}-2"
    start_one = calls.index(("start", first))
    assert calls.index(("reload", first)) < start_one  # out of rotation before it stopped
    # The second is drained (which puts the first back) only once the first new one started (and
    # turned healthy: the scheduler's dependency), then the last reload puts every replica back.
    assert start_one < calls.index(("reload", second)) < calls.index(("start", second))
    assert calls[-1] == ("reload", "-")
    assert [c for c in calls if c[0] == "reload"] == [("reload", first), ("reload", second), ("reload", "-")]


def test_a_new_balancer_is_not_drained(tmp_path: Path) -> None:
    path = profile_with(tmp_path)
    project, client = make_project(tmp_path, path)
    client.api.nvidia = True
    _up(project, client, load(str(path)))
    client.api.calls.clear()
    three = profile_with(tmp_path, replicas=3, args=["--seed", "2"])
    project3, _ = make_project(tmp_path, three)
    result = _up(project3, client, load(str(three)))
    assert {a.service: a.kind for a in result.actions}[MODEL] == "recreate"
    assert not [c for c in client.api.calls if c[0] == "reload"]


def test_the_docker_reloader_sends_the_config_and_reports_a_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, bytes]] = []
    answer = [(0, b"")]

    def exec_json(client: Any, project: str, service: str, argv: list[str], stdin: bytes) -> tuple[int, bytes]:
        sent.append((service, stdin))
        assert argv[:2] == ["/bin/sh", "-c"] and "-s reload" in argv[2]
        return answer[0]

    monkeypatch.setattr(stackops, "exec_json", exec_json)
    balancer = Balancer("m", 8000, ("m-1", "m-2"))
    reload = stackops.balancer_reloader(object(), "p")
    reload(balancer, "m-1")
    assert sent == [("m", balancer.conf("m-1").encode())]
    answer[0] = (1, b'nginx: [emerg] host not found in upstream "m-2:8000"\n')
    with pytest.raises(
        DockerError, match=re.escape("service m: could not put every replica back in rotation (exit 1): nginx")
    ):
        reload(balancer, None)
