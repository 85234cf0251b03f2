"""The stand-in images against the real daemon: each health check, exactly as albert_deploy writes
it, passes when the service is up and fails when it should.

Health checks run the way Docker runs them (``CMD-SHELL`` through ``/bin/sh -c``, ``CMD`` as
is), by exec, so the tests do not wait for health intervals; one test lets Docker itself run one.
Everything a test creates carries its own ``albert-deploy.test`` label and is removed afterwards.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from albert_deploy import catalog
from albert_deploy.converge import contract as check
from albert_deploy.plan import databases
from albert_deploy.plan.releases import r0_0_3, r0_2_0

pytestmark = pytest.mark.docker

LLM, E5, WHISPER = "AgentPublic/guillaumetell-7b", "intfloat/multilingual-e5-large", "openai/whisper-large-v3-turbo"
VLLM_COMMAND = [
    "--model",
    LLM,
    "--served-model-name",
    "guillaumetell-7b",
    "--host",
    "0.0.0.0",
    "--port",
    "8000",
    "--max-model-len",
    "4096",
    "--gpu-memory-utilization",
    "0.45",
]
TEI_COMMAND = ["--model-id", E5, "--port", "80", "--auto-truncate"]
WHISPER_COMMAND = ["python3", "app/main.py", "--model", WHISPER, "--port", "8000"]
QUIET_POSTGRES = {"POSTGRES_PASSWORD": "pg-secret", "POSTGRES_DB": databases.POSTGRES_DB, "STANDIN_INIT_SECONDS": "0.3"}
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_for(condition: Callable[[], object], what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run_check(container: Any, test: tuple[str, ...], **kwargs: Any) -> tuple[int, str]:
    """Run a compose-style health check the way the daemon does."""
    cmd = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])
    code, output = container.exec_run(cmd, **kwargs)
    return code, output.decode(errors="replace")


def passes(container: Any, test: tuple[str, ...], **kwargs: Any) -> bool:
    container.reload()
    assert container.status == "running", container.logs().decode(errors="replace")
    return run_check(container, test, **kwargs)[0] == 0


def get(url: str, key: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with _OPENER.open(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class Stand:
    """Starts stand-in containers with the test's labels, on one user network of the test."""

    def __init__(self, client: Any, images: dict[str, str], labels: dict[str, str]) -> None:
        self.client, self.images, self.labels = client, images, labels
        self._network: Any = None

    @property
    def network(self) -> str:
        if self._network is None:
            self._network = self.client.networks.create(
                f"adt-standins-{self.labels['albert-deploy.test']}", labels=self.labels
            )
        return str(self._network.name)

    def run(
        self,
        image: str,
        command: list[str] | None = None,
        *,
        alias: str | None = None,
        publish: int | None = None,
        **kwargs: Any,
    ) -> Any:
        if alias:  # on the test's network under a DNS alias, as compose names each service
            kwargs["network"] = self.network
            kwargs["networking_config"] = {self.network: self.client.api.create_endpoint_config(aliases=[alias])}
        if publish:
            kwargs["ports"] = {f"{publish}/tcp": ("127.0.0.1", None)}
        return self.client.containers.run(self.images[image], command, detach=True, labels=self.labels, **kwargs)

    @staticmethod
    def url(container: Any, port: int) -> str:
        container.reload()
        return f"http://127.0.0.1:{container.ports[f'{port}/tcp'][0]['HostPort']}"


@pytest.fixture
def stand(docker_client: Any, standin_images: dict[str, str], docker_labels: dict[str, str]) -> Iterator[Stand]:
    yield Stand(docker_client, standin_images, docker_labels)


# ---------------------------------------------------------------- model servers
def test_vllm_health_check_passes_and_its_key_guards_v1_only(stand: Stand) -> None:
    vllm = stand.run("vllm", VLLM_COMMAND, environment={"VLLM_API_KEY": "vk"}, publish=8000)
    wait_for(lambda: passes(vllm, catalog.SERVERS["vllm"].health.test), "vLLM's health check")
    url = stand.url(vllm, 8000)
    assert get(url + "/v1/models")[0] == 401
    status, body = get(url + "/v1/models", "vk")
    assert status == 200 and [m["id"] for m in json.loads(body)["data"]] == ["guillaumetell-7b"]


