"""`backup`: every database of a running stack into one archive (see ``archive.py``), online: the
API's postgres database (and the playground's, when the stack has one), redis and qdrant.

Each store is read with its own consistent method (``stores.py``) while the stack keeps serving;
no container is stopped. The stores are read one after another: each is consistent in itself, the
three are not taken at one instant (stop the API first for that: RUNBOOK.md says how).
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path
from typing import Any

from albert_deploy import __version__
from albert_deploy.airgap.bundle import volume_contents
from albert_deploy.backup import streams
from albert_deploy.backup.archive import Staging
from albert_deploy.backup.stores import pg_dump, qdrant_collections, qdrant_snapshot, redis_save, running
from albert_deploy.converge import containers
from albert_deploy.errors import BackupError
from albert_deploy.plan.build import Plan

STORES = ("postgres", "redis", "qdrant")


def refuse_elasticsearch(plan: Plan) -> None:
    if plan.vector_store != "qdrant":
        raise BackupError(
            f"project {plan.project} uses {plan.vector_store}: backup and restore handle qdrant only. An Elasticsearch "
            "snapshot needs a snapshot repository (path.repo) that the rendered stack does not configure; nothing was "
            "written"
        )


def store_containers(client: Any, plan: Plan) -> dict[str, str]:
    """Each store of the plan -> its running container's id (found by labels), all checked first."""
    planned = {s.name for s in plan.services if s.role == "database"}
    return {name: running(client, plan.project, name).id for name in STORES if name in planned}


def backup(client: Any, plan: Plan, lock: dict[str, Any] | None, target: Path, with_models: bool) -> dict[str, Any]:
    t0 = time.monotonic()
    refuse_elasticsearch(plan)
    found = store_containers(client, plan)
    port = next(s.container_port for s in plan.services if s.name == "qdrant") or 6333
    manifest: dict[str, Any] = {
        "albert_deploy": __version__,
        "project": plan.project,
        "release": plan.release.version,
        "vector_store": plan.vector_store,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "lock": lock,
        "volumes": {},
    }
    with Staging(target) as stage:
        if "postgres" in found:
            with stage.writer("postgres/dump.sql") as write:
                pg_dump(client, found["postgres"], write)
            manifest["postgres"] = {"member": "postgres/dump.sql", "format": "plain SQL (pg_dump --clean --if-exists)"}
            database = plan.playground_database  # its users and conversations: a database of its own
            if database:
                member = f"postgres/{database}.sql"
                with stage.writer(member) as write:
                    pg_dump(client, found["postgres"], write, database)
                manifest["playground"] = {"member": member, "database": database,
                                          "format": "plain SQL (pg_dump --clean --if-exists)"}  # fmt: skip
        collections: dict[str, dict[str, Any]] = {}
        for name in qdrant_collections(client, found["qdrant"], port):
            meta: dict[str, Any] = {"member": f"qdrant/{urllib.parse.quote(name, safe='')}.snapshot"}
            stage.add(meta["member"], qdrant_snapshot(client, found["qdrant"], port, name, meta))
            collections[name] = {k: meta[k] for k in ("member", "snapshot", "size")}
        manifest["qdrant"] = {"collections": collections}
        saved = redis_save(client, found["redis"])
        meta = {}
        stream, _ = client.api.get_archive(found["redis"], f"{saved['dir']}/{saved['dbfilename']}")
        stage.add("redis/dump.rdb", streams.only_file(stream, meta))
        manifest["redis"] = {**saved, "member": "redis/dump.rdb", **meta}
        if with_models:
            for job in plan.caches:
                volume = containers.volume_name(plan.project, job.volume)
                image_id = str(client.api.inspect_image(job.image)["Id"])
                member = f"volumes/{volume}.tar"
                stage.add(member, volume_contents(client, plan.project, volume, image_id))
                manifest["volumes"][volume] = {"member": member, "volume": job.volume, "image_id": image_id}
        written = stage.finish(manifest)
    return {
        "backup": str(target.resolve()),
        "size": target.stat().st_size,
        "seconds": round(time.monotonic() - t0, 1),
        "project": plan.project,
        "release": plan.release.version,
        "vector_store": plan.vector_store,
        "stores": [s for s in STORES if s in found],
        "playground": "playground" in manifest,
        "collections": sorted(collections),
        "redis_keys": saved["keyspace"],
        "volumes": sorted(manifest["volumes"]),
        "members": written["members"],
    }
