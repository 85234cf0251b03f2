"""Stand-in for the Albert API (releases 0.0.3 and 0.2.0) in tests: config, startup probes, routing.

The real images cannot be pulled on test machines. What matters to albert-deploy is how the API
reads its config and how it behaves at startup, so this copies exactly that, read from the
releases' source:

0.2.0 (``/startup.sh``): config at $CONFIG_FILE or /config.yml, ``${VAR}`` replaced from the
  environment (names [A-Z0-9_], unset or empty stays literal). Startup, in the real order:
  "migrations" (a postgres login with the sql URL), then each model's clients probed once
  (vllm/openai: GET {api_url}/v1/models must list the client's model once; tei: GET {api_url}/info
  must report it as model_id; openai and tei then POST /v1/embeddings, where any HTTP answer
  passes), then redis (AUTH + PING), then the vector store. A model whose
  clients all fail is dropped for the process's lifetime; an unreachable vector-store model,
  redis, postgres or vector store makes it exit 1.
0.0.3 (``uvicorn app.main:app``): config at $CONFIG_FILE or ./config.yml (WORKDIR
  /home/albert), no ``${VAR}`` substitution; models are ``clients.models[{url (with /v1), type,
  key}]``, named by what the server reports (GET {url}/models, or TEI's /info). An unavailable
  model is dropped; an unavailable embeddings model or a missing ``internet`` default exits 1.

Probes never retry: a model that is not up when the API starts stays down. ``GET /standin/state``
(open, stand-in only) tells tests when the API started and which models were up then.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api_config
import common
import pg_login
import yaml
from facts import EMBEDDINGS, RERANK, SPEECH, TEXT_GENERATION, VISION, value

# Which model types each route serves; which 0.2.0 client types each model type accepts (a fact).
ROUTE_TYPES = {
    "chat": (TEXT_GENERATION, VISION),
    "embeddings": (EMBEDDINGS,),
    "transcriptions": (SPEECH,),
    "rerank": (RERANK,),
}
CLIENT_TYPES: dict = value("0.2.0 client types by model type")  # type: ignore[assignment]
PROBE_TIMEOUT = 5.0
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # stack-internal: no proxy


class StartupError(Exception):
    """The real API would crash at startup with this message."""


@dataclass
class Client:
    model: str  # the name the server knows
    type: str  # 0.2.0 client type (vllm, tei, openai, albert); "v0" for 0.0.3
    root: str  # server root, no /v1
    key: str | None


@dataclass
class Model:
    id: str
    type: str
    clients: list[Client]


@dataclass
class State:
    release: str
    config_file: str
    master_key: str | None = None
    auth: bool = False  # 0.0.3: keys are only checked when the config has clients.auth
    started_at: float = field(default_factory=time.time)
    listening_at: float | None = None
    models: dict[str, tuple[Model, Client]] = field(default_factory=dict)  # up at start
    down: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    probes: list[dict] = field(default_factory=list)
    metrics: bool = False  # 0.2.0 monitoring.prometheus
    log_usage: bool = False  # 0.2.0 monitoring.postgres
    usage_rows: int = 0  # requests the real API would have written to postgres
    requests: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (method, status class, handler)

    def record(self, what: str, target: str, ok: bool, detail: str) -> bool:
        self.probes.append({"what": what, "target": target, "ok": ok, "detail": detail, "at": time.time()})
        common.log("albert-api", f"{'ok' if ok else 'FAILED'} {what} {target}: {detail}")
        return ok

    def public(self) -> dict:
        return {
            "release": self.release,
            "config_file": self.config_file,
            "started_at": self.started_at,
            "listening_at": self.listening_at,
            "models_up": sorted(self.models),
            "models_down": self.down,
            "aliases": self.aliases,
            "probes": self.probes,
            "metrics": self.metrics,
            "log_usage": self.log_usage,
            "usage_rows": self.usage_rows,
        }


# ---------------------------------------------------------------- outbound calls
def http(
    method: str,
    url: str,
    key: str | None = None,
    body: bytes | None = None,
    ctype: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = PROBE_TIMEOUT,
) -> tuple[int, bytes, str]:
    """(status, body, content type); raises OSError when the server cannot be reached."""
    hdrs = dict(headers or {})
    if key:
        hdrs["Authorization"] = f"Bearer {key}"
    if ctype:
        hdrs["Content-Type"] = ctype
    request = urllib.request.Request(url, data=body, headers=hdrs, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")
    except urllib.error.URLError as err:
        raise OSError(str(err.reason)) from None


def get_json(url: str, key: str | None) -> object:
    status, data, _ = http("GET", url, key)
    if status != 200:
        raise OSError(f"HTTP {status}")
    return json.loads(data)


def redis_ping(host: str, port: int, password: str | None, username: str | None) -> None:
    with socket.create_connection((host, port), timeout=PROBE_TIMEOUT) as sock:
        words = [["AUTH", *([username] if username else []), password]] if password else []
        for cmd in [*words, ["PING"]]:
            sock.sendall(
                b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(w.encode()), w.encode()) for w in cmd)
            )
            reply = sock.recv(512)
            if not reply.startswith(b"+"):
                raise OSError(reply.decode(errors="replace").strip())


def postgres_login(url: str) -> None:
    pg_login.login(url, PROBE_TIMEOUT)


# ---------------------------------------------------------------- config
def load(path: str) -> tuple[str, dict]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise StartupError(f"Config file not found ({path}): {err}") from None
    try:
        raw = yaml.safe_load(text)
        shape = "0.0.3" if isinstance(raw, dict) and isinstance(raw.get("clients"), dict) else "0.2.0"
        release = os.environ.get("STANDIN_RELEASE") or shape
        if release == "0.2.0":
            text, warnings = api_config.substitute(text, os.environ)
            for warning in warnings:  # the release logs these, and starts anyway
                common.log("albert-api", f"WARNING {warning}")
        data = yaml.safe_load(text) if release == "0.2.0" else raw
    except yaml.YAMLError as err:
        raise StartupError(f"config is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise StartupError("config is not a mapping")
    return release, data


# ---------------------------------------------------------------- startup, 0.2.0
def start_0_2_0(state: State, cfg: dict) -> None:
    _validate(api_config.validate_0_2_0, cfg)
    state.metrics = api_config.monitoring_on(cfg, "0.2.0 metrics served when")
    state.log_usage = api_config.monitoring_on(cfg, "0.2.0 usage logged when")
    state.master_key = (cfg.get("auth") or {}).get("master_key")
    dbs = cfg.get("databases") or []
    redis = [d for d in dbs if d.get("type") == "redis"]
    sql = [d for d in dbs if d.get("type") == "sql" and d.get("context", "api") == "api"]
    stores = [d for d in dbs if d.get("type") in api_config.value("0.2.0 vector store types")]  # type: ignore[operator]
    models = [_model_0_2_0(m) for m in cfg.get("models") or []]

    url = str((sql[0].get("args") or {}).get("url", ""))  # startup.sh runs migrations first
    if not _try(state, "postgres", url.split("@")[-1], lambda: postgres_login(url)):
        raise StartupError("alembic upgrade failed: postgres is not reachable with the configured URL")
    for model in models:  # once, never again (facts "0.2.0 models probed once at startup")
        up = [c for c in model.clients if _try(state, "model", f"{model.id} via {c.root}", lambda c=c: _probe_0_2_0(c))]
        if up:
            state.models[model.id] = (model, up[0])
            continue
        state.down[model.id] = f"0/{len(model.clients)} clients reachable at startup"
        if stores and model.id == stores[0].get("model"):
            raise StartupError(f"Vector store embedding model ({model.id}) must be reachable.")
    args = redis[0].get("args") or {}

    def ping() -> None:
        redis_ping(
            args.get("host", "localhost"), int(args.get("port", 6379)), args.get("password"), args.get("username")
        )

    if not _try(state, "redis", f"{args.get('host')}:{args.get('port', 6379)}", ping):
        raise StartupError("Redis database is not reachable.")
    where = (
        str((stores[0].get("args") or {}).get("url") or (stores[0].get("args") or {}).get("hosts")) if stores else ""
    )
    if stores and not _try(state, stores[0]["type"], where, lambda: _store_check(stores[0])):  # no secret in `where`
        raise StartupError("Vector store database is not reachable.")


def _model_0_2_0(m: dict) -> Model:
    clients = []
    for c in m.get("clients") or []:
        if c.get("type") not in CLIENT_TYPES.get(m.get("type"), ()):
            raise StartupError(f"model {m.get('id')}: client type {c.get('type')} cannot serve {m.get('type')}")
        args = c.get("args") or {}
        clients.append(
            Client(
                model=c.get("model", ""),
                type=c["type"],
                root=str(args.get("api_url", "")).rstrip("/"),
                key=args.get("api_key"),
            )
        )
    return Model(id=str(m.get("id")), type=str(m.get("type")), clients=clients)


def _probe_0_2_0(c: Client) -> None:
    """What the client's constructor asks, once (facts "0.2.0 probe by client type")."""
    steps = value("0.2.0 probe by client type")  # type: ignore[assignment]
    for step in steps.get(c.type, ("GET /v1/models",)):  # type: ignore[union-attr]
        method, path = step.split()
        if method == "POST":  # vector size only: any answer passes, an unreachable server fails
            http(method, c.root + path, c.key, json.dumps({"model": c.model, "input": "hello world"}).encode(),
                 "application/json")  # fmt: skip
            continue
        found = get_json(c.root + path, c.key)
        if path == "/info":
            if not isinstance(found, dict) or found.get("model_id") != c.model:
                shown = found.get("model_id") if isinstance(found, dict) else found
                raise OSError(f"/info reports model_id {shown!r}, not {c.model}")
            continue
        ids = [d.get("id") for d in found.get("data", [])]  # type: ignore[union-attr]
        if ids.count(c.model) != 1:  # exactly one entry with the client's model
            raise OSError(f"/v1/models lists {ids}, not {c.model} once")