def test_vllm_that_never_turns_healthy_fails_its_health_check(stand: Stand) -> None:
    vllm = stand.run("vllm", VLLM_COMMAND, environment={"STANDIN_FAIL": "never-healthy"})
    status = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://localhost:8000/health"]
    wait_for(lambda: vllm.exec_run(status).output == b"503", "the server to answer")
    assert run_check(vllm, catalog.SERVERS["vllm"].health.test) == (
        22,
        "curl: (22) The requested URL returned error: 503\n",
    )


def test_tei_health_is_open_the_rest_needs_the_key_and_1_8_flags_are_enforced(stand: Stand) -> None:
    tei = stand.run("tei", TEI_COMMAND, environment={"API_KEY": "tk"})
    wait_for(lambda: passes(tei, catalog.SERVERS["tei"].health.test), "TEI's health check")
    assert run_check(tei, ("CMD", "curl", "-fsS", "http://localhost:80/info"))[0] == 22
    code, info = run_check(tei, ("CMD-SHELL", 'curl -fsS -H "Authorization: Bearer $API_KEY" http://localhost:80/info'))
    assert code == 0 and json.loads(info)["model_id"] == E5
    assert tei.exec_run(["which", "python3"]).exit_code != 0  # like the real image: no python
    # TEI 1.8 (the catalog's pin) has no --served-model-name: clap refuses it, status 2.
    refused = stand.run("tei", [*TEI_COMMAND, "--served-model-name", "e5"])
    assert refused.wait(timeout=15)["StatusCode"] == 2
    assert "unexpected argument '--served-model-name'" in refused.logs().decode()


def test_whisper_runs_as_1100_and_its_health_check_needs_the_bearer(stand: Stand) -> None:
    assert not stand.client.images.get(stand.images["whisper"]).attrs["Config"]["Cmd"]  # no CMD, as the real one
    whisper = stand.run("whisper", WHISPER_COMMAND, environment={"API_KEY": "wk"})
    wait_for(lambda: passes(whisper, catalog.SERVERS["whisper"].health.test), "whisper's health check")
    assert run_check(whisper, ("CMD-SHELL", "curl -fsS -o /dev/null http://localhost:8000/health"))[0] == 22
    assert run_check(whisper, catalog.SERVERS["whisper"].health.test, environment={"API_KEY": "wrong"})[0] == 22
    _, where = run_check(whisper, ("CMD-SHELL", "id -u; pwd; ls -a /home/whisper"))
    # Like upstream, the image does not create the cache directory (the plan must make it 1100's).
    assert where.split()[:2] == ["1100", "/home/whisper"] and ".cache" not in where.split()


def test_docker_itself_runs_the_health_checks(stand: Stand) -> None:
    def healthcheck(test: tuple[str, ...]) -> dict[str, Any]:
        return {"test": list(test), "interval": 300_000_000, "timeout": 2_000_000_000, "retries": 2, "start_period": 0}

    good = stand.run(
        "whisper",
        WHISPER_COMMAND,
        environment={"API_KEY": "wk"},
        healthcheck=healthcheck(catalog.SERVERS["whisper"].health.test),
    )
    keyless = ("CMD-SHELL", "curl -fsS -o /dev/null http://localhost:8000/health")
    bad = stand.run("whisper", WHISPER_COMMAND, environment={"API_KEY": "wk"}, healthcheck=healthcheck(keyless))

    def health(container: Any) -> str:
        container.reload()
        return str(container.attrs["State"]["Health"]["Status"])

    wait_for(lambda: health(good) == "healthy", "Docker to call whisper healthy")
    wait_for(lambda: health(bad) == "unhealthy", "Docker to call the keyless check unhealthy")


