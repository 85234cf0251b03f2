"""down, status, logs, exec and the apply entry points against the in-memory daemon; the scheduler
on its own (no Docker at all)."""

from __future__ import annotations

import graphlib
import socket
import threading
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from albert_deploy.commands import load
from albert_deploy.converge import apply, containers, engine, images, runner, scheduler, stackops
from albert_deploy.converge.progress import Silent
from albert_deploy.errors import DeployError, DockerError, LockError
from tests.helpers import SMALL, fixed_env
from tests.test_converge_runner import FakeApi, FakeClient, make_project


def _running(tmp_path: Path) -> tuple[Any, FakeClient]:
    project, client = make_project(tmp_path)
    runner.up(client, project)
    return project, client


def test_down_removes_dependents_first_and_volumes_only_when_asked(tmp_path: Path) -> None:
    project, client = _running(tmp_path)
    client.api.calls.clear()
    result = stackops.down(client, project.name)
    removed = [name for kind, name in client.api.calls if kind == "remove"]
    assert removed[0] == f"{project.name}-api-1" and len(removed) == len(project.services)
    assert result["networks"] == [f"{project.name}_default"] and result["volumes"] == []
    assert client.api.volumes_
    _running(tmp_path)
    client.api.volumes_ = {n: {**v, "Name": n} for n, v in client.api.volumes_.items()}
    assert stackops.down(client, project.name, volumes=True)["volumes"]


def test_status_reports_drift_lock_and_missing_services(tmp_path: Path) -> None:
    project, client = _running(tmp_path)
    rows = stackops.status(client, project.name, project, {})
    assert {r["drift"] for r in rows} == {"none"} and {r["started_by"] for r in rows} == {"albert-deploy"}
    api = next(r for r in rows if r["service"] == "api")
    port = project.services["api"].ports[0]
    assert api["ports"] == [f"127.0.0.1:{port.published}->8000/tcp"] and api["gpus"] == "-" and api["lock"] == "-"
    changed, _ = make_project(tmp_path, MASTER_KEY="other-master-key")
    rows = stackops.status(client, project.name, changed, {"redis": {"id": "sha256:redis"}})
    assert next(r for r in rows if r["service"] == "api")["drift"] == "changed: environment"
    assert next(r for r in rows if r["service"] == "redis")["lock"] == "matches"
    redis = next(c for c in list(client.api.store.values()) if c.labels[containers.SERVICE] == "redis")
    client.api.remove_container(redis.id)
    rows = stackops.status(client, project.name, project, {"api": {"id": "sha256:x", "local_only": True}})
    assert next(r for r in rows if r["service"] == "redis")["drift"] == "not created"
    assert next(r for r in rows if r["service"] == "api")["lock"].startswith("differs")
    assert {r["drift"] for r in stackops.status(client, project.name, None, {})} == {"unknown"}


def test_a_container_started_by_docker_compose_is_compared_field_by_field(tmp_path: Path) -> None:
    project, client = _running(tmp_path)
    for c in client.api.store.values():
        c.labels.pop(containers.OURS)
    rows = stackops.status(client, project.name, project, {})
    api = next(r for r in rows if r["service"] == "api")
    assert api["drift"] == "none (started by docker compose; bind-mounted file contents not verifiable)"
    info = client.api.inspect_container(next(c.id for c in client.api.store.values()))
    spec = replace(project.services["redis"], image="other", command=("x",), environment={"A": "1"})
    assert stackops.compare_with_compose_container(spec, info)[:3] == ["image", "command", "environment"]


def test_logs_and_exec(tmp_path: Path) -> None:
    project, client = _running(tmp_path)
    assert b"starting" in b"".join(stackops.logs(client, project.name, "api", False, 5))
    with pytest.raises(DockerError, match="has no service nope; its services: api"):
        stackops.logs(client, project.name, "nope", False, None)
    ours, theirs = socket.socketpair()
    frame = b"\x01\x00\x00\x00" + len(b"[1]").to_bytes(4, "big") + b"[1]"
    frame += b"\x02\x00\x00\x00\x00\x00\x00\x04oops"
    received: list[bytes] = []

    def daemon() -> None:
        received.append(theirs.recv(100))
        theirs.sendall(frame)
        theirs.close()

    thread = threading.Thread(target=daemon)
    thread.start()
    client.api.exec_create = lambda *a, **k: {"Id": "e1"}  # type: ignore[attr-defined]
    client.api.exec_start = lambda *a, **k: ours  # type: ignore[attr-defined]
    client.api.exec_inspect = lambda *a: {"ExitCode": 0}  # type: ignore[attr-defined]
    assert stackops.exec_json(client, project.name, "api", ["true"], b"stdin") == (0, b"[1]")
    thread.join()
    assert received == [b"stdin"]
    with pytest.raises(DockerError, match="is not running"):
        stackops.exec_json(client, project.name, "nope", ["true"], b"")