def _store_check(store: dict) -> None:
    args = store.get("args") or {}
    if store["type"] == "qdrant":
        parts = urlsplit(str(args.get("url", "http://localhost")))
        url = f"{parts.scheme}://{parts.hostname}:{parts.port or 6333}/collections/test/exists"
        status, _, _ = http("GET", url, headers={"api-key": str(args.get("api_key") or "")})
    else:
        hosts = args.get("hosts")
        auth = args.get("basic_auth") or ["", ""]
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        status, _, _ = http(
            "GET",
            (hosts[0] if isinstance(hosts, list) else str(hosts)).rstrip("/") + "/",
            headers={"Authorization": f"Basic {token}"},
        )
    if status != 200:
        raise OSError(f"HTTP {status}")


# ---------------------------------------------------------------- startup, 0.0.3
def _validate(rules, cfg: dict) -> None:  # type: ignore[no-untyped-def]
    try:
        rules(cfg)
    except api_config.ConfigRefused as err:
        raise StartupError(f"1 validation error for Settings: {err}") from None


def start_0_0_3(state: State, cfg: dict) -> None:
    _validate(api_config.validate_0_0_3, cfg)
    clients = cfg.get("clients") or {}
    state.auth = bool(clients.get("auth"))
    for entry in clients.get("models") or []:
        base = str(entry.get("url", "")).rstrip("/") + "/"
        kind, key = str(entry.get("type")), entry.get("key")
        try:
            if kind in (EMBEDDINGS, RERANK):
                served = get_json(base.replace("/v1/", "/info"), key)["model_id"]  # type: ignore[index]
            else:
                served = get_json(base + "models", key)["data"][0]["id"]  # type: ignore[index]
            state.record("model", base, True, f"serves {served}")
        except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
            state.record("model", base, False, str(err))
            state.down[base] = "unavailable model API at startup, skipped"
            if kind == EMBEDDINGS:  # 0.0.3 still asks it for a vector size, and crashes
                raise StartupError(f"embeddings model API {base} is unavailable") from None
            continue
        if kind == EMBEDDINGS:
            status, _, _ = http(
                "POST",
                base + "embeddings",
                key,
                json.dumps({"model": served, "input": "hello world"}).encode(),
                "application/json",
            )
            if status != 200:
                raise StartupError(f"embeddings model {served} failed to embed (HTTP {status})")
        if served in state.models:
            common.log("albert-api", f"duplicated model ID {served}, skipping.")
            continue
        state.models[served] = (
            Model(id=served, type=kind, clients=[]),
            Client(model=served, type="v0", root=base[:-4] if base.endswith("/v1/") else base.rstrip("/"), key=key),
        )
    for model_id, aliases in ((cfg.get("models") or {}).get("aliases") or {}).items():
        state.aliases.update({alias: model_id for alias in aliases or []})
    internet = cfg.get("internet") or {}
    for name in ("default_language_model", "default_embeddings_model"):
        if internet.get(name) not in state.models:
            raise StartupError(f"Default internet {name.split('_')[1]} model not found.")