# ---------------------------------------------------------------- databases
def test_redis_health_check_needs_the_right_password(stand: Stand) -> None:
    service = databases.redis(stand.images["redis"])
    redis = stand.run("redis", environment={"REDIS_ARGS": "--requirepass rp", "REDISCLI_AUTH": "rp"})
    wait_for(lambda: passes(redis, service.healthcheck.test), "redis' health check")
    assert run_check(redis, service.healthcheck.test, environment={"REDISCLI_AUTH": "wrong"})[0] == 1
    # The trap the renderer avoids: plain `redis-cli ping` exits 0 with a wrong password.
    code, output = run_check(redis, ("CMD", "redis-cli", "ping"), environment={"REDISCLI_AUTH": "wrong"})
    assert code == 0 and "NOAUTH" in output


def test_postgres_is_ready_only_once_it_listens_on_tcp(stand: Stand) -> None:
    test = databases.postgres(stand.images["postgres"]).healthcheck.test
    assert "-h" in test
    postgres = stand.run("postgres", environment={**QUIET_POSTGRES, "STANDIN_INIT_SECONDS": "2.5"})
    # During first-time init only the Unix socket listens: pg_isready without -h already says yes.
    wait_for(lambda: passes(postgres, ("CMD", "pg_isready", "-U", "postgres", "-d", "api")), "the init socket")
    assert run_check(postgres, test) == (2, "127.0.0.1:5432 - no response\n")
    wait_for(lambda: passes(postgres, test), "postgres' health check")
    _, facts = run_check(postgres, ("CMD-SHELL", "cat $PGDATA/PG_VERSION; stat -c %U /proc/1"))
    assert facts.split() == ["15", "postgres"]  # Debian 12 packages 15; the plan pins postgres:16


def test_real_postgres_checks_the_password_and_keeps_its_data_across_restarts(
    stand: Stand, docker_client: Any, docker_labels: dict[str, str]
) -> None:
    volume = docker_client.volumes.create(labels=docker_labels)
    data = {volume.name: {"bind": "/var/lib/postgresql/data", "mode": "rw"}}
    test = databases.postgres(stand.images["postgres"]).healthcheck.test
    postgres = stand.run("postgres", environment=QUIET_POSTGRES, volumes=data)
    wait_for(lambda: passes(postgres, test), "postgres' health check", timeout=30)

    def psql(password: str, sql: str) -> tuple[int, str]:  # over TCP: scram-sha-256, as postgres:16
        command = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "api", "-tAc", sql]
        code, out = postgres.exec_run(command, environment={"PGPASSWORD": password})
        return code, out.decode(errors="replace")

    assert psql("pg-secret", "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('yes')")[0] == 0
    code, out = psql("wrong", "SELECT 1")
    assert code != 0 and "password authentication failed" in out
    postgres.restart(timeout=20)  # STOPSIGNAL SIGINT: a fast shutdown, then the same volume again
    wait_for(lambda: passes(postgres, test), "postgres after a restart", timeout=30)
    assert psql("pg-secret", "SELECT v FROM kept") == (0, "yes\n")
    # A new password on an initialised volume is ignored, as with postgres:16.
    postgres.remove(force=True)
    again = stand.run("postgres", environment={**QUIET_POSTGRES, "POSTGRES_PASSWORD": "new"}, volumes=data)
    wait_for(lambda: passes(again, test), "postgres on the old volume", timeout=30)
    postgres = again
    assert psql("new", "SELECT 1")[0] != 0 and psql("pg-secret", "SELECT v FROM kept") == (0, "yes\n")


def test_postgres_without_a_password_refuses_to_initialise(stand: Stand) -> None:
    postgres = stand.run("postgres", environment={"POSTGRES_DB": "api"})
    assert postgres.wait(timeout=15)["StatusCode"] == 1
    assert "superuser password is not specified" in postgres.logs().decode()


