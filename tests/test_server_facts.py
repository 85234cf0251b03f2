"""The project's catalog and the model-server and qdrant stand-ins agree with recorded facts.

tests/standins/facts.py (SERVER_FACTS) records what the real vLLM, TEI, whisper-openai-api and
qdrant images do, each fact with its upstream source; model_server.py and qdrant_server.py read
their rules from it. Here albert_deploy's own catalog (SERVERS, the qdrant service, the rendered
commands) is set beside every fact, one case per fact.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import re
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from albert_deploy import catalog
from albert_deploy.plan import databases
from albert_deploy.plan.build import build_plan
from albert_deploy.plan.releases import r0_2_0
from albert_deploy.plan.spec import Service
from albert_deploy.profile.load import validate_profile

from .helpers import PROFILES

STANDINS = Path(__file__).resolve().parent / "standins"
sys.path.insert(0, str(STANDINS))  # the stand-in modules import each other flat, as in their image
import facts  # noqa: E402
import model_server  # noqa: E402
import qdrant_server  # noqa: E402

F = facts.server_value
SERVERS = catalog.SERVERS
QDRANT = databases.qdrant("qdrant-image")


# ---------------------------------------------------------------- the facts themselves
SOURCE = re.compile(r"^[\w.-]+/[\w.-]+@[\w.-]+ [\w/.-]+(:\d+(-\d+)?| \(line not recorded\))")


@pytest.mark.parametrize("name", sorted(facts.SERVER_FACTS))
def test_every_server_fact_cites_a_repository_tag_and_file(name: str) -> None:
    source = facts.SERVER_FACTS[name].source
    assert SOURCE.match(source), f"{name}: {source}"
    server = name.split()[0]
    repo = {
        "vllm": facts.VLLM,
        "tei": facts.TEI,
        "whisper": facts.WHISPER,
        "qdrant": facts.QDRANT,
        "prometheus": facts.PROMETHEUS,
    }[server]
    assert source.startswith((repo, facts.REPO)), f"{name}: a {server} fact cites {source}"


# ---------------------------------------------------------------- the catalog against the facts
def _health_is_keyed(server: str) -> bool:
    """Whether the catalog's health check must send the key: its path is guarded by the server."""
    path = SERVERS[server].health.http.path  # type: ignore[union-attr]
    if server == "vllm":
        return path.startswith(str(F("vllm guarded prefix")))
    return path not in F(f"{server} open paths")  # type: ignore[operator]


def _rendered(server: str) -> list[Service]:
    """Every service of that server in the plans of the shipped profiles."""
    found = []
    for path in PROFILES:
        plan = build_plan(validate_profile(yaml.safe_load(path.read_text()), str(path)), str(path))
        found += [s for s in plan.services if s.server == server]
    return found


def _flags(service: Service) -> set[str]:
    return {arg.split("=")[0] for arg in (*service.command, *(service.command_whole_gpus or ())) if arg.startswith("-")}


CATALOG: dict[str, Callable[[], object]] = {
    "vllm port": lambda: SERVERS["vllm"].port,
    "vllm api key env": lambda: SERVERS["vllm"].api_key_env,
    "vllm open health": lambda: SERVERS["vllm"].health.http.path,  # type: ignore[union-attr]
    "vllm user": lambda: SERVERS["vllm"].user,
    "vllm cache path": lambda: SERVERS["vllm"].cache_path,
    "tei port": lambda: SERVERS["tei"].port,
    "tei api key env": lambda: SERVERS["tei"].api_key_env,
    "tei user": lambda: SERVERS["tei"].user,
    "tei cache path": lambda: SERVERS["tei"].cache_path,
    "whisper port": lambda: SERVERS["whisper"].port,
    "whisper api key env": lambda: SERVERS["whisper"].api_key_env,
    "whisper user": lambda: SERVERS["whisper"].user,
    "whisper cache path": lambda: SERVERS["whisper"].cache_path,
    "qdrant port": lambda: QDRANT.container_port,
    "qdrant storage path": lambda: QDRANT.mounts[0].target,
    "qdrant api key env": lambda: next(k for k, v in QDRANT.environment.items() if v == databases.QDRANT_API_KEY),
    "qdrant version": lambda: r0_2_0.IMAGES["qdrant"].split(":v")[1].removesuffix("-unprivileged"),
}


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_the_catalog_agrees_with_the_fact(name: str) -> None:
    ours = CATALOG[name]()
    assert ours == F(name), f"albert_deploy says {ours!r}, {facts.SERVER_FACTS[name].source} says {F(name)!r}"


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_the_health_check_sends_the_key_exactly_when_the_server_guards_its_path(server: str) -> None:
    get = SERVERS[server].health.http
    assert get is not None and get.port == F(f"{server} port")
    expected = str(F(f"{server} api key env")) if _health_is_keyed(server) else None
    assert get.key_env == expected, f"{server}: health check on {get.path} sends key {get.key_env}, must {expected}"


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_the_catalog_health_check_matches_the_stand_in_rules(server: str) -> None:
    """The stand-in's guard (read from the facts) and the catalog agree on whether /health is keyed."""
    path = SERVERS[server].health.http.path  # type: ignore[union-attr]
    guarded = (
        path.startswith(model_server.VLLM_GUARDED) if server == "vllm" else path not in model_server.OPEN_PATHS[server]
    )
    assert guarded == bool(SERVERS[server].health.http.key_env)  # type: ignore[union-attr]