def _try(state: State, what: str, target: str, action) -> bool:  # type: ignore[no-untyped-def]
    try:
        action()
    except (OSError, ValueError, KeyError, TypeError, struct.error, AttributeError) as err:
        return state.record(what, target, False, str(err) or type(err).__name__)
    return state.record(what, target, True, "reachable")


# ---------------------------------------------------------------- serving
UPSTREAM = {  # (client type, route) -> path on the model server
    ("vllm", "chat"): "/v1/chat/completions",
    ("openai", "chat"): "/v1/chat/completions",
    ("albert", "chat"): "/v1/chat/completions",
    ("tei", "embeddings"): "/v1/embeddings",
    ("openai", "embeddings"): "/v1/embeddings",
    ("albert", "embeddings"): "/v1/embeddings",
    ("openai", "transcriptions"): "/v1/audio/transcriptions",
    ("albert", "transcriptions"): "/v1/audio/transcriptions",
    ("tei", "rerank"): "/rerank",
    ("albert", "rerank"): "/v1/rerank",
    ("v0", "chat"): "/v1/chat/completions",
    ("v0", "embeddings"): "/v1/embeddings",
    ("v0", "transcriptions"): "/v1/audio/transcriptions",
    ("v0", "rerank"): "/rerank",
}
ROUTES = {
    "/v1/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
    "/v1/audio/transcriptions": "transcriptions",
    "/v1/rerank": "rerank",
}


