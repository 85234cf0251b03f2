"""A daemon restart, as a reboot does it, brings the whole stack back with no command run.

The test stops the Docker daemon by its PID and starts it again (``dockerd --ip-forward=false``,
detached, as .ci/run starts it); Docker then starts every container with a restart policy at the
same moment. The language model's stand-in takes seconds to bind, as vLLM takes minutes to load,
so the API would skip it (it probes each model once, at start) if it did not wait. Run it under
the Docker lock (``flock /tmp/docker-tests.lock``): no other test may use the daemon meanwhile.
The daemon is started again even when an assertion fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from albert_deploy.render.envfile import parse_env
from tests.helpers import FULL, Deployment

pytestmark = pytest.mark.docker

PID_FILE = Path("/var/run/docker.pid")
DAEMON_LOG = Path("/tmp/albert-deploy-reboot-dockerd.log")
LOAD_S = 8  # the language model's stand-in binds this long after its container starts


def _answers() -> bool:
    return subprocess.run(["docker", "version"], capture_output=True, timeout=30).returncode == 0


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")  # exited, not yet reaped
    except (FileNotFoundError, IndexError):
        return True


def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out after {seconds:g} s waiting for {what}"
        time.sleep(0.2)


def start_daemon() -> None:
    """Start one daemon, detached from this process, unless one answers (never a second one)."""
    if _answers():
        return
    subprocess.run(
        ["sh", "-c", f"setsid dockerd --ip-forward=false </dev/null >>{DAEMON_LOG} 2>&1 &"], check=True, timeout=30
    )
    _until(_answers, 60, f"dockerd to answer (log: {DAEMON_LOG})")


def restart_daemon() -> None:
    """What a reboot does to Docker: the daemon stops (and its containers with it), then starts."""
    pid = int(PID_FILE.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
        _until(lambda: _gone(pid), 120, f"dockerd (PID {pid}) to exit")
    finally:
        start_daemon()


def _get(url: str, key: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.load(answer)


def _listed(d: Deployment, key: str) -> list[str]:
    try:
        return sorted(m["id"] for m in _get(f"http://127.0.0.1:{d.port}/v1/models", key)["data"])
    except OSError:
        return []


def _server_state(d: Deployment, service: str, port: int) -> dict[str, Any]:
    out = d.container(service).exec_run(["curl", "-s", f"http://127.0.0.1:{port}/standin/state"]).output
    return dict(json.loads(out))


def _started(container: Any) -> float:
    text = container.attrs["State"]["StartedAt"]  # RFC 3339 with nanoseconds
    return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()


def test_a_daemon_restart_brings_back_every_model_with_no_command(deploy: Callable[..., Deployment]) -> None:
    d = deploy(FULL)
    d.model("guillaumetell-7b")["env"] = {"STANDIN_START_DELAY": str(LOAD_S)}
    d.edit()
    first = d.up("--no-gpus")
    models = sorted(s["service"] for s in first["services"] if s["role"] == "model")
    key = parse_env((d.out / ".env").read_text(), ".env")["MASTER_KEY"]
    assert _listed(d, key) == models

    try:
        restart_daemon()
        # No command: Docker alone restarts the containers (restart: unless-stopped).
        _until(lambda: _listed(d, key) == models, 180, "the API to list every model again")
    finally:
        start_daemon()  # whatever failed, leave a daemon running

    vllm = _server_state(d, "guillaumetell-7b", 8000)
    whisper = _server_state(d, "whisper-large-v3-turbo", 8000)
    api = d.api_state()
    # Docker started the API container before the language model answered; its wait held the
    # API's own start (and its one probe) until the model listened.
    assert _started(d.container("api")) < vllm["listening_at"] <= api["started_at"]
    assert not api["models_down"] and sorted(api["models_up"]) == models
    assert "every model server and database answers" in d.container("api").logs().decode()
    # whisper shares GPU 0 with vLLM and comes after it in the start order: it waited for it.
    assert vllm["listening_at"] <= whisper["started_at"]
    assert "GPU start order: waiting for http://guillaumetell-7b:8000/health" in (
        d.container("whisper-large-v3-turbo").logs().decode()
    )
    # The same containers came back (restarted, not recreated), and `up` finds nothing to do.
    assert d.up("--no-gpus")["changes"] == 0