def test_qdrant_health_check_probes_an_open_path_on_its_port() -> None:
    get = QDRANT.healthcheck.http  # type: ignore[union-attr]
    assert get is not None and get.path in F("qdrant open paths") and get.port == F("qdrant port")
    assert get.path in qdrant_server.OPEN_PATHS and not get.key_env


def test_rendered_tei_commands_use_no_flag_tei_1_8_refuses() -> None:
    services = _rendered("tei")
    assert services, "no shipped profile runs TEI: nothing checked"
    accepted = set(F("tei value flags")) | set(F("tei bool flags"))  # type: ignore[call-overload]
    for service in services:
        assert _flags(service) <= accepted, f"{service.name}: {_flags(service) - accepted}"
        assert not _flags(service) & set(F("tei refused flags")), service.name  # type: ignore[call-overload]
        assert str(F("tei reported id flag")) in _flags(service), service.name


def test_rendered_whisper_commands_use_only_its_flags() -> None:
    services = _rendered("whisper")
    assert services, "no shipped profile runs whisper: nothing checked"
    for service in services:
        assert _flags(service) <= set(F("whisper flags")), service.name  # type: ignore[call-overload]
        assert str(F("whisper reported id flag")) in _flags(service), service.name


def test_rendered_vllm_commands_name_the_model_and_the_id_clients_use() -> None:
    services = _rendered("vllm")
    assert services, "no shipped profile runs vLLM: nothing checked"
    for service in services:
        assert set(F("vllm reported id flags")) <= _flags(service), service.name  # type: ignore[call-overload]


def test_the_facts_were_read_at_the_images_the_catalog_pins() -> None:
    assert SERVERS["vllm"].image.endswith(":" + facts.VLLM.split("@")[1])
    assert SERVERS["whisper"].image.endswith(":" + facts.WHISPER.split("@")[1])
    tei_minor = ".".join(catalog.TEI_VERSION.split(".")[:2])
    assert facts.TEI.split("@v")[1].startswith(tei_minor + ".")