def test_qdrant_probe_works_with_bash_alone(stand: Stand) -> None:
    test = databases.qdrant(stand.images["qdrant"]).healthcheck.test
    qdrant = stand.run("qdrant", environment={"QDRANT__SERVICE__API_KEY": "qk"})
    wait_for(lambda: passes(qdrant, test), "qdrant's health check")
    _, facts = run_check(qdrant, ("CMD-SHELL", "id -u; which curl wget python3 || echo none"))
    assert facts.split() == ["1000", "none"]
    sick = stand.run("qdrant", environment={"STANDIN_FAIL": "never-healthy"})
    wait_for(lambda: b"listening" in sick.logs(), "qdrant to listen")
    assert run_check(sick, test)[0] == 1


# ---------------------------------------------------------------- the Albert API
CONFIG_0_2_0 = """
auth: {master_key: "${MASTER_KEY}"}
databases:
  - {type: redis, context: api, args: {host: redis, port: 6379, password: "${REDIS_PASSWORD}"}}
  - {type: sql, context: api, args: {url: "postgresql+asyncpg://postgres:${POSTGRES_PASSWORD}@postgres:5432/api"}}
  - {type: qdrant, context: api, model: multilingual-e5-large, args: {url: "http://qdrant:6333", api_key: "${QDRANT_API_KEY}"}}
models:
  - {id: guillaumetell-7b, type: text-generation, clients: [{model: guillaumetell-7b, type: vllm, args: {api_url: "http://guillaumetell-7b:8000", api_key: "${MODEL_LLM_KEY}"}}]}
  - {id: multilingual-e5-large, type: text-embeddings-inference, clients: [{model: intfloat/multilingual-e5-large, type: tei, args: {api_url: "http://multilingual-e5-large:80", api_key: "${MODEL_E5_KEY}"}}]}
  - {id: whisper-large-v3-turbo, type: automatic-speech-recognition, clients: [{model: openai/whisper-large-v3-turbo, type: openai, args: {api_url: "http://whisper-large-v3-turbo:8000"}}]}
"""
API_ENV = {
    "MASTER_KEY": "mk",
    "REDIS_PASSWORD": "rp",
    "POSTGRES_PASSWORD": "pg-secret",
    "QDRANT_API_KEY": "qk",
    "MODEL_LLM_KEY": "vk",
    "MODEL_E5_KEY": "tk",
}


def start_stack(stand: Stand, databases_too: bool = True, embeddings_up: bool = True) -> list[Any]:
    """Databases and model servers on the test network, all healthy; returns the model containers.

    Every name in the API configs resolves to a container: an unknown name would make Docker's
    DNS ask the host's resolvers, off this machine. Servers meant to be down are containers that
    are still "loading" (STANDIN_START_DELAY), so connections are refused at once.
    """
    late = {"STANDIN_START_DELAY": "600"}
    waits = []
    if databases_too:
        env = {"REDIS_ARGS": "--requirepass rp", "REDISCLI_AUTH": "rp"}
        waits.append((stand.run("redis", alias="redis", environment=env), databases.redis("x").healthcheck.test))
        waits.append(
            (
                stand.run("postgres", alias="postgres", environment=QUIET_POSTGRES),
                databases.postgres("x").healthcheck.test,
            )
        )
        waits.append(
            (
                stand.run("qdrant", alias="qdrant", environment={"QDRANT__SERVICE__API_KEY": "qk"}),
                databases.qdrant("x").healthcheck.test,
            )
        )
    models = [stand.run("vllm", VLLM_COMMAND, alias="guillaumetell-7b", environment={"VLLM_API_KEY": "vk"})]
    models.append(
        stand.run(
            "tei",
            TEI_COMMAND,
            alias="multilingual-e5-large",
            environment={"API_KEY": "tk", **({} if embeddings_up else late)},
        )
    )
    stand.run("whisper", WHISPER_COMMAND, alias="whisper-large-v3-turbo", environment=late)  # never up in time
    waits += [(models[0], catalog.SERVERS["vllm"].health.test)]
    waits += [(models[1], catalog.SERVERS["tei"].health.test)] if embeddings_up else []
    for container, test in waits:
        wait_for(lambda c=container, t=test: passes(c, t), f"{container.name} to be healthy")
    return models


