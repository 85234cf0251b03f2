"""The converge commands through the CLI, with the Docker side (converge.apply) autospec'd: what
each command hands the Docker side, and how its result is printed. No daemon needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from click.testing import CliRunner

from albert_deploy.cli import cli
from albert_deploy.converge import apply
from albert_deploy.plan.build import Plan

UP = {
    "project": "albert", "changes": 2, "seconds": 12.34, "detached": False, "api_url": "http://127.0.0.1:8080",
    "services": [{"service": "api", "image": "albert:1", "gpus": "-", "url": "http://127.0.0.1:8080",
                  "health": "healthy", "state": "running"}],
}  # fmt: skip
DIFF = {"project": "albert", "changes": 1, "actions": [{"service": "api", "action": "recreate", "reason": "image"}]}
STATUS = {
    "project": "albert", "drift": True, "lock_mismatch": True,
    "services": [{"service": "api", "state": "running", "health": None, "gpus": "-", "ports": ["127.0.0.1:8080"],
                  "lock": "-", "drift": "image", "started_by": "docker compose"}],
}  # fmt: skip
CHECK = {"ok": False, "notes": ["a note"], "results": [
    {"name": "e5", "via": "server", "ok": True, "detail": "1024 dims"},
    {"name": "e5", "via": "api", "ok": False, "detail": "401"},
]}  # fmt: skip


@pytest.fixture
def docker_side(monkeypatch: pytest.MonkeyPatch) -> dict[str, mock.Mock]:
    """converge.apply with its Docker calls replaced (prepare stays real: it only renders)."""
    mocks = {
        "up": mock.create_autospec(apply.up, return_value=UP),
        "diff": mock.create_autospec(apply.diff, return_value=DIFF),
        "down": mock.create_autospec(
            apply.down, return_value={"project": "albert", "containers": ["api"], "networks": ["n"], "volumes": []}
        ),
        "status": mock.create_autospec(apply.status, return_value=STATUS),
        "logs": mock.create_autospec(apply.logs, return_value=iter([b"line 1\n", b"line 2\n"])),
        "check": mock.create_autospec(apply.check, return_value=CHECK),
    }
    for name, replacement in mocks.items():
        monkeypatch.setattr(apply, name, replacement)
    return mocks


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_up_hands_the_plan_over_and_prints_the_services(docker_side: dict[str, mock.Mock], tmp_path: Path) -> None:
    result = _run("up", "-o", str(tmp_path / "out"), "--timeout", "api=60", "-d")
    assert result.exit_code == 0, result.output
    applied = docker_side["up"].call_args.args[0]
    assert isinstance(applied.plan, Plan) and applied.plan.project == "albert"
    assert docker_side["up"].call_args.kwargs["timeouts"] == ("api=60",)
    assert docker_side["up"].call_args.kwargs["detach"] is True
    assert (tmp_path / "out" / "compose.yml").is_file()  # up renders first
    assert "Project albert is up: 2 change(s) in 12.3 s." in result.stdout
    assert "Albert API: http://127.0.0.1:8080" in result.stdout


@pytest.mark.parametrize("args", [("diff",), ("plan",), ("up", "--dry-run")])
def test_diff_writes_nothing_and_shows_the_start_order(
    docker_side: dict[str, mock.Mock], tmp_path: Path, args: tuple[str, ...]
) -> None:
    result = _run(*args, "-o", str(tmp_path / "out"), "--json")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out").exists()
    shown = json.loads(result.stdout)
    assert shown["dry_run"] is True and shown["actions"] == DIFF["actions"]
    together = ["bge-reranker-v2-m3", "multilingual-e5-large", "whisper-large-v3-turbo"]
    assert shown["start_order"] == [{"gpu": "0", "steps": [["guillaumetell-7b"], together]}]  # vLLM alone first
    text = _run(*args, "-o", str(tmp_path / "out")).stdout
    assert "Project albert: 1 change(s)" in text and "api      recreate  image" in text
    assert "GPU 0: guillaumetell-7b -> " + " + ".join(together) in text
    docker_side["up"].assert_not_called()


def test_diff_says_when_nothing_is_to_do(docker_side: dict[str, mock.Mock]) -> None:
    docker_side["diff"].return_value = {"project": "albert", "changes": 0, "actions": []}
    assert "nothing to do: the stack matches the profile" in _run("diff").stdout


def test_status_down_logs(docker_side: dict[str, mock.Mock], tmp_path: Path) -> None:
    status = _run("ps", "-o", str(tmp_path), "--no-gpus")
    assert status.exit_code == 0, status.output
    assert "`albert-deploy diff` says what `up` would change" in status.stdout
    assert "recreates them once" in status.stdout and "A container runs an image other" in status.stdout
    assert docker_side["status"].call_args.args[0] == "albert"
    only_project = _run("status", "-p", "other")
    assert docker_side["status"].call_args.args[:2] == ("other", None) and only_project.exit_code == 0
    docker_side["status"].return_value = {"project": "other", "services": [], "drift": False}
    assert "Project other: no containers." in _run("status", "-p", "other").stdout

    down = _run("down", "--volumes")
    assert docker_side["down"].call_args.args == ("albert", True)
    assert "removed 1 container(s)" in down.stdout and "Volumes were kept" in down.stdout
    docker_side["down"].return_value = {"project": "x", "containers": [], "networks": [], "volumes": []}
    assert "nothing to remove" in _run("down", "-p", "x").stdout

    logs = _run("logs", "api", "--tail", "5", "-f")
    assert logs.stdout == "line 1\nline 2\n"
    assert docker_side["logs"].call_args.args == ("albert", "api", True, 5)


def test_check_prints_every_result_and_exits_1_on_a_failure(docker_side: dict[str, mock.Mock], tmp_path: Path) -> None:
    result = _run("check", "-o", str(tmp_path), "--timeout", "2.5")
    assert result.exit_code == 1
    assert "e5     api     FAILED  401" in result.stdout and "a note" in result.stdout
    assert "1 check(s) failed: e5 (api)" in result.stderr
    assert docker_side["check"].call_args.args[1] == 2.5


def test_validate_schema_and_placement_text(tmp_path: Path) -> None:
    assert "valid (4 models, Albert API 0.2.0)" in _run("validate").stdout
    assert json.loads(_run("schema").stdout)["title"] == "albert-deploy profile"
    assert "GPU 0" in _run("placement").stdout


def test_render_text_names_what_the_operator_sets(tmp_path: Path) -> None:
    result = _run("render", "-o", str(tmp_path / "k8s"), "--target", "kubernetes")
    assert result.exit_code == 0, result.output
    assert "as Kubernetes manifests" in result.stdout and "kubectl apply -k" in result.stdout
    assert "create secret generic" in result.stdout  # HF_TOKEN, optional


def test_the_module_runs_as_a_program() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "albert_deploy", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("albert-deploy, version ")


def test_render_text_keeps_its_columns_aligned_for_a_long_role() -> None:
    from albert_deploy.views import render_text

    services = [
        {"service": "api", "role": "api", "gpus": "-", "image": "albert/api:1"},
        {"service": "playground", "role": "playground", "gpus": "-", "image": "albert/ui:1"},
    ]
    text = render_text(
        {"profile": "p.yaml", "release": "0.2.0", "output": "deploy", "services": services, "operator_env": []}
    )
    rows = [line for line in text.splitlines() if "gpus" in line]
    assert len({row.index("gpus") for row in rows}) == 1, text  # one column, whatever the role's length