# ---------------------------------------------------------------- the stand-in images against the facts
@functools.cache  # building the specs reads host files: once per session
def _image_specs() -> dict[str, dict]:
    spec = importlib.util.spec_from_file_location("standins_build_for_server_facts", STANDINS / "build.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return dict(build._specs())


def _paths(spec: dict) -> set[str]:
    return {e[1] for e in (*spec["files"], *spec.get("owned", ("", []))[1])}


def _passwd(spec: dict) -> str:
    return next(e[2].decode() for e in spec["files"] if e[1] == "/etc/passwd")


# (fact, image, what in the image must show it)
IMAGE: list[tuple[str, str, Callable[[dict, object], bool]]] = [
    ("vllm port", "vllm", lambda s, v: f"EXPOSE {v}\n" in s["tail"]),
    ("vllm user", "vllm", lambda s, v: v is None and "USER" not in s["tail"]),
    ("vllm cache path", "vllm", lambda s, v: v in _paths(s)),
    ("tei port", "tei", lambda s, v: f"PORT={v}" in s["tail"] and f"EXPOSE {v}\n" in s["tail"]),
    ("tei user", "tei", lambda s, v: v is None and "USER" not in s["tail"]),
    ("tei cache path", "tei", lambda s, v: v in _paths(s) and f"HUGGINGFACE_HUB_CACHE={v} " in s["tail"]),
    ("whisper user", "whisper", lambda s, v: f"USER {v}\n" in s["tail"] and f":x:{v}:{v}::" in _passwd(s)),
    ("qdrant user", "qdrant", lambda s, v: f"USER {v}\n" in s["tail"] and s["owned"][0] == f"{v}:{v}"),
    ("qdrant port", "qdrant", lambda s, v: f"EXPOSE {v} " in s["tail"]),
    ("qdrant storage path", "qdrant", lambda s, v: v in _paths(s)),
]


@pytest.mark.parametrize(("name", "image", "shows"), IMAGE, ids=[case[0] for case in IMAGE])
def test_the_stand_in_image_agrees_with_the_fact(name: str, image: str, shows: Callable[[dict, object], bool]) -> None:
    spec = _image_specs()[image]
    assert shows(spec, F(name)), f"the {image} stand-in image does not show {name} = {F(name)!r}: {spec['tail']!r}"


# ---------------------------------------------------------------- the stand-ins, running, against the facts
KEY = "standin-test-key"
ARGS = {
    "vllm": ["--model", "org/weights", "--served-model-name", "served-id"],
    "tei": ["--model-id", "org/embedder"],
    "whisper": ["--model", "org/whisper"],
}
REPORTED = {"vllm": "served-id", "tei": "org/embedder", "whisper": "org/whisper"}


@contextlib.contextmanager
def _running(handler: type, state: object) -> Iterator[str]:
    """The stand-in's handler in this process, on a free loopback port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _model_server(kind: str, monkeypatch: pytest.MonkeyPatch) -> model_server.Server:
    monkeypatch.setenv(
        str(F(f"{kind} api key env")), KEY
    )  # the key reaches the server only through the fact's variable
    return model_server.PARSERS[kind](ARGS[kind])


@pytest.mark.parametrize("kind", sorted(ARGS))
def test_the_running_stand_in_guards_exactly_the_paths_of_the_facts(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    server = _model_server(kind, monkeypatch)
    # TEI's 80 comes from the image's PORT variable; without it the router's own default applies.
    assert server.port == F("tei router default port" if kind == "tei" else f"{kind} port")
    info = "/info" if kind == "tei" else "/v1/models"
    with _running(model_server.ModelHandler, server) as url:
        if kind == "vllm":
            health_keyed = "/health".startswith(str(F("vllm guarded prefix")))
        else:
            health_keyed = "/health" not in F(f"{kind} open paths")  # type: ignore[operator]
        assert (_get(url + "/health")[0] in (401, 403)) == health_keyed, f"{kind}: /health"
        assert _get(url + info)[0] in (401, 403), f"{kind}: {info} answered without the key"
        status, body = _get(url + info, {"Authorization": f"Bearer {KEY}"})
        assert status == 200 and REPORTED[kind] in body.decode(), f"{kind}: {info} does not report {REPORTED[kind]}"


def test_the_running_qdrant_stand_in_guards_exactly_the_paths_of_the_facts(tmp_path: Path) -> None:
    state = {"api_key": KEY, "storage": str(tmp_path), "fail": ""}
    with _running(qdrant_server.QdrantHandler, state) as url:
        for path in F("qdrant open paths"):  # type: ignore[attr-defined]
            assert _get(url + path)[0] == 200, path
        assert _get(url + "/collections")[0] == 401
        assert _get(url + "/collections", {str(F("qdrant api key header")): KEY})[0] == 200


def _call(url: str, method: str, body: object = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={str(F("qdrant api key header")): KEY})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if answer.headers.get_content_type() == "application/json" else raw
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_the_qdrant_stand_in_snapshots_and_recovers_on_the_routes_of_the_facts(tmp_path: Path) -> None:
    snapshots = tmp_path / "snapshots"
    state = {"api_key": KEY, "storage": str(tmp_path / "storage"), "fail": "", "snapshots": str(snapshots)}
    route = {name: F(f"qdrant {name}")[1].replace("{name}", "docs") for name in  # type: ignore[index]
             ("upsert points", "scroll points", "snapshot create", "snapshot recover")}  # fmt: skip
    points = [{"id": 1, "vector": [0.5], "payload": {"a": 1}}, {"id": 2, "vector": [0.25], "payload": {}}]
    with _running(qdrant_server.QdrantHandler, state) as url:
        assert _call(url + "/collections/docs", "PUT", {"vectors": {"size": 1, "distance": "Dot"}})[0] == 200
        assert _call(url + route["upsert points"], "PUT", {"points": points})[0] == 200
        status, created = _call(url + route["snapshot create"], "POST")
        name = created["result"]["name"]  # type: ignore[index]
        assert status == 200 and (snapshots / "docs" / name).is_file()  # in {snapshots}/{collection}, as qdrant
        assert _call(url + f"/collections/docs/snapshots/{name}", "GET")[0] == 200
        assert _call(url + "/collections/docs", "DELETE")[0] == 200
        assert _call(url + route["scroll points"], "POST", {})[0] == 404
        location = (snapshots / "docs" / name).as_uri()
        assert _call(url + route["snapshot recover"], "PUT", {"location": location, "priority": "nope"})[0] == 400
        assert _call(url + route["snapshot recover"], "PUT", {"location": location + "x"})[0] == 400
        assert _call(url + route["snapshot recover"], "PUT", {"location": location, "priority": "snapshot"})[0] == 200
        assert _call(url + route["scroll points"], "POST", {})[1]["result"]["points"] == points  # type: ignore[index]
        assert _call(url + f"/collections/docs/snapshots/{name}", "DELETE")[0] == 200
        assert not (snapshots / "docs" / name).exists()
        assert _call(url + "/collections/docs/snapshots/upload", "POST", {})[0] == 501
