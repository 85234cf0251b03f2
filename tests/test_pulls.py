"""Pulls (`up` and `pull`, `--parallel-pulls N`): at most N at once, an image already here is never
pulled again, and a service's health timeout counts from its start, after the pulls."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from albert_deploy.converge import images, runner, watch
from albert_deploy.converge.progress import Silent
from albert_deploy.errors import DockerError, ServiceFailed
from tests.fakedocker import FakeClient
from tests.test_converge_runner import FakeApi, make_project


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "POLL_S", 0.01)


class Overlap:
    """Counts the pulls in flight; each takes ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.now, self.most, self.lock = seconds, 0, 0, threading.Lock()

    def __call__(self, ref: str) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.seconds)
        with self.lock:
            self.now -= 1


@pytest.mark.parametrize("parallel", [1, 3])
def test_pull_runs_at_most_n_pulls_at_once_and_skips_what_is_here(parallel: int) -> None:
    client = FakeClient()
    wanted = [f"registry.test/image{i}:1" for i in range(7)]
    client.api.pullable.update(wanted)
    client.api.add_image(wanted[0], "sha256:here")
    client.api.on_pull = overlap = Overlap(0.05)
    rows = images.pull_all(client, wanted, Silent(), parallel)
    assert overlap.most == parallel
    assert sorted(client.api.pulls) == sorted(wanted[1:])  # the one already here is not pulled again
    assert rows[0] == {"image": wanted[0], "id": "sha256:here", "pulled": False}
    assert all(r["pulled"] and r["id"].startswith("sha256:") for r in rows[1:])
    client.api.pulls.clear()
    assert not any(r["pulled"] for r in images.pull_all(client, wanted, Silent(), parallel))
    assert client.api.pulls == []


def test_a_failed_pull_is_named_once_the_others_ended() -> None:
    client = FakeClient()
    client.api.pullable.update({"a:1", "c:1"})
    with pytest.raises(DockerError, match=r"image b:1 is not present locally and cannot be pulled"):
        images.pull_all(client, ["a:1", "b:1", "c:1"], Silent(), 2)
    assert sorted(client.api.pulls) == ["a:1", "b:1", "c:1"]


class SlowRegistry(FakeApi):
    """Pulls take ``pull_s`` each (counted in flight); a started container turns healthy ``health_s`` later."""

    def __init__(self, base: FakeApi, pull_s: float, health_s: float) -> None:
        super().__init__(images=base.images)
        self.overlap, self.health_s, self.pulled, self.started_at = Overlap(pull_s), health_s, [], {}

    def pull(self, repository: str, tag: str, **kw: Any) -> Iterator[dict[str, Any]]:
        self.pulled.append(f"{repository}:{tag}")
        self.overlap(repository)
        yield from super().pull(repository, tag, **kw)

    def start(self, cid: str) -> None:
        super().start(cid)
        self.started_at[cid] = time.monotonic()

    def containers(self, filters: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
        rows = super().containers(filters, **kw)
        for row in rows:
            if time.monotonic() - self.started_at.get(row["Id"], 0.0) < self.health_s and row["State"] == "running":
                row["Status"] = "Up 1 second (health: starting)"
        return rows


def _slow_project(tmp_path: Path, pull_s: float, health_s: float) -> tuple[Any, Any, list[str]]:
    project, client = make_project(tmp_path)
    missing = sorted({s.image for s in project.services.values()})
    api = SlowRegistry(client.api, pull_s, health_s)
    for image in missing:
        del api.images[image]
        api.pullable.add(image)
    client.api = api
    return project, client, missing


def test_up_pulls_the_missing_images_n_at_a_time_and_never_again(tmp_path: Path) -> None:
    project, client, missing = _slow_project(tmp_path, 0.05, 0.0)
    assert len(missing) >= 3
    result = runner.up(client, project, parallel_pulls=2)
    assert client.api.overlap.most == 2
    assert sorted(client.api.pulled) == missing
    assert all(v["state"] == "running" for v in result.services.values())
    runner.up(client, project, parallel_pulls=2)  # everything is here now
    assert sorted(client.api.pulled) == missing


def test_the_health_timeout_counts_from_the_start_after_the_pulls(tmp_path: Path) -> None:
    # Serial pulls of 0.15 s each take longer than the 0.4 s every service is allowed to turn healthy,
    # which each does 0.1 s after its start: only a clock started after the pulls lets `up` succeed.
    project, client, missing = _slow_project(tmp_path, 0.15, 0.1)
    assert 0.15 * len(missing) > 0.4
    result = runner.up(client, project, parallel_pulls=1, timeouts={"*": 0.4})
    assert client.api.overlap.most == 1
    assert all(v["health"] in ("healthy", "") and v["state"] == "running" for v in result.services.values())
    assert all(v["seconds"] < 0.4 for v in result.services.values())  # counted from each start
    # The same stack, where services take longer than the timeout to turn healthy, fails: the clock runs.
    project, client, missing = _slow_project(tmp_path / "slow", 0.0, 0.6)
    with pytest.raises(ServiceFailed, match="not healthy after 0 s"):
        runner.up(client, project, timeouts={"*": 0.4})