def put_file(container: Any, path: str, data: bytes) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(Path(path).name)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    assert container.put_archive(str(Path(path).parent), buf.getvalue())


def test_api_0_2_0_starts_after_its_models_and_checks_run_inside_it(stand: Stand, tmp_path: Path) -> None:
    models = start_stack(stand)
    (tmp_path / "config.yml").write_text(CONFIG_0_2_0 + "monitoring: {postgres: {enabled: true}, prometheus: {}}\n")
    service = r0_2_0.api_service(stand.images["albert-api"], {})
    api = stand.run(
        "albert-api",
        alias="api",
        publish=8000,
        environment=API_ENV,
        volumes={str(tmp_path / "config.yml"): {"bind": "/config.yml", "mode": "ro"}},
    )
    wait_for(lambda: passes(api, service.healthcheck.test), "the API's health check")
    url = stand.url(api, 8000)
    state = json.loads(get(url + "/standin/state")[1])
    assert state["release"] == "0.2.0" and state["models_up"] == ["guillaumetell-7b", "multilingual-e5-large"]
    assert list(state["models_down"]) == ["whisper-large-v3-turbo"]  # no such server: dropped for good
    for model, port in zip(models, (8000, 80), strict=True):  # the API started after each model server listened
        served = json.loads(model.exec_run(["curl", "-s", f"http://localhost:{port}/standin/state"]).output)
        assert served["listening_at"] < state["started_at"]
    assert (
        get(url + "/health")[0] == 403
        and get(url + "/health", "wrong")[0] == 401
        and get(url + "/health", "mk")[0] == 200
    )

    # The reconciler's way: check.py inside the API container reaches servers that publish no port.
    jobs = [
        {
            "name": "llm",
            "type": check.TEXT_GENERATION,
            "url": "http://guillaumetell-7b:8000",
            "served_name": "guillaumetell-7b",
            "key": "vk",
            "via": "server",
        },
        {
            "name": "e5",
            "type": check.EMBEDDINGS,
            "url": "http://multilingual-e5-large:80",
            "served_name": E5,
            "key": "tk",
            "via": "server",
        },
        {
            "name": "llm",
            "type": check.TEXT_GENERATION,
            "url": "http://127.0.0.1:8000",
            "served_name": "guillaumetell-7b",
            "key": "mk",
            "via": "api",
        },
        {
            "name": "e5",
            "type": check.EMBEDDINGS,
            "url": "http://127.0.0.1:8000",
            "served_name": "multilingual-e5-large",
            "key": "mk",
            "via": "api",
        },
    ]
    put_file(api, "/tmp/check.py", Path(check.__file__).read_bytes())
    put_file(api, "/tmp/jobs.json", json.dumps(jobs).encode())
    code, output = api.exec_run(["python3", "/tmp/check.py", "--timeout", "5", "/tmp/jobs.json"], demux=True)
    results = json.loads(output[0])
    assert code == 0 and [r["ok"] for r in results] == [True] * 4, results
    assert results[1]["dimension"] == results[3]["dimension"] == 1024
    # The host's way, through the published port.
    (result,) = check.run_checks([{**jobs[2], "url": url}], timeout=5)
    assert result["ok"], result
    # Monitoring on: usage rows for the requests through the API, /metrics for the master key.
    state = json.loads(get(url + "/standin/state")[1])
    assert state["usage_rows"] >= 3 and [p["ok"] for p in state["probes"] if p["what"] == "postgres"] == [True]
    assert get(url + "/metrics")[0] == 403 and get(url + "/metrics", "mk")[0] == 200


