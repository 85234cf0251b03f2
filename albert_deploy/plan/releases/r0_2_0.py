"""Albert API 0.1.0 – 0.2.0 format: ``models[].clients[]`` and a ``databases`` list.

The API substitutes ``${VAR}`` in its config from its environment, so config.yml holds no secret.
"""

from __future__ import annotations

from typing import Any

from albert_deploy.catalog import EMBEDDINGS, RELEASES, RERANK, SPEECH, TEXT_GENERATION, HttpGet, urlopen_get
from albert_deploy.errors import RenderError
from albert_deploy.plan import databases
from albert_deploy.plan.assets import TIKTOKEN_O200K
from albert_deploy.plan.spec import Endpoint, Joined, Mount, Ref, Service
from albert_deploy.sizes import Size

RELEASE = RELEASES["0.2.0"]

IMAGES = {
    "redis": "redis/redis-stack-server:7.2.0-v11",
    # The patch release Albert 0.2.0's own compose.yml runs (its postgres service, compose.yml:6-25 at tag 0.2.0); `lock` pins its digest.
    "postgres": "postgres:16.5",
    "qdrant": "qdrant/qdrant:v1.11.5-unprivileged",
    "elasticsearch": "docker.elastic.co/elasticsearch/elasticsearch:9.0.2",
}

# Client types each model type accepts (the release's own rule).
CLIENT_TYPES = {
    TEXT_GENERATION: ("vllm", "openai", "albert"),
    "image-text-to-text": ("vllm", "openai", "albert"),  # vision models, 0.1.x and later
    EMBEDDINGS: ("tei", "openai", "albert"),
    RERANK: ("tei", "albert"),
    SPEECH: ("openai", "albert"),
}
MASTER_KEY = Ref("MASTER_KEY")
DATABASE_TYPES = ("qdrant", "elasticsearch", "redis", "sql")  # app/schemas/core/settings.py:29-33
# Monitoring albert-deploy turns on: usage rows in postgres, and /metrics (app/schemas/core/settings.py:238-240).
MONITORING = ("postgres", "prometheus")
# Read at every start (the default general.tokenizer, app/schemas/core/settings.py:269): see plan/assets.py.
ASSETS = (TIKTOKEN_O200K,)
# The image's CMD (app/Dockerfile:54): migrations, then gunicorn (scripts/startup_api.sh:24-35).
IMAGE_COMMAND = ("/startup.sh",)


def api_service(image: str, environment: dict[str, Any]) -> Service:
    # /health needs a key; /openapi.json is open, and the image has python3 but no curl.
    return Service(
        name="api",
        role="api",
        image=image,
        mem_limit=Size(RELEASE.memory_gib * 2**30),
        environment={"MASTER_KEY": MASTER_KEY, **environment, **{a.env: a.mount for a in ASSETS}},
        mounts=(
            Mount("./config.yml", RELEASE.config_mount, read_only=True),
            *(Mount(a.volume, a.mount) for a in ASSETS),  # writable: an online host without `pull` fills it
        ),
        healthcheck=urlopen_get(HttpGet(8000, "/openapi.json"), start_period_s=120),
    )


def config_context(endpoints: list[Endpoint], vector_store: str) -> dict[str, Any]:
    embeddings = next(e for e in endpoints if e.type == EMBEDDINGS)
    return {
        "master_key": MASTER_KEY,
        "redis_password": databases.REDIS_PASSWORD,
        "postgres_url": _postgres_url(),
        "vector_store": vector_store,
        **databases.store_secret(vector_store),
        "vector_model": embeddings.name,
        "models": [
            {"id": e.name, "type": e.type, "model": e.served_name, "client": e.client, "url": e.url, "key": e.key}
            for e in endpoints
        ],
    }


def _postgres_url() -> Joined:
    return Joined(
        ("postgresql+asyncpg://postgres:", databases.POSTGRES_PASSWORD, f"@postgres:5432/{databases.POSTGRES_DB}")
    )


def validate_config(data: Any) -> None:
    """The rules 0.1.0 – 0.2.0 enforce at startup, applied to the rendered file."""
    _require(isinstance(data, dict), "the config is not a mapping")
    _require(isinstance(data.get("auth", {}).get("master_key"), str), "auth.master_key is missing")
    models: Any = data.get("models")
    _require(isinstance(models, list) and models, "models must be a non-empty list")
    ids = [m.get("id") for m in models]
    _require(len(ids) == len(set(ids)), f"model ids must be unique: {ids}")
    for model in models:
        clients = model.get("clients")
        _require(isinstance(clients, list) and clients, f"model {model.get('id')}: clients must be a non-empty list")
        for client in clients:
            allowed = CLIENT_TYPES.get(model.get("type"), ())
            _require(
                client.get("type") in allowed,
                f"model {model.get('id')}: client type {client.get('type')} does not suit {model.get('type')}",
            )
            url = client.get("args", {}).get("api_url", "")
            _require(
                url.startswith(("http://", "https://")) and not url.rstrip("/").endswith("/v1"),
                f"model {model.get('id')}: api_url must be the server root, got {url}",
            )
            _require(
                isinstance(client.get("model"), str) and client["model"],
                f"model {model.get('id')}: client model is missing",
            )
    dbs = data.get("databases")
    _require(isinstance(dbs, list), "databases must be a list")
    kinds = [d.get("type") for d in dbs]
    unknown = sorted(set(map(str, kinds)) - set(DATABASE_TYPES))
    _require(not unknown, f"database types must be among {DATABASE_TYPES}, got {unknown}")
    _require(kinds.count("redis") == 1, "exactly one redis database is required")
    sql = [d for d in dbs if d.get("type") == "sql" and d.get("context", "api") == "api"]
    _require(len(sql) == 1, "exactly one sql database with context api is required")
    _require(
        str(sql[0].get("args", {}).get("url", "")).startswith("postgresql"), "the sql database needs a postgresql URL"
    )
    stores = [d for d in dbs if d.get("type") in ("qdrant", "elasticsearch")]
    _require(len(stores) == 1, "exactly one vector store (qdrant or elasticsearch) is required")
    embedding_ids = {m["id"] for m in models if m.get("type") == EMBEDDINGS}
    _require(
        stores[0].get("model") in embedding_ids,
        f"the vector store's model must be an embeddings model id, got {stores[0].get('model')}",
    )
    _check_monitoring(data)


def _check_monitoring(data: dict[str, Any]) -> None:
    """Usage rows and /metrics are off when absent (app/utils/hooks_decorator.py:206, app/factory.py:143)."""
    monitoring = data.get("monitoring") or {}
    _require(monitoring, "monitoring is missing: usage would not be recorded, nor metrics served")
    for key in MONITORING:
        section = monitoring.get(key)
        _require(
            isinstance(section, dict) and section.get("enabled", True) is True,
            f"monitoring.{key}.enabled must be true (the default albert-deploy renders)",
        )


def _require(condition: object, message: str) -> None:
    if not condition:
        raise RenderError(f"config.yml does not match release 0.2.0: {message}")
