"""`up` with nothing to change (converge/fastpath.py): after a full `up`, the next one lists the
project's containers once (plus one inspect per image) and returns "nothing changed" without the full
converge; any difference in the inputs or on the daemon sends it down the full path.

The full path runs against the in-memory daemon of test_converge_runner.py; the shortcut talks HTTP
to a Unix socket, served here from the same in-memory state."""

from __future__ import annotations

import json
import os
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest

from albert_deploy import commands
from albert_deploy.converge import engine, fastpath, runner, watch
from albert_deploy.errors import ServiceFailed
from tests.helpers import SMALL
from tests.test_converge_runner import FakeApi, FakeClient


class PinnedApi(FakeApi):
    """A container keeps the image id it was created from, as on a real daemon, when its tag moves."""

    def __init__(self, images: dict[str, str]) -> None:
        super().__init__(images=images)
        self.created_from: dict[str, str] = {}

    def create_container(self, **request: Any) -> dict[str, str]:
        created = super().create_container(**request)
        self.created_from[created["Id"]] = self.images.get(request["image"], "")
        return created

    def containers(self, filters: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
        return [{**r, "ImageID": self.created_from[r["Id"]]} for r in super().containers(filters, **kw)]


class _Daemon(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, api: PinnedApi) -> None:
        self.api, self.requests = api, []
        super().__init__(path, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Daemon

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self.server.requests.append(url.path)
        body: Any = None
        if url.path == "/containers/json":
            filters = json.loads(parse_qs(url.query)["filters"][0])
            body = self.server.api.containers(all=True, filters=filters)
        elif url.path.startswith("/images/") and url.path.endswith("/json"):
            ref = unquote(url.path.removeprefix("/images/").removesuffix("/json"))
            body = {"Id": self.server.api.images[ref]} if ref in self.server.api.images else None
        data = json.dumps(body if body is not None else {"message": "not found"}).encode()
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Daemon]:
    """The in-memory daemon, behind engine.connect and behind a Unix socket that DOCKER_HOST names."""
    plan = commands.load(str(SMALL))
    api = PinnedApi(images={s.image: f"sha256:{s.name}" for s in plan.services})
    monkeypatch.setattr(engine, "connect", lambda: FakeClient(api))
    monkeypatch.setattr(watch, "POLL_S", 0.01)
    path = f"/tmp/albert-fastpath-{os.getpid()}.sock"  # AF_UNIX paths are short: not under tmp_path
    server = _Daemon(path, api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield server
    server.shutdown()
    server.server_close()
    os.unlink(path)


def _up(out: Path, profile: Path = SMALL, **kw: Any) -> tuple[dict[str, Any], bool]:
    """(result, whether the full converge ran)."""
    ran = []
    real = runner.up

    def counting(*args: Any, **kwargs: Any) -> Any:
        ran.append(True)
        return real(*args, **kwargs)

    runner.up = counting  # type: ignore[assignment]
    try:
        return commands.up(str(profile), out, **kw), bool(ran)
    finally:
        runner.up = real  # type: ignore[assignment]


def test_a_second_up_lists_once_and_changes_nothing(daemon: _Daemon, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    first, full = _up(out)
    assert full and first["changes"] > 0
    stamp = fastpath.stamp_path(out)
    assert stamp.is_file() and stamp.stat().st_mode & 0o777 == 0o600
    assert "test-master-key" not in stamp.read_text() and json.loads(stamp.read_text())["containers"]
    daemon.requests.clear()
    second, full = _up(out)
    assert not full
    images = {s["image"] for s in first["services"]}
    assert daemon.requests.count("/containers/json") == 1 and len(daemon.requests) == 1 + len(images)
    assert second["changes"] == 0 and {a["action"] for a in second["actions"]} == {"nothing"}
    assert [s["service"] for s in second["services"]] == [s["service"] for s in first["services"]]
    assert all(s["state"] == "running" for s in second["services"])
    keys = ("service", "image", "gpus", "url", "role")
    assert [{k: s[k] for k in keys} for s in second["services"]] == [{k: s[k] for k in keys} for s in first["services"]]
    assert second["api_url"] == first["api_url"]


def test_any_difference_takes_the_full_path(daemon: _Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "deploy"
    _up(out)
    api = daemon.api
    redis = next(c for c in api.store.values() if c.name.endswith("-redis-1"))

    def full_after(change: Any) -> bool:
        change()
        _, full = _up(out)
        assert not _up(out)[1], "the full path leaves a stamp the next up can use"
        return full

    assert full_after(lambda: api.stop(redis.id)) and redis.state == "running"  # a stopped container
    assert full_after(lambda: monkeypatch.setenv("HF_TOKEN", "hf_x"))  # the environment overrides .env
    env = out / ".env"
    assert full_after(lambda: env.write_text(env.read_text() + "# a note\n"))  # a rendered file
    image = next(iter(api.images))
    assert full_after(lambda: api.images.__setitem__(image, "sha256:newer"))  # the tag moved
    assert _up(out, timeouts=("60",))[1]  # --timeout is checked by the full path
    assert _up(out, no_gpus=True)[1]
    assert _up(out)[1] and not _up(out)[1]
    next(iter(api.store.values())).status = "Up 1 second (unhealthy)"
    with pytest.raises(ServiceFailed, match="unhealthy"):  # the full path's verdict, not "nothing changed"
        commands.up(str(SMALL), out)


def test_no_stamp_for_an_offline_profile(daemon: _Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from albert_deploy.airgap import offline

    monkeypatch.setattr(offline, "refuse_missing_offline", lambda plan, applied: None)  # its check must run each time
    profile = tmp_path / "offline.yaml"
    profile.write_text(SMALL.read_text() + "\noffline: true\n")
    api = daemon.api
    plan = commands.load(str(profile))
    api.images.update({s.image: f"sha256:{s.name}" for s in plan.services})
    out = tmp_path / "deploy"
    assert commands.up(str(profile), out)["changes"] > 0
    assert not fastpath.stamp_path(out).exists()
    assert commands.up(str(profile), out)["changes"] == 0 and not fastpath.stamp_path(out).exists()


def test_no_stamp_when_the_gpus_are_read_off_the_host(
    daemon: _Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gpus: auto`: the plan depends on this host's GPUs, which no file records (Plan.gpus_detected)."""
    from albert_deploy.placement import inventory

    monkeypatch.setattr(inventory, "detect_gpus", lambda: [])  # no GPU: the TEI model is on CPU anyway
    profile = tmp_path / "auto.yaml"
    profile.write_text(SMALL.read_text() + "\ngpus: auto\n")
    plan = commands.load(str(profile))
    assert plan.gpus_detected and not commands.load(str(SMALL)).gpus_detected
    out = tmp_path / "deploy"
    assert commands.up(str(profile), out)["changes"] > 0
    assert not fastpath.stamp_path(out).exists()


def test_a_container_up_saw_pass_its_check_needs_no_docker_verdict_yet(daemon: _Daemon, tmp_path: Path) -> None:
    """`up` ran redis's health check itself and saw it pass (probe.py) before Docker's first check:
    the next `up` accepts it still "starting" as the previous one did. Another container that
    turned "starting" (restarted since) takes the full path."""
    out, profile = tmp_path / "deploy", tmp_path / "slow-checks.yaml"
    profile.write_text(SMALL.read_text().replace("health_interval: 1", "health_interval: 10"))  # worth probing
    daemon.api.behaviour["redis"] = "check-passes"
    _, full = _up(out, profile)
    assert full
    stamp = json.loads(fastpath.stamp_path(out).read_text())
    verified = {row["service"] for row in stamp["containers"].values() if row["verified"]}
    assert verified == {"redis"}
    assert not _up(out, profile)[1]
    api = next(c for c in daemon.api.store.values() if c.name.endswith("-api-1"))
    api.status = "Up 1 second (health: starting)"
    daemon.api.behaviour["api"] = "check-passes"  # so that the full path, which runs the check, ends
    assert _up(out, profile)[1]