def test_apply_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = load(str(SMALL))
    (tmp_path / ".env").write_text(fixed_env(plan.secrets))
    applied = apply.prepare(plan, tmp_path, write=False)
    client = FakeClient(FakeApi(images={s.image: f"sha256:{s.name}" for s in plan.services}))
    monkeypatch.setattr(engine, "connect", lambda: client)
    assert apply.diff(applied)["changes"] == len(plan.services)
    with pytest.raises(DeployError, match=r"--timeout nope=\.\.\.: no such service"):
        apply.up(applied, timeouts=("nope=5",))
    result = apply.up(applied, reporter=Silent())
    assert result["changes"] == len(plan.services) and result["api_url"].startswith("http://127.0.0.1:")
    assert {r["state"] for r in result["services"]} == {"running"}
    status = apply.status(plan.project, applied)
    assert not status["drift"] and not status["lock_mismatch"]
    assert b"starting" in b"".join(apply.logs(plan.project, "api", False, None))
    assert apply.down(plan.project, False)["containers"]


def test_images_pull_resolve_and_lock(tmp_path: Path) -> None:
    client = FakeClient(FakeApi(images={"a:1": "sha256:a"}, pullable={"b:2"}))
    assert images.pull_all(client, ["b:2"], Silent()) == [{"image": "b:2", "id": "sha256:pulled", "pulled": True}]
    assert images.resolve(client, "a:1") == {"digest": None, "pinned": None, "id": "sha256:a", "local_only": True}
    with pytest.raises(LockError, match="pull it first"):
        client.api.inspect_distribution = lambda ref: (_ for _ in ()).throw(  # type: ignore[attr-defined]
            __import__("tests.test_converge_runner").test_converge_runner.api_error("no registry")
        )
        images.resolve(client, "c:3")


# --- the scheduler, alone -----------------------------------------------------------------------


class Recorder:
    """Tasks that turn ready right after launch (or fail), recording the order."""

    def __init__(self, fail: str = "") -> None:
        self.launched: list[str] = []
        self.pending: list[str] = []
        self.fail, self.aborted = fail, False
        self.lock = threading.Lock()

    def launch(self, node: str) -> None:
        if node == self.fail:
            raise RuntimeError(f"{node} failed")
        with self.lock:
            self.launched.append(node)
            self.pending.append(node)

    def poll(self) -> Iterable[str]:
        with self.lock:
            turned, self.pending = self.pending, []
        return turned

    def wait(self) -> None:
        threading.Event().wait(0.001)

    def wake(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True


def test_scheduler_launches_after_dependencies_and_gpu_ones_first() -> None:
    tasks = Recorder()
    graph = {"db": [], "gpu": [], "model": ["db"], "api": ["db", "model"]}
    scheduler.execute(graph, tasks, first=["gpu"])
    order = tasks.launched
    assert order[0] == "gpu" and order.index("db") < order.index("model") < order.index("api")


def test_the_longest_chain_is_launched_first() -> None:
    """A long vLLM load heading a chain (whisper waits for it on its GPU, the API for both) goes
    before the databases, though they come first in the plan; ties keep the plan's order."""
    chains = {"redis": [], "postgres": [], "vllm": [], "whisper": ["vllm"], "api": ["redis", "postgres", "whisper"]}
    budgets = {"redis": 60, "postgres": 90, "vllm": 975, "whisper": 645, "api": 165}
    order = scheduler.critical_first(chains, budgets)
    assert order == ["vllm", "whisper", "postgres", "redis", "api"]
    assert scheduler.critical_first(chains, {}) == list(chains)  # no weights: the plan's order


def test_scheduler_polls_started_nodes_and_aborts_on_failure() -> None:
    tasks = Recorder()
    tasks.pending.append("db")  # already running: polled ready, never launched
    scheduler.execute({"db": [], "api": ["db"]}, tasks, started=["db"])
    assert tasks.launched == ["api"]
    failing = Recorder(fail="model")
    with pytest.raises(RuntimeError, match="model failed"):
        scheduler.execute({"db": [], "model": ["db"], "api": ["model"]}, failing)
    assert failing.aborted and "api" not in failing.launched
    with pytest.raises(graphlib.CycleError):
        scheduler.execute({"a": ["b"], "b": ["a"]}, Recorder())


def test_down_order_follows_the_depends_on_labels() -> None:
    deps = {"api": ["db", "model"], "model": ["db"], "db": [], "other": []}
    assert stackops._dependents_first(deps) == [{"api", "other"}, {"model"}, {"db"}]
    assert stackops._dependents_first({"a": ["b"], "b": ["a"]}) == [{"a", "b"}]
