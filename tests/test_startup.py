"""The waits that bring a stack back whole when Docker starts every container at once (plan/startup.py),
and `up` recreating the API after it (re)started one of its model servers. No daemon here: the
scripts run on this host against servers on 127.0.0.1, `up` runs against the in-memory Docker of
test_converge_runner."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from albert_deploy import catalog
from albert_deploy.commands import load
from albert_deploy.converge import containers, reconcile
from albert_deploy.plan import order, startup
from tests.helpers import FULL, REPO, SMALL
from tests.test_converge_runner import _up, make_project

CURL_SHIM = Path(__file__).resolve().parent / "standins" / "shims" / "curl"


# --- the plan -----------------------------------------------------------------------------------


def test_the_api_waits_for_every_hosted_model_and_database_then_runs_its_own_start() -> None:
    plan = load(str(FULL))
    api = next(s for s in plan.services if s.role == "api")
    command = api.compose_command or ()
    assert command[:3] == ("python3", "-c", startup.API_WAIT) and command[-1] == "/startup.sh"
    assert api.command == ()  # Kubernetes keeps the image's CMD: the wait is compose's and up's only
    checks = json.loads(command[4])
    by_client = {"vllm": "/v1/models", "tei": "/info", "openai": "/v1/models"}
    assert [c["url"] for c in checks if "url" in c] == [e.url + by_client[e.client] for e in plan.endpoints]
    assert [c["key"] for c in checks if "url" in c] == [e.key.name for e in plan.endpoints if e.key]
    assert all(c["key"] in api.environment for c in checks if "url" in c)  # read by name, no secret in argv
    assert [(c["host"], c["port"]) for c in checks if "host" in c] == [
        ("redis", 6379), ("postgres", 5432), ("qdrant", 6333)
    ]  # fmt: skip
    # Bounded: past the slowest chain of servers (vLLM, then whisper on the same GPU) plus a margin.
    ready = startup.ready_within([s for s in plan.services if s.role != "api"], plan.start_order)
    assert (
        int(command[3]) == max(ready.values()) + startup.MARGIN_S == startup.api_bound(plan.services, plan.start_order)
    )
    assert ready["whisper-large-v3-turbo"] == ready["guillaumetell-7b"] + startup.health_budget(
        next(s for s in plan.services if s.name == "whisper-large-v3-turbo")
    )
    assert set(api.probes_once) == {s.name for s in plan.services if s.role == "model"}


def test_release_0_0_3_waits_then_runs_its_own_command() -> None:
    plan = load(str(REPO / "profiles" / "api-0.0.3.yaml"))
    api = next(s for s in plan.services if s.role == "api")
    assert api.compose_command is not None
    assert api.compose_command[:3] == ("python3", "-c", startup.API_WAIT)
    assert api.compose_command[5:] == api.command  # then the config expansion and uvicorn


@pytest.mark.parametrize("profile", [FULL, REPO / "profiles" / "multi-gpu.yaml"])
def test_each_server_waits_for_its_predecessor_on_its_gpu(profile: Path) -> None:
    plan = load(str(profile))
    by_name = {s.name: s for s in plan.services}
    chained = 0
    waits = order.waits_for(plan.start_order)
    for gpu in plan.start_order:
        assert all(by_name[n].compose_entrypoint is None for n in gpu.steps[0] if n not in waits)
        for previous, step in itertools.pairwise(gpu.steps):
            for name in step:
                s = by_name[name]
                entry = s.compose_entrypoint or ()
                assert entry[:4] == ("sh", "-c", startup.PREDECESSOR_WAIT, "gpu-start-order") and entry[-1] == "--"
                # URL and accepted codes of every server of the step before, on each of its GPUs.
                pairs = list(zip(entry[5:-1:2], entry[6:-1:2], strict=True))
                assert pairs == [startup._answer(by_name[p]) for p in waits[name]]
                assert set(previous) <= set(waits[name])
                own = catalog.SERVERS[s.server or ""].entrypoint
                assert s.compose_command is not None and s.compose_command[: len(own)] == own
                assert s.compose_command[-len(s.command) :] == s.command  # then exactly its planned command
                chained += 1
    assert chained == len(waits) and (chained >= 1 or profile != FULL)  # FULL: whisper after vLLM


def test_what_waits_inside_says_so_and_docker_gives_that_wait_its_start_period() -> None:
    """`up` may start a service with what its command waits for (Service.waits_inside): the API with
    its model servers, never its databases (a port that takes a connection is not a database that
    takes queries); a server with its GPU predecessors. Docker's start period grows by the wait's
    bound, so a health check failing while the command still waits does not mark it unhealthy; the
    Kubernetes probes, with no such wait, keep the server's own."""
    plan = load(str(FULL))
    by_name = {s.name: s for s in plan.services}
    api, whisper = by_name["api"], by_name["whisper-large-v3-turbo"]
    models = {s.name for s in plan.services if s.role == "model"}
    assert set(api.waits_inside) == models and set(api.depends_on) - models == {"redis", "postgres", "qdrant"}
    assert api.wait_s == startup.api_bound(plan.services, plan.start_order)
    assert whisper.waits_inside == ("guillaumetell-7b",)
    assert whisper.wait_s == startup.ready_within(plan.services, plan.start_order)["guillaumetell-7b"]
    for s in (api, whisper):
        assert s.healthcheck is not None and s.compose_healthcheck is not None
        assert s.compose_healthcheck.start_period_s == s.healthcheck.start_period_s + s.wait_s
        assert s.compose_healthcheck.test == s.healthcheck.test
    assert by_name["redis"].compose_healthcheck == by_name["redis"].healthcheck  # waits for nothing
    # `up`'s own clock for the service starts once what it waits for is ready: the wait is not its own.
    project, _ = make_project(Path("/nonexistent"), FULL)
    spec = project.services["whisper-large-v3-turbo"]
    assert spec.healthcheck == whisper.compose_healthcheck
    own = reconcile.service_timeout(spec, {}, "whisper-large-v3-turbo")
    assert own == startup.health_budget(whisper) + reconcile.TIMEOUT_MARGIN_S


