"""The API's databases as services. Images are chosen by each release module."""

from __future__ import annotations

from albert_deploy.catalog import HealthCheck, HttpGet, dev_tcp_get
from albert_deploy.plan.spec import Joined, Mount, Ref, Service
from albert_deploy.sizes import Size

REDIS_PASSWORD = Ref("REDIS_PASSWORD")
POSTGRES_PASSWORD = Ref("POSTGRES_PASSWORD")
QDRANT_API_KEY = Ref("QDRANT_API_KEY")
ELASTIC_PASSWORD = Ref("ELASTIC_PASSWORD")
POSTGRES_DB = "api"
GIB = 2**30
# Memory limits: defaults for a single Albert API, not measurements. Redis holds rate-limit counters,
# postgres runs with its default shared_buffers (128 MB), qdrant keeps its vectors in memory (raise
# it for large collections), Elasticsearch's heap is 1 GiB (ES_JAVA_OPTS below) plus as much off-heap.
MEMORY = {"redis": Size(1 * GIB), "postgres": Size(1 * GIB), "qdrant": Size(4 * GIB), "elasticsearch": Size(2 * GIB)}
# postgres:16's entrypoint starts as root, creates and chowns $PGDATA and /var/run/postgresql, then
# `exec gosu postgres` (docker-library/postgres 16/bookworm/docker-entrypoint.sh:36-60, :336-338).
POSTGRES_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID")


def redis(image: str) -> Service:
    return Service(
        name="redis",
        role="database",
        image=image,
        mem_limit=MEMORY["redis"],
        environment={"REDIS_ARGS": Joined(("--requirepass ", REDIS_PASSWORD)), "REDISCLI_AUTH": REDIS_PASSWORD},
        mounts=(Mount("redis-data", "/data"),),
        container_port=6379,
        # `-e` makes redis-cli fail on NOAUTH; plain `ping` exits 0 even with a wrong password.
        healthcheck=HealthCheck(test=("CMD-SHELL", "redis-cli -e ping | grep -q PONG"), start_period_s=30),
    )


def postgres(image: str) -> Service:
    return Service(
        name="postgres",
        role="database",
        image=image,
        mem_limit=MEMORY["postgres"],
        cap_add=POSTGRES_CAPS,
        environment={"POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": POSTGRES_PASSWORD, "POSTGRES_DB": POSTGRES_DB},
        mounts=(Mount("postgres-data", "/var/lib/postgresql/data"),),
        container_port=5432,
        # Without -h, pg_isready reports ready during first-time initialisation (socket only).
        healthcheck=HealthCheck(
            test=("CMD", "pg_isready", "-h", "127.0.0.1", "-U", "postgres", "-d", POSTGRES_DB), start_period_s=60
        ),
    )


def qdrant(image: str) -> Service:
    return Service(
        name="qdrant",
        role="database",
        image=image,
        mem_limit=MEMORY["qdrant"],
        environment={"QDRANT__SERVICE__API_KEY": QDRANT_API_KEY},
        mounts=(Mount("qdrant-data", "/qdrant/storage"),),
        # The image has bash but neither curl nor wget.
        healthcheck=dev_tcp_get(HttpGet(6333, "/readyz"), start_period_s=60),
        container_port=6333,
    )


def elasticsearch(image: str) -> Service:
    return Service(
        name="elasticsearch",
        role="database",
        image=image,
        mem_limit=MEMORY["elasticsearch"],
        environment={
            "discovery.type": "single-node",
            "xpack.security.enabled": "true",
            "xpack.security.http.ssl.enabled": "false",
            "ELASTIC_PASSWORD": ELASTIC_PASSWORD,
            "ES_JAVA_OPTS": "-Xms1g -Xmx1g",
        },
        mounts=(Mount("elasticsearch-data", "/usr/share/elasticsearch/data"),),
        container_port=9200,
        healthcheck=HealthCheck(
            test=(
                "CMD-SHELL",
                'curl -fsS -o /dev/null -u "elastic:$ELASTIC_PASSWORD" '
                "'http://localhost:9200/_cluster/health?wait_for_status=yellow&timeout=5s'",
            ),
            start_period_s=120,
        ),
    )


def for_release(images: dict[str, str], uses_postgres: bool, vector_store: str) -> list[Service]:
    """redis, postgres where the release uses it, then the vector store."""
    store = qdrant if vector_store == "qdrant" else elasticsearch
    return [
        redis(images["redis"]),
        *([postgres(images["postgres"])] if uses_postgres else []),
        store(images[vector_store]),
    ]


def store_secret(vector_store: str) -> dict[str, Ref]:
    """The chosen store's secret only, so .env holds no unused one."""
    if vector_store == "qdrant":
        return {"qdrant_api_key": QDRANT_API_KEY}
    return {"elastic_password": ELASTIC_PASSWORD}
