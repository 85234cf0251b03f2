"""Albert API 0.0.2 – 0.0.3 format: ``clients.models`` with ``/v1`` URLs and ``internet`` defaults.

These releases do not substitute ``${VAR}`` in their config, so the container expands the
mounted template into /tmp at start (``string.Template``): config.yml on the host holds no secret.
"""

from __future__ import annotations

from typing import Any

from albert_deploy.catalog import EMBEDDINGS, RELEASES, TEXT_GENERATION, HttpGet, urlopen_get
from albert_deploy.errors import RenderError
from albert_deploy.plan import databases
from albert_deploy.plan.spec import Endpoint, Mount, Service
from albert_deploy.sizes import Size

RELEASE = RELEASES["0.0.3"]

IMAGES = {
    "redis": "redis/redis-stack-server:7.2.0-v11",
    "qdrant": "qdrant/qdrant:v1.11.5-unprivileged",
    "elasticsearch": "docker.elastic.co/elasticsearch/elasticsearch:8.15.3",
}
EXPANDED_CONFIG = "/tmp/config.yml"
# The release's own names (app/schemas/settings.py:64 at 0.0.3): Elasticsearch is "elastic".
SEARCH_TYPES = ("elastic", "qdrant")

# Expands ${VAR} from the environment into a private file, then becomes the API server.
_EXPAND_AND_RUN = (
    "import os, string; os.umask(0o077); "
    f"text = open({RELEASE.config_mount!r}).read(); "
    f"open({EXPANDED_CONFIG!r}, 'w').write(string.Template(text).substitute(os.environ)); "
    "os.execvp('uvicorn', ['uvicorn', 'app.main:app', '--host', '0.0.0.0', '--port', '8000'])"
)


def api_service(image: str, environment: dict[str, Any]) -> Service:
    return Service(
        name="api",
        role="api",
        image=image,
        mem_limit=Size(RELEASE.memory_gib * 2**30),
        command=("python3", "-c", _EXPAND_AND_RUN),
        environment={"CONFIG_FILE": EXPANDED_CONFIG, **environment},
        mounts=(Mount("./config.yml", RELEASE.config_mount, read_only=True),),
        healthcheck=urlopen_get(HttpGet(8000, "/"), start_period_s=60),
    )


def config_context(endpoints: list[Endpoint], vector_store: str) -> dict[str, Any]:
    llm = next(e for e in endpoints if e.type == TEXT_GENERATION)
    embeddings = next(e for e in endpoints if e.type == EMBEDDINGS)
    return {
        "default_language_model": llm.served_name,
        "default_embeddings_model": embeddings.served_name,
        # The API names models by what servers report; the profile's names become aliases.
        "aliases": {e.served_name: [e.name] for e in endpoints if e.name != e.served_name},
        "models": [{"url": e.url + "/v1", "type": e.type, "key": e.key} for e in endpoints],
        "redis_password": databases.REDIS_PASSWORD,
        "vector_store": vector_store,
        **databases.store_secret(vector_store),
    }


def validate_config(data: Any) -> None:
    """The rules 0.0.2 – 0.0.3 enforce at startup, applied to the rendered file."""
    _require(isinstance(data, dict), "the config is not a mapping")
    internet = data.get("internet") or {}
    for key in ("default_language_model", "default_embeddings_model"):
        _require(isinstance(internet.get(key), str) and internet[key], f"internet.{key} is required")
    clients = data.get("clients") or {}
    models: Any = clients.get("models")
    _require(isinstance(models, list) and models, "clients.models must be a non-empty list")
    types = [m.get("type") for m in models]
    _require(TEXT_GENERATION in types, "at least one text-generation model is required")
    _require(EMBEDDINGS in types, "at least one text-embeddings-inference model is required")
    for model in models:
        _require(
            str(model.get("url", "")).rstrip("/").endswith("/v1"), f"model url must include /v1, got {model.get('url')}"
        )
    dbs = clients.get("databases") or {}
    cache = dbs.get("cache") or {}
    _require(
        cache.get("type") == "redis" and "port" in (cache.get("args") or {}),
        "clients.databases.cache must be redis with a port",
    )
    search = (dbs.get("search") or {}).get("type")
    _require(search in SEARCH_TYPES, f"clients.databases.search.type must be one of {SEARCH_TYPES}, got {search!r}")


def _require(condition: object, message: str) -> None:
    if not condition:
        raise RenderError(f"config.yml does not match release 0.0.3: {message}")