# --- the scripts, run for real ------------------------------------------------------------------


class _Server(BaseHTTPRequestHandler):
    answers: ClassVar[list[int]] = []
    seen: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        status = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, type[_Server]]]:
    handler = type("Handler", (_Server,), {"answers": [200], "seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1], handler
    finally:
        httpd.shutdown()


def _api_wait(bound: int, checks: list[dict[str, object]], **env: str) -> tuple[str, float]:
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", startup.API_WAIT, str(bound), json.dumps(checks), sys.executable, "-c", "print('ran')"],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ran"  # the real command always runs, once the wait is over
    return done.stderr, time.monotonic() - t0


def test_the_api_wait_asks_with_the_key_until_200(server: tuple[int, type[_Server]]) -> None:
    port, handler = server
    handler.answers = [503, 401, 200]
    text, _ = _api_wait(30, [{"url": f"http://127.0.0.1:{port}/v1/models", "key": "K"}], K="secret")
    assert "every model server and database answers" in text
    assert handler.seen == ["Bearer secret"] * 3


def test_the_api_wait_is_bounded_and_names_what_is_missing(server: tuple[int, type[_Server]]) -> None:
    port, handler = server
    handler.answers = [503]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    checks = [{"url": f"http://127.0.0.1:{port}/info", "key": ""}, {"host": "127.0.0.1", "port": closed}]
    text, seconds = _api_wait(1, checks)
    assert f"starting without: http://127.0.0.1:{port}/info, 127.0.0.1:{closed}" in text
    assert 1 <= seconds < 10


def _predecessor_wait(tmp_path: Path, bound: int, *targets: str) -> tuple[subprocess.CompletedProcess[str], float]:
    shim = tmp_path / "curl"  # the test images' curl: the options the real images' curl honours
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} {CURL_SHIM} "$@"\n')
    shim.chmod(0o755)
    t0 = time.monotonic()
    done = subprocess.run(
        ["sh", "-c", startup.PREDECESSOR_WAIT, "gpu-start-order", str(bound), *targets, "--", "echo", "ran"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
    )  # fmt: skip
    return done, time.monotonic() - t0


def test_a_server_starts_once_its_predecessor_answers(tmp_path: Path, server: tuple[int, type[_Server]]) -> None:
    port, handler = server
    handler.answers = [503, 503, 200]
    done, seconds = _predecessor_wait(tmp_path, 60, f"http://127.0.0.1:{port}/health", "200")
    assert done.returncode == 0 and done.stdout == "ran\n", done.stderr
    assert len(handler.seen) == 3 and seconds >= 1  # twice refused, half-second polls
    # A keyed health check (whisper) counts a refusal: the server listens, so its model is loaded.
    handler.answers = [403]
    done, _ = _predecessor_wait(tmp_path, 60, f"http://127.0.0.1:{port}/health", "200 401 403")
    assert done.stdout == "ran\n" and "still silent" not in done.stderr


def test_a_server_starts_anyway_past_the_bound(tmp_path: Path, server: tuple[int, type[_Server]]) -> None:
    port, handler = server
    handler.answers = [503]
    done, seconds = _predecessor_wait(tmp_path, 1, f"http://127.0.0.1:{port}/health", "200")
    assert done.returncode == 0 and done.stdout == "ran\n"
    assert "still silent, starting anyway" in done.stderr and seconds < 10


# --- up recreates the API after one of its servers ----------------------------------------------


def _desired(service: str, probes: tuple[str, ...] = (), hash_: str = "h") -> reconcile.Desired:
    return reconcile.Desired(service, hash_, {}, "img", "sha256:x", {}, probes)


def _actual(service: str, hash_: str = "h") -> reconcile.Actual:
    return reconcile.Actual(f"id-{service}", service, service, 1, "running", "healthy", hash_, True, "sha256:x")


def test_reconcile_recreates_the_api_only_when_a_probed_server_changes() -> None:
    want = [_desired("m", hash_="new"), _desired("db"), _desired("api", ("m",))]
    actions = reconcile.plan_actions(want, [_actual("m"), _actual("db"), _actual("api")])
    api = next(a for a in actions if a.service == "api")
    assert (api.kind, api.container) == ("recreate", "id-api") and "m (re)started" in api.reason
    same = reconcile.plan_actions([_desired("m"), _desired("api", ("m",))], [_actual("m"), _actual("api")])
    assert {a.kind for a in same} == {"nothing"}
    # A database starting again does not: the API reconnects to it on its own.
    stopped = reconcile.Actual("id-db", "db", "db", 1, "exited", None, "h", True, "sha256:x")
    kinds = {a.service: a.kind for a in reconcile.plan_actions(want[1:], [stopped, _actual("api")])}
    assert kinds == {"db": "start", "api": "nothing"}


def test_up_recreates_the_api_after_a_model_server_came_back(tmp_path: Path) -> None:
    project, client = make_project(tmp_path, SMALL)
    _up(project, client)
    model = "multilingual-e5-large"
    assert project.services["api"].probes_once == (model,)
    old_api = next(c.id for c in client.api.store.values() if c.labels[containers.SERVICE] == "api")
    server = next(c for c in client.api.store.values() if c.labels[containers.SERVICE] == model)
    client.api.remove_container(server.id)
    client.api.calls.clear()
    result, text = _up(project, client)
    kinds = {a.service: a.kind for a in result.actions}
    assert kinds == {**dict.fromkeys(kinds, "nothing"), model: "create", "api": "recreate"}
    starts = [s for kind, s in client.api.calls if kind == "start"]
    assert starts == [model, "api"]  # the API starts (and probes) once its server is healthy
    api = [c for c in client.api.store.values() if c.labels[containers.SERVICE] == "api"]
    assert len(api) == 1 and api[0].id != old_api
    assert "probes its models only at start" in text
