"""The apply stage's pure parts: compose interpolation, hashing, reconciliation, create requests.

No Docker daemon needed (the Docker SDK is imported for its types only).
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from albert_deploy.commands import load
from albert_deploy.converge import containers, desired, reconcile
from albert_deploy.converge.progress import EventLines, LiveTable
from albert_deploy.errors import DeployError, DockerError
from albert_deploy.plan.spec import GpuAssignment
from albert_deploy.render.envfile import parse_env
from albert_deploy.render.files import render_plan
from tests.helpers import PROFILES, fixed_env

# --- hashing ------------------------------------------------------------------------------------


DEFAULT = next(p for p in PROFILES if p.stem == "default")


def _project(tmp_path: Path, profile: Path = DEFAULT, no_gpus: bool = False) -> desired.Project:
    plan = load(str(profile))
    rendered = render_plan(plan, fixed_env(plan.secrets))
    files = {k: v.encode() for k, v in rendered.files.items()}
    return desired.project(plan, tmp_path, parse_env(rendered.files[".env"]), files, no_gpus=no_gpus)


def test_hash_is_stable_and_covers_bind_mounted_files(tmp_path: Path) -> None:
    a, b = _project(tmp_path), _project(tmp_path)
    assert {s: desired.config_hash(a, s) for s in a.services} == {s: desired.config_hash(b, s) for s in b.services}
    source = a.services["api"].binds[0].source
    changed = desired.Project(a.name, a.working_dir, a.config_file, a.services, a.volumes, files={source: b"other"})
    assert desired.config_hash(changed, "api") != desired.config_hash(a, "api")
    assert desired.config_hash(changed, "redis") == desired.config_hash(a, "redis")


def test_no_gpus_changes_the_hash_of_gpu_services_only(tmp_path: Path) -> None:
    default = next(p for p in PROFILES if p.stem == "cpu-dev")
    multi = next(p for p in PROFILES if p.stem == "multi-gpu")
    project, stripped = _project(tmp_path, multi), _project(tmp_path, multi, no_gpus=True)
    for service in project.services:
        has_gpu = project.services[service].gpu is not None
        assert (desired.config_hash(stripped, service) != desired.config_hash(project, service)) == has_gpu
        assert stripped.services[service].gpu is None
        assert stripped.services[service].no_gpus == has_gpu
    assert any(s.gpu for s in project.services.values())
    assert _project(tmp_path, default, no_gpus=True).services == _project(tmp_path, default).services


def test_secret_values_never_appear_in_labels(tmp_path: Path) -> None:
    project = _project(tmp_path)
    stack = load(str(DEFAULT))
    secret = parse_env(render_plan(stack, fixed_env(stack.secrets)).files[".env"])
    for service in project.services:
        labels = containers.labels(
            project, service, desired.config_hash(project, service),
            reconcile.encode_parts(reconcile.service_parts(project, service)), "sha256:x",
        )  # fmt: skip
        text = json.dumps(labels)
        assert not any(value in text for value in secret.values() if len(value) > 5)


# --- reconciliation -----------------------------------------------------------------------------


def _desired(
    service: str, h: str = "h1", parts: dict[str, str] | None = None, deps: dict[str, str] | None = None
) -> reconcile.Desired:
    return reconcile.Desired(service, h, parts or {"image": "a"}, "img", "sha256:1", deps or {})


def _actual(service: str, h: str = "h1", state: str = "running", **kw: object) -> reconcile.Actual:
    fields = {
        "id": f"id-{service}", "name": f"p-{service}-1", "service": service, "number": 1, "state": state,
        "health": "healthy", "config_hash": h, "ours": True, "image_id": "sha256:1", "parts": {"image": "a"},
    }  # fmt: skip
    fields.update(kw)
    return reconcile.Actual(**fields)  # type: ignore[arg-type]


def _kinds(actions: list[reconcile.Action]) -> dict[str, str]:
    return {a.service: a.kind for a in actions}


def test_nothing_changed_means_nothing_to_do() -> None:
    actions = reconcile.plan_actions([_desired("a"), _desired("b")], [_actual("a"), _actual("b")])
    assert _kinds(actions) == {"a": "nothing", "b": "nothing"}


def test_changed_hash_recreates_and_says_which_part() -> None:
    want = _desired("a", "h2", {"image": "a", "command": "new", "file:config.yml": "f2"})
    have = _actual("a", "h1", parts={"image": "a", "command": "old", "file:config.yml": "f1"})
    (action,) = reconcile.plan_actions([want], [have])
    assert action.kind == "recreate"
    assert action.reason == "changed: command, config.yml"
    assert action.container == "id-a"


def test_missing_exited_and_orphan_containers() -> None:
    actions = reconcile.plan_actions(
        [_desired("a"), _desired("b"), _desired("c")],
        [_actual("b", state="exited"), _actual("c", state="created"), _actual("gone")],
    )
    assert _kinds(actions) == {"a": "create", "b": "start", "c": "start", "gone": "remove"}
    assert next(a for a in actions if a.service == "gone").reason == "no longer in the profile"


def test_changed_image_and_foreign_hash_recreate() -> None:
    (by_image,) = reconcile.plan_actions([_desired("a")], [_actual("a", image_id="sha256:old")])
    assert by_image.kind == "recreate" and "image img has changed" in by_image.reason
    (foreign,) = reconcile.plan_actions([_desired("a")], [_actual("a", h="compose-hash", ours=False)])
    assert foreign.kind == "recreate" and "started by docker compose" in foreign.reason


def test_duplicates_are_removed_and_the_running_one_kept() -> None:
    stale = _actual("a", state="exited", id="old", number=2)
    (action,) = reconcile.plan_actions([_desired("a")], [stale, _actual("a")])
    assert (action.kind, action.container, action.duplicates) == ("nothing", "id-a", ("old",))


def test_no_gpus_reason() -> None:
    want = _desired("a", "h2", {"image": "a", "x-no-gpus": "t"})
    (action,) = reconcile.plan_actions([want], [_actual("a", parts={"image": "a", "deploy": "d"})])
    assert action.reason == "changed: --no-gpus drops its GPUs"


def test_start_order_puts_the_api_last_and_refuses_cycles() -> None:
    deps = {"redis": {}, "tei": {}, "api": {"redis": "service_healthy", "tei": "service_healthy"}}
    assert reconcile.start_order(deps) == [["redis", "tei"], ["api"]]
    with pytest.raises(DockerError, match="cycle"):
        reconcile.start_order({"a": {"b": "service_healthy"}, "b": {"a": "service_healthy"}})
    with pytest.raises(DockerError, match="not defined"):
        reconcile.start_order({"a": {"zzz": "service_healthy"}})


def test_real_stack_order(tmp_path: Path) -> None:
    project = _project(tmp_path)
    waves = reconcile.start_order({s: v.depends_on for s, v in project.services.items()})
    assert waves[-1] == ["api"] and {"redis", "postgres", "qdrant"} <= set(waves[0])


def test_timeouts_come_from_the_health_check_and_can_be_overridden(tmp_path: Path) -> None:
    spec = next(c for c in _project(tmp_path).services.values() if "vllm" in c.image)
    check = replace(spec.healthcheck, start_period_s=900, interval_s=10, timeout_s=5, retries=5)
    spec = replace(spec, healthcheck=check)
    assert reconcile.service_timeout(spec, {}, "vllm") == 900 + 5 * 15 + reconcile.TIMEOUT_MARGIN_S
    assert reconcile.service_timeout(spec, {"*": 60}, "vllm") == 60
    assert reconcile.service_timeout(spec, {"*": 60, "vllm": 5}, "vllm") == 5
    no_check = replace(spec, healthcheck=None)
    assert reconcile.service_timeout(no_check, {}, "x") == reconcile.NO_HEALTHCHECK_TIMEOUT_S
    assert reconcile.parse_timeouts(["600", "api=30"]) == {"*": 600, "api": 30}
    with pytest.raises(DeployError, match="SERVICE=SECONDS"):
        reconcile.parse_timeouts(["api=soon"])


# --- create requests ----------------------------------------------------------------------------


def test_create_request_for_a_gpu_model_server(tmp_path: Path) -> None:
    project = _project(tmp_path, next(p for p in PROFILES if p.stem == "multi-gpu"))
    service = next(s for s, spec in project.services.items() if "vllm" in spec.image)
    request = containers.create_request(project, service, {"x": "y"})
    host = request["host_config"]
    assert request["name"] == f"{project.name}-{service}-1"
    assert host["DeviceRequests"] == [
        {"Driver": "nvidia", "Count": 0, "DeviceIDs": ["0"], "Capabilities": [["gpu"]], "Options": {}}
    ]
    assert host["NetworkMode"] == f"{project.name}_default"
    assert host["RestartPolicy"] == {"Name": "unless-stopped"}
    assert host["ShmSize"] == 8 * 2**30
    assert host["Mounts"][0]["Source"] == f"{project.name}_{service}-cache"
    assert request["healthcheck"]["start_period"] == 900 * 10**9
    assert request["networking_config"]["EndpointsConfig"][f"{project.name}_default"]["Aliases"][0] == service
    stripped = _project(tmp_path, next(p for p in PROFILES if p.stem == "multi-gpu"), no_gpus=True)
    assert containers.create_request(stripped, service, {})["host_config"]["DeviceRequests"] == []
    assert containers.labels(stripped, service, "h", "", "")[containers.GPUS_DROPPED] == "true"


def test_count_requests_and_api_port(tmp_path: Path) -> None:
    project = _project(tmp_path)
    spec = replace(project.services["api"], gpu=GpuAssignment(count=2))
    (request,) = containers.device_requests(spec)
    assert (request["Count"], request["DeviceIDs"]) == (2, [])
    (request,) = containers.device_requests(replace(spec, gpu=GpuAssignment()))
    assert request["Count"] == -1
    api = containers.create_request(project, "api", {})
    assert api["host_config"]["PortBindings"] == {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
    assert api["host_config"]["Mounts"][0]["Type"] == "bind"
    assert api["host_config"]["Mounts"][0]["Source"] == str((tmp_path / "config.yml").resolve())


def test_labels_are_docker_composes_own(tmp_path: Path) -> None:
    project = _project(tmp_path)
    labels = containers.labels(project, "api", "abc", "image=1", "sha256:img")
    assert labels[containers.PROJECT] == project.name
    assert labels[containers.SERVICE] == "api"
    assert labels[containers.ONEOFF] == "False"
    assert labels[containers.NUMBER] == "1"
    assert labels[containers.CONFIG_HASH] == "abc"
    assert labels[containers.CONFIG_FILES] == project.config_file
    assert labels[containers.DEPENDS_ON].startswith("redis:service_healthy:false,")


def test_event_lines_report_changes_once() -> None:
    out = io.StringIO()
    reporter = EventLines(out)
    reporter.begin(["a"])
    reporter.update("a", state="starting")
    reporter.update("a", state="starting")
    reporter.update("a", state="running", health="healthy")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].endswith("a: running (healthy)")


def test_live_table_redraws_in_place() -> None:
    out = io.StringIO()
    table = LiveTable(out)
    table.begin(["redis", "api"])
    table.update("redis", state="running", health="healthy")
    table.update("api", state="failed", detail="exited with code 1")
    table.end()
    text = out.getvalue()
    assert "\x1b[1A\x1b[2K" in text  # moved back up over the rows it drew before
    last = text.rsplit("\x1b[1A\x1b[2K", 1)[-1]
    assert "redis" in last and "healthy" in last and "exited with code 1" in last


def test_connection_errors_say_how_to_fix_them() -> None:
    from albert_deploy.converge import engine

    denied = str(engine._connection_error("('Connection aborted.', PermissionError(13, 'Permission denied'))"))
    assert "no permission on the Docker socket" in denied and "docker group" in denied
    absent = str(engine._connection_error("('Connection aborted.', FileNotFoundError(2, 'No such file'))"))
    assert "cannot reach the Docker daemon" in absent and "DOCKER_HOST" in absent


def test_redaction_hides_every_secret() -> None:
    from albert_deploy.render import envfile

    assert envfile.redact("key=abcdef123 and abc", ("abcdef123", "abc")) == "key=******** and abc"
    # Longest first, so a secret containing another one is masked whole; short values are never masked.
    values = envfile.secret_values({"A": "abcdef123", "B": "xabcdef123x", "C": "abc"})
    assert values == ("xabcdef123x", "abcdef123")
    assert envfile.redact("k=xabcdef123x", values) == "k=********"


def test_check_jobs_hosted_inside_external_on_host_and_through_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from albert_deploy.converge import apply
    from albert_deploy.converge import contract as checker

    stack = load(str(next(p for p in PROFILES if p.stem == "cpu-dev")))
    (tmp_path / ".env").write_text(fixed_env(stack.secrets))
    applied = apply.prepare(stack, tmp_path, write=False)
    monkeypatch.setenv("LLM_API_KEY", "external-key")
    inside: list[dict[str, object]] = []
    on_host: list[dict[str, object]] = []

    def fake_inside(_applied: object, jobs: list[dict[str, object]], _timeout: float) -> list[dict[str, object]]:
        inside.extend(jobs)
        return [{"name": j["name"], "via": "server", "ok": True, "detail": "ok"} for j in jobs]

    def fake_run(jobs: list[dict[str, object]], _timeout: float) -> list[dict[str, object]]:
        on_host.extend(jobs)
        return [{"name": j["name"], "via": j["via"], "ok": j["name"] != "llm", "detail": "x"} for j in jobs]

    monkeypatch.setattr(apply, "_check_inside", fake_inside)
    monkeypatch.setattr(checker, "run_checks", fake_run)
    result = apply.check(applied)
    assert {j["name"] for j in inside} == {"multilingual-e5-large", "bge-reranker-v2-m3"}
    assert all(str(j["url"]).startswith("http://") and j["key"] for j in inside)
    external = [j for j in on_host if j["via"] == "server"]
    assert external == [
        {"name": "llm", "type": "text-generation", "url": "https://llm.example.org",
         "served_name": "mistralai/Mistral-Small-3.1-24B-Instruct-2503", "key": "external-key", "via": "server"}
    ]  # fmt: skip
    via_api = [j for j in on_host if j["via"] == "api"]
    assert {j["url"] for j in via_api} == {"http://127.0.0.1:8080"}
    assert {j["key"] for j in via_api} == {"test-master-key"}
    assert not result["ok"]