class ApiHandler(common.Handler):
    standin_name = "albert-api"

    @property
    def st(self) -> State:
        return self.server.state  # type: ignore[attr-defined]

    def route(self, method: str, path: str) -> None:
        st = self.st
        if path == "/standin/state":
            return self.send_json(200, st.public())
        if path == "/openapi.json":
            paths = {p: {} for p in ["/health", "/v1/models", *ROUTES]}
            return self.send_json(
                200,
                {
                    "openapi": "3.1.0",
                    "info": {"title": "Albert API (test stand-in)", "version": st.release},
                    "paths": paths,
                },
            )
        if path == "/" and method == "GET" and st.release == "0.0.3":
            return self.send_json(200, {"message": "Hello World"})
        metrics = path == api_config.value("0.2.0 metrics path") and st.release == "0.2.0" and st.metrics
        if path not in ("/health", "/v1/models", *ROUTES) and not metrics:
            return self.send_json(404, {"detail": "Not Found"})
        if not self.authorized():
            return None
        if path == "/health":
            return self.send_raw(200, b"", "application/json")
        if metrics:
            return self.send_raw(200, self.metrics_text().encode(), "text/plain; version=0.0.4; charset=utf-8")
        if path == "/v1/models" and method == "GET":
            data = [
                {
                    "id": i,
                    "object": "model",
                    "type": m.type,
                    "owned_by": "albert",
                    "aliases": [a for a, t in st.aliases.items() if t == i],
                }
                for i, (m, _) in st.models.items()
            ]
            return self.send_json(200, {"object": "list", "data": data})
        if method == "POST" and path in ROUTES:
            st.usage_rows += st.log_usage  # the release's hook writes one usage row per request
            return self.proxy(ROUTES[path])
        self.send_json(405, {"detail": "Method Not Allowed"})

    def metrics_text(self) -> str:
        """prometheus-fastapi-instrumentator's request counter (facts: "0.2.0 request counter")."""
        name, labels, _ = api_config.value("0.2.0 request counter")  # type: ignore[misc]
        lines = [f"# TYPE {name} counter"]
        for key, n in sorted(self.st.requests.items()):
            pairs = ",".join(f'{label}="{v}"' for label, v in zip(labels, key, strict=True))
            lines.append(f"{name}{{{pairs}}} {float(n)!r}")
        lines.append(f"albert_standin_usage_rows {self.st.usage_rows}")
        return "\n".join(lines) + "\n"

    def send_raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        path = self.path.split("?", 1)[0]
        handler = path if path in ("/health", "/v1/models", "/metrics", *ROUTES) else "none"  # untemplated: "none"
        key = (self.command, f"{status // 100}xx", handler)  # grouped status codes, as the instrumentator's default
        self.st.requests[key] = self.st.requests.get(key, 0) + 1
        super().send_raw(status, data, content_type, headers)

    def authorized(self) -> bool:
        st = self.st
        token = self.bearer()
        if st.release == "0.0.3" and not st.auth:
            return True
        if token is None:
            self.send_json(403, {"detail": "Not authenticated"})
            return False
        if st.release == "0.2.0" and token != st.master_key:
            self.send_json(401, {"detail": "Invalid API key."})
            return False
        return True  # 0.0.3 with auth: keys live in Grist, which the stand-in cannot ask

    def proxy(self, route: str) -> None:
        st = self.st
        ctype = self.headers.get("Content-Type", "")
        try:
            if route == "transcriptions":
                fields = common.parse_multipart(self.body(), ctype)
                name = fields.get("model", (b"", None, None))[0].decode()
            else:
                payload = self.json_body()
                name = payload.get("model") if isinstance(payload, dict) else None
        except ValueError as err:
            return self.send_json(422, {"detail": str(err)})
        name = st.aliases.get(name, name)
        if name not in st.models:
            return self.send_json(404, {"detail": "Model not found."})
        model, client = st.models[name]
        path = UPSTREAM.get((client.type, route))
        if model.type not in ROUTE_TYPES[route] or path is None:
            return self.send_json(400, {"detail": f"Wrong model type, model {name} is {model.type}."})
        if route == "transcriptions":
            fields["model"] = (client.model.encode(), None, None)
            body, ctype = common.build_multipart(fields)
        elif route == "rerank" and client.type in ("tei", "v0"):
            body, ctype = (
                json.dumps({"query": payload.get("prompt"), "texts": payload.get("input")}).encode(),
                "application/json",
            )
        else:
            body, ctype = json.dumps({**payload, "model": client.model}).encode(), "application/json"
        if route == "chat" and payload.get("stream") is True:
            return self.stream(client.root + path, client.key, body)
        try:
            status, data, answer_type = http("POST", client.root + path, client.key, body, ctype, timeout=60)
        except OSError as err:
            return self.send_json(503, {"detail": f"model {name} is unreachable: {err}"})
        if route == "rerank" and status == 200 and client.type in ("tei", "v0"):
            items = json.loads(data)
            tag = {"object": "rerank"} if st.release == "0.2.0" else {}
            return self.send_json(
                200, {"object": "list", "data": [{**tag, "score": i["score"], "index": i["index"]} for i in items]}
            )
        self.send_raw(status, data, answer_type or "application/json")

    def stream(self, url: str, key: str | None, body: bytes) -> None:
        """A streamed chat completion passed on chunk by chunk, as the release does (facts: "0.2.0 streams chat")."""
        hdrs = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        request = urllib.request.Request(url, data=body, headers=hdrs, method="POST")
        try:
            response = _OPENER.open(request, timeout=60)
        except urllib.error.HTTPError as err:
            return self.send_raw(err.code, err.read(), err.headers.get("Content-Type", "application/json"))
        except urllib.error.URLError as err:
            return self.send_json(503, {"detail": f"model is unreachable: {err.reason}"})
        with response:
            self.send_response(200)
            self.send_header("Content-Type", str(api_config.value("0.2.0 streams chat")))
            self.end_headers()
            for line in iter(response.readline, b""):
                self.wfile.write(line)
                self.wfile.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="albert-api stand-in")
    parser.add_argument("--default-config", required=True, help="where the release looks when CONFIG_FILE is unset")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    common.exit_on_signals()
    config_file = os.environ.get("CONFIG_FILE") or args.default_config
    try:
        release, cfg = load(config_file)
        state = State(release=release, config_file=config_file)
        common.log("albert-api", f"release {release}, config {config_file}")
        (start_0_2_0 if release == "0.2.0" else start_0_0_3)(state, cfg)
    except StartupError as err:
        common.log("albert-api", f"startup failed: {err}")
        raise SystemExit(1) from None
    state.listening_at = time.time()
    common.serve(ApiHandler, args.host, args.port, "albert-api", state=state)


if __name__ == "__main__":
    main()
