"""Fixtures shared by the test modules.

Docker: tests that need the daemon use ``docker_client`` (a real daemon, never skipped: with no
daemon they fail with the fix), ``standin_images`` (the locally built stand-ins for images that
cannot be pulled here), ``docker_labels`` (labels for what a test creates, removed afterwards) and
``loopback_registry`` (a real registry on 127.0.0.1 for pulls, pushes and digests).
"""

from __future__ import annotations

import importlib.util
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SMALL, Deployment, free_port, remove_project

STANDINS = Path(__file__).resolve().parent / "standins"
TEST_LABEL = "albert-deploy.test"


def _standins_build() -> Any:
    """tests/standins/build.py, loaded by path: it is also a script, so it imports no sibling."""
    spec = importlib.util.spec_from_file_location("albert_deploy_test_standins_build", STANDINS / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """The Docker SDK client. No daemon is a failure, not a skip: CI must not pass without Docker."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as err:  # the SDK raises several kinds: all mean "no usable daemon"
        pytest.fail(
            f"no Docker daemon answers ({err}). These tests need a real one: run `bash .ci/run` (it "
            "starts one when none answers), or `dockerd --ip-forward=false &`; the README's tests section "
            "shows how to run the fast tier alone (-m 'not docker').",
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def standin_images(docker_client: Any) -> dict[str, str]:
    """Logical name -> tag of every stand-in image (built once; seconds when already built)."""
    return dict(_standins_build().build_all(docker_client))


def remove_labelled(client: Any, value: str) -> None:
    """Remove containers (with their anonymous volumes), networks and volumes labelled ``value``."""
    selector = {"label": f"{TEST_LABEL}={value}"}
    for container in client.containers.list(all=True, filters=selector):
        container.remove(force=True, v=True)
    for network in client.networks.list(filters=selector):
        network.remove()
    for volume in client.volumes.list(filters=selector):
        volume.remove(force=True)


@pytest.fixture
def docker_labels(docker_client: Any) -> Iterator[dict[str, str]]:
    """Labels to put on every container, network and volume a test creates; all are removed
    after the test, pass or fail."""
    value = f"t-{uuid.uuid4().hex[:12]}"
    try:
        yield {TEST_LABEL: value}
    finally:
        remove_labelled(docker_client, value)


@pytest.fixture
def loopback_registry(tmp_path: Path) -> Iterator[str]:
    """A real registry on 127.0.0.1 (Debian's docker-registry), stopped by its PID afterwards."""
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    server = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def deploy(docker_client: Any, standin_images: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    """Make deployments; remove all they created, by label, whatever happens."""
    made: list[Deployment] = []

    def make(base: Path = SMALL, **changes: Any) -> Deployment:
        made.append(Deployment(docker_client, tmp_path, base, **changes))
        return made[-1]

    try:
        yield make
    finally:
        for deployment in made:
            remove_project(docker_client, deployment.project)