def test_api_0_2_0_exits_when_postgres_refuses_its_password(stand: Stand, tmp_path: Path) -> None:
    start_stack(stand)
    (tmp_path / "config.yml").write_text(CONFIG_0_2_0)
    api = stand.run(
        "albert-api",
        alias="api",
        environment={**API_ENV, "POSTGRES_PASSWORD": "wrong"},
        volumes={str(tmp_path / "config.yml"): {"bind": "/config.yml", "mode": "ro"}},
    )
    assert api.wait(timeout=30)["StatusCode"] == 1
    assert 'password authentication failed for user "postgres"' in api.logs().decode()


def test_api_0_2_0_exits_when_its_embeddings_model_is_down(stand: Stand, tmp_path: Path) -> None:
    start_stack(stand, embeddings_up=False)
    (tmp_path / "config.yml").write_text(CONFIG_0_2_0)
    api = stand.run(
        "albert-api",
        alias="api",
        environment=API_ENV,
        volumes={str(tmp_path / "config.yml"): {"bind": "/config.yml", "mode": "ro"}},
    )
    assert api.wait(timeout=30)["StatusCode"] == 1
    assert "Vector store embedding model (multilingual-e5-large) must be reachable." in api.logs().decode()


CONFIG_0_0_3 = """
internet: {default_language_model: guillaumetell-7b, default_embeddings_model: intfloat/multilingual-e5-large}
models: {aliases: {guillaumetell-7b: [llm]}}
clients:
  models:
    - {url: "http://guillaumetell-7b:8000/v1", type: text-generation, key: "${MODEL_LLM_KEY}"}
    - {url: "http://multilingual-e5-large:80/v1", type: text-embeddings-inference, key: "${MODEL_E5_KEY}"}
  databases:
    cache: {type: redis, args: {host: redis, port: 6379, password: "${REDIS_PASSWORD}"}}
    search: {type: qdrant, args: {url: "http://qdrant", api_key: "${QDRANT_API_KEY}"}}
  internet: {type: duckduckgo, args: {}}
"""


def test_api_0_0_3_refuses_elasticsearch_by_that_name(stand: Stand, tmp_path: Path) -> None:
    """The release's own name is `elastic` (see tests/standins/facts.py); it validates before any probe."""
    (tmp_path / "config.yml").write_text(CONFIG_0_0_3.replace("type: qdrant", "type: elasticsearch"))
    service = r0_0_3.api_service(stand.images["albert-api"], {})
    api = stand.run(
        "albert-api",
        list(service.command),
        environment={**{k: str(v) for k, v in service.environment.items()}, **API_ENV},
        volumes={str(tmp_path / "config.yml"): {"bind": r0_0_3.RELEASE.config_mount, "mode": "ro"}},
    )
    assert api.wait(timeout=30)["StatusCode"] == 1
    assert "Input should be 'elastic' or 'qdrant', got 'elasticsearch'" in api.logs().decode()


def test_api_0_0_3_runs_the_renderers_command(stand: Stand, tmp_path: Path) -> None:
    start_stack(stand, databases_too=False)
    (tmp_path / "config.yml").write_text(CONFIG_0_0_3)
    service = r0_0_3.api_service(stand.images["albert-api"], {})
    api = stand.run(
        "albert-api",
        list(service.command),
        alias="api",
        publish=8000,
        environment={**{k: str(v) for k, v in service.environment.items()}, **API_ENV},
        volumes={str(tmp_path / "config.yml"): {"bind": r0_0_3.RELEASE.config_mount, "mode": "ro"}},
    )
    wait_for(lambda: passes(api, service.healthcheck.test), "the API's health check")
    state = json.loads(get(stand.url(api, 8000) + "/standin/state")[1])
    assert state["release"] == "0.0.3" and state["config_file"] == r0_0_3.EXPANDED_CONFIG
    assert state["models_up"] == ["guillaumetell-7b", E5] and state["aliases"] == {"llm": "guillaumetell-7b"}
    (result,) = check.run_checks(
        [
            {
                "name": "llm",
                "type": check.TEXT_GENERATION,
                "url": stand.url(api, 8000),
                "served_name": "llm",
                "key": None,
                "via": "api",
            }
        ]
    )
    assert result["ok"], result
